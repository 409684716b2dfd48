"""Message encode + decode against bare lxml ``tostring`` + ``fromstring`` of the same state.

The observation is the 1,000-element ``State`` of the issues (200 ``Object`` children of
5 ``Characteristic`` each, about 50 KB); the action is one small element.

glibc returns freed heap to the system once the top of the heap exceeds its trim
threshold, and takes it back on the next allocation. With a 50 KB document, whether a
loop crosses that line decides a third of its time, so the ratio would measure the
allocator's luck, not the code: the message's few extra bytes of envelope are enough to
cross it. Each measurement therefore runs twice, in child processes: with glibc's
defaults, and with trimming off (``MALLOC_TRIM_THRESHOLD_``), the state of a long-running
engine whose heap has grown. Both rows are reported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from lxml import etree

from pymasep.comm.core import Message

OBJECTS = 200
CHARACTERISTICS = 5
STEADY_HEAP = {"MALLOC_TRIM_THRESHOLD_": str(256 * 1024 * 1024), "MALLOC_TOP_PAD_": str(16 << 20)}


def observation_state() -> etree._Element:
    """The 1,000-characteristic state an engine sends each step."""
    state = etree.Element("State", name="state", env_step="7")
    for index in range(OBJECTS):
        obj = etree.SubElement(state, "Object", name=f"o{index}")
        for charac in range(CHARACTERISTICS):
            value = etree.SubElement(obj, "Characteristic", name=f"c{charac}")
            value.text = str(index * CHARACTERISTICS + charac)
    return state


def _rate(operation: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        operation()
    return count / (time.perf_counter() - start)


def _measure(rounds: int) -> list[dict[str, Any]]:
    state = observation_state()
    action_element = etree.Element("Action", type="move")
    action_element.text = "north"
    cases = [
        (
            "observation (1,000-element state)",
            Message(
                Message.MESSAGE_TYPE_OBSERVATION,
                {"observation": state, "additional_information": {"reward": 1, "game_log": "x"}},
                "engine",
            ),
            state,
            200,
        ),
        (
            "small action",
            Message(Message.MESSAGE_TYPE_ACTION, {"action": action_element}, "interface"),
            action_element,
            5000,
        ),
    ]
    rows = []
    for name, message, element, count in cases:

        def ours(message: Message = message) -> None:
            Message("", None, None).from_bytes(message.to_bytes())

        def bare(element: etree._Element = element) -> None:
            etree.fromstring(etree.tostring(element))

        ours_runs, bare_runs = [], []
        for _ in range(rounds):
            ours_runs.append(_rate(ours, count))
            bare_runs.append(_rate(bare, count))
        ours_median, bare_median = statistics.median(ours_runs), statistics.median(bare_runs)
        rows.append(
            {
                "name": f"message codec: {name} vs bare lxml",
                "unit": "messages/s",
                "ops_per_s": ours_median,
                "baseline_ops_per_s": bare_median,
                "ratio": ours_median / bare_median,
            }
        )
    return rows


def run(rounds: int = 5) -> list[dict[str, Any]]:
    """Measure under glibc's default heap and under a steady heap; one row per case each."""
    rows = []
    for heap, extra in (("default heap", {}), ("steady heap", STEADY_HEAP)):
        result = subprocess.run(
            [sys.executable, __file__, "--rounds", str(rounds)],
            env={**os.environ, **extra},
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        for row in json.loads(result.stdout):
            row["name"] = f"{row['name']} ({heap})"
            if "action" in row["name"]:
                row["target"] = None  # the issues set a target for the observation only
            rows.append(row)
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rounds"]:
        print(json.dumps(_measure(int(sys.argv[2]))))
    else:
        for row in run(3):
            print(f"{row['name']:<72} {row['ratio']:.2f}x")
