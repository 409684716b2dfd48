"""The messages of the codec benchmark, for pymasep 0.2 and for pymasep-comm alike.

The same data as :mod:`message_codec`: an observation whose ``State`` element holds 200
``Object`` children of 5 ``Characteristic`` each (as ``message_codec.observation_state``
builds it), and a small action. This module is importable by pymasep 0.2's interpreter
too (no pymasep import at the top, no lxml needed there): 0.2 builds the same trees with
``xml.etree``, and since 0.2's Message only carries elements through ``to_xml()``, it
gets them wrapped in an object whose ``to_xml()`` returns the tree already built.

Run as a script, it measures one codec workload in a fresh process, for the benchmark
(pymasep-comm's, with our interpreter; :mod:`legacy02` does 0.2's)::

    workloads.py observation|action COUNT
"""

from __future__ import annotations

import json
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any

OBJECTS = 200
CHARACTERISTICS = 5


def observation_state(etree: Any = ET) -> Any:
    """The 1,000-characteristic state, built with ``etree`` (xml.etree or lxml.etree)."""
    state = etree.Element("State", name="state", env_step="7")
    for index in range(OBJECTS):
        obj = etree.SubElement(state, "Object", name=f"o{index}")
        for charac in range(CHARACTERISTICS):
            value = etree.SubElement(obj, "Characteristic", name=f"c{charac}")
            value.text = str(index * CHARACTERISTICS + charac)
    return state


def action_element(etree: Any = ET) -> Any:
    action = etree.Element("Action", type="move")
    action.text = "north"
    return action


class Built:
    """Carries an element through pymasep 0.2's Message, which takes only ``to_xml()``."""

    def __init__(self, element: Any) -> None:
        self.element = element

    def to_xml(self) -> Any:
        return self.element


def message_args(kind: str, etree: Any = ET, wrap: bool = True) -> tuple[str, dict[str, Any]]:
    """``(msg_type, params)`` of the observation or the action message."""
    carry = Built if wrap else (lambda element: element)
    if kind == "observation":
        params = {
            "observation": carry(observation_state(etree)),
            "additional_information": {"reward": 1, "game_log": "x"},
        }
        return "observation", params
    return "action", {"action": carry(action_element(etree))}


def our_message(kind: str) -> Any:
    """The message as pymasep-comm's engine builds it (lxml elements, as they are)."""
    from lxml import etree

    from pymasep.comm.core import Message

    msg_type, params = message_args(kind, etree, wrap=False)
    return Message(msg_type, params, "engine")


def our_codec(kind: str, count: int) -> dict[str, float]:
    """Encode then decode pymasep-comm's message ``count`` times."""
    from pymasep.comm.core import Message

    message = our_message(kind)
    start = time.perf_counter()
    for _ in range(count):
        Message("", None, None).from_bytes(message.to_bytes())
    return {"ops": count, "elapsed": time.perf_counter() - start}


def our_observation_bytes() -> bytes:
    """The observation as pymasep-comm puts it on the wire (what the fan-out sends)."""
    return bytes(our_message("observation").to_bytes())


if __name__ == "__main__":
    print(json.dumps(our_codec(sys.argv[1], int(sys.argv[2]))))
