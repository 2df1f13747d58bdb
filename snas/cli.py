"""The ``snas`` command line: the parser and the entry point.

Every command is a module registered in :data:`snas.commands.COMMANDS` (``HELP``,
``DESCRIPTION``, ``add_arguments(parser)``, ``run(args)``). Every user error is one line on
stderr (``snas: error: ...``) and exit code 2; ``--debug`` shows the traceback instead. A
search stopped by Ctrl-C or SIGTERM exits 130 / 143 and can be resumed.
Heavy imports (torch, ray) happen inside the commands' ``run``, so ``snas --help`` and
store queries start fast.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from snas.commands import COMMANDS, command_module
from snas.core.errors import SnasError

__all__ = ["EXIT_USAGE", "build_parser", "main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="snas", description="Search per-layer density vectors of sparse "
                     "networks (masked MLPs/CNNs) with Ray Tune.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        module = command_module(name)
        command = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SnasError as exc:
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(exc).split())  # one line, whatever the message held
        print(f"snas: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("snas: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from snas.runner import Interrupted  # a stopped search: 130 (SIGINT) / 143 (SIGTERM)

        if not isinstance(exc, Interrupted):
            raise
        print(f"snas: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
