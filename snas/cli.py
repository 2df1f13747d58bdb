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
import atexit
import gc
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from snas.commands import COMMANDS, command_module
from snas.core.errors import SnasError

__all__ = ["EXIT_USAGE", "build_parser", "entry", "main"]

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


def entry() -> NoReturn:
    """The ``snas`` script: :func:`main`, then a quick exit.

    Once a command has returned, Ray is shut down (a local instance it started stops;
    called here rather than from Ray's exit handler, which first waits 0.5 s for worker log
    lines that snas's drivers do not stream, ``log_to_driver=False``), the process's exit
    handlers run, every results store is closed (SQLite folds its write-ahead log back into
    the file) and the output is flushed; then ``os._exit`` skips the interpreter's teardown
    of its modules, which after a search (torch's and Ray's native state) takes ~2 s and
    does nothing a finished command needs. An uncaught error or ``SystemExit`` (``--help``,
    a usage error) ends the normal way.
    """
    code = main()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    atexit._run_exitfuncs()
    if "snas.store" in sys.modules:
        from snas.store import ResultsStore

        gc.collect()  # stores dropped in reference cycles close their connections here
        ResultsStore.close_all()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`snas list | head`)
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
