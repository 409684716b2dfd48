"""Observations of games with agents, for the codec benchmark, as pymasep 0.2's objects.

Real games have agents, and an agent's ``to_xml()`` writes its ``Belief`` as GraphML
text (networkx's) inside an element: every observation of such a game holds strings full
of markup. Two kinds here, both pymasep ``State`` objects built by pymasep's own
``Environment.create_object``:

* :func:`agents_state`: a state of tokens and agents, built from templates as a game
  builds its state, whose strings hold markup, quotes, newlines, tabs and non-ASCII
  text: the tokens' labels, and the agents' beliefs (three facts each).
* :func:`captured_state`: an observation captured from ``nox -s pymasep``'s games
  (``captured/<game>.xml``, see its README), read back into pymasep's objects as
  pymasep's interface reads the observations it receives. The game's classes come from
  integration_tests/pymasep/mygames, which must be importable (the benchmark puts that
  folder on the measuring process's ``PYTHONPATH``).
"""

from __future__ import annotations

import importlib
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

CAPTURED = Path(__file__).resolve().parent / "captured"
GAMES_FOLDER = Path(__file__).resolve().parents[1] / "pymasep"
"""Where ``mygames``, the captured games' package, lives."""

LABEL = 'token {index}: "<b>élan</b>" & co\n\tnext line, 日本'
FACT = 'Zoé said "<move to={index}>" & left\nagain'

TEMPLATES = [
    {"name": "Life", "created_class": "Characteristic", "value_type": "int", "default_value": 100},
    {"name": "Label", "created_class": "Characteristic", "value_type": "str", "default_value": ""},
    {"name": "TokenState", "created_class": "ObjectState", "subclass_templates": ["Life", "Label"]},
    {"name": "Token", "name_base_object": "token", "created_class": "Object",
     "subclass_templates": ["TokenState"]},
    {"name": "HeroState", "created_class": "ObjectState", "subclass_templates": ["Life", "Label"]},
    {"name": "Hero", "name_base_object": "hero", "created_class": "Agent",
     "controller": "pymasep.common.Controller", "subclass_templates": ["HeroState"]},
    {"name": "AgentsState", "created_class": "State",
     "subclass_templates": ["SystemObjectTemplate"]},
]  # fmt: skip


def _game(cls: Any, **settings: Any) -> Any:
    from omegaconf import OmegaConf

    return cls(OmegaConf.create({"root_path": ".", "game": settings}))


def agents_environment() -> Any:
    """An ``Environment`` whose game knows the templates of :func:`agents_state`."""
    from pymasep.common import Game
    from pymasep.common.environment import Environment
    from pymasep.common.template import Template

    class AgentsGame(Game):  # type: ignore[misc]  # pymasep has no type information
        def add_templates(self) -> None:
            super().add_templates()
            for template in TEMPLATES:
                self.add_template(Template(self, template))

    environment = Environment()
    environment.game = _game(AgentsGame)
    return environment


def agents_state(environment: Any, objects: int, agents: int) -> Any:
    """A ``State`` of ``objects`` tokens and ``agents`` agents, every string marked up."""
    templates = environment.game.templates
    state = environment.create_object(name="State", template=templates["AgentsState"])
    for index in range(objects):
        token = environment.create_object(
            name=f"token{index}", template=templates["Token"], parent=state
        )
        token.object_state.characteristics["Label"].value = LABEL.format(index=index)
        state.add_object(token)
    for index in range(agents):
        hero = environment.create_object(
            name=f"hero{index}", template=templates["Hero"], parent=state
        )
        hero.object_state.characteristics["Label"].value = LABEL.format(index=-index)
        for fact in range(3):
            hero.belief.add(
                ("Agent", f"hero{index}"), ("Tell",), ("Sentence", FACT.format(index=fact))
            )
        state.add_object(hero)
    return state


def captured_message(game: str) -> bytes:
    """The OBSERVATION captured from ``game``, as the engine sent it."""
    return (CAPTURED / f"{game}.xml").read_bytes()


def captured_environment(game: str) -> Any:
    """An ``Environment`` playing ``game`` (one of mygames' ``GAMES``), as an interface's."""
    # integration_tests/pymasep, on PYTHONPATH when measuring (mypy does not see it).
    games = importlib.import_module("mygames").GAMES

    from pymasep.common.environment import Environment

    environment = Environment()
    environment.game = _game(games[game][0])
    return environment


def captured_state(environment: Any, game: str) -> tuple[Any, dict[str, Any]]:
    """The captured observation's ``State``, read as pymasep's interface reads it, and
    its additional information."""
    from pymasep.comm.core import Message

    message = Message("", None, None)
    message.from_bytes(captured_message(game))
    assert message.params is not None
    observation = message.params["observation"]
    information = message.params["additional_information"]
    environment.clear_all_state_elements()
    state = environment.create_object(xml_node=observation, parent=None)
    # Reading a state appends each agent to the AgentOrder it already lists: the
    # engine's state, whose observation this is, lists each once.
    order = environment.game.get_system_value(state, "AgentOrder")
    order.data[:] = list(dict.fromkeys(order.data))
    written = ElementTree.canonicalize(ElementTree.tostring(state.to_xml(), encoding="unicode"))
    kept = ElementTree.canonicalize(ElementTree.tostring(observation, encoding="unicode"))
    if written != kept:  # the object must write the very observation that was captured
        raise AssertionError(f"{game}: pymasep does not write back what it read")
    return state, information
