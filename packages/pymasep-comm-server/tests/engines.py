"""The servers that the server's test modules make (through the ``make_server`` fixture)."""

from __future__ import annotations

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
