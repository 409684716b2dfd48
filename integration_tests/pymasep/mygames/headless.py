"""An interface that plays by itself: the part both games share.

A pymasep interface draws the state and turns the player's clicks into actions; here a
controller chooses the action instead, and the state records each observation it gets
(printed on stdout, one line each, for the test to count).
"""

from __future__ import annotations

import time
from typing import Any

from pymasep.application import ConnectedSubAppInfo
from pymasep.interface import Interface, InterfaceState


class PlayState(InterfaceState):
    """The one screen of the games: records observations; ``slow`` seconds per frame."""

    def __init__(self, sub_application: Any, slow: float) -> None:
        super().__init__(sub_application)
        self.slow = slow
        self.steps: list[int] = []

    def handle_event(self, event: Any) -> None:
        pass  # no player: nothing to click

    def on_receive_observation(self) -> None:
        step = self.sub_application.environment.current_step
        self.steps.append(step)
        print(f"observation {step}", flush=True)

    def render(self, time_delta: float) -> None:
        if self.slow:
            time.sleep(self.slow)  # stands for a heavy frame: the interface lags behind


class HeadlessInterface(Interface):
    """A pymasep interface for ``game_class`` whose agent is played by ``controller_class``."""

    game_class: Any = None
    controller_class: Any = None
    slow = 0.0  # seconds each frame takes; the launch script sets it
    fixed_id: str | None = None  # the launch script's --id

    # pymasep 0.2 names every sub-application with a random id (uuid4), and its
    # interface connects within its constructor: per-interface keys need an id the
    # engine's keys file can name, so this interface keeps the one it is given.
    @property
    def id(self) -> str:
        return self._id

    @id.setter
    def id(self, value: str) -> None:
        self._id = self.fixed_id or value

    def __init__(
        self,
        app: Any,
        received_q_id: int,
        cfg: Any,
        remote_engine_host: str | None = None,
        remote_engine_port: int | None = None,
        search_remote: bool = False,
    ) -> None:
        super().__init__(
            app=app,
            received_q_id=received_q_id,
            cfg=cfg,
            game_class_=self.game_class,
            interface_role=ConnectedSubAppInfo.ROLE_ACTOR,
            remote_engine_host=remote_engine_host,
            remote_engine_port=remote_engine_port,
            search_remote=search_remote,
        )
        self.controller_interface_class_ = self.controller_class
        self.play_state: PlayState | None = None

    def init_game(self) -> None:
        super().init_game()
        self.play_state = PlayState(self, self.slow)
        self.push_state(self.play_state)
