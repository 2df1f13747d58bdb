"""``snas dashboard``: serve the read-only web page over the results store."""

from __future__ import annotations

import argparse

from snas.commands._common import STORE_HELP, open_reader
from snas.core.errors import ConfigError

HELP = "serve a read-only web page over the store"
DESCRIPTION = ("Serve a read-only web page over the results store: searches, ranked trials "
               "with density vectors, accuracy vs active weights, per-layer densities, "
               "learning and EGF curves, wiring graphs. It refreshes every few seconds while "
               "a search runs.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on "
                        "(default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050; 0: "
                        "any free port)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also answer requests whose Host header names NAME (repeatable; "
                        "'*': any). Default: localhost, and beyond loopback also the bound "
                        "host (for 0.0.0.0 this machine's host names)")
    parser.add_argument("--verbose", action="store_true", help="log every request")


def run(args: argparse.Namespace) -> int:
    import errno
    import sys

    from snas.dashboard import is_loopback, make_server

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in [0, 65535], got {args.port}")
    store = open_reader(args.store)
    try:
        server = make_server(store, args.host, args.port, verbose=args.verbose,
                             allow_hosts=args.allow_host)
    except OSError as exc:
        why = ("the port is in use (pick another --port)" if exc.errno == errno.EADDRINUSE
               else exc.strerror or str(exc))
        raise ConfigError(f"cannot serve the dashboard on {args.host}:{args.port}: "
                          f"{why}") from None
    if not is_loopback(args.host):
        names = ", ".join(sorted(server.allow_hosts or ()))
        print(f"snas dashboard: warning: listening on {args.host} beyond this machine, without "
              f"authentication: whoever reaches port {server.server_address[1]} reads the "
              f"store; answering only to Host {names} (more with --allow-host)",
              file=sys.stderr, flush=True)
    try:  # Ctrl-C right after the line is printed stops it cleanly too
        print(f"snas dashboard: {server.url} (store {store.url}); Ctrl-C to stop", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("snas dashboard: stopped")
    finally:
        server.server_close()
        store.close()
    return 0
