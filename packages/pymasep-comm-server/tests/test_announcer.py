"""Tests of the discovery Announcer.

Every test that opens a discovery socket runs its body (the ``scenario_*`` functions) in a
child process inside a network namespace of its own (see
:mod:`pymasep.comm.core.testing.netns`): joining a multicast group, even, would otherwise
talk to the host's network. The query side is written here with raw sockets, so these
tests need only pymasep-comm-server and core.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import time
from typing import Any

import pytest

from pymasep.comm.core.discovery import (
    DEFAULT_GROUP,
    DEFAULT_PORT,
    QUERY,
    QUERY_V1,
    ServerInfo,
    parse_reply,
)
from pymasep.comm.core.exceptions import CommunicationConnectionError
from pymasep.comm.core.testing import netns
from pymasep.comm.server.announcer import Announcer

HERE = __file__
Reply = tuple[str, str]  # (payload as latin-1, source host): what JSON carries back


# --- helpers that run in the child ---------------------------------------------------


def _query(
    payloads: list[bytes],
    *,
    target: tuple[str, int] = (DEFAULT_GROUP, DEFAULT_PORT),
    wait: float = 0.15,
    interface: str | None = None,
) -> list[Reply]:
    """Send ``payloads`` to ``target`` and collect every datagram back for ``wait`` s."""
    replies: list[Reply] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        if interface is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
        for payload in payloads:
            sock.sendto(payload, target)
        deadline = time.monotonic() + wait
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                data, source = sock.recvfrom(65535)
            except TimeoutError:
                break
            replies.append((data.decode("latin-1"), source[0]))
    return replies


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("test-announcer")
    logger.addHandler(logging.StreamHandler(sys.stderr))  # stderr: stdout carries the result
    logger.setLevel(logging.DEBUG)
    return logger


def _info(reply: Reply) -> ServerInfo | None:
    payload, source = reply
    return parse_reply(payload.encode("latin-1"), (source, DEFAULT_PORT))


# --- scenarios (run in a namespace) -----------------------------------------------------


def scenario_v1_and_legacy() -> dict[str, Any]:
    with Announcer("engine", 5000, name="Jeu d'été", logger=_quiet_logger()):
        return {
            "v1": _query([QUERY_V1]),
            "legacy": _query([QUERY]),
            "unicast": _query([QUERY_V1], target=("127.0.0.1", DEFAULT_PORT)),
        }


def scenario_two_announcers() -> list[Reply]:
    with Announcer("alpha", 5001), Announcer("beta", 5002, name="B"):
        return _query([QUERY_V1])


def scenario_malformed() -> dict[str, Any]:
    garbage = [
        b"",
        b"\xff\xfe\x00garbage",
        b"pymasep server?" + b"x",
        b"pymasep server? ",
        b"pymasep server? " + b"v1 " * 600,  # longer than a discovery datagram
        b"10.0.0.1:5000",  # a reply, not a query: answering would loop
        b"10.0.0.1:5000:{}",
        os.urandom(2000),
    ]
    with Announcer("engine", 5000, logger=_quiet_logger()) as announcer:
        to_group = _query(garbage, wait=0.1)
        to_host = _query(garbage, target=("127.0.0.1", DEFAULT_PORT), wait=0.1)
        after = _query([QUERY_V1])
        alive = announcer.is_alive()
    return {"garbage": to_group + to_host, "after": after, "alive": alive}


def scenario_legacy_disabled() -> dict[str, Any]:
    with Announcer("engine", 5000, wire_versions=("v1",)):
        return {"legacy": _query([QUERY]), "v1": _query([QUERY_V1])}


def scenario_stop() -> dict[str, Any]:
    never_started = Announcer("idle", 5000)
    announcer = Announcer("engine", 5000)
    announcer.start()
    answered = _query([QUERY_V1])
    # Its loop waits with no timeout: only the wake-up lets it end within stop()'s.
    stopped = announcer.stop()
    again = announcer.stop()
    try:
        announcer.start()
        restart = "started"
    except RuntimeError as error:
        restart = str(error)
    after = _query([QUERY_V1], wait=0.1)
    # The port is free again: an announcer that does not share it can bind.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("", DEFAULT_PORT))
    return {
        "answered": len(answered),
        "stopped": stopped,
        "again": again,
        "alive": announcer.is_alive(),
        "never_started": never_started.stop(),
        "restart": restart,
        "after": after,
    }


def scenario_port_taken() -> dict[str, Any]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("", DEFAULT_PORT))  # no SO_REUSEPORT: nobody else can bind
        announcer = Announcer("engine", 5000)
        try:
            announcer.start()
        except CommunicationConnectionError as error:
            return {
                "errno": error.errno,
                "message": str(error),
                "is_oserror": isinstance(error, OSError),
                "stop": announcer.stop(),
            }
    announcer.stop()
    return {"errno": None}


def scenario_no_multicast_route() -> str:
    try:
        with Announcer("engine", 5000):
            return "joined"
    except CommunicationConnectionError as error:
        return str(error)


def scenario_bound_host(bind_host: str) -> list[Reply]:
    with Announcer("engine", 5000, bind_host=bind_host):
        return _query([QUERY_V1, QUERY])


def scenario_serve_until_eof(*options: str) -> None:
    """Background child: announce until the test closes stdin."""
    kwargs: dict[str, Any] = {}
    for option in options:
        key, _, value = option.partition("=")
        kwargs[key] = value
    with Announcer("far", 5000, name="far away", logger=_quiet_logger(), **kwargs):
        print("ready", flush=True)
        netns.wait_for_stdin_eof()


def scenario_query_from_b() -> dict[str, Any]:
    return {"v1": _query([QUERY_V1]), "legacy": _query([QUERY])}


# --- tests that need no socket ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"group": "10.0.0.1"}, "multicast"),
        ({"discovery_port": 0}, "discovery_port"),
        ({"wire_versions": ("v2",)}, "wire"),
        ({"wire_versions": ()}, "wire"),
        ({"name": "n" * 2000}, "shorten"),
        ({"interface": "eth0"}, "interface"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Announcer("engine", 5000, **kwargs)


@pytest.mark.parametrize("port", [0, 70000, -1])
def test_constructor_rejects_bad_port(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        Announcer("engine", port)


def test_constructor_rejects_empty_id() -> None:
    with pytest.raises(ValueError, match="server_id"):
        Announcer("", 5000)


def test_is_a_daemon_thread_that_opens_nothing_until_started() -> None:
    announcer = Announcer("engine", 5000)
    assert announcer.daemon
    assert announcer.stop() is True  # never started: nothing to stop, no error


# --- tests in a namespace holding only lo ----------------------------------------------


@netns.requires_netns
def test_answers_v1_query_with_v1_reply_and_legacy_query_with_host_port() -> None:
    result = netns.run_isolated(HERE, "scenario_v1_and_legacy")
    [v1] = result["v1"]
    assert _info(v1) == ServerInfo("engine", "127.0.0.1", 5000, "v1", "Jeu d'été")
    assert v1[0].startswith("127.0.0.1:5000:")
    # A 0.2 client gets exactly what a 0.2 server sent, with the server's address.
    assert result["legacy"] == [["127.0.0.1:5000", "127.0.0.1"]]
    [unicast] = result["unicast"]
    assert _info(unicast) == ServerInfo("engine", "127.0.0.1", 5000, "v1", "Jeu d'été")


@netns.requires_netns
def test_two_announcers_on_one_host_both_answer() -> None:
    replies = netns.run_isolated(HERE, "scenario_two_announcers")
    infos = {_info(reply) for reply in replies}
    assert infos == {
        ServerInfo("alpha", "127.0.0.1", 5001, "v1", None),
        ServerInfo("beta", "127.0.0.1", 5002, "v1", "B"),
    }


@netns.requires_netns
def test_malformed_datagrams_are_ignored_and_announcer_keeps_answering() -> None:
    result = netns.run_isolated(HERE, "scenario_malformed")
    assert result["garbage"] == []
    assert result["alive"] is True
    [after] = result["after"]
    assert _info(after) == ServerInfo("engine", "127.0.0.1", 5000, "v1", None)


@netns.requires_netns
def test_legacy_queries_are_not_answered_without_the_legacy_wire() -> None:
    result = netns.run_isolated(HERE, "scenario_legacy_disabled")
    assert result["legacy"] == []
    [v1] = result["v1"]
    assert _info(v1) == ServerInfo("engine", "127.0.0.1", 5000, "v1", None)
    assert '"wire":["v1"]' in v1[0]


@netns.requires_netns
def test_stop_is_prompt_idempotent_and_frees_the_port() -> None:
    result = netns.run_isolated(HERE, "scenario_stop")
    assert result["answered"] == 1
    assert result["stopped"] is True  # woken by its socketpair, within stop()'s timeout
    assert result["again"] is True
    assert result["alive"] is False
    assert result["never_started"] is True
    assert "only once" in result["restart"]
    assert result["after"] == []


@netns.requires_netns
def test_start_reports_a_port_held_by_another_program() -> None:
    result = netns.run_isolated(HERE, "scenario_port_taken")
    assert result["errno"] == errno.EADDRINUSE
    assert "UDP port 10000" in result["message"]
    assert result["is_oserror"] is True
    assert result["stop"] is True


@netns.requires_netns
def test_without_a_multicast_route_the_error_names_both_ways_to_pick_the_interface() -> None:
    # Users reach the Announcer through Server(discovery_interface=), or directly.
    message = netns.run_isolated(HERE, "scenario_no_multicast_route", multicast_route=False)
    assert "cannot join multicast group 224.3.29.71" in message
    assert "discovery_interface= on a Server, interface= on an Announcer" in message


@netns.requires_netns
def test_a_bound_host_is_announced_as_bound() -> None:
    replies = netns.run_isolated(HERE, "scenario_bound_host", "localhost")
    by_payload = {payload: source for payload, source in replies}
    assert "127.0.0.1:5000" in by_payload
    [v1] = [reply for reply in replies if reply[0] != "127.0.0.1:5000"]
    assert '"bound":true' in v1[0]
    assert _info(v1) == ServerInfo("engine", "127.0.0.1", 5000, "v1", None)


# --- tests on two hosts joined by a veth pair ------------------------------------------


@netns.requires_netns_pair
def test_reply_names_the_announcer_address_on_the_querying_network() -> None:
    result = netns.serve_and_query(HERE, "scenario_serve_until_eof", "scenario_query_from_b")
    a, b = netns.NamespacePair.ADDRESS_A, netns.NamespacePair.ADDRESS_B
    # 0.2 named the client's own address (b) here; the announcer names its own (a).
    assert result["legacy"] == [[f"{a}:5000", a]]
    [v1] = result["v1"]
    assert v1[0].startswith(f"{a}:5000:")
    assert b not in v1[0]
    assert _info(v1) == ServerInfo("far", a, 5000, "v1", "far away")


@netns.requires_netns_pair
def test_loopback_bound_server_does_not_answer_other_hosts() -> None:
    serve, query = "scenario_serve_until_eof", "scenario_query_from_b"
    result = netns.serve_and_query(HERE, serve, query, "bind_host=127.0.0.1")
    assert result == {"v1": [], "legacy": []}


if __name__ == "__main__":
    netns.child_main(globals())
