"""A game interface as pymasep runs one, on pymasep-comm-client alone (plus core).

``python interface.py --id ID --role Actor|Observer --game NAME`` connects to the engine
at ``--host``/``--port`` or, without ``--host``, finds it by discovery (``--engine-id``
picks one engine, ``--discovery-interface`` the interface to query on, required unless
``lo`` is the only interface; retried for ``--discover-timeout`` seconds), sends DEFINE
(``{'game': <the game class>}``) and REGISTER (``id``, ``queue_id``, ``role``), then
reads OBSERVATIONs; an actor answers ACTION when the state says it is its turn. On
END_GAME it sends QUIT_GAME, then bye, and closes, as pymasep's interface does.
``--quit-at-step K`` leaves early the same way at step K; ``--stall-at-step K`` stops
answering at step K (for a test to kill it); ``--change-policy-at-step K`` plays another
legal action than the usual one from step K on (an agent whose policy changed, for the
replay tests). ``--lifetime`` bounds the whole run.

It prints its transcript on stdout, one JSON object per line (``{"event": ...}``).
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
import time
from typing import Any

import rules
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
from pymasep.comm.core import CommunicationError, ServerNotFoundError, register_type
from pymasep.communication import Client, Frame, Message, SocketHandlerQueue

# rules.py reads its states and actions with lxml: this application opts in.
Message.lxml_elements = True

for game_class in rules.GAMES.values():
    register_type(game_class)

EXIT_NOT_FOUND = 4
EXIT_ENGINE_GONE = 5
QUEUE_ID = 1  # pymasep's id of the queue the interface receives on


class EngineGone:
    """Put on the inbox when the connection to the engine ends."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class InterfaceClient(Client):
    inbox: queue.Queue[Any]

    def on_disconnect(self, ident: str, reason: str) -> None:
        self.inbox.put(EngineGone(reason))


class Interface:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.game_class = rules.GAMES[args.game]
        self.counts = {"sent": 0, "received": 0, "bytes_sent": 0, "bytes_received": 0}
        self.client: InterfaceClient | None = None

    def send(self, msg_type: str, params: dict[str, Any] | None) -> None:
        client = self.client
        assert client is not None and client.server_id is not None
        data = Message(msg_type, params, client.id).to_bytes()
        client.send_frame_to(client.server_id, Frame(data))
        self.counts["sent"] += 1
        self.counts["bytes_sent"] += len(data)

    def find_engine(self, client: InterfaceClient) -> None:
        """Discovery, retried until ``--discover-timeout`` (the engine may start late)."""
        started = time.monotonic()
        deadline = started + self.args.discover_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                servers = client.search_server(timeout=0.5, server_id=self.args.engine_id)
                break
            except ServerNotFoundError as error:
                if time.monotonic() >= deadline:
                    emit("not_found", attempts=attempt, error=str(error))
                    raise SystemExit(EXIT_NOT_FOUND) from None
        emit(
            "found",
            host=client.host,
            port=client.port,
            servers=[server.id for server in servers],
            attempts=attempt,
            seconds=round(time.monotonic() - started, 3),
        )

    def leave(self, why: str) -> None:
        """QUIT_GAME, then bye (pymasep's interface does both), then close."""
        client = self.client
        assert client is not None and client.server_id is not None
        self.send(Message.MESSAGE_TYPE_QUIT_GAME, None)
        client.send_frame_to(client.server_id, Frame.bye_frame())
        emit("quit", why=why)

    def run(self) -> int:
        args = self.args
        if args.host is None and args.discovery_interface is None and not only_loopback_here():
            raise SystemExit("discovery outside a private namespace needs --discovery-interface")
        emit(
            "start",
            id=args.id,
            role=args.role,
            distributions=distributions(),
            core=pymasep.comm.core.__file__,
        )
        client = InterfaceClient(
            args.id,
            SocketHandlerQueue,
            (self.inbox,),
            args.host,
            args.port,
            discovery_interface=args.discovery_interface,
        )
        client.inbox = self.inbox
        self.client = client
        code = 0
        with client:
            if args.host is None:
                self.find_engine(client)
            client.connect(timeout=10)
            emit("connected", server_id=client.server_id, host=client.host, port=client.port)
            self.send(Message.MESSAGE_TYPE_DEFINE, {"game": self.game_class})
            self.send(
                Message.MESSAGE_TYPE_REGISTER,
                {"id": client.id, "queue_id": QUEUE_ID, "role": args.role},
            )
            code = self.loop()
        at_close, leftover = threads_left(within=1.0)
        emit("summary", threads_at_close=at_close, threads=leftover, **self.counts)
        return code

    def loop(self) -> int:
        args = self.args
        while True:
            item = self.inbox.get()  # the lifetime alarm bounds this wait
            if isinstance(item, EngineGone):
                emit("engine_gone", reason=item.reason)
                return EXIT_ENGINE_GONE
            self.counts["received"] += 1
            self.counts["bytes_received"] += len(item)
            message = Message("", None, None)
            message.from_bytes(item)
            if message.msg_type == Message.MESSAGE_TYPE_END_GAME:
                emit("end_game", params=message.params)
                self.leave("end of the game")
                return 0
            if message.msg_type != Message.MESSAGE_TYPE_OBSERVATION:
                emit("unexpected", msg_type=message.msg_type)
                continue
            params = message.params or {}
            state = params["observation"]
            info = params["additional_information"]
            step = int(state.get("step"))
            game = self.game_class.from_state(state)
            emit(
                "observation",
                step=step,
                to_play=game.to_play,
                log=info["game_log"],
                reward=info["reward"],
                digest=digest(state),
                bytes=len(item),
                element=type(state).__module__ + "." + type(state).__name__,
            )
            if args.quit_at_step is not None and step >= args.quit_at_step:
                self.leave(f"leaving at step {step}")
                return 0
            if args.stall_at_step is not None and step >= args.stall_at_step:
                emit("stalled", step=step)
                signal.pause()  # until killed, or the lifetime alarm
            if args.role == rules.ROLE_ACTOR and game.to_play == args.id and not game.over:
                action = game.choose(args.id)
                if args.change_policy_at_step is not None and step >= args.change_policy_at_step:
                    action = game.choose_otherwise(args.id, action)
                self.send(Message.MESSAGE_TYPE_ACTION, {"action": action})
                emit("action", step=step, action=action.as_dict())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", required=True)
    parser.add_argument("--role", choices=(rules.ROLE_ACTOR, rules.ROLE_OBSERVER), required=True)
    parser.add_argument("--game", choices=sorted(rules.GAMES), required=True)
    parser.add_argument("--host", default=None, help="the engine's address (else discovery)")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--engine-id", default=None, help="with discovery: the engine to join")
    parser.add_argument("--discovery-interface", default=None)
    parser.add_argument("--discover-timeout", type=float, default=10.0)
    parser.add_argument("--quit-at-step", type=int, default=None)
    parser.add_argument("--stall-at-step", type=int, default=None)
    parser.add_argument("--change-policy-at-step", type=int, default=None)
    parser.add_argument("--lifetime", type=int, default=60, help="seconds before giving up")
    args = parser.parse_args()

    try:
        with lifetime(args.lifetime):
            code = Interface(args).run()
    except LifetimeExceeded:
        return EXIT_LIFETIME
    except CommunicationError as error:
        emit("communication_error", error=f"{type(error).__name__}: {error}")
        return 1
    emit("exit", code=code)
    return code


if __name__ == "__main__":
    sys.exit(main())
