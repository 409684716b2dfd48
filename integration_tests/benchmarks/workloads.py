"""What the benchmarks carry: pymasep 0.2's own objects, and the fan-out's observation.

The codec benchmark (:mod:`message_codec`) encodes and decodes real pymasep objects,
built with pymasep 0.2's own classes (:func:`pymasep_state`, :func:`pymasep_action`):
a ``State`` of N ``Object`` objects, each an ``ObjectState`` of four characteristics
(a tuple position, an int, a str, a bool), as pymasep's engine sends in OBSERVATION,
and an ``Action`` with parameters, as its interfaces send in ACTION. They are built as
pymasep builds them from XML (``Environment.create_object``), without an engine.

The game step benchmark (:mod:`gamestep`) sends the observation of a game with agents,
:func:`game_step_messages`: a pymasep 0.2 ``State`` of :data:`STEP_OBJECTS` objects and
:data:`STEP_AGENTS` ``Agent`` objects, each agent's ``Belief`` written as GraphML text inside
its element (a string full of markup, as real observations hold), and the ``Action`` an
interface answers with, both encoded by pymasep-comm's ``Message``. Where pymasep 0.2 is
not installed (the delivery tests), it falls back to the synthetic observation below.

The fan-out benchmark sends the bytes of a synthetic observation (a ``State`` element
of 200 ``Object`` children of 5 ``Characteristic`` each, :func:`observation_state`):
there both contenders send the same bytes, so any tree will do. This module is
importable by pymasep 0.2's interpreter too (no pymasep import at the top).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

OBJECTS = 200
CHARACTERISTICS = 5
STEP_OBJECTS = 30
STEP_AGENTS = 4
BELIEF_RELATIONS = 20
"""Relations in each agent's belief (three GraphML nodes and two edges each)."""


def observation_state(etree: Any = ET) -> Any:
    """The 1,000-characteristic state, built with ``etree`` (xml.etree or lxml.etree)."""
    state = etree.Element("State", name="state", env_step="7")
    for index in range(OBJECTS):
        obj = etree.SubElement(state, "Object", name=f"o{index}")
        for charac in range(CHARACTERISTICS):
            value = etree.SubElement(obj, "Characteristic", name=f"c{charac}")
            value.text = str(index * CHARACTERISTICS + charac)
    return state


class Built:
    """An object whose ``to_xml()`` returns an element already built: the message's
    encoding, without pymasep's own ``to_xml()``, for both Messages alike."""

    def __init__(self, element: Any) -> None:
        self.element = element

    def to_xml(self) -> Any:
        return self.element


def pymasep_state_xml(objects: int) -> ET.Element:
    """The XML of a running ``State`` of ``objects`` objects, as pymasep writes one."""
    state = ET.Element("State", name="State", state="run", is_final="False", env_step="7")
    for index in range(objects):
        obj = ET.SubElement(state, "Object", name=f"token{index}", nature="token", state="run")
        object_state = ET.SubElement(obj, "ObjectState", name="state", state="run")
        position = ET.SubElement(object_state, "Characteristic", name="Position", state="run")
        coordinates = ET.SubElement(position, "tuple")
        for coordinate in (index % 16, index // 16):
            ET.SubElement(ET.SubElement(coordinates, "item"), "int").text = str(coordinate)
        for name, tag, text in (
            ("Life", "int", str(100 - index % 100)),
            ("Label", "str", f"token {index}"),
            ("Visible", "bool", str(index % 3 != 0)),
        ):
            characteristic = ET.SubElement(object_state, "Characteristic", name=name, state="run")
            ET.SubElement(characteristic, tag).text = text
    return state


def pymasep_environment() -> Any:
    """A pymasep 0.2 ``Environment`` (it writes ``logs/`` in the working directory)."""
    from pymasep.common.environment import Environment

    return Environment()


def pymasep_state(environment: Any, objects: int) -> Any:
    """A pymasep 0.2 ``State`` of ``objects`` objects, built with 0.2's classes."""
    return environment.create_object(name=None, xml_node=pymasep_state_xml(objects), parent=None)


def pymasep_action(environment: Any) -> Any:
    """A pymasep 0.2 ``Action`` as an interface sends one: a type and two parameters."""
    action = environment.create_action(action_type=3)
    action.add_parameter("coord", (4, 2))
    action.add_parameter("token", "token7")
    return action


def our_observation_bytes() -> bytes:
    """The observation as pymasep-comm puts it on the wire (what the fan-out sends)."""
    from pymasep.comm.core import Message

    params = {
        "observation": observation_state(),
        "additional_information": {"reward": 1, "game_log": "x"},
    }
    return bytes(Message("observation", params, "engine").to_bytes())


def pymasep_game_state(environment: Any, objects: int, agents: int, relations: int) -> Any:
    """A pymasep 0.2 ``State`` of ``objects`` objects and ``agents`` agents, each agent's
    ``Belief`` holding ``relations`` relations: the agents are built from XML as pymasep
    builds them (``Environment.create_object``), their beliefs with ``Belief.add``."""
    state_xml = pymasep_state_xml(objects)
    for index in range(agents):
        agent = ET.SubElement(
            state_xml,
            "Agent",
            name=f"player{index}",
            nature="player",
            state="run",
            controller="pymasep.common.controller.Controller",
            control=f"interface-{index}",
        )
        agent_state = ET.SubElement(agent, "ObjectState", name="state", state="run")
        life = ET.SubElement(agent_state, "Characteristic", name="Life", state="run")
        ET.SubElement(life, "int").text = str(100 - index)
    state = environment.create_object(name=None, xml_node=state_xml, parent=None)
    for index in range(agents):
        belief = state.objects[f"State.player{index}"].belief
        for relation in range(relations):
            near = (
                f"token{(index + relation) % objects}",
                f"token{(index + relation + 1) % objects}",
            )
            belief.add(("token", near[0]), ("near",), ("token", near[1]))
    return state


def game_step_messages() -> tuple[bytes, bytes, str]:
    """The observation and the action of a game step, as pymasep-comm puts them on the wire,
    and what they hold, in words."""
    from pymasep.comm.core import Message

    info = {"reward": 1, "game_log": "player0 moved token7"}
    try:
        import tempfile

        from omegaconf import OmegaConf

        from pymasep.common import Game
    except ImportError:  # no pymasep 0.2 here: the synthetic observation
        observation = Message(
            "observation",
            {"observation": observation_state(), "additional_information": info},
            "engine",
        )
        action = Message("action", {"action": Built(ET.Element("Action", type="3"))}, "i")
        what = "a synthetic State (pymasep 0.2 is not installed)"
        return bytes(observation.to_bytes()), bytes(action.to_bytes()), what
    environment = pymasep_environment()
    environment.game = Game(OmegaConf.create({"root_path": tempfile.gettempdir()}))
    state = pymasep_game_state(environment, STEP_OBJECTS, STEP_AGENTS, BELIEF_RELATIONS)
    params = {"observation": state, "additional_information": info}
    observation = Message("observation", params, "engine")
    action = Message("action", {"action": pymasep_action(environment)}, "interface-0")
    what = (
        f"pymasep 0.2's State of {STEP_OBJECTS} objects and {STEP_AGENTS} agents, each "
        f"agent's Belief ({BELIEF_RELATIONS} relations) as GraphML text"
    )
    return bytes(observation.to_bytes()), bytes(action.to_bytes()), what
