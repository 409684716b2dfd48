"""What recording costs: each workload with recording on against itself with it off.

Two workloads, each interleaving rounds of both, the ratio of the medians:

* the 200-step pymasep game of :mod:`pymasep_game` (pymasep's own engine and interface,
  two processes, pymasep-comm installed over pymasep 0.2), both processes recording
  (``PYMASEP_COMM_RECORD``, as a user turns it on without code): its wall time, target at
  most 1.05x the time without recording; and the CPU time of both processes (no target);
* the stream of 1 KiB frames of :mod:`transport` (50,000 frames, interface to engine),
  both processes recording, timed as :mod:`transport` times it, until the engine has
  every frame: target at most 1.3x; and, with no target, until the interface has closed
  too, its recording written to the end (the recorder writes a burst while the game goes
  on, and finishes after it).

Ratios are speeds, as on the rest of the page: the speed with recording over the speed
without, so a time at most 1.05x its time without is a ratio of at least 1/1.05.
"""

from __future__ import annotations

import os
import queue
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymasep_game
import transport

from pymasep.comm.core import Frame

SECTION = "Recording overhead"
ENV_RECORD = "PYMASEP_COMM_RECORD"
GAME_TARGET = 1.05  # at most this many times the time without recording
STREAM_TARGET = 1.3


@contextmanager
def recording(on: bool) -> Iterator[Path | None]:
    """Every Server and Client made inside records into a fresh directory when ``on``
    (through the environment, so that child processes record too)."""
    if not on:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="pymasep-bench-records-"))
    os.environ[ENV_RECORD] = str(directory)
    try:
        yield directory
    finally:
        del os.environ[ENV_RECORD]
        shutil.rmtree(directory, ignore_errors=True)


def stream(count: int, payload: bytes) -> tuple[float, float]:
    """Frames per second, from the first send until the engine has the last frame, and
    until the interface is closed too (its recorder, if any, has written everything)."""
    process, port, done = transport._engine(transport._our_engine, "sink", count)
    client = transport._client(port, queue.SimpleQueue())
    frame = Frame(payload)
    start = time.perf_counter()
    for _ in range(count):
        client.send_frame_to(transport.ENGINE_ID, frame)
    if not done.wait(120):
        raise RuntimeError("frames were lost")
    delivered = time.perf_counter() - start
    client.close()
    closed = time.perf_counter() - start
    process.join(10)
    return count / delivered, count / closed


def _row(workload: str, on: list[float], off: list[float], target: float | None) -> dict[str, Any]:
    """A row of speeds (higher is faster): ``on`` with recording, ``off`` without."""
    ratio = statistics.median(on) / statistics.median(off)
    return {
        "name": f"{workload} vs recording off",
        "workload": workload,
        "against": "recording off",
        "section": SECTION,
        "unit": "ops/s",
        "ops_per_s": statistics.median(on),
        "baseline_ops_per_s": statistics.median(off),
        "ratio": ratio,
        "target": None if target is None else 1 / target,
    }


def _interleave(rounds: int, measure: Callable[[bool], Any]) -> tuple[list[Any], list[Any]]:
    on: list[Any] = []
    off: list[Any] = []
    for _ in range(rounds):
        for flag, results in ((True, on), (False, off)):
            with recording(flag):
                results.append(measure(flag))
    return on, off


def run_stream(rounds: int = 5) -> list[dict[str, Any]]:
    payload = bytes(transport.STREAM_PAYLOAD)
    on, off = _interleave(rounds, lambda _: stream(transport.STREAM_FRAMES, payload))
    workload = "stream of 1 KiB frames, recording on"
    row = _row(workload, [d for d, _ in on], [d for d, _ in off], STREAM_TARGET)
    written = _row(
        f"{workload}, until the interface's recording is written",
        [c for _, c in on],
        [c for _, c in off],
        None,
    )
    return [row, written]


def run_game(rounds: int = 3) -> list[dict[str, Any]]:
    python = os.environ.get("PYMASEP_ON_COMM_PYTHON")
    workload = f"{pymasep_game.WORKLOAD}, recording on"
    if not python:
        note = "no interpreter with pymasep (nox -s bench sets PYMASEP_ON_COMM_PYTHON)"
        return [
            {"name": f"{workload} vs recording off", "workload": workload,
             "against": "recording off", "section": SECTION, "ratio": None,
             "target": 1 / GAME_TARGET, "note": note}
        ]  # fmt: skip

    def game(flag: bool) -> dict[str, Any]:
        result = pymasep_game.play(python)
        print(
            f"recording overhead: a game with recording {'on' if flag else 'off'}", file=sys.stderr
        )
        return result

    try:
        on, off = _interleave(rounds, game)
    except pymasep_game.NotMeasuredError as error:
        return [
            {"name": f"{workload} vs recording off", "workload": workload,
             "against": "recording off", "section": SECTION, "ratio": None,
             "target": 1 / GAME_TARGET, "note": str(error)}
        ]  # fmt: skip
    return [
        _row(workload, [1 / r["game_seconds"] for r in on], [1 / r["game_seconds"] for r in off],
             GAME_TARGET),
        _row(f"{workload}, CPU time of both processes", [1 / r["cpu_seconds"] for r in on],
             [1 / r["cpu_seconds"] for r in off], None),
    ]  # fmt: skip


def run(rounds: int = 5) -> list[dict[str, Any]]:
    """The recording rows: the stream, then the pymasep game (3 rounds at most)."""
    return run_stream(rounds) + run_game(min(rounds, 3))


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        shown = (
            "-"
            if row["ratio"] is None
            else f"{row['ratio']:.3f}x ({1 / row['ratio']:.3f}x the time)"
        )
        print(f"{row['name']:<100} {shown} {row.get('note', '')}")
