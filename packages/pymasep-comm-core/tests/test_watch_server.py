"""The watch page's HTTP server, over loopback without a browser: its routes, the event
stream of a recording, and what it refuses to serve (nox -s watch tests the page)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pymasep.comm.core import Wire
from pymasep.comm.core.__main__ import main
from pymasep.comm.core.recorder import Recorder
from pymasep.comm.core.watch import WatchServer


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    with Recorder(tmp_path / "engine.jsonl", "server", "engine") as recorder:
        recorder.connected("p1", ("127.0.0.1", 4000), Wire.V1, False, False, 1.0, 1.0)
        recorder.frame_sent("p1", b'<Message msg_type="observation" />', 40, 2.0, 2.0)
    (tmp_path / "notes.txt").write_text("not a recording")
    return tmp_path


@pytest.fixture
def server(recorded: Path) -> Iterator[WatchServer]:
    server = WatchServer(recorded)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers["Content-Type"], response.read()


def test_the_page_and_its_static_files_are_served(server: WatchServer) -> None:
    kind, page = get(server.url)
    assert kind.startswith("text/html") and b"/static/uPlot.iife.min.js" in page
    kind, script = get(server.url + "static/uPlot.iife.min.js")
    assert "javascript" in kind and b"uPlot" in script
    _, licence = get(server.url + "static/uPlot.LICENSE")
    assert b"MIT" in licence


@pytest.mark.parametrize("path", ["static/../__init__.py", "static/%2e%2e/__init__.py", "nowhere"])
def test_nothing_outside_the_static_files_is_served(server: WatchServer, path: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        get(server.url + path)
    assert raised.value.code == 404


def test_the_recordings_of_a_directory_are_listed(server: WatchServer) -> None:
    _, body = get(server.url + "recordings")
    listing = json.loads(body)
    assert [entry["name"] for entry in listing] == ["engine.jsonl"]
    assert listing[0]["header"]["id"] == "engine"


def test_a_recording_streams_as_server_sent_events(server: WatchServer) -> None:
    with urllib.request.urlopen(server.url + "events?name=engine.jsonl", timeout=5) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        events: list[tuple[str, Any]] = []
        while not events or events[-1][0] != "caught-up":
            kind = response.readline().decode().strip().removeprefix("event: ")
            data = json.loads(response.readline().decode().removeprefix("data: "))
            assert response.readline() == b"\n"
            events.append((kind, data))
    assert [kind for kind, _ in events] == ["header", "records", "caught-up"]
    assert [r["event"] for r in events[1][1]] == ["connected", "sent"]
    assert events[1][1][1]["step"] == 0
    with pytest.raises(urllib.error.HTTPError) as raised:
        get(server.url + "events?name=notes.txt")
    assert raised.value.code == 404


def test_watch_refuses_a_path_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
