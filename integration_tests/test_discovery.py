"""Discovery end to end: the server's Announcer and the client's search, both real.

The client's own tests play the server with raw sockets (they run where only the client
and core are installed); these run where the three distributions are. Multicast runs only
inside network namespaces that the test creates (``unshare -n``, loopback up, a multicast
route to loopback; or two joined by a veth pair): no datagram can reach a real network.
The ``scenario_*`` functions run in those namespaces, this module being their entry point.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from pymasep.comm.client.discovery import find_server, search_servers
from pymasep.comm.core.discovery import ServerInfo
from pymasep.comm.core.testing.netns import (
    NamespacePair,
    child_main,
    requires_netns,
    requires_netns_pair,
    run_in_namespace,
    run_isolated,
    serve_and_query,
    wait_for_stdin_eof,
)
from pymasep.comm.server.announcer import Announcer

HERE = __file__


def _as_json(servers: list[ServerInfo]) -> list[list[Any]]:
    return [[s.id, s.host, s.port, s.wire, s.name] for s in servers]


def scenario_two_announcers() -> dict[str, Any]:
    with Announcer("engine", 5000, name="Game"), Announcer("other", 5001):
        return {
            "all": _as_json(search_servers()),
            "other": _as_json([find_server(server_id="other")]),
        }


def scenario_announce_until_eof() -> None:
    """Background child: announce until the test closes stdin."""
    with Announcer("far", 5000, name="far away"):
        print("ready", flush=True)
        wait_for_stdin_eof()


def scenario_search() -> list[list[Any]]:
    return _as_json(search_servers(0.3))


# Runs inside the namespace: two engines announce, interfaces find them and play.
_SCENARIO = r"""
import json, queue
from pymasep.communication import Client, Frame, Server, SocketHandlerQueue

inbox = {name: queue.Queue() for name in ("engine-a", "engine-b")}
engines = [
    Server(
        name, 4, SocketHandlerQueue, (inbox[name],), "", 0,
        wait_announcement=True, name=name.upper(),
    )
    for name in inbox
]
for engine in engines:
    engine.wait_announcement()
    engine.wait_connection()
result = {}
plain = Client("plain", SocketHandlerQueue, (queue.Queue(),))
plain.connect(timeout=5)  # no host, no port: connect() searches first
result["plain"] = plain.server_id
plain.close()
chooser = Client("chooser", SocketHandlerQueue, (queue.Queue(),))
found = chooser.search_server(timeout=1.0, server_id="engine-b")
result["found"] = sorted((info.id, info.name, info.wire) for info in found)
chooser.connect(timeout=5)
chooser.send_frame_to("engine-b", Frame(b"move"))
result["received"] = inbox["engine-b"].get(timeout=5).decode()
result["chosen"] = chooser.server_id
chooser.close()
for engine in engines:
    engine.close()
print(json.dumps(result))
"""


@requires_netns
@pytest.mark.timeout(60)
def test_interfaces_find_engines_by_discovery_and_play() -> None:
    result = run_in_namespace(sys.executable, "-c", _SCENARIO, timeout=45)
    assert result["plain"] in {"engine-a", "engine-b"}
    assert result["found"] == [["engine-a", "ENGINE-A", "v1"], ["engine-b", "ENGINE-B", "v1"]]
    assert result["chosen"] == "engine-b"
    assert result["received"] == "move"


@requires_netns
def test_the_search_finds_each_announcer_and_picks_one_by_id() -> None:
    result = run_isolated(HERE, "scenario_two_announcers")
    assert sorted(result["all"], key=str) == [
        ["engine", "127.0.0.1", 5000, "v1", "Game"],
        ["other", "127.0.0.1", 5001, "v1", None],
    ]
    assert result["other"] == [["other", "127.0.0.1", 5001, "v1", None]]


@requires_netns_pair
def test_an_announcer_on_another_host_is_found_at_its_own_address() -> None:
    found = serve_and_query(HERE, "scenario_announce_until_eof", "scenario_search")
    assert found == [["far", NamespacePair.ADDRESS_A, 5000, "v1", "far away"]]


if __name__ == "__main__":
    child_main(globals())
