"""An engine that trusts each Message's sender only as far as the connection proves it:
``python trusted_engine.py`` (everything on loopback, in one process).

Each interface holds its own key, so the server knows which id each connection proved.
:class:`~pymasep.comm.core.SocketHandlerPeerQueue` hands the engine that id with each
frame; the engine drops a Message whose ``src_sub_app_id`` says otherwise.
"""

from __future__ import annotations

import queue
import secrets

from pymasep.comm.client import Client
from pymasep.comm.core import Frame, Message, SocketHandlerPeerQueue, SocketHandlerQueue
from pymasep.comm.server import Server

KEYS = {"player-1": secrets.token_bytes(32), "player-2": secrets.token_bytes(32)}


def next_trusted(inbox: queue.Queue[tuple[str, bytes]]) -> Message | None:
    """The next Message, or None if it was dropped: its sender claims another id."""
    peer_id, payload = inbox.get(timeout=10)
    message = Message("", None, None)
    message.from_bytes(payload)
    if message.src_sub_app_id != peer_id:
        print(f"dropped: {peer_id} sent a message as {message.src_sub_app_id}")
        return None
    return message


def main() -> None:
    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
    with Server(
        "engine", 2, SocketHandlerPeerQueue, (inbox,), "127.0.0.1", 0, authkey=KEYS
    ) as engine:
        engine.wait_connection()
        interfaces = []
        for ident in KEYS:
            interface = Client(
                ident,
                SocketHandlerQueue,
                (queue.Queue(),),
                "127.0.0.1",
                engine.port,
                authkey=KEYS[ident],
            )
            interface.connect()
            interfaces.append(interface)
        honest, cheater = interfaces
        move = Message(Message.MESSAGE_TYPE_ACTION, {"move": "north"}, "player-1")
        honest.send_frame_to("engine", Frame(move.to_bytes()))
        forged = Message(Message.MESSAGE_TYPE_ACTION, {"move": "resign"}, "player-1")
        cheater.send_frame_to("engine", Frame(forged.to_bytes()))
        for _ in range(2):
            message = next_trusted(inbox)
            if message is not None:
                print(f"accepted: {message.src_sub_app_id} {message.params}")
        for interface in interfaces:
            interface.close()


if __name__ == "__main__":
    main()
