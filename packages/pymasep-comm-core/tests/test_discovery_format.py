"""Tests of the discovery formats (sans-I/O: no sockets)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymasep.comm.core.discovery import (
    DEFAULT_GROUP,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    DEFAULT_TTL,
    MAX_DATAGRAM_SIZE,
    QUERY,
    QUERY_V1,
    ServerInfo,
    build_query,
    build_reply,
    is_query,
    parse_reply,
    query_format,
)
from pymasep.comm.core.exceptions import EncodeError
from pymasep.comm.core.wire import Wire

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test

SOURCE = ("192.168.1.10", 10000)


def parse_like_pymasep_02(datagram: bytes) -> tuple[str, int]:
    """What pymasep 0.2's Client.search_server does with a reply."""
    return datagram.decode().split(":")[0], int(datagram.decode().split(":")[1])


def test_constants_are_those_of_pymasep_02() -> None:
    assert (DEFAULT_GROUP, DEFAULT_PORT, DEFAULT_TTL, DEFAULT_TIMEOUT) == (
        "224.3.29.71",
        10000,
        1,
        1.0,
    )
    assert QUERY == b"pymasep server?"


def test_our_query_is_the_v1_query() -> None:
    assert build_query() == QUERY_V1 == b"pymasep server? v1"
    assert query_format(build_query()) == "v1"


@pytest.mark.parametrize(
    ("datagram", "expected"),
    [
        (b"pymasep server?", "legacy"),
        (b"pymasep server? v1", "v1"),
        (b"pymasep server? v2 v1", "v1"),  # a later client listing several versions
        (b"pymasep server? v7", "legacy"),  # only unknown versions: the reply all can read
        (b"pymasep server? ", None),
        (b"pymasep server?v1", None),
        (b"pymasep server", None),
        (b"PYMASEP SERVER?", None),
        (b"", None),
        (b"10.0.0.1:5000", None),  # a reply is never a query: no reply loops
        (b"pymasep server? " + b"v1 " * 400, None),  # longer than a discovery datagram
    ],
)
def test_query_format(datagram: bytes, expected: str | None) -> None:
    assert query_format(datagram) == expected
    assert is_query(datagram) is (expected is not None)


def test_legacy_reply_is_plain_host_port() -> None:
    reply = build_reply("10.0.0.1", 5000, server_id="engine", name="x", fmt="legacy")
    assert reply == b"10.0.0.1:5000"
    assert parse_like_pymasep_02(reply) == ("10.0.0.1", 5000)


def test_v1_reply_layout() -> None:
    reply = build_reply("10.0.0.1", 5000, server_id="engine", name="Game")
    head, _, body = reply.partition(b":5000:")
    assert head == b"10.0.0.1"
    assert json.loads(body) == {"v": 1, "id": "engine", "wire": ["v1", "legacy"], "name": "Game"}


def test_v1_reply_is_still_readable_by_pymasep_02() -> None:
    reply = build_reply("10.0.0.1", 5000, server_id="a:b:c", name="ünïcode: yes")
    assert reply.isascii()
    assert parse_like_pymasep_02(reply) == ("10.0.0.1", 5000)


def test_parse_v1_reply_trusts_the_source_address() -> None:
    reply = build_reply("10.0.0.1", 5000, server_id="engine", name="Game")
    # Whatever the text says, the datagram came from SOURCE: that is where the server is.
    assert parse_reply(reply, SOURCE) == ServerInfo("engine", "192.168.1.10", 5000, "v1", "Game")


def test_parse_bound_reply_uses_the_named_host() -> None:
    reply = build_reply("10.0.0.1", 5000, server_id="engine", bound=True)
    assert parse_reply(reply, SOURCE) == ServerInfo("engine", "10.0.0.1", 5000, "v1", None)


def test_parse_legacy_reply_from_a_pymasep_02_server() -> None:
    # 0.2 names the *client's* address: the source address is the server's.
    info = parse_reply(b"192.168.1.99:5000", SOURCE)
    assert info == ServerInfo(None, "192.168.1.10", 5000, "legacy", None)
    assert info.address == ("192.168.1.10", 5000)


@pytest.mark.parametrize(
    ("wires", "expected"),
    [(["v1", "legacy"], "v1"), (["legacy", "v1"], "legacy"), (["v9", "legacy"], "legacy")],
)
def test_parse_picks_the_first_known_wire(wires: list[str], expected: str) -> None:
    body = json.dumps({"v": 1, "id": "e", "wire": wires})
    info = parse_reply(f"10.0.0.1:5000:{body}".encode(), SOURCE)
    assert info is not None
    assert info.wire == expected


def test_parse_ignores_unknown_keys_and_later_versions() -> None:
    body = json.dumps({"v": 3, "id": "e", "wire": ["v1"], "colour": "blue"})
    info = parse_reply(f"10.0.0.1:5000:{body}".encode(), SOURCE)
    assert info == ServerInfo("e", "192.168.1.10", 5000, "v1", None)


def _v1(**fields: Any) -> bytes:
    base: dict[str, Any] = {"v": 1, "id": "e", "wire": ["v1"]}
    base.update(fields)
    return b"10.0.0.1:5000:" + json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"pymasep server?",
        b"pymasep server? v1",
        b"\xff\xfe",
        b"10.0.0.1",
        b"10.0.0.1:",
        b"10.0.0.1:0",
        b"10.0.0.1:65536",
        b"10.0.0.1: 5000",
        b"10.0.0.1:+5000",
        b"10.0.0.1:5_000",
        b"10.0.0.1:\xd9\xa5",  # an Arabic-Indic digit: isdigit() but not a port
        b"host.example:5000",
        b"::1:5000",
        b"10.0.0.1:5000:",
        b"10.0.0.1:5000:not json",
        b"10.0.0.1:5000:[1, 2]",
        b"10.0.0.1:5000:" + b"[" * 900,
        _v1(v=0),
        _v1(v=True),
        _v1(v=...),
        _v1(id=""),
        _v1(id=5),
        _v1(id=...),
        _v1(wire=[]),
        _v1(wire=["v9"]),
        _v1(wire="v1"),
        _v1(wire=[1]),
        _v1(name=7),
        _v1(bound="yes"),
        b"10.0.0.1:5000:" + b" " * MAX_DATAGRAM_SIZE,
    ],
)
def test_parse_rejects_malformed_replies(datagram: bytes) -> None:
    assert parse_reply(datagram, SOURCE) is None


def test_parse_rejects_a_source_that_is_not_ipv4() -> None:
    assert parse_reply(b"10.0.0.1:5000", ("::1", 10000)) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"host": "example.org"}, "IPv4"),
        ({"host": "::1"}, "IPv4"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"port": True}, "port"),
        ({"server_id": ""}, "server_id"),
        ({"wire_versions": ()}, "wire"),
        ({"wire_versions": ("v1", "v2")}, "wire"),
        ({"server_id": "engine\n"}, "control characters"),
        ({"name": 3}, "name"),
        ({"name": "\x1b[2J"}, "control characters"),
        ({"name": "n" * MAX_DATAGRAM_SIZE}, "shorten"),
        ({"fmt": "v9"}, "format"),
    ],
)
def test_build_reply_rejects_what_cannot_be_announced(kwargs: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"host": "10.0.0.1", "port": 5000, "server_id": "engine"}
    arguments.update(kwargs)
    with pytest.raises(EncodeError, match=match):
        build_reply(**arguments)


def test_build_reply_takes_wire_members_and_drops_repeats() -> None:
    reply = build_reply(
        "10.0.0.1", 5000, server_id="e", wire_versions=(Wire.LEGACY, "legacy", Wire.V1)
    )
    assert b'"wire":["legacy","v1"]' in reply


def test_server_info_is_hashable_and_frozen() -> None:
    info = ServerInfo("e", "10.0.0.1", 5000, "v1")
    assert {info, ServerInfo("e", "10.0.0.1", 5000, "v1")} == {info}
    with pytest.raises(AttributeError):
        info.port = 1  # type: ignore[misc]


# JSON may spend 12 bytes on one character (an escaped surrogate pair): 30 characters
# each keep the reply within MAX_DATAGRAM_SIZE whatever they are.
# Any text but control characters and surrogates, which neither side lets through.
_displayable = st.characters(exclude_categories=("Cc", "Cs"))
ids = st.text(_displayable, min_size=1, max_size=30)
names = st.none() | st.text(_displayable, max_size=30)
hosts = st.ip_addresses(v=4).map(str)
ports = st.integers(1, 65535)


@given(hosts, ports, ids, names, st.booleans(), hosts)
def test_round_trip(
    host: str, port: int, ident: str, name: str | None, bound: bool, src: str
) -> None:
    reply = build_reply(host, port, server_id=ident, name=name, bound=bound)
    expected = ServerInfo(ident, host if bound else src, port, "v1", name)
    assert parse_reply(reply, (src, 10000)) == expected
    assert parse_like_pymasep_02(reply) == (host, port)
    assert not is_query(reply)


@given(st.binary(max_size=2 * MAX_DATAGRAM_SIZE), hosts)
def test_parse_never_raises(datagram: bytes, src: str) -> None:
    info = parse_reply(datagram, (src, 10000))
    assert info is None or isinstance(info, ServerInfo)
    query_format(datagram)


def test_a_reply_says_what_a_client_needs_and_nothing_secret() -> None:
    reply = build_reply(
        "10.0.0.5", 5000, server_id="engine", wire_versions=["v1"], requires=["key", "tls"]
    )
    body = reply.decode("ascii").split(":", 2)[2]
    assert json.loads(body) == {"v": 1, "id": "engine", "wire": ["v1"], "requires": ["key", "tls"]}
    assert parse_like_pymasep_02(reply) == ("10.0.0.5", 5000)
    info = parse_reply(reply, ("10.0.0.5", 10000))
    assert info is not None and info.requires == ("key", "tls")
    plain = parse_reply(build_reply("10.0.0.5", 5000, server_id="e"), ("10.0.0.5", 10000))
    assert plain is not None and plain.requires == ()
    assert b"requires" not in build_reply(
        "10.0.0.5", 5000, server_id="e", requires=["key"], fmt="legacy"
    )


@pytest.mark.parametrize("requires", ["key", [1], {"key": True}])
def test_a_reply_with_malformed_requirements_is_ignored(requires: Any) -> None:
    body = json.dumps({"v": 1, "id": "e", "wire": ["v1"], "requires": requires})
    assert parse_reply(f"10.0.0.5:5000:{body}".encode(), ("10.0.0.5", 10000)) is None
