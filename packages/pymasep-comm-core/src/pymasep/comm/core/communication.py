"""What Server and Client share: :class:`BaseThreadedCommunication`."""

from __future__ import annotations

import logging
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from .connection import (
    CLOSED_BY_PEER,
    DEFAULT_SEND_LIMITS,
    DEFAULT_STALL_TIMEOUT,
    Connection,
    DisconnectReason,
)
from .exceptions import ConnectionClosedError, UnknownConnectionError
from .frame import Frame
from .handshake import ClientHandshake, ServerHandshake
from .linger import track
from .recorder import Recorder
from .resume import ResumeState
from .socket_handler import SocketHandler, close_handlers
from .tap import Tap
from .wire import DEFAULT_MAX_FRAME_SIZE

__all__ = ["BaseThreadedCommunication"]

LogLevel = str | int
_Self = TypeVar("_Self", bound="BaseThreadedCommunication")
# How many peers that said bye are remembered, so that a late frame to one of them is
# dropped quietly (see send_frame_to). Bounded: a long-running engine meets many ids.
_REMEMBERED_BYES = 1024


class _AddIdent(logging.Filter):
    """Puts the communication's id on its records, as ``record.comm_id``."""

    def __init__(self, ident: str) -> None:
        super().__init__()
        self.ident = ident

    def filter(self, record: logging.LogRecord) -> bool:
        record.comm_id = self.ident
        return True


class _InstanceLogger(logging.Logger):
    """A logger outside :func:`logging.getLogger`'s registry (see _component_logger)."""

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (overrides logging.Logger)
        # Logger caches this answer, and only registered loggers have their cache
        # cleared when a level changes.
        if self.disabled or self.manager.disable >= level:
            return False
        return level >= self.getEffectiveLevel()


def _component_logger(component: str, ident: str, level: LogLevel) -> logging.Logger:
    """A logger named after the component, with its own level and the id on each record.

    It is not registered with :func:`logging.getLogger` (which keeps every logger it
    makes for ever): it lives as long as the communication, and hands its records to
    the component's logger, ``pymasep.comm.<component>``, whose handlers and filters the
    application configures once for every instance.
    """
    parent = logging.getLogger(f"pymasep.comm.{component}")
    logger = _InstanceLogger(parent.name, level)
    logger.parent = parent
    logger.addFilter(_AddIdent(ident))
    return logger


class BaseThreadedCommunication:
    """Base class for threaded communication for Client and Server.

    Keeps the connections by the id of the peer, sends frames to them, and notices when
    one ends (see :meth:`on_disconnect`). Use it as a context manager, or call
    :meth:`close`.

    Args:
        ident: String id of the client or server.
        socket_handler_class: Class used to handle the socket (send, receive): a
            :class:`~pymasep.comm.core.SocketHandler` subclass.
        socket_handler_args: Arguments as tuple to instantiate the SocketHandler class,
            after ``(conn, addr, logger)``.
        host: Host to listen or connect.
        port: Port to listen or connect.
        log_level: Level of this object's logger, as str or int.
    """

    _logger_kind = "communication"

    def __init__(
        self,
        ident: str,
        socket_handler_class: type[SocketHandler],
        socket_handler_args: tuple[Any, ...],
        host: str | None,
        port: int | None,
        log_level: LogLevel,
    ) -> None:
        self.id = ident
        """Id of the communication thread."""
        self.host = host
        """Host to listen or connect."""
        self.port = port
        """Port to listen or connect."""
        self.socket: socket.socket | None = None
        """Socket used to listen (server) or connect (client, once connected)."""
        self.logger: logging.Logger = _component_logger(self._logger_kind, ident, log_level)
        """Communication logger: its records are those of ``pymasep.comm.<server|client>``,
        with this object's id as ``record.comm_id``; its level is ``log_level``. No
        handler is added."""
        self.socket_handler_class = socket_handler_class
        """Class to handle message from/to socket."""
        self.socket_handler_args = socket_handler_args
        """Socket handler arguments."""
        self._current_connections: dict[str, SocketHandler] = {}
        """Keep trace of current connections: peer id -> handler."""
        self._current_connections_lock = threading.Lock()
        """Lock to handle multiple connections at the same time."""
        self._connections_changed = threading.Condition(self._current_connections_lock)
        self._said_bye: OrderedDict[str, None] = OrderedDict()
        self._adding = True
        self.recorder: Recorder | None = None
        """What records this communication's connections (``record=``), closed by
        :meth:`close`; None when nothing records."""
        self.tap: Tap | None = None
        """Told of every connection's events (:mod:`pymasep.comm.core.tap`): the server
        and the client pass it to each connection they open from then on."""
        self.linger: float | None = None
        """Seconds to deliver queued frames and close gracefully at interpreter exit if
        this is still open then; None: :data:`pymasep.comm.core.linger.DEFAULT_LINGER`."""
        self.max_frame_size = DEFAULT_MAX_FRAME_SIZE
        """Largest frame accepted from a peer, in bytes (Server and Client set it)."""
        self.send_limits = DEFAULT_SEND_LIMITS
        """What may wait for a peer that reads slowly (see :class:`SendLimits`)."""
        self.stall_timeout: float | None = DEFAULT_STALL_TIMEOUT
        """Seconds a peer may stay silent in the middle of a frame; None never cuts."""
        track(self)

    def open_handler(
        self,
        conn: socket.socket,
        addr: Any,
        handshake: ClientHandshake | ServerHandshake,
        resume: ResumeState | None = None,
    ) -> SocketHandler:
        """Build the application's handler for a connection whose handshake is complete,
        attached to the :class:`~pymasep.comm.core.Connection` it opened (with this
        communication's limits and tap); the caller registers it and starts it.

        Args:
            conn: The connected socket.
            addr: The peer's address.
            handshake: The completed handshake.
            resume: The session the handshake negotiated, when the connection may
                resume: a break then calls ``_connection_broke`` (which Server and
                Client override) instead of ending it.
        """
        handler = self.socket_handler_class(conn, addr, self.logger, *self.socket_handler_args)
        connection = Connection.from_handshake(
            handshake, limits=self.send_limits, stall_timeout=self.stall_timeout, tap=self.tap
        )
        connection.resume = resume
        handler.attach(
            connection,
            on_closed=self._connection_closed,
            on_break=None if resume is None else self._connection_broke,
        )
        return handler

    def _connection_broke(self, handler: SocketHandler, reason: DisconnectReason) -> None:
        """A connection that may resume broke (in the I/O thread): Server and Client
        hold it or resume it. Without an override it ends."""
        handler.abort(reason)

    def add_connection(self, ident: str, sh: SocketHandler) -> None:
        """Add a connection to the client or server.

        Args:
            ident: ID of the opposite BaseThreadCommunication connected to self.
            sh: Instance of the socket handler used to handle this connection.
        """
        with self._current_connections_lock:
            self._current_connections[ident] = sh
            self._said_bye.pop(ident, None)
            self._connections_changed.notify_all()

    def try_add_connection(
        self,
        ident: str,
        sh: SocketHandler,
        *,
        max_connections: int | None = None,
        before_adding: Callable[[], bool] | None = None,
    ) -> str:
        """Add a connection unless it must be refused, atomically.

        Args:
            ident: ID of the peer.
            sh: Its socket handler.
            max_connections: Refuse it when this many are connected already.
            before_adding: Called once the connection is accepted, before it is added
                and under the lock (so nothing can be sent to ``ident`` before it
                returns): a server answers the hello there. If it returns False the
                connection is not added.

        Returns:
            The reason it is refused (the communication is closing, the id is taken,
            or it is full), or ``""`` when it is accepted.
        """
        with self._current_connections_lock:
            reason = self._refusal(ident, max_connections)
            if reason:
                return reason
            if before_adding is not None and not before_adding():
                return ""
            self._current_connections[ident] = sh
            self._said_bye.pop(ident, None)
            self._connections_changed.notify_all()
        return ""

    def refusal_reason(self, ident: str, max_connections: int | None = None) -> str:
        """Why :meth:`try_add_connection` would refuse ``ident`` now, or ``""``: a check
        to make before building anything for a connection (it may change meanwhile;
        :meth:`try_add_connection` checks again)."""
        with self._current_connections_lock:
            return self._refusal(ident, max_connections)

    def _refusal(self, ident: str, max_connections: int | None) -> str:
        if not self._adding:
            return "the server is closing"
        if ident in self._current_connections:
            return f"an interface with id {ident!r} is already connected"
        if max_connections is not None and len(self._current_connections) >= max_connections:
            return f"the server is full ({max_connections} connections)"
        return ""

    def stop_adding_connections(self) -> None:
        """Refuse every connection :meth:`try_add_connection` is asked for from now on."""
        with self._current_connections_lock:
            self._adding = False

    def get_connection(self, ident: str) -> SocketHandler:
        """Get the socket handler of the connection.

        Args:
            ident: ID of the connection.

        Returns:
            The socket handler.

        Raises:
            UnknownConnectionError: No connection has this id (also a ``KeyError``).
        """
        with self._current_connections_lock:
            try:
                return self._current_connections[ident]
            except KeyError:
                raise UnknownConnectionError(ident) from None

    def is_connection_registered(self, ident: str) -> bool:
        """Check if a connection is registered in this BaseThreadCommunication.

        Args:
            ident: ID of the connection.

        Returns:
            True if a socket handler is associated to this connection id.
        """
        with self._current_connections_lock:
            return ident in self._current_connections

    def connection_ids(self) -> list[str]:
        """Ids of the peers connected now."""
        with self._current_connections_lock:
            return list(self._current_connections)

    def send_frame_to(self, ident: str, frame: Frame) -> None:
        """Send a frame to a connection identified by ident, without waiting.

        Sending :meth:`Frame.bye_frame` closes that connection after its queued frames.
        A frame for a peer that has said bye (it reads nothing more) is dropped and
        logged at INFO: a peer that leaves first is no error. Among the most recent
        1,024 such peers; a peer that is lost without a bye, or an id never connected,
        still raises.

        Args:
            ident: ID of the connection to send a frame.
            frame: Frame to send.

        Raises:
            UnknownConnectionError: No connection has this id.
            ConnectionClosedError: The connection is closed or closing (other than by
                the peer's bye).
            FrameTooLargeError: The connection's wire cannot carry a frame this large.
        """
        # A dict read is atomic: the hot path needs no lock.
        handler = self._current_connections.get(ident)
        if handler is None:
            if ident in self._said_bye:
                self.logger.info("dropping a frame for %s, which has said bye", ident)
                return
            raise UnknownConnectionError(ident)
        try:
            handler.send_frame_async(frame)
        except ConnectionClosedError:
            reason = handler.disconnect_reason or handler.connection.reason
            if reason is not None and reason.code is CLOSED_BY_PEER:
                self.logger.info("dropping a frame for %s, which has said bye", ident)
                return
            raise

    def wait_for_connections(self, count: int, timeout: float | None = None) -> bool:
        """Wait until at least ``count`` peers are connected (``count=0``: until none is).

        Args:
            count: Number of connections to wait for; 0 waits until every connection
                has ended.
            timeout: Seconds to wait at most; None waits as long as it takes.

        Returns:
            True if the condition holds, False after ``timeout``.
        """
        with self._connections_changed:
            if count == 0:
                return self._connections_changed.wait_for(
                    lambda: not self._current_connections, timeout
                )
            return self._connections_changed.wait_for(
                lambda: len(self._current_connections) >= count, timeout
            )

    def wait_for_peer(
        self, ident: str, timeout: float | None = None, connected: bool = True
    ) -> bool:
        """Wait until the peer ``ident`` is connected (``connected=False``: until it no
        longer is), as :meth:`is_connection_registered` would then say.

        A server registers a connection once it has answered the hello, so a client can
        finish its handshake a moment before the server lists it; likewise a connection
        ends on one side a moment before the other unregisters it.

        Args:
            ident: ID of the peer.
            timeout: Seconds to wait at most; None waits as long as it takes.
            connected: Wait for the peer to be registered (True) or gone (False).

        Returns:
            True if the condition holds, False after ``timeout``.
        """
        with self._connections_changed:
            return self._connections_changed.wait_for(
                lambda: (ident in self._current_connections) is connected, timeout
            )

    def on_disconnect(self, ident: str, reason: str) -> None:
        """Callback when a connection ends, after it is unregistered. Override it.

        It runs where the handler's ``on_disconnect`` runs: its delivery thread, or the
        process's I/O thread for a handler with none (or in the thread that closed it).

        Args:
            ident: ID of the peer.
            reason: Why the connection ended (see :meth:`SocketHandler.on_disconnect`).
        """

    def _connection_closed(self, handler: SocketHandler, reason: DisconnectReason) -> None:
        """Unregister a handler that ended, then run :meth:`on_disconnect`."""
        ident = handler.peer_id
        if ident is None:
            return
        with self._current_connections_lock:
            if self._current_connections.get(ident) is handler:
                del self._current_connections[ident]
                if reason.code is CLOSED_BY_PEER:
                    self._said_bye[ident] = None
                    if len(self._said_bye) > _REMEMBERED_BYES:
                        self._said_bye.popitem(last=False)
                self._connections_changed.notify_all()
        # A peer that vanished without a bye is news at the default level (WARNING), as
        # pymasep's Engine logs nothing else about it; a bye is routine.
        level = logging.INFO if reason.graceful else logging.WARNING
        self.logger.log(level, "%s disconnected: %s", ident, reason)
        try:
            self.on_disconnect(ident, reason)
        except Exception:
            self.logger.exception("on_disconnect failed for %s", ident)

    def close(self, timeout: float = 0.5) -> None:
        """Close every connection gracefully (queued frames, then bye). Idempotent; safe
        from any thread, callbacks included.

        Args:
            timeout: Seconds to wait at most for the peers to close their side; those
                that have not are cut then.
        """
        with self._current_connections_lock:
            handlers = list(self._current_connections.values())
        close_handlers(handlers, timeout)
        if self.recorder is not None:
            self.recorder.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
