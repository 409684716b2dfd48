"""The demo (``nox -s demo``) plays its game to the end and tells it readably."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pymasep.comm.core.testing.netns import namespace_command, requires_netns

DEMO = Path(__file__).resolve().parent / "games" / "demo.py"


# The demo multicasts on loopback only; the test still runs it in a namespace of its own.
@requires_netns
@pytest.mark.parametrize("game", ["TicTacToe", "Race"])
def test_the_demo_plays_a_game_to_the_end(game: str) -> None:
    command = namespace_command(sys.executable, str(DEMO), "--fast", "--game", game)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{done.stderr}"
    # Found by discovery, not configured.
    assert len(re.findall(r"found the engine at 127\.0\.0\.1:\d+ by discovery", out)) == 2
    steps = [int(n) for n in re.findall(r"^  step (\d+) ", out, re.MULTILINE)]
    assert steps == list(range(len(steps))) and len(steps) > 2
    assert re.search(r"^  \.\.\. step \d+ \| \d+ messages \|", out, re.MULTILINE)  # progress
    assert "END_GAME" in out
    summary = out.split("\nsummary\n", 1)[1]
    assert f"steps      {steps[-1]}" in summary
    assert re.search(r"messages   \d+: \d+ from the engine, \d+ from the interfaces", summary)
    assert "all exited 0; every interface saw every step in order: yes" in summary
