"""One connection, as the application sees it: :class:`SocketHandler` and its queues.

The bytes are moved by a :class:`~pymasep.comm.core.driver.Driver` in the process's
one I/O thread (:mod:`pymasep.comm.core.ioloop`); a handler sends (from the caller's
thread, see the driver) and delivers what arrives to :meth:`SocketHandler.on_receive`:

* :class:`SocketHandlerQueue` and :class:`SocketHandlerPeerQueue` on an unbounded
  queue, and a handler whose ``on_receive`` is not overridden, are delivered from the
  I/O thread itself: they have no thread of their own;
* any other handler (its ``on_receive`` may block: it may wait for a lock, a reply, a
  user) gets a delivery thread of its own, which is the handler's ``Thread``: a blocked
  handler then never delays another connection. What it has not delivered yet is
  bounded: past :data:`RECEIVE_LIMIT` bytes its connection is not read until it catches
  up (the peer then waits, as TCP makes it). ``receive_may_block`` says which, when the
  class cannot tell.

A handler is still a :class:`threading.Thread`: ``start()`` hands the connection to the
I/O thread (and starts the delivery thread, if any); ``is_alive()`` is true from
``start()`` until the connection has ended and :meth:`SocketHandler.on_disconnect` has
run; ``join()`` waits for that. ``ident`` is None for a handler with no thread.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .connection import (
    CLOSED_BY_PEER,
    CLOSED_LOCALLY,
    CONNECTION_LOST,
    Connection,
    ConnectionStats,
    DisconnectReason,
    SendQueue,
)
from .driver import Driver
from .exceptions import InvalidStateError
from .frame import Frame, FrameKind
from .inbox import RECEIVE_LIMIT, Inbox
from .wire import Wire

__all__ = [
    "CLOSED_BY_PEER",
    "CLOSED_LOCALLY",
    "CONNECTION_LOST",
    "RECEIVE_LIMIT",
    "SendQueue",
    "SocketHandler",
    "SocketHandlerPeerQueue",
    "SocketHandlerQueue",
    "close_handlers",
]

_Self = TypeVar("_Self", bound="SocketHandler")
_monotonic = time.monotonic
# Once a connection has been cut, how long close() waits for the callbacks to run.
_JOIN_GRACE = 1.0


class SocketHandler(threading.Thread):
    """Thread used to handle received messages from conn, addr.

    Subclasses override :meth:`on_receive` (and, if they like, :meth:`on_disconnect`).
    :class:`~pymasep.comm.server.Server` and :class:`~pymasep.comm.client.Client` build
    handlers as ``socket_handler_class(conn, addr, logger, *socket_handler_args)``, hand
    them the connection their handshake opened (:meth:`attach`), then ``start()`` them.
    Use it as a context manager, or call :meth:`close`. See the module docstring for
    which thread runs :meth:`on_receive`.

    Args:
        conn: Connected socket.
        addr: Remote address.
        logger: Logger used to log send and receive message.
    """

    receive_may_block: bool | None = None
    """Whether :meth:`on_receive` may block, so that the handler needs a delivery thread
    of its own; None (default): True for a class that overrides it, except the queues'
    own on an unbounded ``queue.Queue`` or ``queue.SimpleQueue``. Set it False on a
    subclass whose ``on_receive`` never waits, to spare the thread."""

    def __init__(self, conn: socket.socket, addr: Any, logger: logging.Logger) -> None:
        super().__init__(name=f"pymasep-comm-handler-{addr}", daemon=True)
        self.lock = threading.Lock()
        """Lock to send messages one at a time: frames never interleave on the wire."""
        self.logger = logger
        """Logger of communication."""
        self.socket = conn
        """Socket to communicate."""
        self.addr = addr
        """Remote address."""
        self.disconnect_reason: DisconnectReason | None = None
        """Why the connection ended, once it has (see :meth:`on_disconnect`)."""
        # The library's own records carry the peer (record.peer), whatever the logger.
        self._log = logging.LoggerAdapter(logger, {"peer": str(addr)})
        self._driver = Driver(conn, addr, self.lock, self._log, self._take, self._ended)
        self._on_closed: Callable[[SocketHandler, DisconnectReason], None] | None = None
        self._launched = False
        self._own_thread = False
        self._inbox = Inbox(self._driver.pause_reading)
        self._callbacks_done = threading.Event()

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
        self._driver.connection = connection
        self._on_closed = on_closed
        if connection.peer_id is not None:
            self.name = f"pymasep-comm-handler-{connection.peer_id}"
            self._log = self._driver.log = logging.LoggerAdapter(
                self.logger, {"peer": connection.peer_id}
            )

    @property
    def connection(self) -> Connection:
        """The state of the connection (see :class:`~pymasep.comm.core.connection.Connection`);
        read it under :attr:`lock`."""
        return self._driver.connection

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
        return self._driver.finished.is_set()

    # -- sending ---------------------------------------------------------------------

    def send_frame(self, frame: Frame) -> None:
        """Send a frame through the socket, and return once the kernel has all of it.

        Frames queued before it by :meth:`send_frame_async` go first. Sending
        :meth:`Frame.bye_frame` closes the connection, as :meth:`close` does.

        Args:
            frame: Frame to send.

        Raises:
            ConnectionClosedError: The connection is closed, or closes before the frame
                is sent (also when the peer takes no byte for the drain timeout).
            FrameTooLargeError: The wire cannot carry a frame this large.
        """
        if frame.kind is FrameKind.BYE:
            self.close()
            return
        self.send_frame_async(frame)
        self.flush()

    def send_frame_async(self, frame: Frame) -> None:
        """Send a frame without waiting for the peer.

        Written at once while the kernel takes it, else queued for the I/O thread;
        frames from one thread arrive in order. Past the connection's
        :class:`~pymasep.comm.core.connection.SendLimits` it waits as their policy says
        (``docs/protocol.md``, Slow interfaces). :meth:`Frame.bye_frame` closes the
        connection gracefully, after the queued frames.

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
        if frame.kind is FrameKind.BYE:
            self.begin_close()
        else:
            self._driver.send(frame)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued frame is in the kernel's hands.

        With send policy ``"wait"`` (the default), a peer that takes no byte for the
        limits' ``drain_timeout`` meanwhile is cut, and this raises.

        Args:
            timeout: Seconds to wait at most; None waits as long as the peer drains.

        Raises:
            CommunicationTimeoutError: Frames are still queued after ``timeout`` (at once
                in the I/O thread, which cannot wait for itself).
            ConnectionClosedError: The connection ended with frames still queued.
        """
        self._driver.flush(timeout)

    # -- receiving -------------------------------------------------------------------

    def receive_frame(self) -> Frame:
        """Wait for receiving a frame from the socket (before the handler is started).

        Returns:
            The next frame, of any kind (a bye frame when the peer closes).

        Raises:
            ConnectionClosedError: The connection ended before a whole frame arrived.
            InvalidStateError: The handler is started; the I/O thread reads (also a
                ``RuntimeError``).
        """
        if self._launched:
            raise InvalidStateError("receive_frame() cannot be used once the handler runs")
        return self._driver.receive_blocking()

    def on_receive(self, frame: Frame) -> None:
        """Callback when a data frame is received (never for control frames).

        It runs in the handler's delivery thread, or in the I/O thread when the handler
        needs none (see ``receive_may_block``): it may send, on this connection or any
        other, and close.

        Args:
            frame: Frame received.
        """

    def on_disconnect(self, reason: str) -> None:
        """Callback when the connection ends, whichever side ended it. Runs once, after
        the last frame was delivered, in the same thread as :meth:`on_receive`.

        Args:
            reason: Why, a :class:`~pymasep.comm.core.DisconnectReason`: a string
                (``CLOSED_LOCALLY``, ``CLOSED_BY_PEER``, ``CONNECTION_LOST`` or
                ``"<code>: <detail>"``) that also carries ``code`` and ``detail``.
        """

    # -- the thread API --------------------------------------------------------------

    def start(self) -> None:
        """Hand the connection to the I/O thread; start the delivery thread if the
        handler needs one.

        Raises:
            RuntimeError: Called twice.
        """
        if self._launched:
            raise RuntimeError("threads can only be started once")
        self._launched = True
        self._own_thread = self._may_block()
        if self._own_thread:
            super().start()
        self._driver.start()

    def run(self) -> None:
        """Main thread run that delivers received frames until the connection ends (the
        delivery thread's body; called without ``start()``, it delivers in the caller's
        thread)."""
        if not self._launched:
            self._launched = self._own_thread = True
            self._driver.start()
        while True:
            for item in self._inbox.take():
                if isinstance(item, DisconnectReason):
                    self._run_callbacks(item)
                    return
                self._receive(item)

    def is_alive(self) -> bool:
        """True from ``start()`` until the connection has ended and its callbacks ran."""
        if self._own_thread:
            return super().is_alive()
        return self._launched and not self._callbacks_done.is_set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the handler is no longer alive (see :meth:`is_alive`)."""
        if not self._launched:
            raise RuntimeError("cannot join thread before it is started")
        if self._own_thread:
            super().join(timeout)
        else:
            self._callbacks_done.wait(timeout)

    def _may_block(self) -> bool:
        flag = self.receive_may_block
        return self._blocks_by_default() if flag is None else flag

    def _blocks_by_default(self) -> bool:
        return type(self).on_receive is not SocketHandler.on_receive

    def _take(self, frames: list[Frame]) -> None:
        """Frames from the I/O thread: deliver them, or hand them to the delivery thread."""
        if self._own_thread:
            self._inbox.put(frames)
            return
        on_receive = self.on_receive
        for frame in frames:
            try:
                on_receive(frame)
            except Exception:
                # The application's bug must not cut the game's connection.
                self._log.exception("on_receive failed for a frame from %s", self.peer_id)

    def _receive(self, frame: Frame) -> None:
        try:
            self.on_receive(frame)
        except Exception:
            # The application's bug must not cut the game's connection.
            self._log.exception("on_receive failed for a frame from %s", self.peer_id)

    def _ended(self, reason: DisconnectReason) -> None:
        self.disconnect_reason = reason
        if self._own_thread:
            self._inbox.end(reason)
        else:
            self._run_callbacks(reason)

    def _run_callbacks(self, reason: DisconnectReason) -> None:
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

    def _in_delivery(self) -> bool:
        """True in a thread that must not wait for this connection: its delivery thread,
        or the I/O thread."""
        return threading.current_thread() is self or self._driver.loop.in_loop()

    # -- closing ---------------------------------------------------------------------

    def close(self, timeout: float = 0.5) -> None:
        """Close the connection: send every queued frame, then the bye, then wait for the
        peer to close its side. Idempotent; safe from any thread, ``on_receive`` and
        ``on_disconnect`` included.

        Args:
            timeout: Seconds to wait for all of that; then the connection is cut. Called
                from ``on_receive`` (or the I/O thread), close() returns at once and the
                connection is cut if it has not ended after ``timeout``.
        """
        if self.closed:
            return
        self.begin_close()
        if self._launched and self._in_delivery():
            self._driver.close_by(_monotonic() + timeout)
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
        if self._driver.begin_close():
            self._log.debug("closing connection to %s", self.peer_id)

    def wait_closed(self, timeout: float | None) -> bool:
        """Wait until the connection has ended, ``timeout`` seconds at most.

        Returns:
            True if it has ended.
        """
        if not self._launched and not self.closed:
            # Never started: nobody reads, so wait only for the queue and the bye.
            if not self._driver.drain_unstarted(60.0 if timeout is None else timeout):
                return False
            self._driver.abort(DisconnectReason(CLOSED_LOCALLY))
            return True
        return self._driver.finished.wait(timeout)

    def abort(self) -> None:
        """Cut the connection now, without waiting for the peer (queued frames are
        dropped). The reason is ``CLOSED_LOCALLY``. Idempotent."""
        self._driver.abort(DisconnectReason(CLOSED_LOCALLY))

    def join_closed(self, timeout: float) -> None:
        """Wait for the handler's callbacks to run, ``timeout`` seconds at most (no wait
        from its own delivery thread or the I/O thread)."""
        if not self._launched:
            self.abort()
        elif not self._in_delivery():
            self._callbacks_done.wait(timeout)


def close_handlers(handlers: Iterable[SocketHandler], timeout: float) -> None:
    """Close many handlers at once: each starts its close, then all are waited for
    together, then those left are cut together, so that silent peers cost one timeout,
    not one each. Safe from a handler's own delivery and from the I/O thread (the
    handlers then close on their own, cut after ``timeout``).

    Args:
        handlers: The handlers.
        timeout: Seconds to wait at most for the peers to close their side.
    """
    deadline = _monotonic() + timeout
    waited = []
    for handler in handlers:
        if handler._launched and handler._in_delivery():
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


def _never_blocks(receive_queue: Any) -> bool:
    """True for a queue whose ``put`` never waits (unbounded, of the standard library)."""
    if isinstance(receive_queue, queue.SimpleQueue):
        return True
    return (
        isinstance(receive_queue, queue.Queue)
        and type(receive_queue).put is queue.Queue.put
        and receive_queue.maxsize <= 0
    )


class SocketHandlerQueue(SocketHandler):
    """Thread used to handle received messages from conn, addr.
    Put a message in a queue when received.

    On an unbounded ``queue.Queue`` or ``queue.SimpleQueue`` it has no thread of its
    own: the I/O thread puts the frames on the queue.

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

    def _blocks_by_default(self) -> bool:
        # Its own on_receive, on a queue that never blocks, needs no thread.
        own = (SocketHandlerQueue.on_receive, SocketHandlerPeerQueue.on_receive)
        return type(self).on_receive not in own or not _never_blocks(self.receive_queue)

    def on_receive(self, frame: Frame) -> None:
        """Callback when a data frame is received: put its bytes on the queue.

        Args:
            frame: Frame received.
        """
        self.receive_queue.put(frame.message)


class SocketHandlerPeerQueue(SocketHandlerQueue):
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

    def on_receive(self, frame: Frame) -> None:
        """Put ``(peer_id, payload)`` on the queue.

        Args:
            frame: Frame received.
        """
        self.receive_queue.put((self.peer_id, frame.message))
