"""Command line of pymasep-comm-client: ``python -m pymasep.comm.client discover`` and
``python -m pymasep.comm.client replay FILE --server HOST:PORT``.

Installed as the ``pymasep-comm`` command. ``discover`` exits with 0 when servers were
found, 1 when none answered (or the query could not be sent), 2 for a usage error (or a
wrong setting). The group, port and interface not given on the command line are an
interface's settings (``PYMASEP_COMM_DISCOVERY_*``, the ``[client]`` table of
``PYMASEP_COMM_CONFIG``; see :mod:`pymasep.comm.core.settings`), as
:class:`~pymasep.comm.client.Client` takes them.

``replay`` plays the interface's side of a recording (``record=`` or
``PYMASEP_COMM_RECORD``) to a live engine: it connects under the recorded interface's id,
sends the recorded frames in order and compares the engine's observations with the
recorded ones (:mod:`pymasep.comm.core.replay`). It exits with 0 when the engine answered
as recorded, 1 at the first divergence (printed with both XMLs), 2 for a usage error, 3
when it could not connect.
"""

from __future__ import annotations

import argparse
import logging
import queue
import sys
from collections.abc import Sequence
from typing import Any

from pymasep.comm.core import CommunicationError, SocketHandlerQueue
from pymasep.comm.core.cli import run_command
from pymasep.comm.core.discovery import (
    DEFAULT_GROUP,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    DEFAULT_TTL,
    ServerInfo,
)
from pymasep.comm.core.exceptions import ServerNotFoundError
from pymasep.comm.core.replay_cli import add_replay_command, read_connection, replay_live
from pymasep.comm.core.settings import resolve

from .client import Client
from .discovery import _Search, not_found_hint

__all__ = ["main"]

_COLUMNS = ("ID", "ADDRESS", "WIRE", "REQUIRES", "NAME")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pymasep-comm",
        description="Tools for pymasep-comm interfaces.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    discover = commands.add_parser(
        "discover",
        help="list the pymasep servers that answer on the local network",
        description=(
            "Send a discovery query to the multicast group and list every pymasep "
            "server that answers within the timeout."
        ),
    )
    discover.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for answers (default {DEFAULT_TIMEOUT:g})",
    )
    discover.add_argument(
        "--group",
        metavar="G",
        help=f"group (default: PYMASEP_COMM_DISCOVERY_GROUP, the file, or {DEFAULT_GROUP})",
    )
    discover.add_argument(
        "--port",
        type=int,
        metavar="P",
        help=f"port (default: PYMASEP_COMM_DISCOVERY_PORT, the file, or {DEFAULT_PORT})",
    )
    discover.add_argument(
        "--ttl", type=int, default=DEFAULT_TTL, help=f"multicast TTL (default {DEFAULT_TTL})"
    )
    discover.add_argument(
        "--interface",
        metavar="IP",
        help="local IPv4 address of the interface to query from (default: "
        "PYMASEP_COMM_DISCOVERY_INTERFACE, the file, or the routing table's)",
    )
    discover.add_argument(
        "--id", dest="server_id", metavar="ID", help="only the server with this id"
    )
    discover.add_argument(
        "-v", "--verbose", action="store_true", help="log each datagram sent and received"
    )
    command = add_replay_command(
        commands,
        recorded_by="an interface",
        help="play a recording's interface side to a live engine and compare its answers",
        description=(
            "Connect under the recorded interface's id, send the recorded frames in "
            "order and compare what the engine sends with the recording."
        ),
    )
    command.add_argument(
        "--server", required=True, metavar="HOST:PORT", help="the live engine's address"
    )
    return parser


class _ReplayClient(Client):
    inbox: queue.Queue[Any]

    def on_disconnect(self, ident: str, reason: str) -> None:
        self.inbox.put(None)


def _replay(args: argparse.Namespace) -> int:
    host, _, port = args.server.rpartition(":")
    if not host or not port.isdigit():
        print(f"replay: --server takes HOST:PORT, not {args.server!r}", file=sys.stderr)
        return 2
    read = read_connection(args.file, "client", None, "an engine, not an interface")
    if read is None:
        return 2
    ident, records = read
    recorded_server = records[0].peer
    inbox: queue.Queue[Any] = queue.Queue()
    client = _ReplayClient(ident, SocketHandlerQueue, (inbox,), host.strip("[]"), int(port))
    client.inbox = inbox
    with client:
        try:
            client.connect()
        except CommunicationError as error:
            print(f"replay: {error}", file=sys.stderr)
            return 3
        server = client.server_id
        assert server is not None

        def receive(timeout: float) -> bytes | None:
            try:
                return inbox.get(timeout=timeout)  # type: ignore[no-any-return]
            except queue.Empty:
                return None

        return replay_live(
            records,
            lambda frame: client.send_frame_to(server, frame),
            receive,
            args,
            recorded_server,
            server,
        )


def _table(servers: Sequence[ServerInfo]) -> str:
    rows = [_COLUMNS] + [
        (
            info.id or "-",
            f"{info.host}:{info.port}",
            info.wire,
            ",".join(info.requires) or "-",
            info.name or "-",
        )
        for info in servers
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS) - 1)]
    lines = []
    for row in rows:
        # The last column is not padded: names vary in length and end the line.
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        cells.append(row[-1])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _discover(args: argparse.Namespace) -> int:
    # What the command line leaves out comes from the settings, as for a Client.
    passed = {f"discovery_{name}" for name in ("group", "port", "interface")}
    passed = {name for name in passed if getattr(args, name[len("discovery_") :]) is not None}
    settings = resolve("client", arguments=passed)
    for name in ("group", "port", "interface"):
        if getattr(args, name) is None:
            setattr(args, name, settings[f"discovery_{name}"])
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    try:
        # Every server that answers, even with --id: when the one asked for is not among
        # them, the others are what the user needs to see.
        search = _Search(
            args.timeout, args.group, args.port, args.ttl, args.interface, option="--interface"
        )
        answered = search.run()
    except ServerNotFoundError as error:
        print(f"pymasep-comm discover: {error.strerror or error}", file=sys.stderr)
        return 1
    servers = [info for info in answered if args.server_id in (None, info.id)]
    if not servers:
        which = "no pymasep server" if args.server_id is None else f"no server {args.server_id!r}"
        print(
            f"pymasep-comm discover: {which} answered on {args.group}:{args.port} within "
            f"{args.timeout:g} s.",
            file=sys.stderr,
        )
        if answered:
            print(f"These servers answered:\n{_table(answered)}", file=sys.stderr)
        else:
            print(f"{not_found_hint('--interface').capitalize()}.", file=sys.stderr)
        return 1
    print(_table(servers))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments, without the program name; None reads ``sys.argv``.

    Returns:
        The exit status.
    """
    return run_command(_parser(), {"discover": _discover, "replay": _replay}, argv)


if __name__ == "__main__":
    sys.exit(main())
