"""pymasep-comm's Message against pymasep 0.2's, on the same pymasep objects, in one process.

Both Messages encode and decode the very same objects, pymasep 0.2's own: in an
OBSERVATION, as pymasep's engine sends them,

* a ``State`` of 30 objects and one of 300, without agents (:mod:`workloads`);
* a ``State`` of 30 objects and 2 agents, whose Beliefs pymasep writes as GraphML text,
  and whose strings (labels, beliefs, the additional information) hold markup, quotes,
  newlines, tabs and non-ASCII text (:mod:`gameobjects`);
* the observations captured from ``nox -s pymasep``'s games (``captured/``: the duel's,
  2 agents; the crowd's, 300 tokens and an agent), read back into pymasep's objects as
  its interface reads them (:mod:`gameobjects`);

and an ``Action`` in an ACTION, as its interfaces send it.
0.2's ``Message`` is loaded from its own file in pymasep 0.2's virtualenv
(``PYMASEP02_PYTHON``) under another module name, so both run in this interpreter, which
needs pymasep 0.2 installed beside our distributions (the bench session installs it
first, as the documented way does).

Each round times, ours then 0.2's:

* **encode**: ``to_bytes()`` of a Message holding the object (pymasep's ``to_xml()``
  included);
* **encode without to_xml**: the same with the object's element already built, handed
  over by an object whose ``to_xml()`` returns it (``workloads.Built``), both alike;
* **decode**: ``from_bytes()`` of the bytes that side encoded;
* **from_xml**: pymasep's own ``Environment.create_object()`` (``create_action()``) on
  the element that decode returned.

The targets (issues 10 and 20), as speed ratios (0.2's time over ours): **our share** (encode
without ``to_xml`` plus decode) at least 2x, that is at most half 0.2's time; and
pymasep's **from_xml** on our elements at least 1/1.05x of its speed on 0.2's.

glibc returns freed heap to the system once the top of the heap exceeds its trim
threshold, and takes it back on the next allocation; whether a loop crosses that line
can decide a third of its time. Each measurement therefore runs in child processes twice:
with glibc's defaults, and with trimming off (``MALLOC_TRIM_THRESHOLD_``), the state of
a long-running engine whose heap has grown. Both are reported.

Times are CPU times of the measuring process (the codec is single-threaded work; on a
shared machine, wall time would also count other processes' turns). Each round times
both sides back to back, each side first every other round; a ratio is the median, over
pairs of rounds, of the pair's geometric mean. The objects
built for the workloads are frozen out of the garbage collector's reach (``gc.freeze``)
and each sample starts after a collection: otherwise a full collection, which walks
every live object, lands on whichever side happens to trigger it.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEADY_HEAP = {"MALLOC_TRIM_THRESHOLD_": str(256 * 1024 * 1024), "MALLOC_TOP_PAD_": str(16 << 20)}
HEAPS = {"default heap": {}, "steady heap": STEADY_HEAP}
WORKLOADS = {
    "State of 30 objects": 30,
    "State of 300 objects": 300,
    "Action": None,
    "State of 30 objects and 2 agents": 30,
    "duel observation (captured)": None,
    "crowd observation (captured)": None,
}
"""The workloads, and the objects of their state. Agents' states hold marked-up strings
and GraphML beliefs (:mod:`gameobjects`); captured ones come from pymasep's games."""
AGENTS = 2
MEASURES = ("encode", "encode without to_xml", "decode", "our share", "from_xml")
TARGETS = {"our share": 2.0, "from_xml": 1 / 1.05}
"""Lowest acceptable speed ratio (0.2's time / ours) per measure, from issues 10 and 20."""
AGAINST = "pymasep 0.2"
SECONDS_PER_SAMPLE = 0.05
CODEC_ROUNDS = 10
"""At least this many rounds (an even number is used: rounds go in pairs, one with each
side first); a round of every measure takes about a second."""


def row_name(workload: str, measure: str, heap: str) -> str:
    return f"message codec: {workload}, {measure} vs {AGAINST} ({heap})"


def _message02_path() -> str:
    """The file of 0.2's ``pymasep.communication.message``, found without importing it."""
    python = os.environ.get("PYMASEP02_PYTHON")
    if not python:
        raise LookupError("pymasep 0.2 is not installed here (PYMASEP02_PYTHON is not set)")
    find = (
        "import importlib.util, os; "
        "print(os.path.join(importlib.util.find_spec('pymasep').submodule_search_locations[0],"
        " 'communication', 'message.py'))"
    )
    return subprocess.run(
        [python, "-c", find], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def _load_message02(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("pymasep02_message", path)
    if spec is None or spec.loader is None:
        raise LookupError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Message


def _per_op(operation: Callable[[], object], count: int, setup: Any = None) -> float:
    if setup is not None:
        setup()
    gc.collect()  # each sample starts from the same garbage: none
    # CPU time of this process: the codec is single-threaded work, and on a shared
    # machine wall time also counts the moments other processes held the CPU.
    start = time.process_time()
    for _ in range(count):
        operation()
    return (time.process_time() - start) / count


def _count(operation: Callable[[], object]) -> int:
    once = _per_op(operation, 1)
    return max(1, min(10_000, int(SECONDS_PER_SAMPLE / max(once, 1e-7))))


Rebuild = Callable[[Any], Any]


def _simple_state(workload: str) -> tuple[Any, Rebuild, dict[str, Any]]:
    import workloads

    environment = workloads.pymasep_environment()
    thing = workloads.pymasep_state(environment, WORKLOADS[workload] or 0)

    def rebuild(element: Any) -> Any:
        return environment.create_object(name=None, xml_node=element, parent=None)

    return thing, rebuild, {"additional_information": {"reward": 1, "log": "step 7"}}


def _game_state(workload: str) -> tuple[Any, Rebuild, dict[str, Any]]:
    """A state with agents: built (marked-up strings), or captured from a game."""
    import gameobjects

    if "agents" in workload:
        environment = gameobjects.agents_environment()
        thing = gameobjects.agents_state(environment, WORKLOADS[workload] or 0, AGENTS)
        information: dict[str, Any] = {"reward": 1, "log": gameobjects.FACT.format(index=7)}
    else:
        game = workload.split()[0]
        environment = gameobjects.captured_environment(game)
        thing, information = gameobjects.captured_state(environment, game)

    def rebuild(element: Any) -> Any:
        # As pymasep's interface takes an observation in (update_current_next).
        environment.clear_all_state_elements()
        return environment.create_object(xml_node=element, parent=None)

    return thing, rebuild, {"additional_information": information}


def _cases(workload: str, ours: Any, legacy: Any) -> dict[str, Any]:
    """For one workload: per side, the operations to time (same objects on both sides)."""
    import workloads

    if workload == "Action":
        environment = workloads.pymasep_environment()
        thing = workloads.pymasep_action(environment)
        msg_type, key = "action", "action"
        rebuild: Rebuild = lambda element: environment.create_action(xml_node=element)  # noqa: E731
        extra: dict[str, Any] = {}
    else:
        msg_type, key = "observation", "observation"
        simple = "agents" not in workload and "captured" not in workload
        thing, rebuild, extra = (_simple_state if simple else _game_state)(workload)
    built = workloads.Built(thing.to_xml())
    # What pymasep reads from the tree itself, without any codec: each side must give
    # the same (not the object itself: reading a state appends its agents to the
    # AgentOrder it already holds, a pymasep quirk).
    expected = rebuild(built.element).id_str()
    sides = {}
    for side, message_class in (("ours", ours), ("0.2", legacy)):
        full = message_class(msg_type, {key: thing, **extra}, "engine")
        prebuilt = message_class(msg_type, {key: built, **extra}, "engine")
        data = full.to_bytes()
        decoded = message_class(None, None, None)
        decoded.from_bytes(data)
        element = decoded.params[key]
        rebuilt = rebuild(element)
        if rebuilt.id_str() != expected:  # both sides must carry the object intact
            raise AssertionError(f"{side}: {workload} does not come back as it left")

        def decode(message_class: Any = message_class, data: bytes = data) -> Any:
            message = message_class(None, None, None)
            message.from_bytes(data)
            return message

        # from_xml reads an element decoded just before its sample, on both sides: where
        # a tree lands in memory changes how fast it is walked, and with one tree per
        # side decoded once, the side decoded first was 4% slower to read either way.
        holder = [element]

        def fresh(holder: list[Any] = holder, decode: Any = decode, key: str = key) -> None:
            holder[0] = decode().params[key]

        sides[side] = {
            "encode": full.to_bytes,
            "encode without to_xml": prebuilt.to_bytes,
            "decode": decode,
            "from_xml": lambda rebuild=rebuild, holder=holder: rebuild(holder[0]),
            "setup from_xml": fresh,
            "bytes": len(data),
        }
    return sides


def _measure(rounds: int) -> list[dict[str, Any]]:
    from pymasep.comm.core import Message

    legacy = _load_message02(os.environ["PYMASEP02_MESSAGE"])

    rows = []
    cases = {workload: _cases(workload, Message, legacy) for workload in WORKLOADS}
    # The objects built for the workloads live as long as the run: frozen, a full
    # collection skips them, so it costs what the operation allocated, whichever side
    # happens to trigger it (without this, that decides a round).
    gc.collect()
    gc.freeze()
    for workload, sides in cases.items():
        timed = [m for m in MEASURES if m != "our share"]
        counts = {(side, m): _count(sides[side][m]) for side in sides for m in timed}
        samples: dict[tuple[str, str], list[float]] = {}
        for round_index in range(rounds):
            # Interleaved, so a slow moment hits both sides; each side first in turn, so
            # going first (or second) favours neither.
            order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
            for measure in timed:
                for side in order:
                    seconds = _per_op(
                        sides[side][measure],
                        counts[side, measure],
                        sides[side].get(f"setup {measure}"),
                    )
                    samples.setdefault((side, measure), []).append(seconds)
            for side in sides:
                share = samples[side, "encode without to_xml"][-1] + samples[side, "decode"][-1]
                samples.setdefault((side, "our share"), []).append(share)
        for measure in MEASURES:
            ours = statistics.median(samples["ours", measure])
            theirs = statistics.median(samples["0.2", measure])
            per_round = [
                t / o
                for o, t in zip(samples["ours", measure], samples["0.2", measure], strict=True)
            ]
            # A pair of rounds, one with each side first, gives one ratio (their geometric
            # mean); the median of the pairs is the row's.
            pairs = [
                math.sqrt(first * second)
                for first, second in zip(per_round[::2], per_round[1::2], strict=False)
            ]
            rows.append(
                {
                    "workload": f"message codec: {workload}, {measure}",
                    "measure": measure,
                    "unit": "operations/s",
                    "ops_per_s": 1 / ours,
                    "baseline_ops_per_s": 1 / theirs,
                    "ratio": statistics.median(pairs),
                    "spread": [min(per_round), max(per_round)],
                    "bytes": [sides["ours"]["bytes"], sides["0.2"]["bytes"]],
                }
            )
    return rows


def run(rounds: int = 5) -> list[dict[str, Any]]:
    """Measure under glibc's default heap and under a steady heap; one row per measure."""
    codec_rounds = max(rounds + rounds % 2, CODEC_ROUNDS)
    rows = []
    try:
        path = _message02_path()
        failure = None
    except (LookupError, subprocess.SubprocessError) as error:
        path, failure = "", str(error)
    # The captured observations' game classes (mygames), for pymasep to read them back.
    import gameobjects

    games = os.pathsep.join(
        filter(None, [str(gameobjects.GAMES_FOLDER), os.environ.get("PYTHONPATH")])
    )
    for heap, extra in HEAPS.items():
        measured: list[dict[str, Any]] = []
        if failure is None:
            with tempfile.TemporaryDirectory() as scratch:  # pymasep writes logs/ there
                result = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--rounds", str(codec_rounds)],
                    env={**os.environ, **extra, "PYMASEP02_MESSAGE": path, "PYTHONPATH": games},
                    cwd=scratch,
                    capture_output=True,
                    text=True,
                    timeout=1200,
                )
            if result.returncode == 0:
                measured = json.loads(result.stdout.strip().splitlines()[-1])
            else:
                failure = f"the measurement failed: {result.stderr.strip()[-300:]}"
        for workload in WORKLOADS:
            for measure in MEASURES:
                found = next(
                    (r for r in measured if r["workload"].endswith(f"{workload}, {measure}")),
                    None,
                )
                row = found or {"ratio": None, "note": f"{AGAINST}: {failure}"}
                row.update(
                    name=row_name(workload, measure, heap),
                    workload=f"message codec: {workload}, {measure}, {heap}",
                    against=AGAINST,
                    target=TARGETS.get(measure),
                )
                rows.append(row)
    return rows


if __name__ == "__main__":
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if sys.argv[1:2] == ["--rounds"]:
        print(json.dumps(_measure(int(sys.argv[2]))))
    else:
        for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
            shown = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
            spread = row.get("spread")
            extra = f" ({spread[0]:.2f}-{spread[1]:.2f})" if spread else row.get("note", "")
            print(f"{row['name']:<96} {shown:>7}{extra}")
