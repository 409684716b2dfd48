"""SocketHandler and SocketHandlerQueue over a real socket, the peer driven by hand.

Each test wires a handler to one end of ``socket.socketpair()`` or of a loopback TCP
connection and plays the other end with plain socket calls and core's wire codec: no
server, no client. Each fault of pymasep 0.2's handler has a test here.
"""

from __future__ import annotations

import inspect
import logging
import os
import queue
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

from pymasep.comm.core import (
    CommunicationTimeoutError,
    Connection,
    ConnectionClosedError,
    DisconnectCode,
    EncodeError,
    Frame,
    FrameKind,
    FrameTooLargeError,
    SendBufferFullError,
    SendLimits,
    SocketHandler,
    SocketHandlerQueue,
    Wire,
    encode_frame,
)
from pymasep.comm.core.connection import (
    CLOSED_BY_PEER,
    CLOSED_LOCALLY,
    CONNECTION_LOST,
    STREAM_AFTER,
)
from pymasep.comm.core.inbox import RECEIVE_LIMIT
from pymasep.comm.core.testing.peers import (
    LOOPBACK,
    Echo,
    RawPeer,
    Recorder,
    Sequencer,
    answer_the_bye,
    assert_never_interleaved,
    in_thread,
    numbered_frames,
    read_exactly,
    send_fragmented,
    tagged,
)
from pymasep.comm.core.wire import encode_header

LOGGER = logging.getLogger("pymasep.comm.tests.socket_handler")
# Every thread a test starts (handlers, helpers) has ended after it.
pytestmark = pytest.mark.usefixtures("no_thread_left_behind")


# --- fixtures ----------------------------------------------------------------------------


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server((LOOPBACK, 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
    return conn, peer


def make_pair(kind: str) -> tuple[socket.socket, socket.socket]:
    return socket.socketpair() if kind == "socketpair" else tcp_pair()


@pytest.fixture(params=["socketpair", "tcp"])
def kind(request: pytest.FixtureRequest) -> str:
    """The kind of socket pair (``make_pair``): a test that takes it runs on each."""
    return str(request.param)


Connect = Callable[..., tuple[Any, RawPeer]]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """``connect(HandlerClass, *args, kind=..., start=True)`` -> (handler, raw peer)."""
    made: list[tuple[SocketHandler, RawPeer]] = []

    def make(
        handler_class: type[SocketHandler] = SocketHandler,
        *args: Any,
        kind: str = "tcp",
        start: bool = True,
    ) -> tuple[Any, RawPeer]:
        conn, other = make_pair(kind)
        handler = handler_class(conn, "peer", LOGGER, *args)
        peer = RawPeer(other, recv_size=65536)
        made.append((handler, peer))
        if start:
            handler.start()
        return handler, peer

    yield make
    for handler, peer in made:
        peer.sock.close()  # the handler sees the end at once and stops reading
        handler.close(timeout=0.5)
        if handler.ident is not None:
            handler.join(2)


# --- the API of pymasep 0.2 ---------------------------------------------------------------


def _parameters(callable_: Any) -> list[tuple[str, Any]]:
    return [(p.name, p.default) for p in inspect.signature(callable_).parameters.values()]


def test_constructors_take_the_parameters_of_pymasep_02() -> None:
    empty = inspect.Parameter.empty
    assert _parameters(SocketHandler) == [("conn", empty), ("addr", empty), ("logger", empty)]
    assert _parameters(SocketHandlerQueue) == [
        ("conn", empty),
        ("addr", empty),
        ("logger", empty),
        ("queue", empty),
    ]
    for name in ("send_frame", "receive_frame", "send_frame_async", "on_receive", "run"):
        assert callable(getattr(SocketHandler, name)), name


def test_handlers_have_the_attributes_of_pymasep_02(inbox: queue.Queue[bytes]) -> None:
    conn, other = socket.socketpair()
    handler = SocketHandlerQueue(conn, ("10.0.0.1", 4242), LOGGER, inbox)
    try:
        assert isinstance(handler, threading.Thread)
        assert handler.socket is conn
        assert handler.addr == ("10.0.0.1", 4242)
        assert handler.logger is LOGGER
        assert handler.receive_queue is inbox
        assert len(handler.send_queue) == 0
        assert handler.send_queue.empty() and handler.send_queue.qsize() == 0
        assert not handler.is_alive()  # built, not started: the caller starts it
    finally:
        handler.close(timeout=0.2)
        other.close()


@pytest.mark.timeout(30)
def test_the_send_queue_answers_qsize_and_empty_as_0_2_queue_did(connect: Connect) -> None:
    handler, peer = connect()
    payloads = [os.urandom(1 << 20) for _ in range(16)]
    for payload in payloads:  # 16 MB, the peer not reading yet: most of it waits
        handler.send_frame_async(Frame(payload))
    assert handler.send_queue.qsize() == len(handler.send_queue) > 0
    assert not handler.send_queue.empty()
    reader = in_thread(lambda: [peer.recv_data() for _ in payloads])
    handler.flush(timeout=20)
    assert handler.send_queue.empty() and handler.send_queue.qsize() == 0
    assert reader() == payloads


# --- no frame lost, none out of order ----------------------------------------------------


@pytest.mark.timeout(60)
def test_100000_frames_from_the_peer_all_arrive_in_order(connect: Connect, kind: str) -> None:
    total, size, done = 100_000, 1024, threading.Event()
    handler, peer = connect(Sequencer, total, size, done, kind=kind)
    sender = in_thread(send_fragmented, peer.sock, numbered_frames(total, size), 3)
    sender(50)
    assert done.wait(20), f"only {handler.expected} of {total} frames arrived"
    assert handler.faults == []
    assert handler.is_alive()


def _read_sequence(peer: RawPeer, total: int, seed: int) -> list[str]:
    """Read ``total`` numbered frames with reads of odd sizes; return what was wrong."""
    rng = random.Random(seed)
    faults: list[str] = []
    for expected in range(total):
        frame = peer.recv_frame(rng.choice([7, 1000, 4099, 65536, 300_000]))
        if frame is None:
            return [*faults, f"the stream ended before #{expected}"]
        (number,) = struct.unpack_from("!I", frame.message)
        if number != expected or frame.size != 1024 or frame.kind is not FrameKind.DATA:
            faults.append(f"got #{number} ({frame!r}), expected #{expected}")
    return faults


@pytest.mark.timeout(60)
def test_100000_frames_to_the_peer_all_arrive_in_order(connect: Connect) -> None:
    total = 100_000
    # 100 MB sent flat out, with the default limits: when the reader falls behind, the
    # sender waits for it.
    handler, peer = connect()
    reader = in_thread(_read_sequence, peer, total, 5)
    filler = bytes(1020)
    for number in range(total):
        handler.send_frame_async(Frame(struct.pack("!I", number) + filler))
    assert reader(50) == []


# --- request / response ------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_5000_requests_from_the_handler_each_get_their_reply(
    connect: Connect, inbox: queue.Queue[bytes]
) -> None:
    handler, peer = connect(SocketHandlerQueue, inbox)

    def echo() -> int:
        count = 0
        while (frame := peer.recv_frame()) is not None and frame.kind is FrameKind.DATA:
            peer.send(frame.message)
            count += 1
        return count

    echoer = in_thread(echo)
    for step in range(5000):
        handler.send_frame(Frame(b"action %d" % step))
        assert inbox.get(timeout=5) == b"action %d" % step
    handler.close()
    assert echoer() == 5000


@pytest.mark.timeout(30)
def test_5000_requests_from_the_peer_each_get_their_reply(connect: Connect) -> None:
    _, peer = connect(Echo)
    for step in range(5000):
        peer.send(b"observation %d" % step)
        assert peer.recv_data() == b"observation %d" % step


# --- the connection ends -----------------------------------------------------------------


def _ended(handler: SocketHandler, ended: queue.Queue[str]) -> str:
    """The one reason ``on_disconnect`` was given, once the handler thread has ended."""
    reason = ended.get(timeout=5)
    handler.join(2)
    assert not handler.is_alive(), "the handler thread still runs"
    assert handler.closed
    assert handler.socket.fileno() == -1, "the socket was not closed"
    assert ended.empty(), "on_disconnect ran more than once"
    return reason


def test_a_bye_from_the_peer_ends_the_connection_once(
    connect: Connect, kind: str, inbox: queue.Queue[bytes], ended: queue.Queue[str]
) -> None:
    handler, peer = connect(Recorder, inbox, ended, kind=kind)
    peer.send(b"last words")
    peer.send_bye()
    assert _ended(handler, ended) == CLOSED_BY_PEER
    assert handler.disconnect_reason == CLOSED_BY_PEER
    assert inbox.get_nowait() == b"last words"
    assert peer.until_eof() == []  # the handler closed its side, and said nothing more
    handler.close()  # closing again changes nothing
    assert ended.empty()
    with pytest.raises(ConnectionClosedError, match=CLOSED_BY_PEER):
        handler.send_frame_async(Frame(b"too late"))


def test_a_peer_that_vanishes_is_noticed_without_a_busy_loop(
    connect: Connect, kind: str, inbox: queue.Queue[bytes], ended: queue.Queue[str]
) -> None:
    handler, peer = connect(Recorder, inbox, ended, kind=kind)
    peer.send(b"last words")
    assert inbox.get(timeout=5) == b"last words"
    peer.sock.close()  # no bye: a killed process
    # _ended: the reader thread has ended, rather than reading the end over and over.
    assert _ended(handler, ended).startswith(CONNECTION_LOST)
    assert inbox.empty(), "something (pymasep 0.2: an empty frame) was delivered after the end"


def test_a_peer_that_resets_the_connection_is_noticed(
    connect: Connect, inbox: queue.Queue[bytes], ended: queue.Queue[str]
) -> None:
    handler, peer = connect(Recorder, inbox, ended)
    peer.send(b"last words")
    assert inbox.get(timeout=5) == b"last words"
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.sock.close()  # RST
    assert _ended(handler, ended).startswith(CONNECTION_LOST)
    assert inbox.empty(), "something was delivered after the reset"


@pytest.mark.parametrize(
    ("garbage", "detail"),
    [
        (encode_frame(Frame.hello_frame("again")), "HELLO"),
        (encode_header(FrameKind.DATA, 2**32 - 1, Wire.V1), "larger than the limit"),
        (b"\x09\x00\x00\x00\x00", "unknown frame kind"),
    ],
)
def test_a_peer_that_breaks_the_protocol_is_closed(
    connect: Connect, garbage: bytes, detail: str, ended: queue.Queue[str]
) -> None:
    handler, peer = connect(Recorder, queue.Queue(), ended)
    peer.sock.sendall(garbage)
    reason = _ended(handler, ended)
    assert reason.startswith("protocol error")
    assert detail in reason


def test_close_sends_the_bye_and_waits_for_the_peer(
    connect: Connect, ended: queue.Queue[str]
) -> None:
    handler, peer = connect(Recorder, queue.Queue(), ended)

    def answer_the_bye() -> list[Frame]:
        frames = peer.until_eof()
        peer.sock.close()
        return frames

    closer = in_thread(answer_the_bye)
    handler.close(timeout=5)
    assert closer() == [Frame.bye_frame()]
    assert _ended(handler, ended) == CLOSED_LOCALLY


@pytest.mark.timeout(30)
def test_close_cuts_a_peer_that_never_answers_after_the_timeout(
    connect: Connect, ended: queue.Queue[str]
) -> None:
    handler, _ = connect(Recorder, queue.Queue(), ended)
    handler.close(timeout=0.2)
    assert _ended(handler, ended) == CLOSED_LOCALLY
    handler.close(timeout=0.2)  # idempotent
    assert ended.empty()


def test_close_returns_once_a_cut_connection_has_ended(
    connect: Connect, ended: queue.Queue[str]
) -> None:
    """After cutting a silent peer, close() waits (a moment) for the thread to end too, as
    it does when the peer answers: callers count on no thread being left."""

    class SlowToFinish(Recorder):
        def on_disconnect(self, reason: str) -> None:
            time.sleep(0.05)  # an application callback that does some work (not a sync)
            super().on_disconnect(reason)

    handler, _ = connect(SlowToFinish, queue.Queue(), ended)
    handler.close(timeout=0.1)
    assert not handler.is_alive()
    assert ended.get_nowait() == CLOSED_LOCALLY


def test_the_context_manager_closes_gracefully(connect: Connect, ended: queue.Queue[str]) -> None:
    handler, peer = connect(Recorder, queue.Queue(), ended)
    closer = answer_the_bye(peer)
    with handler as entered:
        assert entered is handler
        handler.send_frame(Frame(b"inside"))
    assert closer() == [Frame(b"inside"), Frame.bye_frame()]
    assert _ended(handler, ended) == CLOSED_LOCALLY


def test_the_context_manager_closes_when_the_block_raises(
    connect: Connect, ended: queue.Queue[str]
) -> None:
    handler, peer = connect(Recorder, queue.Queue(), ended)
    closer = answer_the_bye(peer)
    with pytest.raises(RuntimeError, match="game crashed"), handler:
        raise RuntimeError("game crashed")  # not swallowed: __exit__ only closes
    assert closer() == [Frame.bye_frame()]
    assert _ended(handler, ended) == CLOSED_LOCALLY


def test_close_before_start_closes_the_socket(connect: Connect, ended: queue.Queue[str]) -> None:
    handler, peer = connect(Recorder, queue.Queue(), ended, start=False)
    handler.close(timeout=1)
    assert ended.get_nowait() == CLOSED_LOCALLY
    assert handler.socket.fileno() == -1
    assert peer.until_eof() == [Frame.bye_frame()]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["close", "bye through send_frame_async", "bye through send_frame"])
def test_a_graceful_close_delivers_every_frame_queued_before_it(
    connect: Connect, how: str, ended: queue.Queue[str]
) -> None:
    handler, peer = connect(Recorder, queue.Queue(), ended)
    frames = [Frame(struct.pack("!I", n) + os.urandom(64 * 1024)) for n in range(200)]
    for frame in frames:  # 13 MB: far more than the socket buffers hold
        handler.send_frame_async(frame)
    assert len(handler.send_queue) > 0, "nothing was queued: the test proves nothing"

    def read_then_close() -> list[Frame]:
        received = peer.until_eof()
        peer.sock.close()
        return received

    reader = in_thread(read_then_close)
    if how == "close":
        handler.close(timeout=15)
    elif how == "bye through send_frame_async":
        handler.send_frame_async(Frame.bye_frame())  # returns at once
    else:
        handler.send_frame(Frame.bye_frame())
    assert reader() == [*frames, Frame.bye_frame()]
    assert _ended(handler, ended) == CLOSED_LOCALLY


# --- sending -----------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [1 << 20, 16 << 20], ids=["1MiB", "16MiB"])
def test_large_frames_cross_both_ways(
    connect: Connect, size: int, inbox: queue.Queue[bytes]
) -> None:
    handler, peer = connect(SocketHandlerQueue, inbox)
    payload = os.urandom(size)
    sender = in_thread(peer.send, payload)
    assert inbox.get(timeout=20) == payload
    sender()
    # send_frame returns once the kernel has the whole frame: the peer must read meanwhile.
    reader = in_thread(peer.recv_data)
    handler.send_frame(Frame(payload[::-1]))
    assert reader() == payload[::-1]


@pytest.mark.timeout(60)
def test_four_threads_sending_at_once_never_interleave_frames(connect: Connect) -> None:
    handler, peer = connect()
    per_thread = 2000

    def send(sender: int) -> None:
        # Sizes from 8 bytes to 2.4 KB and, now and then, 256 KB: small frames go out at
        # once, large ones through the writer, all mixed.
        for index in range(per_thread):
            count = 32 * 1024 if index % 97 == 0 else 1 + index % 300
            frame = Frame(tagged(sender, index, count))
            if sender % 2:
                handler.send_frame(frame)
            else:
                handler.send_frame_async(frame)

    reader = in_thread(lambda: [peer.recv_data() for _ in range(4 * per_thread)])
    senders = [in_thread(send, n) for n in range(4)]
    for join in senders:
        assert join() is None
    received = reader()
    assert_never_interleaved(received, senders=4, per_sender=per_thread)


def test_sending_on_a_closed_handler_raises_connection_closed(connect: Connect) -> None:
    handler, peer = connect()
    peer.sock.close()
    handler.join(5)
    with pytest.raises(ConnectionClosedError):
        handler.send_frame_async(Frame(b"after the end"))
    with pytest.raises(ConnectionClosedError):
        handler.send_frame(Frame(b"after the end"))


def test_sending_while_closing_raises_connection_closed(connect: Connect) -> None:
    handler, peer = connect()
    handler.send_frame_async(Frame.bye_frame())  # closing: the peer has not answered yet
    with pytest.raises(ConnectionClosedError):
        handler.send_frame_async(Frame(b"behind the bye"))
    assert peer.until_eof() == [Frame.bye_frame()]


@pytest.mark.timeout(30)
def test_flush_waits_for_the_kernel_and_times_out_clearly(connect: Connect) -> None:
    handler, peer = connect()
    payload = os.urandom(16 << 20)
    handler.send_frame_async(Frame(payload))  # the peer does not read yet: it queues
    with pytest.raises(CommunicationTimeoutError, match="still queued"):
        handler.flush(timeout=0.05)
    reader = in_thread(peer.recv_data)
    handler.flush(timeout=20)
    assert len(handler.send_queue) == 0
    assert reader() == payload


def test_the_legacy_wire_limits_frames_to_64_kib_at_send_time(
    connect: Connect, inbox: queue.Queue[bytes], ended: queue.Queue[str]
) -> None:
    handler, peer = connect(Recorder, inbox, ended, start=False)
    handler.attach(Connection(Wire.LEGACY, "old"))
    handler.start()
    with pytest.raises(FrameTooLargeError):
        handler.send_frame_async(Frame(bytes(65_536)))
    with pytest.raises(EncodeError):  # 0.2 would read it as a bye
        handler.send_frame_async(Frame(b"BYE"))
    handler.send_frame(Frame(bytes(65_535)))
    handler.send_frame(Frame(b"small"))
    # Nothing of the refused frames reached the wire.
    assert read_exactly(peer.sock, 2) == b"\xff\xff"
    assert read_exactly(peer.sock, 65_535) == bytes(65_535)
    assert read_exactly(peer.sock, 7) == b"\x05\x00small"
    peer.sock.sendall(b"\x02\x00hi\x03\x00BYE")  # pymasep 0.2's bye
    assert _ended(handler, ended) == CLOSED_BY_PEER
    assert inbox.get_nowait() == b"hi"


# --- receiving ---------------------------------------------------------------------------


def test_on_receive_raising_does_not_cut_the_connection(
    connect: Connect, caplog: pytest.LogCaptureFixture, inbox: queue.Queue[bytes]
) -> None:

    class Fragile(SocketHandlerQueue):
        def on_receive(self, frame: Frame) -> None:
            if frame.message == b"boom":
                raise RuntimeError("application bug")
            super().on_receive(frame)

    with caplog.at_level(logging.ERROR, logger=LOGGER.name):
        handler, peer = connect(Fragile, inbox)
        for payload in (b"one", b"boom", b"two", b"boom", b"three"):
            peer.send(payload)
        assert [inbox.get(timeout=5) for _ in range(3)] == [b"one", b"two", b"three"]
    assert handler.is_alive()
    handler.send_frame(Frame(b"still talking"))
    assert peer.recv_data() == b"still talking"
    failures = [r for r in caplog.records if r.exc_info and "application bug" in str(r.exc_info[1])]
    assert len(failures) == 2


def test_a_queue_that_refuses_a_message_does_not_cut_the_connection(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    class Picky(queue.Queue[bytes]):
        def put(self, item: bytes, block: bool = True, timeout: float | None = None) -> None:
            if item == b"boom":
                raise RuntimeError("queue bug")
            super().put(item, block, timeout)

    inbox = Picky()
    with caplog.at_level(logging.ERROR, logger=LOGGER.name):
        handler, peer = connect(SocketHandlerQueue, inbox)
        for payload in (b"one", b"boom", b"two"):
            peer.send(payload)
        assert [inbox.get(timeout=5) for _ in range(2)] == [b"one", b"two"]
    assert handler.is_alive()
    failures = [r for r in caplog.records if r.exc_info and "queue bug" in str(r.exc_info[1])]
    assert len(failures) == 1


def test_every_data_frame_goes_through_on_receive_even_when_patched(
    connect: Connect, inbox: queue.Queue[bytes]
) -> None:
    # No hidden path: the seed documents on_receive as the one way frames come in.
    seen: queue.Queue[bytes] = queue.Queue()
    with mock.patch.object(
        SocketHandlerQueue,
        "on_receive",
        autospec=True,
        side_effect=lambda _, f: seen.put(f.message),
    ) as patched:
        _, peer = connect(SocketHandlerQueue, inbox)
        for payload in (b"one", b"two", b"three"):
            peer.send(payload)  # one read, one frame: the reader's most common case
            assert seen.get(timeout=5) == payload
    assert patched.call_count == 3
    assert inbox.empty()


def test_a_subclass_on_receive_is_called_for_each_frame_alone(
    connect: Connect, inbox: queue.Queue[bytes]
) -> None:

    class Upper(SocketHandlerQueue):
        def on_receive(self, frame: Frame) -> None:
            self.receive_queue.put(frame.message.upper())

    _handler, peer = connect(Upper, inbox)
    for payload in (b"one", b"two"):
        peer.send(payload)
        assert inbox.get(timeout=5) == payload.upper()


def test_on_disconnect_raising_is_logged_and_contained(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    class Grumpy(SocketHandler):
        def on_disconnect(self, reason: str) -> None:
            raise RuntimeError("disconnect bug")

    with caplog.at_level(logging.ERROR, logger=LOGGER.name):
        handler, peer = connect(Grumpy)
        peer.send_bye()
        handler.join(5)
    assert not handler.is_alive()
    assert handler.disconnect_reason == CLOSED_BY_PEER
    assert any("disconnect bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_receive_frame_reads_before_the_thread_starts(connect: Connect) -> None:
    handler, peer = connect(start=False)
    peer.sock.sendall(encode_frame(Frame(b"first")) + encode_frame(Frame(b"second"))[:3])
    assert handler.receive_frame() == Frame(b"first")
    peer.sock.sendall(encode_frame(Frame(b"second"))[3:])
    assert handler.receive_frame() == Frame(b"second")
    peer.send_bye()
    assert handler.receive_frame() == Frame.bye_frame()
    peer.sock.sendall(encode_frame(Frame(b"cut"))[:4])
    peer.sock.shutdown(socket.SHUT_WR)
    with pytest.raises(ConnectionClosedError):
        handler.receive_frame()


def test_receive_frame_refuses_to_race_the_running_thread(connect: Connect) -> None:
    handler, _ = connect()
    with pytest.raises(RuntimeError):
        handler.receive_frame()


# --- closing from the callbacks ------------------------------------------------------------


def test_close_from_on_disconnect_is_a_quiet_no_op(connect: Connect) -> None:
    # Regression: close() from on_disconnect raised OSError(EBADF) on the closed socket.
    errors: queue.Queue[BaseException | None] = queue.Queue()

    class ClosesAgain(SocketHandler):
        def on_disconnect(self, reason: str) -> None:
            try:
                self.close()
                errors.put(None)
            except BaseException as error:
                errors.put(error)

    handler, peer = connect(ClosesAgain)
    peer.send_bye()
    assert errors.get(timeout=5) is None
    handler.join(5)
    assert handler.disconnect_reason == CLOSED_BY_PEER


class ClosesOnQuit(Recorder):
    """Told b"quit", answers b"bye then" and closes, from ``on_receive``."""

    close_timeout = 10.0

    def on_receive(self, frame: Frame) -> None:
        if frame.message == b"quit":
            self.send_frame_async(Frame(b"bye then"))
            self.close(timeout=self.close_timeout)


@pytest.mark.timeout(30)
def test_close_from_on_receive_sends_the_bye_and_ends_the_connection(
    connect: Connect, ended: queue.Queue[str]
) -> None:
    handler, peer = connect(ClosesOnQuit, queue.Queue(), ended)
    closer = answer_the_bye(peer)
    peer.send(b"quit")
    assert closer() == [Frame(b"bye then"), Frame.bye_frame()]
    assert _ended(handler, ended) == CLOSED_LOCALLY


@pytest.mark.timeout(30)
def test_close_from_on_receive_cuts_a_silent_peer_after_its_timeout(
    connect: Connect, ended: queue.Queue[str]
) -> None:

    class Impatient(ClosesOnQuit):
        close_timeout = 0.2

    handler, peer = connect(Impatient, queue.Queue(), ended)
    peer.send(b"quit")  # and then never answers the bye
    assert _ended(handler, ended) == CLOSED_LOCALLY


# --- bounded memory ------------------------------------------------------------------------


def _limited(
    connect: Connect, handler_class: type[SocketHandler] = SocketHandler, *args: Any, **kw: Any
) -> tuple[Any, RawPeer]:
    """A started handler whose connection has the given limits or stall timeout."""
    handler, peer = connect(handler_class, *args, start=False, kind=kw.pop("kind", "tcp"))
    limits = kw.pop("limits", SendLimits())
    handler.attach(Connection(Wire.V1, "peer", limits=limits, **kw))
    handler.start()
    return handler, peer


@pytest.mark.timeout(60)
def test_a_peer_that_stops_reading_is_cut_by_the_send_that_waits_for_it(
    connect: Connect, ended: queue.Queue[str]
) -> None:
    """The default policy: the send that finds the queue full waits for the peer, which
    takes nothing; after the drain timeout the peer is cut and that send raises."""
    limit = 4 << 20
    handler, _ = _limited(
        connect, Recorder, queue.Queue(), ended, limits=SendLimits(hard_limit=limit)
    )
    payload = bytes(100_000)
    peak, waits = 0, []

    def send_until_cut() -> None:
        nonlocal peak
        for _ in range(2000):  # 200 MB for a peer that reads nothing
            start = time.monotonic()
            try:
                handler.send_frame_async(Frame(payload))
            finally:
                waits.append(time.monotonic() - start)
            peak = max(peak, handler.stats.bytes_queued)

    with pytest.raises(ConnectionClosedError, match="slow consumer"):
        send_until_cut()
    assert peak <= limit
    # One send waited for the peer, the drain timeout (1 s), and no other (generous
    # bounds for a loaded machine: what matters is seconds, not minutes).
    assert waits[-1] >= SendLimits().drain_timeout
    assert max(waits[:-1]) < 1.0 and waits[-1] < 10
    reason = ended.get(timeout=5)
    assert reason.code is DisconnectCode.SLOW_CONSUMER  # type: ignore[attr-defined]
    assert "took no byte" in reason
    with pytest.raises(ConnectionClosedError):  # the next send does not wait again
        handler.send_frame_async(Frame(payload))


@pytest.mark.timeout(60)
def test_a_send_that_waits_goes_on_while_the_peer_drains_slowly(connect: Connect) -> None:
    """The default policy never cuts a peer that makes progress, however slow: here one
    that reads 64 KiB at a time, pausing between reads, for several drain timeouts."""
    limits = SendLimits(hard_limit=1 << 20, drain_timeout=0.5)
    handler, peer = _limited(connect, limits=limits, kind="socketpair")
    frames = [Frame(struct.pack("!I", n) + bytes(100_000)) for n in range(60)]  # 6 MB
    done = threading.Event()

    def read_slowly() -> list[Frame]:
        received: list[Frame] = []
        while len(received) < len(frames):
            frame = peer.recv_frame()
            assert frame is not None
            received.append(frame)
            done.wait(0.02)  # a slow reader (never set: a pause, not a synchronisation)
        return received

    reader = in_thread(read_slowly)
    start = time.monotonic()
    for frame in frames:
        handler.send_frame_async(frame)
    assert time.monotonic() - start > limits.drain_timeout, "the test proves nothing"
    assert reader(30) == frames
    assert not handler.closed


@pytest.mark.timeout(60)
def test_policy_disconnect_cuts_a_peer_that_stops_reading_at_the_hard_limit(
    connect: Connect, ended: queue.Queue[str]
) -> None:
    limit = 4 << 20
    handler, _ = _limited(
        connect,
        Recorder,
        queue.Queue(),
        ended,
        limits=SendLimits("disconnect", hard_limit=limit),
    )
    payload = bytes(100_000)
    peak = 0
    for _ in range(2000):  # 200 MB for a peer that reads nothing
        try:
            handler.send_frame_async(Frame(payload))
        except ConnectionClosedError:
            break
        peak = max(peak, handler.stats.bytes_queued)
    else:
        pytest.fail("the stalled peer was never cut")
    assert peak <= limit
    reason = ended.get(timeout=5)
    assert reason.code is DisconnectCode.SLOW_CONSUMER  # type: ignore[attr-defined]
    assert "hard limit" in reason


@pytest.mark.timeout(60)
def test_a_peer_that_reads_too_slowly_for_too_long_is_cut_at_the_soft_limit(
    connect: Connect, ended: queue.Queue[str]
) -> None:
    limits = SendLimits("disconnect", hard_limit=64 << 20, soft_limit=1 << 20, soft_seconds=0.3)
    # A socketpair: its kernel buffers are small, so most of the bytes wait in ours.
    handler, _ = _limited(connect, Recorder, queue.Queue(), ended, limits=limits, kind="socketpair")
    for _ in range(50):  # 5 MB, above the soft limit, and then nothing more is sent
        handler.send_frame_async(Frame(bytes(100_000)))
    assert handler.stats.bytes_queued > limits.soft_limit, "the test proves nothing"
    # Nobody sends any more: the writer itself notices the time is up.
    reason = ended.get(timeout=10)
    assert reason.code is DisconnectCode.SLOW_CONSUMER  # type: ignore[attr-defined]
    assert "0.3 s" in reason


@pytest.mark.timeout(60)
def test_policy_raise_refuses_the_frame_and_keeps_the_connection(connect: Connect) -> None:
    handler, peer = _limited(connect, limits=SendLimits("raise", hard_limit=1 << 20))
    sent: list[Frame] = []

    def send_until_refused() -> None:
        for number in range(1000):
            frame = Frame(struct.pack("!I", number) + bytes(100_000))
            handler.send_frame_async(frame)
            sent.append(frame)

    with pytest.raises(SendBufferFullError):
        send_until_refused()
    assert not handler.closed
    reader = in_thread(lambda: [peer.recv_frame() for _ in sent])
    handler.flush(timeout=20)
    assert reader() == sent


@pytest.mark.timeout(60)
def test_policy_block_waits_for_room_then_times_out(connect: Connect) -> None:
    limits = SendLimits("block", hard_limit=1 << 20, block_timeout=0.2)
    handler, _ = _limited(connect, limits=limits)

    def send_until_timeout() -> None:
        for _ in range(1000):
            handler.send_frame_async(Frame(bytes(100_000)))

    with pytest.raises(CommunicationTimeoutError):
        send_until_timeout()
    assert handler.stats.bytes_queued <= 1 << 20
    assert not handler.closed


@pytest.mark.timeout(60)
def test_peers_that_stop_in_the_middle_of_a_frame_are_cut_after_the_stall_time(
    connect: Connect, ended: queue.Queue[str]
) -> None:
    pairs = [
        _limited(connect, Recorder, queue.Queue(), ended, stall_timeout=0.3) for _ in range(10)
    ]
    half = encode_frame(Frame(bytes(8 << 20)))[: 4 << 20]
    for _, peer in pairs:
        peer.sock.sendall(half)  # half of an 8 MiB frame, then silence
    reasons = [ended.get(timeout=20) for _ in pairs]
    assert {r.code for r in reasons} == {DisconnectCode.STALLED}  # type: ignore[attr-defined]
    for handler, _ in pairs:
        handler.join(5)
        assert handler.closed and not handler.is_alive()  # its buffer went with it


def test_a_silent_peer_between_frames_is_never_stalled(
    connect: Connect, inbox: queue.Queue[bytes]
) -> None:
    handler, peer = _limited(connect, Recorder, inbox, queue.Queue(), stall_timeout=0.05)
    peer.send(b"one")
    assert inbox.get(timeout=5) == b"one"
    # Longer than the stall time with nothing pending: still open.
    assert not handler.wait_closed(0.3)
    peer.send(b"two")
    assert inbox.get(timeout=5) == b"two"


# --- threads -------------------------------------------------------------------------------


def _ours() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("pymasep-comm"))


@pytest.mark.timeout(60)
def test_a_queue_handler_has_no_thread_large_frames_and_streams_included(
    connect: Connect, inbox: queue.Queue[bytes]
) -> None:
    """Everything is written and read by the process's one I/O thread: a frame the
    kernel cannot take at once, and a stream, start no thread."""
    handler, peer = connect(SocketHandlerQueue, inbox)
    payload = os.urandom(8 << 20)
    handler.send_frame_async(Frame(payload))  # the kernel cannot take it at once
    assert _ours() == ["pymasep-comm-io"]
    assert peer.recv_data() == payload
    frames = [b"%d" % number for number in range(STREAM_AFTER * 4)]
    for data in frames:  # one way, past STREAM_AFTER: a stream
        handler.send_frame_async(Frame(data))
    assert [peer.recv_data() for _ in frames] == frames
    peer.send(b"an answer")  # something received: the stream is over
    assert inbox.get(timeout=5) == b"an answer"
    handler.send_frame_async(Frame(b"a reply"))  # written at once
    assert peer.recv_data() == b"a reply"
    assert _ours() == ["pymasep-comm-io"]
    assert handler.is_alive()  # started and not ended, with no thread of its own
    assert handler.ident is None


def test_a_handler_whose_on_receive_may_block_gets_a_delivery_thread(connect: Connect) -> None:
    release = threading.Event()
    received: queue.Queue[bytes] = queue.Queue()

    class Blocking(SocketHandler):
        def on_receive(self, frame: Frame) -> None:
            release.wait(10)
            received.put(frame.message)

    blocked, blocked_peer = connect(Blocking)
    _, other_peer = connect(SocketHandlerQueue, received)
    assert blocked.ident is not None and blocked.is_alive()
    blocked_peer.send(b"held")
    other_peer.send(b"not delayed")  # the blocked handler delays no other connection
    assert received.get(timeout=5) == b"not delayed"
    release.set()
    assert received.get(timeout=5) == b"held"


def test_the_handlers_records_carry_the_peer(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER.name):
        handler, peer = connect(start=False)
        handler.attach(Connection(Wire.V1, "interface-7"))
        handler.start()
        peer.send_bye()
        handler.join(5)
    assert {getattr(r, "peer", None) for r in caplog.records} == {"interface-7"}


@pytest.mark.timeout(30)
def test_a_handler_delivered_from_the_io_thread_may_send_and_close_there(
    connect: Connect, ended: queue.Queue[str]
) -> None:
    """``receive_may_block = False``: on_receive runs in the I/O thread, which it must
    not block; it may still send (the I/O thread writes what waits at its next turn)
    and close."""

    class InlineEcho(SocketHandler):
        receive_may_block = False

        def on_receive(self, frame: Frame) -> None:
            if frame.message == b"quit":
                self.close()
            else:
                self.send_frame_async(frame)

        def on_disconnect(self, reason: str) -> None:
            ended.put(reason)

    handler, peer = connect(InlineEcho)
    assert handler.ident is None  # no thread of its own
    big = os.urandom(4 << 20)  # more than the kernel takes at once
    for payload in (b"ping", big, b"pong"):
        peer.send(payload)
        assert peer.recv_data() == payload
    peer.send(b"quit")
    assert peer.recv_frame() == Frame.bye_frame()
    peer.sock.close()
    assert ended.get(timeout=5) == CLOSED_LOCALLY


@pytest.mark.timeout(60)
def test_send_frame_to_a_peer_that_reads_nothing_raises_after_the_drain_timeout(
    connect: Connect,
) -> None:
    """send_frame() waits until the kernel has the frame: with the default limits, a
    peer that takes no byte meanwhile is cut after the drain timeout, not waited for
    for ever."""
    handler, _ = connect()
    start = time.monotonic()
    with pytest.raises(ConnectionClosedError, match="slow consumer"):
        handler.send_frame(Frame(bytes(32 << 20)))  # far more than the kernel holds
    assert SendLimits().drain_timeout <= time.monotonic() - start < 10
    assert handler.join(5) is None and not handler.is_alive()


@pytest.mark.timeout(60)
def test_a_handler_that_falls_behind_stops_its_connection_being_read_then_catches_up(
    connect: Connect,
) -> None:
    """A handler with a delivery thread holds at most RECEIVE_LIMIT bytes undelivered:
    past it, the connection is not read and the peer's sends back up into its own
    buffers; once the handler catches up, every frame arrives, in order."""
    release = threading.Event()
    received: queue.Queue[int] = queue.Queue()

    class Slow(SocketHandler):
        def on_receive(self, frame: Frame) -> None:
            release.wait(30)
            received.put(struct.unpack_from("!I", frame.message)[0])

    handler, peer = connect(Slow)
    count, size = 64, 1 << 20  # 64 MiB: four times the limit

    def send_all() -> None:
        for number in range(count):
            peer.send(struct.pack("!I", number) + bytes(size - 4))

    sender = in_thread(send_all)
    # The peer's sends stop once its buffers and ours are full: the rest waits for us.
    with pytest.raises(AssertionError, match="in time"):
        sender(2)
    assert RECEIVE_LIMIT < handler.stats.bytes_received < count * size
    release.set()
    sender(30)
    assert [received.get(timeout=30) for _ in range(count)] == list(range(count))


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_drives_its_connections_with_an_io_thread_of_its_own(
    connect: Connect, inbox: queue.Queue[bytes]
) -> None:
    _, peer = connect(SocketHandlerQueue, inbox)
    peer.send(b"parent")  # the parent's I/O thread runs
    assert inbox.get(timeout=5) == b"parent"
    child = os.fork()
    if child == 0:  # pragma: no cover (the child's coverage is not collected)
        code = 1
        try:
            theirs: queue.Queue[bytes] = queue.Queue()
            conn, other = socket.socketpair()
            with SocketHandlerQueue(conn, "child", LOGGER, theirs) as handler:
                handler.start()
                RawPeer(other).send(b"child")
                code = 0 if theirs.get(timeout=10) == b"child" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
