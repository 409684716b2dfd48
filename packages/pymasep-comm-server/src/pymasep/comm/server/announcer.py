"""Answering discovery queries: the server side of :mod:`pymasep.comm.core.discovery`.

An :class:`Announcer` is a daemon thread that listens on the discovery group and port
and answers each query with the address and port clients should connect to. Its socket
is opened by :meth:`Announcer.start` (not by the constructor), so that an announcer that
is never started holds nothing, and binding errors surface from ``start()`` in the
caller's thread.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import selectors
import socket
import threading
import time
from collections.abc import Iterable
from types import TracebackType

from pymasep.comm.core.discovery import (
    DEFAULT_GROUP,
    DEFAULT_PORT,
    MAX_DATAGRAM_SIZE,
    QueryFormat,
    build_reply,
    query_format,
)
from pymasep.comm.core.exceptions import CommunicationConnectionError

__all__ = ["Announcer"]

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
# Datagrams read per wake-up before looking at the stop flag again: a flood of queries
# cannot delay stop() by more than this many replies.
_BATCH = 64
# Consecutive receive errors after which the loop gives up rather than spin.
_MAX_ERRORS = 100
# Errors that mean the socket is gone, not that one datagram was bad.
_FATAL_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK, errno.EINVAL})


def _is_multicast(address: str) -> bool:
    try:
        return ipaddress.IPv4Address(address).is_multicast
    except ValueError:
        return False


def _resolve_ipv4(host: str) -> str:
    """Return ``host`` as an IPv4 address, resolving a name if needed."""
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as error:
        raise ValueError(
            f"bind_host {host!r} has no IPv4 address to announce ({error}); discovery "
            f"announces IPv4 addresses only"
        ) from error
    return str(infos[0][4][0])


def _local_address_for(peer: tuple[str, int]) -> str:
    """Return the local IPv4 address the routing table uses to reach ``peer``.

    Connecting a UDP socket only picks a route and a source address; it sends nothing.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(peer)
        return str(probe.getsockname()[0])


class Announcer(threading.Thread):
    """Answer discovery queries with this server's address, in a daemon thread.

    A pymasep-comm query gets a v1 reply (id, wires, name); a pymasep 0.2 query gets the
    plain ``host:port`` 0.2 clients read, if the server speaks the legacy wire. The host
    announced is ``bind_host`` when the server's TCP socket is bound to one address, and
    otherwise the local address the server uses to reach the client that asked, so
    each client learns the address valid on its own network.

    Several announcers can run on one host (one per server): the socket sets
    ``SO_REUSEADDR`` and ``SO_REUSEPORT``, and every announcer gets its own copy of a
    multicast query.

    Use it as a context manager, or call :meth:`start` then :meth:`stop`::

        with Announcer("engine", 5000, name="My game"):
            ...  # serve

    Args:
        server_id: The server's id, sent in v1 replies.
        port: The TCP port the server accepts connections on.
        wire_versions: The wires the server speaks, preferred first. Without
            ``"legacy"``, pymasep 0.2 queries are not answered (those clients could not
            talk to the server).
        name: A human-readable name sent in v1 replies, or None.
        bind_host: The host the server's TCP socket is bound to. A specific address (or
            a name, resolved to IPv4 at :meth:`start`) is announced as is; None, ``""``,
            ``"0.0.0.0"`` or ``"::"`` announce the address facing each client.
        group: The multicast group to join.
        discovery_port: The UDP port to listen on.
        interface: The local IPv4 address of the interface to join the group on; None
            lets the routing table choose (``INADDR_ANY``).
        logger: Where to log; defaults to this module's logger.
        requires: What a client needs to connect (``"key"``, ``"tls"``), sent in v1
            replies so that ``pymasep-comm discover`` shows it.

    Raises:
        ValueError: An argument that cannot work, raised by the constructor: a group that
            is not multicast, a port out of range, an unknown wire, an id or name too
            long for one datagram (:class:`~pymasep.comm.core.EncodeError`).
    """

    def __init__(
        self,
        server_id: str,
        port: int,
        *,
        wire_versions: Iterable[str] = ("v1", "legacy"),
        name: str | None = None,
        bind_host: str | None = None,
        group: str = DEFAULT_GROUP,
        discovery_port: int = DEFAULT_PORT,
        interface: str | None = None,
        logger: logging.Logger | None = None,
        requires: Iterable[str] = (),
    ) -> None:
        super().__init__(name=f"pymasep-announcer-{server_id}", daemon=True)
        self.server_id = server_id
        self.port = port
        self.wire_versions = tuple(str(wire) for wire in wire_versions)
        self.requires = tuple(str(need) for need in requires)
        self.server_name = name
        self.bind_host = bind_host
        self.group = group
        self.discovery_port = discovery_port
        self.interface = interface
        self.logger = logger if logger is not None else logging.getLogger(__name__)
        if not _is_multicast(group):
            raise ValueError(f"group must be an IPv4 multicast address, not {group!r}")
        if isinstance(discovery_port, bool) or not 0 < discovery_port < 65536:
            raise ValueError(f"discovery_port must be from 1 to 65535, not {discovery_port!r}")
        if interface is not None:
            try:
                ipaddress.IPv4Address(interface)
            except ValueError:
                raise ValueError(
                    f"interface must be a local IPv4 address, not {interface!r}"
                ) from None
        # Build the longest reply now so that a bad id, port, wire or name fails here
        # rather than on the first query, in the thread.
        build_reply(
            "255.255.255.255",
            port,
            server_id=server_id,
            wire_versions=self.wire_versions,
            name=name,
            bound=True,
            requires=self.requires,
        )
        self._answers_legacy = "legacy" in self.wire_versions
        self._announced_host: str | None = None
        self._sock: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        # Guards the wake-up socket: stop() writes to it while run() may be closing it.
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._launched = False

    def start(self) -> None:
        """Open the discovery socket, join the group and start answering.

        Raises:
            CommunicationConnectionError: The socket cannot be bound or cannot join the
                group (an :class:`OSError`; ``errno`` is the system's).
            ValueError: ``bind_host`` has no IPv4 address.
            RuntimeError: The announcer was already started.
        """
        with self._lock:
            if self._launched or self._stopping.is_set():
                raise RuntimeError("an Announcer can be started only once")
            self._launched = True  # claims the start; given back if it fails
        try:
            if self.bind_host is not None and self.bind_host not in _WILDCARD_HOSTS:
                self._announced_host = _resolve_ipv4(self.bind_host)
            self._open()
            super().start()
        except BaseException:
            self._close()
            with self._lock:
                self._launched = False
            raise

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            # Bound to the wildcard, not the group: a client may also query by unicast.
            sock.bind(("", self.discovery_port))
        except OSError as error:
            sock.close()
            raise CommunicationConnectionError(
                error.errno,
                f"cannot listen for discovery queries on UDP port {self.discovery_port}: "
                f"{error.strerror} (another program may hold the port without SO_REUSEPORT)",
            ) from error
        try:
            membership = socket.inet_aton(self.group) + socket.inet_aton(
                self.interface or "0.0.0.0"
            )
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        except OSError as error:
            sock.close()
            where = f"interface {self.interface}" if self.interface else "the default interface"
            raise CommunicationConnectionError(
                error.errno,
                f"cannot join multicast group {self.group} on {where}: {error.strerror} "
                f"(no multicast route? try: ip route add 224.0.0.0/4 dev IFACE, or name the "
                f"local address of the interface to answer on: discovery_interface= on a "
                f"Server, interface= on an Announcer)",
            ) from error
        sock.setblocking(False)
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        self._sock, self._selector, self._wake_r, self._wake_w = sock, selector, wake_r, wake_w
        self.logger.info(
            "answering discovery on %s:%d for %s (port %d)",
            self.group,
            self.discovery_port,
            self.server_id,
            self.port,
        )

    def _close(self) -> None:
        with self._lock:
            for closable in (self._selector, self._sock, self._wake_r, self._wake_w):
                if closable is not None:
                    closable.close()
            self._selector = self._sock = self._wake_r = self._wake_w = None

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop answering and wait for the thread to end. Safe to call more than once.

        Args:
            timeout: Seconds to wait for the thread.

        Returns:
            True when the thread has ended (or never started), False if it was still
            running at the deadline (it is a daemon thread and will not keep the process
            alive).
        """
        deadline = time.monotonic() + timeout
        self._stopping.set()
        with self._lock:
            if self._wake_w is not None:
                # OSError: the buffer is full, so a wake-up is already pending.
                with contextlib.suppress(OSError):
                    self._wake_w.send(b"\0")
        if not self._launched or self.ident is None:
            return True  # never started: the thread, if it starts now, sees the flag
        if threading.current_thread() is not self:
            self.join(max(0.0, deadline - time.monotonic()))
        if self.is_alive():
            self.logger.warning("the discovery announcer for %s did not stop", self.server_id)
            return False
        return True

    def __enter__(self) -> Announcer:
        if not self._launched:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def run(self) -> None:
        """Answer queries until :meth:`stop`."""
        try:
            self._serve()
        except Exception:
            # A bug, not a bad datagram (those are handled per datagram): log it, since
            # an exception in a thread is otherwise easy to miss.
            self.logger.exception("the discovery announcer for %s failed", self.server_id)
        finally:
            self._close()
            self.logger.info("stopped answering discovery for %s", self.server_id)

    def _serve(self) -> None:
        selector, sock = self._selector, self._sock
        assert selector is not None and sock is not None  # opened by start()
        errors = 0
        while not self._stopping.is_set():
            for key, _ in selector.select():
                if key.fileobj is not sock:
                    continue  # the wake-up socket: the loop condition sees the flag
                for _ in range(_BATCH):
                    try:
                        data, peer = sock.recvfrom(MAX_DATAGRAM_SIZE + 1)
                    except BlockingIOError:
                        break
                    except OSError as error:
                        errors += 1
                        if error.errno in _FATAL_ERRNOS or errors >= _MAX_ERRORS:
                            raise
                        self.logger.debug("receiving a discovery datagram failed: %s", error)
                        break
                    errors = 0
                    self._handle(data, peer)

    def _handle(self, data: bytes, peer: tuple[str, int]) -> None:
        """Answer one datagram if it is a query; never raises."""
        try:
            fmt = query_format(data)
            if fmt is None:
                self.logger.debug("ignoring a %d-byte datagram from %s", len(data), peer)
                return
            if fmt == "legacy" and not self._answers_legacy:
                self.logger.debug("ignoring a pymasep 0.2 query from %s: no legacy wire", peer)
                return
            reply = self._reply(fmt, peer)
            if reply is None:
                return
            sock = self._sock
            if sock is not None:
                sock.sendto(reply, peer)
                self.logger.debug("answered a %s query from %s: %r", fmt, peer, reply)
        except Exception as error:
            self.logger.debug("cannot answer %r from %s: %s", data[:64], peer, error)

    def _reply(self, fmt: QueryFormat, peer: tuple[str, int]) -> bytes | None:
        host = self._announced_host
        bound = host is not None
        if host is None:
            host = _local_address_for(peer)
        elif ipaddress.IPv4Address(host).is_loopback and not _is_this_host(peer[0]):
            # The server listens on loopback only: it cannot be reached from there.
            self.logger.debug("not answering %s: the server listens on %s", peer, host)
            return None
        return build_reply(
            host,
            self.port,
            server_id=self.server_id,
            wire_versions=self.wire_versions,
            name=self.server_name,
            bound=bound,
            fmt=fmt,
            requires=self.requires,
        )


def _is_this_host(address: str) -> bool:
    """Tell whether ``address`` is one of this host's (so it can reach loopback)."""
    try:
        parsed = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    # 0.0.0.0 is the source of a datagram sent before the host had an address to send
    # from: it can only come from this host.
    if parsed.is_loopback or parsed.is_unspecified:
        return True
    # Only a local address can be bound; binding sends nothing.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True
