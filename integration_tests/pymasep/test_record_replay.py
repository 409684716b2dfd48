"""pymasep's own engine and interface recorded with no change of code
(PYMASEP_COMM_RECORD), then the engine's side replayed to a fresh pymasep interface (no
divergence) and to one whose agent changes its policy (the divergence at its first
changed action). In network namespaces, as the other pymasep games (pymasep's Engine
joins a multicast group at start)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from test_games import GAMES, PLAY, assert_no_traceback, observations

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
