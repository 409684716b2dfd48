"""Crowd: one player moves, one at a time, the tokens of a board of ``game.tokens`` objects.

The state holds ``game.tokens`` objects (300 by default), each with two characteristics,
so every observation carries them all; the game ends after ``game.steps`` moves (25).
"""

from __future__ import annotations

from typing import Any

from pymasep.common import Game
from pymasep.interface import InterfaceController

from .headless import HeadlessInterface
from .tablegame import TableGame

MOVE = 1
"""The only action: move token ``params['token']`` one square right."""

TEMPLATES: list[dict[str, Any]] = [
    {"name": "X", "created_class": "Characteristic", "value_type": "int", "default_value": 0},
    {"name": "Y", "created_class": "Characteristic", "value_type": "int", "default_value": 0},
    {"name": "Moves", "created_class": "Characteristic", "value_type": "int", "default_value": 0},
    {"name": "TokenState", "created_class": "ObjectState", "subclass_templates": ["X", "Y"]},
    {"name": "Token", "name_base_object": "token", "created_class": "Object",
     "subclass_templates": ["TokenState"]},
    {"name": "BoardState", "created_class": "ObjectState", "subclass_templates": ["Moves"]},
    {"name": "Board", "name_base_object": "board", "created_class": "Object",
     "subclass_templates": ["BoardState"]},
    {"name": "PlayerState", "created_class": "ObjectState", "subclass_templates": ["Moves"]},
    {"name": "Player", "name_base_object": "player0", "created_class": "Agent",
     "controller": "pymasep.engine.ExternalController", "subclass_templates": ["PlayerState"]},
    {"name": "CrowdState", "created_class": "State",
     "subclass_templates": ["SystemObjectTemplate", "Board"]},
]  # fmt: skip


def characteristic(state: Any, name: str, which: str) -> Any:
    return state.objects[f"State.{name}"].object_state.characteristics[which]


class CrowdGame(TableGame):
    """The rules: each action moves one token; the game ends after ``game.steps`` moves."""

    template_table = TEMPLATES

    def define_coord_methods(self) -> None:
        # Free for all: the engine never waits for an agent before the player has joined.
        self.coord_method["play"] = Game.MULTIPLAYER_COORDINATION_FREE_FOR_ALL

    def init_state(self, environment: Any) -> Any:
        state = environment.create_object(name="State", template=self.templates["CrowdState"])
        for index in range(self.config.game.get("tokens", 300)):
            token = environment.create_object(
                name=f"token{index}", template=self.templates["Token"], parent=state
            )
            token.object_state.characteristics["Y"].value = index
            state.add_object(token)
        return state

    def play(self, state: Any, actions: dict[str, Any]) -> None:
        for action in actions.values():
            x = characteristic(state, f"token{action.params['token']}", "X")
            x.value = x.value + 1
            moves = characteristic(state, "board", "Moves")
            moves.value = moves.value + 1

    def is_final(self, state: Any) -> bool:
        moves = characteristic(state, "board", "Moves").value
        return bool(moves >= self.config.game.get("steps", 25))


class TokenMover(InterfaceController):
    """The interface's agent, played by a program: moves the tokens in turn."""

    def action_choice(self, observation: Any, agent: Any) -> Any:
        tokens = self.environment.game.config.game.get("tokens", 300)
        action = self.environment.create_action(action_type=MOVE)
        action.add_parameter("token", self.environment.current_step % tokens)
        return action


class CrowdInterface(HeadlessInterface):
    game_class = CrowdGame
    controller_class = TokenMover
