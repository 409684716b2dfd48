"""Command line of pymasep-comm-server: ``python -m pymasep.comm.server replay FILE``.

``replay`` plays the engine's side of a recording (``record=`` or
``PYMASEP_COMM_RECORD``) to a live interface: it listens, prints where, waits for the
recorded interface's id to connect (``--any-id``: any interface, its id put in place of
the recorded one), sends it the recorded frames in order and compares
what it sends back with what was recorded (:mod:`pymasep.comm.core.replay`). An agent's
regression test. Exit status: 0 when the interface answered as recorded, 1 at the first
divergence (printed with both XMLs), 2 for a usage error (no such file, not a recording,
no such interface in it), 3 when the interface did not connect in time.
"""

from __future__ import annotations

import argparse
import queue
import sys
from typing import Any

from pymasep.comm.core import SocketHandlerPeerQueue
from pymasep.comm.core.cli import run_command
from pymasep.comm.core.replay_cli import add_replay_command, read_connection, replay_live

from .server import Server

__all__ = ["main"]

EXIT_NOT_CONNECTED = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pymasep.comm.server", description="Tools for pymasep-comm engines."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = add_replay_command(
        commands,
        recorded_by="an engine",
        help="play a recording's engine side to a live interface and compare its answers",
        description=(
            "Listen, wait for the recorded interface to connect, send it the recorded "
            "frames in order and compare what it sends back with the recording."
        ),
    )
    command.add_argument(
        "--peer", metavar="ID", help="the interface to replay (default: the first)"
    )
    command.add_argument(
        "--any-id",
        action="store_true",
        help="replay to the first interface that connects, whatever its id; the recorded "
        "id is replaced by the live one in the frames (for ids made anew at each run, as "
        "pymasep's are)",
    )
    command.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    command.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    command.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for the interface to connect",
    )
    return parser


class _ReplayServer(Server):
    inbox: queue.Queue[tuple[str, Any]]

    def on_disconnect(self, ident: str, reason: str) -> None:
        self.inbox.put((ident, None))


def _replay(args: argparse.Namespace) -> int:
    read = read_connection(args.file, "server", args.peer, "a client, not an engine")
    if read is None:
        return 2
    engine_id, records = read
    peer = records[0].peer
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
    server = _ReplayServer(engine_id, 64, SocketHandlerPeerQueue, (inbox,), args.host, args.port)
    server.inbox = inbox
    with server:
        server.wait_connection()
        who = "an interface" if args.any_id else peer
        print(f"replaying {args.file}: waiting for {who} on {args.host}:{server.port}", flush=True)
        if args.any_id:
            arrived = server.wait_for_connections(1, args.connect_timeout)
        else:
            arrived = server.wait_for_peer(peer, args.connect_timeout)
        if not arrived:
            print(f"{who} did not connect within {args.connect_timeout:g} s", file=sys.stderr)
            return EXIT_NOT_CONNECTED
        live = server.connection_ids()[0] if args.any_id else peer

        def receive(timeout: float) -> bytes | None:
            while True:
                try:
                    ident, payload = inbox.get(timeout=timeout)
                except queue.Empty:
                    return None
                if ident == live:  # other interfaces may connect: they are not replayed
                    return payload  # type: ignore[no-any-return]

        return replay_live(
            records, lambda frame: server.send_frame_to(live, frame), receive, args, peer, live
        )


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments, without the program name; None reads ``sys.argv``.

    Returns:
        The exit status.
    """
    return run_command(_parser(), {"replay": _replay}, argv)


if __name__ == "__main__":
    sys.exit(main())
