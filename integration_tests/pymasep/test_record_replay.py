"""pymasep's own engine and interface recorded with no change of code
(PYMASEP_COMM_RECORD), then the engine's side replayed to a fresh pymasep interface (no
divergence) and to one whose agent changes its policy (the divergence at its first
changed action). In network namespaces, as the other pymasep games (pymasep's Engine
joins a multicast group at start)."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_games import GAMES, PLAY, assert_no_traceback, observations

from pymasep.comm.core import Message, Wire
from pymasep.comm.core.recorder import Recorder
from pymasep.comm.core.recording import Recording
from pymasep.comm.core.testing.netns import requires_netns, run_in_namespace

CHANGE_AT = 8


def run(python: str, case: str, workdir: Path, *options: str) -> dict[str, Any]:
    settings, _ = GAMES["duel"]
    command = [sys.executable, str(PLAY), python, "duel", case, str(workdir), *options]
    return run_in_namespace(*command, *(f"--set={s}" for s in settings), timeout=300)  # type: ignore[no-any-return]


@requires_netns
def test_a_recorded_pymasep_game_replays_to_a_fresh_interface_and_finds_a_changed_policy(
    python: str, tmp_path: Path
) -> None:
    records = tmp_path / "records"
    game = run(python, "normal", tmp_path / "game", f"--record={records}")
    assert game["interface"]["returncode"] == 0, game["interface"]
    assert game["engine"]["returncode"] == 0, game["engine"]
    assert_no_traceback(game, "engine", "interface")
    interface_id = game["interface_id"]
    files = {path.name.split("-")[0]: path for path in records.iterdir()}
    engine_file = next(path for name, path in files.items() if name != interface_id.split("-")[0])

    # Both sides recorded the game the interface played: every observation, in order.
    _, expected_steps = GAMES["duel"]
    with Recording(engine_file) as engine_side:
        assert engine_side.side == "server"
        sent = [r for r in engine_side if r.is_frame and r.direction == "out"]
    observed = [r.step for r in sent if r.msg_type == "observation"]
    assert observed == expected_steps == observations(game["interface"])
    with Recording(files[interface_id.split("-")[0]]) as interface_side:
        assert (interface_side.side, interface_side.id) == ("client", interface_id)
        received = [r.payload for r in interface_side if r.is_frame and r.direction == "in"]
    assert received == [r.payload for r in sent]
    with Recording(engine_file) as engine_side:
        actions = [r for r in engine_side if r.msg_type == "action" and r.peer == interface_id]
    first_changed = next(r.step for r in actions if r.step >= CHANGE_AT)

    fresh = run(python, "replay", tmp_path / "fresh", f"--recording={engine_file}")
    output = "\n".join(fresh["replay"]["stdout"])
    assert fresh["replay"]["returncode"] == 0, fresh
    assert "all match" in output and "divergence" not in output
    assert fresh["interface"]["returncode"] == 0, fresh["interface"]

    changed = run(
        python,
        "replay",
        tmp_path / "changed",
        f"--recording={engine_file}",
        f"--interface-option=--change-policy-at-step={CHANGE_AT}",
    )
    output = "\n".join(changed["replay"]["stdout"])
    assert changed["replay"]["returncode"] == 1, changed
    assert f"at step {first_changed}: the messages differ" in output, output
    recorded, live = output.split("+++ live")
    assert "<int>2</int>" in recorded.split("--- recorded")[1] and "<int>3</int>" in live


@pytest.fixture
def a_recording(tmp_path: Path) -> Path:
    """An engine's recording of a short game, gzip'ed, with a binary frame."""
    path = tmp_path / "engine.jsonl.gz"
    with Recorder(path, "server", "engine") as recorder:
        recorder.connected("p1", ("127.0.0.1", 4000), Wire.V1, False, False, 1.0, 1.0)
        for step in range(3):
            observation = Message("observation", {"step": step, "text": 'a "b" <c>'}, "engine")
            recorder.frame_sent("p1", observation.to_bytes(), 120, 2.0 + step, 2.0 + step)
            recorder.frame_received("p1", b"\x00\x01binary", 12, 2.5 + step, 2.5 + step)
    return path


def test_pandas_reads_a_recording_without_our_package(python: str, a_recording: Path) -> None:
    """pandas, in pymasep's virtualenv (pymasep needs pandas), with nothing of ours
    imported: the file's rows, types and XML as written."""
    program = f"""
import json, sys
import pandas as pd
frame = pd.read_json({str(a_recording)!r}, lines=True)
assert not any(name.startswith("pymasep") for name in sys.modules), "imported pymasep"
rows = frame.iloc[1:]
print(json.dumps({{"header": frame.iloc[0]["format"], "events": list(rows["event"]),
                  "types": [t for t in rows["type"] if isinstance(t, str)],
                  "xml": [x for x in rows["xml"] if isinstance(x, str)][0]}}))
"""
    done = subprocess.run(
        [python, "-I", "-c", program], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["header"] == "pymasep-comm-recording"
    assert result["events"] == ["connected", *["sent", "received"] * 3]
    assert result["types"] == ["observation"] * 3
    assert "<str>a &quot;b&quot; &lt;c&gt;</str>" in result["xml"]


def test_jq_reads_a_recording(a_recording: Path) -> None:
    if shutil.which("jq") is None:  # .ci/run installs it; a developer may not have it
        pytest.skip("jq is not installed")
    with gzip.open(a_recording) as file:
        text = file.read()
    query = 'select(.event == "received") | [.seq, .dir, .size, .base64] | @csv'
    done = subprocess.run(["jq", "-r", query], input=text, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        f'{seq},"in",12,"AAFiaW5hcnk="' for seq in (2, 4, 6)
    ]
