"""One connection's socket, driven from the process's I/O loop: :class:`Driver`.

The rules (states, bye, limits, stall, reasons) live in the sans-I/O
:class:`~pymasep.comm.core.connection.Connection`; a driver moves its bytes:

* **Sending** goes down once: the caller's thread encodes the frame
  (:meth:`Connection.encode <pymasep.comm.core.Connection.encode>`) and writes
  it at once, non-blocking, while the kernel takes the bytes: a request, a reply, a
  step's observation pay no handoff. What the kernel does not take waits in the
  connection's queue, and the I/O loop writes it when the socket has room, many frames
  per system call (``sendmsg`` with the frames' own buffers: a large payload is never
  copied). A stream (:data:`~pymasep.comm.core.connection.STREAM_AFTER`) is queued
  whole, for those large writes. Past the
  :class:`~pymasep.comm.core.connection.SendLimits`, a sender waits as its policy says.
* **Receiving** runs in the I/O loop: one read when the socket is readable, fed to the
  connection, its data frames handed to the owner (the handler), which delivers them.
* **Closing**: queued frames, then the bye, then the end of the writing direction; the
  loop reads until the peer ends too, then frees the socket and tells the owner once.
* **Resuming** (a connection whose :attr:`Connection.resume
  <pymasep.comm.core.Connection.resume>` is set): a socket that breaks without a bye
  (a reset, an abort, an error, a stall; not an end of stream, which is the peer's
  process closing or dying) is dropped, but the connection is not
  ended: the owner is told (``on_break``), sends go on into the session's log, and
  :meth:`Driver.resume` later carries the connection on a new socket. An ACK is written
  at the end of the read turn that made one due.

Over TLS (an :class:`ssl.SSLSocket`) every call into the SSL object is made under one
lock, since OpenSSL does not allow one object to be used by two threads at once, and the
loop reads what the SSL object has already decrypted (``pending()``) before it waits.

A driver is not thread-safe by itself: its owner's lock (``lock``) guards the connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from itertools import islice
from threading import Lock
from typing import Any

from .connection import (
    CLOSED_LOCALLY,
    CONNECTION_LOST,
    Buffer,
    Connection,
    ConnectionState,
    DisconnectCode,
    DisconnectReason,
)
from .exceptions import (
    CommunicationError,
    CommunicationTimeoutError,
    ConnectionClosedError,
)
from .frame import Frame, FrameKind
from .ioloop import Timer, io_loop
from .tap import SENT_BATCH, SENT_DELAY
from .wire import V1_HEADER, FrameDecoder, Wire

__all__ = ["Driver"]

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_RECV_SIZE = 256 * 1024
_V1_PACK = V1_HEADER.pack
_V1_HEADER_SIZE = V1_HEADER.size
# Up to this payload size, joining header and payload costs less than a gather write.
_JOIN_LIMIT = 16 * 1024
_OPEN = ConnectionState.OPEN
# Enum members as module constants: on a path of every frame, looking one up on its
# class costs as much as the test it serves.
_DATA = FrameKind.DATA
_V1 = Wire.V1
_ACK = FrameKind.ACK
_CLOSED = ConnectionState.CLOSED
_monotonic = time.monotonic
# MSG_DONTWAIT makes one send non-blocking whatever the socket's mode (a handler may send
# before it is started, on a socket its handshake left blocking).
_DONTWAIT = int(getattr(socket, "MSG_DONTWAIT", 0))
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
try:
    _IOV_MAX = min(int(os.sysconf("SC_IOV_MAX")), 1024)
except (AttributeError, ValueError, OSError):
    _IOV_MAX = 16
# Most bytes one SSL write takes: a bounded copy when a large frame is joined. A write
# that would block must be retried with the same first bytes and at least as many, which
# the head of the send queue, cut at this size, always is.
_TLS_WRITE_SIZE = 256 * 1024
_TLS_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)
_WOULD_BLOCK = (BlockingIOError, InterruptedError)

# One buffer for every read of the loop (a single thread): a fresh 256 KiB per recv()
# would cost more than the read itself. Frames are copied out of it as they are split.
_read_buffer = bytearray(_RECV_SIZE)
_read_view = memoryview(_read_buffer)


def _send_buffers(sock: socket.socket, buffers: list[Buffer]) -> int:
    """Send as much of ``buffers`` as one non-blocking system call takes."""
    if len(buffers) == 1:
        return sock.send(buffers[0], _DONTWAIT)
    if _HAS_SENDMSG:
        return sock.sendmsg(buffers, (), _DONTWAIT)
    return sock.send(b"".join(buffers), _DONTWAIT)


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


_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_CLOSE = 7  # tcpi_state of a connection that ended by a reset (Linux's TCP_CLOSE)


def was_reset(sock: socket.socket) -> bool:
    """Whether the kernel says the connection was reset: over TLS (whose socket reports
    a reset as an end of stream) or after a send took the reset's error, a read then
    sees a mere end of stream. Linux tells by the TCP state (CLOSE after a reset,
    CLOSE_WAIT after the peer's FIN); elsewhere it cannot tell, and says False."""
    if _TCP_INFO is None:
        return False
    try:
        info = socket.socket.getsockopt(sock, socket.IPPROTO_TCP, _TCP_INFO, 1)
    except OSError:
        return False
    return info[0] == _TCP_CLOSE


def shutdown(sock: socket.socket, how: int) -> None:
    """The plain socket's shutdown, also for an SSLSocket: its own shutdown() drops the
    SSL object, which the loop may still be reading."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, how)


class Driver:
    """Moves one connection's bytes; see the module docstring.

    Args:
        sock: The connected socket.
        address: The peer's address (for the connection's tap).
        lock: The owner's lock, which guards the connection.
        log: Where the driver logs (with the peer on each record).
        deliver: Called in the loop with the data frames of each read, in order.
        ended: Called once with the reason, when the connection has ended and the socket
            is closed.
    """

    def __init__(
        self,
        sock: socket.socket,
        address: Any,
        lock: Lock,
        log: logging.LoggerAdapter[Any],
        deliver: Callable[[list[Frame]], None],
        ended: Callable[[DisconnectReason], None],
    ) -> None:
        self.socket = sock
        self.address = address
        self.lock = lock
        self.changed = threading.Condition(lock)
        """Notified whenever bytes leave the queue or the connection ends."""
        self.connection = Connection(Wire.V1)
        self.log = log
        self.loop = io_loop()
        self.finished = threading.Event()
        """Set once the connection has ended (before the owner is told)."""
        self._deliver = deliver
        self._ended = ended
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._tls_lock = threading.Lock()
        self._started = False
        self._registered = False
        self._events = 0
        self._want_write = False  # the loop should write: set under the lock
        self._write_requested = False  # a request to the loop is on its way
        self._reading = True
        self._stall_timer: Timer | None = None
        self._tell_timer: Timer | None = None  # tells the tap of the frames sent
        self._soft_timer: Timer | None = None
        self._close_timer: Timer | None = None
        # A send that failed on a resumable connection: the kernel reports a socket's
        # error once, so the loop's next read may then see a mere end of stream.
        self._send_failed: OSError | None = None
        self._ack_due = False  # a read counted enough for an ACK: sent at its turn's end
        self.on_break: Callable[[DisconnectReason], None] | None = None
        """Called in the loop when a resumable connection's socket breaks (the owner
        then resumes it or, in the end, aborts it); None: a break ends it."""
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Frames are whole messages: send each at once instead of waiting for more.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def peer(self) -> str:
        return str(self.connection.peer_id)

    # -- sending (any thread) -----------------------------------------------------------

    def send(self, frame: Frame) -> None:
        """Send a data frame without waiting for the peer; see
        :meth:`~pymasep.comm.core.SocketHandler.send_frame_async`."""
        conn = self.connection
        size = frame.size
        # A small v1 frame, as a round trip's are, is encoded inline into one buffer.
        buffers: list[Buffer] | None = None
        data = b""
        if size <= _JOIN_LIMIT and conn.wire is _V1:
            data = _V1_PACK(frame.kind, size) + frame.message
            size += _V1_HEADER_SIZE
        else:
            buffers = conn.frame_buffers(frame)
            size = sum(map(len, buffers))
        tell = False
        lock = self.lock
        lock.acquire()  # half the cost of a with statement; a send is mostly overhead
        try:
            if conn.state is not _OPEN:
                conn.check_open()
            now = 0.0
            if conn.tap is not None:
                # Connection.note_sent, inline, under the lock: kept in the order the
                # bytes go out; the tap is told of a batch at once (see the tap module).
                conn.untold_frames.append(frame)
                times = conn.untold_times
                times.append(now := _monotonic())
                if self._tell_timer is None:
                    self._tell_timer = self.loop.call_at(now + SENT_DELAY, self._tell_due)
                tell = size > _JOIN_LIMIT or len(times) >= SENT_BATCH
            resume = conn.resume
            if resume is not None:
                log = resume.log
            sent = 0
            direct = not conn.broken and conn.write_directly()
            if direct:
                if resume is not None:  # numbered in the order its bytes go out
                    # SendLog.record, inline: on this path a call costs as much as all
                    # the rest (its 2**64 check is left to a session that lasts 580,000
                    # years at a million frames a second).
                    log.frames.append(frame.message)
                    log.recorded_bytes += size
                    log.sent += 1
                try:
                    if self._tls:
                        sent = self._tls_send((data,) if buffers is None else buffers)
                    elif buffers is None:
                        sent = self.socket.send(data, _DONTWAIT)
                    else:
                        sent = _send_buffers(self.socket, buffers)
                except _WOULD_BLOCK:
                    sent = 0
                except OSError as error:
                    # The loop sees the same failure: it ends the connection, or holds
                    # it for a resume (this frame is in the log then).
                    if resume is None:
                        raise ConnectionClosedError(f"send failed: {error}") from error
                    self._send_failed = error
                    sent = 0
                if sent == size:
                    conn.frames_sent += 1
                    conn.bytes_sent += size
                    return
            else:
                queued = conn.queued_bytes
                limit = conn.limits.hard_limit
                if (
                    (queued or conn.broken)
                    and (
                        queued + size > limit
                        # The frames held for a resume count too (every queued one is):
                        # SendLog.unacked_bytes, inline on this path of every frame.
                        or (
                            resume is not None
                            and log.recorded_bytes - log.released_bytes + size > limit
                        )
                    )
                    and not conn.room_for(size, _monotonic())
                ):
                    cut = self._wait_for_room(size)
                    if cut is not None:
                        lock.release()
                        try:
                            self.abort(cut)
                        finally:
                            lock.acquire()
                        raise ConnectionClosedError(f"connection to {conn.peer_id} is {cut}")
                if resume is not None:  # SendLog.record, inline (see above)
                    log.frames.append(frame.message)
                    log.recorded_bytes += size
                    log.sent += 1
                    if conn.broken:  # held in the log until the resume sends it
                        return
            slow = conn.enqueue(buffers or (data,), size, sent, now or _monotonic())
            if slow is None:
                self._request_write()
                if conn.limits.policy == "disconnect":  # the only one with a soft limit
                    self._arm_soft_timer()
        finally:
            lock.release()
            if tell:
                conn.tell_sent()
        if slow is not None:
            self.abort(slow)

    def _tell_due(self) -> None:
        """In the loop: tell the tap of the frames sent since the timer was armed, and
        arm it again for those kept meanwhile."""
        conn = self.connection
        conn.tell_sent()
        with self.lock:
            self._tell_timer = None
            if conn.untold_frames and not self.finished.is_set():
                self._tell_timer = self.loop.call_at(_monotonic() + SENT_DELAY, self._tell_due)

    def _wait_for_room(self, size: int) -> DisconnectReason | None:
        """Policies "wait" and "block": wait until the queue has room (lock held). Return
        the reason to cut a peer that stopped draining meanwhile, or None once there is
        room.

        Raises:
            CommunicationTimeoutError: Policy "block", past the block timeout.
            ConnectionClosedError: The connection ended meanwhile.
        """
        conn = self.connection
        if self.loop.in_loop():
            # The loop is what drains the queue: it cannot wait for itself (a callback
            # that sends from the loop queues past the limit, or holds it past the limit
            # during an outage).
            return None
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
            self._request_write()
            # The loop notifies each time the kernel takes bytes: the peer's progress.
            self.changed.wait(None if deadline is None else deadline - now)
            conn.check_open()

    def flush(self, timeout: float | None) -> None:
        """Wait until every queued frame is in the kernel's hands; see
        :meth:`~pymasep.comm.core.SocketHandler.flush`."""
        since = _monotonic()
        deadline = None if timeout is None else since + timeout
        conn = self.connection
        cut: DisconnectReason | None = None
        with self.lock:
            target = conn.bytes_sent + conn.queued_bytes
            while conn.bytes_sent < target:
                if conn.state is _CLOSED:
                    raise ConnectionClosedError(f"connection ended: {conn.reason}")
                if conn.broken:  # what was queued is held for the resume
                    return
                if self.loop.in_loop():
                    raise CommunicationTimeoutError("flush() cannot wait in the I/O thread")
                now = _monotonic()
                cut = conn.not_draining(now, since)
                if cut is not None:
                    break
                remaining = None if deadline is None else deadline - now
                if remaining is not None and remaining <= 0:
                    raise CommunicationTimeoutError(
                        f"{target - conn.bytes_sent} bytes still queued for {self.peer}"
                    )
                drain = conn.drain_deadline(since)
                if drain is not None and (remaining is None or drain - now < remaining):
                    remaining = drain - now
                self.changed.wait(remaining)
        if cut is not None:
            self.abort(cut)
            raise ConnectionClosedError(f"connection to {self.peer} is {cut}")

    def _request_write(self) -> None:
        """Have the loop write the queue (called with the lock held)."""
        self._want_write = True
        if not self._write_requested and self._started:
            self._write_requested = True
            # Always at the loop's next turn, even from the loop itself: the caller
            # holds the lock, which _update_events takes.
            self.loop.call_soon_threadsafe(self._update_events)

    def _tls_send(self, buffers: Iterable[Buffer]) -> int:
        """One non-blocking SSL write of the first bytes of ``buffers``; 0 if it would
        block (the SSL object then expects the same bytes again)."""
        chunk = _tls_chunk(buffers)
        with self._tls_lock:
            try:
                return self.socket.send(chunk)
            except _TLS_WANT:
                return 0

    # -- closing (any thread) -----------------------------------------------------------

    def begin_close(self) -> None:
        """Start a graceful close (idempotent)."""
        with self.lock:
            if not self.connection.close():
                return
            broken = self.connection.broken
            if not broken:
                self._request_write()  # the queue, then the bye
        if broken:  # no socket to say bye on: the session ends here
            self.abort(DisconnectReason(CLOSED_LOCALLY, "closed while the connection was resuming"))
            return
        self.log.debug("closing connection to %s", self.peer)

    def close_by(self, deadline: float) -> None:
        """Cut the connection at ``deadline`` unless it has ended by then (a close that
        cannot wait: from the loop, or from a handler's delivery)."""

        def arm() -> None:
            if not self.finished.is_set() and self._close_timer is None:
                self._close_timer = self.loop.call_at(deadline, self._close_timed_out)

        self.loop.run_in_loop(arm)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        if not self.finished.is_set():
            self.log.info("%s did not close in time; cutting it", self.peer)
            self.abort(DisconnectReason(CLOSED_LOCALLY))

    def abort(self, reason: DisconnectReason) -> None:
        """End the connection now with ``reason``: drop the queue, wake every waiter."""
        with self.lock:
            conn = self.connection
            if conn.state is _CLOSED:
                return
            dropped = conn.finish(reason)
            self.changed.notify_all()
        if reason.code is not DisconnectCode.CLOSED_LOCALLY:
            lost = f" ({dropped} bytes dropped)" if dropped else ""
            self.log.warning("cutting %s: %s%s", self.peer, reason, lost)
        elif dropped:
            self.log.warning("%s did not read in time: %d bytes were not sent", self.peer, dropped)
        # Wakes the loop on this socket (it reads the end) and any blocking reader.
        shutdown(self.socket, socket.SHUT_RDWR)
        if self._started:
            self.loop.run_in_loop(lambda: self._end(reason))
        else:
            self._end(reason)

    def wait_ended(self, timeout: float | None) -> bool:
        """Wait until the connection has ended, ``timeout`` seconds at most; True if it
        has. Never started, it has no place in the loop: its queue and the bye are written
        from the caller's thread (``timeout`` or 60 s at most), then the socket is freed."""
        if self._started or self.finished.is_set():
            return self.finished.wait(timeout)
        if not self._drain_unstarted(60.0 if timeout is None else timeout):
            return False
        self.abort(DisconnectReason(CLOSED_LOCALLY))
        return True

    def _drain_unstarted(self, timeout: float) -> bool:
        deadline = _monotonic() + timeout
        with self.lock:
            conn = self.connection
            if conn.state is _CLOSED:
                return False
            data = b"".join(bytes(b) for b in conn.send_queue)
            if conn.state is ConnectionState.CLOSING and not conn.bye_sent:
                data += conn.bye_bytes()
        try:
            remaining = deadline - _monotonic()
            if remaining <= 0:
                return False
            self.socket.settimeout(remaining)
            self.socket.sendall(data)
        except OSError:
            return False
        shutdown(self.socket, socket.SHUT_WR)
        return True

    def receive_blocking(self) -> Frame:
        """The next frame, read in the caller's thread (a handler not started yet).

        Raises:
            ConnectionClosedError: The connection ended before a whole frame arrived.
        """
        pending = self.connection.pending_frames
        while not pending:
            data = self.socket.recv(_RECV_SIZE)
            if not data:
                raise ConnectionClosedError(f"{self.peer}: {CONNECTION_LOST}")
            pending.extend(self.connection.decoder.feed(data))
        frame = pending.popleft()
        self.log.debug("received %r", frame)
        return frame

    # -- the loop ------------------------------------------------------------------------

    def start(self) -> None:
        """Hand the connection to the loop (the frames that came with the handshake are
        delivered first)."""
        with self.lock:
            if self.finished.is_set():
                return
            # In the caller's thread: the tap hears of the opening before any frame
            # sent once start() has returned.
            self.connection.opened(self.address, self._tls)
            self._started = True
            self._write_requested = True
        if self._tls:
            with self._tls_lock:  # a sender may be in the SSL object
                self.socket.setblocking(False)
        else:
            self.socket.setblocking(False)
        self.loop.run_in_loop(self._register)

    def _register(self) -> None:
        conn = self.connection
        if self.finished.is_set():
            return
        if conn.state is _CLOSED:  # aborted before the loop took it
            self._end(conn.reason or DisconnectReason(CLOSED_LOCALLY))
            return
        pending = list(conn.pending_frames)
        conn.pending_frames.clear()
        conn.frames_received += len(pending)
        try:
            if pending and not self._take(pending):
                return
        except CommunicationError as error:
            self._end(conn.protocol_error(error))
            return
        self._registered = True
        self._update_events()
        if self._tls:
            self._read_turn()  # bytes may wait in the SSL object already
        elif conn.resume is not None:
            self._acknowledge()

    def _update_events(self) -> None:
        """Watch for room to write while something waits, for bytes while reading (a
        paused connection is not watched for reads at all: a level-triggered selector
        would report them again and again)."""
        if not self._registered:
            return
        with self.lock:
            self._write_requested = False
            want = (_READ if self._reading else 0) | (_WRITE if self._want_write else 0)
        if want == self._events:
            return
        selector = self.loop.selector
        if not self._events:
            selector.register(self.socket, want, self._ready)
        elif not want:
            selector.unregister(self.socket)
        else:
            selector.modify(self.socket, want, self._ready)
        self._events = want

    def pause_reading(self, paused: bool) -> None:
        """Stop (or resume) reading: what the owner has not delivered yet is bounded."""

        def apply() -> None:
            self._reading = not paused
            self._update_events()
            if not paused and self._registered:
                self._read_turn()

        self.loop.run_in_loop(apply)

    def _ready(self, mask: int) -> None:
        if mask & _WRITE:
            self._write()
        if mask & _READ and self._registered and self._reading:
            self._read_turn()

    def _read_turn(self) -> None:
        """Read, then acknowledge what the read made due (a resumable connection)."""
        self._read()
        if self._ack_due and self._registered:
            self._acknowledge()

    def _acknowledge(self) -> None:
        """Write the session's ACK if one is due: at once when nothing waits before it
        and the socket takes it, else queued (it is not a frame of the application)."""
        conn = self.connection
        assert conn.resume is not None
        self._ack_due = False
        if not conn.resume.acks.ack_due:  # counted by this thread alone: no lock needed
            return
        with self.lock:
            if conn.state is _CLOSED or conn.broken or conn.bye_sent:
                return
            ack = conn.resume.acks.take_ack()
            if ack is None:
                return
            sent = 0
            if not conn.send_queue:
                try:
                    sent = self._tls_send((ack,)) if self._tls else self.socket.send(ack, _DONTWAIT)
                except _WOULD_BLOCK:
                    sent = 0
                except OSError as error:
                    self._send_failed = error  # the read that follows breaks it
                    return
                conn.bytes_sent += sent
                if sent == len(ack):
                    return
            conn.enqueue_control(ack[sent:])
            self._request_write()

    def _write(self) -> None:
        """Write the queue as far as the socket takes it; then the bye when closing."""
        conn = self.connection
        slow: DisconnectReason | None = None
        try:
            with self.lock:
                while True:
                    if conn.state is _CLOSED:
                        return
                    queue = conn.send_queue
                    if not queue:
                        if conn.state is ConnectionState.CLOSING and not conn.bye_sent:
                            bye = conn.bye_bytes()
                            conn.enqueue((bye,), len(bye), 0, _monotonic())
                            continue
                        if not conn.streaming():
                            conn.ran_dry()
                        if conn.bye_sent:
                            # Only our writing direction ends: the peer may still have
                            # frames in flight, which the loop delivers until it ends.
                            shutdown(self.socket, socket.SHUT_WR)
                        self._want_write = False
                        self.changed.notify_all()
                        break
                    batch = list(islice(queue, _IOV_MAX))
                    if self._tls:
                        sent = self._tls_send(batch)
                    else:
                        try:
                            sent = _send_buffers(self.socket, batch)
                        except _WOULD_BLOCK:
                            sent = 0
                    if sent:
                        now = _monotonic()
                        conn.sent(sent, now)
                        self.changed.notify_all()
                        slow = conn.slow_consumer(now)
                        if slow is not None:
                            break
                    if not sent or conn.send_queue:
                        break  # the socket is full: wait until it has room
                self._arm_soft_timer()
        except OSError as error:
            if not self.finished.is_set():
                self.log.info("writing to %s failed: %s", self.peer, error)
                self._lost(DisconnectReason(CONNECTION_LOST, str(error)))
            return
        if slow is not None:
            self.abort(slow)
            return
        self._update_events()

    def _arm_soft_timer(self) -> None:
        """Policy "disconnect": look again when the soft limit's time is up (lock held)."""
        deadline = self.connection.send_deadline()
        if deadline is not None and self._soft_timer is None:
            self._soft_timer = self.loop.call_at(deadline, self._soft_timed_out)

    def _soft_timed_out(self) -> None:
        with self.lock:
            self._soft_timer = None
            slow = self.connection.slow_consumer(_monotonic())
            if slow is None:
                self._arm_soft_timer()
        if slow is not None:
            self.abort(slow)

    def _read(self) -> None:
        """One read (over TLS, and what the SSL object holds decrypted), fed to the
        connection and handed to the owner."""
        conn = self.connection
        sock = self.socket
        try:
            while True:
                # A large frame is read straight into its own buffer (zero-copy).
                direct = conn.direct_view() if conn.decoder.buffered else None
                target = _read_buffer if direct is None else direct
                if self._tls:
                    with self._tls_lock:
                        try:
                            count = sock.recv_into(target)
                        except _TLS_WANT:
                            return
                else:
                    try:
                        count = sock.recv_into(target)
                    except _WOULD_BLOCK:
                        return
                if not count:
                    # An end of stream without a bye is the peer's process closing (or
                    # dying: its kernel closes its sockets): never resumed. A network
                    # that breaks resets, aborts or stalls instead.
                    with self.lock:
                        reason = conn.receive_eof()
                    if reason.code is not DisconnectCode.CONNECTION_LOST:
                        self._end(reason)
                    elif self._send_failed is not None:  # the reset that a send saw first
                        self._lost(DisconnectReason(CONNECTION_LOST, str(self._send_failed)))
                    elif conn.resume is not None and was_reset(sock):
                        self._lost(DisconnectReason(CONNECTION_LOST, "reset by the peer"))
                    else:
                        self._end(reason)
                    return
                now = _monotonic()
                if direct is not None:
                    conn.reads += 1  # Connection.received(), inlined
                    frames = conn.direct_filled(count, now)
                    if frames and not self._take(frames):
                        return
                    if not self._tls or not self._reading:
                        return
                    continue
                # The whole-frame shortcut bypasses Connection.feed, which tells the tap.
                frame = None if conn.tap else conn.decoder.decode_whole(_read_view, count)
                if frame is not None:
                    conn.bytes_received += count
                    conn.frames_received += 1
                    if frame.kind is _DATA:  # a request or a reply: the common read
                        conn.reads += 1
                        if conn.resume is not None and conn.resume.acks.count(1, count, now):
                            self._ack_due = True
                        self._deliver([frame])
                        if not self._tls or not self._reading:
                            return
                        continue
                    frames = [frame]
                else:
                    frames = conn.feed(_read_view[:count], now)
                # A read of ACKs alone is not the peer talking: a stream stays batched.
                if not frames or any(f.kind is not _ACK for f in frames):
                    conn.reads += 1
                if frames:
                    if not self._take(frames, count, now):
                        return
                elif conn.resume is not None and conn.resume.acks.count(0, count, now):
                    # Part of a frame: its bytes count toward the ACK by bytes all the same.
                    self._ack_due = True
                if conn.decoder.buffered and self._stall_timer is None:
                    deadline = conn.receive_deadline()
                    if deadline is not None:
                        self._stall_timer = self.loop.call_at(deadline, self._check_stall)
                if not self._tls or not self._reading:
                    return
                assert isinstance(sock, ssl.SSLSocket)
                with self._tls_lock:
                    if not sock.pending():
                        return
        except CommunicationError as error:  # a ProtocolError; before OSError
            self.log.warning("closing %s: %s", self.peer, error)
            self._end(conn.protocol_error(error))
        except OSError as error:
            with self.lock:
                closing = conn.state is not _OPEN
            if closing:
                self._end(DisconnectReason(CLOSED_LOCALLY))
            elif isinstance(error, ssl.SSLEOFError) and not was_reset(sock):
                # A TLS peer gone without a bye, its socket closed: its process ended.
                self._end(DisconnectReason(CONNECTION_LOST, str(error)))
            else:
                self._lost(DisconnectReason(CONNECTION_LOST, str(error)))

    def _take(self, frames: list[Frame], size: int | None = None, now: float | None = None) -> bool:
        """Hand data frames to the owner (``size``: the bytes read that brought them,
        if known, ``now``: when); a bye ends the connection. False once ended."""
        conn = self.connection
        data = [f for f in frames if f.kind is _DATA]
        if len(data) != len(frames):
            data = conn.receive_frames(frames)  # counts them for the session
            if conn.resume is not None and conn.resume.acks.ack_due:
                self._ack_due = True
        elif conn.resume is not None and conn.count_received(data, size, now):
            self._ack_due = True
        if data:
            self._deliver(data)
        if conn.bye_received:
            with self.lock:
                reason = conn.bye_reason()
            self._end(reason)
            return False
        return True

    def _check_stall(self) -> None:
        self._stall_timer = None
        if self.finished.is_set():
            return
        conn = self.connection
        deadline = conn.receive_deadline()
        if deadline is None:
            return
        if deadline <= _monotonic():
            self.log.warning("%s stalled in the middle of a frame", self.peer)
            self._lost(conn.stalled())
        else:
            self._stall_timer = self.loop.call_at(deadline, self._check_stall)

    # -- resuming ------------------------------------------------------------------------

    def _lost(self, reason: DisconnectReason) -> None:
        """The socket broke without a bye (in the loop): hold a resumable connection for
        its owner to resume, end any other."""
        conn = self.connection
        with self.lock:
            hold = (
                self.on_break is not None
                and conn.resume is not None
                and conn.state is _OPEN
                and not conn.broken
                and not self.finished.is_set()
            )
            if hold:
                conn.broke(_monotonic(), reason)
                self.changed.notify_all()  # a flush() returns, a waiting sender looks again
            elif conn.broken:
                return  # the same break, seen twice
        if not hold:
            self._end(reason)
            return
        for timer in (self._stall_timer, self._soft_timer):
            if timer is not None:
                timer.cancel()
        self._stall_timer = self._soft_timer = None
        self._drop_socket(self.socket)
        assert conn.resume is not None and self.on_break is not None
        self.log.warning(
            "the connection to %s broke (%s); it may resume within %g s",
            self.peer,
            reason,
            conn.resume.window,
        )
        self.on_break(reason)

    def _drop_socket(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` and close it (in the loop)."""
        if self._registered:
            self._registered = False
            with contextlib.suppress(KeyError, ValueError):
                self.loop.selector.unregister(sock)
        self._events = 0
        shutdown(sock, socket.SHUT_RDWR)
        sock.close()

    def resume(
        self,
        sock: socket.socket,
        address: Any,
        decoder: FrameDecoder,
        pending_frames: list[Frame],
        decide: Callable[[], tuple[bytes, list[bytes]] | None],
    ) -> list[bytes] | None:
        """Carry the connection on a new socket, whose resume handshake is done (any
        thread).

        Under the lock, so that no frame is sent meanwhile: ``decide()`` checks the
        resume and returns the bytes to write first (the server's answer) and the
        frames to send again, or None to refuse (nothing changes). Then the new socket
        replaces the old one (closed, if the owner had not seen it break), its
        ``pending_frames`` are delivered first, and the loop reads it.

        Returns:
            The frames sent again, or None when ``decide`` refused.

        Raises:
            ConnectionClosedError: The connection has ended meanwhile. And whatever
                ``decide`` raises: nothing changes then.
        """
        conn = self.connection
        with self.lock:
            if conn.state is not _OPEN or self.finished.is_set():
                raise ConnectionClosedError(f"connection to {conn.peer_id} is {conn.reason}")
            decided = decide()
            if decided is None:
                return None
            prefix, resend = decided
            old = None if conn.broken else self.socket
            conn.resumed(decoder, pending_frames)
            self._send_failed = None
            self.socket, self.address = sock, address
            self._tls = isinstance(sock, ssl.SSLSocket)
            if prefix:
                conn.enqueue_control(prefix)
            now = _monotonic()
            for payload in resend:  # already numbered: not recorded nor tapped again
                size = len(payload)
                if size <= _JOIN_LIMIT:
                    conn.enqueue((_V1_PACK(_DATA, size) + payload,), size + _V1_HEADER_SIZE, 0, now)
                else:
                    header = _V1_PACK(_DATA, size)
                    conn.enqueue((header, payload), size + _V1_HEADER_SIZE, 0, now)
            self._want_write = bool(conn.send_queue)
            self._write_requested = True
            self.changed.notify_all()
        if self._tls:
            with self._tls_lock:
                sock.setblocking(False)
        else:
            sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.loop.in_loop():
            self._reattach(old)
        else:
            self.loop.run_in_loop(lambda: self._reattach(old))
        return resend

    def _reattach(self, old: socket.socket | None) -> None:
        if old is not None:
            self._drop_socket(old)
        self._registered = False
        self._events = 0
        self._register()

    def _end(self, reason: DisconnectReason) -> None:
        """End the connection once: free the socket, then tell the owner."""
        with self.lock:
            if self.finished.is_set():
                return
            conn = self.connection
            dropped = conn.finish(reason)
            reason = conn.reason or reason
            self.finished.set()
            self.changed.notify_all()
        for timer in (self._stall_timer, self._soft_timer, self._close_timer, self._tell_timer):
            if timer is not None:
                timer.cancel()
        if dropped:
            self.log.warning("%d bytes for %s were not sent: %s", dropped, self.peer, reason)
        if self._registered:
            self._registered = False
            with contextlib.suppress(KeyError, ValueError):
                self.loop.selector.unregister(self.socket)
        shutdown(self.socket, socket.SHUT_RDWR)
        self.socket.close()
        self._ended(reason)
