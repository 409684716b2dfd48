"""Backpressure with the default send limits: a healthy interface is throttled, never cut;
a frozen one is cut within about a second, and costs the engine bounded memory.

The interfaces run in processes of their own (the frozen one stopped with ``SIGSTOP``),
then every party in one process (the frozen one an interface whose queue is full and
that nobody reads). The bounds are generous, for a loaded machine, yet far from what an
unbounded queue or an unbounded wait would give.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pymasep.comm.client import Client
from pymasep.comm.core import (
    ConnectionClosedError,
    DisconnectCode,
    Frame,
    SendLimits,
    SocketHandlerQueue,
    UnknownConnectionError,
)
from pymasep.comm.core.testing.peers import in_thread, wait_registered
from pymasep.comm.server import Server

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm") or not hasattr(signal, "SIGSTOP"),
    reason="needs Linux's /proc and SIGSTOP",
)

LOOPBACK = "127.0.0.1"
SIZE = 100_000  # an observation of 100 KB
LIMIT = SendLimits().hard_limit
DRAIN = SendLimits().drain_timeout
_FILLER = bytes(range(256)) * (SIZE // 256 + 1)

# An interface as a user writes one, with the default settings: it reads its queue and
# checks that frame #n is the nth.
_INTERFACE = """
import queue, sys
from pymasep.comm.client import Client
from pymasep.comm.core import SocketHandlerQueue

port, ident, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
inbox = queue.Queue()
client = Client(ident, SocketHandlerQueue, (inbox,), "127.0.0.1", port)
client.connect(timeout=30)
print("connected", flush=True)
for expected in range(count):
    message = inbox.get(timeout=120)
    number = int.from_bytes(message[:4], "big")
    if number != expected or len(message) != {size}:
        print(f"got #{{number}} ({{len(message)}} bytes), expected #{{expected}}", flush=True)
        sys.exit(1)
print(f"received {{count}}", flush=True)
client.close()
"""


def _frame(number: int) -> Frame:
    # A new payload each time, as a game's observations are: a queue that held them all
    # would show in the engine's memory.
    return Frame(number.to_bytes(4, "big") + _FILLER[: SIZE - 4])


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Ends(SocketHandlerQueue):
    """The engine's handler: records how each connection ended."""

    ended: queue.Queue[tuple[str | None, str]]

    def on_disconnect(self, reason: str) -> None:
        type(self).ended.put((self.peer_id, reason))


@pytest.fixture
def engine() -> Iterator[Server]:
    Ends.ended = queue.Queue()
    with Server("engine", 8, Ends, (queue.Queue(),), LOOPBACK, 0) as server:
        server.wait_connection()
        yield server


Interface = Callable[[str, int], subprocess.Popen[str]]


@pytest.fixture
def interface(engine: Server, tmp_path: Path) -> Iterator[Interface]:
    """``interface(ident, count)``: an interface process, connected and registered."""
    script = tmp_path / "interface.py"
    script.write_text(_INTERFACE.format(size=SIZE))
    started: list[subprocess.Popen[str]] = []

    def start(ident: str, count: int) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(script), str(engine.port), ident, str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == "connected\n"
        wait_registered(engine, ident)
        return process

    yield start
    for process in started:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()


def _finish(process: subprocess.Popen[str]) -> str:
    out, _ = process.communicate(timeout=120)
    return out.strip()


@pytest.mark.timeout(300)
def test_a_healthy_interface_gets_every_frame_of_a_200_mb_burst_in_order(
    engine: Server, interface: Interface
) -> None:
    count = 2000
    healthy = interface("healthy", count)
    for number in range(count):  # flat out: far faster than the interface reads
        engine.send_frame_to("healthy", _frame(number))
    assert _finish(healthy) == f"received {count}"
    assert healthy.returncode == 0


def _burst_beside_a_frozen_peer(
    engine: Server, count: int, frozen: str, healthy: str
) -> tuple[float, float, int]:
    """Send ``count`` frames to each; return the longest send, the time spent in sends
    to the frozen peer, and the engine's peak growth of RSS."""
    longest = frozen_total = 0.0
    before = peak = _rss()
    cut, reason = False, ""
    for number in range(count):
        frame = _frame(number)
        start = time.monotonic()
        engine.send_frame_to(healthy, frame)
        longest = max(longest, time.monotonic() - start)
        if not cut:
            start = time.monotonic()
            try:
                engine.send_frame_to(frozen, frame)
            except ConnectionClosedError as error:
                cut = True
                reason = str(error)
            elapsed = time.monotonic() - start
            frozen_total += elapsed
            longest = max(longest, elapsed)
        else:  # a peer that is cut is gone (or going): no later send waits for it
            start = time.monotonic()
            with pytest.raises((ConnectionClosedError, UnknownConnectionError)):
                engine.send_frame_to(frozen, frame)
            longest = max(longest, time.monotonic() - start)
        if number % 20 == 0:
            peak = max(peak, _rss())
    assert cut, "the frozen interface was never cut"
    assert "slow consumer" in reason
    return longest, frozen_total, peak - before


def _assert_bounded(longest: float, frozen_total: float, growth: int) -> None:
    # The frozen peer cost one wait of the drain timeout (1 s); a loaded machine may
    # stretch it, never to the minutes an unbounded wait would take.
    assert DRAIN <= frozen_total < DRAIN + 5
    assert longest < DRAIN + 5
    # At most the limit for each of the two peers, and slack for the allocator: an
    # unbounded queue would hold the whole burst (300 MB).
    assert growth < 2 * LIMIT + (32 << 20), f"{growth >> 20} MiB"


@pytest.mark.timeout(300)
def test_a_frozen_interface_is_cut_while_a_healthy_one_beside_it_gets_everything(
    engine: Server, interface: Interface
) -> None:
    count = 3000  # 300 MB for each
    healthy = interface("healthy", count)
    frozen = interface("frozen", count)
    frozen.send_signal(signal.SIGSTOP)
    longest, frozen_total, growth = _burst_beside_a_frozen_peer(engine, count, "frozen", "healthy")
    assert _finish(healthy) == f"received {count}"
    ended = dict(Ends.ended.get(timeout=10) for _ in range(2))
    assert ended["frozen"].code is DisconnectCode.SLOW_CONSUMER  # type: ignore[attr-defined]
    assert ended["healthy"].code is DisconnectCode.CLOSED_BY_PEER  # type: ignore[attr-defined]
    _assert_bounded(longest, frozen_total, growth)


class _Frozen:
    """The queue of an interface that stopped: a put blocks until it is released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def put(self, item: bytes) -> None:
        self.release.wait()


@pytest.mark.timeout(300)
def test_the_same_with_every_party_in_one_process(engine: Server) -> None:
    count = 3000
    received: queue.Queue[bytes] = queue.Queue()
    frozen = _Frozen()
    clients = [
        Client(ident, SocketHandlerQueue, (inbox,), LOOPBACK, engine.port)
        for ident, inbox in (("healthy", received), ("frozen", frozen))
    ]
    for client in clients:
        client.connect(timeout=30)
        wait_registered(engine, client.id)

    def consume() -> list[int]:
        return [int.from_bytes(received.get(timeout=120)[:4], "big") for _ in range(count)]

    consumer = in_thread(consume)
    try:
        longest, frozen_total, growth = _burst_beside_a_frozen_peer(
            engine, count, "frozen", "healthy"
        )
        assert consumer(120) == list(range(count))
    finally:
        frozen.release.set()  # let the frozen handler go, so that it can end
        for client in clients:
            client.close()
    ended: dict[Any, Any] = {}
    while "frozen" not in ended:
        ident, reason = Ends.ended.get(timeout=10)
        ended[ident] = reason
    assert ended["frozen"].code is DisconnectCode.SLOW_CONSUMER
    _assert_bounded(longest, frozen_total, growth)
