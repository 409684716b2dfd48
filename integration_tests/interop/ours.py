"""Our side of the interop tests: a Server and Client that record what happens to them."""

from __future__ import annotations

import queue
from typing import Any

from pymasep.comm.client import Client
from pymasep.comm.core.testing.peers import (
    PeerRecorder,  # each frame's bytes in inbox, each (peer_id, reason) in ended
)
from pymasep.comm.server import Server

LOOPBACK = "127.0.0.1"
SERVER_ID = "ours-server"
CLIENT_ID = "ours-client"


class RecordingServer(Server):
    """A Server whose :meth:`on_disconnect` calls land in :attr:`disconnects`."""

    def __init__(self, host: str = LOOPBACK, **kwargs: Any) -> None:
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.handler_ends: queue.Queue[tuple[str | None, str]] = queue.Queue()
        self.disconnects: queue.Queue[tuple[str, str]] = queue.Queue()
        kwargs.setdefault("max_connection", 8)
        super().__init__(
            SERVER_ID,
            socket_handler_class=PeerRecorder,
            socket_handler_args=(self.inbox, self.handler_ends),
            host=host,
            port=0,
            **kwargs,
        )

    def on_disconnect(self, ident: str, reason: str) -> None:
        self.disconnects.put((ident, reason))


class RecordingClient(Client):
    """A Client whose frames land in :attr:`inbox`, and ends in :attr:`disconnects`."""

    def __init__(self, host: str | None, port: int | None, **kwargs: Any) -> None:
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.handler_ends: queue.Queue[tuple[str | None, str]] = queue.Queue()
        self.disconnects: queue.Queue[tuple[str, str]] = queue.Queue()
        super().__init__(
            kwargs.pop("ident", CLIENT_ID),
            PeerRecorder,
            (self.inbox, self.handler_ends),
            host,
            port,
            **kwargs,
        )

    def on_disconnect(self, ident: str, reason: str) -> None:
        self.disconnects.put((ident, reason))
