"""Connections between pymasep 0.2 and pymasep-comm over loopback, in both directions.

A 0.2 Client against our Server, and our ``Client(wire="legacy")`` against a 0.2 Server:
they connect, exchange frames both ways, and end cleanly on either side's bye.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
from harness import Peer
from ours import LOOPBACK, SERVER_ID, RecordingClient, RecordingServer

from pymasep.comm.core import EncodeError, Frame, FrameTooLargeError, ProtocolError, Wire
from pymasep.comm.core.socket_handler import CLOSED_BY_PEER

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0


def _b64(event: dict[str, object]) -> bytes:
    return base64.b64decode(str(event["b64"]))


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        server.wait_connection()
        yield server


def _peer_client(server: RecordingServer, ident: str) -> Peer:
    peer = Peer(["client", "--id", ident, "--host", LOOPBACK, "--port", str(server.port)])
    try:
        assert peer.expect("connected")["server_id"] == SERVER_ID
        assert server.wait_for_connections(1, WAIT)
    except BaseException:
        peer.close()
        raise
    return peer


@pytest.fixture
def peer_client(server: RecordingServer) -> Iterator[Peer]:
    with _peer_client(server, "peer02-client") as peer:
        yield peer


@pytest.fixture
def peer_server() -> Iterator[tuple[Peer, int]]:
    with Peer(["server", "--id", "peer02-server"]) as peer:
        yield peer, int(peer.expect("ready")["port"])


@pytest.fixture
def client(peer_server: tuple[Peer, int]) -> Iterator[RecordingClient]:
    peer, port = peer_server
    client = RecordingClient(LOOPBACK, port, wire="legacy")
    client.connect(timeout=WAIT)
    peer.order("wait_clients", count=1)
    assert peer.expect("clients")["ids"] == ["ours-client"]
    yield client
    client.close()


# -- a 0.2 Client, our Server ------------------------------------------------------------


def test_02_client_connects_to_our_server(server: RecordingServer, peer_client: Peer) -> None:
    assert server.connection_ids() == ["peer02-client"]
    assert server.get_connection("peer02-client").wire is Wire.LEGACY


def test_02_client_and_our_server_exchange_both_ways(
    server: RecordingServer, peer_client: Peer
) -> None:
    sent_by_02 = [b"ping from 0.2", bytes(range(256)), b"x" * 60_000, "\u00e9".encode()]
    for payload in sent_by_02:
        peer_client.send(payload)
        assert peer_client.expect("sent", "failed")["event"] == "sent"
    assert [server.inbox.get(timeout=WAIT) for _ in sent_by_02] == sent_by_02

    sent_by_us = [b"pong from pymasep-comm", bytes(range(256)), b"y" * 60_000, b"\x00"]
    for payload in sent_by_us:
        server.send_frame_to("peer02-client", Frame(payload))
    assert [_b64(peer_client.expect("frame")) for _ in sent_by_us] == sent_by_us


def test_stream_of_frames_reaches_02_in_order(server: RecordingServer, peer_client: Peer) -> None:
    # Our sender coalesces a burst into large writes; 0.2 must still split every frame.
    payloads = [f"frame {i:04d} ".encode() * (1 + i % 40) for i in range(500)]
    for payload in payloads:
        server.send_frame_to("peer02-client", Frame(payload))
    assert [_b64(peer_client.expect("frame")) for _ in payloads] == payloads
    for payload in payloads[:100]:
        peer_client.send(payload)
    assert [server.inbox.get(timeout=WAIT) for _ in range(100)] == payloads[:100]


def test_02_client_bye_unregisters_it(server: RecordingServer) -> None:
    with _peer_client(server, "peer02-bye") as peer:
        peer.order("bye")
        assert peer.expect("handler_ended")["reason"] == "bye"
        assert server.disconnects.get(timeout=WAIT) == ("peer02-bye", CLOSED_BY_PEER)
        assert server.handler_ends.get(timeout=WAIT) == ("peer02-bye", CLOSED_BY_PEER)
        assert not server.is_connection_registered("peer02-bye")
        assert server.connection_ids() == []
    # The id is free again: the same 0.2 program can come back.
    with _peer_client(server, "peer02-bye") as peer:
        peer.send(b"back")
        assert server.inbox.get(timeout=WAIT) == b"back"


def test_our_server_close_ends_the_02_client_with_a_bye(server: RecordingServer) -> None:
    peer = _peer_client(server, "peer02-closed")
    with peer:
        started = time.monotonic()
        server.close(timeout=2.0)
        elapsed = time.monotonic() - started
        # 0.2 never closes its socket: our close waits for it, but no longer than asked.
        assert elapsed < 5.0
        assert peer.expect("handler_ended")["reason"] == "bye"
        assert server.disconnects.get(timeout=WAIT)[0] == "peer02-closed"


def test_our_full_server_refuses_a_02_client() -> None:
    with RecordingServer(max_connection=1) as full:
        full.wait_connection()
        with _peer_client(full, "peer02-first"):
            with Peer(
                ["client", "--id", "peer02-second", "--host", LOOPBACK, "--port", str(full.port)]
            ) as second:
                # The legacy wire cannot say why: the connection just closes, which 0.2
                # reads as a hello from a server with an empty id, then as end of stream.
                # 0.2's handler thread may see the end before its main thread prints
                # that it connected: take the two events in either order.
                events = [second.expect("connected", "handler_ended") for _ in range(2)]
                by_name = {event["event"]: event for event in events}
                assert by_name["connected"]["server_id"] == ""
                assert by_name["handler_ended"]["reason"] == "eof"
            assert full.connection_ids() == ["peer02-first"]


def test_frame_over_64_kib_is_refused_on_the_legacy_wire(
    server: RecordingServer, peer_client: Peer
) -> None:
    with pytest.raises(FrameTooLargeError):
        server.send_frame_to("peer02-client", Frame(bytes(65_536)))
    with pytest.raises(EncodeError):
        server.send_frame_to("peer02-client", Frame(b"BYE"))  # 0.2 would read a bye
    server.send_frame_to("peer02-client", Frame(bytes(65_535)))  # the largest that fits
    assert _b64(peer_client.expect("frame")) == bytes(65_535)
    assert server.is_connection_registered("peer02-client")


# -- our Client (legacy wire), a 0.2 Server ----------------------------------------------


def test_our_legacy_client_connects_to_02_server(client: RecordingClient) -> None:
    assert client.server_id == "peer02-server"
    assert client.get_connection("peer02-server").wire is Wire.LEGACY


def test_our_client_and_02_server_exchange_both_ways(
    peer_server: tuple[Peer, int], client: RecordingClient
) -> None:
    peer, _ = peer_server
    sent_by_us = [b"hello 0.2", bytes(range(256)), b"z" * 60_000]
    for payload in sent_by_us:
        client.send_frame_to("peer02-server", Frame(payload))
    assert [_b64(peer.expect("frame")) for _ in sent_by_us] == sent_by_us
    sent_by_02 = [b"hello pymasep-comm", bytes(range(255, -1, -1)), b"w" * 60_000]
    for payload in sent_by_02:
        peer.send(payload)
    assert [client.inbox.get(timeout=WAIT) for _ in sent_by_02] == sent_by_02


def test_02_server_bye_ends_our_client(
    peer_server: tuple[Peer, int], client: RecordingClient
) -> None:
    peer, _ = peer_server
    peer.order("bye", to="ours-client")
    assert peer.expect("handler_ended")["reason"] == "bye"
    assert client.disconnects.get(timeout=WAIT) == ("peer02-server", CLOSED_BY_PEER)
    assert not client.is_connection_registered("peer02-server")


def test_our_client_close_sends_a_bye_to_02(
    peer_server: tuple[Peer, int], client: RecordingClient
) -> None:
    peer, _ = peer_server
    started = time.monotonic()
    client.close(timeout=2.0)
    assert time.monotonic() - started < 5.0
    assert peer.expect("handler_ended")["reason"] == "bye"
    assert client.disconnects.get(timeout=WAIT)[0] == "peer02-server"


def test_v1_client_gets_a_hint_from_a_02_server(peer_server: tuple[Peer, int]) -> None:
    _, port = peer_server
    client = RecordingClient(LOOPBACK, port)  # the default wire, v1
    with pytest.raises(ProtocolError, match="wire='legacy'"):
        client.connect(timeout=WAIT)
    assert client.connection_ids() == []


def test_frame_over_64_kib_is_refused_by_our_legacy_client(
    peer_server: tuple[Peer, int], client: RecordingClient
) -> None:
    peer, _ = peer_server
    with pytest.raises(FrameTooLargeError):
        client.send_frame_to("peer02-server", Frame(bytes(100_000)))
    client.send_frame_to("peer02-server", Frame(b"still here"))
    assert _b64(peer.expect("frame")) == b"still here"
