"""Duel: a turn-based game for two agents, a bot in the engine and a player in an interface.

A pile starts at 0; in turn, each agent adds to it (the bot 1, the player 2); the game ends
when the pile reaches ``game.target`` (30 by default: 20 steps, each an observation).
"""

from __future__ import annotations

from typing import Any

from pymasep.common import Controller, Game
from pymasep.interface import InterfaceController

from .headless import HeadlessInterface
from .tablegame import TableGame

ADD = 1
"""The only action: add ``params['add']`` to the pile."""

TEMPLATES: list[dict[str, Any]] = [
    {"name": "Total", "created_class": "Characteristic", "value_type": "int", "default_value": 0},
    {"name": "Score", "created_class": "Characteristic", "value_type": "int", "default_value": 0},
    {"name": "PileState", "created_class": "ObjectState", "subclass_templates": ["Total"]},
    {"name": "Pile", "name_base_object": "pile", "created_class": "Object",
     "subclass_templates": ["PileState"]},
    {"name": "AgentState", "created_class": "ObjectState", "subclass_templates": ["Score"]},
    {"name": "Bot", "name_base_object": "bot", "created_class": "Agent",
     "controller": "mygames.duel.BotController", "subclass_templates": ["AgentState"]},
    {"name": "Player", "name_base_object": "player0", "created_class": "Agent",
     "controller": "pymasep.engine.ExternalController", "subclass_templates": ["AgentState"]},
    {"name": "DuelState", "created_class": "State",
     "subclass_templates": ["SystemObjectTemplate", "Pile"]},
]  # fmt: skip


def pile(state: Any) -> Any:
    return state.objects["State.pile"].object_state.characteristics["Total"]


def add_action(environment: Any, amount: int) -> Any:
    action = environment.create_action(action_type=ADD)
    action.add_parameter("add", amount)
    return action


class DuelGame(TableGame):
    """The rules: turn by turn, the pile grows; the game ends at ``game.target``."""

    template_table = TEMPLATES

    def init_state(self, environment: Any) -> Any:
        # Agents are added to the state, not listed in its template: a template's objects
        # are created anew each time the state is copied (an observation is a copy).
        state = environment.create_object(name="State", template=self.templates["DuelState"])
        bot = environment.create_object(name="bot", template=self.templates["Bot"], parent=state)
        state.add_object(bot)
        return state

    def play(self, state: Any, actions: dict[str, Any]) -> None:
        for agent_name, action in actions.items():
            amount = action.params["add"]
            pile(state).value = pile(state).value + amount
            score = state.objects[agent_name].object_state.characteristics["Score"]
            score.value = score.value + amount
        self.get_system_value(state, "AgentOrder").move_head_next()

    def is_final(self, state: Any) -> bool:
        return bool(pile(state).value >= self.config.game.get("target", 30))


class BotController(Controller):
    """The engine's agent: adds 1, once a player has joined."""

    def action_choice(self, observation: Any, agent: Any) -> Any:
        if len(self.environment.current_state.agents) < 2:
            return None  # wait for the player
        return add_action(self.environment, 1)


class AutoPlayer(InterfaceController):
    """The interface's agent, played by a program: adds 2 when it is its turn (3 from
    step ``change_at`` on, when it is set: an agent whose policy changed)."""

    change_at: int | None = None

    def action_choice(self, observation: Any, agent: Any) -> Any:
        state = self.environment.current_state
        if Game.get_system_value(state, "AgentOrder").head != agent.get_fullname():
            return None
        changed = self.change_at is not None and self.environment.current_step >= self.change_at
        return add_action(self.environment, 3 if changed else 2)


class DuelInterface(HeadlessInterface):
    game_class = DuelGame
    controller_class = AutoPlayer
