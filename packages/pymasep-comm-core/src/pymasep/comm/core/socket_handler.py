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
from .handshake import ResumeHandshake, ServerHandshake
from .inbox import RECEIVE_LIMIT, Delivery
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
    Use it as a context manager, or call :meth:`close`.

    Args:
        conn: Connected socket.
        addr: Remote address.
        logger: Logger used to log send and receive message.
    """

    receive_may_block: bool | None = None
    """Whether :meth:`on_receive` may block, so that the handler needs a delivery thread
    (see the module docstring); None: the class tells. False spares the thread."""

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
        log = logging.LoggerAdapter(logger, {"peer": str(addr)})
        delivery = self._delivery = Delivery(self, log)
        self._driver = Driver(conn, addr, self.lock, log, delivery.take, delivery.ended)
        self._launched = False

    def attach(
        self,
        connection: Connection,
        on_closed: Callable[[SocketHandler, DisconnectReason], None] | None = None,
        on_break: Callable[[SocketHandler, DisconnectReason], None] | None = None,
    ) -> None:
        """Take over a connection, as its handshake opened it (call before ``start()``).

        Args:
            connection: The connection, usually what
                :meth:`~pymasep.comm.core.Connection.from_handshake` made.
            on_closed: Called once when the connection ends, before :meth:`on_disconnect`
                (the communication unregisters the connection with it).
            on_break: Called in the I/O thread when a connection that may resume breaks
                without a bye; it then waits for :meth:`resume_on` or :meth:`abort`.
        """
        self._driver.connection = connection
        self._delivery.on_closed = on_closed
        if on_break is not None:
            self._driver.on_break = lambda reason: on_break(self, reason)
        if connection.peer_id is not None:
            self.name = f"pymasep-comm-handler-{connection.peer_id}"
            self._driver.log = self._delivery.log = logging.LoggerAdapter(
                self.logger, {"peer": connection.peer_id}
            )

    @property
    def connection(self) -> Connection:
        """The state of the connection; read it under :attr:`lock`."""
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
        pymasep 0.2's message queue."""
        return self.connection.send_queue

    @property
    def stats(self) -> ConnectionStats:
        """The connection's counters (frames and bytes sent, queued, received) now."""
        with self.lock:
            return self.connection.stats

    @property
    def resuming(self) -> bool:
        """True while the connection is broken and held for a resume: frames sent now
        wait in its session until :meth:`resume_on` carries it on a new socket."""
        return self.connection.broken and not self.closed

    def resume_on(
        self,
        conn: socket.socket,
        addr: Any,
        handshake: ServerHandshake | ResumeHandshake,
        decide: Callable[[], tuple[bytes, list[bytes]] | None],
    ) -> list[bytes] | None:
        """Carry the connection on ``conn``, whose resume handshake is done; ``decide``
        checks it under the lock. Returns the frames sent again, or None if refused."""
        assert handshake.decoder is not None
        self.socket, self.addr = conn, addr
        return self._driver.resume(conn, addr, handshake.decoder, handshake.pending_frames, decide)

    @property
    def closed(self) -> bool:
        """True once the connection has ended, whichever side ended it."""
        return self._driver.finished.is_set()

    def send_frame(self, frame: Frame) -> None:
        """Send a frame through the socket, and return once the kernel has all of it.

        Frames queued before it by :meth:`send_frame_async` go first; a bye frame closes
        the connection, as :meth:`close` does.

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

        Frames from one thread arrive in order. Past the connection's ``SendLimits`` it
        waits as their policy says (``docs/protocol.md``, Slow interfaces). A bye frame
        closes the connection gracefully, after the queued frames.

        Args:
            frame: Frame to send.

        Raises:
            ConnectionClosedError: The connection is closed or closing, or (policy
                ``"wait"``) the peer took no byte for the drain timeout while this call
                waited, and is disconnected (``SLOW_CONSUMER``).
            FrameTooLargeError: The wire cannot carry a frame this large.
            SendBufferFullError: Policy ``"raise"``: too many bytes wait already.
            CommunicationTimeoutError: Policy ``"block"``: they still wait after the
                block timeout.
        """
        if frame.kind is FrameKind.BYE:
            self.begin_close()
        else:
            self._driver.send(frame)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued frame is in the kernel's hands (policy ``"wait"``: a
        peer that takes no byte for the drain timeout meanwhile is cut).

        Args:
            timeout: Seconds to wait at most; None waits as long as the peer drains.

        Raises:
            CommunicationTimeoutError: Frames are still queued after ``timeout`` (at once
                in the I/O thread, which cannot wait for itself).
            ConnectionClosedError: The connection ended with frames still queued.
        """
        self._driver.flush(timeout)

    def receive_frame(self) -> Frame:
        """Wait for receiving a frame from the socket (before the handler is started).

        Returns:
            The next frame, of any kind (a bye frame when the peer closes).

        Raises:
            ConnectionClosedError: The connection ended before a whole frame arrived.
            InvalidStateError: The handler is started; the I/O thread reads.
        """
        if self._launched:
            raise InvalidStateError("receive_frame() cannot be used once the handler runs")
        return self._driver.receive_blocking()

    def on_receive(self, frame: Frame) -> None:
        """Callback when a data frame is received (never for control frames). It may
        send, on this connection or any other, and close.

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

    def start(self) -> None:
        """Hand the connection to the I/O thread; start the delivery thread if the
        handler needs one.

        Raises:
            RuntimeError: Called twice.
        """
        if self._launched:
            raise RuntimeError("threads can only be started once")
        self._launched = True
        flag = self.receive_may_block
        if self._blocks_by_default() if flag is None else flag:
            self._delivery.begin(self._driver.pause_reading)
            super().start()
        self._driver.start()

    def run(self) -> None:
        """Main thread run that delivers received frames until the connection ends (the
        delivery thread's body; called without ``start()``, it delivers in the caller's
        thread)."""
        if not self._launched:
            self._launched = True
            self._delivery.begin(self._driver.pause_reading)
            self._driver.start()
        self._delivery.run()

    def is_alive(self) -> bool:
        """True from ``start()`` until the connection has ended and its callbacks ran."""
        if self._delivery.threaded:
            return super().is_alive()
        return self._launched and not self._delivery.done.is_set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the handler is no longer alive (see :meth:`is_alive`)."""
        if not self._launched:
            raise RuntimeError("cannot join thread before it is started")
        if self._delivery.threaded:
            super().join(timeout)
        else:
            self._delivery.done.wait(timeout)

    def _blocks_by_default(self) -> bool:
        return type(self).on_receive is not SocketHandler.on_receive

    def close(self, timeout: float = 0.5) -> None:
        """Close the connection: send every queued frame, then the bye, then wait for the
        peer to close its side. Idempotent; safe from any thread, ``on_receive`` and
        ``on_disconnect`` included.

        Args:
            timeout: Seconds to wait for all of that; then the connection is cut. Called
                from ``on_receive`` (or the I/O thread), close() returns at once and the
                connection is cut if it has not ended after ``timeout``.
        """
        if not self.closed:
            close_handlers((self,), timeout)

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def begin_close(self) -> None:
        """Start a graceful close and return at once: queued frames, then the bye.
        Idempotent. New frames are refused from now on."""
        self._driver.begin_close()

    def wait_closed(self, timeout: float | None) -> bool:
        """Wait until the connection has ended, ``timeout`` seconds at most; True if it
        has."""
        return self._driver.wait_ended(timeout)

    def abort(self, reason: DisconnectReason | None = None) -> None:
        """Cut the connection now, without waiting for the peer (queued frames are
        dropped), with ``reason`` (by default ``CLOSED_LOCALLY``). Idempotent."""
        self._driver.abort(reason or DisconnectReason(CLOSED_LOCALLY))


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
        handler.begin_close()
        if _in_delivery(handler):
            handler._driver.close_by(deadline)
        else:
            waited.append(handler)
    for handler in waited:
        handler.wait_closed(max(0.0, deadline - _monotonic()))
    for handler in waited:
        handler.abort()  # idempotent: nothing for those that have ended
    grace = _monotonic() + _JOIN_GRACE
    for handler in waited:
        # Then the callbacks: a handler never started runs them as it is cut.
        handler._delivery.done.wait(max(0.0, grace - _monotonic()))


def _in_delivery(handler: SocketHandler) -> bool:
    """True in a thread that must not wait for ``handler``'s connection: its delivery
    thread, or the I/O thread."""
    return handler._launched and (
        threading.current_thread() is handler or handler._driver.loop.in_loop()
    )


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
