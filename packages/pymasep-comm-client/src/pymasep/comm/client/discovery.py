"""Finding servers on the local network: the client side of :mod:`pymasep.comm.core.discovery`.

:func:`search_servers` sends a query to the discovery group and lists every server that
answers before the deadline; :func:`find_server` returns one server or raises
:class:`~pymasep.comm.core.ServerNotFoundError`. Both are bounded: a query sent at most
:data:`QUERY_SENDS` times, and a loop that ends at the deadline.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
import socket
import time
from dataclasses import dataclass

from pymasep.comm.core.discovery import (
    DEFAULT_GROUP,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    DEFAULT_TTL,
    ServerInfo,
    build_query,
    parse_reply,
)
from pymasep.comm.core.exceptions import ServerNotFoundError

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "QUERY_SENDS",
    "ServerInfo",
    "find_server",
    "search_servers",
]

QUERY_SENDS = 3
"""How many times the query is sent, evenly spread over the first part of the timeout:
UDP may lose a datagram, and a server that answers twice is listed once."""

_RECEIVE_SIZE = 65535


def _route_hint(option: str) -> str:
    """How to make multicast leave by the right interface; ``option`` is how the caller
    names the interface (``interface=``, ``discovery_interface=``, ``--interface``)."""
    return (
        "give this host a multicast route (ip route add 224.0.0.0/4 dev IFACE) or name the "
        f"local address of the interface to query from ({option})"
    )


def not_found_hint(option: str) -> str:
    """What to check when no server answered; ``option`` as in :func:`_route_hint`."""
    return (
        "check that a server runs with discovery on, that no firewall drops UDP on that "
        "port, and that multicast leaves by the right interface: " + _route_hint(option)
    )


_logger = logging.getLogger(__name__)


def _check_arguments(
    timeout: float, group: str, port: int, ttl: int, interface: str | None
) -> None:
    if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    try:
        multicast = ipaddress.IPv4Address(group).is_multicast
    except ValueError:
        multicast = False
    if not multicast:
        raise ValueError(f"group must be an IPv4 multicast address, not {group!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be from 1 to 65535, not {port!r}")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 255:
        raise ValueError(f"ttl must be from 0 to 255, not {ttl!r}")
    if interface is not None:
        try:
            ipaddress.IPv4Address(interface)
        except ValueError:
            raise ValueError(f"interface must be a local IPv4 address, not {interface!r}") from None


def _open_socket(ttl: int, interface: str | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        # Servers on this very host must hear the query too.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if interface is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
        sock.bind(("", 0))
    except OSError:
        sock.close()
        raise
    return sock


def search_servers(
    timeout: float = DEFAULT_TIMEOUT,
    *,
    group: str = DEFAULT_GROUP,
    port: int = DEFAULT_PORT,
    ttl: int = DEFAULT_TTL,
    interface: str | None = None,
    server_id: str | None = None,
    stop_on_first: bool = False,
    logger: logging.Logger | None = None,
) -> list[ServerInfo]:
    """List the servers that answer a discovery query within ``timeout``.

    Args:
        timeout: Seconds to listen for answers.
        group: The multicast group to query.
        port: The UDP port servers listen on.
        ttl: Multicast time-to-live; 1 stays on the local network segment.
        interface: The local IPv4 address of the interface to send the query from; None
            lets the routing table choose.
        server_id: Only list the server with this id, and return as soon as it answers.
            pymasep 0.2 servers have no id and are then left out.
        stop_on_first: Return as soon as one server (the one with ``server_id``, if
            given) answers.
        logger: Where to log; defaults to this module's logger.

    Returns:
        The servers, in the order their first answer arrived, each once. Empty when none
        answered.

    Raises:
        ValueError: An argument out of range.
        ServerNotFoundError: The query cannot be sent at all (no route to the group,
            no such interface); the system's error is its ``__cause__``.
    """
    search = _Search(timeout, group, port, ttl, interface, option="interface=")
    return search.run(server_id, stop_on_first, logger)


@dataclass(frozen=True)
class _Search:
    """Where a search queries and for how long, as :func:`search_servers` takes it;
    ``option`` is how the caller names the interface in hints (``interface=``,
    ``discovery_interface=``, ``--interface``)."""

    timeout: float
    group: str
    port: int
    ttl: int
    interface: str | None
    option: str

    def run(
        self,
        server_id: str | None = None,
        stop_on_first: bool = False,
        logger: logging.Logger | None = None,
    ) -> list[ServerInfo]:
        """:func:`search_servers`, the rest of its arguments."""
        _check_arguments(self.timeout, self.group, self.port, self.ttl, self.interface)
        log = logger if logger is not None else _logger
        query = build_query()
        target = (self.group, self.port)
        # Resends are spread over the first half of the timeout, leaving the last answers
        # time to arrive.
        spacing = self.timeout / (2 * QUERY_SENDS)
        start = time.monotonic()
        deadline = start + self.timeout
        found: dict[ServerInfo, None] = {}  # a dict keeps arrival order and drops repeats
        try:
            sock = _open_socket(self.ttl, self.interface)
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL and self.interface is not None:
                raise ServerNotFoundError(
                    error.errno,
                    f"cannot query from {self.interface}: it is not an address of this machine "
                    f"({self.option} takes the local address of the interface to query from)",
                ) from error
            raise ServerNotFoundError(
                error.errno, f"cannot open a socket for discovery: {error.strerror}"
            ) from error
        with sock:
            sent = 0
            while True:
                now = time.monotonic()
                if sent < QUERY_SENDS and now >= start + sent * spacing:
                    try:
                        sock.sendto(query, target)
                        log.debug("sent discovery query to %s:%d", self.group, self.port)
                    except OSError as error:
                        if sent == 0:
                            raise ServerNotFoundError(
                                error.errno,
                                f"cannot send the discovery query to {self.group}:{self.port}: "
                                f"{error.strerror}; {_route_hint(self.option)}",
                            ) from error
                        log.debug("resending the discovery query failed: %s", error)
                    sent += 1
                    continue
                if now >= deadline:
                    break
                wake = deadline if sent >= QUERY_SENDS else min(deadline, start + sent * spacing)
                sock.settimeout(max(wake - now, 0.001))
                try:
                    data, source = sock.recvfrom(_RECEIVE_SIZE)
                except TimeoutError:  # socket.timeout is TimeoutError since Python 3.10
                    continue
                except OSError as error:  # e.g. an ICMP error queued on the socket
                    log.debug("receiving a discovery reply failed: %s", error)
                    continue
                info = parse_reply(data, source)
                if info is None:
                    log.debug("ignoring a %d-byte datagram from %s", len(data), source)
                    continue
                if server_id is not None and info.id != server_id:
                    log.debug("ignoring %s: not %r", info, server_id)
                    continue
                if info not in found:
                    log.debug("found %s", info)
                    found[info] = None
                if stop_on_first or server_id is not None:
                    break
        return list(found)


def find_server(
    timeout: float = DEFAULT_TIMEOUT,
    *,
    group: str = DEFAULT_GROUP,
    port: int = DEFAULT_PORT,
    ttl: int = DEFAULT_TTL,
    interface: str | None = None,
    server_id: str | None = None,
    logger: logging.Logger | None = None,
) -> ServerInfo:
    """Return the first server that answers a discovery query (the one with ``server_id``).

    pymasep 0.2 kept the *last* answer after waiting the whole second; this returns as
    soon as one arrives. The arguments are those of :func:`search_servers`.

    Raises:
        ServerNotFoundError: No server (or none with ``server_id``) answered within
            ``timeout``, or the query cannot be sent. It is a ``ConnectionError``, as
            pymasep 0.2's error was.
        ValueError: An argument out of range.
    """
    search = _Search(timeout, group, port, ttl, interface, option="interface=")
    servers = search.run(server_id, stop_on_first=True, logger=logger)
    if servers:
        return servers[0]
    which = "no server" if server_id is None else f"no server with id {server_id!r}"
    raise ServerNotFoundError(
        f"{which} answered on {group}:{port} within {timeout:g} s; {not_found_hint('interface=')}"
        + ("" if interface is None else f" (queried from {interface})")
    )
