"""Finding a server on the local network by UDP multicast (sans-I/O: no sockets here).

A client sends a query to the group :data:`DEFAULT_GROUP`, port :data:`DEFAULT_PORT`;
every server listening there answers the sender with a unicast datagram. Two query and
two reply formats share the exchange::

    legacy query   b"pymasep server?"                    (pymasep 0.2 clients)
    v1 query       b"pymasep server? v1"                 (pymasep-comm clients)

    legacy reply   b"<host>:<port>"                      (answer to a legacy query)
    v1 reply       b"<host>:<port>:<json object>"        (answer to a v1 query)

The v1 reply starts like a legacy one, so pymasep 0.2's parser
(``data.decode().split(":")``, host ``[0]``, port ``int([1])``) still reads it; the JSON
object after the second colon is ASCII and carries ``"v"`` (1), ``"id"`` (the server's
id), ``"wire"`` (the wires the server speaks, preferred first), and optionally
``"name"``, ``"bound"`` (true when ``<host>`` is the one address the server listens
on) and ``"requires"`` (what a client needs to connect: ``"key"`` for a shared-key
handshake, ``"tls"`` for TLS; never the key or a certificate). Readers ignore keys they
do not know, so later versions can add some.

Discovery itself is not authenticated: anyone on the network can answer a query, with
any id, address and requirements. A client with a key or TLS still refuses a server
that cannot prove the key or present a trusted certificate (``docs/security.md``).

A pymasep 0.2 server answers any datagram with a legacy reply, whatever the query, and
names the *client's* address as host; so a reader takes the host from the datagram's
source address, unless a v1 reply says the server is bound to the host it names.
"""

from __future__ import annotations

import ipaddress
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .exceptions import EncodeError
from .wire import Wire

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "DISCOVERY_VERSION",
    "MAX_DATAGRAM_SIZE",
    "QUERY",
    "QUERY_V1",
    "QueryFormat",
    "ServerInfo",
    "build_query",
    "build_reply",
    "is_query",
    "parse_reply",
    "query_format",
]

DEFAULT_GROUP = "224.3.29.71"
"""Multicast group that servers join and clients query (pymasep 0.2's)."""

DEFAULT_PORT = 10000
"""UDP port of discovery (pymasep 0.2's)."""

DEFAULT_TTL = 1
"""Multicast time-to-live of a query: 1 keeps it on the local network segment."""

DEFAULT_TIMEOUT = 1.0
"""Seconds a client waits for replies (pymasep 0.2 waited 1 s)."""

QUERY = b"pymasep server?"
"""The query of pymasep 0.2, answered with a legacy reply."""

DISCOVERY_VERSION = 1
"""Version of the v1 query and reply format."""

QUERY_V1 = QUERY + b" v1"
"""The query of pymasep-comm, answered with a v1 reply. A 0.2 server answers it too (it
ignores what the query says), with a legacy reply."""

MAX_DATAGRAM_SIZE = 1024
"""Largest reply a server sends: pymasep 0.2 clients read at most 1024 bytes, and a
datagram this small never needs fragmenting."""

QueryFormat = Literal["legacy", "v1"]
"""Which reply a query asks for: ``"legacy"`` (pymasep 0.2's) or ``"v1"``."""

_KNOWN_WIRES = frozenset(wire.value for wire in Wire)


@dataclass(frozen=True)
class ServerInfo:
    """A server that answered a discovery query.

    Attributes:
        id: The server's id, or None when a pymasep 0.2 server answered (its reply has
            no id).
        host: The IPv4 address to connect to.
        port: The TCP port to connect to.
        wire: The wire to speak to it, ``"v1"`` or ``"legacy"``: the first the server
            lists that this version knows; always ``"legacy"`` for a 0.2 server.
        name: A human-readable name the server gave, or None.
        requires: What the server says a client needs to connect: ``"key"`` (a shared
            key), ``"tls"``; empty for none. Unauthenticated, like the whole reply.
    """

    id: str | None
    host: str
    port: int
    wire: str
    name: str | None = None
    requires: tuple[str, ...] = ()

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, as :func:`socket.create_connection` takes it."""
        return (self.host, self.port)


def build_query() -> bytes:
    """Return the query a pymasep-comm client sends: :data:`QUERY_V1`."""
    return QUERY_V1


def query_format(datagram: bytes) -> QueryFormat | None:
    """Tell which reply a datagram asks for, if it is a discovery query.

    Args:
        datagram: The payload received on the discovery port.

    Returns:
        ``"legacy"`` for pymasep 0.2's query, ``"v1"`` for a query that lists ``v1``
        among the space-separated versions after :data:`QUERY` (a later client may list
        several), None for anything else: replies, other programs' traffic, garbage.
        A query that lists only unknown versions gets a legacy reply, which every
        client reads.
    """
    if datagram == QUERY:
        return "legacy"
    if not datagram.startswith(QUERY + b" ") or len(datagram) > MAX_DATAGRAM_SIZE:
        return None
    versions = datagram[len(QUERY) + 1 :].split()
    if not versions:
        return None
    return "v1" if b"v1" in versions else "legacy"


def is_query(datagram: bytes) -> bool:
    """Return True when ``datagram`` is a discovery query (legacy or v1)."""
    return query_format(datagram) is not None


def _check_ipv4(host: str) -> str:
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        raise EncodeError(f"discovery announces IPv4 addresses, not {host!r}") from None


def _check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise EncodeError(f"port must be an integer from 1 to 65535, not {port!r}")
    return port


def _check_wires(wire_versions: Iterable[str]) -> list[str]:
    # str() turns Wire members into their value ("v1"), and leaves plain strings alone.
    wires = [str(wire) for wire in wire_versions]
    unknown = [wire for wire in wires if wire not in _KNOWN_WIRES]
    if not wires or unknown:
        raise EncodeError(
            f"wire_versions must list wires among {sorted(_KNOWN_WIRES)}, not {wires!r}"
        )
    return list(dict.fromkeys(wires))


def build_reply(
    host: str,
    port: int,
    *,
    server_id: str,
    wire_versions: Iterable[str] = ("v1", "legacy"),
    name: str | None = None,
    bound: bool = False,
    fmt: QueryFormat = "v1",
    requires: Iterable[str] = (),
) -> bytes:
    """Build a server's reply to a query.

    Args:
        host: The server's IPv4 address on the network the query came from.
        port: The TCP port the server accepts connections on.
        server_id: The server's id (not sent in a legacy reply).
        wire_versions: The wires the server speaks, preferred first.
        name: A human-readable name, or None (not sent in a legacy reply).
        bound: True when the server listens on ``host`` only, so that clients connect
            there rather than to the address the reply came from.
        fmt: The format the query asked for (see :func:`query_format`).
        requires: What a client needs to connect (``"key"``, ``"tls"``); not sent in a
            legacy reply.

    Returns:
        The datagram to send back to the sender of the query.

    Raises:
        EncodeError: An argument that cannot be announced, or a reply longer than
            :data:`MAX_DATAGRAM_SIZE` (a very long id or name).
    """
    head = f"{_check_ipv4(host)}:{_check_port(port)}"
    wires = _check_wires(wire_versions)
    if not isinstance(server_id, str) or not server_id or not _displayable(server_id):
        raise EncodeError(
            f"server_id must be a non-empty string without control characters, not {server_id!r}"
        )
    if name is not None and not (isinstance(name, str) and _displayable(name)):
        raise EncodeError(f"name must be a string without control characters, not {name!r}")
    if fmt == "legacy":
        return head.encode("ascii")
    if fmt != "v1":
        raise EncodeError(f"unknown reply format {fmt!r}")
    fields: dict[str, Any] = {"v": DISCOVERY_VERSION, "id": server_id, "wire": wires}
    if name is not None:
        fields["name"] = name
    if bound:
        fields["bound"] = True
    needs = [str(need) for need in requires]
    if needs:
        fields["requires"] = needs
    # ASCII JSON (non-ASCII escaped) decodes under any codec a 0.2 client might use.
    body = json.dumps(fields, ensure_ascii=True, separators=(",", ":"))
    reply = f"{head}:{body}".encode("ascii")
    if len(reply) > MAX_DATAGRAM_SIZE:
        raise EncodeError(
            f"the discovery reply would be {len(reply)} bytes, more than the limit of "
            f"{MAX_DATAGRAM_SIZE}: shorten the server id or name"
        )
    return reply


def _displayable(text: str) -> bool:
    """True unless ``text`` holds a control character (C0, C1) or a lone surrogate."""
    return not any(unicodedata.category(char) in ("Cc", "Cs") for char in text)


def _parse_ipv4(text: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def _parse_port(text: str) -> int | None:
    # Digits only: int() would also take " 5000", "+5000" or "5_000".
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        return None
    port = int(text)
    return port if 0 < port < 65536 else None


def parse_reply(datagram: bytes, source: tuple[str, int]) -> ServerInfo | None:
    """Read a server's reply.

    Args:
        datagram: The payload received by the client.
        source: The address the datagram came from, as :meth:`socket.socket.recvfrom`
            returns it.

    Returns:
        The server, or None when the datagram is not a reply this version can use
        (malformed, or a server that speaks no wire this version knows).
    """
    if len(datagram) > MAX_DATAGRAM_SIZE:
        return None
    try:
        text = datagram.decode("ascii")
    except UnicodeDecodeError:
        return None
    source_host = _parse_ipv4(str(source[0]))
    if source_host is None:
        return None
    host_text, _, rest = text.partition(":")
    port_text, colon, body = rest.partition(":")
    named_host = _parse_ipv4(host_text)
    port = _parse_port(port_text)
    if named_host is None or port is None:
        return None
    if not colon:
        # A legacy reply: 0.2 servers name the client's address, not theirs.
        return ServerInfo(id=None, host=source_host, port=port, wire=Wire.LEGACY.value)
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return None
    return _parse_fields(fields, named_host, source_host, port)


def _parse_fields(fields: Any, named_host: str, source_host: str, port: int) -> ServerInfo | None:
    if not isinstance(fields, dict):
        return None
    version, ident, wires = fields.get("v"), fields.get("id"), fields.get("wire")
    name, bound = fields.get("name"), fields.get("bound", False)
    requires = fields.get("requires", [])
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return None
    # Anyone on the network can answer: an id or a name holding a lone surrogate or
    # terminal control codes would break, or rewrite, whatever shows it.
    if not isinstance(ident, str) or not ident or not _displayable(ident):
        return None
    if not isinstance(wires, list) or not all(isinstance(wire, str) for wire in wires):
        return None
    if name is not None and not (isinstance(name, str) and _displayable(name)):
        return None
    if not isinstance(bound, bool):
        return None
    if not isinstance(requires, list) or not all(isinstance(need, str) for need in requires):
        return None
    wire = next((wire for wire in wires if wire in _KNOWN_WIRES), None)
    if wire is None:
        return None
    return ServerInfo(
        id=ident,
        host=named_host if bound else source_host,
        port=port,
        wire=wire,
        name=name,
        requires=tuple(requires),
    )
