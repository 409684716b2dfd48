"""pymasep's own engine and interface play whole games over TCP on pymasep-comm.

Each game is played by two processes: the engine (``App.LAUNCH_SERVER_STANDALONE``) and
an interface (``App.LAUNCH_INTERFACE``), both started by the games' own launch script
(launch.py), inside a network namespace the test makes (pymasep's Engine joins a
multicast group at start) and in a scratch folder (pymasep writes logs/ there).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from pymasep.comm.core.testing.netns import requires_netns, run_in_namespace

PLAY = Path(__file__).resolve().parent / "play.py"

# Each game's settings, and the steps whose observation the interface must get: the
# duel's first observation comes after the bot's first move (step 1), the crowd's at
# step 0 (nothing moves before the player).
GAMES: dict[str, tuple[list[str], list[int]]] = {
    "duel": (["game.target=30"], list(range(1, 21))),
    "crowd": (["game.tokens=300", "game.steps=25"], list(range(26))),
}


def play(python: str, game: str, case: str, workdir: Path) -> dict[str, Any]:
    settings, _ = GAMES[game]
    command = [sys.executable, str(PLAY), python, game, case, str(workdir)]
    return run_in_namespace(*command, *(f"--set={s}" for s in settings), timeout=300)  # type: ignore[no-any-return]


def observations(side: dict[str, Any]) -> list[int]:
    return [int(line.split()[1]) for line in side["stdout"] if line.startswith("observation ")]


def assert_no_traceback(result: dict[str, Any], *sides: str) -> None:
    for side in sides:
        stderr = "\n".join(result[side]["stderr"])
        assert "Traceback" not in stderr, f"{side}'s stderr:\n{stderr}"
    assert result["log_tracebacks"] == []


@requires_netns
@pytest.mark.parametrize("game", sorted(GAMES))
@pytest.mark.parametrize("case", ["normal", "slow", "discovery"])
def test_a_game_is_played_to_the_end(python: str, game: str, case: str, tmp_path: Path) -> None:
    """normal: the interface is told where the engine is; slow: it takes 100 ms a frame;
    discovery: it finds the engine by itself."""
    result = play(python, game, case, tmp_path)
    assert result["interface"]["returncode"] == 0, result["interface"]
    assert result["engine"]["returncode"] == 0, result["engine"]
    _, expected = GAMES[game]
    assert observations(result["interface"]) == expected
    assert result["sent"] == len(expected)
    assert_no_traceback(result, "engine", "interface")


@requires_netns
@pytest.mark.parametrize("game", sorted(GAMES))
def test_an_interface_killed_mid_game_is_noticed_by_the_engine(
    python: str, game: str, tmp_path: Path
) -> None:
    result = play(python, game, "killed", tmp_path)
    # At once (the kernel closed its socket) or once the window passes (it reset it).
    noticed = result["engine_noticed"]
    assert noticed.endswith("disconnected: connection lost") or (
        "disconnected: resume window expired" in noticed
    ), noticed
    got = observations(result["interface"])
    _, expected = GAMES[game]
    assert got == expected[: len(got)] and len(got) >= 3
    assert result["sent"] >= len(got)
    assert_no_traceback(result, "engine")


@requires_netns
def test_a_game_goes_on_to_its_end_after_its_connection_is_killed(
    python: str, tmp_path: Path
) -> None:
    """``ss -K`` kills the interface's connection mid-game: it resumes, and the game is
    played to its end with every observation once and in order."""
    result = play(python, "duel", "reset", tmp_path)
    assert result["killed"] == 1
    assert "the connection to" in result["engine_broke"]
    assert result["interface"]["returncode"] == 0, result["interface"]
    assert result["engine"]["returncode"] == 0, result["engine"]
    _, expected = GAMES["duel"]
    assert observations(result["interface"]) == expected
    assert result["sent"] == len(expected)
    assert_no_traceback(result, "engine", "interface")
