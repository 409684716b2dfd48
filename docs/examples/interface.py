"""A player for the getting-started example: ``python interface.py [HOST PORT]``.

Without HOST and PORT, it finds the engine by discovery. It DEFINEs the game, REGISTERs,
then answers each OBSERVATION with an ACTION until END_GAME, and QUITs.
"""

from __future__ import annotations

import queue
import sys
from typing import Any

from guess_game import GuessTheNumber

from pymasep.communication import Client, Frame, Message, SocketHandlerQueue


def send(interface: Client, msg_type: str, params: dict[str, Any] | None) -> None:
    assert interface.server_id is not None  # set by connect()
    message = Message(msg_type, params, interface.id)
    interface.send_frame_to(interface.server_id, Frame(message.to_bytes()))


def main() -> None:
    host, port = (sys.argv[1], int(sys.argv[2])) if len(sys.argv) > 2 else (None, None)
    inbox: queue.Queue[bytes] = queue.Queue()
    with Client("player-1", SocketHandlerQueue, (inbox,), host, port) as interface:
        interface.connect()  # without host and port, searches the engine first
        print(f"player-1: connected to {interface.server_id} at {interface.host}:{interface.port}")

        send(interface, Message.MESSAGE_TYPE_DEFINE, {"game": GuessTheNumber})
        # queue_id: pymasep's id of the queue this interface receives on.
        register = {"id": interface.id, "queue_id": 1, "role": "actor"}
        send(interface, Message.MESSAGE_TYPE_REGISTER, register)

        while True:
            message = Message("", None, None)
            message.from_bytes(inbox.get(timeout=60))
            if message.msg_type == Message.MESSAGE_TYPE_END_GAME:
                print("player-1: the game is over")
                break
            if message.msg_type == Message.MESSAGE_TYPE_OBSERVATION:
                seen = message.params["observation"]
                print(f"player-1: {message.params['additional_information']['game_log']}")
                guess = (seen["low"] + seen["high"]) // 2
                send(interface, Message.MESSAGE_TYPE_ACTION, {"action": {"guess": guess}})

        send(interface, Message.MESSAGE_TYPE_QUIT_GAME, None)
    # Leaving the with block sent what was queued, then closed the connection.


if __name__ == "__main__":
    main()
