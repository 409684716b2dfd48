"""What Server and Client share: :class:`BaseThreadedCommunication`."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, TypeVar

from .exceptions import UnknownConnectionError
from .frame import Frame
from .socket_handler import _CUT_GRACE, SocketHandler

__all__ = ["BaseThreadedCommunication"]

LogLevel = str | int
_Self = TypeVar("_Self", bound="BaseThreadedCommunication")


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
        self.logger: logging.Logger = logging.getLogger(f"pymasep.comm.{self._logger_kind}.{ident}")
        """Communication logger, ``pymasep.comm.<server|client>.<id>``; no handler is added."""
        self.logger.setLevel(log_level)
        self.socket_handler_class = socket_handler_class
        """Class to handle message from/to socket."""
        self.socket_handler_args = socket_handler_args
        """Socket handler arguments."""
        self._current_connections: dict[str, SocketHandler] = {}
        """Keep trace of current connections: peer id -> handler."""
        self._current_connections_lock = threading.Lock()
        """Lock to handle multiple connections at the same time."""
        self._connections_changed = threading.Condition(self._current_connections_lock)

    def add_connection(self, ident: str, sh: SocketHandler) -> None:
        """Add a connection to the client or server.

        Args:
            ident: ID of the opposite BaseThreadCommunication connected to self.
            sh: Instance of the socket handler used to handle this connection.
        """
        with self._current_connections_lock:
            self._current_connections[ident] = sh
            self._connections_changed.notify_all()

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

        Args:
            ident: ID of the connection to send a frame.
            frame: Frame to send.

        Raises:
            UnknownConnectionError: No connection has this id.
            ConnectionClosedError: The connection is closed or closing.
            FrameTooLargeError: The connection's wire cannot carry a frame this large.
        """
        # A dict read is atomic: the hot path needs no lock.
        handler = self._current_connections.get(ident)
        if handler is None:
            raise UnknownConnectionError(ident)
        handler.send_frame_async(frame)

    def on_disconnect(self, ident: str, reason: str) -> None:
        """Callback when a connection ends, after it is unregistered. Override it.

        It runs in the connection's own thread (or in the one that closed it).

        Args:
            ident: ID of the peer.
            reason: Why the connection ended (see :meth:`SocketHandler.on_disconnect`).
        """

    def _connection_closed(self, handler: SocketHandler, reason: str) -> None:
        """Unregister a handler that ended, then run :meth:`on_disconnect`."""
        ident = handler.peer_id
        if ident is None:
            return
        with self._current_connections_lock:
            if self._current_connections.get(ident) is handler:
                del self._current_connections[ident]
                self._connections_changed.notify_all()
        self.logger.info("%s disconnected: %s", ident, reason)
        try:
            self.on_disconnect(ident, reason)
        except Exception:
            self.logger.exception("on_disconnect failed for %s", ident)

    def _close_connections(self, deadline: float) -> None:
        """Close every connection at once, wait for them until ``deadline``, then cut
        those that are left, all at once too, and give their threads a moment to end."""
        with self._current_connections_lock:
            everyone = list(self._current_connections.values())
        current = threading.current_thread()
        handlers = []
        for handler in everyone:
            if handler is current:
                # Called from this handler's on_receive: it cannot wait for itself. It
                # ends the close once on_receive returns, giving up at the deadline.
                handler.close(max(0.001, deadline - time.monotonic()))
            else:
                handler._begin_close()
                handlers.append(handler)
        for handler in handlers:
            handler._wait_graceful(deadline)
        # Cut together, the silent peers cost one grace period, not one each.
        for handler in handlers:
            handler._cut()
        grace = time.monotonic() + _CUT_GRACE
        for handler in handlers:
            handler._join_until(grace)

    def close(self, timeout: float = 0.5) -> None:
        """Close every connection gracefully (queued frames, then bye). Idempotent.

        Args:
            timeout: Seconds to wait at most for the peers to close their side; those
                that have not are cut, and their threads get a quarter of a second more
                to end. The default keeps close() within a second.
        """
        self._close_connections(time.monotonic() + timeout)

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
