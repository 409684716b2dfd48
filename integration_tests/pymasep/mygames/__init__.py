"""Two games written the way a pymasep 0.2 user writes them, with pymasep's own API.

Nothing here knows about pymasep-comm: the games run unchanged on pymasep 0.2's own
``pymasep.communication`` and on pymasep-comm's. Only the choice of action is automated
(a controller instead of a human); the interfaces are real pymasep interfaces, pygame
and all, run headless.
"""

from __future__ import annotations

from .crowd import CrowdGame, CrowdInterface
from .duel import DuelGame, DuelInterface

GAMES = {"duel": (DuelGame, DuelInterface), "crowd": (CrowdGame, CrowdInterface)}
"""Game name: (game class, interface class)."""

__all__ = ["GAMES", "CrowdGame", "CrowdInterface", "DuelGame", "DuelInterface"]
