"""Server(authkey=..., ssl_context=...) against raw-socket clients made of core's
ClientHandshake."""

from __future__ import annotations

import logging
import queue
import re
import socket
import ssl

import pytest
from engines import Inbox, MakeServer, RecordingServer

from pymasep.comm.core import (
    ConnectionRejectedError,
    Frame,
    FrameKind,
    InvalidArgumentError,
    SocketHandler,
    SocketHandlerPeerQueue,
    encode_frame,
)
from pymasep.comm.core.auth import AUTH_FAILED
from pymasep.comm.core.handshake import ClientHandshake
from pymasep.comm.core.testing.peers import (
    LOOPBACK,
    RawClient,
    legacy_frame,
    read_to_eof,
    wait_registered,
)
from pymasep.comm.core.testing.tls import loopback_contexts
from pymasep.comm.server import Server

pytestmark = pytest.mark.usefixtures("no_thread_left_behind")

KEY = b"shared-key-" + bytes(range(21))

TlsPair = tuple[ssl.SSLContext, ssl.SSLContext]


def test_the_same_key_connects_and_exchanges(
    recording_server: RecordingServer, inbox: Inbox
) -> None:
    server = recording_server(authkey=KEY)
    client = RawClient(server.port, "p1", authkey=KEY)
    wait_registered(server, "p1")
    client.send(b"hello engine")
    assert inbox.get(timeout=5) == b"hello engine"
    server.send_frame_to("p1", Frame(b"hi p1"))
    assert client.recv_data() == b"hi p1"
    client.sock.close()


@pytest.mark.parametrize("authkey", [b"wrong key", None], ids=["wrong key", "no key"])
def test_a_wrong_key_or_none_is_refused_never_registered_and_others_still_connect(
    recording_server: RecordingServer, caplog: pytest.LogCaptureFixture, authkey: bytes | None
) -> None:
    caplog.set_level(logging.DEBUG, logger="pymasep.comm")
    server = recording_server(authkey=KEY)
    with pytest.raises(ConnectionRejectedError) as raised:
        RawClient(server.port, "intruder", authkey=authkey)
    assert raised.value.reason == AUTH_FAILED
    honest = RawClient(server.port, "p1", authkey=KEY)
    wait_registered(server, "p1")
    assert server.connection_ids() == ["p1"]
    honest.sock.close()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert KEY.decode("latin-1") not in logged and repr(KEY) not in logged
    # At the default level (WARNING), with the address the attempt came from.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    refused = rf"refusing \('{LOOPBACK}', \d+\): .*{AUTH_FAILED}"
    assert any(re.match(refused, warning) for warning in warnings), warnings


def test_a_forged_proof_is_refused_with_the_same_reason(recording_server: RecordingServer) -> None:
    # A client that ignores the server's proof and answers with garbage of the right size.
    server = recording_server(authkey=KEY)
    handshake = ClientHandshake("intruder", authkey=b"wrong")
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as sock:
        sock.sendall(handshake.bytes_to_send())
        sock.recv(65536)  # the challenge
        sock.sendall(encode_frame(Frame(bytes(32), FrameKind.AUTH)))
        # The preamble came with the challenge; the refusal follows it alone.
        assert read_to_eof(sock) == encode_frame(Frame.refuse_frame(AUTH_FAILED))
    assert server.connection_ids() == []


def test_per_interface_keys_the_key_of_p1_cannot_connect_as_p2(
    recording_server: RecordingServer,
) -> None:
    keys = {"p1": b"key of p1", "p2": b"key of p2"}
    server = recording_server(authkey=keys)
    with pytest.raises(ConnectionRejectedError):
        RawClient(server.port, "p2", authkey=keys["p1"])
    with pytest.raises(ConnectionRejectedError):
        RawClient(server.port, "p3", authkey=keys["p1"])  # an id without a key
    p1 = RawClient(server.port, "p1", authkey=keys["p1"])
    wait_registered(server, "p1")
    handler = server.get_connection("p1")
    assert handler.peer_id == "p1"
    assert server.connection_ids() == ["p1"]
    p1.sock.close()


def test_a_callable_key_decides_per_id_and_none_refuses(recording_server: RecordingServer) -> None:
    asked: list[str] = []

    def key_for(ident: str) -> bytes | None:
        asked.append(ident)
        return KEY if ident.startswith("player-") else None

    server = recording_server(authkey=key_for)
    with pytest.raises(ConnectionRejectedError):
        RawClient(server.port, "spectator", authkey=KEY)
    player = RawClient(server.port, "player-1", authkey=KEY)
    wait_registered(server, "player-1")
    assert asked == ["spectator", "player-1"]
    player.sock.close()


def test_a_legacy_hello_to_an_authenticated_server_is_not_registered(
    recording_server: RecordingServer,
) -> None:
    server = recording_server(authkey=KEY)
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as legacy:
        legacy.sendall(legacy_frame(b"old-interface"))
        assert read_to_eof(legacy) == b""  # 0.2 has no way to hear why
    honest = RawClient(server.port, "p1", authkey=KEY)
    wait_registered(server, "p1")
    assert server.connection_ids() == ["p1"]
    honest.sock.close()


def test_a_client_with_a_key_refuses_a_server_without_one(
    recording_server: RecordingServer,
) -> None:
    server = recording_server()
    with pytest.raises(ConnectionRejectedError, match=AUTH_FAILED):
        RawClient(server.port, "p1", authkey=KEY)
    assert server.connection_ids() == []


def test_a_bad_authkey_fails_at_construction() -> None:
    with pytest.raises(InvalidArgumentError):
        Server("engine", 1, SocketHandler, (), LOOPBACK, 0, authkey="not bytes")  # type: ignore[arg-type]


@pytest.mark.timeout(20)
def test_a_client_that_never_proves_is_closed_after_the_handshake_timeout(
    recording_server: RecordingServer,
) -> None:
    server = recording_server(authkey=KEY, handshake_timeout=0.3)
    handshake = ClientHandshake("slow", authkey=KEY)
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as silent:
        silent.sendall(handshake.bytes_to_send())
        assert read_to_eof(silent)  # the challenge, then the close at the deadline
    assert server.connection_ids() == []


def test_the_peer_queue_handler_tells_the_engine_which_authenticated_id_sent_each_frame(
    make_server: MakeServer,
) -> None:
    keys = {"p1": b"key of p1", "p2": b"key of p2"}
    inbox: queue.Queue[tuple[str | None, bytes]] = queue.Queue()
    server = Server("engine", 4, SocketHandlerPeerQueue, (inbox,), LOOPBACK, 0, authkey=keys)
    try:
        server.wait_connection()
        p1 = RawClient(server.port, "p1", authkey=keys["p1"])
        p2 = RawClient(server.port, "p2", authkey=keys["p2"])
        wait_registered(server, "p1")
        wait_registered(server, "p2")
        p2.send(b"I am p1, honest")  # the payload may claim anything
        p1.send(b"from p1")
        received = {inbox.get(timeout=5), inbox.get(timeout=5)}
        assert received == {("p2", b"I am p1, honest"), ("p1", b"from p1")}
        p1.sock.close()
        p2.sock.close()
    finally:
        server.close()


@pytest.fixture(scope="module")
def tls_pair() -> TlsPair:
    """(server, client) contexts from a throwaway CA."""
    return loopback_contexts()


@pytest.mark.timeout(20)
def test_a_client_silent_during_the_tls_handshake_is_closed_at_the_deadline_and_others_served(
    recording_server: RecordingServer, inbox: Inbox, tls_pair: TlsPair
) -> None:
    server = recording_server(ssl_context=tls_pair[0], handshake_timeout=0.5)
    with socket.create_connection((LOOPBACK, server.port), timeout=10) as silent:
        # A TLS client takes its turn while the silent one holds its handshake open.
        sock = socket.create_connection((LOOPBACK, server.port), timeout=10)
        with tls_pair[1].wrap_socket(sock, server_hostname=LOOPBACK) as tls:
            handshake = ClientHandshake("p1")
            tls.sendall(handshake.bytes_to_send())
            while not handshake.receive_data(tls.recv(65536)):
                pass
            wait_registered(server, "p1")
            tls.sendall(encode_frame(Frame(b"over tls")))
            assert inbox.get(timeout=5) == b"over tls"
            assert read_to_eof(silent) == b""  # closed at the deadline
            assert server.connection_ids() == ["p1"]


def test_a_plaintext_hello_to_a_tls_server_is_not_registered(
    recording_server: RecordingServer, tls_pair: TlsPair
) -> None:
    server = recording_server(ssl_context=tls_pair[0])
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as plaintext:
        plaintext.sendall(ClientHandshake("p1").bytes_to_send())
        answer = read_to_eof(plaintext)
    assert not answer.startswith(b"\x89PMC")  # a TLS alert at most, never a hello
    assert server.connection_ids() == []
