"""The transport workloads with pyzmq, DEALER (interface) to ROUTER (engine) over TCP.

Same shape as :mod:`transport` and :mod:`fanout`: the engine is a forked child process
that makes its own zmq context after the fork, the interfaces live in this process. The
ROUTER sets ``ROUTER_MANDATORY``, so that a full queue blocks the sender instead of
dropping messages: every workload counts what arrives.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import zmq

LOOPBACK = "tcp://127.0.0.1"
TIMEOUT = 60.0
_CONTEXT = multiprocessing.get_context("fork")


def make_router(context: zmq.Context[Any]) -> tuple[zmq.Socket[Any], int]:
    """The engine's ROUTER, blocking rather than dropping, bound to a free port."""
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port(LOOPBACK)
    return router, port


def make_dealer(context: zmq.Context[Any], port: int, identity: bytes) -> zmq.Socket[Any]:
    """An interface's DEALER, named ``identity``, connected to the ROUTER on ``port``."""
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, identity)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(f"{LOOPBACK}:{port}")
    return dealer


def received(poller: zmq.Poller, timeout_ms: int) -> Iterator[tuple[zmq.Socket[Any], bytes]]:
    """Every message waiting on the sockets that ``poller`` finds ready within
    ``timeout_ms``, with its socket."""
    for sock, _ in poller.poll(timeout_ms):
        while True:
            try:
                message = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            yield sock, message


def _engine(mode: str, args: tuple[Any, ...], signals: dict[str, Any]) -> None:
    """``sink`` counts ``args[0]`` messages; ``echo`` echoes; ``broadcast`` fans out."""
    context: zmq.Context[Any] = zmq.Context()
    router, port = make_router(context)
    signals["port"].put(port)
    try:
        if mode == "sink":
            for _ in range(args[0]):
                router.recv_multipart(copy=False)
            signals["done"].set()
        elif mode == "echo":
            while not signals["finished"].is_set():
                if router.poll(100):
                    router.send_multipart(router.recv_multipart(copy=False), copy=False)
        else:
            interfaces, broadcasts, payload = args
            # Each interface says hello, so that the ROUTER knows whom to send to.
            ids = [router.recv_multipart()[0] for _ in range(interfaces)]
            signals["ready"].set()
            signals["go"].wait(TIMEOUT)
            for _ in range(broadcasts):
                for ident in ids:
                    router.send_multipart([ident, payload], copy=False)
        signals["finished"].wait(TIMEOUT)
    finally:
        context.destroy(linger=0)


def _start(mode: str, *args: Any) -> tuple[Any, int, dict[str, Any]]:
    signals: dict[str, Any] = {
        "port": _CONTEXT.Queue(),
        "done": _CONTEXT.Event(),
        "ready": _CONTEXT.Event(),
        "go": _CONTEXT.Event(),
        "finished": _CONTEXT.Event(),
    }
    process = _CONTEXT.Process(target=_engine, args=(mode, args, signals), daemon=True)
    process.start()
    return process, signals["port"].get(timeout=TIMEOUT), signals


def _end(process: Any, signals: dict[str, Any], context: zmq.Context[Any]) -> None:
    signals["finished"].set()
    context.destroy(linger=0)
    process.join(TIMEOUT)


def stream(count: int, payload: bytes) -> float:
    """Messages per second, DEALER to ROUTER."""
    process, port, signals = _start("sink", count)
    context: zmq.Context[Any] = zmq.Context()
    try:
        dealer = make_dealer(context, port, b"interface")
        start = time.perf_counter()
        for _ in range(count):
            dealer.send(payload)
        if not signals["done"].wait(TIMEOUT):
            raise RuntimeError("messages were lost")
        return count / (time.perf_counter() - start)
    finally:
        _end(process, signals, context)


def round_trip(count: int, payload: bytes) -> float:
    """Round trips per second against a ROUTER that echoes."""
    process, port, signals = _start("echo")
    context: zmq.Context[Any] = zmq.Context()
    try:
        dealer = make_dealer(context, port, b"interface")
        dealer.send(payload)  # the first round trip connects: not timed
        dealer.recv()
        start = time.perf_counter()
        for _ in range(count):
            dealer.send(payload)
            if dealer.recv() != payload:
                raise RuntimeError("an echo arrived garbled")
        return count / (time.perf_counter() - start)
    finally:
        _end(process, signals, context)


def big_frame(size: int) -> float:
    """Bytes per second of one message of ``size`` bytes."""
    process, port, signals = _start("sink", 1)
    context: zmq.Context[Any] = zmq.Context()
    try:
        dealer = make_dealer(context, port, b"interface")
        payload = bytes(size)
        start = time.perf_counter()
        dealer.send(payload, copy=False)
        if not signals["done"].wait(TIMEOUT):
            raise RuntimeError("the message was lost")
        return size / (time.perf_counter() - start)
    finally:
        _end(process, signals, context)


def fan_out(interfaces: int, broadcasts: int, payload: bytes) -> float:
    """Broadcasts per second: the ROUTER sends one payload to every DEALER."""
    process, port, signals = _start("broadcast", interfaces, broadcasts, payload)
    context: zmq.Context[Any] = zmq.Context()
    try:
        dealers = [make_dealer(context, port, b"i%05d" % index) for index in range(interfaces)]
        poller = zmq.Poller()
        for dealer in dealers:
            dealer.send(b"hello")
            poller.register(dealer, zmq.POLLIN)
        if not signals["ready"].wait(TIMEOUT):
            raise RuntimeError("the engine did not hear every interface")
        counts = dict.fromkeys(dealers, 0)
        waiting = interfaces
        deadline = time.monotonic() + TIMEOUT
        start = time.perf_counter()
        signals["go"].set()
        while waiting:
            if time.monotonic() > deadline:
                raise RuntimeError("broadcast messages were lost")
            for dealer, message in received(poller, 1000):
                if message != payload:
                    raise RuntimeError("a broadcast message arrived garbled")
                counts[dealer] += 1
                if counts[dealer] == broadcasts:
                    waiting -= 1
        return broadcasts / (time.perf_counter() - start)
    finally:
        _end(process, signals, context)
