"""The ``snas`` subcommands: one module per command, registered in :data:`COMMANDS`.

Every command module defines ``HELP`` (one line for ``snas --help``), ``DESCRIPTION``
(for ``snas COMMAND --help``), ``add_arguments(parser)`` and ``run(args) -> int``. A module
imports torch, Ray or matplotlib inside ``run`` only, so building the parser (``snas
--help``) imports none of them. Adding a command is one module plus one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from snas.core.errors import ConfigError

__all__ = ["COMMANDS", "command_module"]

#: Command name -> the module that implements it, in ``snas --help`` order. Imported
#: lazily, by :func:`command_module`.
COMMANDS: dict[str, str] = {
    "train": "snas.commands.train",
    "search": "snas.commands.search",
    "resume": "snas.commands.resume",
    "list": "snas.commands.listing",
    "show": "snas.commands.show",
    "export": "snas.commands.export",
    "dashboard": "snas.commands.dashboard",
    "confirm": "snas.confirm",
    "compare": "snas.compare",
    "report": "snas.report",
    "analyze": "snas.analysis",
    "topology": "snas.topology",
}

_CONTRACT = ("HELP", "DESCRIPTION", "add_arguments", "run")


def command_module(name: str) -> ModuleType:
    """The module of command ``name``, checked against the command contract."""
    if name not in COMMANDS:
        raise ConfigError(f"unknown command {name!r}; choose one of {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name])
    missing = [attr for attr in _CONTRACT if not hasattr(module, attr)]
    if missing:  # a programming error in a command module, not a user error
        raise TypeError(f"command module {module.__name__} lacks {', '.join(missing)}")
    return module
