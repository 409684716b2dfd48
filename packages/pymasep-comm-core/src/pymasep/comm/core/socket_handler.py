"""One connection, driven by threads: :class:`SocketHandler` and :class:`SocketHandlerQueue`.

The rules (states, bye, limits, stall, reasons) live in the sans-I/O
:class:`~pymasep.comm.core.connection.Connection`; a handler only moves bytes and runs
callbacks:

* its own thread (:meth:`SocketHandler.run`) reads: it blocks in ``recv``, feeds the
  connection and hands every data frame to :meth:`SocketHandler.on_receive`;
* a sender writes in its own thread, at once, as long as the socket takes the bytes
  (a non-blocking send under :attr:`SocketHandler.lock`, so frames never interleave).
  Once the socket would block, frames wait in :attr:`SocketHandler.send_queue` for a
  writer thread, which exists only while something waits. A stream (see
  :data:`~pymasep.comm.core.connection.STREAM_AFTER`) is queued too, so that the writer
  coalesces it into large writes; its writer stays for the stream's next frames until
  something is received or the connection closes. A slow peer therefore never
  delays the others; the connection's
  :class:`~pymasep.comm.core.connection.SendLimits` bound what it may cost: past
  ``hard_limit`` queued bytes its sender waits while it drains, and a peer that drains
  nothing for ``drain_timeout`` is cut.

Over TLS (an :class:`ssl.SSLSocket`) the same holds, with three differences: the socket
is non-blocking once the handler runs (an SSL object takes no per-call flags such as
``MSG_DONTWAIT``); every call into the SSL object is made under one lock, since OpenSSL
does not allow one object to be used by two threads at once; and the reader asks the SSL
object for bytes it has already decrypted (``pending()``) before it waits on the socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any, TypeVar

from .connection import (
    CLOSED_BY_PEER,
    CLOSED_LOCALLY,
    CONNECTION_LOST,
    Buffer,
    Connection,
    ConnectionState,
    ConnectionStats,
    DisconnectCode,
    DisconnectReason,
    SendQueue,
)
from .exceptions import (
    CommunicationError,
    CommunicationTimeoutError,
    ConnectionClosedError,
    InvalidStateError,
)
from .frame import Frame, FrameKind
from .wire import V1_HEADER, Wire

__all__ = [
    "CLOSED_BY_PEER",
    "CLOSED_LOCALLY",
    "CONNECTION_LOST",
    "SendQueue",
    "SocketHandler",
    "SocketHandlerPeerQueue",
    "SocketHandlerQueue",
    "close_handlers",
]

_Self = TypeVar("_Self", bound="SocketHandler")

_RECV_SIZE = 256 * 1024
_V1_PACK = V1_HEADER.pack
_V1_HEADER_SIZE = V1_HEADER.size
_monotonic = time.monotonic
# Up to this payload size, joining header and payload costs less than a gather write.
_JOIN_LIMIT = 16 * 1024
_OPEN = ConnectionState.OPEN
_CLOSED = ConnectionState.CLOSED
# MSG_DONTWAIT makes one send non-blocking without changing the socket's mode, which the
# reading thread relies on. Where it does not exist every frame goes to the writer.
_DONTWAIT: int | None = int(socket.MSG_DONTWAIT) if hasattr(socket, "MSG_DONTWAIT") else None
_DONTWAIT_FLAG = _DONTWAIT or 0  # used only where _DONTWAIT exists
# Once a connection has been cut, how long close() waits for the reader thread to run
# the callbacks and end. A cut wakes the reader at once: this bounds a stuck callback.
_JOIN_GRACE = 1.0
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
try:
    _IOV_MAX = min(int(os.sysconf("SC_IOV_MAX")), 1024)
except (AttributeError, ValueError, OSError):
    _IOV_MAX = 16


def _send_buffers(sock: socket.socket, buffers: list[Buffer], flags: int = 0) -> int:
    """Send as much of ``buffers`` as one system call takes; return the byte count."""
    if len(buffers) == 1:
        return sock.send(buffers[0], flags)
    if _HAS_SENDMSG:
        return sock.sendmsg(buffers, (), flags)
    return sock.send(b"".join(buffers), flags)


def _never_whole(data: Buffer, count: int) -> None:
    """The read loop's whole-frame shortcut, off: every read goes through
    Connection.feed, which tells the connection's tap."""
    return None


def _wait_writable(sock: socket.socket, timeout: float | None) -> bool:
    _, writable, _ = select.select([], [sock], [], timeout)
    return bool(writable)


def _wait_readable(sock: socket.socket, timeout: float | None) -> bool:
    readable, _, _ = select.select([sock], [], [], None if timeout is None else max(0.0, timeout))
    return bool(readable)


def _shutdown(sock: socket.socket, how: int) -> None:
    # The plain socket's shutdown, also for an SSLSocket: its own shutdown() drops the
    # SSL object, and a reader still in recv_into() would then read ciphertext.
    socket.socket.shutdown(sock, how)


# Most bytes one SSL write takes: a bounded copy when a large frame is joined. A write
# that would block must be retried with the same first bytes and at least as many, which
# the head of the send queue, cut at this size, always is.
_TLS_WRITE_SIZE = 256 * 1024
_TLS_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


def _tls_chunk(buffers: Iterable[Buffer]) -> Buffer:
    """The first :data:`_TLS_WRITE_SIZE` bytes of ``buffers``, as one buffer."""
    parts: list[Buffer] = []
    size = 0
    for buffer in buffers:
        if size + len(buffer) >= _TLS_WRITE_SIZE:
            parts.append(memoryview(buffer)[: _TLS_WRITE_SIZE - size])
            break
        parts.append(buffer)
        size += len(buffer)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class SocketHandler(threading.Thread):
    """Thread used to handle received messages from conn, addr.

    Subclasses override :meth:`on_receive` (and, if they like, :meth:`on_disconnect`).
    :class:`~pymasep.comm.server.Server` and :class:`~pymasep.comm.client.Client` build
    handlers as ``socket_handler_class(conn, addr, logger, *socket_handler_args)``, hand
    them the connection their handshake opened (:meth:`attach`), then ``start()`` them.
    Use it as a context manager, or call :meth:`close`.

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
        self.connection = Connection(Wire.V1)
        """The state of the connection (see :class:`~pymasep.comm.core.connection.Connection`);
        read it under :attr:`lock`."""
        self.disconnect_reason: DisconnectReason | None = None
        """Why the connection ended, once it has (see :meth:`on_disconnect`)."""
        self._on_closed: Callable[[SocketHandler, DisconnectReason], None] | None = None
        self._changed = threading.Condition(self.lock)
        self._writer: threading.Thread | None = None
        self._writer_waits = False  # the writer waits for a stream's next frames
        self._close_deadline: float | None = None  # set when close() runs in the reader
        self._finished = threading.Event()
        self._callbacks_done = threading.Event()
        # The library's own records carry the peer (record.peer), whatever the logger.
        self._log = logging.LoggerAdapter(logger, {"peer": str(addr)})
        self._tls = isinstance(conn, ssl.SSLSocket)
        self._tls_lock = threading.Lock()  # one call into the SSL object at a time
        self._write_directly = self._tls or _DONTWAIT is not None
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            # Frames are whole messages: send each at once instead of waiting for more.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def attach(
        self,
        connection: Connection,
        on_closed: Callable[[SocketHandler, DisconnectReason], None] | None = None,
    ) -> None:
        """Take over a connection, as its handshake opened it (call before ``start()``).

        Args:
            connection: The connection, usually what
                :meth:`~pymasep.comm.core.Connection.from_handshake` made.
            on_closed: Called once when the connection ends, before :meth:`on_disconnect`
                (what :class:`~pymasep.comm.core.BaseThreadedCommunication` uses to
                unregister it).
        """
        self.connection = connection
        self._on_closed = on_closed
        if connection.peer_id is not None:
            self.name = f"pymasep-comm-reader-{connection.peer_id}"
            self._log = logging.LoggerAdapter(self.logger, {"peer": connection.peer_id})

    @property
    def wire(self) -> Wire:
        """Wire format of the connection (set by the handshake)."""
        return self.connection.wire

    @property
    def peer_id(self) -> str | None:
        """Id of the peer (set by the handshake)."""
        return self.connection.peer_id

    @property
    def send_queue(self) -> SendQueue:
        """Encoded bytes waiting for the socket, oldest first (empty when all is sent);
        pymasep 0.2's message queue. See :class:`~pymasep.comm.core.connection.SendQueue`."""
        return self.connection.send_queue

    @property
    def stats(self) -> ConnectionStats:
        """The connection's counters (frames and bytes sent, queued, received) now."""
        with self.lock:
            return self.connection.stats

    @property
    def closed(self) -> bool:
        """True once the connection has ended, whichever side ended it."""
        return self._finished.is_set()

    # -- sending ---------------------------------------------------------------------

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
        """Send a frame without waiting for the peer.

        The frame is written at once when the kernel can take it, else queued for the
        writer thread; frames from one thread arrive in the order it sent them. What
        happens when the peer reads too slowly depends on the connection's
        :class:`~pymasep.comm.core.connection.SendLimits`: by default, once its queue
        is full, this call waits while the peer takes bytes, and a peer that takes none
        for the limits' ``drain_timeout`` (1 s) is disconnected and this call raises.
        Sending :meth:`Frame.bye_frame` closes the connection gracefully, after the
        queued frames.

        Args:
            frame: Frame to send.

        Raises:
            ConnectionClosedError: The connection is closed or closing, or (send policy
                ``"wait"``) the peer took no byte for the drain timeout while this call
                waited, and is disconnected (``SLOW_CONSUMER``).
            FrameTooLargeError: The wire cannot carry a frame this large.
            SendBufferFullError: Send policy ``"raise"``: too many bytes wait already.
            CommunicationTimeoutError: Send policy ``"block"``: they still wait after
                the block timeout.
        """
        kind = frame.kind
        if kind is FrameKind.BYE:
            self.begin_close()
            return
        conn = self.connection
        size = frame.size
        # A small v1 frame, as a round trip's are, is encoded inline into one ``data``
        # and no list: the per-frame Python is a large share of a round trip.
        buffers: list[Buffer] | None = None
        data = b""
        if size <= _JOIN_LIMIT and conn.wire is Wire.V1 and conn.tap is None:
            data = _V1_PACK(kind, size) + frame.message
            size += _V1_HEADER_SIZE
        else:
            buffers = conn.encode(frame)
            size = sum(map(len, buffers))
        # acquire/release costs half of a with statement, and a send is mostly overhead.
        lock = self.lock
        lock.acquire()
        try:
            if conn.state is not _OPEN:
                conn.check_open()
            sent = 0
            if conn.write_directly() and self._write_directly:
                if self._writer_waits:  # the stream is over: let its writer end
                    self._changed.notify_all()
                # Nothing waits, and not a stream: write at once, as far as the kernel
                # takes the bytes.
                try:
                    if self._tls:
                        sent = self._tls_send((data,) if buffers is None else buffers)
                    elif buffers is None:
                        sent = self.socket.send(data, _DONTWAIT_FLAG)
                    else:
                        sent = _send_buffers(self.socket, buffers, _DONTWAIT_FLAG)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as error:
                    # The reader sees the same failure and ends the connection.
                    raise ConnectionClosedError(f"send failed: {error}") from error
                if sent == size:
                    conn.frames_sent += 1
                    conn.bytes_sent += size
                    return
                now = _monotonic()
            else:
                now = _monotonic()
                queued = conn.queued_bytes
                if (
                    queued
                    and queued + size > conn.limits.hard_limit
                    and not conn.room_for(size, now)
                ):
                    cut = self._wait_for_room(size)
                    if cut is not None:
                        lock.release()
                        try:
                            self._abort(cut)
                        finally:
                            lock.acquire()
                        raise ConnectionClosedError(f"connection to {conn.peer_id} is {cut}")
                    now = _monotonic()
            slow = conn.enqueue(buffers or (data,), size, sent, now)
            if slow is None:
                if self._writer is None:
                    self._start_writer()
                elif self._writer_waits:
                    self._changed.notify_all()
        finally:
            lock.release()
        if slow is not None:
            self._abort(slow)

    def _wait_for_room(self, size: int) -> DisconnectReason | None:
        """Policies "wait" and "block": wait until the queue has room (called with the
        lock held). Return the reason to cut a peer that stopped draining meanwhile
        (policy "wait"), or None once there is room.

        Raises:
            CommunicationTimeoutError: Policy "block", past the block timeout.
            ConnectionClosedError: The connection ended meanwhile.
        """
        conn = self.connection
        since = _monotonic()
        timeout = conn.limits.block_timeout if conn.limits.policy == "block" else None
        block_deadline = None if timeout is None else since + timeout
        while True:
            now = _monotonic()
            if conn.room_for(size, now):
                return None
            cut = conn.not_draining(now, since)
            if cut is not None:
                return cut
            deadline = conn.drain_deadline(since) or block_deadline
            if deadline is not None and deadline <= now:
                raise CommunicationTimeoutError(
                    f"{conn.queued_bytes} bytes still wait for {conn.peer_id} after {timeout} s"
                )
            if self._writer is None:
                self._start_writer()
            # The writer notifies each time the kernel takes bytes: the peer's progress.
            self._changed.wait(None if deadline is None else deadline - now)
            conn.check_open()

    def _start_writer(self) -> None:
        """Start the writer thread (called with the lock held, when none runs). A running
        writer waits for frames only between those of a stream (``_writer_waits``)."""
        self._writer = threading.Thread(
            target=self._write_loop, name=f"pymasep-comm-writer-{self.peer_id}", daemon=True
        )
        self._writer.start()

    def _write_loop(self) -> None:
        """Writer thread: write the queue in large writes, then the bye when closing;
        end as soon as nothing is left to write, unless a stream goes on."""
        sock = self.socket
        conn = self.connection
        try:
            while True:
                with self.lock:
                    if self._finished.is_set() or conn.state is _CLOSED:
                        self._writer = None
                        return
                    queue = conn.send_queue
                    if not queue:
                        if conn.state is ConnectionState.CLOSING and not conn.bye_sent:
                            bye = conn.bye_bytes()
                            conn.enqueue((bye,), len(bye), 0, _monotonic())
                            continue
                        if conn.state is _OPEN and conn.streaming():
                            # The stream goes on: wait for its next frames, rather than
                            # end and have one of them start a thread again. A frame
                            # written at once (something was received: the stream is
                            # over), a close or the end wakes this wait.
                            self._writer_waits = True
                            self._changed.wait()
                            self._writer_waits = False
                            continue
                        conn.ran_dry()
                        if conn.bye_sent:
                            # Only our writing direction closes: the peer may still have
                            # frames in flight, which the reader delivers until it closes.
                            with contextlib.suppress(OSError):
                                _shutdown(sock, socket.SHUT_WR)
                        self._writer = None
                        self._changed.notify_all()
                        return
                    batch = list(islice(queue, _IOV_MAX))
                    deadline = conn.send_deadline()
                    if deadline is None and conn.limits.soft_limit:
                        # The soft limit may be passed while this thread waits for the
                        # socket, by frames queued meanwhile: look again this soon.
                        deadline = _monotonic() + conn.limits.soft_seconds
                # Written outside the lock so that senders can keep queueing meanwhile;
                # the batch stays at the head of the queue until it is sent.
                if self._tls:
                    sent = self._tls_write(batch, deadline)
                else:
                    sent = self._write(sock, batch, deadline)
                with self.lock:
                    if conn.state is _CLOSED:
                        continue
                    now = _monotonic()
                    if sent:
                        conn.sent(sent, now)
                        self._changed.notify_all()
                    slow = conn.slow_consumer(now)
                if slow is not None:
                    self._abort(slow)
        except OSError as error:
            if not self._finished.is_set():
                self._log.info("writing to %s failed: %s", self.peer_id, error)
                self._abort(DisconnectReason(CONNECTION_LOST, str(error)))
        except Exception as error:
            self._log.exception("the writer of %s failed", self.peer_id)
            self._abort(DisconnectReason(DisconnectCode.INTERNAL_ERROR, repr(error)))
        finally:
            with self.lock:
                if self._writer is threading.current_thread():
                    self._writer = None
                self._changed.notify_all()

    def _tls_send(self, buffers: Iterable[Buffer]) -> int:
        """One non-blocking SSL write of the first bytes of ``buffers``; 0 if it would
        block (the SSL object then expects the same bytes again)."""
        chunk = _tls_chunk(buffers)
        with self._tls_lock:
            try:
                return self.socket.send(chunk)
            except _TLS_WANT:
                return 0

    def _tls_write(self, batch: list[Buffer], deadline: float | None) -> int:
        """The writer's :meth:`_write` over TLS."""
        sent = self._tls_send(batch)
        if not sent:
            timeout = None if deadline is None else max(0.0, deadline - _monotonic())
            _wait_writable(self.socket, timeout)
        return sent

    def _tls_recv_into(self, buffer: bytearray) -> int | None:
        """Read decrypted bytes into ``buffer``; None if none are ready yet."""
        with self._tls_lock:
            try:
                return self.socket.recv_into(buffer)
            except _TLS_WANT:
                return None

    @staticmethod
    def _write(sock: socket.socket, batch: list[Buffer], deadline: float | None) -> int:
        """Write what the kernel takes of ``batch``; wait for room until ``deadline``."""
        if _DONTWAIT is None:
            return _send_buffers(sock, batch)
        try:
            return _send_buffers(sock, batch, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            pass
        timeout = None if deadline is None else max(0.0, deadline - _monotonic())
        _wait_writable(sock, timeout)
        return 0

    # -- receiving -------------------------------------------------------------------

    def receive_frame(self) -> Frame:
        """Wait for receiving a frame from the socket (before the thread is started).

        Returns:
            The next frame, of any kind (a bye frame when the peer closes).

        Raises:
            ConnectionClosedError: The connection ended before a whole frame arrived.
            InvalidStateError: The handler thread is running; it is the one that reads
                (also a ``RuntimeError``).
        """
        if self.is_alive():
            raise InvalidStateError("receive_frame() cannot be used while the handler thread runs")
        pending = self.connection.pending_frames
        while not pending:
            data = self.socket.recv(_RECV_SIZE)
            if not data:
                raise ConnectionClosedError(f"{self.peer_id or self.addr}: {CONNECTION_LOST}")
            pending.extend(self.connection.decoder.feed(data))
        frame = pending.popleft()
        self._log.debug("received %r", frame)
        return frame

    def on_receive(self, frame: Frame) -> None:
        """Callback when a data frame is received (never for control frames).

        It runs in the handler's thread: while it runs, nothing more is read from this
        connection. It may send, on this connection or any other, and close.

        Args:
            frame: Frame received.
        """

    def on_disconnect(self, reason: str) -> None:
        """Callback when the connection ends, whichever side ended it. Runs once.

        Args:
            reason: Why, a :class:`~pymasep.comm.core.DisconnectReason`: a string
                (``CLOSED_LOCALLY``, ``CLOSED_BY_PEER``, ``CONNECTION_LOST`` or
                ``"<code>: <detail>"``) that also carries ``code`` and ``detail``.
        """

    def run(self) -> None:
        """Main thread run that receives frames until the connection ends."""
        conn = self.connection
        reason: DisconnectReason | None = None
        try:
            conn.opened(self.addr, self._tls)
            pending = list(conn.pending_frames)
            conn.pending_frames.clear()
            conn.frames_received += len(pending)
            self._deliver(pending)
            reason = self._read_loop(conn)
        except CommunicationError as error:  # before OSError: a ProtocolError is one
            self._log.warning("closing %s: %s", self.peer_id or self.addr, error)
            reason = conn.protocol_error(error)
        except OSError as error:
            with self.lock:
                closing = conn.state is not _OPEN
            reason = (
                DisconnectReason(CLOSED_LOCALLY)
                if closing
                else DisconnectReason(CONNECTION_LOST, str(error))
            )
        except Exception as error:
            self._log.exception("the reader of %s failed", self.peer_id or self.addr)
            reason = DisconnectReason(DisconnectCode.INTERNAL_ERROR, repr(error))
        finally:
            self._finish(reason or DisconnectReason(CONNECTION_LOST))

    def _read_loop(self, conn: Connection) -> DisconnectReason:
        """Read until the connection ends; return why."""
        if conn.bye_received:
            return conn.bye_reason()
        sock = self.socket
        # One buffer for every read: a fresh 256 KiB bytes per recv() costs more than
        # the read itself (large allocations are mmap'ed).
        buffer = bytearray(_RECV_SIZE)
        view = memoryview(buffer)
        recv_into: Callable[[bytearray], int | None] = sock.recv_into
        if self._tls:
            with self._tls_lock:  # a sender may be in the SSL object, still blocking
                sock.setblocking(False)
            recv_into = self._tls_recv_into
        decode_whole = conn.decoder.decode_whole if conn.tap is None else _never_whole
        on_receive = self.on_receive
        data_kind = FrameKind.DATA
        partial = False  # a frame is half received: its stall deadline runs
        while True:
            # Between whole frames (a round trip's reads) nothing is computed here: the
            # thread goes straight back to recv_into, which drops the GIL for the thread
            # that on_receive may have woken.
            if partial or self._close_deadline is not None:
                reason = self._wait_for_bytes(conn)
                if reason is not None:
                    return reason
            count = recv_into(buffer)
            if not count:
                if count is None:  # TLS: no whole record yet
                    reason = self._wait_for_bytes(conn, block=True)
                    if reason is not None:
                        return reason
                    continue
                with self.lock:
                    return conn.receive_eof()
            conn.reads += 1  # Connection.received(), inlined
            frame = decode_whole(view, count)
            if frame is not None and frame.kind is data_kind:
                # A read holding one data frame (a request, a reply) is the common case.
                conn.bytes_received += count
                conn.frames_received += 1
                try:
                    on_receive(frame)
                except Exception:
                    self._log.exception("on_receive failed for a frame from %s", self.peer_id)
                continue
            if frame is not None:
                conn.bytes_received += count
                conn.frames_received += 1
                self._deliver((frame,))
            else:
                self._deliver(conn.feed(view[:count], _monotonic()))
                partial = conn.decoder.buffered != 0
            if conn.bye_received:
                with self.lock:
                    return conn.bye_reason()

    def _wait_for_bytes(self, conn: Connection, block: bool = False) -> DisconnectReason | None:
        """Wait until the socket is readable, or return why the connection ends: the
        peer stalled in the middle of a frame, or a close from on_receive timed out.
        Without a deadline it returns at once, unless ``block`` (TLS, no record yet)."""
        deadline = conn.receive_deadline()
        close_deadline = self._close_deadline
        if close_deadline is not None and (deadline is None or close_deadline < deadline):
            deadline = close_deadline
        if isinstance(self.socket, ssl.SSLSocket):
            with self._tls_lock:
                if self.socket.pending():
                    return None
        if deadline is None:
            if block:
                _wait_readable(self.socket, None)
            return None
        if _wait_readable(self.socket, deadline - _monotonic()):
            return None
        if deadline is close_deadline:
            self._log.info("%s did not close in time; cutting it", self.peer_id)
            return DisconnectReason(CLOSED_LOCALLY)
        self._log.warning("%s stalled in the middle of a frame", self.peer_id)
        return conn.stalled()

    def _deliver(self, frames: Iterable[Frame]) -> None:
        """Hand data frames to :meth:`on_receive`, each alone; control frames to the
        connection (after a bye, the rest is not delivered)."""
        conn = self.connection
        data_kind = FrameKind.DATA
        on_receive = self.on_receive
        for frame in frames:
            if frame.kind is not data_kind:
                conn.control_frame(frame)
                if conn.bye_received:
                    return
                continue
            try:
                on_receive(frame)
            except Exception:
                # The application's bug must not cut the game's connection.
                self._log.exception("on_receive failed for a frame from %s", self.peer_id)

    # -- closing ---------------------------------------------------------------------

    def close(self, timeout: float = 0.5) -> None:
        """Close the connection: send every queued frame, then the bye, then wait for the
        peer to close its side. Idempotent; safe from any thread, ``on_receive`` and
        ``on_disconnect`` included.

        Args:
            timeout: Seconds to wait for all of that; then the connection is cut. Called
                from ``on_receive``, close() returns at once and the handler's thread
                ends the close, giving up after ``timeout``.
        """
        if self._finished.is_set():
            return
        self.begin_close()
        if threading.current_thread() is self:
            # The reader cannot wait for itself: it gives up reading at this deadline.
            self._close_deadline = _monotonic() + timeout
            return
        if not self.wait_closed(timeout):
            self.abort()
        self.join_closed(_JOIN_GRACE)

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def begin_close(self) -> None:
        """Start a graceful close and return at once: queued frames, then the bye.

        Idempotent. New frames are refused from now on.
        """
        with self.lock:
            if not self.connection.close():
                return
            if self._writer is None:
                self._start_writer()
            else:  # a writer waiting for a stream's next frames sends the bye now
                self._changed.notify_all()
        self._log.debug("closing connection to %s", self.peer_id)

    def wait_closed(self, timeout: float | None) -> bool:
        """Wait until the connection has ended, ``timeout`` seconds at most.

        Returns:
            True if it has ended.
        """
        if self.ident is None and not self._finished.is_set():
            # Never started: nobody reads, so wait only for the queue and the bye.
            deadline = None if timeout is None else _monotonic() + timeout
            with self.lock:
                self._changed.wait_for(
                    lambda: self._writer is None or self.connection.state is _CLOSED,
                    timeout,
                )
            if deadline is None or _monotonic() < deadline or self._writer is None:
                self._finish(DisconnectReason(CLOSED_LOCALLY))
                return True
            return False
        return self._finished.wait(timeout)

    def abort(self) -> None:
        """Cut the connection now, without waiting for the peer (queued frames are
        dropped). The reason is ``CLOSED_LOCALLY``. Idempotent."""
        self._abort(DisconnectReason(CLOSED_LOCALLY))

    def join_closed(self, timeout: float) -> None:
        """Wait for the handler's thread to run the callbacks and end, ``timeout``
        seconds at most (no wait from the handler's own thread)."""
        if threading.current_thread() is self:
            return
        if self.ident is None:
            self._finish(DisconnectReason(CLOSED_LOCALLY))
            return
        self.join(timeout)

    def _abort(self, reason: DisconnectReason) -> None:
        """End the connection with ``reason``: drop the queue and wake every thread."""
        with self.lock:
            conn = self.connection
            if conn.state is _CLOSED:
                return
            dropped = conn.finish(reason)
            self._changed.notify_all()
        if reason.code is not DisconnectCode.CLOSED_LOCALLY:
            self._log.warning(
                "cutting %s: %s (%d bytes dropped)", self.peer_id or self.addr, reason, dropped
            )
        elif dropped:
            self._log.warning(
                "%s did not read in time: %d bytes were not sent", self.peer_id, dropped
            )
        # shutdown() wakes a thread blocked in recv() or select() on this socket;
        # close() alone would not. The reader then ends the connection.
        with contextlib.suppress(OSError):
            _shutdown(self.socket, socket.SHUT_RDWR)
        if self.ident is None:
            self._finish(reason)

    def _finish(self, reason: DisconnectReason) -> None:
        """End the connection once: free the socket, then run the callbacks."""
        with self.lock:
            if self._finished.is_set():
                return
            conn = self.connection
            dropped = conn.finish(reason)
            reason = conn.reason or reason
            self.disconnect_reason = reason
            self._finished.set()
            self._changed.notify_all()
            writer = self._writer
        if dropped:
            self._log.warning("%d bytes for %s were not sent: %s", dropped, self.peer_id, reason)
        with contextlib.suppress(OSError):
            _shutdown(self.socket, socket.SHUT_RDWR)
        if writer is not None and writer is not threading.current_thread():
            writer.join(_JOIN_GRACE)
        self.socket.close()
        self._log.info("connection to %s ended: %s", self.peer_id or self.addr, reason)
        try:
            if self._on_closed is not None:
                self._on_closed(self, reason)
        except Exception:
            self._log.exception("on_closed failed for %s", self.peer_id)
        try:
            self.on_disconnect(reason)
        except Exception:
            self._log.exception("on_disconnect failed for %s", self.peer_id)
        self._callbacks_done.set()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued frame is in the kernel's hands.

        With send policy ``"wait"`` (the default), a peer that takes no byte for the
        limits' ``drain_timeout`` meanwhile is cut, and this raises.

        Args:
            timeout: Seconds to wait at most; None waits as long as the peer drains.

        Raises:
            CommunicationTimeoutError: Frames are still queued after ``timeout``.
            ConnectionClosedError: The connection ended with frames still queued.
        """
        since = _monotonic()
        deadline = None if timeout is None else since + timeout
        conn = self.connection
        cut: DisconnectReason | None = None
        with self.lock:
            target = conn.bytes_sent + conn.queued_bytes
            while conn.bytes_sent < target:
                if conn.state is _CLOSED:
                    raise ConnectionClosedError(f"connection ended: {conn.reason}")
                now = _monotonic()
                cut = conn.not_draining(now, since)
                if cut is not None:
                    break
                remaining = None if deadline is None else deadline - now
                if remaining is not None and remaining <= 0:
                    raise CommunicationTimeoutError(
                        f"{target - conn.bytes_sent} bytes still queued for {self.peer_id}"
                    )
                drain = conn.drain_deadline(since)
                if drain is not None and (remaining is None or drain - now < remaining):
                    remaining = drain - now
                self._changed.wait(remaining)
        if cut is not None:
            self._abort(cut)
            raise ConnectionClosedError(f"connection to {self.peer_id} is {cut}")


def close_handlers(handlers: Iterable[SocketHandler], timeout: float) -> None:
    """Close many handlers at once: each starts its close, then all are waited for
    together, then those left are cut together, so that silent peers cost one timeout,
    not one each. Safe from one of the handlers' own threads (that one ends its close
    once its callback returns).

    Args:
        handlers: The handlers.
        timeout: Seconds to wait at most for the peers to close their side.
    """
    deadline = _monotonic() + timeout
    current = threading.current_thread()
    waited = []
    for handler in handlers:
        if handler is current:
            handler.close(timeout)
        else:
            handler.begin_close()
            waited.append(handler)
    for handler in waited:
        handler.wait_closed(max(0.0, deadline - _monotonic()))
    for handler in waited:
        if not handler.closed:
            handler.abort()
    grace = _monotonic() + _JOIN_GRACE
    for handler in waited:
        handler.join_closed(max(0.0, grace - _monotonic()))


class SocketHandlerQueue(SocketHandler):
    """Thread used to handle received messages from conn, addr.
    Put a message in a queue when received.

    Args:
        conn: Connected socket.
        addr: Remote address.
        logger: Logger used to log send and receive message.
        queue: Queue where the received messages (the frames' bytes) are put.
    """

    def __init__(self, conn: socket.socket, addr: Any, logger: logging.Logger, queue: Any) -> None:
        super().__init__(conn=conn, addr=addr, logger=logger)
        self.receive_queue = queue
        """The queue used to receive messages."""

    def on_receive(self, frame: Frame) -> None:
        """Callback when a data frame is received: put its bytes on the queue.

        Args:
            frame: Frame received.
        """
        self.receive_queue.put(frame.message)


class SocketHandlerPeerQueue(SocketHandler):
    """Like :class:`SocketHandlerQueue`, but puts ``(peer_id, payload)`` on the queue:
    the engine knows which connection carried each frame.

    With a server ``authkey`` that binds ids (a mapping or a callable), ``peer_id`` is
    the id the peer proved it holds the key of, so the engine can check the
    ``src_sub_app_id`` written inside a :class:`~pymasep.comm.core.Message`, which the
    sender chooses freely, against it (``docs/security.md`` shows how).

    Args:
        conn: Connected socket.
        addr: Remote address.
        logger: Logger used to log send and receive message.
        queue: Queue where ``(peer_id, payload)`` pairs are put, in the order received.
    """

    def __init__(self, conn: socket.socket, addr: Any, logger: logging.Logger, queue: Any) -> None:
        super().__init__(conn=conn, addr=addr, logger=logger)
        self.receive_queue = queue
        """The queue used to receive ``(peer_id, payload)`` pairs."""

    def on_receive(self, frame: Frame) -> None:
        """Put ``(peer_id, payload)`` on the queue.

        Args:
            frame: Frame received.
        """
        self.receive_queue.put((self.peer_id, frame.message))
