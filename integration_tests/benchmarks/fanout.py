"""Broadcast benchmarks: one engine sending the same frame to many interfaces.

The engine (a forked child, as in :mod:`transport`) encodes the frame once and sends it
to every connected interface, ``broadcasts`` times; the interfaces, all in this process,
count what they receive. The time runs from the engine's start signal until every
interface has every frame. pymasep-comm runs a reader thread per connection, as it is
deployed; the bare-socket baseline reads every socket from one ``selectors`` loop, the
fastest a plain Python program can do it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import selectors
import socket
import struct
import threading
import time
from typing import Any

from bareframes import Frames

from pymasep.comm.client import Client
from pymasep.comm.core import CommunicationError, Frame, SocketHandler, UnknownConnectionError
from pymasep.comm.server import Server

LOOPBACK = "127.0.0.1"
ENGINE_ID = "bench-engine"
TIMEOUT = 60.0
_LENGTH = struct.Struct("!I")
_CONTEXT = multiprocessing.get_context("fork")


def _signals() -> dict[str, Any]:
    return {
        "port": _CONTEXT.Queue(),
        "ready": _CONTEXT.Event(),
        "go": _CONTEXT.Event(),
        "finished": _CONTEXT.Event(),
    }


def _start(target: Any, *args: Any) -> tuple[Any, int, dict[str, Any]]:
    signals = _signals()
    process = _CONTEXT.Process(target=target, args=(*args, signals), daemon=True)
    process.start()
    return process, signals["port"].get(timeout=TIMEOUT), signals


def _run(process: Any, signals: dict[str, Any], receive: Any, broadcasts: int) -> float:
    """Start the broadcasts, wait for ``receive()`` to see them all, return broadcasts/s."""
    if not signals["ready"].wait(TIMEOUT):
        raise RuntimeError("the engine did not see every interface connect")
    start = time.perf_counter()
    signals["go"].set()
    if not receive():
        raise RuntimeError("broadcast frames were lost")
    elapsed = time.perf_counter() - start
    signals["finished"].set()
    process.join(TIMEOUT)
    return broadcasts / elapsed


# -- pymasep-comm ------------------------------------------------------------------------


def _our_engine(interfaces: int, broadcasts: int, payload: bytes, signals: dict[str, Any]) -> None:
    with Server(ENGINE_ID, interfaces, SocketHandler, (), LOOPBACK, 0) as server:
        server.wait_connection()
        signals["port"].put(server.port)
        if not server.wait_for_connections(interfaces, TIMEOUT):
            return
        ids = server.connection_ids()
        frame = Frame(payload)  # encoded once, sent to every interface
        signals["ready"].set()
        signals["go"].wait(TIMEOUT)
        for _ in range(broadcasts):
            for ident in ids:
                server.send_frame_to(ident, frame)
        signals["finished"].wait(TIMEOUT)


class _Tally:
    def __init__(self, interfaces: int, broadcasts: int, payload: bytes) -> None:
        self.broadcasts = broadcasts
        self.payload = payload
        self.waiting = interfaces
        self.garbled = 0
        self.lock = threading.Lock()
        self.done = threading.Event()


class _Counter(SocketHandler):
    def __init__(self, conn: socket.socket, addr: Any, logger: Any, tally: _Tally) -> None:
        super().__init__(conn, addr, logger)
        self.tally = tally
        self.received = 0

    def on_receive(self, frame: Frame) -> None:
        if frame.message != self.tally.payload:
            with self.tally.lock:
                self.tally.garbled += 1
            self.tally.done.set()
            return
        self.received += 1
        if self.received == self.tally.broadcasts:
            with self.tally.lock:
                self.tally.waiting -= 1
                if not self.tally.waiting:
                    self.tally.done.set()


def ours(interfaces: int, broadcasts: int, payload: bytes) -> float:
    """Broadcasts per second through Server.send_frame_to, one Client per interface."""
    process, port, signals = _start(_our_engine, interfaces, broadcasts, payload)
    tally = _Tally(interfaces, broadcasts, payload)
    clients = []

    def receive() -> bool:
        if not tally.done.wait(TIMEOUT):
            return False
        if tally.garbled:
            raise RuntimeError(f"{tally.garbled} broadcast frames arrived garbled")
        return True

    try:
        for index in range(interfaces):
            client = Client(f"interface-{index}", _Counter, (tally,), LOOPBACK, port)
            client.connect()
            clients.append(client)
        return _run(process, signals, receive, broadcasts)
    finally:
        signals["finished"].set()
        for client in clients:  # a bye to each at once, rather than a close() after another
            with contextlib.suppress(CommunicationError, UnknownConnectionError):
                client.send_frame_to(ENGINE_ID, Frame.bye_frame())  # unless the engine's came
        process.join(TIMEOUT)


# -- bare sockets ------------------------------------------------------------------------


def _bare_engine(interfaces: int, broadcasts: int, payload: bytes, signals: dict[str, Any]) -> None:
    with socket.create_server((LOOPBACK, 0), backlog=interfaces) as listener:
        signals["port"].put(listener.getsockname()[1])
        conns = [listener.accept()[0] for _ in range(interfaces)]
    for conn in conns:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = _LENGTH.pack(len(payload)) + payload  # encoded once
    signals["ready"].set()
    signals["go"].wait(TIMEOUT)
    for _ in range(broadcasts):
        for conn in conns:
            conn.sendall(message)
    signals["finished"].wait(TIMEOUT)
    for conn in conns:
        conn.close()


def _bare_receive(socks: list[socket.socket], broadcasts: int, payload: bytes) -> bool:
    """Read every socket from one selector loop, each into its own :class:`Frames`; check
    every frame against ``payload``."""
    deadline = time.monotonic() + TIMEOUT
    waiting = len(socks)
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ, [Frames(), 0])
        while waiting:
            if time.monotonic() > deadline:
                return False
            for key, _ in selector.select(1.0):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                data = ready.recv(262144)
                if not data:
                    return False
                state = key.data  # [this socket's frames, how many arrived]
                for frame in state[0].feed(data):
                    if frame != payload:
                        raise RuntimeError("a broadcast frame arrived garbled")
                    state[1] += 1
                    if state[1] == broadcasts:
                        waiting -= 1
    return True


def bare(interfaces: int, broadcasts: int, payload: bytes) -> float:
    """Broadcasts per second with plain sockets: sendall to each, one selector to read."""
    process, port, signals = _start(_bare_engine, interfaces, broadcasts, payload)
    socks = []
    try:
        for _ in range(interfaces):
            sock = socket.create_connection((LOOPBACK, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(sock)
        return _run(process, signals, lambda: _bare_receive(socks, broadcasts, payload), broadcasts)
    finally:
        signals["finished"].set()
        for sock in socks:
            sock.close()
        process.join(TIMEOUT)
