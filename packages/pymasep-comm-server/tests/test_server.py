"""Server against raw-socket peers: core's ClientHandshake, or pymasep 0.2's bytes by hand.

These tests run with only pymasep-comm-core and pymasep-comm-server installed: the
clients are plain sockets. Each fault of pymasep 0.2's server has a test here.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import inspect
import logging
import os
import queue
import random
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from engines import ENGINE, Ended, Engine, Inbox, MakeServer, RecordingServer

from pymasep.comm.core import (
    ConnectionClosedError,
    ConnectionRejectedError,
    DisconnectCode,
    Frame,
    FrameKind,
    FrameTooLargeError,
    SendLimits,
    SocketHandler,
    SocketHandlerQueue,
    UnknownConnectionError,
    Wire,
    encode_frame,
)
from pymasep.comm.core.handshake import ClientHandshake
from pymasep.comm.core.socket_handler import CLOSED_BY_PEER, CLOSED_LOCALLY, CONNECTION_LOST
from pymasep.comm.core.testing.contract import (
    assert_logged_only_to_the_package,
    assert_seed_constructor,
)
from pymasep.comm.core.testing.peers import (
    LOOPBACK,
    PeerRecorder,
    RawClient,
    answer_the_bye,
    assert_settles,
    descriptors,
    in_thread,
    legacy_frame,
    read_exactly,
    read_to_eof,
    wait_registered,
)
from pymasep.comm.core.wire import PREAMBLE, encode_header
from pymasep.comm.server import Server
from pymasep.comm.server import server as server_module

# Every thread a test starts (handlers, helpers) has ended after it.
pytestmark = pytest.mark.usefixtures("no_thread_left_behind")


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def server(recording_server: RecordingServer) -> Engine:
    return recording_server()


Connect = Callable[[Server, str], RawClient]


@pytest.fixture
def raw_clients() -> Iterator[Connect]:
    """``raw_clients(server, ident)``: a connected RawClient, once the server lists it."""
    made: list[RawClient] = []

    def make(server: Server, ident: str) -> RawClient:
        client = RawClient(server.port, ident)
        made.append(client)
        wait_registered(server, ident)
        return client

    yield make
    for client in made:
        client.sock.close()


def _assert_exchanges(
    server: Server, inbox: Inbox, client: RawClient, up: bytes, down: bytes
) -> None:
    """``up`` reaches the server's handlers from ``client``, and ``down`` comes back."""
    client.send(up)
    assert inbox.get(timeout=5) == up
    server.send_frame_to(client.handshake.ident, Frame(down))
    assert client.recv_data() == down


# --- the API of pymasep 0.2 ---------------------------------------------------------------


def test_the_constructor_takes_the_parameters_of_pymasep_02() -> None:
    empty = inspect.Parameter.empty
    assert_seed_constructor(
        Server,
        [
            ("ident", empty),
            ("max_connection", empty),
            ("socket_handler_class", empty),
            ("socket_handler_args", empty),
            ("host", empty),
            ("port", empty),
            ("wait_announcement", False),
            ("log_level", logging.WARNING),
        ],
    )
    for name in ("wait_connection", "stop_wait_connection", "wait_announcement"):
        assert callable(getattr(Server, name)), name
    assert callable(Server.stop_wait_announcement)


def test_the_attributes_of_pymasep_02(inbox: Inbox) -> None:
    args = (inbox,)
    with Server(ENGINE, 3, SocketHandlerQueue, args, LOOPBACK, 0) as server:
        assert server.id == ENGINE
        assert server.max_connection == 3
        assert server.host == LOOPBACK
        assert isinstance(server.port, int) and server.port > 0  # port 0: the one bound
        assert server.socket is not None and server.socket.getsockname() == (LOOPBACK, server.port)
        assert server.socket_handler_class is SocketHandlerQueue
        assert server.socket_handler_args is args
        assert isinstance(server.wait_connection_thread, threading.Thread)
        assert not server.wait_connection_thread.is_alive()  # wait_connection() starts it
        assert server._current_connections == {}
        assert server.logger.name == "pymasep.comm.server"
        assert server.logger.level == logging.WARNING


def test_max_connection_and_max_pending_handshakes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_connection"):
        Server(ENGINE, 0, SocketHandler, (), LOOPBACK, 0)
    with pytest.raises(ValueError, match="max_pending_handshakes"):
        Server(ENGINE, 1, SocketHandler, (), LOOPBACK, 0, max_pending_handshakes=0)


# --- accepting -----------------------------------------------------------------------------


def test_a_v1_client_is_accepted_and_frames_cross_both_ways(
    server: Engine, inbox: Inbox, raw_clients: Connect
) -> None:
    client = raw_clients(server, "iface")
    assert client.handshake.server_ident == ENGINE
    assert server.wait_for_connections(1, 5)
    assert server.connection_ids() == ["iface"]
    assert server.get_connection("iface").peer_id == "iface"
    _assert_exchanges(server, inbox, client, b"action", b"observation")


def test_connections_have_tcp_nodelay(server: Engine, raw_clients: Connect) -> None:
    # Without it, Nagle's algorithm holds back a small frame sent while an earlier one is
    # unacknowledged: a request/response step would wait for the peer's delayed ACK.
    raw_clients(server, "iface")
    handler_socket = server.get_connection("iface").socket
    assert handler_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_wait_for_connections_times_out_with_false(server: Engine) -> None:
    start = time.monotonic()
    assert server.wait_for_connections(1, 0.1) is False
    assert time.monotonic() - start < 1


def test_frames_sent_right_behind_the_hello_are_not_lost(server: Engine, inbox: Inbox) -> None:
    handshake = ClientHandshake("eager")
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as sock:
        frames = b"".join(encode_frame(Frame(b"early %d" % n)) for n in range(3))
        sock.sendall(handshake.bytes_to_send() + frames)
        assert [inbox.get(timeout=5) for _ in range(3)] == [b"early %d" % n for n in range(3)]
        sock.sendall(encode_frame(Frame.bye_frame()))
        assert read_to_eof(sock).startswith(PREAMBLE)


def test_the_accept_thread_restarts_after_stop_wait_connection(
    server: Engine, raw_clients: Connect
) -> None:
    server.stop_wait_connection()
    assert not server.wait_connection_thread.is_alive()
    server.wait_connection()
    raw_clients(server, "later")
    assert server.wait_for_connections(1, 5)


def test_wait_connection_thread_keeps_the_rules_of_a_thread(inbox: Inbox) -> None:
    # pymasep 0.2's wait_connection_thread was a threading.Thread: code that joins it or
    # starts it again gets what a Thread gives, though it no longer runs a thread.
    with Server(ENGINE, 1, SocketHandlerQueue, (inbox,), LOOPBACK, 0) as server:
        accepting = server.wait_connection_thread
        assert isinstance(accepting, threading.Thread)
        with pytest.raises(RuntimeError, match="before it is started"):
            accepting.join()
        server.wait_connection()
        with pytest.raises(RuntimeError, match="only be started once"):
            accepting.start()
        server.stop_wait_connection()
        accepting.join(5)
        assert not accepting.is_alive()


def test_a_client_reset_during_the_handshake_costs_only_its_own_connection(
    server: Engine, raw_clients: Connect, inbox: Inbox
) -> None:
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as quitter:
        quitter.sendall(PREAMBLE)  # half a hello, then a reset (RST, not FIN)
        quitter.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client = raw_clients(server, "honest")
    assert server.connection_ids() == ["honest"]
    client.send(b"served")
    assert inbox.get(timeout=5) == b"served"
    assert server.ended.empty()  # the quitter never became a connection


# --- no frame lost, no deadlock ------------------------------------------------------------


@pytest.mark.timeout(60)
def test_32_interfaces_exchange_both_ways(
    server: Engine, inbox: Inbox, raw_clients: Connect
) -> None:
    clients = {f"i{n}": raw_clients(server, f"i{n}") for n in range(32)}
    assert server.wait_for_connections(32, 5)
    assert sorted(server.connection_ids()) == sorted(clients)
    for step in range(50):
        for ident, client in clients.items():
            server.send_frame_to(ident, Frame(b"observation %d" % step))
            client.send(f"{ident} {step}".encode())
    for client in clients.values():
        assert [client.recv_data() for _ in range(50)] == [b"observation %d" % s for s in range(50)]
    received = [inbox.get(timeout=5) for _ in range(32 * 50)]
    for ident in clients:
        mine = [payload for payload in received if payload.split()[0] == ident.encode()]
        assert mine == [f"{ident} {step}".encode() for step in range(50)]


# --- interfaces that leave -----------------------------------------------------------------


def _left_once(server: Engine, ended: Ended, handler: SocketHandler) -> str:
    """The reason given, once, to both hooks; the handler is unregistered and has ended."""
    ident = handler.peer_id
    assert ident is not None
    hook_ident, reason = server.ended.get(timeout=5)
    assert hook_ident == ident
    assert ended.get(timeout=1) == (ident, reason)
    handler.join(2)
    assert not handler.is_alive(), "the handler thread still runs"
    assert not server.is_connection_registered(ident)
    assert server.ended.empty() and ended.empty(), "on_disconnect ran more than once"
    return reason


def test_an_interface_saying_bye_is_unregistered_and_reported_once(
    server: Engine, ended: Ended, raw_clients: Connect
) -> None:
    client = raw_clients(server, "leaver")
    handler = server.get_connection("leaver")
    client.send_bye()
    assert _left_once(server, ended, handler) == CLOSED_BY_PEER
    assert client.until_eof() == []
    server.send_frame_to("leaver", Frame(b"gone"))  # it said bye: dropped, no error


@pytest.mark.parametrize("how", ["close", "reset"])
def test_an_interface_that_dies_is_unregistered_and_reported_once(
    server: Engine, ended: Ended, raw_clients: Connect, how: str
) -> None:
    client = raw_clients(server, "doomed")
    handler = server.get_connection("doomed")
    if how == "reset":
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()
    assert _left_once(server, ended, handler).startswith(CONNECTION_LOST)


def test_a_freed_slot_takes_a_new_interface(make_server: MakeServer, raw_clients: Connect) -> None:
    server = make_server(max_connection=1)
    raw_clients(server, "first").leave()
    wait_registered(server, "first", present=False)
    raw_clients(server, "second")  # not refused: the first one's slot is free
    assert server.connection_ids() == ["second"]


# --- bad peers -------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_silent_client_does_not_delay_the_others(
    server: Engine, inbox: Inbox, raw_clients: Connect
) -> None:
    assert server.handshake_timeout >= 5  # the silent one stays pending meanwhile
    with socket.create_connection((LOOPBACK, server.port)) as silent:
        start = time.monotonic()
        client = raw_clients(server, "honest")
        assert time.monotonic() - start < 1
        client.send(b"on time")
        assert inbox.get(timeout=5) == b"on time"
        assert server.connection_ids() == ["honest"]
        silent.setblocking(False)
        with pytest.raises(BlockingIOError):  # still pending, not answered
            silent.recv(1)


@pytest.mark.timeout(20)
def test_a_flood_of_silent_connections_cannot_lock_out_a_client(
    make_server: MakeServer, raw_clients: Connect
) -> None:
    server = make_server(max_pending_handshakes=3)
    assert server.handshake_timeout >= 5  # none of the silent ones times out meanwhile
    flood = [socket.create_connection((LOOPBACK, server.port), timeout=5) for _ in range(3)]
    try:
        client = raw_clients(server, "honest")  # the fourth handshake in progress
        client.send(b"in")
        assert server.connection_ids() == ["honest"]
        assert read_to_eof(flood[0]) == b""  # the oldest made room
        for sock in flood[1:]:  # the others are still waited for
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        for sock in flood:
            sock.close()


class _Gate(SocketHandler):
    """A handler whose first construction holds the accept loop until ``release`` is set."""

    entered = threading.Event()
    release = threading.Event()

    def __init__(self, conn: socket.socket, addr: Any, logger: Any) -> None:
        if not _Gate.entered.is_set():
            _Gate.entered.set()
            _Gate.release.wait(10)
        super().__init__(conn, addr, logger)


@pytest.mark.timeout(30)
def test_a_flood_past_the_limit_in_one_selector_batch_does_not_kill_the_accept_loop(
    make_server: MakeServer, raw_clients: Connect
) -> None:
    # Regression: one select() batch held the listener's event and a read event of the
    # oldest pending handshake. Accepting dropped that oldest one to make room, then its
    # stale event raised KeyError, and the accept thread died: clients hung in connect().
    _Gate.entered.clear()
    _Gate.release.clear()
    server = make_server(_Gate, max_pending_handshakes=4)
    flood = [socket.create_connection((LOOPBACK, server.port), timeout=5) for _ in range(3)]
    try:
        held = in_thread(RawClient, server.port, "held")  # accepted after the flood
        assert _Gate.entered.wait(10)  # the loop is held: the three are pending now
        # While it is held: two more connections (the limit is passed while accepting)
        # and then a byte from the oldest, so that one batch holds both events.
        flood += [socket.create_connection((LOOPBACK, server.port), timeout=5) for _ in range(2)]
        flood[0].sendall(PREAMBLE[:1])
        _Gate.release.set()
        held().sock.close()
        client = raw_clients(server, "honest")  # at once, not after a connect() timeout
        client.send(b"in")
        assert server.wait_connection_thread.is_alive()
        assert read_to_eof(flood[0]) == b""  # the oldest made room
    finally:
        _Gate.release.set()
        for sock in flood:
            sock.close()


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc")
def test_a_stalled_interface_costs_the_engine_bounded_memory_and_delays_nobody(
    make_server: MakeServer, inbox: Inbox
) -> None:
    limit = 8 << 20
    server = make_server(SocketHandlerQueue, (inbox,), send_limits=SendLimits(hard_limit=limit))
    stalled = RawClient(server.port, "stalled")  # connected, and never reads
    honest = [RawClient(server.port, f"honest{n}") for n in range(2)]
    for ident in ("stalled", "honest0", "honest1"):
        wait_registered(server, ident)
    steps, frame = 2000, Frame(bytes(100_000))  # 200 MB for each interface

    def play(client: RawClient) -> int:
        received = 0
        for _ in range(steps):
            if client.recv_frame() is None:
                break
            received += 1
            client.send(b"action")
        return received

    players = [in_thread(play, client) for client in honest]
    before, peak_rss, peak_queued = _rss(), 0, 0
    for step in range(steps):  # a game: each step, an observation to all, then actions
        for client in honest:
            server.send_frame_to(client.handshake.ident, frame)
        if server.is_connection_registered("stalled"):
            handler = server.get_connection("stalled")
            with contextlib.suppress(ConnectionClosedError):  # cut meanwhile
                server.send_frame_to("stalled", frame)
            peak_queued = max(peak_queued, handler.stats.bytes_queued)
        # The others are not delayed by the stalled one (a generous bound, for busy CI).
        assert [inbox.get(timeout=5) for _ in honest] == [b"action", b"action"]
        if step % 50 == 0:
            peak_rss = max(peak_rss, _rss() - before)
    assert [join(60) for join in players] == [steps, steps]
    ident, reason = server.ended.get(timeout=10)
    assert ident == "stalled"
    assert reason.code is DisconnectCode.SLOW_CONSUMER  # type: ignore[attr-defined]
    assert peak_queued <= limit
    assert peak_rss < limit + (64 << 20)  # unbounded, it would be 200 MB
    stalled.sock.close()


@pytest.mark.timeout(30)
def test_once_close_returns_no_connection_can_be_registered(make_server: MakeServer) -> None:
    _Gate.entered.clear()
    _Gate.release.clear()
    server = make_server(_Gate)
    late = in_thread(RawClient, server.port, "late")
    assert _Gate.entered.wait(10)  # its hello is being answered, held there
    server.close(timeout=0.2)  # gives up waiting for the held accept loop
    _Gate.release.set()
    with pytest.raises(ConnectionRejectedError, match="closing"):
        late()
    server.wait_connection_thread.join(10)
    assert server.connection_ids() == []


@pytest.mark.timeout(30)
def test_an_accept_loop_that_fails_closes_the_listener_and_says_so(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("accept bug")

    monkeypatch.setattr(server_module._WaitConnection, "_accept", broken)
    with caplog.at_level(logging.ERROR, logger="pymasep.comm.server"):
        server = make_server()
        # It makes the loop fail, and is never served: reset with the listener (in its
        # connect(), or later), or closed.
        with (
            contextlib.suppress(ConnectionError),
            socket.create_connection((LOOPBACK, server.port), timeout=5) as first,
        ):
            assert read_to_eof(first) == b""
        server.wait_connection_thread.join(10)
    # Never half alive: nobody hangs in connect() behind a loop that is gone.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, server.port), timeout=5).close()
    assert any(r.exc_info and "accept bug" in str(r.exc_info[1]) for r in caplog.records)


class _Broken(SocketHandler):
    def __init__(self, conn: socket.socket, addr: Any, logger: Any, box: list[int]) -> None:
        box.append(1)
        if len(box) == 1:
            raise RuntimeError("handler bug")
        super().__init__(conn, addr, logger)


@pytest.mark.timeout(30)
def test_a_handler_constructor_that_raises_ends_that_connection_only(
    make_server: MakeServer, raw_clients: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(_Broken, ([],))
    with caplog.at_level(logging.ERROR, logger="pymasep.comm.server"):
        with socket.create_connection((LOOPBACK, server.port), timeout=5) as first:
            first.sendall(ClientHandshake("first").bytes_to_send())
            assert read_to_eof(first) == b""  # closed, without an answer
        raw_clients(server, "second")  # the server still accepts
    assert server.connection_ids() == ["second"]
    assert any(r.exc_info and "handler bug" in str(r.exc_info[1]) for r in caplog.records)


@pytest.mark.timeout(20)
def test_a_client_that_never_says_hello_is_closed_after_the_handshake_timeout(
    make_server: MakeServer,
) -> None:
    server = make_server(handshake_timeout=0.3)
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as silent:
        start = time.monotonic()
        assert read_to_eof(silent) == b""
        assert 0.2 < time.monotonic() - start < 3


GARBAGE = {
    "random bytes": random.Random(11).randbytes(64),
    "an HTTP request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "a truncated v1 hello": PREAMBLE + encode_frame(Frame.hello_frame("cut short"))[:7],
    "a truncated legacy hello": legacy_frame(b"cut short")[:5],
    "a v1 hello claiming 4 GiB": PREAMBLE + encode_header(FrameKind.HELLO, 2**32 - 1, Wire.V1),
    "a legacy hello claiming 64 KiB": b"\xff\xff" + bytes(100),
    "an unknown protocol version": b"\x89PMC\x07",
    "a data frame instead of the hello": PREAMBLE + encode_frame(Frame(b"data")),
    "an empty id": PREAMBLE + encode_header(FrameKind.HELLO, 0, Wire.V1),
    "an id that is not UTF-8": legacy_frame(b"\xff\xfe\xfd"),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("garbage", list(GARBAGE.values()), ids=list(GARBAGE))
def test_a_garbage_hello_closes_that_connection_only(
    recording_server: RecordingServer, inbox: Inbox, raw_clients: Connect, garbage: bytes
) -> None:
    server = recording_server(handshake_timeout=1.0)
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as intruder:
        intruder.sendall(garbage)
        start = time.monotonic()
        client = raw_clients(server, "honest")
        assert time.monotonic() - start < 0.5, "the garbage delayed an honest client"
        answer = read_to_eof(intruder)  # closed by the server: now, or after the timeout
        assert time.monotonic() - start < 4
    # A v1 intruder may be told why; it is never welcomed.
    assert answer == b"" or answer.startswith(PREAMBLE + bytes([FrameKind.REFUSE]))
    assert server.connection_ids() == ["honest"]
    _assert_exchanges(server, inbox, client, b"served", b"still serving")


def test_a_v1_hello_claiming_gigabytes_is_refused_with_a_reason(server: Engine) -> None:
    handshake = ClientHandshake("probe")
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as intruder:
        intruder.sendall(PREAMBLE + encode_header(FrameKind.HELLO, 3 << 30, Wire.V1))
        with pytest.raises(ConnectionRejectedError, match="larger than the limit"):
            handshake.receive_data(read_to_eof(intruder))


# What an interface sends after a proper hello, and how the server then ends its
# connection. A truncated frame is followed by the end of the stream.
GARBAGE_AFTER_HELLO = {
    "random bytes": (random.Random(11).randbytes(64), "protocol error"),
    "an HTTP request": (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "protocol error"),
    "a truncated frame": (encode_frame(Frame(b"cut short"))[:7], CONNECTION_LOST),
    "a length header claiming 3 GiB": (
        encode_header(FrameKind.DATA, 3 << 30, Wire.V1),
        "protocol error: frame of 3221225472 bytes is larger than the limit",
    ),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("garbage", "reason"), list(GARBAGE_AFTER_HELLO.values()), ids=list(GARBAGE_AFTER_HELLO)
)
def test_garbage_after_the_hello_closes_that_interface_only(
    server: Engine, inbox: Inbox, ended: Ended, raw_clients: Connect, garbage: bytes, reason: str
) -> None:
    honest = raw_clients(server, "honest")
    intruder = raw_clients(server, "intruder")
    handler = server.get_connection("intruder")
    intruder.sock.sendall(garbage)
    if reason == CONNECTION_LOST:
        intruder.sock.shutdown(socket.SHUT_WR)
    assert _left_once(server, ended, handler).startswith(reason)
    intruder.sock.settimeout(5)
    read_to_eof(intruder.sock)  # the server closed it
    assert server.connection_ids() == ["honest"]
    for step in range(3):
        _assert_exchanges(server, inbox, honest, b"action %d" % step, b"observation %d" % step)
    assert inbox.empty()  # nothing of the garbage was delivered


# --- out of descriptors --------------------------------------------------------------------


class FailingListener:
    """Stands in for a server's listening socket; while ``failing`` is set its accept()
    fails as it does when the process is out of file descriptors (EMFILE)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.failing = threading.Event()
        self.failing.set()
        self.attempts: list[float] = []  # when each accept() was tried
        self.tried = threading.Event()
        self.third = threading.Event()

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> tuple[socket.socket, Any]:
        self.attempts.append(time.monotonic())
        self.tried.set()
        if len(self.attempts) >= 3:
            self.third.set()
        if self.failing.is_set():
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return self.sock.accept()

    def close(self) -> None:
        self.sock.close()


def fail_to_accept(server: Server) -> FailingListener:
    """Restart the server's accept thread on a listener that fails (see above)."""
    server.stop_wait_connection()
    assert server.socket is not None
    listener = FailingListener(server.socket)
    server.socket = listener  # type: ignore[assignment]
    server.wait_connection()
    return listener


@pytest.mark.timeout(30)
def test_accept_failing_for_want_of_descriptors_backs_off_then_resumes(
    server: Engine, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    listener = fail_to_accept(server)
    with caplog.at_level(logging.WARNING, logger="pymasep.comm"):
        # The connection waits in the listen queue: the listener stays readable.
        patient = in_thread(RawClient, server.port, "patient")
        assert listener.tried.wait(5)
        assert listener.third.wait(10)
        first, second, third = listener.attempts[:3]
        # Backing off, doubling: retrying on every wake-up would try again within
        # microseconds (a lower bound: a busy machine only makes the gaps longer).
        assert second - first >= 0.09
        assert third - second >= 0.19
        warnings = [r for r in caplog.records if "accept failed" in r.getMessage()]
        assert 2 <= len(warnings) <= len(listener.attempts)  # per back-off, not per wake-up
        listener.failing.clear()
        client = patient()  # accepted at the next try
    wait_registered(server, "patient")
    client.send(b"in at last")
    assert inbox.get(timeout=5) == b"in at last"


@pytest.mark.timeout(30)
def test_accept_resumes_at_once_when_a_connection_closes(
    server: Engine, inbox: Inbox, raw_clients: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaving = raw_clients(server, "leaving")
    # Back off for a minute: only a connection that closes can end it before the test's
    # timeout (and RawClient's, 10 s).
    monkeypatch.setattr(server_module, "_ACCEPT_RETRY_FIRST", 60.0)
    monkeypatch.setattr(server_module, "_ACCEPT_RETRY_LAST", 60.0)
    listener = fail_to_accept(server)
    patient = in_thread(RawClient, server.port, "patient")
    assert listener.tried.wait(5)
    listener.failing.clear()
    leaving.leave()  # frees a descriptor
    client = patient()
    wait_registered(server, "patient")
    client.send(b"in at last")
    assert inbox.get(timeout=5) == b"in at last"


# --- refusals ------------------------------------------------------------------------------


def test_max_connection_refuses_the_next_client_with_a_reason(
    recording_server: RecordingServer, inbox: Inbox, raw_clients: Connect
) -> None:
    server = recording_server(max_connection=2)
    first, second = raw_clients(server, "a"), raw_clients(server, "b")
    with pytest.raises(ConnectionRejectedError) as refused:
        raw_clients(server, "c")
    assert "full" in refused.value.reason and "2 connections" in refused.value.reason
    assert sorted(server.connection_ids()) == ["a", "b"]
    first.send(b"a still here")
    second.send(b"b still here")
    assert {inbox.get(timeout=5), inbox.get(timeout=5)} == {b"a still here", b"b still here"}


def test_an_id_already_connected_is_refused_and_the_first_keeps_working(
    server: Engine, inbox: Inbox, raw_clients: Connect
) -> None:
    first = raw_clients(server, "twin")
    with pytest.raises(ConnectionRejectedError, match="already connected") as refused:
        raw_clients(server, "twin")
    assert "twin" in refused.value.reason
    assert server.connection_ids() == ["twin"]
    _assert_exchanges(server, inbox, first, b"original", b"to the original")


# --- sending errors ------------------------------------------------------------------------


def test_sending_to_an_unknown_id_is_a_typed_key_error(server: Engine) -> None:
    with pytest.raises(UnknownConnectionError) as raised:
        server.send_frame_to("nobody", Frame(b"?"))
    assert isinstance(raised.value, KeyError)


def test_sending_to_a_closing_connection_raises_connection_closed(
    server: Engine, ended: Ended, raw_clients: Connect
) -> None:
    client = raw_clients(server, "slow")
    handler = server.get_connection("slow")
    server.send_frame_to("slow", Frame.bye_frame())
    with pytest.raises(ConnectionClosedError):
        server.send_frame_to("slow", Frame(b"behind the bye"))
    assert client.until_eof() == [Frame.bye_frame()]
    client.sock.close()
    assert _left_once(server, ended, handler) == CLOSED_LOCALLY
    with pytest.raises(ConnectionClosedError):
        handler.send_frame(Frame(b"on the old handler"))


# --- closing -------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_bye_through_send_frame_to_closes_after_the_queued_frames(
    server: Engine, ended: Ended, raw_clients: Connect
) -> None:
    client = raw_clients(server, "done")
    handler = server.get_connection("done")
    frames = [Frame(struct.pack("!I", n) + os.urandom(16 * 1024)) for n in range(500)]
    for frame in frames:
        server.send_frame_to("done", frame)
    server.send_frame_to("done", Frame.bye_frame())  # what pymasep 0.2 engines do
    assert answer_the_bye(client)() == [*frames, Frame.bye_frame()]
    assert _left_once(server, ended, handler) == CLOSED_LOCALLY


@pytest.mark.timeout(30)
def test_close_delivers_every_frame_queued_before_it(
    recording_server: RecordingServer, ended: Ended, raw_clients: Connect
) -> None:
    server = recording_server()
    clients = [raw_clients(server, f"c{n}") for n in range(2)]
    assert server.wait_for_connections(2, 5)
    frames = [Frame(struct.pack("!I", n) + os.urandom(16 * 1024)) for n in range(500)]
    for frame in frames:  # 8 MB for each: most of it still queued when close() starts
        for client in clients:
            server.send_frame_to(client.handshake.ident, frame)
    readers = [answer_the_bye(client) for client in clients]
    server.close(timeout=20)
    for read in readers:
        assert read() == [*frames, Frame.bye_frame()]
    assert sorted(server.ended.get(timeout=1) for _ in clients) == [
        ("c0", CLOSED_LOCALLY),
        ("c1", CLOSED_LOCALLY),
    ]


ACCEPT, IO = f"pymasep-comm-accept-{ENGINE}", "pymasep-comm-io"


def _threads_of(server: Server, before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.name.startswith("pymasep")]


@pytest.mark.timeout(20)
def test_close_ends_every_thread_and_frees_the_port(inbox: Inbox, ended: Ended) -> None:
    before = set(threading.enumerate())
    server = Engine(ENGINE, 8, PeerRecorder, (inbox, ended), LOOPBACK, 0)
    server.wait_connection()
    port = server.port
    assert port is not None
    clients = [RawClient(port, f"c{n}") for n in range(4)]
    assert server.wait_for_connections(4, 5)
    for n in range(4):  # more than the kernel takes at once: the I/O thread writes
        server.send_frame_to(f"c{n}", Frame(bytes(1 << 20)))
    # The accept thread and the process's I/O thread: no thread per connection.
    assert {t.name for t in _threads_of(server, before)} <= {ACCEPT, IO}
    readers = [answer_the_bye(client) for client in clients]
    server.close()
    server.close()  # idempotent
    for read in readers:
        assert read()[-1] == Frame.bye_frame()
    deadline = time.monotonic() + 1
    for thread in _threads_of(server, before):
        thread.join(max(0.0, deadline - time.monotonic()))
    assert [t.name for t in _threads_of(server, before)] == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, port), timeout=2).close()
    with pytest.raises(RuntimeError, match="closed"):
        server.wait_connection()
    with Server(ENGINE, 1, SocketHandler, (), LOOPBACK, port) as again:  # the port is free
        assert again.port == port


@pytest.mark.timeout(20)
def test_the_default_close_ends_every_thread_despite_silent_interfaces(
    inbox: Inbox, ended: Ended
) -> None:
    before = set(threading.enumerate())
    server = Engine(ENGINE, 8, PeerRecorder, (inbox, ended), LOOPBACK, 0)
    server.wait_connection()
    # Each says hello properly, then never reads, never answers the bye, never closes.
    silent = [RawClient(server.port, f"mute{n}") for n in range(4)]
    try:
        assert server.wait_for_connections(4, 5)
        for n in (0, 1):  # more than the socket buffers hold: queued, never written
            server.send_frame_to(f"mute{n}", Frame(bytes(16 << 20)))
        assert {t.name for t in _threads_of(server, before)} <= {ACCEPT, IO}
        server.close()  # the default timeout
        # Not joined here: close() itself must have ended the server's own thread; the
        # process's I/O thread ends on its own once nothing is registered.
        assert [t.name for t in _threads_of(server, before) if t.name != IO] == []
        for thread in _threads_of(server, before):
            thread.join(2)
        assert _threads_of(server, before) == []
        assert server.connection_ids() == []
        assert sorted(server.ended.get(timeout=1) for _ in silent) == [
            (f"mute{n}", CLOSED_LOCALLY) for n in range(4)
        ]
        for client in silent[2:]:  # nothing was queued for them: they got the bye
            client.sock.settimeout(5)
            assert client.until_eof() == [Frame.bye_frame()]
    finally:
        for client in silent:
            client.sock.close()


@pytest.mark.timeout(20)
def test_close_cuts_interfaces_that_never_answer(
    make_server: MakeServer, raw_clients: Connect
) -> None:
    server = make_server()
    for n in range(4):
        raw_clients(server, f"mute{n}")  # they never read, never close
    assert server.wait_for_connections(4, 5)
    server.close(timeout=0.3)  # returns, else pytest-timeout
    assert server.connection_ids() == []


class ClosesTheServer(SocketHandler):
    """Closes its server from ``on_receive`` (timeout 60 s), and says when it returned."""

    def __init__(self, conn: socket.socket, addr: Any, logger: Any, box: dict[str, Any]) -> None:
        super().__init__(conn, addr, logger)
        self.box = box

    def on_receive(self, frame: Frame) -> None:
        self.box["server"].close(timeout=60)
        self.box["took"].put(True)


@pytest.mark.timeout(30)
def test_close_from_on_receive_does_not_wait_for_its_own_handler() -> None:
    box: dict[str, Any] = {"took": queue.Queue()}
    server = Engine(ENGINE, 4, ClosesTheServer, (box,), LOOPBACK, 0)
    box["server"] = server
    server.wait_connection()
    quitter, other = RawClient(server.port, "quitter"), RawClient(server.port, "other")
    assert server.wait_for_connections(2, 5)
    reads = [answer_the_bye(other), answer_the_bye(quitter)]
    quitter.send(b"quit")
    # It waited for "other" (which answers at once), not for itself until its 60 s
    # timeout: it returns well within the test's.
    assert box["took"].get(timeout=20)
    assert [read() for read in reads] == [[Frame.bye_frame()], [Frame.bye_frame()]]
    wait_registered(server, "quitter", present=False)
    assert sorted(server.ended.get(timeout=5) for _ in range(2)) == [
        ("other", CLOSED_LOCALLY),
        ("quitter", CLOSED_LOCALLY),
    ]


def test_the_context_manager_closes(inbox: Inbox) -> None:
    with Server(ENGINE, 1, SocketHandlerQueue, (inbox,), LOOPBACK, 0) as server:
        server.wait_connection()
        client = RawClient(server.port, "inside")
        assert server.wait_for_connections(1, 5)
        read = answer_the_bye(client)
    assert read() == [Frame.bye_frame()]
    assert server.connection_ids() == []
    assert not server.wait_connection_thread.is_alive()


def test_a_server_never_started_closes_cleanly() -> None:
    before = len(os.listdir("/proc/self/fd"))
    Server(ENGINE, 1, SocketHandler, (), LOOPBACK, 0).close()
    assert len(os.listdir("/proc/self/fd")) <= before


@pytest.mark.timeout(60)
def test_50_connect_close_cycles_leave_no_thread_and_no_descriptor(
    server: Engine, raw_clients: Connect
) -> None:
    raw_clients(server, "warm-up").leave()
    # The interface's leave() returns before the server has unregistered it.
    wait_registered(server, "warm-up", present=False)
    threads, fds = len(threading.enumerate()), descriptors()
    for cycle in range(50):
        client = raw_clients(server, f"cycle-{cycle}")
        client.send(b"hi")
        if cycle % 2:
            client.leave()  # the interface leaves
        else:
            server.send_frame_to(f"cycle-{cycle}", Frame.bye_frame())  # the engine sends it away
            assert answer_the_bye(client)() == [Frame.bye_frame()]
    wait_registered(server, "cycle-49", present=False)
    assert_settles(threads, fds)
    assert server.connection_ids() == []


class _MayBlock(PeerRecorder):
    """A handler with a delivery thread of its own."""

    receive_may_block = True


def _still_alive(refs: list[weakref.ref[Any]], seconds: float = 5) -> list[Any]:
    """The objects of ``refs`` still alive after ``seconds`` at most (the last one ends
    in the I/O thread, which returns from its callbacks a moment later)."""
    deadline = time.monotonic() + seconds
    while True:
        gc.collect()
        left = [obj for obj in (ref() for ref in refs) if obj is not None]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.01)


@pytest.mark.parametrize("handler_class", [PeerRecorder, _MayBlock])
def test_connections_that_come_and_go_leave_nothing_of_theirs_alive(
    make_server: MakeServer,
    inbox: Inbox,
    ended: Ended,
    raw_clients: Connect,
    handler_class: type[SocketHandler],
) -> None:
    # An engine meets thousands of connections (15,000 in the 30-minute soak): each one's
    # handler and connection must be freed once it has ended, however it ended.
    server = make_server(handler_class, (inbox, ended))
    refs: list[weakref.ref[Any]] = []
    for cycle in range(40):
        ident = f"cycle-{cycle}"
        client = raw_clients(server, ident)
        handler = server.get_connection(ident)
        refs += [weakref.ref(handler), weakref.ref(handler.connection)]
        server.send_frame_to(ident, Frame(b"x" * 100_000))  # part of it may wait queued
        client.send(b"hi")
        how = cycle % 4
        if how == 0:
            client.leave()
        elif how == 1:  # bye at once, reading nothing
            client.send_bye()
            client.sock.close()
        elif how == 2:  # reset
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.sock.close()
        else:  # the engine sends it away
            server.send_frame_to(ident, Frame.bye_frame())
            answer_the_bye(client)()
        assert ended.get(timeout=5)[0] == ident  # its on_disconnect has run
        del handler
    assert server.connection_ids() == []
    assert _still_alive(refs) == []


# --- both wires on one port ---------------------------------------------------------------


def test_a_pymasep_02_client_and_a_v1_client_share_the_port(
    server: Engine, inbox: Inbox, ended: Ended, raw_clients: Connect
) -> None:
    modern = raw_clients(server, "modern")
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as old:
        old.sendall(legacy_frame(b"old"))  # 0.2's hello: the bare id
        assert read_exactly(old, 2 + len(ENGINE)) == legacy_frame(ENGINE.encode())
        assert server.wait_for_connections(2, 5)
        assert server.get_connection("old").wire is Wire.LEGACY
        assert server.get_connection("modern").wire is Wire.V1
        handler = server.get_connection("old")
        old.sendall(legacy_frame(b"from 0.2"))
        modern.send(b"from v1")
        assert {inbox.get(timeout=5), inbox.get(timeout=5)} == {b"from 0.2", b"from v1"}
        server.send_frame_to("old", Frame(b"to 0.2"))
        server.send_frame_to("modern", Frame(b"to v1"))
        assert read_exactly(old, 8) == legacy_frame(b"to 0.2")
        assert modern.recv_data() == b"to v1"
        with pytest.raises(FrameTooLargeError):  # 0.2's 2-byte length cannot carry it
            server.send_frame_to("old", Frame(bytes(65_536)))
        server.send_frame_to("old", Frame(bytes(65_535)))  # the largest that fits
        assert read_exactly(old, 2 + 65_535) == legacy_frame(bytes(65_535))
        server.send_frame_to("modern", Frame(bytes(65_536)))  # v1 is not limited
        assert modern.recv_data() == bytes(65_536)
        old.sendall(legacy_frame(b"BYE"))  # 0.2's bye
        assert _left_once(server, ended, handler) == CLOSED_BY_PEER
    assert server.connection_ids() == ["modern"]


def test_a_pymasep_02_client_is_refused_by_closing_when_full(make_server: MakeServer) -> None:
    server = make_server(max_connection=1)
    with (
        socket.create_connection((LOOPBACK, server.port), timeout=5) as first,
        socket.create_connection((LOOPBACK, server.port), timeout=5) as second,
    ):
        first.sendall(legacy_frame(b"first"))
        assert read_exactly(first, 2 + len(ENGINE)) == legacy_frame(ENGINE.encode())
        second.sendall(legacy_frame(b"second"))
        assert read_to_eof(second) == b""  # 0.2's wire has no way to say why


# --- logging and callbacks ------------------------------------------------------------------


@pytest.mark.parametrize("level", [logging.DEBUG, "DEBUG", "ERROR"])
def test_logs_go_to_pymasep_comm_loggers_and_nothing_to_disk(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    level: str | int,
) -> None:
    monkeypatch.chdir(tmp_path)
    inbox: Inbox = queue.Queue()
    with caplog.at_level(logging.DEBUG, logger="pymasep.comm"):
        with Server("logged", 2, SocketHandlerQueue, (inbox,), LOOPBACK, 0, log_level=level) as s:
            expected = logging.getLevelName(level) if isinstance(level, str) else level
            assert s.logger.level == expected
            s.wait_connection()
            client = RawClient(s.port, "chatty")
            client.send(b"hello")
            assert inbox.get(timeout=5) == b"hello"
            read = answer_the_bye(client)
        read()
    assert_logged_only_to_the_package(caplog, tmp_path, "pymasep.comm.server", level, "chatty")
