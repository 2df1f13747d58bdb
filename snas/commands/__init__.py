"""The ``snas`` subcommands: one module per command, registered in :data:`COMMANDS`.

Every command module defines ``HELP`` (one line for ``snas --help``), ``DESCRIPTION``
(for ``snas COMMAND --help``), ``add_arguments(parser)`` and ``run(args) -> int``. A module
imports torch, Ray or matplotlib inside ``run`` only, so building the parser (``snas
--help``) imports none of them. Adding a command is one module plus one registry line here.
"""

from __future__ import annotations

from types import ModuleType

from snas.core.registry import Registry

__all__ = ["COMMANDS", "command_module"]

#: Command name -> the module that implements it (a lazy reference, imported on first use),
#: in ``snas --help`` order: the same :class:`~snas.core.registry.Registry` style as the
#: plug-ins.
COMMANDS: Registry = Registry("command")
COMMANDS.register("train", "snas.commands.train")
COMMANDS.register("search", "snas.commands.search")
COMMANDS.register("resume", "snas.commands.resume")
COMMANDS.register("delete", "snas.commands.delete")
COMMANDS.register("list", "snas.commands.listing")
COMMANDS.register("show", "snas.commands.show")
COMMANDS.register("export", "snas.commands.export")
COMMANDS.register("dashboard", "snas.commands.dashboard")
COMMANDS.register("confirm", "snas.confirm")
COMMANDS.register("compare", "snas.compare")
COMMANDS.register("report", "snas.report")
COMMANDS.register("analyze", "snas.analysis")
COMMANDS.register("topology", "snas.topology")

_CONTRACT = ("HELP", "DESCRIPTION", "add_arguments", "run")


def command_module(name: str) -> ModuleType:
    """The module of command ``name``, checked against the command contract."""
    module = COMMANDS[name]  # an unknown name: the registry's one-line error
    missing = [attr for attr in _CONTRACT if not hasattr(module, attr)]
    if missing:  # a programming error in a command module, not a user error
        raise TypeError(f"command module {module.__name__} lacks {', '.join(missing)}")
    return module
