"""The game of the getting-started example, imported by both the engine and the interface.

The interface names the game in its DEFINE message by sending this class; the engine
creates the game from it.
"""

from __future__ import annotations

import random


class GuessTheNumber:
    """Find a secret number between 1 and 100; each guess narrows the range."""

    def __init__(self, secret: int | None = None) -> None:
        self.secret = random.randint(1, 100) if secret is None else secret
        self.low, self.high = 1, 100
        self.tries = 0
        self.over = False

    def observation(self) -> dict[str, int]:
        """What a player sees: the range the secret is in, and the tries so far."""
        return {"low": self.low, "high": self.high, "tries": self.tries}

    def play(self, guess: int) -> str:
        """Apply a guess; return what happened, for the game log."""
        self.tries += 1
        if guess < self.secret:
            self.low = max(self.low, guess + 1)
            return f"{guess} is too low"
        if guess > self.secret:
            self.high = min(self.high, guess - 1)
            return f"{guess} is too high"
        self.over = True
        return f"{guess} found in {self.tries} tries"
