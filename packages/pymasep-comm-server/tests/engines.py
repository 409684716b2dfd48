"""The servers that the server's test modules make (through the ``make_server`` fixture)."""

from __future__ import annotations

import queue
from collections.abc import Callable

from pymasep.comm.core.testing.peers import RecordsDisconnects
from pymasep.comm.server import Server

ENGINE = "engine"
"""The id of every server the fixture makes."""


class Engine(RecordsDisconnects, Server):
    """Records ``on_disconnect(ident, reason)`` in ``ended``."""


MakeServer = Callable[..., Engine]
"""``make_server(handler_class, args, max_connection=40, **options)``: an Engine on
loopback, any free port, accepting; closed after the test."""

RecordingServer = Callable[..., Engine]
"""``recording_server(max_connection=40, **options)``: a ``make_server`` Engine whose
handlers are :class:`~pymasep.comm.core.testing.peers.PeerRecorder`: payloads go to the
``inbox`` fixture, ``(peer_id, reason)`` to ``ended``."""

Inbox = queue.Queue[bytes]
"""The ``inbox`` fixture: the payloads the handlers received."""

Ended = queue.Queue[tuple[str | None, str]]
"""The ``ended`` fixture: a PeerRecorder's ``(peer_id, reason)``."""
