"""Transport benchmarks: pymasep-comm against bare Python sockets doing the same work.

The engine side runs in a child process and the interface side in this one, as they
are deployed (two processes also keep one GIL from serialising both ends). Each workload
alternates with its baseline for several rounds; the medians give the ratio that counts,
since these machines are noisy.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import resource
import socket
import ssl
import statistics
import struct
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from typing import Any

from bareframes import Frames

from pymasep.comm.client import Client
from pymasep.comm.core import CommunicationError, Frame, SocketHandler, SocketHandlerQueue
from pymasep.comm.core.testing.tls import loopback_contexts
from pymasep.comm.server import Server

STREAM_FRAMES = 50_000
STREAM_PAYLOAD = 1024
ROUND_TRIPS = 5_000
BIG_FRAME = 16 * 1024 * 1024
LOOPBACK = "127.0.0.1"
ENGINE_ID = "bench-engine"
INTERFACE_ID = "bench-interface"
_LENGTH = struct.Struct("!I")
_CONTEXT = multiprocessing.get_context("fork")
# (server, client) TLS contexts while a TLS workload runs; the forked engine inherits them.
_TLS: tuple[ssl.SSLContext, ssl.SSLContext] | None = None
# Keyword options of both sides' Server and Client while a workload runs (the forked
# engine inherits them): {"resume_window": 0} measures the connection without resuming.
_OPTIONS: dict[str, Any] = {}
RESUME_SECTION = "What resuming costs"
RESUME_TARGET = 1.05  # at most this many times the time without resuming
# The cost sought (5%) is about the spread of one round on a 2-core machine: the
# resuming rows run this many times the page's rounds, interleaved, for their medians.
RESUME_ROUNDS_FACTOR = 3


# -- engine side (child process) -------------------------------------------------------


def _bare_engine(mode: str, expected: int, ports: multiprocessing.Queue[int], done: Event) -> None:
    """A bare socket engine: ``sink`` splits length-prefixed frames, ``echo`` echoes."""
    with socket.create_server((LOOPBACK, 0)) as listener:
        ports.put(listener.getsockname()[1])
        conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "echo":
        while data := conn.recv(65536):
            conn.sendall(data)
        return
    if mode == "queue-echo":
        _queued_echo(conn)
        return
    frames = Frames()
    received = 0
    while received < expected and (data := conn.recv(262144)):
        received += len(frames.feed(data))
    done.set()
    conn.recv(1)


def _read_frames(sock: socket.socket, frames: queue.Queue[bytes | None]) -> None:
    """The reading thread of a bare + queue side: split length-prefixed frames, hand
    each to the consuming thread through ``frames``; None when the peer closes."""
    split = Frames()
    with contextlib.suppress(OSError):
        while data := sock.recv(262144):
            for payload in split.feed(data):
                frames.put(payload)
    frames.put(None)


def _queued_echo(conn: socket.socket) -> None:
    """The bare + queue engine: a reading thread queues each frame, this thread echoes it."""
    frames: queue.Queue[bytes | None] = queue.Queue()
    reader = threading.Thread(target=_read_frames, args=(conn, frames), daemon=True)
    reader.start()
    while (payload := frames.get()) is not None:
        conn.sendall(_LENGTH.pack(len(payload)) + payload)
    reader.join(10)


class _Sink(SocketHandler):
    """Counts data frames and sets ``done`` at the expected count."""

    receive_may_block = False  # it never waits: no delivery thread (the documented opt-in)
    expected = 0
    done: Event

    def on_receive(self, frame: Frame) -> None:
        cls = type(self)
        cls.expected -= 1
        if cls.expected == 0:
            cls.done.set()


class _QueueUntilClosed(SocketHandlerQueue):
    """A ``SocketHandlerQueue`` that queues None when its connection ends, so that the
    thread reading the queue stops without polling it."""

    def on_disconnect(self, reason: str) -> None:
        self.receive_queue.put(None)


class _Echo(SocketHandler):
    receive_may_block = False  # it never waits: no delivery thread (the documented opt-in)

    def on_receive(self, frame: Frame) -> None:
        self.send_frame_async(frame)


def _our_engine(mode: str, expected: int, ports: multiprocessing.Queue[int], done: Event) -> None:
    _Sink.expected, _Sink.done = expected, done
    handler: type[SocketHandler] = _Echo if mode == "echo" else _Sink
    args: tuple[Any, ...] = ()
    frames: queue.Queue[bytes | None] = queue.Queue()  # as bare + queue's
    if mode == "queue-echo":  # the handler queues, the engine's own thread answers
        handler, args = _QueueUntilClosed, (frames,)
    tls = None if _TLS is None else _TLS[0]
    with Server(ENGINE_ID, 4, handler, args, LOOPBACK, 0, ssl_context=tls, **_OPTIONS) as server:
        server.wait_connection()
        assert server.port is not None
        ports.put(server.port)
        server.wait_for_connections(1, 10)
        if mode == "queue-echo":
            while (payload := frames.get()) is not None:
                with contextlib.suppress(CommunicationError):  # the interface left
                    server.send_frame_to(INTERFACE_ID, Frame(payload))
        server.wait_for_connections(0, 120)


def _engine(target: Callable[..., None], mode: str, expected: int = 0) -> tuple[Any, int, Event]:
    ports: multiprocessing.Queue[int] = _CONTEXT.Queue()
    done = _CONTEXT.Event()
    process = _CONTEXT.Process(target=target, args=(mode, expected, ports, done), daemon=True)
    process.start()
    return process, ports.get(timeout=10), done


# -- interface side (this process) -----------------------------------------------------


def _bare_connect(port: int) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def bare_stream(count: int, payload: bytes) -> float:
    """Frames per second of a length-prefixed loop: one sendall per frame."""
    process, port, done = _engine(_bare_engine, "sink", count)
    sock = _bare_connect(port)
    start = time.perf_counter()
    for _ in range(count):
        sock.sendall(_LENGTH.pack(len(payload)) + payload)
    done.wait(120)
    elapsed = time.perf_counter() - start
    sock.close()
    process.join(10)
    return count / elapsed


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise RuntimeError("the echo was cut short")
        data += chunk
    return bytes(data)


def bare_round_trip(count: int, payload: bytes) -> float:
    """Round trips per second against a bare echo: no thread hand-off on either side."""
    process, port, _ = _engine(_bare_engine, "echo")
    sock = _bare_connect(port)
    message = _LENGTH.pack(len(payload)) + payload
    start = time.perf_counter()
    for _ in range(count):
        sock.sendall(message)
        if _receive_exactly(sock, len(message)) != message:
            raise RuntimeError("an echo arrived garbled")
    elapsed = time.perf_counter() - start
    sock.close()
    process.join(10)
    return count / elapsed


def bare_queue_round_trip(count: int, payload: bytes) -> float:
    """Round trips per second of bare sockets where, on each side, a reading thread hands
    each frame to the consuming thread through a ``queue.Queue`` (the engine's echoes it,
    the interface's times it): the least a queue-based handler can cost."""
    process, port, _ = _engine(_bare_engine, "queue-echo")
    sock = _bare_connect(port)
    replies: queue.Queue[bytes | None] = queue.Queue()
    reader = threading.Thread(target=_read_frames, args=(sock, replies), daemon=True)
    reader.start()
    message = _LENGTH.pack(len(payload)) + payload
    try:
        start = time.perf_counter()
        for _ in range(count):
            sock.sendall(message)
            if replies.get(timeout=10) != payload:
                raise RuntimeError("an echo arrived garbled or the engine closed")
        elapsed = time.perf_counter() - start
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread: close() would not
        reader.join(10)
        sock.close()
        process.join(10)
    return count / elapsed


def bare_big_frame(size: int) -> float:
    """Bytes per second of one length-prefixed frame of ``size`` bytes, sent and received."""
    process, port, done = _engine(_bare_engine, "sink", 1)
    sock = _bare_connect(port)
    payload = bytes(size)
    start = time.perf_counter()
    sock.sendall(_LENGTH.pack(size) + payload)
    done.wait(120)
    elapsed = time.perf_counter() - start
    sock.close()
    process.join(10)
    return size / elapsed


def _client(port: int, replies: queue.SimpleQueue[bytes] | queue.Queue[bytes]) -> Client:
    tls = None if _TLS is None else _TLS[1]
    client = Client(
        INTERFACE_ID, SocketHandlerQueue, (replies,), LOOPBACK, port, ssl_context=tls, **_OPTIONS
    )
    client.connect()
    return client


def ours_stream(count: int, payload: bytes) -> float:
    """Frames per second through Client.send_frame_to into a Server handler."""
    process, port, done = _engine(_our_engine, "sink", count)
    client = _client(port, queue.SimpleQueue())
    frame = Frame(payload)
    start = time.perf_counter()
    for _ in range(count):
        client.send_frame_to(ENGINE_ID, frame)
    if not done.wait(120):
        raise RuntimeError("frames were lost")
    elapsed = time.perf_counter() - start
    client.close()
    process.join(10)
    return count / elapsed


def ours_round_trip(count: int, payload: bytes, *, queued: bool = False) -> float:
    """Round trips per second: the interface sends, the engine's handler echoes (with
    ``queued``, the engine's handler queues the frame and the engine's own thread
    answers, as :func:`bare_queue_round_trip` does). The interface takes each reply from
    its ``SocketHandlerQueue``."""
    process, port, _ = _engine(_our_engine, "queue-echo" if queued else "echo")
    # queued: a queue.Queue on each side, as bare + queue's.
    replies: queue.SimpleQueue[bytes] | queue.Queue[bytes]
    replies = queue.Queue() if queued else queue.SimpleQueue()
    client = _client(port, replies)
    frame = Frame(payload)
    try:
        start = time.perf_counter()
        for _ in range(count):
            client.send_frame_to(ENGINE_ID, frame)
            if replies.get(timeout=10) != payload:
                raise RuntimeError("an echo arrived garbled")
        elapsed = time.perf_counter() - start
    finally:
        client.close()
        process.join(10)
    return count / elapsed


def ours_big_frame(size: int) -> float:
    """Bytes per second of one frame of ``size`` bytes through the library: a stream of
    that one frame."""
    return size * ours_stream(1, bytes(size))


def _compare(
    name: str, ours: Callable[[], float], baseline: Callable[[], float], rounds: int, unit: str
) -> dict[str, Any]:
    ours_runs, base_runs = [], []
    for _ in range(rounds):
        ours_runs.append(ours())
        base_runs.append(baseline())
    ours_median = statistics.median(ours_runs)
    base_median = statistics.median(base_runs)
    return {
        "name": name,
        "unit": unit,
        "ops_per_s": ours_median,
        "baseline_ops_per_s": base_median,
        "ratio": ours_median / base_median,
        "runs": ours_runs,
        "baseline_runs": base_runs,
    }


def _spread(row: dict[str, Any]) -> str:
    """Why a ratio near 1 missed a target of a few percent: how far each side's rounds
    ranged around its median, in this run."""

    def side(runs: list[float]) -> str:
        median = statistics.median(runs)
        return f"{min(runs) / median - 1:+.0%} to {max(runs) / median - 1:+.0%}"

    return (
        f"Within this machine's noise: over the {len(row['runs'])} rounds, each round's "
        f"speed ranged {side(row['runs'])} around its median with resuming on, and "
        f"{side(row['baseline_runs'])} with it off, against the 5% sought."
    )


def _over_tls(workload: Callable[[], float]) -> Callable[[], float]:
    """``workload`` with both sides speaking TLS."""

    def run() -> float:
        global _TLS
        _TLS = loopback_contexts()
        try:
            return workload()
        finally:
            _TLS = None

    return run


def _stream_and_round_trip() -> list[tuple[str, Callable[[], float], str]]:
    """Our stream of 1 KiB frames and our round trip: (name, workload, unit) each, the
    workloads that the TLS and the resuming sections both measure."""
    payload = bytes(STREAM_PAYLOAD)
    return [
        ("stream of 1 KiB frames", lambda: ours_stream(STREAM_FRAMES, payload), "frames/s"),
        (
            "round trip of a small frame",
            lambda: ours_round_trip(ROUND_TRIPS, b"ping"),
            "round trips/s",
        ),
    ]


def run_tls(rounds: int = 5) -> list[dict[str, Any]]:
    """What TLS costs: each workload over TLS against itself in plaintext (no target)."""
    workloads = [
        *_stream_and_round_trip(),
        ("one 16 MiB frame", lambda: ours_big_frame(BIG_FRAME), "bytes/s"),
    ]
    rows = []
    for name, workload, unit in workloads:
        row = _compare(f"TLS: {name} vs plaintext", _over_tls(workload), workload, rounds, unit)
        rows.append({**row, "target": None})
    return rows


def _without_resuming(workload: Callable[[], float]) -> Callable[[], float]:
    """``workload`` with ``resume_window=0`` on both sides: no numbers, no ACKs."""

    def run() -> float:
        _OPTIONS["resume_window"] = 0
        try:
            return workload()
        finally:
            _OPTIONS.clear()

    return run


def _cpu_speed(workload: Callable[[], float]) -> Callable[[], float]:
    """``workload``'s speed in CPU time rather than wall time: one over the CPU seconds
    of this process and of the engine's child (waited for), kernel time included. The
    wall times of these short workloads move by several percent from one run to the
    next on a shared 2-core machine; their CPU time much less."""

    def run() -> float:
        def cpu() -> float:
            mine = resource.getrusage(resource.RUSAGE_SELF)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime

        before = cpu()
        workload()
        return 1.0 / (cpu() - before)

    return run


def run_resume(rounds: int = 5) -> list[dict[str, Any]]:
    """What resuming costs (on by default): the stream and the round trip against
    themselves with ``resume_window=0``; target: at most 5% more time."""
    workloads = [
        *_stream_and_round_trip(),
        (
            "round trip of a small frame, a queue on each side",
            lambda: ours_round_trip(ROUND_TRIPS, b"ping", queued=True),
            "round trips/s",
        ),
    ]
    stream = workloads[0][1]
    workloads.append(
        ("stream of 1 KiB frames, CPU time of both processes", _cpu_speed(stream), "1/CPU s")
    )
    rows = []
    rounds *= RESUME_ROUNDS_FACTOR
    for name, workload, unit in workloads:
        row = _compare(name, workload, _without_resuming(workload), rounds, unit)
        rows.append(
            {
                **row,
                "name": f"{name}, resuming on vs off",
                "workload": f"{name}, resuming on (the default), {rounds} rounds",
                "against": "resume_window=0",
                "section": RESUME_SECTION,
                "target": None if unit == "1/CPU s" else 1 / RESUME_TARGET,
            }
        )
        if unit != "1/CPU s" and row["ratio"] < 1 / RESUME_TARGET:
            rows[-1]["why"] = _spread(row)
    return rows


def run(rounds: int = 5) -> list[dict[str, Any]]:
    """Run every transport workload; return one row per workload (ratio > 1 is faster)."""
    payload = bytes(STREAM_PAYLOAD)
    return [
        _compare(
            "stream of 1 KiB frames vs length-prefixed loop",
            lambda: ours_stream(STREAM_FRAMES, payload),
            lambda: bare_stream(STREAM_FRAMES, payload),
            rounds,
            "frames/s",
        ),
        _compare(
            "round trip of a small frame vs bare echo",
            lambda: ours_round_trip(ROUND_TRIPS, b"ping"),
            lambda: bare_round_trip(ROUND_TRIPS, b"ping"),
            rounds,
            "round trips/s",
        ),
        _compare(
            "round trip of a small frame, a queue on each side vs bare + queue",
            lambda: ours_round_trip(ROUND_TRIPS, b"ping", queued=True),
            lambda: bare_queue_round_trip(ROUND_TRIPS, b"ping"),
            rounds,
            "round trips/s",
        ),
        _compare(
            "one 16 MiB frame vs bare socket",
            lambda: ours_big_frame(BIG_FRAME),
            lambda: bare_big_frame(BIG_FRAME),
            rounds,
            "bytes/s",
        ),
    ]


if __name__ == "__main__":
    for row in run(3):
        print(f"{row['name']:<48} {row['ratio']:.2f}x")
