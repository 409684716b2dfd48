"""A 200-step game between pymasep's own engine and interface: on pymasep-comm, and on
pymasep 0.2's own communication, in the same run.

The game is integration_tests/pymasep's crowd game (written with pymasep 0.2's API): an
engine process and an interface process over TCP, the interface headless, 100 tokens in
the state (an observation of about 25 KB, under 0.2's 64 KiB frame limit), 200 moves
(201 observations). Two interpreters play it: pymasep 0.2 alone (``PYMASEP02_PYTHON``) and
pymasep 0.2 with pymasep-comm installed over it as documented (``PYMASEP_ON_COMM_PYTHON``).
Rounds interleave the two. Each game runs in a network namespace of its own (pymasep's
Engine joins a multicast group at start), through integration_tests/pymasep/play.py.

Two rows: the game's wall time (from the interface's start to its end) and the CPU time of
both processes, each as 0.2's median over ours (above 1, pymasep-comm is faster). pymasep
paces both loops (the interface draws at most 60 frames a second, the engine loops at most
``engine.eps`` times a second, set to 1000 here), so the wall time is mostly that pacing
and moves little with the communication; the CPU time shows what the work costs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PLAY = Path(__file__).resolve().parents[1] / "pymasep" / "play.py"
STEPS = 200
SETTINGS = ("game.tokens=100", f"game.steps={STEPS}", "engine.eps=1000")
WORKLOAD = f"{STEPS}-step pymasep game, pymasep's engine and interface over TCP"
AGAINST = "pymasep 0.2"
# A fresh namespace holding only lo, multicast routed to it: the Engine's group join stays
# on this machine.
SETUP = 'ip link set lo up && ip route add 224.0.0.0/4 dev lo && exec "$@"'


class NotMeasuredError(Exception):
    """The game could not be played: the message says why."""


def _unshare() -> list[str]:
    return ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]


def play(python: str) -> dict[str, Any]:
    """Play the game once with ``python``; return play.py's report."""
    with tempfile.TemporaryDirectory() as workdir:
        command = [
            *_unshare(), "sh", "-c", SETUP, "sh",
            sys.executable, str(PLAY), python, "crowd", "normal", workdir,
            *(f"--set={setting}" for setting in SETTINGS),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=400)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise NotMeasuredError(f"the game did not end: {error}") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise NotMeasuredError(f"exit {done.returncode}: {done.stderr.strip()[-300:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    got = [line for line in result["interface"]["stdout"] if line.startswith("observation ")]
    if result["interface"]["returncode"] != 0 or len(got) != STEPS + 1:
        raise NotMeasuredError(
            f"the interface got {len(got)} of {STEPS + 1} observations "
            f"(exit {result['interface']['returncode']}): {result['interface']['stderr'][-3:]}"
        )
    return result


def run(rounds: int = 3) -> list[dict[str, Any]]:
    """Play ``rounds`` interleaved games on each side; one row for wall time, one for CPU."""
    pythons = {
        "pymasep-comm": os.environ.get("PYMASEP_ON_COMM_PYTHON"),
        AGAINST: os.environ.get("PYMASEP02_PYTHON"),
    }
    times: dict[str, dict[str, list[float]]] = {side: {"wall": [], "cpu": []} for side in pythons}
    failure = next(
        (f"{side}: no interpreter (nox -s bench sets it)" for side, p in pythons.items() if not p),
        None,
    )
    for round_index in range(rounds if failure is None else 0):
        for side, python in pythons.items():
            try:
                result = play(str(python))
            except NotMeasuredError as error:
                failure = f"{side}: {error}"
                break
            times[side]["wall"].append(result["game_seconds"])
            times[side]["cpu"].append(result["cpu_seconds"])
        if failure:
            break
        print(f"pymasep game: round {round_index + 1} of {rounds} done", file=sys.stderr)
    rows = []
    for measure, label in (("wall", ""), ("cpu", ", CPU time of both processes")):
        workload = WORKLOAD + label
        row: dict[str, Any] = {
            "name": f"{workload} vs {AGAINST}",
            "workload": workload,
            "against": AGAINST,
            "unit": "games/s",
            "ops_per_s": None,
            "baseline_ops_per_s": None,
            "ratio": None,
            "target": None,  # the issue asks for the ratio, with no target
        }
        if failure:
            row["note"] = failure
        else:
            ours = statistics.median(times["pymasep-comm"][measure])
            theirs = statistics.median(times[AGAINST][measure])
            row.update(ops_per_s=1 / ours, baseline_ops_per_s=1 / theirs, ratio=theirs / ours)
        rows.append(row)
    return rows


if __name__ == "__main__":
    for row in run(1):
        shown = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        print(f"{row['name']:<90} {shown:>8} {row.get('note', '')}")
