"""Every contender of the benchmarks delivers every frame intact: a baseline that loses or
garbles frames measures nothing. The measurements themselves check each frame against
what was sent and raise where one is missing or different; here they run on a few frames.
"""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Callable

import bareframes
import contenders
import fanout
import gamestep
import pytest
import transport
import workloads
import zeromq

BroadcastMeasure = Callable[[int, int, bytes], float]
BROADCASTERS: dict[str, BroadcastMeasure] = {
    "pymasep-comm": fanout.ours,
    "bare sockets": fanout.bare,
    "pyzmq": zeromq.fan_out,
}
ECHOES: dict[str, Callable[[int, bytes], float]] = {
    "pymasep-comm": transport.ours_round_trip,
    "pymasep-comm, a queue on each side": lambda count, payload: transport.ours_round_trip(
        count, payload, queued=True
    ),
    "bare echo": transport.bare_round_trip,
    "bare + queue": transport.bare_queue_round_trip,
    "pyzmq": zeromq.round_trip,
}
STEPPERS = {"pymasep-comm": gamestep.ours, "bare sockets": gamestep.bare, "pyzmq": gamestep.pyzmq}


# What is broadcast: how many times, and what (built when the test runs).
BROADCASTS: dict[str, tuple[int, Callable[[], bytes]]] = {
    "1 KiB frame": (20, contenders.scale_payload),  # the broadcast rows
    "observation": (5, workloads.our_observation_bytes),  # the fan-out rows
}


@pytest.mark.parametrize("interfaces", [1, 8, 64])
@pytest.mark.parametrize("contender", list(BROADCASTERS))
@pytest.mark.parametrize("payload", list(BROADCASTS))
def test_each_broadcast_contender_delivers_every_payload_intact(
    payload: str, contender: str, interfaces: int
) -> None:
    broadcasts, make = BROADCASTS[payload]
    assert BROADCASTERS[contender](interfaces, broadcasts, make()) > 0


@pytest.mark.parametrize("contender", list(ECHOES))
def test_each_echo_contender_returns_every_frame_intact(contender: str) -> None:
    assert ECHOES[contender](50, b"ping") > 0


@pytest.mark.parametrize("interfaces", [1, 8])
@pytest.mark.parametrize("contender", list(STEPPERS))
def test_each_game_step_contender_delivers_every_observation_and_action(
    contender: str, interfaces: int
) -> None:
    observation, action, _ = workloads.game_step_messages()
    assert STEPPERS[contender](interfaces, 3, observation, action) > 0


def _frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


def test_the_bare_reader_keeps_frames_cut_anywhere_whole() -> None:
    payload = contenders.scale_payload()
    stream = _frame(payload) * 3
    cuts = [0, 1, 4, 5, 700, 1028, 1029, 2060, len(stream)]
    frames = bareframes.Frames()
    got = [f for low, high in itertools.pairwise(cuts) for f in frames.feed(stream[low:high])]
    assert got == [payload] * 3


def test_the_bare_reader_fails_on_a_garbled_frame() -> None:
    payload = contenders.scale_payload()
    sender, receiver = socket.socketpair()
    with sender, receiver:
        sender.sendall(_frame(payload[:-1] + b"?"))
        with pytest.raises(RuntimeError, match="garbled"):
            fanout._bare_receive([receiver], 1, payload)
