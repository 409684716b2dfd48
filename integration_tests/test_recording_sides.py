"""Server(record=...) and Client(record=...) over loopback: both sides of a short game
recorded, read back, and the environment variable that records without code."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
from pathlib import Path

from pymasep.comm.client import Client
from pymasep.comm.core import Frame, Message, SocketHandlerQueue
from pymasep.comm.core.recording import Record, Recording
from pymasep.comm.core.testing.peers import wait_registered
from pymasep.comm.core.testing.tls import loopback_contexts
from pymasep.comm.server import Server

LOOPBACK = "127.0.0.1"


def test_both_sides_of_a_game_are_recorded_and_read_back(tmp_path: Path) -> None:
    engine_inbox: queue.Queue[bytes] = queue.Queue()
    client_inbox: queue.Queue[bytes] = queue.Queue()
    server = Server("engine", 4, SocketHandlerQueue, (engine_inbox,), LOOPBACK, 0, record=tmp_path)
    client = Client(
        "p1",
        SocketHandlerQueue,
        (client_inbox,),
        LOOPBACK,
        server.port,
        record=tmp_path / "p1.jsonl.gz",
    )
    with server:
        server.wait_connection()
        with client:
            client.connect()
            wait_registered(server, "p1")
            client.send_frame_to(
                "engine", Frame(Message("register", {"id": "p1"}, "p1").to_bytes())
            )
            assert engine_inbox.get(timeout=5)
            for step in range(3):
                observation = Message("observation", {"step": step}, "engine").to_bytes()
                server.send_frame_to("p1", Frame(observation))
                assert client_inbox.get(timeout=5) == observation
                client.send_frame_to("engine", Frame(b"\x01binary action"))
                assert engine_inbox.get(timeout=5) == b"\x01binary action"
    assert server.recorder is not None and client.recorder is not None
    assert server.recorder.path.parent == tmp_path
    assert server.recorder.path.name.startswith("engine-")
    with Recording(server.recorder.path) as engine_side:
        engine_records = list(engine_side)
    with Recording(tmp_path / "p1.jsonl.gz") as client_side:
        assert (client_side.side, client_side.id) == ("client", "p1")
        client_records = list(client_side)
    connected = engine_records[0]
    assert connected.event == "connected" and connected.peer == "p1"
    assert connected.fields["address"].startswith("127.0.0.1:")
    assert (connected.fields["wire"], connected.fields["tls"]) == ("v1", False)
    assert client_records[0].fields["address"] == f"127.0.0.1:{server.port}"

    def frames(records: list[Record], direction: str) -> list[bytes | None]:
        return [r.payload for r in records if r.is_frame and r.direction == direction]

    # what one side sent is what the other received, in the same order
    assert frames(engine_records, "out") == frames(client_records, "in")
    assert frames(engine_records, "in") == frames(client_records, "out")
    assert len(frames(engine_records, "out")) == 3
    assert [r.step for r in engine_records if r.is_frame][-1] == 2
    # the client closed first: its bye went out, the engine's side ends "by the peer"
    assert [r.event for r in client_records[-2:]] == ["bye", "closed"]
    assert client_records[-1].fields["code"] == "CLOSED_LOCALLY"
    assert engine_records[-1].fields["code"] == "CLOSED_BY_PEER"


def test_the_environment_variable_records_code_that_passes_no_argument(tmp_path: Path) -> None:
    """A program that builds its Server and Client as pymasep 0.2's API does."""
    program = f"""
import queue
from pymasep.communication import Client, Frame, Server, SocketHandlerQueue
inbox = queue.Queue()
server = Server("engine", 2, SocketHandlerQueue, (inbox,), "{LOOPBACK}", 0)
server.wait_connection()
client = Client("p1", SocketHandlerQueue, (queue.Queue(),), "{LOOPBACK}", server.port)
client.connect()
client.send_frame_to("engine", Frame(b"<Message msg_type=\\"action\\" />"))
inbox.get(timeout=5)
"""  # no close(): the program just ends, as pymasep's do
    env = {**os.environ, "PYMASEP_COMM_RECORD": str(tmp_path)}
    subprocess.run([sys.executable, "-c", program], env=env, check=True, timeout=60)
    files = sorted(tmp_path.iterdir())
    assert [f.name.split("-")[0] for f in files] == ["engine", "p1"]
    for path in files:
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        events = [line.get("event") for line in lines[1:]]
        assert events[0] == "connected" and events[-1] == "closed", events
        assert [
            line.get("type") for line in lines if line.get("event") in ("sent", "received")
        ] == ["action"]


def test_a_connection_with_a_key_over_tls_is_recorded_as_such(tmp_path: Path) -> None:
    server_tls, client_tls = loopback_contexts()
    key = bytes(range(32))
    inbox: queue.Queue[bytes] = queue.Queue()
    server = Server(
        "engine", 2, SocketHandlerQueue, (inbox,), LOOPBACK, 0,
        authkey=key, ssl_context=server_tls, record=tmp_path / "engine.jsonl",
    )  # fmt: skip
    with server:
        server.wait_connection()
        client = Client(
            "p1", SocketHandlerQueue, (queue.Queue(),), LOOPBACK, server.port,
            authkey=key, ssl_context=client_tls, record=tmp_path / "p1.jsonl",
        )  # fmt: skip
        with client:
            client.connect()
            client.send_frame_to("engine", Frame(b"<Message msg_type='action' />"))
            assert inbox.get(timeout=5)
    for name in ("engine.jsonl", "p1.jsonl"):
        with Recording(tmp_path / name) as recording:
            records = list(recording)
        connected = records[0].fields
        assert (connected["authenticated"], connected["tls"]) == (True, True), name
        assert [r.event for r in records if r.is_frame] == (
            ["received"] if name == "engine.jsonl" else ["sent"]
        )
