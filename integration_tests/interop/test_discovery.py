"""Discovery between pymasep 0.2 and pymasep-comm, inside network namespaces only.

pymasep 0.2's announcer binds ``('', 10000)`` and joins 224.3.29.71 on ``INADDR_ANY``;
its ``search_server()`` queries that group. Each test builds its own namespaces (see
:mod:`pymasep.comm.core.testing.netns`), so no datagram reaches the host's network. The
scenarios below run as child processes inside them (this module is also their entry
point); the 0.2 peer is started by the scenario, on the same host or, given a command
prefix, on the other.
"""

from __future__ import annotations

import base64
import errno
import json
from typing import Any

import pytest
from harness import Peer

from pymasep.comm.core.testing.netns import (
    NamespacePair,
    child_main,
    requires_netns,
    requires_netns_pair,
    run_isolated,
)

pytestmark = pytest.mark.timeout(90)

WAIT = 10.0


# -- scenarios (run inside the namespaces) ----------------------------------------------


def our_server_found_by_02(prefix: str) -> dict[str, Any]:
    """Our Server answers discovery; a 0.2 Client searches, connects and exchanges."""
    from ours import RecordingServer

    with RecordingServer(host="", wait_announcement=True) as server:
        server.wait_connection()
        server.wait_announcement()
        with Peer(["client", "--id", "peer02-finder", "--search"], json.loads(prefix)) as peer:
            found = peer.expect("search", timeout=WAIT)
            connected = peer.expect("connected")
            peer.send(b"found you")
            received = server.inbox.get(timeout=WAIT)
            server.send_frame_to("peer02-finder", _frame(b"welcome"))
            answer = base64.b64decode(peer.expect("frame")["b64"])
        return {
            "port": server.port,
            "found": [found["host"], found["port"]],
            "server_id": connected["server_id"],
            "received": received.decode(),
            "answer": answer.decode(),
        }


def our_client_finds_02_server(prefix: str) -> dict[str, Any]:
    """A 0.2 Server answers discovery; our search finds it and our Client connects."""
    from ours import RecordingClient

    from pymasep.comm.client.discovery import search_servers

    args = ["server", "--id", "peer02-found", "--host", "", "--announce"]
    with Peer(args, json.loads(prefix)) as peer:
        port = peer.expect("ready")["port"]
        servers = search_servers(2.0)
        with RecordingClient(None, None, wire="legacy") as client:
            client.connect(timeout=WAIT)  # no host, no port: it searches first
            client.send_frame_to("peer02-found", _frame(b"found you"))
            received = base64.b64decode(peer.expect("frame")["b64"])
            peer.send(b"welcome", to="ours-client")
            answer = client.inbox.get(timeout=WAIT)
            connected_to = [client.host, client.port, client.server_id]
        return {
            "port": port,
            "servers": [[s.id, s.host, s.port, s.wire] for s in servers],
            "connected_to": connected_to,
            "received": received.decode(),
            "answer": answer.decode(),
        }


def discovery_port_held_by_02() -> dict[str, Any]:
    """A 0.2 server holds UDP port 10000 alone: ours cannot answer discovery beside it."""
    from ours import RecordingServer

    from pymasep.comm.core import CommunicationConnectionError

    with Peer(["server", "--host", "", "--announce"]) as peer:
        peer.expect("ready")
        with RecordingServer(host="", wait_announcement=True) as server:
            try:
                server.wait_announcement()
            except CommunicationConnectionError as error:
                return {"errno": error.errno, "error": str(error)}
    return {"errno": None, "error": ""}


def _frame(payload: bytes) -> Any:
    from pymasep.comm.core import Frame

    return Frame(payload)


# -- tests ------------------------------------------------------------------------------

CHILD_TIMEOUT = 40.0
"""Seconds a scenario may run (it starts pymasep 0.2, slow to import) before it is killed."""


@requires_netns
def test_02_client_finds_our_server() -> None:
    result = run_isolated(__file__, "our_server_found_by_02", "[]", timeout=CHILD_TIMEOUT)
    assert result["found"] == ["127.0.0.1", result["port"]]
    assert result["server_id"] == "ours-server"
    assert (result["received"], result["answer"]) == ("found you", "welcome")


@requires_netns
def test_our_client_finds_02_server() -> None:
    result = run_isolated(__file__, "our_client_finds_02_server", "[]", timeout=CHILD_TIMEOUT)
    assert result["servers"] == [[None, "127.0.0.1", result["port"], "legacy"]]
    assert result["connected_to"] == ["127.0.0.1", result["port"], "peer02-found"]
    assert (result["received"], result["answer"]) == ("found you", "welcome")


@requires_netns
def test_discovery_port_held_by_02_is_reported() -> None:
    result = run_isolated(__file__, "discovery_port_held_by_02", timeout=CHILD_TIMEOUT)
    assert result["errno"] == errno.EADDRINUSE, result
    assert "UDP port 10000" in result["error"]


@requires_netns_pair
def test_02_client_on_another_host_finds_our_server() -> None:
    with NamespacePair() as pair:
        prefix = json.dumps(pair.prefix("a"))
        result = pair.run("b", __file__, "our_server_found_by_02", prefix, timeout=CHILD_TIMEOUT)
    # Our announcer names the server's own address on the client's network.
    assert result["found"] == [pair.ADDRESS_B, result["port"]]
    assert (result["received"], result["answer"]) == ("found you", "welcome")


@requires_netns_pair
def test_our_client_on_another_host_finds_02_server() -> None:
    with NamespacePair() as pair:
        prefix = json.dumps(pair.prefix("a"))
        result = pair.run(
            "b", __file__, "our_client_finds_02_server", prefix, timeout=CHILD_TIMEOUT
        )
    # 0.2 names the *client's* address in its reply; we connect to where it came from.
    assert result["servers"] == [[None, pair.ADDRESS_A, result["port"], "legacy"]]
    assert result["connected_to"] == [pair.ADDRESS_A, result["port"], "peer02-found"]
    assert (result["received"], result["answer"]) == ("found you", "welcome")


if __name__ == "__main__":
    child_main(globals())
