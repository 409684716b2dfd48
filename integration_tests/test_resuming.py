"""Resuming a broken connection, on loopback, through a relay that the tests cut.

The relay (:class:`~pymasep.comm.core.testing.proxy.CuttableProxy`) resets both sides
of a connection, as a NAT or a firewall dropping a flow does, and can refuse new
connections for a while, as a network that is down does. The tests in network
namespaces (``test_resume_netns.py``) break connections with ``ss -K`` and a link that
goes down; these cover what needs no namespace: TLS and keys, frames sent during an
outage and their limits, ``close()`` during an outage, and an interface that connects
anew while its broken session is held.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pymasep.comm.client import Client
from pymasep.comm.core import (
    DisconnectCode,
    DisconnectReason,
    Frame,
    SendBufferFullError,
    SendLimits,
    SocketHandlerQueue,
    UnknownConnectionError,
)
from pymasep.comm.core.recording import Recording
from pymasep.comm.core.resume import DEFAULT_ACK_EVERY_BYTES
from pymasep.comm.core.tap import Tap
from pymasep.comm.core.testing.netns import child_main, requires_netns, run_isolated
from pymasep.comm.core.testing.proxy import CuttableProxy
from pymasep.comm.core.testing.tls import loopback_contexts
from pymasep.comm.server import Server
from pymasep.comm.server.announcer import Announcer

HERE = __file__
ENGINE = "engine"
KEY = bytes(range(32))
WAIT = 10.0


class Events(Tap):
    """A tap that queues the connection events a test waits for, and passes every
    event on to the communication's own tap (its recorder), if any."""

    def __init__(self, inner: Tap | None) -> None:
        self.inner = inner or Tap()
        self.resumed_peers: queue.Queue[str] = queue.Queue()
        self.broken_peers: queue.Queue[str] = queue.Queue()
        self.closed_reasons: queue.Queue[tuple[str, DisconnectReason]] = queue.Queue()

    def connected(self, *args: Any) -> None:
        self.inner.connected(*args)

    def frame_sent(self, *args: Any) -> None:
        self.inner.frame_sent(*args)

    def frame_received(self, *args: Any) -> None:
        self.inner.frame_received(*args)

    def bye(self, *args: Any) -> None:
        self.inner.bye(*args)

    def broken(self, peer_id: str, reason: DisconnectReason, monotonic: float, wall: float) -> None:
        self.inner.broken(peer_id, reason, monotonic, wall)
        self.broken_peers.put(peer_id)

    def resumed(self, peer_id: str, monotonic: float, wall: float) -> None:
        self.inner.resumed(peer_id, monotonic, wall)
        self.resumed_peers.put(peer_id)

    def closed(self, peer_id: str, reason: DisconnectReason, monotonic: float, wall: float) -> None:
        self.inner.closed(peer_id, reason, monotonic, wall)
        self.closed_reasons.put((peer_id, reason))


class Game:
    """An engine and one interface that reaches it through a cuttable relay."""

    def __init__(self, server: Server, client: Client, proxy: CuttableProxy) -> None:
        self.server, self.client, self.proxy = server, client, proxy
        self.engine_inbox: queue.Queue[bytes] = server.socket_handler_args[0]
        self.interface_inbox: queue.Queue[bytes] = client.socket_handler_args[0]
        assert isinstance(server.tap, Events) and isinstance(client.tap, Events)
        self.server_events: Events = server.tap
        self.client_events: Events = client.tap

    def break_down(self) -> None:
        """The network goes down: connections are reset, new ones fail, until
        ``proxy.refuse(False)``; returns once both sides hold the broken connection."""
        self.proxy.refuse()
        self.proxy.cut()
        assert self.server_events.broken_peers.get(timeout=WAIT) == "p1"
        assert self.client_events.broken_peers.get(timeout=WAIT) == ENGINE

    def wait_resumed(self) -> None:
        """Until both sides have resumed once more."""
        assert self.server_events.resumed_peers.get(timeout=WAIT) == "p1"
        assert self.client_events.resumed_peers.get(timeout=WAIT) == ENGINE


@contextmanager
def game(
    server_options: dict[str, Any] | None = None, client_options: dict[str, Any] | None = None
) -> Iterator[Game]:
    """An engine and interface ``p1`` that reaches it through a relay."""
    engine_inbox: queue.Queue[bytes] = queue.Queue()
    with Server(
        ENGINE, 4, SocketHandlerQueue, (engine_inbox,), "127.0.0.1", 0, **(server_options or {})
    ) as server:
        server.tap = Events(server.tap)
        server.wait_connection()
        assert server.port is not None
        with CuttableProxy(("127.0.0.1", server.port)) as proxy:
            interface_inbox: queue.Queue[bytes] = queue.Queue()
            with Client(
                "p1",
                SocketHandlerQueue,
                (interface_inbox,),
                "127.0.0.1",
                proxy.port,
                **(client_options or {}),
            ) as client:
                client.tap = Events(client.tap)
                client.connect()
                assert server.wait_for_peer("p1", WAIT)
                yield Game(server, client, proxy)


def drain(inbox: queue.Queue[bytes], count: int) -> list[bytes]:
    return [inbox.get(timeout=WAIT) for _ in range(count)]


def numbered(tag: str, count: int) -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(count)]


def _secured(secure: str) -> tuple[dict[str, Any], dict[str, Any]]:
    server: dict[str, Any] = {}
    client: dict[str, Any] = {}
    if "key" in secure:
        server["authkey"] = client["authkey"] = KEY
    if "tls" in secure:
        server["ssl_context"], client["ssl_context"] = loopback_contexts()
    return server, client


@pytest.mark.parametrize("secure", ["plain", "key", "tls and key"])
def test_frames_both_ways_arrive_once_and_in_order_across_three_cuts(secure: str) -> None:
    count, cuts = 3000, 3
    with game(*_secured(secure)) as match:

        def stream(send: Any, peer: str, tag: str) -> None:
            for payload in numbered(tag, count):
                send(peer, Frame(payload))

        senders = [
            threading.Thread(target=stream, args=(match.client.send_frame_to, ENGINE, "up")),
            threading.Thread(target=stream, args=(match.server.send_frame_to, "p1", "down")),
        ]
        for sender in senders:
            sender.start()
        received: list[bytes] = []
        for _ in range(cuts):
            # Cut once a share of the frames has arrived: frames are in flight both ways.
            received += drain(match.engine_inbox, count // (cuts + 1))
            match.proxy.cut()
            match.wait_resumed()
        for sender in senders:
            sender.join(WAIT)
        received += drain(match.engine_inbox, count - len(received))
        assert received == numbered("up", count)
        assert drain(match.interface_inbox, count) == numbered("down", count)
        assert match.engine_inbox.empty() and match.interface_inbox.empty()
        assert match.client.get_connection(ENGINE).stats.resumes == cuts
        assert match.server.get_connection("p1").stats.resumes == cuts
        # Neither side was told of an end.
        assert match.server_events.closed_reasons.empty()
        assert match.client_events.closed_reasons.empty()


def test_frames_sent_during_an_outage_wait_and_arrive_when_it_resumes() -> None:
    with game() as match:
        match.break_down()
        handler = match.client.get_connection(ENGINE)
        engine_side = match.server.get_connection("p1")
        for payload in numbered("up", 100):
            match.client.send_frame_to(ENGINE, Frame(payload))
        for payload in numbered("down", 100):
            match.server.send_frame_to("p1", Frame(payload))
        # Both sides hold the connection, registered, while the network is down.
        assert match.server.connection_ids() == ["p1"] and match.client.connection_ids() == [ENGINE]
        assert match.engine_inbox.empty()
        match.proxy.refuse(False)
        match.wait_resumed()
        assert drain(match.engine_inbox, 100) == numbered("up", 100)
        assert drain(match.interface_inbox, 100) == numbered("down", 100)
        assert not handler.resuming and not engine_side.resuming


def test_the_send_limits_and_their_policy_apply_to_frames_held_during_an_outage() -> None:
    limits = SendLimits(policy="raise", hard_limit=64 * 1024)
    with game({"send_limits": limits}, {"send_limits": limits}) as match:
        match.break_down()
        # 64 KiB may wait: three frames of 16 KiB (and their headers), not a fourth.
        frames = [Frame(bytes([n]) * 16 * 1024) for n in range(4)]
        for frame in frames[:3]:
            match.client.send_frame_to(ENGINE, frame)
        with pytest.raises(SendBufferFullError):
            match.client.send_frame_to(ENGINE, frames[3])
        match.proxy.refuse(False)
        match.wait_resumed()
        assert drain(match.engine_inbox, 3) == [frame.message for frame in frames[:3]]


def test_close_during_an_outage_ends_the_connection_at_once() -> None:
    with game() as match:
        match.break_down()
        handler = match.client.get_connection(ENGINE)
        match.client.close()
        assert handler.closed
        peer, reason = match.client_events.closed_reasons.get(timeout=WAIT)
        assert (peer, reason.code) == (ENGINE, DisconnectCode.CLOSED_LOCALLY)
        assert "resuming" in reason.detail


def test_an_interface_that_connects_anew_replaces_its_held_session() -> None:
    with game() as match:
        match.break_down()
        assert match.server.port is not None
        # The interface's process restarted: a new session, straight to the engine.
        inbox: queue.Queue[bytes] = queue.Queue()
        with Client("p1", SocketHandlerQueue, (inbox,), "127.0.0.1", match.server.port) as again:
            again.connect()
            peer, reason = match.server_events.closed_reasons.get(timeout=WAIT)
            assert (peer, reason.code) == ("p1", DisconnectCode.RESUME_EXPIRED)
            assert "same id" in reason.detail
            assert match.server.wait_for_peer("p1", WAIT)
            match.server.send_frame_to("p1", Frame(b"welcome back"))
            assert inbox.get(timeout=WAIT) == b"welcome back"


def test_a_recording_holds_the_break_and_the_resume_and_each_frame_once(tmp_path: Path) -> None:
    with game({"record": tmp_path / "engine.jsonl"}, {"record": tmp_path / "p1.jsonl"}) as match:
        match.break_down()
        for payload in numbered("up", 50):  # held during the outage, sent after it
            match.client.send_frame_to(ENGINE, Frame(payload))
        match.proxy.refuse(False)
        match.wait_resumed()
        assert drain(match.engine_inbox, 50) == numbered("up", 50)
    for name, peer, direction in (("p1", ENGINE, "out"), ("engine", "p1", "in")):
        records = list(Recording(tmp_path / f"{name}.jsonl"))
        events = [r.event for r in records if not r.is_frame]
        assert events == ["connected", "broken", "resumed", "bye", "closed"], name
        frames = [r.payload for r in records if r.is_frame and r.direction == direction]
        assert frames == numbered("up", 50), name
        assert all(r.peer == peer for r in records)


def scenario_rediscovery() -> dict[str, Any]:
    """In a namespace of the test's own: the interface found the engine by discovery at
    a first address; when the connection breaks, that address is gone and the engine
    answers discovery at a second one, where the interface resumes."""
    inbox: queue.Queue[bytes] = queue.Queue()
    with Server(ENGINE, 4, SocketHandlerQueue, (inbox,), "127.0.0.1", 0) as server:
        server.tap = Events(server.tap)
        server.wait_connection()
        assert server.port is not None
        target = ("127.0.0.1", server.port)
        with CuttableProxy(target) as first, CuttableProxy(target) as second:
            announcer = Announcer(ENGINE, first.port, interface="127.0.0.1")
            announcer.start()
            client = Client(
                "p1", SocketHandlerQueue, (queue.Queue(),), discovery_interface="127.0.0.1"
            )
            client.tap = Events(client.tap)
            with client:
                client.connect()
                announcer.stop()
                match = Game(server, client, first)
                match.break_down()  # the first address refuses from now on
                with Announcer(ENGINE, second.port, interface="127.0.0.1"):
                    match.wait_resumed()
                client.send_frame_to(ENGINE, Frame(b"found you"))
                return {
                    "received": inbox.get(timeout=WAIT).decode(),
                    "connections": [first.connections, second.connections],
                    "port": client.port == second.port,
                }


@requires_netns
def test_an_interface_that_found_the_engine_by_discovery_finds_it_again_to_resume() -> None:
    result = run_isolated(HERE, "scenario_rediscovery")
    assert result == {"received": "found you", "connections": [1, 1], "port": True}


if __name__ == "__main__":
    child_main(globals())


def test_acknowledgements_release_what_the_peer_received() -> None:
    with game() as match:
        session = match.client.get_connection(ENGINE).connection.resume
        assert session is not None
        frame = Frame(bytes(64 * 1024))
        count = DEFAULT_ACK_EVERY_BYTES // len(frame.message) + 1  # past the bytes rule
        for _ in range(count):
            match.client.send_frame_to(ENGINE, frame)
        assert len(drain(match.engine_inbox, count)) == count
        # The engine writes its ACK at the end of the read turn that made it due. The
        # first round trip's request may still come in that turn; the second's cannot
        # (it is sent after the first reply), so its reply follows the ACK on the stream.
        for request in (b"first", b"second"):
            match.client.send_frame_to(ENGINE, Frame(request))
            assert drain(match.engine_inbox, 1) == [request]
            match.server.send_frame_to("p1", Frame(request))
            assert match.interface_inbox.get(timeout=WAIT) == request
        assert session.log.acked > 0
        assert session.log.unacked_bytes < DEFAULT_ACK_EVERY_BYTES


def test_when_the_window_passes_both_sides_end_the_connection_with_its_own_reason() -> None:
    window = {"resume_window": 0.5}
    with game(window, window) as match:
        match.client.send_frame_to(ENGINE, Frame(b"before"))
        assert drain(match.engine_inbox, 1) == [b"before"]
        match.break_down()  # and the network stays down
        match.client.send_frame_to(ENGINE, Frame(b"held, then dropped"))
        for events, peer in ((match.server_events, "p1"), (match.client_events, ENGINE)):
            ended, reason = events.closed_reasons.get(timeout=WAIT)
            assert (ended, reason.code) == (peer, DisconnectCode.RESUME_EXPIRED)
        assert match.server.wait_for_peer("p1", WAIT, connected=False)
        # The interface drops what the engine never acknowledged: the frame held during
        # the outage, and the one before it (delivered; its ACK was not due yet).
        assert "2 frames" in reason.detail
        with pytest.raises(UnknownConnectionError):
            match.server.send_frame_to("p1", Frame(b"too late"))


def test_an_engine_that_restarted_refuses_the_resume_and_the_interface_says_why() -> None:
    with game() as match:
        match.break_down()
        port = match.server.port
        assert port is not None
        match.server.close()  # the engine's process ends; a new one takes its port
        with Server(ENGINE, 4, SocketHandlerQueue, (queue.Queue(),), "127.0.0.1", port) as again:
            again.wait_connection()
            match.proxy.refuse(False)
            peer, reason = match.client_events.closed_reasons.get(timeout=WAIT)
            assert (peer, reason.code) == (ENGINE, DisconnectCode.RESUME_REFUSED)
            assert "does not know this session" in reason.detail
            assert again.connection_ids() == []  # no session started in silence


@pytest.mark.parametrize("side", ["engine", "interface"])
def test_a_window_of_0_on_either_side_turns_resuming_off(side: str) -> None:
    off = {"resume_window": 0}
    with game(off if side == "engine" else {}, off if side == "interface" else {}) as match:
        match.proxy.cut()
        for events, peer in ((match.server_events, "p1"), (match.client_events, ENGINE)):
            ended, reason = events.closed_reasons.get(timeout=WAIT)
            assert (ended, reason.code) == (peer, DisconnectCode.CONNECTION_LOST)
            assert events.broken_peers.empty()  # never held for a resume
