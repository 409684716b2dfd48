"""Game step benchmark: an engine sends each of N interfaces its observation, then waits
for every interface's action, step after step.

The N interfaces are spread over :data:`PROCESSES` forked processes (N / 4 each); the
engine runs in this process. Every contender gets the same bytes: the observation and the
action of :func:`workloads.game_step_messages` (pymasep's own objects when pymasep 0.2 is
installed, as in ``nox -s bench``). Each interface checks every observation against the
one sent and answers with the action (or with :data:`GARBLED`, which fails the run); the
engine checks every action. One untimed step first (it connects everything); then
``steps`` steps are timed, and the result is steps per second.

The contenders:

* pymasep-comm: a ``Server`` whose handlers are ``SocketHandlerQueue`` on one queue, read
  by the engine's thread, as pymasep's engine reads its actions; each interface a
  ``Client`` whose handler answers in ``on_receive``;
* bare sockets: length-prefixed frames, ``sendall`` to each interface, one ``selectors``
  loop reading every socket, on both sides (no thread hand-off at all);
* pyzmq: a ROUTER (``ROUTER_MANDATORY``) in the engine, a DEALER per interface, one
  ``zmq.Poller`` per interface process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import selectors
import socket
import struct
import time
from typing import Any

from bareframes import Frames

from pymasep.comm.client import Client
from pymasep.comm.core import (
    CommunicationError,
    Frame,
    SocketHandler,
    SocketHandlerQueue,
    UnknownConnectionError,
)
from pymasep.comm.server import Server

PROCESSES = 4
LOOPBACK = "127.0.0.1"
ENGINE_ID = "bench-engine"
TIMEOUT = 60.0
GARBLED = b"garbled"
"""What an interface answers to an observation that did not arrive intact."""
_LENGTH = struct.Struct("!I")
_CONTEXT = multiprocessing.get_context("fork")


def _spread(interfaces: int) -> list[range]:
    """The interface numbers each process hosts: N / PROCESSES each (fewer processes
    when there are fewer interfaces)."""
    processes = min(PROCESSES, interfaces)
    return [range(index, interfaces, processes) for index in range(processes)]


class _Run:
    """The interface processes of one run, and the signals they share with the engine."""

    def __init__(self, target: Any, interfaces: int, observation: bytes, action: bytes) -> None:
        self.port: multiprocessing.Queue[int] = _CONTEXT.Queue()
        self.ready = _CONTEXT.Semaphore(0)
        self.finished = _CONTEXT.Event()
        self.groups = _spread(interfaces)
        # Forked before the engine starts a thread: the children inherit none.
        self.processes = [
            _CONTEXT.Process(
                target=target,
                args=(group, observation, action, self.port, self.ready, self.finished),
                daemon=True,
            )
            for group in self.groups
        ]
        for process in self.processes:
            process.start()

    def publish(self, port: int) -> None:
        for _ in self.processes:
            self.port.put(port)

    def wait_ready(self) -> None:
        for _ in self.processes:
            if not self.ready.acquire(timeout=TIMEOUT):
                raise RuntimeError("an interface process did not connect")

    def end(self) -> None:
        self.finished.set()
        for process in self.processes:
            process.join(TIMEOUT)
            if process.is_alive():
                process.kill()


def _steps(steps: int, step: Any) -> float:
    """One untimed step, then ``steps`` timed ones; steps per second."""
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def _check(action: Any, expected: bytes) -> None:
    if action != expected:
        raise RuntimeError("an observation or an action arrived garbled")


# -- pymasep-comm ------------------------------------------------------------------------


class _Player(SocketHandler):
    receive_may_block = False  # it never waits: no delivery thread (the documented opt-in)

    def __init__(
        self, conn: socket.socket, addr: Any, logger: Any, observation: bytes, action: Frame
    ) -> None:
        super().__init__(conn, addr, logger)
        self.observation = observation
        self.action = action

    def on_receive(self, frame: Frame) -> None:
        intact = frame.message == self.observation
        self.send_frame_async(self.action if intact else Frame(GARBLED))


def _our_interfaces(
    group: range, observation: bytes, action: bytes, port: Any, ready: Any, finished: Any
) -> None:
    port_number = port.get(timeout=TIMEOUT)
    clients = []
    try:
        for index in group:
            client = Client(
                f"interface-{index}", _Player, (observation, Frame(action)), LOOPBACK, port_number
            )
            client.connect()
            clients.append(client)
        ready.release()
        finished.wait(TIMEOUT * 4)
    finally:
        for client in clients:
            client.close()


def ours(interfaces: int, steps: int, observation: bytes, action: bytes) -> float:
    """Steps per second through ``Server.send_frame_to`` and a ``SocketHandlerQueue``."""
    run = _Run(_our_interfaces, interfaces, observation, action)
    actions: queue.Queue[bytes] = queue.Queue()
    try:
        with Server(ENGINE_ID, interfaces, SocketHandlerQueue, (actions,), LOOPBACK, 0) as server:
            server.wait_connection()
            assert server.port is not None
            run.publish(server.port)
            run.wait_ready()
            if not server.wait_for_connections(interfaces, TIMEOUT):
                raise RuntimeError("the engine did not see every interface connect")
            ids = server.connection_ids()
            frame = Frame(observation)  # encoded once, as the broadcasts do

            def step() -> None:
                for ident in ids:
                    server.send_frame_to(ident, frame)
                for _ in ids:
                    _check(actions.get(timeout=TIMEOUT), action)

            try:
                return _steps(steps, step)
            finally:
                for ident in ids:  # a bye to each at once, rather than a close() after another
                    with contextlib.suppress(CommunicationError, UnknownConnectionError):
                        server.send_frame_to(ident, Frame.bye_frame())
    finally:
        run.end()


# -- bare sockets ------------------------------------------------------------------------


def _bare_interfaces(
    group: range, observation: bytes, action: bytes, port: Any, ready: Any, finished: Any
) -> None:
    port_number = port.get(timeout=TIMEOUT)
    answer = _LENGTH.pack(len(action)) + action
    garbled = _LENGTH.pack(len(GARBLED)) + GARBLED
    socks = []
    with selectors.DefaultSelector() as selector:
        try:
            for _ in group:
                sock = socket.create_connection((LOOPBACK, port_number))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                selector.register(sock, selectors.EVENT_READ, Frames())
                socks.append(sock)
            ready.release()
            deadline = time.monotonic() + TIMEOUT * 4
            while not finished.is_set() and time.monotonic() < deadline:
                for key, _ in selector.select(0.2):
                    ready = key.fileobj
                    assert isinstance(ready, socket.socket)
                    data = ready.recv(262144)
                    if not data:
                        return
                    for frame in key.data.feed(data):
                        ready.sendall(answer if frame == observation else garbled)
        finally:
            for sock in socks:
                sock.close()


def bare(interfaces: int, steps: int, observation: bytes, action: bytes) -> float:
    """Steps per second with plain sockets and one ``selectors`` loop at each end."""
    run = _Run(_bare_interfaces, interfaces, observation, action)
    conns: list[socket.socket] = []
    try:
        with socket.create_server((LOOPBACK, 0), backlog=interfaces) as listener:
            run.publish(listener.getsockname()[1])
            conns = [listener.accept()[0] for _ in range(interfaces)]
        run.wait_ready()
        message = _LENGTH.pack(len(observation)) + observation  # encoded once
        with selectors.DefaultSelector() as selector:
            for conn in conns:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                selector.register(conn, selectors.EVENT_READ, Frames())

            def step() -> None:
                for conn in conns:
                    conn.sendall(message)
                waiting = interfaces
                deadline = time.monotonic() + TIMEOUT
                while waiting:
                    if time.monotonic() > deadline:
                        raise RuntimeError("actions were lost")
                    for key, _ in selector.select(1.0):
                        ready = key.fileobj
                        assert isinstance(ready, socket.socket)
                        data = ready.recv(262144)
                        if not data:
                            raise RuntimeError("an interface closed")
                        for frame in key.data.feed(data):
                            _check(frame, action)
                            waiting -= 1

            return _steps(steps, step)
    finally:
        for conn in conns:
            conn.close()
        run.end()


# -- pyzmq ---------------------------------------------------------------------------------


def _zmq_interfaces(
    group: range, observation: bytes, action: bytes, port: Any, ready: Any, finished: Any
) -> None:
    import zmq
    from zeromq import make_dealer, received

    port_number = port.get(timeout=TIMEOUT)
    context: zmq.Context[Any] = zmq.Context()
    try:
        poller = zmq.Poller()
        for index in group:
            dealer = make_dealer(context, port_number, b"i%05d" % index)
            dealer.send(b"hello")  # so that the ROUTER knows whom to send to
            poller.register(dealer, zmq.POLLIN)
        ready.release()
        deadline = time.monotonic() + TIMEOUT * 4
        while not finished.is_set() and time.monotonic() < deadline:
            for dealer, frame in received(poller, 200):
                dealer.send(action if frame == observation else GARBLED)
    finally:
        context.destroy(linger=0)


def pyzmq(interfaces: int, steps: int, observation: bytes, action: bytes) -> float:
    """Steps per second, ROUTER (engine) to DEALERs (interfaces)."""
    import zmq
    from zeromq import make_router

    run = _Run(_zmq_interfaces, interfaces, observation, action)
    context: zmq.Context[Any] = zmq.Context()
    try:
        router, port = make_router(context)
        router.setsockopt(zmq.RCVTIMEO, int(TIMEOUT * 1000))  # zmq.Again past it: lost
        run.publish(port)
        run.wait_ready()
        ids = [router.recv_multipart()[0] for _ in range(interfaces)]

        def step() -> None:
            for ident in ids:
                router.send_multipart([ident, observation], copy=False)
            for _ in ids:
                _check(router.recv_multipart()[1], action)

        return _steps(steps, step)
    finally:
        context.destroy(linger=0)
        run.end()
