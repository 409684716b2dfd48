"""The tap (pymasep.comm.core.tap): what a Connection tells it, without sockets; and that
the threaded driver, whose shortcuts skip the Connection's methods, still tells it all."""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from typing import Any

import pytest

from pymasep.comm.core import (
    CLOSED_BY_PEER,
    Connection,
    DisconnectReason,
    Frame,
    SocketHandler,
    Wire,
    encode_frame,
)
from pymasep.comm.core.handshake import ClientHandshake, ServerHandshake
from pymasep.comm.core.tap import SENT_BATCH, Tap
from pymasep.comm.core.testing.peers import RawPeer


class Events(Tap):
    """Keeps every event as a tuple, its kind then the arguments of the Tap method that
    told it, without the clocks (checked once, apart)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.clocks: list[tuple[float, float]] = []
        self.changed = threading.Condition()

    def _add(self, *event: Any) -> None:
        *rest, monotonic, wall = event
        with self.changed:
            self.events.append(tuple(rest))
            self.clocks.append((monotonic, wall))
            self.changed.notify_all()

    def connected(self, *args: Any) -> None:
        self._add("connected", *args)

    def frame_sent(self, *args: Any) -> None:
        self._add("sent", *args)

    def frame_received(self, *args: Any) -> None:
        self._add("received", *args)

    def bye(self, *args: Any) -> None:
        self._add("bye", *args)

    def closed(self, *args: Any) -> None:
        self._add("closed", *args)

    def wait_for(self, kind: str, timeout: float = 5) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: any(e[0] == kind for e in self.events), timeout)


def data(payload: bytes, wire: Wire = Wire.V1) -> bytes:
    return encode_frame(Frame(payload), wire)


@pytest.mark.disable_socket
class TestConnection:
    @pytest.mark.parametrize("key", [None, b"k" * 32])
    def test_the_tap_sees_the_opening_with_the_frames_that_came_with_the_hello(
        self, key: bytes | None
    ) -> None:
        client = ClientHandshake("iface", authkey=key)
        server = ServerHandshake("engine", authkey=key)
        outgoing = client.bytes_to_send()
        while not server.receive_data(outgoing):
            client.receive_data(server.data_to_send())
            outgoing = client.data_to_send()
        client.receive_data(server.data_to_send() + server.accept_bytes())
        tap = Events()
        connection = Connection.from_handshake(client, tap=tap)
        connection.pending_frames.append(Frame(b"early"))
        connection.opened(("127.0.0.1", 4242), tls=True)
        assert tap.events == [
            ("connected", "engine", ("127.0.0.1", 4242), Wire.V1, key is not None, True),
            ("received", "engine", b"early", 5 + 5),
        ]
        assert Connection.from_handshake(server).authenticated is (key is not None)

    def test_frames_both_ways_a_bye_and_one_end(self) -> None:
        tap = Events()
        connection = Connection(Wire.V1, "peer", tap=tap)
        connection.encode(Frame(b"x" * 20000))  # a large frame: header and payload apart
        connection.encode(Frame(b"ask"))
        stream = data(b"one") + data(b"two") + encode_frame(Frame.bye_frame())
        for i in range(len(stream)):  # byte by byte: each frame is told once, whole
            connection.receive_data(stream[i : i + 1], 0)
            if connection.bye_received:  # the driver stops reading there
                break
        connection.finish(connection.bye_reason())
        connection.finish(DisconnectReason("connection lost"))  # the first reason wins
        assert tap.events == [
            ("sent", "peer", b"x" * 20000, 20005),
            ("sent", "peer", b"ask", 8),
            ("received", "peer", b"one", 8),
            ("received", "peer", b"two", 8),
            ("bye", "peer", "in"),
            ("closed", "peer", CLOSED_BY_PEER),
        ]
        monotonic = [m for m, _ in tap.clocks]
        assert monotonic == sorted(monotonic)
        assert all(wall > 1.7e9 for _, wall in tap.clocks)

    def test_frames_sent_are_told_at_once_in_order_with_the_time_each_was_handed(self) -> None:
        class Tells(Tap):
            def __init__(self) -> None:
                self.tells: list[tuple[Any, ...]] = []

            def frames_sent(
                self, peer_id: str, frames: Any, header_size: int, mono: Any, offset: float
            ) -> None:
                self.tells.append(
                    ("sent", peer_id, [f.message for f in frames], header_size, mono, offset)
                )

            def frame_received(self, peer_id: str, payload: bytes, *args: Any) -> None:
                self.tells.append(("received", peer_id, payload))

        tap = Tells()
        connection = Connection(Wire.V1, "peer", tap=tap)
        before = time.monotonic()
        for payload in (b"one", b"two", b"three"):
            connection.encode(Frame(payload))
        assert tap.tells == []  # kept, not told one by one
        connection.tell_sent()
        connection.tell_sent()  # nothing more to tell
        [(_, peer, payloads, header, handed, offset)] = tap.tells
        assert (peer, payloads, header) == ("peer", [b"one", b"two", b"three"], 5)
        assert before <= handed[0] <= handed[1] <= handed[2] <= time.monotonic()
        assert offset == pytest.approx(time.time() - time.monotonic(), abs=0.5)
        connection.encode(Frame(b"four"))
        connection.receive_data(data(b"answer"), 0)  # told after the frame sent before it
        assert [tell[:3] for tell in tap.tells[1:]] == [
            ("sent", "peer", [b"four"]),
            ("received", "peer", b"answer"),
        ]

    def test_frames_after_a_bye_in_the_same_read_are_not_told(self) -> None:
        tap = Events()
        connection = Connection(Wire.V1, "peer", tap=tap)
        stream = data(b"last") + encode_frame(Frame.bye_frame()) + data(b"not delivered")
        assert connection.receive_data(stream, 0) == [Frame(b"last")]
        assert tap.events == [("received", "peer", b"last", 9), ("bye", "peer", "in")]

    def test_the_frames_of_one_read_are_told_at_once(self) -> None:
        class Reads(Tap):
            def __init__(self) -> None:
                self.reads: list[tuple[str, list[bytes], int]] = []

            def frames_received(
                self, peer_id: str, frames: Any, header_size: int, mono: float, wall: float
            ) -> None:
                self.reads.append((peer_id, [frame.message for frame in frames], header_size))

        tap = Reads()
        connection = Connection(Wire.V1, "peer", tap=tap)
        connection.receive_data(data(b"one") + data(b"two"), 0)
        bye = encode_frame(Frame.bye_frame())
        connection.receive_data(data(b"three") + bye + data(b"not delivered"), 0)
        assert tap.reads == [("peer", [b"one", b"two"], 5), ("peer", [b"three"], 5)]

    def test_closing_tells_the_bye_written(self) -> None:
        tap = Events()
        connection = Connection(Wire.LEGACY, "old", tap=tap)
        connection.encode(Frame(b"hi"))
        assert connection.close()
        connection.bye_bytes()
        assert tap.events == [("sent", "old", b"hi", 4), ("bye", "old", "out")]

    def test_a_tap_that_raises_is_logged_and_the_connection_goes_on(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        class Broken(Tap):
            def frame_received(self, *args: Any) -> None:
                raise RuntimeError("tap bug")

        connection = Connection(Wire.V1, "peer", tap=Broken())
        with caplog.at_level(logging.ERROR, "pymasep.comm.core"):
            assert connection.receive_data(data(b"one") + data(b"two"), 0) == [
                Frame(b"one"),
                Frame(b"two"),
            ]
        assert len([r for r in caplog.records if "tap failed" in r.getMessage()]) == 2

    def test_the_base_tap_ignores_every_event_including_resumed(self) -> None:
        connection = Connection(Wire.V1, "peer", tap=Tap())
        connection.opened("addr", tls=False)
        connection.encode(Frame(b"x"))
        connection.receive_data(data(b"y"), 0)
        connection.finish(DisconnectReason("connection lost"))
        Tap().resumed("peer", 0.0, 0.0)  # reserved, and accepted


@pytest.mark.usefixtures("no_thread_left_behind")
def test_the_threaded_driver_tells_the_tap_every_frame_despite_its_shortcuts() -> None:
    conn, other = socket.socketpair()
    tap = Events()
    inbox: queue.Queue[bytes] = queue.Queue()

    class Handler(SocketHandler):
        def on_receive(self, frame: Frame) -> None:
            inbox.put(frame.message)

    handler = Handler(conn, "the peer", logging.getLogger("test.tap"))
    handler.attach(Connection(Wire.V1, "peer", tap=tap))
    handler.start()
    peer = RawPeer(other)
    handler.send_frame_async(Frame(b"small"))  # a small frame: written inline at once
    peer.send(b"reply")  # one whole frame per read: the reader's shortcut
    assert inbox.get(timeout=5) == b"reply"
    peer.send_bye()
    tap.wait_for("closed")
    handler.join(5)
    other.close()
    assert tap.events == [
        ("connected", "peer", "the peer", Wire.V1, False, False),
        ("sent", "peer", b"small", 10),
        ("received", "peer", b"reply", 10),
        ("bye", "peer", "in"),
        ("closed", "peer", CLOSED_BY_PEER),
    ]


@pytest.mark.usefixtures("no_thread_left_behind")
def test_the_threaded_driver_tells_frames_sent_in_batches_and_within_a_delay() -> None:
    conn, other = socket.socketpair()
    tap = Events()
    handler = SocketHandler(conn, "the peer", logging.getLogger("test.tap"))
    handler.attach(Connection(Wire.V1, "peer", tap=tap))
    handler.start()
    peer = RawPeer(other)
    before = time.monotonic()
    handler.send_frame_async(Frame(b"alone"))
    tap.wait_for("sent")  # nothing else happens on the connection: the delay tells it
    assert tap.events[-1] == ("sent", "peer", b"alone", 10)
    assert before <= tap.clocks[-1][0] <= time.monotonic()
    for i in range(2 * SENT_BATCH):
        handler.send_frame_async(Frame(b"%03d" % i))
    # A batch's last frame is told by the thread that sends it (the delay may have told
    # some before): fewer than a batch are left untold, without waiting.
    told = [e[2] for e in tap.events if e[0] == "sent"]
    assert len(told) >= 1 + 2 * SENT_BATCH - (SENT_BATCH - 1)
    assert told == [b"alone"] + [b"%03d" % i for i in range(len(told) - 1)]
    peer.send_bye()
    tap.wait_for("closed")
    handler.join(5)
    other.close()
