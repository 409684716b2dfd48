"""One connection, driven by threads: :class:`SocketHandler` and :class:`SocketHandlerQueue`.

A handler's own thread (:meth:`SocketHandler.run`) reads: it blocks in ``recv``, decodes
every complete frame of each read and hands data frames to :meth:`SocketHandler.on_receive`.
Sending happens in the caller's thread whenever the socket can take the bytes at once (a
non-blocking send, under :attr:`SocketHandler.lock`, so frames never interleave); bytes the
kernel cannot take yet wait in :attr:`SocketHandler.send_queue` for a writer thread that the
handler starts the first time it is needed. A slow peer therefore never blocks the thread
that sends to it, and never delays the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from .exceptions import (
    CommunicationError,
    CommunicationTimeoutError,
    ConnectionClosedError,
    ProtocolError,
)
from .frame import Frame, FrameKind
from .wire import (
    DEFAULT_MAX_FRAME_SIZE,
    V1_HEADER,
    FrameDecoder,
    Wire,
    encode_frame,
    encode_header,
)

__all__ = ["SendQueue", "SocketHandler", "SocketHandlerQueue"]

Buffer = bytes | memoryview
_Self = TypeVar("_Self", bound="SocketHandler")

_RECV_SIZE = 256 * 1024
_V1_PACK = V1_HEADER.pack
_V1_HEADER_SIZE = V1_HEADER.size
_monotonic = time.monotonic
# Up to this payload size, joining header and payload costs less than a gather write.
_JOIN_LIMIT = 16 * 1024
# A frame sent this soon after the previous one on the same connection, with nothing
# received in between, is part of a stream: it goes to the writer thread, which
# coalesces the stream into large writes. Any other frame (a request, a reply, a
# step's observation) is written at once by its sender, which keeps round trips short.
_BURST_WINDOW = 50e-6
# MSG_DONTWAIT makes one send non-blocking without changing the socket's mode, which the
# reading thread relies on. Where it does not exist every queued byte goes to the writer.
_DONTWAIT: int | None = int(socket.MSG_DONTWAIT) if hasattr(socket, "MSG_DONTWAIT") else None
# Once a connection has ended, or close() has cut it, how long close() waits for the
# reader thread to run the callbacks and end. With close()'s default timeout (0.5 s) it
# keeps close() within a second, as the issue requires.
_CUT_GRACE = 0.25
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
try:
    _IOV_MAX = min(int(os.sysconf("SC_IOV_MAX")), 1024)
except (AttributeError, ValueError, OSError):
    _IOV_MAX = 16

CLOSED_LOCALLY = "closed by this side"
"""Disconnect reason: ``SocketHandler.close()`` was called."""
CLOSED_BY_PEER = "closed by the peer"
"""Disconnect reason: the peer said bye."""
CONNECTION_LOST = "connection lost"
"""Disconnect reason: the connection ended without a bye (peer killed, network down)."""


def _send_buffers(sock: socket.socket, buffers: list[Buffer], flags: int = 0) -> int:
    """Send as much of ``buffers`` as one system call takes; return the byte count."""
    if len(buffers) == 1:
        return sock.send(buffers[0], flags)
    if _HAS_SENDMSG:
        return sock.sendmsg(buffers, (), flags)
    return sock.send(b"".join(buffers), flags)


def _drop_sent(buffers: deque[Buffer], count: int) -> None:
    """Remove the first ``count`` bytes from a queue of buffers."""
    while count:
        first = buffers[0]
        if len(first) <= count:
            count -= len(first)
            buffers.popleft()
        else:
            buffers[0] = memoryview(first)[count:]
            count = 0


class SendQueue(deque[Buffer]):
    """The encoded bytes of a connection that the kernel has not taken yet, oldest first.

    A :class:`collections.deque` of buffers: a frame's header and payload, joined or
    apart, and at the head maybe the unsent rest of one. The writer thread hands the
    head of it to one system call. It also answers ``qsize()`` and ``empty()``, as the
    ``queue.Queue`` of pymasep 0.2 did, for code written against that.
    """

    # No __dict__: the deque stays as small, and its methods as fast, as a plain one.
    __slots__ = ()

    def qsize(self) -> int:
        """How many buffers wait for the socket (buffers, not frames: a frame may be two,
        and a frame written at once by its sender never waits here)."""
        return len(self)

    def empty(self) -> bool:
        """True when nothing waits for the socket: every queued byte is in the kernel's
        hands (or the connection has ended and dropped what was left)."""
        return not self


class SocketHandler(threading.Thread):
    """Thread used to handle received messages from conn, addr.

    Subclasses override :meth:`on_receive` (and, if they like, :meth:`on_disconnect`).
    :class:`~pymasep.comm.server.Server` and :class:`~pymasep.comm.client.Client` build
    handlers as ``socket_handler_class(conn, addr, logger, *socket_handler_args)``, run
    the handshake, then ``start()`` them. Use it as a context manager, or call
    :meth:`close`.

    Args:
        conn: Connected socket.
        addr: Remote address.
        logger: Logger used to log send and receive message.
    """

    def __init__(self, conn: socket.socket, addr: Any, logger: logging.Logger) -> None:
        super().__init__(name=f"pymasep-comm-reader-{addr}", daemon=True)
        self.lock = threading.Lock()
        """Lock to send messages one at a time: frames never interleave on the wire."""
        self.logger = logger
        """Logger of communication."""
        self.socket = conn
        """Socket to communicate."""
        self.addr = addr
        """Remote address."""
        self.send_queue = SendQueue()
        """Encoded bytes waiting for the socket, oldest first (empty when all is sent);
        pymasep 0.2's message queue. See
        :class:`~pymasep.comm.core.socket_handler.SendQueue`."""
        self.wire = Wire.V1
        """Wire format of the connection (set by the handshake)."""
        self.peer_id: str | None = None
        """Id of the peer (set by the handshake)."""
        self.disconnect_reason: str | None = None
        """Why the connection ended, once it has (see :meth:`on_disconnect`)."""
        self._decoder = FrameDecoder(Wire.V1, DEFAULT_MAX_FRAME_SIZE)
        self._received: deque[Frame] = deque()
        self._on_closed: Callable[[SocketHandler, str], None] | None = None
        self._queue_changed = threading.Condition(self.lock)
        self._writer: threading.Thread | None = None
        self._queued_bytes = 0
        self._sent_bytes = 0
        self._closing = False
        self._accepting = True  # False once closing or finished: new frames are refused
        self._last_send = 0.0
        self._received_since_send = False
        self._finished = threading.Event()
        self._finish_lock = threading.Lock()
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            # Frames are whole messages: send each at once instead of waiting for more.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _attach(
        self,
        *,
        wire: Wire,
        decoder: FrameDecoder,
        pending_frames: Iterable[Frame],
        peer_id: str,
        on_closed: Callable[[SocketHandler, str], None] | None,
    ) -> None:
        """Hand over the state of a completed handshake (called before :meth:`start`)."""
        self.wire = wire
        self._decoder = decoder
        self._received.extend(pending_frames)
        self.peer_id = peer_id
        self._on_closed = on_closed
        self.name = f"pymasep-comm-reader-{peer_id}"

    @property
    def closed(self) -> bool:
        """True once the connection has ended, whichever side ended it."""
        return self._finished.is_set()

    # -- sending ---------------------------------------------------------------------

    def _encode(self, frame: Frame) -> list[Buffer]:
        if self.wire is Wire.LEGACY:
            return [encode_frame(frame, Wire.LEGACY)]
        header = encode_header(frame.kind, frame.size, Wire.V1)
        if frame.size <= _JOIN_LIMIT:
            return [header + frame.message]
        return [header, frame.message]

    def _raise_closed(self) -> None:
        reason = self.disconnect_reason or CLOSED_LOCALLY
        raise ConnectionClosedError(f"connection to {self.peer_id or self.addr} is {reason}")

    def send_frame(self, frame: Frame) -> None:
        """Send a frame through the socket, and return once the kernel has all of it.

        Frames queued before it by :meth:`send_frame_async` go first. Sending
        :meth:`Frame.bye_frame` closes the connection, as :meth:`close` does.

        Args:
            frame: Frame to send.

        Raises:
            ConnectionClosedError: The connection is closed, or closes before the frame
                is sent.
            FrameTooLargeError: The wire cannot carry a frame this large.
        """
        if frame.kind is FrameKind.BYE:
            self.close()
            return
        self.send_frame_async(frame)
        self.flush()

    def send_frame_async(self, frame: Frame) -> None:
        """Send a frame without waiting for the socket.

        The frame is written at once when the kernel can take it, else queued for the
        writer thread; frames from one thread arrive in the order it sent them. Sending
        :meth:`Frame.bye_frame` closes the connection gracefully, after the queued frames.

        Args:
            frame: Frame to send.

        Raises:
            ConnectionClosedError: The connection is closed or closing.
            FrameTooLargeError: The wire cannot carry a frame this large.
        """
        kind = frame.kind
        if kind is FrameKind.BYE:
            self._begin_close()
            return
        size = frame.size
        # A small v1 frame, as a round trip's are, is encoded inline (as _encode would) into
        # one ``data`` and no list: the per-frame Python is a large share of a round trip.
        buffers: list[Buffer] | None = None
        data = b""
        if size <= _JOIN_LIMIT and self.wire is Wire.V1:
            data = _V1_PACK(kind, size) + frame.message
            size += _V1_HEADER_SIZE
        else:
            buffers = self._encode(frame)
            size = sum(map(len, buffers))
        # acquire/release costs half of a with statement, and a send is mostly overhead.
        lock = self.lock
        lock.acquire()
        try:
            if not self._accepting:
                self._raise_closed()
            now = _monotonic()
            streaming = not self._received_since_send and now - self._last_send < _BURST_WINDOW
            self._last_send = now
            self._received_since_send = False
            if not streaming and not self.send_queue and _DONTWAIT is not None:
                try:
                    if buffers is None:
                        sent = self.socket.send(data, _DONTWAIT)
                    else:
                        sent = _send_buffers(self.socket, buffers, _DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as error:
                    # The reader sees the same failure and ends the connection.
                    raise ConnectionClosedError(f"send failed: {error}") from error
                if sent == size:
                    # Written whole: flush() has nothing to wait for, so the byte counts,
                    # which only ever differ by what is queued, stay as they are.
                    return
                self._queued_bytes += size
                self._sent_bytes += sent
                pending: deque[Buffer] = deque(buffers or (data,))
                _drop_sent(pending, sent)
                self.send_queue.extend(pending)
            else:
                self._queued_bytes += size
                self.send_queue.extend(buffers or (data,))
            self._ensure_writer()
        finally:
            lock.release()

    def _ensure_writer(self) -> None:
        """Wake the writer thread, starting it the first time (called with the lock held)."""
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_loop, name=f"pymasep-comm-writer-{self.peer_id}", daemon=True
            )
            self._writer.start()
        self._queue_changed.notify_all()

    def _write_loop(self) -> None:
        """Writer thread: flush the queue in large writes; send the bye when closing."""
        sock = self.socket
        try:
            while True:
                with self.lock:
                    while not (self.send_queue or self._closing or self._finished.is_set()):
                        self._queue_changed.wait()
                    if self._finished.is_set():
                        return
                    if not self.send_queue:
                        break
                    batch = [self.send_queue[i] for i in range(min(len(self.send_queue), _IOV_MAX))]
                # Written outside the lock so that senders can keep queueing meanwhile;
                # the batch stays at the head of the queue until it is sent.
                sent = 0
                try:
                    sent = _send_buffers(sock, batch)
                finally:
                    with self.lock:
                        if not self._finished.is_set():  # else _finish emptied the queue
                            _drop_sent(self.send_queue, sent)
                        self._sent_bytes += sent
                        self._queue_changed.notify_all()
            self._send_bye()
        except OSError as error:
            if not self._finished.is_set():
                self.logger.info("writing to %s failed: %s", self.peer_id, error)
                self._shutdown()
        finally:
            with self.lock:
                self._queue_changed.notify_all()

    def _send_bye(self) -> None:
        """Send the bye after everything queued, then stop writing (FIN follows it)."""
        if self.disconnect_reason is None:
            self.socket.sendall(b"".join(self._encode(Frame.bye_frame())))
        # Only our writing direction closes: the peer may still have frames in flight,
        # which the reader delivers until the peer closes too.
        self.socket.shutdown(socket.SHUT_WR)

    # -- receiving -------------------------------------------------------------------

    def receive_frame(self) -> Frame:
        """Wait for receiving a frame from the socket (before the thread is started).

        Returns:
            The next frame, of any kind (a bye frame when the peer closes).

        Raises:
            ConnectionClosedError: The connection ended before a whole frame arrived.
            RuntimeError: The handler thread is running; it is the one that reads.
        """
        if self.is_alive():
            raise RuntimeError("receive_frame() cannot be used while the handler thread runs")
        while not self._received:
            data = self.socket.recv(_RECV_SIZE)
            if not data:
                raise ConnectionClosedError(f"{self.peer_id or self.addr}: {CONNECTION_LOST}")
            self._received.extend(self._decoder.feed(data))
        frame = self._received.popleft()
        self.logger.debug("received %r", frame)
        return frame

    def on_receive(self, frame: Frame) -> None:
        """Callback when a data frame is received (never for control frames).

        It runs in the handler's thread: while it runs, nothing more is read from this
        connection. It may send, on this connection or any other.

        Args:
            frame: Frame received.
        """

    def on_disconnect(self, reason: str) -> None:
        """Callback when the connection ends, whichever side ended it. Runs once.

        Args:
            reason: Why: ``CLOSED_LOCALLY``, ``CLOSED_BY_PEER``, ``CONNECTION_LOST``
                (the constants of this module), or a description of the error.
        """

    def run(self) -> None:
        """Main thread run that receives frames until the connection ends."""
        reason: str | None = CONNECTION_LOST
        try:
            reason = self._deliver(self._received)
            self._received.clear()
            # One buffer for every read: a fresh 256 KiB bytes per recv() costs more than
            # the read itself (large allocations are mmap'ed).
            buffer = bytearray(_RECV_SIZE)
            view = memoryview(buffer)
            recv_into = self.socket.recv_into
            decode_whole = self._decoder.decode_whole
            feed = self._decoder.feed
            on_receive = self.on_receive
            data_kind = FrameKind.DATA
            # When on_receive only puts the payload on a queue, the loop does it without a
            # Python call: the thread that waits on the queue wakes as soon as the put, and
            # finds the GIL still held (and sleeps again) unless this thread is quick to
            # reach recv_into, which drops it.
            owner = cast("SocketHandlerQueue", self) if self._puts_payload_on_queue() else None
            while reason is None:
                count = recv_into(buffer)
                if not count:
                    reason = CLOSED_LOCALLY if self._closing else CONNECTION_LOST
                    break
                self._received_since_send = True
                frame = decode_whole(view, count)
                if frame is None:
                    reason = self._deliver(feed(view[:count]))
                elif frame.kind is data_kind:
                    # A read holding one data frame (a request, a reply) is the common case:
                    # deliver it here and go straight back to recv_into, which releases the
                    # GIL, so that a thread on_receive woke (one waiting on a queue, say)
                    # is less likely to find the GIL still held.
                    try:
                        if owner is not None:
                            owner.receive_queue.put(frame.message)
                        else:
                            on_receive(frame)
                    except Exception:
                        self.logger.exception("on_receive failed for a frame from %s", self.peer_id)
                else:
                    reason = self._deliver((frame,))
        except OSError as error:
            reason = CLOSED_LOCALLY if self._closing else f"{CONNECTION_LOST}: {error}"
        except CommunicationError as error:
            self.logger.warning("closing %s: %s", self.peer_id or self.addr, error)
            reason = f"protocol error: {error}"
        finally:
            self._finish(reason or CONNECTION_LOST)

    def _puts_payload_on_queue(self) -> bool:
        """True if :meth:`on_receive` only puts ``frame.message`` on ``receive_queue``."""
        return False

    def _deliver(self, frames: Iterable[Frame]) -> str | None:
        """Hand data frames to :meth:`on_receive`; return a reason when the peer closes."""
        for frame in frames:
            if frame.kind is FrameKind.DATA:
                try:
                    self.on_receive(frame)
                except Exception:
                    # The application's bug must not cut the game's connection (run() has
                    # the same guard on its fast path).
                    self.logger.exception("on_receive failed for a frame from %s", self.peer_id)
            elif frame.kind is FrameKind.BYE:
                return CLOSED_LOCALLY if self._closing else CLOSED_BY_PEER
            else:
                raise ProtocolError(f"unexpected {frame.kind.name} frame after the handshake")
        return None

    # -- closing ---------------------------------------------------------------------

    def close(self, timeout: float = 0.5) -> None:
        """Close the connection: send every queued frame, then the bye, then wait for the
        peer to close its side. Idempotent; safe from any thread, ``on_receive`` included.

        Args:
            timeout: Seconds to wait for all of that; then the connection is cut. Either
                way close() then waits a quarter of a second at most for the handler's
                thread to end.
        """
        self._begin_close()
        if threading.current_thread() is self:
            # The reader cannot wait for itself: let its recv give up after the timeout.
            self.socket.settimeout(timeout)
            return
        self._wait_closed(time.monotonic() + timeout)

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _begin_close(self) -> None:
        with self.lock:
            if self._closing or self._finished.is_set():
                return
            self._closing = True
            self._accepting = False
            self._ensure_writer()
        self.logger.debug("closing connection to %s", self.peer_id)

    def _wait_closed(self, deadline: float) -> None:
        """Wait until the connection has ended; cut it at ``deadline``."""
        if not self._wait_graceful(deadline):
            self._cut()
        self._join_until(time.monotonic() + _CUT_GRACE)

    def _wait_graceful(self, deadline: float) -> bool:
        """Wait until the connection has ended, until ``deadline`` at most; True if it has."""
        if not self.is_alive() and not self._finished.is_set():
            # Never started: nobody reads, so wait only for the bye to be written.
            writer = self._writer
            if writer is not None:
                writer.join(max(0.0, deadline - time.monotonic()))
            self._finish(CLOSED_LOCALLY)
            return True
        return self._finished.wait(max(0.0, deadline - time.monotonic()))

    def _cut(self) -> None:
        """End a connection whose peer did not answer the bye in time."""
        if not self._finished.is_set():
            self.logger.info("%s did not close in time; cutting the connection", self.peer_id)
            # It wakes the reader (and a writer blocked in send) at once.
            self._shutdown()

    def _join_until(self, deadline: float) -> None:
        """Wait for the reader to run the callbacks and end, so that no thread outlives
        close(); until ``deadline`` at most."""
        self._finished.wait(max(0.0, deadline - time.monotonic()))
        if self.is_alive() and threading.current_thread() is not self:
            self.join(max(0.0, deadline - time.monotonic()))

    def _shutdown(self) -> None:
        # shutdown() wakes a thread blocked in recv() or send() on this socket; close()
        # alone would not.
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)

    def _finish(self, reason: str) -> None:
        """End the connection once: free the socket, then run the callbacks."""
        with self._finish_lock:
            if self._finished.is_set():
                return
            with self.lock:
                self.disconnect_reason = reason
                dropped = sum(len(buffer) for buffer in self.send_queue)
                self.send_queue.clear()
                self._finished.set()
                self._accepting = False
                self._queue_changed.notify_all()
        if dropped:
            self.logger.warning("%d bytes for %s were not sent: %s", dropped, self.peer_id, reason)
        self._shutdown()
        writer = self._writer
        if writer is not None and writer is not threading.current_thread():
            writer.join(1.0)
        self.socket.close()
        self.logger.info("connection to %s ended: %s", self.peer_id or self.addr, reason)
        if self._on_closed is not None:
            self._on_closed(self, reason)
        try:
            self.on_disconnect(reason)
        except Exception:
            self.logger.exception("on_disconnect failed for %s", self.peer_id)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued frame is in the kernel's hands.

        Args:
            timeout: Seconds to wait at most; None waits as long as it takes.

        Raises:
            CommunicationTimeoutError: Frames are still queued after ``timeout``.
            ConnectionClosedError: The connection ended with frames still queued.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            target = self._queued_bytes
            while self._sent_bytes < target:
                if self._finished.is_set():
                    raise ConnectionClosedError(f"connection ended: {self.disconnect_reason}")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise CommunicationTimeoutError(
                        f"{target - self._sent_bytes} bytes still queued for {self.peer_id}"
                    )
                self._queue_changed.wait(remaining)


class SocketHandlerQueue(SocketHandler):
    """Thread used to handle received messages from conn, addr.
    Put a message in a queue when received.

    Args:
        conn: Connected socket.
        addr: Remote address.
        logger: Logger used to log send and receive message.
        queue: Queue where the received messages (the frames' bytes) are put.
    """

    def __init__(
        self, conn: socket.socket, addr: Any, logger: logging.Logger, queue: queue.Queue[bytes]
    ) -> None:
        super().__init__(conn=conn, addr=addr, logger=logger)
        self.receive_queue = queue
        """The queue used to receive messages."""

    def on_receive(self, frame: Frame) -> None:
        """Callback when a data frame is received: put its bytes on the queue.

        Args:
            frame: Frame received.
        """
        self.receive_queue.put(frame.message)

    def _puts_payload_on_queue(self) -> bool:
        # A subclass that overrides on_receive gets it called, as documented.
        return type(self).on_receive is SocketHandlerQueue.on_receive and (
            "on_receive" not in vars(self)
        )
