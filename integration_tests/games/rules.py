"""The rules of the games that the game tests and the demo play, shared by both sides.

Deployed as users deploy a game: this file is copied next to ``engine.py`` and next to
``interface.py`` (or loaded from their directory). It needs lxml only, never
pymasep-comm, so the engine (pymasep-comm-server) and the interfaces
(pymasep-comm-client) each load it without the other's package.

As in pymasep, the interface sends the game *class* in its DEFINE message (both sides
``register_type`` the classes of :data:`GAMES`), the engine plays the game and sends
each interface the state as an lxml ``<State>`` element; an interface rebuilds a view of
the game from that element (:meth:`TurnGame.from_state`) and chooses its action from it
alone. Every choice is deterministic, so a game always plays the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lxml import etree

ROLE_ACTOR = "Actor"
"""REGISTER role of an interface that plays (pymasep's ``ConnectedSubAppInfo.ROLE_ACTOR``)."""
ROLE_OBSERVER = "Observer"
"""REGISTER role of an interface that only watches."""


class IllegalMoveError(ValueError):
    """An action the rules do not allow now."""


class Action:
    """What an actor sends in ACTION; like pymasep's Action, it travels as its ``to_xml()``
    and the engine reads the element back with :meth:`from_xml`."""

    def __init__(self, kind: str, **values: int) -> None:
        self.kind = kind
        self.values = values

    def to_xml(self) -> etree._Element:
        return etree.Element(
            "Action", {"type": self.kind, **{k: str(v) for k, v in self.values.items()}}
        )

    @classmethod
    def from_xml(cls, element: Any) -> Action:
        if not isinstance(element, etree._Element) or element.tag != "Action":
            raise IllegalMoveError(f"not an <Action> element: {element!r}")
        values = {str(key): int(value) for key, value in element.attrib.items() if key != "type"}
        return cls(str(element.get("type", "")), **values)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **self.values}


class TurnGame:
    """A turn-based game between actors identified by their interface ids."""

    MIN_PLAYERS: ClassVar[int] = 1
    MAX_PLAYERS: ClassVar[int] = 8

    def __init__(self, players: list[str]) -> None:
        if not self.MIN_PLAYERS <= len(players) <= self.MAX_PLAYERS:
            raise ValueError(
                f"{type(self).__name__} needs {self.MIN_PLAYERS} to {self.MAX_PLAYERS} "
                f"players, not {len(players)}"
            )
        self.players = list(players)
        """Players still in the game, in turn order."""
        self.seats = list(players)
        """Every player the game started with."""
        self.turn = 0
        """Moves played so far."""
        self.to_play: str | None = self.players[0]
        self.over = False
        self.winner: str | None = None
        self.result = ""
        self.scores: dict[str, float] = dict.fromkeys(players, 0.0)

    # -- the engine's side -------------------------------------------------------------

    def play(self, player: str, action: Action) -> str:
        """Apply ``player``'s action; return the game log line. Raise IllegalMoveError."""
        if self.over:
            raise IllegalMoveError("the game is over")
        if player != self.to_play:
            raise IllegalMoveError(f"it is {self.to_play}'s turn, not {player}'s")
        log = self._apply(player, action)
        self.turn += 1
        if not self.over:
            self._pass_turn(player)
        return log

    def leave(self, player: str, why: str) -> str:
        """``player`` left the game (quit, or its interface is gone); return the log line."""
        if player not in self.players or self.over:
            return f"{player} left ({why})"
        position = self.players.index(player)
        self.players.remove(player)
        log = f"{player} left ({why})"
        if not self.players:
            self.over, self.to_play, self.result = True, None, "everybody left"
            return log + ": nobody is left, the game ends"
        extra = self._on_leave(player)
        if not self.over and self.to_play == player:
            self.to_play = self.players[position % len(self.players)]
        return log + extra

    def _pass_turn(self, player: str) -> None:
        index = self.players.index(player)
        self.to_play = self.players[(index + 1) % len(self.players)]

    def reward(self, player: str) -> float:
        return self.scores.get(player, 0.0)

    def state(self) -> etree._Element:
        """The whole state as pymasep sends it: an lxml ``<State>`` element."""
        state = etree.Element(
            "State",
            game=type(self).__name__,
            turn=str(self.turn),
            to_play=self.to_play or "",
            over="true" if self.over else "false",
            winner=self.winner or "",
            result=self.result,
        )
        for seat in self.seats:
            present = "true" if seat in self.players else "false"
            attributes = {"id": seat, "present": present, **self._player_attributes(seat)}
            etree.SubElement(state, "Player", attrib=attributes)
        self._write_board(state)
        return state

    # -- the interface's side ----------------------------------------------------------

    @classmethod
    def from_state(cls, state: etree._Element) -> TurnGame:
        """Rebuild a view of the game from a ``<State>`` element."""
        if state.get("game") != cls.__name__:
            raise ValueError(f"a {state.get('game')} state is not a {cls.__name__} state")
        game = cls.__new__(cls)
        game.seats = [p.get("id", "") for p in state.iter("Player")]
        game.players = [p.get("id", "") for p in state.iter("Player") if p.get("present") == "true"]
        game.turn = int(state.get("turn", "0"))
        game.to_play = state.get("to_play") or None
        game.over = state.get("over") == "true"
        game.winner = state.get("winner") or None
        game.result = state.get("result", "")
        game.scores = {p.get("id", ""): float(p.get("score", "0")) for p in state.iter("Player")}
        game._read(state)
        return game

    def choose(self, me: str) -> Action:
        """The action ``me`` plays now (deterministic)."""
        raise NotImplementedError

    def choose_otherwise(self, me: str, usual: Action) -> Action:
        """A legal action other than ``usual`` when there is one (another policy)."""
        raise NotImplementedError

    def picture(self) -> list[str]:
        """The board as a few lines of text, for people to read."""
        raise NotImplementedError

    # -- what each game defines --------------------------------------------------------

    def _apply(self, player: str, action: Action) -> str:
        raise NotImplementedError

    def _on_leave(self, player: str) -> str:
        return ""

    def _player_attributes(self, player: str) -> dict[str, str]:
        return {}

    def _write_board(self, state: etree._Element) -> None:
        pass

    def _read(self, state: etree._Element) -> None:
        pass


class TicTacToe(TurnGame):
    """Noughts and crosses: the first player is X. A player who leaves forfeits."""

    MIN_PLAYERS = 2
    MAX_PLAYERS = 2
    LINES = (
        (0, 1, 2), (3, 4, 5), (6, 7, 8),
        (0, 3, 6), (1, 4, 7), (2, 5, 8),
        (0, 4, 8), (2, 4, 6),
    )  # fmt: skip
    PREFERENCE = (4, 0, 2, 6, 8, 1, 3, 5, 7)  # centre, corners, edges

    def __init__(self, players: list[str]) -> None:
        super().__init__(players)
        self.board = ["."] * 9
        self.marks = dict(zip(players, "XO", strict=True))

    def _apply(self, player: str, action: Action) -> str:
        cell = action.values.get("cell", -1)
        if action.kind != "mark" or not 0 <= cell < 9:
            raise IllegalMoveError(f"{action.as_dict()} is not a move of TicTacToe")
        if self.board[cell] != ".":
            raise IllegalMoveError(f"cell {cell} is taken")
        mark = self.marks[player]
        self.board[cell] = mark
        log = f"{player} ({mark}) marks cell {cell}"
        if self._line_of(mark):
            other = next(p for p in self.seats if p != player)
            self._finish(player, other, f"{player} wins with three in a row")
            return log + f": three in a row, {player} wins"
        if "." not in self.board:
            self.over, self.to_play, self.result = True, None, "draw"
            return log + ": the board is full, a draw"
        return log

    def _on_leave(self, player: str) -> str:
        other = self.players[0]
        self._finish(other, player, f"{other} wins by forfeit")
        return f": {other} wins by forfeit"

    def _finish(self, winner: str, loser: str, result: str) -> None:
        self.over, self.to_play, self.winner, self.result = True, None, winner, result
        self.scores[winner], self.scores[loser] = 1.0, -1.0

    def _line_of(self, mark: str) -> bool:
        return any(all(self.board[i] == mark for i in line) for line in self.LINES)

    def _player_attributes(self, player: str) -> dict[str, str]:
        return {"mark": self.marks[player], "score": repr(self.scores[player])}

    def _write_board(self, state: etree._Element) -> None:
        etree.SubElement(state, "Board").text = "".join(self.board)

    def _read(self, state: etree._Element) -> None:
        self.board = list(state.findtext("Board", "." * 9))
        self.marks = {p.get("id", ""): p.get("mark", "?") for p in state.iter("Player")}

    def choose(self, me: str) -> Action:
        mine = self.marks[me]
        theirs = "O" if mine == "X" else "X"
        for mark in (mine, theirs):  # win if possible, else block
            for line in self.LINES:
                cells = [self.board[i] for i in line]
                if cells.count(mark) == 2 and cells.count(".") == 1:
                    return Action("mark", cell=line[cells.index(".")])
        return Action("mark", cell=next(i for i in self.PREFERENCE if self.board[i] == "."))

    def choose_otherwise(self, me: str, usual: Action) -> Action:
        free = [i for i in reversed(range(9)) if self.board[i] == "."]
        other = [i for i in free if i != usual.values.get("cell")]
        return Action("mark", cell=(other or free)[0])

    def picture(self) -> list[str]:
        return [" ".join(self.board[row * 3 : row * 3 + 3]) for row in range(3)]


class Race(TurnGame):
    """A race along a track of :attr:`LENGTH` cells: each turn a player moves 1 to 3
    cells; landing on another player sends that one back to the start. The first past
    the end wins; a player who leaves is taken off the track and the race goes on."""

    LENGTH = 12
    MAX_TURNS = 60

    def __init__(self, players: list[str]) -> None:
        super().__init__(players)
        self.positions = dict.fromkeys(players, 0)

    def _apply(self, player: str, action: Action) -> str:
        steps = action.values.get("steps", 0)
        if action.kind != "move" or not 1 <= steps <= 3:
            raise IllegalMoveError(f"{action.as_dict()} is not a move of Race")
        target = self.positions[player] + steps
        self.positions[player] = min(target, self.LENGTH)
        log = f"{player} moves {steps} to {self.positions[player]}"
        self.scores[player] += steps / self.LENGTH
        if target >= self.LENGTH:
            self.over, self.to_play, self.winner = True, None, player
            self.result = f"{player} wins the race"
            self.scores[player] += 1.0
            return log + f": {player} crosses the line and wins"
        for other in self.players:
            if other != player and self.positions[other] == target:
                self.positions[other] = 0
                log += f", {other} is sent back to the start"
        if self.turn + 1 >= self.MAX_TURNS:
            self.over, self.to_play, self.result = True, None, "out of turns"
        return log

    def _player_attributes(self, player: str) -> dict[str, str]:
        return {"position": str(self.positions[player]), "score": repr(self.scores[player])}

    def _read(self, state: etree._Element) -> None:
        players = state.iter("Player")
        self.positions = {p.get("id", ""): int(p.get("position", "0")) for p in players}

    def choose(self, me: str) -> Action:
        here = self.positions[me]
        taken = {self.positions[p] for p in self.players if p != me}
        for steps in (3, 2, 1):  # cross the line, else run as far as a free cell
            if here + steps >= self.LENGTH or here + steps not in taken:
                return Action("move", steps=steps)
        return Action("move", steps=1)

    def choose_otherwise(self, me: str, usual: Action) -> Action:
        return Action("move", steps=2 if usual.values.get("steps") == 1 else 1)

    def picture(self) -> list[str]:
        lines = []
        for seat in self.seats:
            track = ["."] * (self.LENGTH + 1)
            if seat in self.players:
                track[self.positions[seat]] = "@"
            lines.append(f"|{''.join(track)}| {seat}")
        return lines


GAMES: dict[str, type[TurnGame]] = {cls.__name__: cls for cls in (TicTacToe, Race)}
"""The games an interface may DEFINE: both sides register exactly these classes."""
