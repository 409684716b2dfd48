"""Tests of search_servers() and find_server().

Every test that opens a discovery socket runs its body (the ``scenario_*`` functions) in a
child process inside a network namespace of its own (see
:mod:`pymasep.comm.core.testing.netns`). Servers are played by ``fakeserver.Responder``
(raw sockets); the real Announcer answers in ``integration_tests/test_discovery.py``,
where the server is installed too.
"""

from __future__ import annotations

import queue
import time
from typing import Any

import pytest
from fakeserver import noisy, pymasep_02_server, responding, v1_server

from pymasep.comm.client import Client
from pymasep.comm.client.discovery import QUERY_SENDS, find_server, search_servers
from pymasep.comm.core import SocketHandlerQueue
from pymasep.comm.core.discovery import ServerInfo
from pymasep.comm.core.exceptions import ServerNotFoundError
from pymasep.comm.core.testing import netns

HERE = __file__
EARLY = 8.0
"""A timeout that a search stopping at the first answer returns long before."""


def _as_json(servers: list[ServerInfo]) -> list[list[Any]]:
    return [[s.id, s.host, s.port, s.wire, s.name] for s in servers]


def _from_json(rows: list[list[Any]]) -> list[ServerInfo]:
    return [ServerInfo(*row) for row in rows]


def _timed(function: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    began = time.monotonic()
    try:
        result = function(*args, **kwargs)
    except ServerNotFoundError as error:
        return {"error": str(error), "errno": error.errno, "took": time.monotonic() - began}
    servers = result if isinstance(result, list) else [result]
    return {"servers": _as_json(servers), "took": time.monotonic() - began}


# --- scenarios (run in a namespace) -----------------------------------------------------


def scenario_defaults() -> dict[str, Any]:
    with responding(v1_server("engine", 5000, name="Game")) as [responder]:
        result = _timed(search_servers)
    result["queries"] = len(responder.queries)
    return result


def scenario_two_servers() -> dict[str, Any]:
    with responding(v1_server("alpha", 5001), v1_server("beta", 5002, name="B")):
        return {
            "all": _timed(search_servers, 0.3),
            # Long timeouts: returning well before them shows the early return.
            "alpha": _timed(find_server, EARLY, server_id="alpha"),
            "beta": _timed(search_servers, EARLY, server_id="beta"),
            "gamma": _timed(find_server, 0.2, server_id="gamma"),
            "first": _timed(search_servers, EARLY, stop_on_first=True),
        }


def scenario_pymasep_02_server() -> dict[str, Any]:
    with responding(pymasep_02_server(5000)):
        return _timed(find_server, 0.3)


def scenario_noise() -> dict[str, Any]:
    noise = [b"", b"garbage", b"pymasep server? v1", b"1.2.3.4:0", b"1.2.3.4:5:{", b"\xff" * 3000]
    with responding(noisy(v1_server("engine", 5000), noise)):
        return _timed(search_servers, 0.3)


def scenario_nobody() -> dict[str, Any]:
    return {"search": _timed(search_servers, 0.2), "find": _timed(find_server, 0.2)}


def scenario_no_route() -> dict[str, Any]:
    return _timed(find_server, 0.2)


def scenario_client_finds_nobody() -> dict[str, str]:
    """What Client.connect() says with no server to find, and from a foreign address."""
    errors = {}
    for case, interface in (("nobody", None), ("foreign", "10.9.9.9")):
        client = Client("lost", SocketHandlerQueue, (queue.Queue(),), discovery_interface=interface)
        try:
            client.connect()
        except ServerNotFoundError as error:
            errors[case] = str(error)
        finally:
            client.close()
    return errors


def scenario_legacy_only_server() -> dict[str, Any]:
    with responding(v1_server("old-wire", 5000, wires=("legacy",))):
        return _timed(find_server, 0.3)


def scenario_wire_auto() -> dict[str, list[str]]:
    """The wire each kind of reply makes a ``wire="auto"`` client, then a default one, speak."""
    repliers = {
        "pymasep-0.2": pymasep_02_server(5000),
        "v1 and legacy": v1_server("engine", 5000),
        "legacy only": v1_server("old-wire", 5000, wires=("legacy",)),
    }
    wires: dict[str, list[str]] = {}
    for kind, replier in repliers.items():
        with responding(replier):
            for wire in ("auto", "v1"):
                client = Client("iface", SocketHandlerQueue, (queue.Queue(),), wire=wire)
                [found] = client.search_server(0.3)
                assert (client.host, client.port) == (found.host, found.port)
                wires.setdefault(kind, []).append(client.wire.value)
    return wires


def scenario_serve_until_eof(kind: str) -> None:
    """Background child: answer like ``kind`` until the test closes stdin."""
    replier = v1_server("far", 5000, name="far away") if kind == "v1" else pymasep_02_server(5000)
    with responding(replier):
        print("ready", flush=True)
        netns.wait_for_stdin_eof()


def scenario_search_from_b() -> dict[str, Any]:
    return _timed(search_servers, 0.3)


# --- tests that need no socket ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"group": "10.0.0.1"}, "multicast"),
        ({"group": "nonsense"}, "multicast"),
        ({"port": 0}, "port"),
        ({"ttl": 256}, "ttl"),
        ({"interface": "eth0"}, "interface"),
    ],
)
def test_bad_arguments_raise_before_any_socket(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        search_servers(**kwargs)
    with pytest.raises(ValueError, match=match):
        find_server(**kwargs)


# --- tests in a namespace holding only lo ----------------------------------------------


@netns.requires_netns
def test_search_with_no_arguments_finds_the_server() -> None:
    result = netns.run_isolated(HERE, "scenario_defaults")
    assert _from_json(result["servers"]) == [ServerInfo("engine", "127.0.0.1", 5000, "v1", "Game")]
    assert result["took"] > 0.9  # listens for the whole default timeout
    assert 1 <= result["queries"] <= QUERY_SENDS  # bounded, and duplicates were merged


@netns.requires_netns
def test_two_servers_are_listed_and_picked_by_id() -> None:
    result = netns.run_isolated(HERE, "scenario_two_servers")
    alpha = ServerInfo("alpha", "127.0.0.1", 5001, "v1", None)
    beta = ServerInfo("beta", "127.0.0.1", 5002, "v1", "B")
    assert sorted(_from_json(result["all"]["servers"]), key=str) == [alpha, beta]
    assert _from_json(result["alpha"]["servers"]) == [alpha]
    assert _from_json(result["beta"]["servers"]) == [beta]
    assert result["alpha"]["took"] < EARLY  # returned on the answer, not at the timeout
    assert result["beta"]["took"] < EARLY
    assert "no server with id 'gamma'" in result["gamma"]["error"]
    assert len(result["first"]["servers"]) == 1
    assert result["first"]["took"] < EARLY


@netns.requires_netns
def test_a_pymasep_02_reply_is_read() -> None:
    result = netns.run_isolated(HERE, "scenario_pymasep_02_server")
    assert _from_json(result["servers"]) == [ServerInfo(None, "127.0.0.1", 5000, "legacy", None)]


@netns.requires_netns
def test_malformed_replies_are_ignored() -> None:
    result = netns.run_isolated(HERE, "scenario_noise")
    assert _from_json(result["servers"]) == [ServerInfo("engine", "127.0.0.1", 5000, "v1", None)]


@netns.requires_netns
def test_server_speaking_only_legacy_is_reported_so() -> None:
    result = netns.run_isolated(HERE, "scenario_legacy_only_server")
    assert _from_json(result["servers"]) == [ServerInfo("old-wire", "127.0.0.1", 5000, "legacy")]


@netns.requires_netns
def test_nobody_answers() -> None:
    result = netns.run_isolated(HERE, "scenario_nobody")
    assert result["search"]["servers"] == []
    assert result["search"]["took"] >= 0.2  # it listened for its whole timeout
    message = result["find"]["error"]
    assert "224.3.29.71:10000" in message
    assert "0.2 s" in message
    assert "firewall" in message
    assert "multicast route" in message
    assert "(interface=)" in message  # the argument find_server takes


@netns.requires_netns
def test_client_connect_says_what_to_check_naming_its_own_argument() -> None:
    errors = netns.run_isolated(HERE, "scenario_client_finds_nobody")
    assert "a server did not answer on 224.3.29.71:10000 within 1.0 s" in errors["nobody"]
    assert "(answered: none); check that a server runs with discovery on" in errors["nobody"]
    assert "(discovery_interface=)" in errors["nobody"]
    assert "cannot query from 10.9.9.9: it is not an address of this machine" in errors["foreign"]
    for message in errors.values():
        assert "--interface" not in message and "(interface=" not in message


@netns.requires_netns
def test_wire_auto_speaks_the_wire_discovery_reported() -> None:
    # [wire="auto", the default]: a fixed wire is kept whatever the server reports.
    assert netns.run_isolated(HERE, "scenario_wire_auto") == {
        "pymasep-0.2": ["legacy", "v1"],
        "v1 and legacy": ["v1", "v1"],
        "legacy only": ["legacy", "v1"],
    }


@netns.requires_netns
def test_no_multicast_route_is_reported() -> None:
    result = netns.run_isolated(HERE, "scenario_no_route", multicast_route=False)
    assert "cannot send the discovery query" in result["error"]
    assert "multicast route" in result["error"]
    assert result["errno"] is not None


def test_server_not_found_is_a_connection_error() -> None:
    # pymasep 0.2 raised ConnectionError('No data received'): old except clauses still work.
    assert issubclass(ServerNotFoundError, ConnectionError)


# --- tests on two hosts joined by a veth pair ------------------------------------------


@netns.requires_netns_pair
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("v1", ServerInfo("far", netns.NamespacePair.ADDRESS_A, 5000, "v1", "far away")),
        # 0.2's reply names the client (b); the source address says where the server is.
        ("pymasep-0.2", ServerInfo(None, netns.NamespacePair.ADDRESS_A, 5000, "legacy", None)),
    ],
)
def test_server_on_another_host_is_found_at_its_own_address(
    kind: str, expected: ServerInfo
) -> None:
    result = netns.serve_and_query(HERE, "scenario_serve_until_eof", "scenario_search_from_b", kind)
    assert _from_json(result["servers"]) == [expected]


if __name__ == "__main__":
    netns.child_main(globals())
