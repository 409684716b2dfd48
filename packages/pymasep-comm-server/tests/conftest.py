"""Loads the shared fixtures and markers of pymasep-comm's test suites
(:mod:`pymasep.comm.core.testing.plugin`), and makes servers for the server's tests."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
from engines import ENGINE, Ended, Engine, Inbox, MakeServer, RecordingServer

from pymasep.comm.core import SocketHandler
from pymasep.comm.core.testing.peers import LOOPBACK, PeerRecorder

pytest_plugins = ["pymasep.comm.core.testing.plugin"]


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    """``make_server(handler_class, args, max_connection=40, **options)``, accepting."""
    servers: list[Engine] = []

    def make(
        handler_class: type[SocketHandler] = SocketHandler,
        args: tuple[Any, ...] = (),
        max_connection: int = 40,
        **options: Any,
    ) -> Engine:
        server = Engine(ENGINE, max_connection, handler_class, args, LOOPBACK, 0, **options)
        servers.append(server)
        server.wait_connection()
        return server

    yield make
    for server in servers:
        server.close(timeout=0.5)


@pytest.fixture
def recording_server(make_server: MakeServer, inbox: Inbox, ended: Ended) -> RecordingServer:
    """``recording_server(max_connection=40, **options)``: a server whose handlers record
    into ``inbox`` and ``ended``."""
    return functools.partial(make_server, PeerRecorder, (inbox, ended))
