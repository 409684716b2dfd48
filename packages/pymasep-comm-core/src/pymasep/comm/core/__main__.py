"""``python -m pymasep.comm.core``: which code serves ``pymasep.communication``;
``python -m pymasep.comm.core config``: the effective settings and where each comes from;
``python -m pymasep.comm.core watch PATH``: a recording in the browser."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .exceptions import ConfigurationError
from .installation import Verdict, describe, inspect_environment
from .settings import SIDES, Side, resolve

_PROG = "python -m pymasep.comm.core"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Without a command: say which distribution's files serve "
        "pymasep.communication (pymasep-comm's, pymasep 0.2's, or a mix), and how to fix "
        "a mix.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    config = commands.add_parser(
        "config",
        help="print the effective settings and where each comes from",
        description="Print the settings a server or client would take from the "
        "environment (PYMASEP_COMM_*) and the file PYMASEP_COMM_CONFIG names, and where "
        "each comes from (variable, file:line, default); secrets as their path only. "
        "The files they name (keys, certificates) are checked too.",
    )
    which = config.add_mutually_exclusive_group()
    which.add_argument("--server", metavar="ID", help="the settings of the server with this id")
    which.add_argument("--client", metavar="ID", help="the settings of the client with this id")
    watch = commands.add_parser(
        "watch",
        help="serve a page that shows a recording (or a directory of them), live",
        description="Serve a page showing a recording (record= or PYMASEP_COMM_RECORD) "
        "or every recording in a directory, following them while they grow.",
    )
    watch.add_argument("path", help="a recording (.jsonl, .jsonl.gz) or a directory of them")
    watch.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    watch.add_argument("--port", type=int, default=0, help="port (0, the default: any free one)")
    return parser


def _watch(args: argparse.Namespace) -> int:
    from .watch import WatchServer

    try:
        server = WatchServer(args.path, args.host, args.port)
    except OSError as error:
        print(f"{_PROG} watch: {error}", file=sys.stderr)
        return 2
    with server:
        print(f"watching {args.path} at {server.url} (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stopping.set()
    return 0


def _config(args: argparse.Namespace) -> int:
    wanted: list[tuple[Side, str | None]] = [(side, None) for side in SIDES]
    if args.server is not None:
        wanted = [("server", args.server)]
    elif args.client is not None:
        wanted = [("client", args.client)]
    try:
        for number, (side, ident) in enumerate(wanted):
            settings = resolve(side, ident)
            if number:
                print()
            print(settings.describe())
            settings.arguments()  # reads the keys and certificates: any problem shows
    except ConfigurationError as error:
        print(f"{_PROG} config: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status. Without a command: 0 when every file of
        ``pymasep.communication`` is pymasep-comm-core's, 1 otherwise. ``config``: 0 when
        the settings are valid, 1 otherwise (the error on stderr). ``watch``: 0 when
        stopped, 2 when PATH cannot be served.
    """
    args = _parser().parse_args(argv)
    if args.command == "config":
        return _config(args)
    if args.command == "watch":
        return _watch(args)
    installation = inspect_environment()
    print(describe(installation))
    return 0 if installation.verdict is Verdict.OURS else 1


if __name__ == "__main__":
    sys.exit(main())
