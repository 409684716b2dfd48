"""Discovery end to end: a Server announcing, a Client finding it with no arguments.

Multicast runs only inside a network namespace that the test creates (``unshare -n``,
loopback up, a multicast route to loopback): no datagram can reach a real network.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from netns import LOOPBACK_SETUP, requires_netns, unshare_command

pytestmark = requires_netns

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


@pytest.mark.timeout(60)
def test_interfaces_find_engines_by_discovery_and_play() -> None:
    completed = subprocess.run(
        [
            *unshare_command(),
            "sh",
            "-c",
            f'{LOOPBACK_SETUP} && exec "$0" -c "$1"',
            sys.executable,
            _SCENARIO,
        ],
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["plain"] in {"engine-a", "engine-b"}
    assert result["found"] == [["engine-a", "ENGINE-A", "v1"], ["engine-b", "ENGINE-B", "v1"]]
    assert result["chosen"] == "engine-b"
    assert result["received"] == "move"
