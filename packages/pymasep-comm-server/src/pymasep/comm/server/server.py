"""The engine's side: :class:`Server` accepts interfaces and keeps one handler per interface."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymasep.comm.core import DEFAULT_MAX_FRAME_SIZE, SocketHandler
from pymasep.comm.core.auth import AuthKey, key_lookup
from pymasep.comm.core.communication import BaseThreadedCommunication, LogLevel
from pymasep.comm.core.connection import (
    DEFAULT_SEND_LIMITS,
    DEFAULT_STALL_TIMEOUT,
    DisconnectCode,
    DisconnectReason,
    SendLimits,
)
from pymasep.comm.core.discovery import DEFAULT_GROUP, DEFAULT_PORT
from pymasep.comm.core.exceptions import (
    CommunicationError,
    ConnectionRejectedError,
    InvalidArgumentError,
    InvalidStateError,
    ProtocolError,
    UnknownConnectionError,
)
from pymasep.comm.core.handshake import ServerHandshake
from pymasep.comm.core.ioloop import Timer, io_loop
from pymasep.comm.core.recorder import recorder_for
from pymasep.comm.core.resume import (
    DEFAULT_RESUME_WINDOW,
    ResumeAccept,
    ResumeDecision,
    ResumeDecline,
    ResumeState,
    ServerSession,
    SessionTable,
    ack_every_bytes,
    check_resume_window,
)
from pymasep.comm.core.settings import configurable

from .announcer import Announcer

__all__ = ["Server"]

DEFAULT_MAX_PENDING_HANDSHAKES = 256
"""How many connections may be in their handshake at once, by default."""
_HANDSHAKE_READ_SIZE = 4096
# accept() errors that concern one connection only (Linux passes the network errors of a
# connection still in the queue to accept): try the next one at once.
_CONNECTION_ERRORS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPROTO",
        "EPERM",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
    )
    if hasattr(errno, name)
)
# Any other accept() error (EMFILE, ENFILE, ENOBUFS, ENOMEM) leaves the connection in the
# queue and the listener readable: retrying at once would spin. The listener is left
# alone for a delay instead, doubling from the first to the last, or until a connection
# closes and frees a descriptor (as asyncio does).
_ACCEPT_RETRY_FIRST = 0.1
_ACCEPT_RETRY_LAST = 1.0


@dataclass
class _Pending:
    """A connection whose handshake is not complete yet."""

    conn: socket.socket
    addr: Any
    deadline: float
    handshake: ServerHandshake = field(repr=False)
    tls_done: bool = True  # False while a TLS handshake runs


_Handshakes = dict[socket.socket, _Pending]
"""The connections whose handshake runs, by socket."""


class _Watch:
    """The I/O loop's selector, as the accept loop uses it: each socket's events come
    back to :meth:`_WaitConnection._event` with the socket."""

    def __init__(self, owner: _WaitConnection) -> None:
        self.owner = owner
        self.selector = io_loop().selector

    def register(self, sock: socket.socket, events: int) -> None:
        self.selector.register(sock, events, lambda _mask: self.owner._event(sock))

    def modify(self, sock: socket.socket, events: int) -> None:
        self.selector.modify(sock, events, lambda _mask: self.owner._event(sock))

    def unregister(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)


class _WaitConnection(threading.Thread):
    """Accepts connections and runs their handshakes, in the process's I/O loop.

    Handshakes are non-blocking and each has a deadline, so a client that never says
    hello, or says garbage, is closed on its own and never delays anyone else. With TLS
    the TLS handshake runs first, non-blocking in the same loop and under the same
    deadline (a thread per connection would let a flood of connections cost a thread
    each, which the limit on handshakes in progress exists to prevent).

    It is the server's ``wait_connection_thread`` and still a ``threading.Thread``, with
    no thread of its own: ``start()`` hands the listener to the I/O loop, ``is_alive()``
    is true until it stops accepting, ``join()`` waits for that.
    """

    def __init__(self, server: Server) -> None:
        super().__init__(name=f"pymasep-comm-accept-{server.id}", daemon=True)
        self.server = server
        self._loop = io_loop()
        self._selector = _Watch(self)
        self._pending: _Handshakes = {}
        self._launched = False
        self._stopped = threading.Event()
        self._stop_requested = threading.Event()
        self._paused_until: float | None = None  # set while accept() is backing off
        self._retry_delay = _ACCEPT_RETRY_FIRST
        self._descriptor_freed = threading.Event()
        self._timer: Timer | None = None

    def start(self) -> None:
        """Start accepting, in the I/O loop."""
        if self._launched:
            raise RuntimeError("threads can only be started once")
        self._launched = True
        self._loop.run_in_loop(self._begin)

    def is_alive(self) -> bool:
        """True from ``start()`` until it stops accepting."""
        return self._launched and not self._stopped.is_set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until it has stopped accepting."""
        if not self._launched:
            raise RuntimeError("cannot join thread before it is started")
        if not self._loop.in_loop():
            self._stopped.wait(timeout)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop accepting; connections already made stay. Idempotent."""
        self._stop_requested.set()
        if not self._launched:
            return
        self._loop.run_in_loop(self._end)
        self.join(timeout)

    def descriptor_freed(self) -> None:
        """A connection has closed: if accepting is backing off, try again now."""
        self._descriptor_freed.set()
        if self._paused_until is not None:
            self._loop.run_in_loop(self._tidy)

    def run(self) -> None:
        """Nothing to run: the I/O loop accepts (see the class docstring)."""

    def _begin(self) -> None:
        listener = self.server.socket
        if self._stop_requested.is_set() or listener is None or listener.fileno() == -1:
            self._stopped.set()
            return
        self._guarded(lambda: self._selector.register(listener, selectors.EVENT_READ))

    def _end(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()
        listener = self.server.socket
        if listener is not None and self._paused_until is None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(listener)
        for item in list(self._pending.values()):
            self._drop(item, self._selector, self._pending)

    def _guarded(self, step: Callable[[], object]) -> None:
        """Run a step of the accept loop; a bug there stops accepting, never half."""
        try:
            step()
        except Exception:
            # Never a half-alive server: with no loop to accept, the listener is closed,
            # so that clients are refused at once instead of hanging in connect().
            self.server.logger.exception(
                "the accept loop failed; the server accepts no more connections"
            )
            self._end()
            self.server._stop_listening()

    def _event(self, sock: socket.socket) -> None:
        if self._stopped.is_set():
            return
        listener = self.server.socket
        if sock is listener:
            assert listener is not None
            self._guarded(lambda: self._accept(listener, self._selector, self._pending))
        else:
            item = self._pending.get(sock)
            if item is not None:
                self._handle_hello(item, self._selector, self._pending)
        self._tidy()

    def _tidy(self) -> None:
        """Resume a paused listener, close handshakes past their deadline, and set the
        timer for the next of these."""
        if self._stopped.is_set():
            return
        now = time.monotonic()
        listener = self.server.socket
        if self._paused_until is not None and (
            now >= self._paused_until or self._descriptor_freed.is_set()
        ):
            self._paused_until = None
            if listener is not None:
                self._guarded(lambda: self._selector.register(listener, selectors.EVENT_READ))
        for item in [p for p in self._pending.values() if p.deadline <= now]:
            self.server.logger.info(
                "%s did not complete its handshake in time; closing it", item.addr
            )
            self._drop(item, self._selector, self._pending)
        wake_at = min((p.deadline for p in self._pending.values()), default=None)
        if self._paused_until is not None:
            wake_at = min(wake_at or self._paused_until, self._paused_until)
        if self._timer is not None:
            if wake_at is not None and self._timer.when <= wake_at:
                return
            self._timer.cancel()
            self._timer = None
        if wake_at is not None:
            self._timer = self._loop.call_at(wake_at, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        self._tidy()

    def _handle_hello(self, item: _Pending, selector: _Watch, pending: _Handshakes) -> None:
        """Go on with a handshake; a bug met on the way ends that connection only."""
        try:
            if not item.tls_done and not self._tls_step(item, selector, pending):
                return
            self._read_hello(item, selector, pending)
        except Exception:
            self.server.logger.exception("handshake with %s failed; closing it", item.addr)
            if item.conn in pending:
                self._drop(item, selector, pending)
            else:
                item.conn.close()

    def _accept(self, listener: socket.socket, selector: _Watch, pending: _Handshakes) -> None:
        server = self.server
        while True:
            try:
                conn, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if self._stop_requested.is_set():
                    return
                if error.errno in _CONNECTION_ERRORS:
                    server.logger.info("accept failed for one connection: %s", error)
                    continue
                self._back_off(listener, selector, error)
                return
            self._retry_delay = _ACCEPT_RETRY_FIRST
            if len(pending) >= server.max_pending_handshakes:
                # Room is made by dropping the one that has waited longest (insertion
                # order is deadline order): a flood of silent connections then cannot
                # lock out a client whose hello is on its way.
                oldest = next(iter(pending.values()))
                server.logger.warning(
                    "too many handshakes in progress; dropping the oldest, %s", oldest.addr
                )
                self._drop(oldest, selector, pending)
            conn.setblocking(False)
            tls_done = True
            if server.ssl_context is not None:
                try:
                    conn = server.ssl_context.wrap_socket(
                        conn, server_side=True, do_handshake_on_connect=False
                    )
                except (ssl.SSLError, OSError) as error:
                    server.logger.info("TLS with %s failed: %s", addr, error)
                    conn.close()
                    continue
                tls_done = False
            item = _Pending(
                conn,
                addr,
                time.monotonic() + server.handshake_timeout,
                ServerHandshake(server.id, server.max_frame_size, authkey=server._key_lookup),
                tls_done=tls_done,
            )
            pending[conn] = item
            selector.register(conn, selectors.EVENT_READ)
            server.logger.debug("accepted %s", addr)

    def _back_off(self, listener: socket.socket, selector: _Watch, error: OSError) -> None:
        """Stop watching the listener for a while: accept() fails for want of a resource."""
        delay = self._retry_delay
        self._retry_delay = min(delay * 2, _ACCEPT_RETRY_LAST)
        # Cleared first: only a connection that closes from now on frees a descriptor.
        self._descriptor_freed.clear()
        self._paused_until = time.monotonic() + delay
        selector.unregister(listener)
        self.server.logger.warning(
            "accept failed: %s; not accepting for %.1f s, or until a connection closes",
            error,
            delay,
        )

    def _tls_step(self, item: _Pending, selector: _Watch, pending: _Handshakes) -> bool:
        """Drive the TLS handshake as far as the bytes at hand allow; True once done."""
        conn = item.conn
        assert isinstance(conn, ssl.SSLSocket)
        try:
            conn.do_handshake()
        except ssl.SSLWantReadError:
            selector.modify(conn, selectors.EVENT_READ)
            return False
        except ssl.SSLWantWriteError:
            selector.modify(conn, selectors.EVENT_WRITE)
            return False
        except (ssl.SSLError, OSError) as error:
            # A plaintext client, one that does not trust our certificate, or one
            # without the certificate we require.
            self.server.logger.info("TLS handshake with %s failed: %s", item.addr, error)
            self._drop(item, selector, pending)
            return False
        item.tls_done = True
        selector.modify(conn, selectors.EVENT_READ)
        return True

    def _read_hello(self, item: _Pending, selector: _Watch, pending: _Handshakes) -> None:
        # Over TLS, one record may hold more than a read takes: the rest waits in the
        # SSL object (pending()), and the socket will not say it is readable again.
        while item.conn in pending:
            self._read_some(item, selector, pending)
            conn = item.conn
            if not isinstance(conn, ssl.SSLSocket) or conn.fileno() == -1 or not conn.pending():
                return

    def _read_some(self, item: _Pending, selector: _Watch, pending: _Handshakes) -> None:
        try:
            data = item.conn.recv(_HANDSHAKE_READ_SIZE)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError as error:
            self._log_departure(item, f"failed during the handshake: {error}")
            self._drop(item, selector, pending)
            return
        if not data:
            self._log_departure(item, "closed during the handshake")
            self._drop(item, selector, pending)
            return
        try:
            complete = item.handshake.receive_data(data)
        except CommunicationError as error:
            # The error says what broke the protocol, or "authentication failed" and no
            # more: never a key. A failed authentication is logged at the default level
            # (WARNING): someone tried a key the server does not hold.
            rejected = isinstance(error, ConnectionRejectedError)
            level = logging.WARNING if rejected else logging.INFO
            self.server.logger.log(level, "refusing %s: %s", item.addr, error)
            reason = error.reason if isinstance(error, ConnectionRejectedError) else str(error)
            self._refuse(item, reason)
            self._drop(item, selector, pending)
            return
        # The challenge of an authenticated handshake: a few hundred bytes on a new
        # socket, which its send buffer takes whole.
        answer = item.handshake.data_to_send()
        if answer and not self._send_now(item, answer):
            self._drop(item, selector, pending)
            return
        if complete:
            selector.unregister(item.conn)
            del pending[item.conn]
            self.server._admit(item.conn, item.addr, item.handshake)

    def _log_departure(self, item: _Pending, what: str) -> None:
        claimed = item.handshake.challenged
        if claimed is None:
            self.server.logger.info("%s %s", item.addr, what)
        else:  # at the default level (WARNING): someone holds a key the server does not
            self.server.logger.warning(
                "refusing %s: authentication failed (it %s instead of proving that it "
                "holds the key of %r)",
                item.addr,
                what,
                claimed,
            )

    def _send_now(self, item: _Pending, data: bytes) -> bool:
        try:
            sent = item.conn.send(data)
        except OSError as error:
            self.server.logger.info("%s failed during the handshake: %s", item.addr, error)
            return False
        if sent != len(data):
            self.server.logger.info("%s does not read its handshake; closing it", item.addr)
            return False
        return True

    def _refuse(self, item: _Pending, reason: str) -> None:
        if item.handshake.wire is None:
            return
        with contextlib.suppress(OSError):  # it is being closed anyway
            item.conn.send(item.handshake.refuse_bytes(reason))

    def _drop(self, item: _Pending, selector: _Watch, pending: _Handshakes) -> None:
        selector.unregister(item.conn)
        del pending[item.conn]
        item.conn.close()
        self._descriptor_freed.set()


class Server(BaseThreadedCommunication):
    """Base class for Server.

    Binds at construction (``port=0`` picks a free port, then ``port`` tells which).
    :meth:`wait_connection` starts accepting interfaces; :meth:`close` (or leaving a
    ``with`` block) ends everything the server started.

    The options not passed (``log_level`` and those after it) come from the environment
    (``PYMASEP_COMM_<NAME>``) or the TOML file that ``PYMASEP_COMM_CONFIG`` names, its
    ``[server."ID"]`` then ``[server]`` table, else their default: code that builds
    its Server with the seed's arguments only, as pymasep's engine does, is configured
    without a change (``docs/configuration.md``; keys and certificates as files there).
    A wrong setting raises :class:`~pymasep.comm.core.ConfigurationError` here.

    Args:
        ident: String id of the server.
        max_connection: Max number of interfaces connected at once; the next one is
            refused with a reason that its ``connect()`` raises.
        socket_handler_class: Class used to handle the socket (send, receive).
        socket_handler_args: Arguments to instantiate the SocketHandler class.
        host: Host to listen on (``''`` for every IPv4 address).
        port: Port to listen on (0 for any free port).
        wait_announcement: True if the server answers discovery queries (multicast);
            start answering with :meth:`wait_announcement`.
        log_level: Level of this server's logger, as str or int.
        handshake_timeout: Seconds a new connection has to say hello.
        max_pending_handshakes: How many new connections may be in their handshake at
            once; past it, the one that has waited longest is dropped to make room (so
            that a flood of silent connections cannot lock an interface out).
        max_frame_size: Largest frame accepted from an interface, in bytes.
        send_limits: How many bytes may wait for an interface that reads slowly, and
            what happens beyond (by default it is disconnected; see
            :class:`~pymasep.comm.core.SendLimits`).
        stall_timeout: Seconds an interface may stay silent in the middle of a frame
            before it is cut; None never cuts.
        linger: Seconds to deliver queued frames and close gracefully at interpreter
            exit if still open then (the program may end without ``close()``);
            by default :data:`pymasep.comm.core.linger.DEFAULT_LINGER` (10 s).
        name: A name that discovery shows beside the server's id.
        discovery_group: Multicast group that discovery queries are sent to.
        discovery_port: UDP port that discovery queries are sent to.
        discovery_interface: Local IPv4 address of the interface to answer discovery
            on (for example ``"127.0.0.1"``); by default every interface.
        authkey: Interfaces must prove they hold a key (never sent) to connect, and the
            server proves it holds it too: one key (bytes) for all, a mapping from an
            interface's id to its key, or a callable returning the key for an id (None
            refuses that id). With a mapping or a callable an interface connects only
            under the id whose key it holds. pymasep 0.2 interfaces cannot
            authenticate, and are refused. See ``docs/security.md``.
        ssl_context: Speak TLS with this server-side context (``ssl.create_default_context(
            ssl.Purpose.CLIENT_AUTH)`` with a certificate loaded; set ``verify_mode`` to
            ``CERT_REQUIRED`` to require client certificates). The TLS handshake runs
            under ``handshake_timeout`` too. pymasep 0.2 interfaces cannot speak TLS.
        record: Record every frame and connection event: to this file when its name
            ends with ``.jsonl`` (``.jsonl.gz``: gzip), else to a new file in this
            directory named by the id and the start time. Also a setting
            (``PYMASEP_COMM_RECORD``, ``record`` in the TOML file). See
            :mod:`pymasep.comm.core.recorder` and ``docs/recording.md``.
        resume_window: Seconds within which an interface whose connection broke without
            a bye (a reset, a stall, a network down) may resume it, with nothing lost
            either way; meanwhile it stays registered and frames sent to it wait. 0
            turns resuming off: a broken connection then ends at once. See
            ``docs/protocol.md`` (Resuming).
    """

    _logger_kind = "server"

    @configurable("server")
    def __init__(
        self,
        ident: str,
        max_connection: int,
        socket_handler_class: type[SocketHandler],
        socket_handler_args: tuple[Any, ...],
        host: str,
        port: int,
        wait_announcement: bool = False,
        log_level: LogLevel = logging.WARNING,
        *,
        handshake_timeout: float = 5.0,
        max_pending_handshakes: int = DEFAULT_MAX_PENDING_HANDSHAKES,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        send_limits: SendLimits = DEFAULT_SEND_LIMITS,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        linger: float | None = None,
        name: str | None = None,
        discovery_group: str = DEFAULT_GROUP,
        discovery_port: int = DEFAULT_PORT,
        discovery_interface: str | None = None,
        authkey: AuthKey | None = None,
        ssl_context: ssl.SSLContext | None = None,
        record: str | os.PathLike[str] | None = None,
        resume_window: float = DEFAULT_RESUME_WINDOW,
    ) -> None:
        super().__init__(ident, socket_handler_class, socket_handler_args, host, port, log_level)
        self.resume_window = check_resume_window(resume_window)
        """Seconds within which a broken connection may be resumed (0: never)."""
        self.max_frame_size = max_frame_size
        self.send_limits = send_limits
        self.stall_timeout = stall_timeout
        self.linger = linger
        if max_connection < 1:
            raise InvalidArgumentError(f"max_connection must be at least 1, not {max_connection}")
        self.max_connection = max_connection
        """Max number of connections for the server."""
        if max_pending_handshakes < 1:
            raise InvalidArgumentError(
                f"max_pending_handshakes must be at least 1, not {max_pending_handshakes}"
            )
        self.handshake_timeout = handshake_timeout
        self.max_pending_handshakes = max_pending_handshakes
        self.name = name
        self.discovery_group = discovery_group
        self.discovery_port = discovery_port
        self.discovery_interface = discovery_interface
        # Checked here, so that a wrong key fails at construction, not per connection.
        self._key_lookup = None if authkey is None else key_lookup(authkey)
        # The sessions of the connections that may resume. Their table is not
        # thread-safe: the loop, the handlers' ends and the expiry timer all reach it.
        self._sessions = (
            SessionTable(resume_window, self._key_lookup) if resume_window > 0 else None
        )
        self._sessions_lock = threading.Lock()
        self._session_handlers: dict[bytes, SocketHandler] = {}
        self._expiry: Timer | None = None
        self.ssl_context = ssl_context
        """The TLS context connections are wrapped in (None: plaintext)."""
        self.requires: tuple[str, ...] = (
            *(("key",) if authkey is not None else ()),
            *(("tls",) if ssl_context is not None else ()),
        )
        """What an interface needs to connect, as discovery announces it."""
        family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=128)
        self.socket.setblocking(False)
        self.port = self.socket.getsockname()[1]
        self._closed = False
        self.wait_connection_thread = _WaitConnection(self)
        """Thread for handling new connection."""
        self.wait_announcement_thread: Announcer | None = None
        """Thread that answers discovery queries (None unless ``wait_announcement``)."""
        if wait_announcement:
            self.wait_announcement_thread = self._make_announcer()
        self.recorder = self.tap = recorder_for(record, "server", ident)
        self.logger.info("listening on %s:%d", host, self.port)

    def _make_announcer(self) -> Announcer:
        assert self.port is not None  # bound in __init__
        return Announcer(
            self.id,
            self.port,
            name=self.name,
            bind_host=self.host or None,
            group=self.discovery_group,
            discovery_port=self.discovery_port,
            interface=self.discovery_interface,
            logger=self.logger,
            # pymasep 0.2 cannot authenticate nor speak TLS: its queries go unanswered.
            wire_versions=("v1",) if self.requires else ("v1", "legacy"),
            requires=self.requires,
        )

    def wait_connection(self) -> None:
        """Start the wait connection thread."""
        if self._closed:
            raise InvalidStateError("the server is closed")
        if not self.wait_connection_thread.is_alive():
            if self.wait_connection_thread._launched:  # a stopped one
                self.wait_connection_thread = _WaitConnection(self)
            self.wait_connection_thread.start()

    def stop_wait_connection(self) -> None:
        """Stop the wait connection thread. Interfaces already connected stay."""
        self.wait_connection_thread.stop()

    def wait_announcement(self) -> None:
        """Start the wait announcement thread (answers discovery queries)."""
        if self._closed:
            raise InvalidStateError("the server is closed")
        thread = self.wait_announcement_thread
        if thread is not None and thread.is_alive():
            return
        if thread is None or thread.ident is not None:  # none yet, or a stopped one
            thread = self.wait_announcement_thread = self._make_announcer()
        thread.start()

    def stop_wait_announcement(self) -> None:
        """Stop the wait announcement thread."""
        if self.wait_announcement_thread is not None:
            self.wait_announcement_thread.stop()

    def wait_for_connections(self, count: int, timeout: float | None = None) -> bool:
        """Wait until at least ``count`` interfaces are connected (``count=0``: until
        none is).

        Args:
            count: Number of connections to wait for; 0 waits until every interface has
                left.
            timeout: Seconds to wait at most; None waits as long as it takes.

        Returns:
            True if the condition holds, False after ``timeout``.
        """
        return super().wait_for_connections(count, timeout)

    def _admit(self, conn: socket.socket, addr: Any, handshake: ServerHandshake) -> None:
        """Register a client whose hello has arrived, or refuse it with a reason."""
        if handshake.resume_request is not None:
            self._resume(conn, addr, handshake)
            return
        ident = handshake.client_ident
        assert ident is not None
        conn.setblocking(True)
        # The answer is small and the socket new: it fits the send buffer at once.
        conn.settimeout(self.handshake_timeout)
        self._replace_held(ident)
        reason = self.refusal_reason(ident, self.max_connection)
        if reason:  # refused before the application's handler is even built
            self._refuse_hello(conn, addr, handshake, reason)
            return
        session, answer = self._open_session(ident, handshake)
        try:
            handler = self.open_handler(conn, addr, handshake, resume=session)
        except Exception:
            self.logger.exception("could not admit %s from %s", ident, addr)
            self._close_session(session)
            conn.close()
            return
        reason = self.try_add_connection(
            ident,
            handler,
            max_connections=self.max_connection,
            before_adding=lambda: self._accept_hello(conn, handshake, answer),
        )
        if reason:
            self._close_session(session)
            self._refuse_hello(conn, addr, handshake, reason)
            return
        if session is not None:
            with self._sessions_lock:
                self._session_handlers[session.session_id] = handler
        if conn.fileno() == -1:  # it left while the hello was answered
            return
        handler.start()
        self.logger.info(
            "%s connected from %s (%s wire%s)",
            ident,
            addr,
            handshake.wire,
            ", may resume" if session is not None else "",
        )

    # -- resuming ------------------------------------------------------------------------

    def _open_session(
        self, ident: str, handshake: ServerHandshake
    ) -> tuple[ServerSession | None, ResumeAccept | ResumeDecline | None]:
        """The session of a client that offered to resume, and the answer to its offer."""
        if handshake.offer is None:
            return None, None
        if self._sessions is None:
            return None, ResumeDecline()
        with self._sessions_lock:
            return self._sessions.open(
                ident, self.id, handshake.offer, ack_every_bytes(self.send_limits.hard_limit)
            )

    def _close_session(self, session: ResumeState | None) -> None:
        if session is not None and self._sessions is not None:
            with self._sessions_lock:
                self._sessions.close(session.session_id)
                self._session_handlers.pop(session.session_id, None)

    def _replace_held(self, ident: str) -> None:
        """A new session from an id whose broken one is held (its process restarted, or
        it gave up resuming): the held one ends, so that the new one is not refused as a
        duplicate id."""
        try:
            held = self.get_connection(ident)
        except UnknownConnectionError:
            return
        if held.resuming:
            held.abort(
                DisconnectReason(
                    DisconnectCode.RESUME_EXPIRED,
                    "a new connection came from the same id; the broken one is dropped",
                )
            )

    def _connection_broke(self, handler: SocketHandler, reason: DisconnectReason) -> None:
        """A resumable connection broke (in the loop): hold its session for its window."""
        session = handler.connection.resume
        assert session is not None and self._sessions is not None
        with self._sessions_lock:
            try:
                evicted = self._sessions.broke(session.session_id, time.monotonic())
            except KeyError:  # ended meanwhile
                return
            ended = [(self._session_handlers.pop(s.session_id, None), d) for s, d in evicted]
            self._arm_expiry()
        self._expire(ended)

    def _arm_expiry(self) -> None:
        """Set the timer for the next held session's window (sessions lock held)."""
        assert self._sessions is not None
        deadline = self._sessions.next_deadline()
        if deadline is None or (self._expiry is not None and self._expiry.when <= deadline):
            return
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = io_loop().call_at(deadline, self._expiry_due)

    def _expiry_due(self) -> None:
        assert self._sessions is not None
        with self._sessions_lock:
            self._expiry = None
            due = self._sessions.expire(time.monotonic())
            ended = [(self._session_handlers.pop(s.session_id, None), d) for s, d in due]
            self._arm_expiry()
        self._expire(ended)

    def _expire(self, ended: list[tuple[SocketHandler | None, str]]) -> None:
        for handler, detail in ended:
            if handler is not None:
                handler.abort(DisconnectReason(DisconnectCode.RESUME_EXPIRED, detail))

    def _resume(self, conn: socket.socket, addr: Any, handshake: ServerHandshake) -> None:
        """A connection that asks to resume a session: carry the session's connection
        on it, or refuse (logged with the address, never a secret)."""
        request = handshake.resume_request
        assert request is not None
        decision: ResumeDecision | None = None
        handler = None
        now = time.monotonic()

        def decide() -> tuple[bytes, list[bytes]] | None:
            # Under the handler's lock (no frame is sent meanwhile), then the table's.
            nonlocal decision
            assert self._sessions is not None and request is not None
            with self._sessions_lock:
                decision = self._sessions.resume(request, now)
            if decision.refusal is not None:
                return None
            return handshake.resume_answer_bytes(decision.answer), decision.resend

        try:
            if self._sessions is None:
                raise ConnectionRejectedError("this server does not resume connections")
            with self._sessions_lock:
                session = self._sessions.get(request.session_id)
                handler = self._session_handlers.get(request.session_id)
                held_since = None if session is None else session.broken_at
                if handler is None and session is not None:  # its handler is gone: ended
                    self._sessions.close(session.session_id)
            # Not under the table's lock: the frames that came with the request are
            # delivered now, and the application's callbacks may reach the server.
            resend = None if handler is None else handler.resume_on(conn, addr, handshake, decide)
            if handler is None:
                decide()
        except CommunicationError as error:  # a proof of frames never sent, or closing
            reason = error.reason if isinstance(error, ConnectionRejectedError) else str(error)
            self.logger.warning("refusing the resume from %s: %s", addr, reason)
            self._answer_and_close(conn, handshake.refuse_bytes(reason))
            if handler is not None and isinstance(error, ProtocolError):
                # A proven request whose counts cannot be: the session ends, never resumed.
                handler.abort(DisconnectReason(DisconnectCode.PROTOCOL_ERROR, str(error)))
            return
        if resend is None:
            assert decision is not None and decision.refusal is not None
            self.logger.warning("refusing the resume from %s: %s", addr, decision.refusal.text)
            self._answer_and_close(conn, handshake.resume_answer_bytes(decision.answer))
            return
        assert handler is not None
        outage = "" if held_since is None else f" after {now - held_since:.3g} s"
        self.logger.info(
            "%s resumed from %s%s; %d frames sent again",
            handler.peer_id,
            addr,
            outage,
            len(resend),
        )

    def _answer_and_close(self, conn: socket.socket, answer: bytes) -> None:
        """Send a refusal (small: a new socket's buffer takes it) and close."""
        with contextlib.suppress(OSError):
            conn.setblocking(True)
            conn.settimeout(self.handshake_timeout)
            conn.sendall(answer)
        conn.close()

    def _refuse_hello(
        self, conn: socket.socket, addr: Any, handshake: ServerHandshake, reason: str
    ) -> None:
        self.logger.info("refusing %s from %s: %s", handshake.client_ident, addr, reason)
        self._answer_and_close(conn, handshake.refuse_bytes(reason))

    def _accept_hello(
        self,
        conn: socket.socket,
        handshake: ServerHandshake,
        answer: ResumeAccept | ResumeDecline | None = None,
    ) -> bool:
        """Answer a hello that is accepted (and its offer to resume, if any); False if
        the client has left meanwhile."""
        try:
            conn.sendall(handshake.accept_bytes(answer))
            conn.settimeout(None)
        except OSError as error:
            self.logger.info("%s left during the handshake: %s", handshake.client_ident, error)
            conn.close()
            return False
        return True

    def _connection_closed(self, handler: SocketHandler, reason: DisconnectReason) -> None:
        self._close_session(handler.connection.resume)  # a bye, close(): never resumed
        super()._connection_closed(handler, reason)
        # Its descriptor is free: an accept() that failed for want of one may succeed.
        self.wait_connection_thread.descriptor_freed()

    def _stop_listening(self) -> None:
        """Close the listening socket: new clients are refused at once."""
        if self.socket is not None:
            self.socket.close()

    def close(self, timeout: float = 0.5) -> None:
        """Stop accepting and announcing, close every connection, free the port. Idempotent.

        Every frame already queued is sent before the bye to the interfaces that read.
        Once it returns no new connection can be registered.

        Args:
            timeout: Seconds to wait at most for the interfaces to close their side;
                those that have not are cut then.
        """
        deadline = time.monotonic() + timeout
        self._closed = True
        self.stop_adding_connections()
        self.wait_connection_thread.stop(timeout)
        if self.wait_announcement_thread is not None:
            self.wait_announcement_thread.stop(max(0.0, deadline - time.monotonic()))
        super().close(max(0.0, deadline - time.monotonic()))
        self._stop_listening()
