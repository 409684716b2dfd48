"""Client(authkey=..., ssl_context=...) against a server played by hand with core's
ServerHandshake over a raw socket."""

from __future__ import annotations

import queue
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

from pymasep.comm.client import Client
from pymasep.comm.core import (
    ConnectionRejectedError,
    Frame,
    FrameKind,
    InvalidArgumentError,
    SocketHandlerQueue,
    encode_frame,
)
from pymasep.comm.core.auth import AUTH_FAILED
from pymasep.comm.core.handshake import ServerHandshake
from pymasep.comm.core.testing.peers import LOOPBACK, serve_one_client

pytestmark = pytest.mark.usefixtures("no_thread_left_behind")

KEY = b"k" * 32


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server((LOOPBACK, 0)) as sock:
        yield sock


def _serve_once(listener: socket.socket, answer: bytes) -> threading.Thread:
    """Accept one client, read what it sends first, answer ``answer``, close."""

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            conn.recv(65536)
            conn.sendall(answer)

    thread = threading.Thread(target=serve)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "answer",
    [
        # A server without a key: its plain hello proves nothing.
        b"\x89PMC\x01" + encode_frame(Frame.hello_frame("engine")),
        # A challenge whose proof was made with another key.
        b"\x89PMC\x01" + encode_frame(Frame(bytes(64) + b"engine", FrameKind.AUTH)),
    ],
    ids=["no key", "wrong proof"],
)
def test_a_client_with_a_key_refuses_a_server_that_cannot_prove_it(
    listener: socket.socket, answer: bytes
) -> None:
    server = _serve_once(listener, answer)
    client = Client(
        "p1",
        SocketHandlerQueue,
        (queue.Queue(),),
        LOOPBACK,
        listener.getsockname()[1],
        authkey=KEY,
        resume_window=0,  # the bytes of a client that offers nothing, which it answers
    )
    with pytest.raises(ConnectionRejectedError) as raised:
        client.connect(timeout=5)
    assert raised.value.reason == AUTH_FAILED
    assert client.connection_ids() == []
    server.join(5)


def test_an_honest_server_with_the_key_is_accepted(listener: socket.socket) -> None:
    served = serve_one_client(listener, ServerHandshake("engine", authkey=KEY), Frame(b"welcome"))
    inbox: queue.Queue[bytes] = queue.Queue()
    client = Client(
        "p1", SocketHandlerQueue, (inbox,), LOOPBACK, listener.getsockname()[1], authkey=KEY
    )
    client.connect(timeout=5)
    assert client.server_id == "engine"
    assert inbox.get(timeout=5) == b"welcome"
    client.close()
    served(5)


@pytest.mark.parametrize(
    "options",
    [
        {"wire": "legacy", "authkey": KEY},
        {"wire": "legacy", "ssl_context": ssl.create_default_context()},
        {"authkey": b""},
        {"authkey": "text"},
    ],
    ids=["legacy with a key", "legacy with TLS", "empty key", "text key"],
)
def test_options_that_cannot_work_fail_at_construction(options: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        Client("p1", SocketHandlerQueue, (queue.Queue(),), LOOPBACK, 1, **options)  # type: ignore[arg-type]
