"""The getting-started example of the documentation (docs/examples/) runs as written.

The engine and the interface run as two processes, the interface finding the engine by
discovery, inside a network namespace that the test creates (``unshare -n``, loopback
up, a multicast route to loopback): no datagram can reach a real network.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pymasep.comm.core.testing.netns import namespace_command, requires_netns

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
pytestmark = requires_netns

# Runs inside the namespace, in docs/examples: the two commands of the "Running it"
# section, `python engine.py` then `python interface.py`.
_DRIVER = r"""
import subprocess, sys, time

engine = subprocess.Popen(
    [sys.executable, "engine.py"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
)
first = engine.stdout.readline()
assert first.startswith("engine: listening on port 60000"), first
interface = subprocess.run(
    [sys.executable, "interface.py"], capture_output=True, text=True, timeout=30
)
rest, _ = engine.communicate(timeout=30)
print("ENGINE", engine.returncode, first + rest, sep="\n")
print("INTERFACE", interface.returncode, interface.stdout + interface.stderr, sep="\n")
sys.exit(engine.returncode or interface.returncode)
"""


@pytest.mark.timeout(90)
def test_engine_and_interface_play_a_game() -> None:
    done = subprocess.run(
        namespace_command(sys.executable, "-c", _DRIVER),
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=80,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "engine: player-1 plays GuessTheNumber" in done.stdout
    assert "player-1: connected to engine at 127.0.0.1:60000" in done.stdout
    assert "player-1: the game is over" in done.stdout
    assert " found in " in done.stdout
