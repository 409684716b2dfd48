"""The benchmark workloads written with pymasep 0.2, as a 0.2 application would write them.

Run by the interpreter of a virtualenv that holds pymasep 0.2 (its ``pymasep`` and ours
cannot share one environment), once per measurement, by :mod:`contenders`::

    legacy02.py stream COUNT SIZE BUDGET
    legacy02.py round_trip COUNT BUDGET
    legacy02.py fan_out INTERFACES BROADCASTS PAYLOAD_FILE BUDGET

(The codec is measured in one process, against 0.2's own ``Message`` loaded from this
virtualenv's file: see :mod:`message_codec`.)

It prints one JSON object: ``{"ops": N, "elapsed": seconds}`` (with ``"partial"`` when
fewer than COUNT operations completed within BUDGET seconds), or ``{"failure": ...}``
when 0.2 garbled frames or nothing at all arrived. As in
:mod:`transport`, the engine runs in a forked child process and the interfaces in this
one. 0.2's threads are not daemons and spin on a closed socket, so every process of this
script ends with ``os._exit``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from pymasep.communication import (
    Client,
    Frame,
    Server,
    SocketHandler,
    SocketHandlerQueue,
)

LOOPBACK = "127.0.0.1"
ENGINE_ID = "bench-engine"
_CONTEXT = multiprocessing.get_context("fork")


class WorkloadError(Exception):
    """0.2 did not complete the workload: the message says how."""


# -- engine side (child process) --------------------------------------------------------


class _Sink(SocketHandler):
    """Counts frames of the expected size; any other size means the stream broke."""

    def on_receive(self, frame: Frame) -> None:
        shared = _ENGINE["shared"]
        if frame.size != shared["size"]:
            shared["bad"].value += 1
            shared["done"].set()
            return
        shared["count"].value += 1
        if shared["count"].value == shared["expected"]:
            shared["done"].set()


class _Echo(SocketHandler):
    def on_receive(self, frame: Frame) -> None:
        self.send_frame_async(frame)


_ENGINE: dict[str, Any] = {}


def _engine(mode: str, shared: dict[str, Any]) -> None:
    """The 0.2 engine: a Server on loopback; ``sink``, ``echo`` or ``broadcast``."""
    # The engine must never outlive its run, nor hold the pipes the result is read from:
    # 0.2's send blocks for good once its peer is gone.
    _exit_after(shared["timeout"] + 30)
    devnull = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(devnull, stream)
    try:
        _ENGINE["shared"] = shared
        handler = {"sink": _Sink, "echo": _Echo}.get(mode, SocketHandler)
        server = Server(ENGINE_ID, shared["interfaces"] + 1, handler, (), LOOPBACK, 0)
        assert server.socket is not None
        server.port = server.socket.getsockname()[1]  # 0.2 keeps 0 otherwise
        server.wait_connection()
        shared["port"].put(server.port)
        if mode == "broadcast":
            _broadcast(server, shared)
        shared["finished"].wait(shared["timeout"] + 30)
    finally:
        os._exit(0)


def _broadcast(server: Server, shared: dict[str, Any]) -> None:
    deadline = time.monotonic() + shared["timeout"]
    while len(server._current_connections) < shared["interfaces"]:
        if time.monotonic() > deadline:
            return
        time.sleep(0.005)
    ids = list(server._current_connections)
    frame = Frame(shared["payload"])  # serialized once, sent to every interface
    shared["ready"].set()
    shared["go"].wait(shared["timeout"])
    for _ in range(shared["broadcasts"]):
        for ident in ids:
            server.send_frame_to(ident, frame)


def _start_engine(mode: str, **fields: Any) -> tuple[Any, int, dict[str, Any]]:
    shared = {
        "port": _CONTEXT.Queue(),
        "done": _CONTEXT.Event(),
        "finished": _CONTEXT.Event(),
        "ready": _CONTEXT.Event(),
        "go": _CONTEXT.Event(),
        "count": _CONTEXT.Value("q", 0),
        "bad": _CONTEXT.Value("q", 0),
        "interfaces": 1,
        **fields,
    }
    process = _CONTEXT.Process(target=_engine, args=(mode, shared), daemon=True)
    process.start()
    return process, shared["port"].get(timeout=30), shared


def _connect(port: int, ident: str, handler: type, args: tuple[Any, ...] = ()) -> Client:
    client = Client(ident, handler, args, LOOPBACK, port)
    client.connect()
    return client


# -- workloads (interface side, this process) --------------------------------------------


def _finish(
    done: Any, count: Callable[[], int], total: int, bad: Callable[[], bool], budget: float
) -> dict[str, Any]:
    """Wait for ``done``, at most ``budget`` seconds; raise :class:`WorkloadError` if it never
    comes or frames were garbled."""
    start = time.perf_counter()
    finished = done.wait(budget)
    elapsed = time.perf_counter() - start
    received = count()
    if bad():
        raise WorkloadError(f"garbled frames: a frame of the wrong size after {received} good ones")
    if not finished:
        raise WorkloadError(f"stalled: {received} of {total} arrived within {budget:g} s")
    return {"ops": total, "elapsed": elapsed}


def stream(count: int, size: int, budget: float) -> dict[str, Any]:
    """Frames per second of a one-way stream, interface to engine."""
    _, port, shared = _start_engine("sink", expected=count, size=size, timeout=budget)
    client = _connect(port, "bench-interface", SocketHandler)
    frame = Frame(bytes(size))

    def send() -> None:
        for _ in range(count):
            client.send_frame_to(ENGINE_ID, frame)

    # A sender thread: 0.2's send blocks for good when its peer stops reading.
    threading.Thread(target=send, daemon=True).start()
    try:
        return _finish(
            shared["done"],
            lambda: int(shared["count"].value),
            count,
            lambda: bool(shared["bad"].value),
            budget,
        )
    finally:
        shared["finished"].set()


def round_trip(count: int, budget: float) -> dict[str, Any]:
    """Round trips per second: the interface sends, the engine echoes."""
    _, port, shared = _start_engine("echo", timeout=budget)
    replies: queue.Queue[bytes] = queue.Queue()
    client = _connect(port, "bench-interface", SocketHandlerQueue, (replies,))
    frame = Frame(b"ping")
    start = time.perf_counter()
    deadline = start + budget
    done = 0
    try:
        while done < count and time.perf_counter() < deadline:
            client.send_frame_to(ENGINE_ID, frame)
            try:
                reply = replies.get(timeout=max(0.001, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if reply != b"ping":
                raise WorkloadError(f"garbled a reply after {done} round trips: {reply[:20]!r}")
            done += 1
    finally:
        shared["finished"].set()
    elapsed = time.perf_counter() - start
    if not done:
        raise WorkloadError(f"stalled: no reply within {budget:g} s")
    result = {"ops": done, "elapsed": elapsed}
    return result if done == count else {**result, "partial": f"{done} of {count}"}


class _Counter(SocketHandler):
    """An interface that counts the broadcasts it receives."""

    def __init__(self, conn: Any, addr: Any, logger: Any, tally: dict[str, Any]) -> None:
        super().__init__(conn, addr, logger)
        self.tally = tally
        self.received = 0

    def on_receive(self, frame: Frame) -> None:
        tally = self.tally
        if frame.size != tally["size"]:
            tally["bad"] = True
            tally["done"].set()
            return
        self.received += 1
        with tally["lock"]:
            tally["frames"] += 1
            if self.received == tally["broadcasts"]:
                tally["waiting"] -= 1
                if tally["waiting"] == 0:
                    tally["done"].set()


def fan_out(interfaces: int, broadcasts: int, payload_file: str, budget: float) -> dict[str, Any]:
    """Broadcasts per second: one frame, serialized once, sent to every interface."""
    payload = Path(payload_file).read_bytes()
    fields = {"interfaces": interfaces, "broadcasts": broadcasts, "payload": payload}
    _, port, shared = _start_engine("broadcast", timeout=budget, **fields)
    tally: dict[str, Any] = {
        "size": len(payload),
        "broadcasts": broadcasts,
        "waiting": interfaces,
        "frames": 0,
        "bad": False,
        "lock": threading.Lock(),
        "done": threading.Event(),
    }
    # Keep the clients referenced: a 0.2 Client closes its socket when collected.
    clients = [_connect(port, f"interface-{i}", _Counter, (tally,)) for i in range(interfaces)]
    try:
        if not shared["ready"].wait(budget):
            raise WorkloadError(
                f"the engine did not see {interfaces} interfaces within {budget:g} s"
            )
        shared["go"].set()
        result = _finish(
            tally["done"],
            lambda: int(tally["frames"]) // interfaces,
            broadcasts,
            lambda: bool(tally["bad"]),
            budget,
        )
    finally:
        shared["finished"].set()
    del clients
    return result


WORKLOADS: dict[str, Callable[..., dict[str, Any]]] = {
    "stream": stream,
    "round_trip": round_trip,
    "fan_out": fan_out,
}


def _exit_after(seconds: float, message: str | None = None) -> None:
    """End this process after ``seconds``, printing ``message`` first, whatever 0.2 does."""

    def end() -> None:
        if message is not None:
            sys.stdout.write(json.dumps({"failure": message}) + "\n")
            sys.stdout.flush()
        os._exit(3)

    timer = threading.Timer(seconds, end)
    timer.daemon = True
    timer.start()


def main() -> None:
    name, *raw = sys.argv[1:]
    limit = float(os.environ.get("LEGACY02_LIMIT", "50"))
    _exit_after(limit, f"hung: pymasep 0.2 made no result within {limit:g} s")
    args = [arg if not arg.replace(".", "", 1).isdigit() else float(arg) for arg in raw]
    args = [int(arg) if isinstance(arg, float) and arg.is_integer() else arg for arg in args]
    result: dict[str, Any]
    try:
        result = WORKLOADS[name](*args)
    except WorkloadError as failure:
        result = {"failure": str(failure)}
    except Exception as error:
        result = {"failure": f"{type(error).__name__}: {error}"}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
