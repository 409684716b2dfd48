"""A game engine as pymasep runs one, on pymasep-comm-server alone (plus core).

``python engine.py --interfaces N [options]`` listens (and answers discovery with
``--discovery``), waits for N interfaces to DEFINE the game and REGISTER, then plays:
each step it sends every interface an OBSERVATION (the ``<State>`` element, plus
``additional_information`` with ``reward`` and ``game_log``), waits for the ACTION of
the actor whose turn it is, and at the end sends END_GAME and waits for the interfaces
to QUIT and close. An interface that quits, or whose connection is lost
(``on_disconnect``), leaves the game, which goes on or ends by its rules.

It prints its transcript on stdout, one JSON object per line (``{"event": ...}``); logs
go to stderr. Exit code 0 when the game ran to its end, whoever left.
"""

from __future__ import annotations

import argparse
import hashlib
import queue
import sys
import time
from dataclasses import dataclass
from typing import Any

import rules
from lxml import etree
from process_common import (
    EXIT_LIFETIME,
    LifetimeExceeded,
    digest,
    distributions,
    emit,
    lifetime,
    only_loopback_here,
    threads_left,
)

import pymasep.comm.core
from pymasep.comm.core import (
    CommunicationError,
    DecodeError,
    UnknownConnectionError,
    register_type,
)
from pymasep.communication import Frame, Message, Server, SocketHandlerQueue

# rules.py reads its states and actions with lxml: this application opts in.
Message.lxml_elements = True

for game_class in rules.GAMES.values():
    # The allowlist: a DEFINE message can only name these classes.
    register_type(game_class)

EXIT_SETUP = 4


@dataclass
class Departure:
    """Put on the inbox by :meth:`EngineServer.on_disconnect`."""

    ident: str
    reason: str
    at: float


class EngineServer(Server):
    """A Server that tells the game loop when an interface's connection ends."""

    inbox: queue.Queue[Any]

    def on_disconnect(self, ident: str, reason: str) -> None:
        self.inbox.put(Departure(ident, reason, time.monotonic()))


def padding(step: int, size: int) -> etree._Element:
    """A terrain of ``size`` bytes of text in 1 KiB cells, different at each step."""
    terrain = etree.Element("Terrain", step=str(step))
    for index in range(0, size, 1024):
        seed = hashlib.sha256(f"{step}:{index}".encode()).hexdigest()
        etree.SubElement(terrain, "Cell").text = (seed * 16)[: min(1024, size - index)]
    return terrain


class Engine:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.server: EngineServer | None = None
        self.roles: dict[str, str] = {}
        """Interfaces registered and still here: id -> role."""
        self.game_class: type[rules.TurnGame] | None = None
        self.game: rules.TurnGame | None = None
        self.step = 0
        self.counts = {"sent": 0, "received": 0, "bytes_sent": 0, "bytes_received": 0}
        self.started = time.monotonic()

    # -- messages ----------------------------------------------------------------------

    def send(self, ident: str, msg_type: str, params: dict[str, Any] | None) -> int:
        """Send a message; return its size, or 0 if that interface is gone."""
        assert self.server is not None
        data = Message(msg_type, params, self.server.id).to_bytes()
        try:
            self.server.send_frame_to(ident, Frame(data))
        except (UnknownConnectionError, CommunicationError) as error:
            emit("send_failed", to=ident, msg_type=msg_type, error=str(error))
            return 0
        self.counts["sent"] += 1
        self.counts["bytes_sent"] += len(data)
        return len(data)

    def next_event(self, deadline: float) -> Message | Departure | None:
        """The next message or departure; None at ``deadline``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            item = self.inbox.get(timeout=remaining)
        except queue.Empty:
            return None
        if isinstance(item, Departure):
            return item
        self.counts["received"] += 1
        self.counts["bytes_received"] += len(item)
        message = Message("", None, None)
        try:
            message.from_bytes(item)
        except DecodeError as error:
            emit("undecodable", error=str(error))
            return self.next_event(deadline)
        return message

    # -- setting up --------------------------------------------------------------------

    def setup(self) -> None:
        """Wait for the DEFINE and the REGISTERs of ``--interfaces`` interfaces."""
        assert self.server is not None
        deadline = time.monotonic() + self.args.join_timeout
        while self.game_class is None or len(self.roles) < self.args.interfaces:
            event = self.next_event(deadline)
            if event is None:
                emit("setup_timeout", registered=sorted(self.roles))
                raise SystemExit(EXIT_SETUP)
            if isinstance(event, Departure):
                emit("disconnect", id=event.ident, reason=event.reason, t=event.at)
                self.roles.pop(event.ident, None)
            elif event.msg_type == Message.MESSAGE_TYPE_DEFINE:
                self.define(event)
            elif event.msg_type == Message.MESSAGE_TYPE_REGISTER:
                self.register(event)
            else:
                emit("ignored", msg_type=event.msg_type, source=event.src_sub_app_id)

    def define(self, message: Message) -> None:
        game = (message.params or {}).get("game")
        if not isinstance(game, type) or not issubclass(game, rules.TurnGame):
            emit("bad_define", source=message.src_sub_app_id, game=repr(game))
            return
        if self.game_class is None:
            self.game_class = game
        elif game is not self.game_class:
            emit("conflicting_define", source=message.src_sub_app_id, game=game.__name__)
            return
        name = f"{game.__module__}.{game.__qualname__}"
        emit("define", source=message.src_sub_app_id, game=name)

    def register(self, message: Message) -> None:
        assert self.server is not None
        params = message.params or {}
        ident, role = params.get("id"), params.get("role")
        if (
            not isinstance(ident, str)
            or role not in (rules.ROLE_ACTOR, rules.ROLE_OBSERVER)
            or not self.server.is_connection_registered(ident)
        ):
            emit("bad_register", params=repr(params))
            return
        self.roles[ident] = role
        emit("register", id=ident, role=role, queue_id=params.get("queue_id"))

    # -- playing -----------------------------------------------------------------------

    def broadcast(self, log: str) -> None:
        """Send the current state to every interface still here: one step."""
        assert self.game is not None
        state = self.game.state()
        state.set("step", str(self.step))
        if self.args.pad_bytes:
            state.append(padding(self.step, self.args.pad_bytes))
        sizes = {}
        for ident, role in sorted(self.roles.items()):
            reward = self.game.reward(ident) if role == rules.ROLE_ACTOR else None
            info = {"reward": reward, "game_log": log, "step": self.step}
            params = {"observation": state, "additional_information": info}
            sizes[ident] = self.send(ident, Message.MESSAGE_TYPE_OBSERVATION, params)
        emit(
            "observation",
            step=self.step,
            to_play=self.game.to_play,
            log=log,
            digest=digest(state),
            sizes=sizes,
            picture=self.game.picture(),
            messages=self.counts["sent"] + self.counts["received"],
            bytes=self.counts["bytes_sent"] + self.counts["bytes_received"],
        )

    def depart(self, ident: str, why: str) -> None:
        """An interface quit or its connection ended: take it out of the game."""
        role = self.roles.pop(ident, None)
        emit("left", id=ident, why=why, role=role, step=self.step)
        assert self.game is not None
        if role == rules.ROLE_ACTOR and ident in self.game.players and not self.game.over:
            log = self.game.leave(ident, why)
            self.step += 1
            self.broadcast(log)

    def play(self) -> None:
        assert self.game_class is not None
        actors = sorted(i for i, role in self.roles.items() if role == rules.ROLE_ACTOR)
        self.game = game = self.game_class(actors)
        emit("start_game", game=self.game_class.__name__, players=actors, roles=self.roles)
        self.broadcast(f"{self.game_class.__name__} starts: {', '.join(actors)}")
        while not game.over:
            if self.args.step_delay:
                time.sleep(self.args.step_delay)
            deadline = time.monotonic() + self.args.action_timeout
            event = self.next_event(deadline)
            if event is None:
                assert game.to_play is not None
                emit("action_timeout", id=game.to_play, step=self.step)
                self.depart(game.to_play, "no action in time")
            elif isinstance(event, Departure):
                emit("disconnect", id=event.ident, reason=event.reason, t=event.at)
                if event.ident in self.roles:
                    self.depart(event.ident, event.reason)
            elif event.msg_type == Message.MESSAGE_TYPE_ACTION:
                self.action(event)
            elif event.msg_type == Message.MESSAGE_TYPE_QUIT_GAME:
                emit("quit", id=event.src_sub_app_id, step=self.step)
                self.depart(str(event.src_sub_app_id), "quit")
            else:
                emit("ignored", msg_type=event.msg_type, source=event.src_sub_app_id)
        emit("end", step=self.step, result=game.result, winner=game.winner, scores=game.scores)

    def action(self, message: Message) -> None:
        assert self.game is not None
        source = str(message.src_sub_app_id)
        try:
            action = rules.Action.from_xml((message.params or {}).get("action"))
            log = self.game.play(source, action)
        except rules.IllegalMoveError as error:
            emit("rejected", source=source, step=self.step, error=str(error))
            return
        emit("action", source=source, step=self.step, action=action.as_dict())
        self.step += 1
        self.broadcast(log)

    def finish(self) -> None:
        """END_GAME to everyone left; wait for them to QUIT and close."""
        assert self.server is not None
        for ident in sorted(self.roles):
            self.send(ident, Message.MESSAGE_TYPE_END_GAME, None)
        # Each one's QUIT comes before the end of its connection, in this inbox.
        waiting = set(self.roles) | set(self.server.connection_ids())
        deadline = time.monotonic() + self.args.close_timeout
        while waiting:
            event = self.next_event(deadline)
            if event is None:
                emit("close_timeout", still=sorted(waiting))
                break
            if isinstance(event, Departure):
                emit("disconnect", id=event.ident, reason=event.reason, t=event.at)
                waiting.discard(event.ident)
            elif event.msg_type == Message.MESSAGE_TYPE_QUIT_GAME:
                emit("quit", id=event.src_sub_app_id, step=self.step)
            else:
                emit("ignored", msg_type=event.msg_type, source=event.src_sub_app_id)

    def run(self) -> None:
        args = self.args
        if not args.bind.startswith("127.") and not only_loopback_here():
            raise SystemExit("refusing to listen beyond loopback outside a private namespace")
        if args.discovery and args.discovery_interface is None and not only_loopback_here():
            raise SystemExit("discovery outside a private namespace needs --discovery-interface")
        emit("start", id=args.id, distributions=distributions(), core=pymasep.comm.core.__file__)
        server = EngineServer(
            args.id,
            args.interfaces,
            SocketHandlerQueue,
            (self.inbox,),
            args.bind,
            0,
            wait_announcement=args.discovery,
            discovery_interface=args.discovery_interface,
        )
        server.inbox = self.inbox
        self.server = server
        with server:
            if args.discovery:
                server.wait_announcement()
            server.wait_connection()
            emit("listening", host=args.bind, port=server.port, discovery=args.discovery)
            self.setup()
            server.stop_wait_connection()
            server.stop_wait_announcement()
            self.play()
            self.finish()
        # Closing ran the last on_disconnect callbacks: put them in the transcript.
        while not self.inbox.empty():
            event = self.next_event(time.monotonic() + 0.1)
            if isinstance(event, Departure):
                emit("disconnect", id=event.ident, reason=event.reason, t=event.at)
            elif event is not None:
                emit("after_close", msg_type=event.msg_type, source=event.src_sub_app_id)
        at_close, leftover = threads_left(within=1.0)
        emit(
            "summary",
            steps=self.step,
            seconds=round(time.monotonic() - self.started, 3),
            threads_at_close=at_close,
            threads=leftover,
            **self.counts,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", default="engine")
    parser.add_argument("--interfaces", type=int, required=True, help="interfaces to wait for")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--discovery", action="store_true", help="answer discovery queries")
    parser.add_argument("--discovery-interface", default=None)
    parser.add_argument("--pad-bytes", type=int, default=0, help="terrain added to the state")
    parser.add_argument("--step-delay", type=float, default=0.0, help="seconds between steps")
    parser.add_argument("--join-timeout", type=float, default=20.0)
    parser.add_argument("--action-timeout", type=float, default=10.0)
    parser.add_argument("--close-timeout", type=float, default=5.0)
    parser.add_argument("--lifetime", type=int, default=60, help="seconds before giving up")
    args = parser.parse_args()

    try:
        with lifetime(args.lifetime):
            Engine(args).run()
    except LifetimeExceeded:
        return EXIT_LIFETIME
    emit("exit", code=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
