"""Server and Client with a key, TLS, or both, over loopback (docs/security.md)."""

from __future__ import annotations

import json
import queue
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from pymasep.comm.client import Client
from pymasep.comm.core import (
    CommunicationConnectionError,
    ConnectionRejectedError,
    Frame,
    HandshakeError,
    SocketHandlerQueue,
)
from pymasep.comm.core.auth import AUTH_FAILED
from pymasep.comm.core.connection import CLOSED_BY_PEER
from pymasep.comm.core.testing.netns import LOOPBACK_SETUP, requires_netns, unshare_command
from pymasep.comm.core.testing.peers import wait_registered
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


# --- TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def over_tls(
    made: list[Any],
    inbox: queue.Queue[bytes],
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> tuple[Server, Client]:
    """The engine, and the interface p1 connected to it over TLS, both using the test CA."""
    server = start_server(made, inbox, ssl_context=server_tls)
    return server, connect(made, server, "p1", ssl_context=client_tls)


def test_tls_with_a_test_ca_exchanges(
    over_tls: tuple[Server, Client], inbox: queue.Queue[bytes]
) -> None:
    server, client = over_tls
    exchange(server, client, inbox)
    assert isinstance(server.get_connection("p1").socket, ssl.SSLSocket)
    assert isinstance(client.get_connection("engine").socket, ssl.SSLSocket)


def test_tls_carries_large_frames_and_streams_in_order(
    over_tls: tuple[Server, Client], inbox: queue.Queue[bytes]
) -> None:
    server, client = over_tls
    wait_registered(server, "p1")
    big = bytes(range(256)) * (4 * 1024 * 1024 // 256)  # 4 MiB: many TLS records
    handler = client.get_connection("engine")
    for index in range(2000):
        handler.send_frame_async(Frame(index.to_bytes(4, "big")))
    handler.send_frame_async(Frame(big))
    server.send_frame_to("p1", Frame(big))
    assert [inbox.get(timeout=20) for _ in range(2000)] == [
        index.to_bytes(4, "big") for index in range(2000)
    ]
    assert inbox.get(timeout=20) == big
    assert client.answers.get(timeout=20) == big  # type: ignore[attr-defined]


@pytest.mark.timeout(30)
def test_an_untrusting_client_and_a_plaintext_client_fail_while_the_server_serves(
    made: list[Any],
    inbox: queue.Queue[bytes],
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    server = start_server(made, inbox, ssl_context=server_tls, handshake_timeout=2.0)
    first = connect(made, server, "first", ssl_context=client_tls)
    wait_registered(server, "first")
    untrusting = ssl.create_default_context()  # the system's CAs: not ours
    with pytest.raises(HandshakeError, match="TLS"):
        connect(made, server, "untrusting", ssl_context=untrusting)
    with pytest.raises(CommunicationConnectionError):
        connect(made, server, "plaintext")
    exchange(server, first, inbox)
    exchange(server, connect(made, server, "second", ssl_context=client_tls), inbox)
    assert sorted(server.connection_ids()) == ["first", "second"]


def test_tls_with_client_certificates_and_a_key_together(
    made: list[Any], inbox: queue.Queue[bytes], ca: trustme.CA, client_tls: ssl.SSLContext
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_context)
    server = start_server(made, inbox, ssl_context=server_context, authkey=KEY)
    with_cert = ssl.create_default_context()
    ca.configure_trust(with_cert)
    ca.issue_cert("p1@example.test").configure_cert(with_cert)
    exchange(server, connect(made, server, "p1", ssl_context=with_cert, authkey=KEY), inbox)
    # The certificate alone is not enough, nor the key alone.
    with pytest.raises(ConnectionRejectedError):
        connect(made, server, "p2", ssl_context=with_cert, authkey=b"wrong")
    with pytest.raises(CommunicationConnectionError):
        connect(made, server, "p3", ssl_context=client_tls, authkey=KEY)
    assert server.connection_ids() == ["p1"]


class RecordsEnd(SocketHandlerQueue):
    """Queues frames, and how the connection ended on ``ended``."""

    def __init__(self, *args: Any) -> None:
        *base, self.ended = args
        super().__init__(*base)

    def on_disconnect(self, reason: str) -> None:
        self.ended.put(reason)


def test_a_graceful_close_over_tls_delivers_everything_and_reads_as_a_bye(
    made: list[Any], server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    inbox: queue.Queue[bytes] = queue.Queue()
    ended: queue.Queue[str] = queue.Queue()
    server = Server("engine", 2, RecordsEnd, (inbox, ended), LOOPBACK, 0, ssl_context=server_tls)
    made.append(server)
    server.wait_connection()
    client = connect(made, server, "p1", ssl_context=client_tls)
    wait_registered(server, "p1")
    handler = client.get_connection("engine")
    for index in range(500):
        handler.send_frame_async(Frame(b"%d" % index))
    client.close()
    assert [inbox.get(timeout=10) for _ in range(500)] == [b"%d" % i for i in range(500)]
    assert ended.get(timeout=10) == CLOSED_BY_PEER
    assert server.wait_for_connections(0, timeout=10)


@pytest.mark.timeout(60)
def test_the_trusted_engine_example_drops_the_forged_message() -> None:
    example = Path(__file__).resolve().parents[1] / "docs" / "examples" / "trusted_engine.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=50
    )
    assert done.returncode == 0, done.stderr
    lines = sorted(done.stdout.splitlines())
    assert lines == [
        "accepted: player-1 {'move': 'north'}",
        "dropped: player-2 sent a message as player-1",
    ]


# --- discovery: unauthenticated, and what follows ----------------------------------------

# Runs inside a fresh network namespace: each rogue server answers discovery as "engine";
# an interface with a key, or with TLS, finds it and refuses it.
_ROGUE_SCENARIO = r"""
import json, queue, ssl
import trustme
from pymasep.comm.client import Client
from pymasep.comm.core import CommunicationConnectionError, ConnectionRejectedError
from pymasep.comm.core import SocketHandlerQueue
from pymasep.comm.server import Server

KEY = b"the real key"
ours, theirs = trustme.CA(), trustme.CA()
trusting = ssl.create_default_context()
ours.configure_trust(trusting)
rogue_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
theirs.issue_cert("127.0.0.1").configure_cert(rogue_tls)

def attempt(rogue_options, client_options):
    with Server("engine", 4, SocketHandlerQueue, (queue.Queue(),), "", 0,
                wait_announcement=True, **rogue_options) as rogue:
        rogue.wait_announcement()
        rogue.wait_connection()
        client = Client("p1", SocketHandlerQueue, (queue.Queue(),), **client_options)
        found = client.search_server(timeout=1.0)
        try:
            client.connect(timeout=5)
        except ConnectionRejectedError as error:
            outcome = "rejected: " + error.reason
        except CommunicationConnectionError as error:
            outcome = "failed: " + type(error).__name__
        else:
            outcome = "connected"
        client.close()
        return {"found": [[s.id, list(s.requires)] for s in found],
                "outcome": outcome, "registered": rogue.connection_ids()}

print(json.dumps({
    "no key": attempt({}, {"authkey": KEY}),
    "wrong key": attempt({"authkey": b"a guess"}, {"authkey": KEY}),
    "untrusted certificate": attempt({"ssl_context": rogue_tls}, {"ssl_context": trusting}),
    "plaintext": attempt({}, {"ssl_context": trusting}),
}))
"""


@requires_netns
@pytest.mark.timeout(90)
def test_a_rogue_server_answering_discovery_cannot_complete_the_handshake() -> None:
    completed = subprocess.run(
        [
            *unshare_command(),
            "sh",
            "-c",
            f'{LOOPBACK_SETUP} && exec "$0" -c "$1"',
            sys.executable,
            _ROGUE_SCENARIO,
        ],
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["no key"]["found"] == [["engine", []]]
    assert result["no key"]["outcome"] == f"rejected: {AUTH_FAILED}"
    assert result["wrong key"]["found"] == [["engine", ["key"]]]
    assert result["wrong key"]["outcome"] == f"rejected: {AUTH_FAILED}"
    assert result["untrusted certificate"]["found"] == [["engine", ["tls"]]]
    assert result["untrusted certificate"]["outcome"] == "failed: HandshakeError"
    assert result["plaintext"]["outcome"] == "failed: HandshakeError"
    assert all(attempt["registered"] == [] for attempt in result.values())
