"""One peer of the soak run, in its own process: ``python peer.py ROLE ...``.

Roles:

* ``player``: an interface (``Client``) that answers every observation with an action
  carrying the observation's step, and checks that the steps arrive one after the
  other. ``--leave-after N`` makes it leave (close) after N observations: churn.
* ``players``: several players in this one process (``--ids h00,c08,...``), each on a
  thread of its own; a churning one (id ``c*``) leaves after a random number of
  observations and joins again, as a new ``Client`` under the same id, until the game
  ends or time runs out.
* ``stalled``: completes the handshake, then never reads again, with a receive buffer
  made small so that the engine's side of the connection fills up at once.
* ``garbage``: opens connection after connection and sends what no interface sends:
  random bytes, wrong preambles, an HTTP request, oversized or broken frames after a
  valid handshake, or nothing at all.

Each writes a JSON report to ``--report`` when it ends by itself (a killed one does
not). Every loop is bounded by ``--max-seconds``, whatever the engine does.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from soakanalysis import FrameOrder

from pymasep.comm.client import Client
from pymasep.comm.core import (
    CommunicationError,
    DecodeError,
    Frame,
    Message,
    SocketHandler,
)
from pymasep.comm.core.frame import FrameKind
from pymasep.comm.core.handshake import ClientHandshake
from pymasep.comm.core.wire import PREAMBLE, encode_frame

HOST = "127.0.0.1"


class PlayerState:
    """What the player's handler thread and its main thread share."""

    def __init__(self, ident: str, leave_after: int | None, room: Room | None = None) -> None:
        self.ident = ident
        self.leave_after = leave_after
        self.order = FrameOrder()
        self.decode_errors = 0
        self.done = threading.Event()
        self.why = ""
        self.room = room


class Room:
    """The players of one process: once one hears the game end, all of them stop, and a
    churning one that left does not join again (the engine sends the end only to the
    interfaces connected then)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.over = False
        self.playing: set[PlayerState] = set()

    def join(self, state: PlayerState) -> bool:
        """Count ``state`` in; False once the game is over."""
        with self.lock:
            if not self.over:
                self.playing.add(state)
            return not self.over

    def leave(self, state: PlayerState) -> None:
        with self.lock:
            self.playing.discard(state)

    def end(self) -> None:
        with self.lock:
            self.over = True
            for state in self.playing:
                state.why = state.why or "the game ended"
                state.done.set()


class Player(SocketHandler):
    """Answers each observation with an action naming its step."""

    def __init__(self, conn: socket.socket, addr: Any, logger: Any, state: PlayerState) -> None:
        super().__init__(conn, addr, logger)
        self.state = state

    def on_receive(self, frame: Frame) -> None:
        state = self.state
        message = Message("", None, None)
        try:
            message.from_bytes(frame.message)
        except DecodeError:
            state.decode_errors += 1
            return
        if message.msg_type == Message.MESSAGE_TYPE_END_GAME:
            state.why = "the game ended"
            state.done.set()
            if state.room is not None:
                state.room.end()
            return
        assert message.params is not None
        step = message.params["step"]
        state.order.add(step)
        action = Message(Message.MESSAGE_TYPE_ACTION, {"step": step}, state.ident)
        try:
            self.send_frame_async(Frame(action.to_bytes()))
        except CommunicationError:
            return  # closing
        if state.leave_after is not None and state.order.received >= state.leave_after:
            state.why = "left (churn)"
            state.done.set()

    def on_disconnect(self, reason: str) -> None:
        if not self.state.done.is_set():
            self.state.why = f"disconnected: {reason}"
            self.state.done.set()


def connect(client: Client, deadline: float) -> int:
    """Connect, retrying while the engine still holds this id's previous connection
    (a killed or departed predecessor it has not noticed yet); return the attempts."""
    attempts = 0
    while True:
        attempts += 1
        try:
            client.connect(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            return attempts
        except CommunicationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05 * min(attempts, 10))  # back off: not synchronisation


def play_once(
    ident: str, leave_after: int | None, port: int, deadline: float, room: Room | None = None
) -> dict[str, Any] | None:
    """Join as ``ident``, play until the game ends, this player leaves, or ``deadline``;
    return what it saw (None: the game was over before it joined)."""
    state = PlayerState(ident, leave_after, room)
    if room is not None and not room.join(state):
        return None
    client = Client(ident, Player, (state,), HOST, port)
    try:
        attempts = connect(client, deadline)
        state.done.wait(max(0.0, deadline - time.monotonic()))
    finally:
        client.close()
        if room is not None:
            room.leave(state)
    return {
        "role": "player",
        "id": ident,
        "connect_attempts": attempts,
        "received": state.order.received,
        "losses": state.order.losses[:10],
        "reorders": state.order.reorders[:10],
        "decode_errors": state.decode_errors,
        "ended": state.why or "timed out",
    }


def play(options: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + options.max_seconds
    result = play_once(options.id, options.leave_after, options.port, deadline)
    assert result is not None  # with no room, it always plays
    return result


def play_many(options: argparse.Namespace) -> dict[str, Any]:
    """Several players in this process, each on its own thread; churning ones rejoin."""
    deadline = time.monotonic() + options.max_seconds
    lock = threading.Lock()
    room = Room()
    results: list[dict[str, Any]] = []
    rejoins = [0]

    def player(ident: str) -> None:
        rng = random.Random(f"{options.seed}-{ident}")
        while time.monotonic() < deadline:
            leave = rng.randrange(25, 250) if ident.startswith("c") else None
            try:
                result = play_once(ident, leave, options.port, deadline, room)
            except Exception:
                result = {"role": "player", "id": ident, "error": traceback.format_exc()}
            if result is None:
                return
            with lock:
                results.append(result)
                if result.get("ended") != "left (churn)":
                    return
                rejoins[0] += 1

    threads = [threading.Thread(target=player, args=(ident,)) for ident in options.ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()  # each bounded by the deadline (connect and play both are)
    return {"role": "players", "players": results, "rejoins": rejoins[0]}


def stall(options: argparse.Namespace) -> dict[str, Any]:
    """Complete a v1 handshake by hand, then read nothing until killed or out of time."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((HOST, options.port))
    handshake = ClientHandshake(options.id)
    sock.sendall(handshake.bytes_to_send())
    while not handshake.receive_data(sock.recv(4096)):
        pass
    # Not reading: the engine's frames pile up in its own memory (or, once it
    # disconnects slow consumers, it closes this connection).
    time.sleep(max(0.0, options.max_seconds))
    sock.close()
    return {"role": "stalled", "id": options.id}


def _attacks(rng: random.Random, ident: str) -> list[tuple[str, bytes, bool]]:
    """Each as (name, bytes to send, whether to hold the connection open silently)."""
    hello = ClientHandshake(ident).bytes_to_send()
    garbage = rng.randbytes(rng.randrange(1, 2048))
    return [
        ("random bytes", garbage, False),
        ("wrong version", PREAMBLE[:4] + b"\x07" + garbage, False),
        ("http", b"GET / HTTP/1.1\r\nHost: engine\r\n\r\n", False),
        ("legacy hello, then garbage", b"\x05\x00" + b"g-old" + garbage, False),
        ("oversized hello", PREAMBLE + encode_frame(Frame(b"x" * 8000, FrameKind.HELLO)), False),
        ("half a hello, then silence", hello[: rng.randrange(1, len(hello))], True),
        ("unknown frame kind", hello + b"\x09\0\0\0\x04abcd", False),
        ("not a message", hello + encode_frame(Frame(garbage)), False),
        ("huge frame header", hello + b"\0\xff\xff\xff\xff", False),
        ("bye at once", hello + encode_frame(Frame.bye_frame()), False),
    ]


def spray(options: argparse.Namespace) -> dict[str, Any]:
    """Attack the engine again and again until out of time; count what was sent."""
    rng = random.Random(options.seed)
    deadline = time.monotonic() + options.max_seconds
    counts: dict[str, int] = {}
    silent: list[socket.socket] = []
    number = 0
    while time.monotonic() < deadline and number < 100_000:
        number += 1
        name, data, hold = rng.choice(_attacks(rng, f"g{number}"))
        try:
            sock = socket.create_connection((HOST, options.port), timeout=2)
            sock.sendall(data)
        except OSError:
            counts["refused or reset"] = counts.get("refused or reset", 0) + 1
            continue
        counts[name] = counts.get(name, 0) + 1
        if hold and len(silent) < 8:
            silent.append(sock)  # the engine's handshake deadline must close it
        else:
            sock.close()
        if len(silent) >= 8:
            for held in silent:
                held.close()
            silent.clear()
        time.sleep(rng.uniform(0.02, 0.1))  # pace the attacks: not synchronisation
    for held in silent:
        held.close()
    return {"role": "garbage", "attacks": counts}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("player", "players", "stalled", "garbage"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--id", default="peer")
    parser.add_argument(
        "--ids", type=lambda text: text.split(","), default=[], help="players: their ids"
    )
    parser.add_argument("--leave-after", type=int)
    parser.add_argument("--max-seconds", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, required=True)
    options = parser.parse_args(argv)
    role = {"player": play, "players": play_many, "stalled": stall, "garbage": spray}[options.role]
    try:
        result = role(options)
    except Exception:
        result = {"role": options.role, "id": options.id, "error": traceback.format_exc()}
    options.report.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
