"""Server and Client with a key, TLS, or both, over loopback (docs/security.md)."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest
from peers import wait_registered

from pymasep.comm.client import Client
from pymasep.comm.core import ConnectionRejectedError, Frame, SocketHandlerQueue
from pymasep.comm.core.auth import AUTH_FAILED
from pymasep.comm.server import Server

LOOPBACK = "127.0.0.1"
KEY = b"a shared key of 32 bytes........"


@pytest.fixture
def inbox() -> queue.Queue[bytes]:
    return queue.Queue()


@pytest.fixture
def made() -> Iterator[list[Any]]:
    """Servers and clients to close after the test, clients first."""
    things: list[Any] = []
    yield things
    for thing in reversed(things):
        thing.close()


def start_server(made: list[Any], inbox: queue.Queue[bytes], **options: Any) -> Server:
    server = Server("engine", 8, SocketHandlerQueue, (inbox,), LOOPBACK, 0, **options)
    made.append(server)
    server.wait_connection()
    return server


def connect(made: list[Any], server: Server, ident: str, **options: Any) -> Client:
    answers: queue.Queue[bytes] = queue.Queue()
    client = Client(ident, SocketHandlerQueue, (answers,), LOOPBACK, server.port, **options)
    client.answers = answers  # type: ignore[attr-defined]
    made.append(client)
    client.connect(timeout=10)
    return client


def exchange(server: Server, client: Client, inbox: queue.Queue[bytes]) -> None:
    wait_registered(server, client.id)
    client.send_frame_to("engine", Frame(b"to the engine"))
    assert inbox.get(timeout=10) == b"to the engine"
    server.send_frame_to(client.id, Frame(b"to " + client.id.encode()))
    assert client.answers.get(timeout=10) == b"to " + client.id.encode()  # type: ignore[attr-defined]


def test_the_same_key_connects_and_exchanges(made: list[Any], inbox: queue.Queue[bytes]) -> None:
    server = start_server(made, inbox, authkey=KEY)
    exchange(server, connect(made, server, "p1", authkey=KEY), inbox)


@pytest.mark.parametrize("authkey", [b"another key", None], ids=["wrong key", "no key"])
def test_a_wrong_or_missing_key_is_refused_and_the_honest_one_still_connects(
    made: list[Any], inbox: queue.Queue[bytes], authkey: bytes | None
) -> None:
    server = start_server(made, inbox, authkey=KEY)
    with pytest.raises(ConnectionRejectedError) as raised:
        connect(made, server, "intruder", authkey=authkey)
    assert raised.value.reason == AUTH_FAILED
    exchange(server, connect(made, server, "p1", authkey=KEY), inbox)
    assert server.connection_ids() == ["p1"]


def test_a_client_with_a_key_refuses_a_server_without_one(
    made: list[Any], inbox: queue.Queue[bytes]
) -> None:
    server = start_server(made, inbox)
    with pytest.raises(ConnectionRejectedError, match=AUTH_FAILED):
        connect(made, server, "p1", authkey=KEY)
    assert server.connection_ids() == []


def test_per_interface_keys_bind_the_id(made: list[Any], inbox: queue.Queue[bytes]) -> None:
    keys = {"p1": b"key of p1", "p2": b"key of p2"}
    server = start_server(made, inbox, authkey=keys)
    with pytest.raises(ConnectionRejectedError):
        connect(made, server, "p2", authkey=keys["p1"])
    exchange(server, connect(made, server, "p2", authkey=keys["p2"]), inbox)
    assert server.get_connection("p2").peer_id == "p2"
