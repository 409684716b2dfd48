"""The interface's side: :class:`Client` connects to one engine."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from typing import Any

from pymasep.comm.core import DEFAULT_MAX_FRAME_SIZE, SocketHandler, Wire
from pymasep.comm.core.auth import check_key
from pymasep.comm.core.communication import BaseThreadedCommunication, LogLevel
from pymasep.comm.core.connection import (
    DEFAULT_SEND_LIMITS,
    DEFAULT_STALL_TIMEOUT,
    DisconnectCode,
    DisconnectReason,
    SendLimits,
)
from pymasep.comm.core.discovery import (
    DEFAULT_GROUP,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    DEFAULT_TTL,
    ServerInfo,
)
from pymasep.comm.core.exceptions import (
    CommunicationConnectionError,
    CommunicationError,
    CommunicationTimeoutError,
    ConnectionRejectedError,
    HandshakeError,
    InvalidArgumentError,
    ServerNotFoundError,
)
from pymasep.comm.core.handshake import ClientHandshake, ResumeHandshake
from pymasep.comm.core.recorder import recorder_for
from pymasep.comm.core.resume import (
    DEFAULT_RESUME_WINDOW,
    ClientSession,
    ResumeAccept,
    ResumeOffer,
    ack_every_bytes,
    check_resume_window,
)
from pymasep.comm.core.settings import configurable

from .discovery import _Search, not_found_hint

__all__ = ["Client"]

_HANDSHAKE_READ_SIZE = 64 * 1024
# Reconnecting after a break: the first retry soon (a reset on a live network is over
# at once), then doubling up to a second, until the window passes.
_RETRY_FIRST = 0.05
_RETRY_LAST = 1.0
# One attempt's connect and handshake, at most (a network that is down fails sooner).
_ATTEMPT_TIMEOUT = 5.0


def _time_left(sock: socket.socket, deadline: float | None) -> None:
    """Give the socket's next call the time left until ``deadline`` (None: no limit).

    Raises:
        TimeoutError: The deadline has passed. A timeout of 0 would instead make the
            socket non-blocking, and its next ``recv`` raise ``BlockingIOError``.
    """
    if deadline is None:
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the deadline has passed")
    sock.settimeout(remaining)


class Client(BaseThreadedCommunication):
    """Base class for Client.

    The options not passed (``log_level`` and those after it) come from the environment
    (``PYMASEP_COMM_<NAME>``) or the TOML file that ``PYMASEP_COMM_CONFIG`` names, its
    ``[client."ID"]`` then ``[client]`` table, else their default: code that builds
    its Client with the seed's arguments only, as pymasep's interfaces do, is configured
    without a change (``docs/configuration.md``; keys and certificates as files there).
    A wrong setting raises :class:`~pymasep.comm.core.ConfigurationError` here.

    Args:
        ident: String id of the client.
        socket_handler_class: Class used to handle the socket (send, receive).
        socket_handler_args: Arguments to instantiate the SocketHandler class.
        host: Host to connect. If None, :meth:`connect` searches a server first.
        port: Port to connect. If None, :meth:`connect` searches a server first.
        log_level: Level of this client's logger, as str or int.
        wire: ``"v1"`` (default), ``"legacy"`` to talk to a pymasep 0.2 server, or
            ``"auto"``: the wire that discovery reported for the server found
            (``"v1"`` when the server was not found by discovery).
        max_frame_size: Largest frame accepted from the server, in bytes.
        send_limits: How many bytes may wait for a server that reads slowly, and what
            happens beyond (see :class:`~pymasep.comm.core.SendLimits`).
        stall_timeout: Seconds the server may stay silent in the middle of a frame
            before it is cut; None never cuts.
        linger: Seconds to deliver queued frames and close gracefully at interpreter
            exit if still open then (the program may end without ``close()``);
            by default :data:`pymasep.comm.core.linger.DEFAULT_LINGER` (10 s).
        discovery_group: Multicast group that :meth:`search_server` queries.
        discovery_port: UDP port that :meth:`search_server` queries.
        discovery_interface: Local IPv4 address of the interface to query on (for
            example ``"127.0.0.1"``); by default the system's choice.
        authkey: The key to prove to the server (never sent); the server must prove it
            holds it too, or :meth:`connect` raises
            :class:`~pymasep.comm.core.ConnectionRejectedError`. v1 wire only. See
            ``docs/security.md``.
        ssl_context: Speak TLS with this client-side context (for example
            ``ssl.create_default_context(cafile=...)``, with a certificate loaded to
            present one to the server). v1 wire only.
        server_hostname: The name the server's certificate must carry; by default
            ``host``.
        record: Record every frame and connection event: to this file when its name
            ends with ``.jsonl`` (``.jsonl.gz``: gzip), else to a new file in this
            directory named by the id and the start time. Also a setting
            (``PYMASEP_COMM_RECORD``, ``record`` in the TOML file). See
            :mod:`pymasep.comm.core.recorder` and ``docs/recording.md``.
        resume_window: Seconds within which a connection that broke without a bye (a
            reset, a stall, a network down) is resumed: the client reconnects with
            backoff (to the same address, or by discovering the same server id again)
            and nothing is lost either way; meanwhile frames sent wait. 0 turns
            resuming off. Offered to the server, which may choose less; pymasep 0.2
            and ``wire="legacy"`` never resume. See ``docs/protocol.md`` (Resuming).
    """

    _logger_kind = "client"

    @configurable("client")
    def __init__(
        self,
        ident: str,
        socket_handler_class: type[SocketHandler],
        socket_handler_args: tuple[Any, ...],
        host: str | None = None,
        port: int | None = None,
        log_level: LogLevel = logging.WARNING,
        *,
        wire: Wire | str = Wire.V1,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        send_limits: SendLimits = DEFAULT_SEND_LIMITS,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        linger: float | None = None,
        discovery_group: str = DEFAULT_GROUP,
        discovery_port: int = DEFAULT_PORT,
        discovery_interface: str | None = None,
        authkey: bytes | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        record: str | os.PathLike[str] | None = None,
        resume_window: float = DEFAULT_RESUME_WINDOW,
    ) -> None:
        super().__init__(ident, socket_handler_class, socket_handler_args, host, port, log_level)
        self.resume_window = check_resume_window(resume_window)
        """Seconds within which a broken connection is resumed (0: never)."""
        self._discovered = False  # the server was found by discovery: found again so
        self._older_servers: set[tuple[str, int]] = set()  # refused the offer once
        self.max_frame_size = max_frame_size
        self.send_limits = send_limits
        self.stall_timeout = stall_timeout
        self.linger = linger
        self.server_id: str | None = None
        """Id of the server to connect to (set by :meth:`connect`)."""
        self.auto_wire = wire == "auto"
        """True when the wire follows what discovery reports (``wire="auto"``)."""
        self.wire = Wire.V1 if self.auto_wire else Wire(wire)
        """Wire format spoken to the server (with ``"auto"``, set by :meth:`search_server`)."""
        self.discovery_group = discovery_group
        self.discovery_port = discovery_port
        self.discovery_interface = discovery_interface
        self._authkey = None if authkey is None else check_key(authkey)
        if self._authkey is not None and self.wire is Wire.LEGACY:
            raise InvalidArgumentError("the legacy wire (pymasep 0.2) cannot authenticate")
        self.ssl_context = ssl_context
        """The TLS context of the connection (None: plaintext)."""
        self.server_hostname = server_hostname
        if ssl_context is not None and self.wire is Wire.LEGACY:
            raise InvalidArgumentError("the legacy wire (pymasep 0.2) cannot speak TLS")
        self.recorder = self.tap = recorder_for(record, "client", ident)

    def connect(self, timeout: float | None = 10.0) -> None:
        """Connect the client to a server. Create the handler and register the connection.

        Without a host or port, :meth:`search_server` runs first.

        Args:
            timeout: Seconds for the connection and the handshake together; None waits
                as long as the system does.

        Raises:
            CommunicationConnectionError: Nothing accepts connections at that address, or
                this client is already connected.
            ConnectionRejectedError: The server refused the client (full, or its id is
                taken); ``reason`` says which.
            CommunicationTimeoutError: The server did not answer within ``timeout`` (at
                once if ``timeout`` is 0 or less).
            HandshakeError, ProtocolError: The server does not speak this protocol.
        """
        if self.server_id is not None and self.is_connection_registered(self.server_id):
            raise CommunicationConnectionError(
                f"{self.id} is already connected to {self.server_id}"
            )
        if self.host is None or self.port is None:
            self.search_server()
            self._discovered = True
        assert self.host is not None and self.port is not None
        if timeout is not None and timeout <= 0:
            # create_connection would take 0 as "non-blocking" and fail with
            # EINPROGRESS, or reject a negative timeout with ValueError.
            raise CommunicationTimeoutError(
                f"no time left to connect to {self.host}:{self.port} (timeout={timeout})"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        offer = None
        older = (self.host, self.port) in self._older_servers
        if self.resume_window > 0 and self.wire is Wire.V1 and not older:
            ack_bytes = ack_every_bytes(self.send_limits.hard_limit)
            offer = ResumeOffer.new(self.resume_window, ack_bytes)
        sock = self._connect_socket(timeout, deadline)
        try:
            handshake = self._handshake(sock, deadline, offer)
            if handshake.older_server:
                # A server built before resuming refused the offer: again, without it.
                self._older_servers.add((self.host, self.port))
                sock.close()
                sock = self._connect_socket(timeout, deadline)
                handshake = self._handshake(sock, deadline, None)
            session = None
            if offer is not None and isinstance(handshake.resume_answer, ResumeAccept):
                assert handshake.server_ident is not None
                session = ClientSession.start(
                    offer, handshake.resume_answer, self.id, handshake.server_ident, self._authkey
                )
            sock.settimeout(None)
            handler = self.open_handler(sock, sock.getpeername(), handshake, resume=session)
        except BaseException:
            sock.close()
            raise
        assert handshake.server_ident is not None
        self.socket = sock
        self.server_id = handshake.server_ident
        self.add_connection(self.server_id, handler)
        handler.start()
        self.logger.info(
            "connected to %s at %s:%s%s",
            self.server_id,
            self.host,
            self.port,
            f" (may resume within {session.window:g} s)" if session is not None else "",
        )

    def _connect_socket(self, timeout: float | None, deadline: float | None) -> socket.socket:
        """A connected socket to ``host:port`` (TLS done, if any)."""
        assert self.host is not None and self.port is not None
        if deadline is not None:
            timeout = max(0.001, deadline - time.monotonic())
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except TimeoutError as error:
            raise CommunicationTimeoutError(
                f"no answer from {self.host}:{self.port} within {timeout:.3g} s"
            ) from error
        except OSError as error:
            raise CommunicationConnectionError(
                f"cannot connect to {self.host}:{self.port}: {error.strerror or error}"
            ) from error
        if self.ssl_context is not None:
            sock = self._start_tls(sock, deadline)
        return sock

    def _start_tls(self, sock: socket.socket, deadline: float | None) -> ssl.SSLSocket:
        """Run the TLS handshake on ``sock`` (closed if it fails)."""
        assert self.ssl_context is not None
        try:
            _time_left(sock, deadline)
            return self.ssl_context.wrap_socket(
                sock, server_hostname=self.server_hostname or self.host
            )
        except TimeoutError as error:
            sock.close()
            raise CommunicationTimeoutError(
                f"{self.host}:{self.port} did not complete the TLS handshake in time"
            ) from error
        except (ssl.SSLError, OSError) as error:
            sock.close()
            raise HandshakeError(f"TLS with {self.host}:{self.port} failed: {error}") from error

    def _handshake(
        self, sock: socket.socket, deadline: float | None, offer: ResumeOffer | None
    ) -> ClientHandshake:
        """A new session's opening exchange (it stops early for an older server)."""
        handshake = ClientHandshake(
            self.id, self.wire, self.max_frame_size, authkey=self._authkey, resume_offer=offer
        )
        self._exchange(sock, deadline, handshake)
        return handshake

    def _exchange(
        self,
        sock: socket.socket,
        deadline: float | None,
        handshake: ClientHandshake | ResumeHandshake,
    ) -> None:
        """Send the handshake's opening bytes and feed it the answer until it is done."""
        try:
            _time_left(sock, deadline)
            sock.sendall(handshake.bytes_to_send())
            while True:
                _time_left(sock, deadline)
                data = sock.recv(_HANDSHAKE_READ_SIZE)
                if not data:
                    raise HandshakeError(
                        f"{self.host}:{self.port} closed the connection during the handshake"
                        + (
                            " (a pymasep 0.2 server closes when it is full)"
                            if self.wire is Wire.LEGACY
                            else ""
                        )
                    )
                if handshake.receive_data(data):
                    return
                if isinstance(handshake, ClientHandshake) and handshake.older_server:
                    return
                answer = handshake.data_to_send()
                if answer:
                    sock.sendall(answer)
        except TimeoutError as error:
            raise CommunicationTimeoutError(
                f"{self.host}:{self.port} did not complete the handshake in time"
            ) from error
        except ssl.SSLError as error:
            # TLS 1.3: a server that refuses our certificate says so after the handshake.
            raise HandshakeError(f"TLS with {self.host}:{self.port} failed: {error}") from error
        except ConnectionError as error:
            if isinstance(error, CommunicationConnectionError):
                raise
            raise HandshakeError(
                f"{self.host}:{self.port} dropped the handshake: {error}"
            ) from error

    def search_server(
        self, timeout: float | None = None, server_id: str | None = None
    ) -> list[ServerInfo]:
        """Search a server on the local net using multicast UDP; set ``host`` and ``port``.

        Args:
            timeout: Seconds to listen for answers (default 1 s, as pymasep 0.2).
            server_id: Connect to the server with this id; by default the first that
                answered.

        Returns:
            Every server that answered, in the order they did.

        Raises:
            ServerNotFoundError: No server answered, or none with ``server_id`` (also a
                ``ConnectionError``).
        """
        wait = DEFAULT_TIMEOUT if timeout is None else timeout
        servers = self._search(wait).run(logger=self.logger)
        chosen = next((s for s in servers if server_id in (None, s.id)), None)
        if chosen is None:
            wanted = "a server" if server_id is None else f"server {server_id!r}"
            found = ", ".join(s.id or f"{s.host}:{s.port}" for s in servers) or "none"
            raise ServerNotFoundError(
                f"{wanted} did not answer on {self.discovery_group}:{self.discovery_port} "
                f"within {wait} s (answered: {found}); {not_found_hint('discovery_interface=')}"
            )
        self.host, self.port = chosen.host, chosen.port
        if self.auto_wire:
            self.wire = Wire(chosen.wire)
        self.logger.info("found %s at %s:%d", chosen.id or "a server", chosen.host, chosen.port)
        return servers

    def _search(self, timeout: float) -> _Search:
        """A discovery search with this client's settings, for ``timeout`` seconds."""
        return _Search(
            timeout,
            self.discovery_group,
            self.discovery_port,
            DEFAULT_TTL,
            self.discovery_interface,
            option="discovery_interface=",
        )

    # -- resuming ------------------------------------------------------------------------

    def _connection_broke(self, handler: SocketHandler, reason: DisconnectReason) -> None:
        """The connection broke without a bye (in the I/O thread): reconnect and resume
        it, in a thread of its own while it lasts (each attempt may wait for the network)."""
        threading.Thread(
            target=self._resume,
            args=(handler,),
            name=f"pymasep-comm-resume-{self.id}",
            daemon=True,
        ).start()

    def _resume(self, handler: SocketHandler) -> None:
        """Reconnect with backoff until the session resumes, is refused, or its window
        passes; the handler is ended with the reason in the last two cases."""
        session = handler.connection.resume
        assert isinstance(session, ClientSession) and session.broken_at is not None
        broke_at = session.broken_at
        delay = _RETRY_FIRST
        failure = "no attempt was made"
        while not handler.closed:
            now = time.monotonic()
            if session.expired(now):
                detail = session.end(f"not resumed within {session.window:g} s ({failure})")
                handler.abort(DisconnectReason(DisconnectCode.RESUME_EXPIRED, detail))
                return
            assert session.deadline is not None
            try:
                deadline = min(session.deadline, now + _ATTEMPT_TIMEOUT)
                resend = self._resume_once(handler, session, deadline)
            except ConnectionRejectedError as error:  # a ResumeRefusedError, or closing
                # The server restarted, or ended the session: say so, never start a new
                # session in silence.
                self.logger.warning("the server refused to resume the connection: %s", error.reason)
                detail = session.end(f"the server refused to resume: {error.reason}")
                handler.abort(DisconnectReason(DisconnectCode.RESUME_REFUSED, detail))
                return
            except (CommunicationError, OSError) as error:
                failure = f"last attempt: {error}"
                self.logger.debug("resuming %s failed: %s", self.server_id, error)
                # Backoff, cut short by close(): the handler's end is what is waited for.
                handler.wait_closed(min(delay, max(0.0, session.deadline - time.monotonic())))
                delay = min(delay * 2, _RETRY_LAST)
                continue
            if resend is None:  # the connection ended meanwhile
                return
            self.logger.info(
                "resumed the connection to %s after %.3g s; %d frames sent again",
                self.server_id,
                time.monotonic() - broke_at,
                len(resend),
            )
            return

    def _resume_once(
        self, handler: SocketHandler, session: ClientSession, deadline: float
    ) -> list[bytes] | None:
        """One attempt: find the server again if discovery found it, connect, prove the
        session, and carry the connection on the new socket."""
        if self._discovered:
            # The same server id, wherever it answers now; the first answer will do.
            wait = max(0.05, min(DEFAULT_TIMEOUT, deadline - time.monotonic()))
            found = self._search(wait).run(self.server_id, logger=self.logger)
            if not found:
                raise ServerNotFoundError(f"{self.server_id!r} did not answer discovery")
            self.host, self.port = found[0].host, found[0].port
        sock = self._connect_socket(deadline - time.monotonic(), deadline)
        try:
            handshake = ResumeHandshake(session, self.max_frame_size)
            self._exchange(sock, deadline, handshake)
            answer = handshake.answer
            assert answer is not None
            sock.settimeout(None)
            resent = handler.resume_on(
                sock, sock.getpeername(), handshake, lambda: (b"", session.answer(answer))
            )
        except BaseException:
            sock.close()
            raise
        self.socket = sock
        return resent
