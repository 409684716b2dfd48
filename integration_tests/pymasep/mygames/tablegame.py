"""What the rules of both games share: templates read from a table, one player who joins
from an interface, and states that change only when an agent acts."""

from __future__ import annotations

from typing import Any, ClassVar

from pymasep.common import Game
from pymasep.common.template import Template


class TableGame(Game):
    """A game whose templates are its ``template_table``, whose interface's player is the
    agent ``player0`` (template ``Player``), and whose :meth:`play` applies the actions."""

    template_table: ClassVar[list[dict[str, Any]]] = []
    """The game's templates, as pymasep's template files write them."""

    def add_templates(self) -> None:
        super().add_templates()
        for template in self.template_table:
            self.add_template(Template(self, template))

    def create_external_agent(self, env: Any, external_id: str) -> Any:
        agent = env.create_object(
            name="player0",
            template=self.templates["Player"],
            parent=env.current_state,
            control="interface",
        )
        agent.control = external_id
        return agent

    def next_state(self, current_state: Any, actions: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if not actions:
            return current_state, {"state_changed": False}
        self.play(current_state, actions)
        return current_state, {"state_changed": True}

    def play(self, state: Any, actions: dict[str, Any]) -> None:
        """Apply ``actions`` (agent name: action, never empty) to ``state``, in place."""
        raise NotImplementedError
