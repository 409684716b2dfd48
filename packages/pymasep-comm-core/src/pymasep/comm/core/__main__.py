"""``python -m pymasep.comm.core``: which code serves ``pymasep.communication``;
``python -m pymasep.comm.core watch PATH``: a recording in the browser."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .installation import Verdict, describe, inspect_environment


def _watch(args: argparse.Namespace) -> int:
    from .watch import WatchServer

    try:
        server = WatchServer(args.path, args.host, args.port)
    except (FileNotFoundError, OSError) as error:
        print(f"watch: {error}", file=sys.stderr)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Print which code serves ``pymasep.communication`` (0 when it is pymasep-comm's),
    or, with ``watch PATH``, serve the watch page for a recording.

    Args:
        argv: The command-line arguments.

    Returns:
        The exit status: without a command, 0 when every file is pymasep-comm-core's, 1
        otherwise; ``watch``: 0 when stopped, 2 when PATH cannot be served.
    """
    parser = argparse.ArgumentParser(
        prog="python -m pymasep.comm.core",
        description="Say which distribution's files serve pymasep.communication "
        "(pymasep-comm's, pymasep 0.2's, or a mix), and how to fix a mix; or watch a "
        "recording in the browser.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    watch = commands.add_parser(
        "watch",
        help="serve a page that shows a recording (or a directory of them), live",
        description="Serve a page showing a recording (record= or PYMASEP_COMM_RECORD) "
        "or every recording in a directory, following them while they grow.",
    )
    watch.add_argument("path", help="a recording (.jsonl, .jsonl.gz) or a directory of them")
    watch.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    watch.add_argument("--port", type=int, default=0, help="port (0, the default: any free one)")
    args = parser.parse_args(argv)
    if args.command == "watch":
        return _watch(args)
    installation = inspect_environment()
    print(describe(installation))
    return 0 if installation.verdict is Verdict.OURS else 1


if __name__ == "__main__":
    sys.exit(main())
