"""The engine of the getting-started example: ``python engine.py [PORT]``.

It answers discovery queries, accepts one interface, creates the game that the interface
DEFINEs, and plays it: an OBSERVATION for each ACTION, until END_GAME.
"""

from __future__ import annotations

import queue
import sys
from typing import Any

from guess_game import GuessTheNumber

from pymasep.comm.core import register_type
from pymasep.communication import Frame, Message, Server, SocketHandlerQueue

# DEFINE carries the game class. Decoding a class needs it registered: a message can
# only name the classes the engine allows.
register_type(GuessTheNumber)


def receive(inbox: queue.Queue[bytes], *msg_types: str) -> Message:
    """Wait for the next message of one of these types (a minute at most)."""
    while True:
        message = Message("", None, None)
        message.from_bytes(inbox.get(timeout=60))
        if message.msg_type in msg_types:
            return message


def send(engine: Server, ident: str, msg_type: str, params: dict[str, Any] | None) -> None:
    message = Message(msg_type, params, engine.id)
    engine.send_frame_to(ident, Frame(message.to_bytes()))


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 60000
    inbox: queue.Queue[bytes] = queue.Queue()
    # One interface at most; "" listens on every IPv4 address.
    with Server(
        "engine", 1, SocketHandlerQueue, (inbox,), "", port, wait_announcement=True
    ) as engine:
        engine.wait_announcement()  # answer discovery queries
        engine.wait_connection()  # accept interfaces
        print(f"engine: listening on port {engine.port}", flush=True)

        game = receive(inbox, Message.MESSAGE_TYPE_DEFINE).params["game"]()
        player = receive(inbox, Message.MESSAGE_TYPE_REGISTER).params["id"]
        print(f"engine: {player} plays {type(game).__name__}")

        log = "go"
        while not game.over:
            info = {"game_log": log}
            params = {"observation": game.observation(), "additional_information": info}
            send(engine, player, Message.MESSAGE_TYPE_OBSERVATION, params)
            action = receive(inbox, Message.MESSAGE_TYPE_ACTION, Message.MESSAGE_TYPE_QUIT_GAME)
            if action.msg_type == Message.MESSAGE_TYPE_QUIT_GAME:
                print(f"engine: {player} quit")
                return
            log = game.play(action.params["action"]["guess"])
            print(f"engine: {log}")

        send(engine, player, Message.MESSAGE_TYPE_END_GAME, None)
        receive(inbox, Message.MESSAGE_TYPE_QUIT_GAME)
    # Leaving the with block closed the connection and freed the port.


if __name__ == "__main__":
    main()
