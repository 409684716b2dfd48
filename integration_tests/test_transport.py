"""Server and Client together, over loopback: each fault of pymasep 0.2 as a test."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pymasep.comm.client import Client
from pymasep.comm.core import (
    CommunicationConnectionError,
    ConnectionClosedError,
    ConnectionRejectedError,
    Frame,
    FrameKind,
    FrameTooLargeError,
    SocketHandler,
    SocketHandlerQueue,
    UnknownConnectionError,
    Wire,
)
from pymasep.comm.core.connection import CLOSED_BY_PEER
from pymasep.comm.core.testing.peers import (
    assert_settles,
    descriptors,
    read_to_eof,
    wait_registered,
)
from pymasep.comm.core.wire import PREAMBLE
from pymasep.comm.server import Server

LOOPBACK = "127.0.0.1"
ENGINE = "engine"


class Recorder(SocketHandlerQueue):
    """Queues frames and records how the connection ended."""

    ended: queue.Queue[str]

    def on_disconnect(self, reason: str) -> None:
        type(self).ended.put(reason)


@pytest.fixture
def inbox() -> queue.Queue[bytes]:
    return queue.Queue()


@pytest.fixture
def server(inbox: queue.Queue[bytes]) -> Iterator[Server]:
    Recorder.ended = queue.Queue()
    with Server(ENGINE, 40, Recorder, (inbox,), LOOPBACK, 0) as engine:
        engine.wait_connection()
        yield engine


def connect(server: Server, ident: str, replies: queue.Queue[bytes] | None = None) -> Client:
    client = Client(ident, SocketHandlerQueue, (replies or queue.Queue(),), LOOPBACK, server.port)
    client.connect(timeout=5)
    wait_registered(server, ident)  # the client is done a moment before the server
    return client


def drain(source: queue.Queue[bytes], count: int) -> list[bytes]:
    return [source.get(timeout=10) for _ in range(count)]


class Echo(SocketHandler):
    def on_receive(self, frame: Frame) -> None:
        self.send_frame_async(frame)


@pytest.mark.timeout(60)
def test_32_interfaces_exchange_both_ways(server: Server, inbox: queue.Queue[bytes]) -> None:
    inboxes: dict[str, queue.Queue[bytes]] = {f"i{n}": queue.Queue() for n in range(32)}
    clients = [connect(server, ident, replies) for ident, replies in inboxes.items()]
    try:
        assert server.wait_for_connections(32, 5)
        for step in range(20):
            for ident in inboxes:
                server.send_frame_to(ident, Frame(b"observation %d" % step))
            for client in clients:
                client.send_frame_to(ENGINE, Frame(f"{client.id} {step}".encode()))
        for ident, replies in inboxes.items():
            assert drain(replies, 20) == [b"observation %d" % step for step in range(20)], ident
        received = drain(inbox, 32 * 20)
        for client in clients:
            mine = [frame for frame in received if frame.split()[0] == client.id.encode()]
            assert mine == [f"{client.id} {step}".encode() for step in range(20)]
    finally:
        for client in clients:
            client.close()


def test_max_connection_refuses_the_next_interface_with_a_reason(inbox: queue.Queue[bytes]) -> None:
    with Server(ENGINE, 1, SocketHandlerQueue, (inbox,), LOOPBACK, 0) as engine:
        engine.wait_connection()
        with connect(engine, "first") as first:
            late = Client("second", SocketHandlerQueue, (queue.Queue(),), LOOPBACK, engine.port)
            with pytest.raises(ConnectionRejectedError, match="full") as raised:
                late.connect(timeout=5)
            assert "1 connections" in raised.value.reason
            first.send_frame_to(ENGINE, Frame(b"still here"))
            assert inbox.get(timeout=5) == b"still here"


def test_an_id_already_connected_is_refused_and_the_first_keeps_working(
    server: Server, inbox: queue.Queue[bytes]
) -> None:
    with connect(server, "twin") as first:
        impostor = Client("twin", SocketHandlerQueue, (queue.Queue(),), LOOPBACK, server.port)
        with pytest.raises(ConnectionRejectedError, match="already connected"):
            impostor.connect(timeout=5)
        first.send_frame_to(ENGINE, Frame(b"original"))
        assert inbox.get(timeout=5) == b"original"
        assert server.connection_ids() == ["twin"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "garbage",
    [
        b"",  # says nothing at all
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x89PMC\x01\x01\xff\xff\xff\xff",  # a v1 hello claiming 4 GiB
        b"\x89PMC\x07",  # an unknown protocol version
        os.urandom(64),
    ],
)
def test_silent_or_garbage_peers_close_alone_and_delay_nobody(
    inbox: queue.Queue[bytes], garbage: bytes
) -> None:
    Recorder.ended = queue.Queue()
    # A silent intruder is closed after 3 s: serving the honest client sooner shows that
    # it was not kept waiting behind the intruder.
    with (
        Server(ENGINE, 40, Recorder, (inbox,), LOOPBACK, 0, handshake_timeout=3.0) as server,
        socket.create_connection((LOOPBACK, server.port), timeout=10) as intruder,
    ):
        server.wait_connection()
        intruder.sendall(garbage)
        start = time.monotonic()
        with connect(server, "honest") as client:
            client.send_frame_to(ENGINE, Frame(b"hello"))
            assert inbox.get(timeout=5) == b"hello"
            assert time.monotonic() - start < 2.0
            assert server.connection_ids() == ["honest"]
            answer = read_to_eof(intruder)  # the server closes it: at once, or after 3 s
            # A v1 intruder may be told why; it is never welcomed.
            assert answer == b"" or answer.startswith(PREAMBLE + bytes([FrameKind.REFUSE]))
            assert server.connection_ids() == ["honest"]
            client.send_frame_to(ENGINE, Frame(b"still here"))
            assert inbox.get(timeout=5) == b"still here"


def test_a_peer_that_dies_is_noticed_and_unregistered(server: Server) -> None:
    client = connect(server, "doomed")
    assert client.socket is not None
    # Cut the connection without a bye, as a killed process would.
    client.socket.shutdown(socket.SHUT_RDWR)
    assert "connection lost" in Recorder.ended.get(timeout=2)
    wait_registered(server, "doomed", present=False)
    with pytest.raises(UnknownConnectionError):
        server.send_frame_to("doomed", Frame(b"x"))
    client.close()


def test_a_bye_from_the_interface_closes_after_its_queued_frames(
    server: Server, inbox: queue.Queue[bytes]
) -> None:
    client = connect(server, "leaver")
    for index in range(500):
        client.send_frame_to(ENGINE, Frame(b"%d" % index))
    client.send_frame_to(ENGINE, Frame.bye_frame())  # what pymasep 0.2 interfaces do
    assert drain(inbox, 500) == [b"%d" % index for index in range(500)]
    assert Recorder.ended.get(timeout=2) == "closed by the peer"
    # Once closed, the connection is gone from the client too.
    with pytest.raises((ConnectionClosedError, UnknownConnectionError)):
        client.send_frame_to(ENGINE, Frame(b"too late"))
    client.close()


def test_sending_on_a_closed_handler_raises_a_typed_error(server: Server) -> None:
    client = connect(server, "closer")
    handler = client.get_connection(ENGINE)
    client.close()
    assert handler.closed
    with pytest.raises(ConnectionClosedError):
        handler.send_frame_async(Frame(b"after close"))
    with pytest.raises(ConnectionClosedError):
        handler.send_frame(Frame(b"after close"))


def test_connect_fails_fast_when_nothing_listens() -> None:
    with socket.create_server((LOOPBACK, 0)) as placeholder:
        port = placeholder.getsockname()[1]
    client = Client("lonely", SocketHandlerQueue, (queue.Queue(),), LOOPBACK, port)
    start = time.monotonic()
    with pytest.raises(CommunicationConnectionError, match="cannot connect"):
        client.connect(timeout=2)
    assert time.monotonic() - start < 2


def test_legacy_frames_over_64_kib_raise_before_anything_is_sent(
    server: Server, inbox: queue.Queue[bytes]
) -> None:
    client = Client(
        "old", SocketHandlerQueue, (queue.Queue(),), LOOPBACK, server.port, wire="legacy"
    )
    with client:
        client.connect(timeout=5)
        wait_registered(server, "old")
        assert server.get_connection("old").wire is Wire.LEGACY
        with pytest.raises(FrameTooLargeError):
            client.send_frame_to(ENGINE, Frame(bytes(70_000)))
        client.send_frame_to(ENGINE, Frame(b"small is fine"))
        # Had any byte of the large frame gone out, the server would read its 2-byte
        # length (70,000 mod 65,536) and deliver that many bytes of it first.
        assert inbox.get(timeout=5) == b"small is fine"
    # The bye came after everything the client sent: the server has delivered it all.
    assert Recorder.ended.get(timeout=5) == "closed by the peer"
    assert inbox.empty()


@pytest.mark.timeout(30)
def test_close_ends_every_thread_and_frees_the_port(inbox: queue.Queue[bytes]) -> None:
    before = set(threading.enumerate())
    engine = Server(ENGINE, 4, SocketHandlerQueue, (inbox,), LOOPBACK, 0)
    engine.wait_connection()
    port = engine.port
    assert port is not None
    clients = [connect(engine, f"c{n}") for n in range(3)]
    engine.close()
    engine.close()  # idempotent
    for client in clients:
        client.close()
    # The process's I/O thread ends on its own once nothing is registered.
    for thread in set(threading.enumerate()) - before:
        thread.join(2)
    assert set(threading.enumerate()) <= before
    with Server(ENGINE, 1, SocketHandlerQueue, (inbox,), LOOPBACK, port) as again:
        assert again.port == port


@pytest.mark.timeout(60)
def test_50_connect_close_cycles_leave_no_thread_and_no_descriptor(server: Server) -> None:
    connect(server, "warm-up").close()
    threads, fds = len(threading.enumerate()), descriptors()
    for cycle in range(50):
        connect(server, f"cycle-{cycle}").close()
    assert_settles(threads, fds)


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.timeout(30)
@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_server_and_client_exchange_over_ipv6_loopback(inbox: queue.Queue[bytes]) -> None:
    replies: queue.Queue[bytes] = queue.Queue()
    with Server(ENGINE, 2, SocketHandlerQueue, (inbox,), "::1", 0) as engine:
        engine.wait_connection()
        with Client("six", SocketHandlerQueue, (replies,), "::1", engine.port) as client:
            client.connect(timeout=5)
            wait_registered(engine, "six")
            client.send_frame_to(ENGINE, Frame(b"over IPv6"))
            engine.send_frame_to("six", Frame(b"and back"))
            assert inbox.get(timeout=5) == b"over IPv6"
            assert replies.get(timeout=5) == b"and back"
            assert client.socket is not None
            assert client.socket.family == socket.AF_INET6


# --- nothing lost at exit ------------------------------------------------------------------

_ENGINE_THAT_RETURNS = """
from pymasep.comm.core import Frame, SocketHandler
from pymasep.comm.server import Server


def main() -> None:
    server = Server("engine", 1, SocketHandler, (), "127.0.0.1", 0)
    server.wait_connection()
    print(server.port, flush=True)
    assert server.wait_for_connections(1, 30)
    for number in range({count}):
        server.send_frame_to("iface", Frame(number.to_bytes(4, "big") + bytes({size})))
    # Returns without close(), as pymasep's engine does: the frames still queued must
    # not die with the interpreter.


main()
"""


@pytest.mark.timeout(60)
def test_frames_accepted_before_the_program_ends_are_delivered(tmp_path: Any) -> None:
    count, size = 200, 256 * 1024  # 50 MB: most of it still queued when main() returns
    script = tmp_path / "engine.py"
    script.write_text(_ENGINE_THAT_RETURNS.format(count=count, size=size))
    engine = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert engine.stdout is not None
        port = int(engine.stdout.readline())
        Recorder.ended = queue.Queue()
        inbox: queue.Queue[bytes] = queue.Queue()
        client = Client("iface", Recorder, (inbox,), LOOPBACK, port)
        client.connect(timeout=10)
        received = [inbox.get(timeout=30) for _ in range(count)]
        assert [int.from_bytes(m[:4], "big") for m in received] == list(range(count))
        assert Recorder.ended.get(timeout=30) == CLOSED_BY_PEER  # it said bye at exit
        _, errors = engine.communicate(timeout=30)
        assert engine.returncode == 0, errors
        assert "Traceback" not in errors
        client.close()
    finally:
        engine.kill()
        engine.wait()
