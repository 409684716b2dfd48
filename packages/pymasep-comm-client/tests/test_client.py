"""Client against raw-socket servers: core's ServerHandshake, or pymasep 0.2's bytes by hand.

These tests run with only pymasep-comm-core and pymasep-comm-client installed: the
servers are plain sockets. Each fault of pymasep 0.2's client has a test here.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pymasep.comm.client import Client
from pymasep.comm.core import (
    CommunicationConnectionError,
    CommunicationTimeoutError,
    ConnectionClosedError,
    ConnectionRejectedError,
    EncodeError,
    Frame,
    FrameKind,
    FrameTooLargeError,
    HandshakeError,
    ProtocolError,
    SocketHandler,
    SocketHandlerQueue,
    UnknownConnectionError,
    Wire,
    encode_frame,
)
from pymasep.comm.core.handshake import ServerHandshake
from pymasep.comm.core.socket_handler import CLOSED_BY_PEER, CLOSED_LOCALLY, CONNECTION_LOST
from pymasep.comm.core.testing.contract import (
    assert_logged_only_to_the_package,
    assert_seed_constructor,
)
from pymasep.comm.core.testing.peers import (
    LOOPBACK,
    Join,
    RawPeer,
    Recorder,
    RecordsDisconnects,
    answer_the_bye,
    assert_settles,
    descriptors,
    in_thread,
    legacy_frame,
    read_exactly,
    read_to_eof,
)
from pymasep.comm.core.wire import MAGIC, PREAMBLE, encode_header

ENGINE = "engine"
# Every thread a test starts (handlers, helpers) has ended after it.
pytestmark = pytest.mark.usefixtures("no_thread_left_behind")


# --- raw servers ---------------------------------------------------------------------------


Answer = Callable[[socket.socket], Any]


class RawServer:
    """A listening socket on loopback; :meth:`serve` answers one connection in a thread."""

    def __init__(self) -> None:
        self.listener = socket.create_server((LOOPBACK, 0))
        self.listener.settimeout(10)
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []

    def serve(self, answer: Answer) -> Join:
        def run() -> Any:
            conn, _ = self.listener.accept()
            conn.settimeout(20)
            self.accepted.append(conn)
            return answer(conn)

        return in_thread(run)

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


def _hello(conn: socket.socket, handshake: ServerHandshake) -> None:
    while not handshake.receive_data(conn.recv(4096) or b"<EOF>"):
        pass


def accept(ident: str = ENGINE) -> Answer:
    """Answer like a pymasep-comm server that takes the client."""

    def answer(conn: socket.socket) -> RawPeer:
        handshake = ServerHandshake(ident)
        _hello(conn, handshake)
        conn.sendall(handshake.accept_bytes())
        assert handshake.wire is not None and handshake.decoder is not None
        peer = RawPeer(
            conn, handshake.wire, handshake.decoder, handshake.pending_frames, timeout=None
        )
        peer.client_ident = handshake.client_ident
        return peer

    return answer


def refuse(reason: str) -> Answer:
    def answer(conn: socket.socket) -> None:
        handshake = ServerHandshake(ENGINE)
        _hello(conn, handshake)
        conn.sendall(handshake.refuse_bytes(reason))
        conn.close()

    return answer


def hang_up(conn: socket.socket) -> None:
    """Read the hello, then close without a word."""
    conn.recv(4096)
    conn.close()


def reply_with(data: bytes) -> Answer:
    def answer(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(data)

    return answer


def pymasep_02(conn: socket.socket) -> tuple[socket.socket, bytes]:
    """Answer as pymasep 0.2's server does: read a 2-byte length and one recv() of the id,
    whatever it holds, then send its own id the same way. Returns the id read."""
    length = int.from_bytes(conn.recv(2), "little")
    ident = conn.recv(length)
    conn.sendall(legacy_frame(ENGINE.encode()))
    return conn, ident


# --- handlers and clients that record -----------------------------------------------------


class Interface(RecordsDisconnects, Client):
    """Records ``on_disconnect(ident, reason)`` in ``ended``."""


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.close()


MakeClient = Callable[..., Interface]


@pytest.fixture
def make_client(raw_server: RawServer) -> Iterator[MakeClient]:
    """``make_client(handler_class, args, ident=..., **options)``, not connected yet."""
    made: list[Interface] = []

    def make(
        handler_class: type[SocketHandler] = SocketHandler,
        args: tuple[Any, ...] = (),
        ident: str = "iface",
        **options: Any,
    ) -> Interface:
        client = Interface(ident, handler_class, args, LOOPBACK, raw_server.port, **options)
        made.append(client)
        return client

    yield make
    for conn in raw_server.accepted:
        conn.close()  # each client sees the end at once: closing it waits for nothing
    for client in made:
        client.close(timeout=0.5)


def connect(client: Client, raw_server: RawServer, answer: Answer | None = None) -> Any:
    """Connect ``client`` to ``raw_server``; return what the server's answer returned."""
    served = raw_server.serve(answer or accept())
    try:
        client.connect(timeout=5)
    finally:
        result = served()
    return result


Inbox = queue.Queue[bytes]
"""The ``inbox`` fixture: the payloads a Recorder received."""

Ended = queue.Queue[str]
"""The ``ended`` fixture: a Recorder's ``on_disconnect`` reasons."""

Connected = tuple[Interface, RawPeer]
"""The ``connected`` fixture: a client (its handlers are Recorders on ``inbox`` and
``ended``) and the raw server it is connected to."""


@pytest.fixture
def connected(
    make_client: MakeClient, raw_server: RawServer, inbox: Inbox, ended: Ended
) -> Connected:
    client = make_client(Recorder, (inbox, ended))
    return client, connect(client, raw_server)


# --- the API of pymasep 0.2 ---------------------------------------------------------------


def test_the_constructor_takes_the_parameters_of_pymasep_02() -> None:
    empty = inspect.Parameter.empty
    assert_seed_constructor(
        Client,
        [
            ("ident", empty),
            ("socket_handler_class", empty),
            ("socket_handler_args", empty),
            ("host", None),
            ("port", None),
            ("log_level", logging.WARNING),
        ],
    )
    assert callable(Client.connect) and callable(Client.search_server)


def test_the_attributes_of_pymasep_02(
    make_client: MakeClient, raw_server: RawServer, inbox: Inbox
) -> None:
    client = make_client(SocketHandlerQueue, (inbox,))
    assert client.id == "iface"
    assert (client.host, client.port) == (LOOPBACK, raw_server.port)
    assert client.server_id is None and client.socket is None
    assert client.socket_handler_class is SocketHandlerQueue
    assert client.socket_handler_args == (inbox,)
    assert client._current_connections == {}
    assert client.logger.name == "pymasep.comm.client"
    assert client.logger.level == logging.WARNING
    peer = connect(client, raw_server)
    assert peer.client_ident == "iface"  # the hello carries the client's id
    assert client.server_id == ENGINE
    assert client.connection_ids() == [ENGINE]
    handler = client.get_connection(ENGINE)
    assert isinstance(handler, SocketHandlerQueue) and handler.receive_queue is inbox
    assert handler.is_alive()
    assert client.socket is handler.socket
    assert handler.addr == (LOOPBACK, raw_server.port)
    assert Client("x", SocketHandler, ()).host is None  # no address: connect() searches


def test_frames_cross_both_ways(connected: Connected, inbox: Inbox) -> None:
    client, peer = connected
    client.send_frame_to(ENGINE, Frame(b"action"))
    assert peer.recv_data() == b"action"
    peer.send(b"observation")
    assert inbox.get(timeout=5) == b"observation"


def test_the_connection_has_tcp_nodelay(connected: Connected) -> None:
    # Without it, Nagle's algorithm holds back a small frame sent while an earlier one is
    # unacknowledged: a request/response step would wait for the peer's delayed ACK.
    client, _ = connected
    handler_socket = client.get_connection(ENGINE).socket
    assert handler_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_frames_sent_right_behind_the_server_hello_are_not_lost(
    make_client: MakeClient, raw_server: RawServer, inbox: Inbox
) -> None:
    def eager(conn: socket.socket) -> socket.socket:
        handshake = ServerHandshake(ENGINE)
        _hello(conn, handshake)
        early = b"".join(encode_frame(Frame(b"early %d" % n)) for n in range(3))
        conn.sendall(handshake.accept_bytes() + early)
        return conn

    client = make_client(SocketHandlerQueue, (inbox,))
    conn = connect(client, raw_server, eager)
    assert [inbox.get(timeout=5) for _ in range(3)] == [b"early %d" % n for n in range(3)]
    conn.close()


def test_connecting_twice_is_an_error(connected: Connected) -> None:
    client, _ = connected
    with pytest.raises(CommunicationConnectionError, match="already connected"):
        client.connect(timeout=1)


# --- no frame lost, no deadlock ------------------------------------------------------------


# --- connecting fails clearly ---------------------------------------------------------------


def _free_port() -> int:
    with socket.create_server((LOOPBACK, 0)) as placeholder:
        return int(placeholder.getsockname()[1])


def test_connect_fails_fast_and_typed_when_nothing_listens() -> None:
    client = Client("lonely", SocketHandler, (), LOOPBACK, _free_port())
    start = time.monotonic()
    with pytest.raises(CommunicationConnectionError, match="cannot connect") as raised:
        client.connect(timeout=2)
    assert time.monotonic() - start < 2
    assert isinstance(raised.value, ConnectionError)
    assert client.connection_ids() == [] and client.server_id is None


def test_connect_times_out_when_the_server_never_answers(
    make_client: MakeClient, raw_server: RawServer
) -> None:
    client = make_client()  # the listener never accepts: the kernel does, nobody answers
    fds = len(os.listdir("/proc/self/fd"))
    start = time.monotonic()
    with pytest.raises(CommunicationTimeoutError, match="handshake") as raised:
        client.connect(timeout=0.3)
    assert 0.25 < time.monotonic() - start < 1.3
    assert isinstance(raised.value, TimeoutError)
    assert client.connection_ids() == []
    assert len(os.listdir("/proc/self/fd")) <= fds  # the socket was closed


def test_connect_times_out_when_the_server_accepts_and_never_answers_the_hello(
    make_client: MakeClient, raw_server: RawServer
) -> None:
    def silent(conn: socket.socket) -> bytes:
        hello = conn.recv(4096)
        assert conn.recv(1) == b""  # nothing more: the client gave up and closed
        return hello

    client = make_client()
    served = raw_server.serve(silent)
    with pytest.raises(CommunicationTimeoutError, match="handshake"):
        client.connect(timeout=0.2)
    assert served().startswith(MAGIC)  # the hello went out, no answer came
    assert client.connection_ids() == [] and client.server_id is None


def test_a_deadline_passing_mid_handshake_is_a_timeout_not_a_blocking_error(
    make_client: MakeClient, raw_server: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline passes between two reads of the server's answer: the next read must
    not run with a timeout of 0, which makes the socket non-blocking (BlockingIOError)."""
    late = threading.Event()
    monotonic = time.monotonic

    class Clock:
        """The client module's clock: an hour later once ``late`` is set."""

        @staticmethod
        def monotonic() -> float:
            return monotonic() + (3600.0 if late.is_set() else 0.0)

    monkeypatch.setattr(importlib.import_module("pymasep.comm.client.client"), "time", Clock)

    def half_an_answer(conn: socket.socket) -> None:
        handshake = ServerHandshake(ENGINE)
        _hello(conn, handshake)
        late.set()
        # One byte wakes a client blocked in recv; the handshake needs more.
        conn.sendall(handshake.accept_bytes()[:1])
        # The client gives up and closes (with a reset if it had not read the byte).
        assert read_to_eof(conn) == b""

    client = make_client()
    with pytest.raises(CommunicationTimeoutError, match="handshake"):
        connect(client, raw_server, half_an_answer)
    assert client.connection_ids() == []


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_connect_with_no_time_left_is_a_timeout(
    make_client: MakeClient, raw_server: RawServer, timeout: float
) -> None:
    client = make_client()
    with pytest.raises(CommunicationTimeoutError, match="no time left"):
        client.connect(timeout=timeout)
    assert client.connection_ids() == [] and client.server_id is None


def test_a_server_hanging_up_during_the_handshake_is_a_handshake_error(
    make_client: MakeClient, raw_server: RawServer
) -> None:
    with pytest.raises(HandshakeError, match="closed the connection during the handshake"):
        connect(make_client(), raw_server, hang_up)


def test_a_server_answering_garbage_is_a_protocol_error(
    make_client: MakeClient, raw_server: RawServer
) -> None:
    with pytest.raises(ProtocolError):
        connect(make_client(), raw_server, reply_with(b"HTTP/1.1 400 Bad Request\r\n\r\n"))


def test_a_server_hello_claiming_gigabytes_is_refused(
    make_client: MakeClient, raw_server: RawServer
) -> None:
    claim = PREAMBLE + encode_header(FrameKind.HELLO, 3 << 30, Wire.V1)
    with pytest.raises(FrameTooLargeError):
        connect(make_client(), raw_server, reply_with(claim))


def test_a_refusal_raises_its_reason_and_a_later_connect_works(
    make_client: MakeClient, raw_server: RawServer
) -> None:
    client = make_client()
    with pytest.raises(ConnectionRejectedError, match="full") as refused:
        connect(client, raw_server, refuse("the server is full (2 connections)"))
    assert refused.value.reason == "the server is full (2 connections)"
    assert client.connection_ids() == [] and client.server_id is None
    peer = connect(client, raw_server)  # the same client object, once there is room
    assert client.server_id == ENGINE
    client.send_frame_to(ENGINE, Frame(b"in at last"))
    assert peer.recv_data() == b"in at last"


def test_a_v1_client_against_a_pymasep_02_server_says_to_use_the_legacy_wire(
    make_client: MakeClient, raw_server: RawServer
) -> None:
    client = make_client()
    with pytest.raises(ProtocolError, match="wire='legacy'"):
        connect(client, raw_server, pymasep_02)
    assert client.connection_ids() == []


# --- a server built before resuming ---------------------------------------------------------


def accept_v1(conn: socket.socket) -> tuple[bytes, RawPeer]:
    """Accept as :func:`accept` does; return the client's opening bytes too."""
    handshake = ServerHandshake(ENGINE)
    opening = b""
    while True:
        data = conn.recv(4096)
        opening += data
        if handshake.receive_data(data or b"<EOF>"):
            break
    conn.sendall(handshake.accept_bytes())
    assert handshake.decoder is not None
    peer = RawPeer(conn, Wire.V1, handshake.decoder, handshake.pending_frames, timeout=None)
    return opening, peer


def older_server(raw_server: RawServer) -> Answer:
    """Answer as a pymasep-comm server built before resuming: version byte 2 is refused
    with a version-1 preamble and REFUSE, before any frame is read; the client's next
    connection is accepted. Returns the refused opening, the next one, and the peer."""

    def answer(conn: socket.socket) -> tuple[bytes, bytes, RawPeer]:
        offered = conn.recv(4096)
        refusal = Frame.refuse_frame("the peer speaks protocol version 2, this side speaks 1")
        conn.sendall(PREAMBLE + encode_frame(refusal))
        conn.close()
        again, _ = raw_server.listener.accept()
        again.settimeout(20)
        raw_server.accepted.append(again)
        return (offered, *accept_v1(again))

    return answer


def test_a_client_offering_to_resume_falls_back_to_an_older_server_and_connects(
    make_client: MakeClient,
    raw_server: RawServer,
    inbox: queue.Queue[bytes],
    ended: queue.Queue[str],
) -> None:
    client = make_client(Recorder, (inbox, ended), resume_window=30.0)
    offered, opening, peer = connect(client, raw_server, older_server(raw_server))
    assert offered.startswith(MAGIC + b"\x02")  # the offer, which the older server refused
    # Then today's bytes exactly: version 1, the hello, no offer behind it.
    assert opening == PREAMBLE + encode_frame(Frame.hello_frame("iface"))
    assert client.server_id == ENGINE and client.connection_ids() == [ENGINE]
    client.send_frame_to(ENGINE, Frame(b"action"))
    assert peer.recv_data() == b"action"
    peer.send(b"observation")
    assert inbox.get(timeout=5) == b"observation"
    # No session: a break ends the connection at once, as it always did.
    peer.sock.close()
    assert ended.get(timeout=5) == CONNECTION_LOST


def test_a_client_remembers_an_older_server_and_offers_it_nothing_again(
    make_client: MakeClient, raw_server: RawServer
) -> None:
    client = make_client()
    connect(client, raw_server, older_server(raw_server))
    client.close()
    opening, _ = connect(client, raw_server, accept_v1)  # one connection, no refusal
    assert opening == PREAMBLE + encode_frame(Frame.hello_frame("iface"))
    assert client.connection_ids() == [ENGINE]


# --- the legacy wire ----------------------------------------------------------------------


def test_the_legacy_wire_talks_to_a_pymasep_02_server_byte_for_byte(
    make_client: MakeClient, raw_server: RawServer, inbox: Inbox
) -> None:
    client = make_client(SocketHandlerQueue, (inbox,), ident="old-iface", wire="legacy")
    conn, hello = connect(client, raw_server, pymasep_02)
    assert hello == b"old-iface"  # 0.2's hello: the bare id, after a 2-byte length
    assert client.server_id == ENGINE
    client.send_frame_to(ENGINE, Frame(b"action"))
    assert read_exactly(conn, 8) == legacy_frame(b"action")
    conn.sendall(legacy_frame(b"observation"))
    assert inbox.get(timeout=5) == b"observation"
    with pytest.raises(FrameTooLargeError):  # at send time: nothing goes out
        client.send_frame_to(ENGINE, Frame(bytes(65_536)))
    with pytest.raises(EncodeError):  # 0.2 would read it as a bye
        client.send_frame_to(ENGINE, Frame(b"BYE"))
    client.send_frame_to(ENGINE, Frame(bytes(65_535)))
    assert read_exactly(conn, 2 + 65_535) == legacy_frame(bytes(65_535))
    client.send_frame_to(ENGINE, Frame(b"next"))
    assert read_exactly(conn, 6) == legacy_frame(b"next")
    closing = in_thread(lambda: (read_exactly(conn, 5), conn.recv(1)))
    client.close(timeout=0.5)
    assert closing() == (legacy_frame(b"BYE"), b"")  # 0.2's bye, then the end


def test_a_pymasep_02_server_saying_bye_ends_the_legacy_connection(
    make_client: MakeClient, raw_server: RawServer, inbox: Inbox, ended: Ended
) -> None:
    client = make_client(Recorder, (inbox, ended), wire="legacy")
    conn, _ = connect(client, raw_server, pymasep_02)
    conn.sendall(legacy_frame(b"last") + legacy_frame(b"BYE"))
    assert inbox.get(timeout=5) == b"last"
    assert ended.get(timeout=5) == CLOSED_BY_PEER
    assert client.connection_ids() == []


# --- the connection ends --------------------------------------------------------------------


def _ended_once(client: Interface, ended: Ended, handler: SocketHandler) -> str:
    ident, reason = client.ended.get(timeout=5)
    assert ident == ENGINE
    assert ended.get(timeout=1) == reason  # the handler's hook, with the same reason
    handler.join(2)
    assert not handler.is_alive(), "the handler thread still runs"
    assert client.connection_ids() == []
    assert client.ended.empty() and ended.empty(), "on_disconnect ran more than once"
    return reason


def test_a_bye_from_the_server_ends_the_connection_once(connected: Connected, ended: Ended) -> None:
    client, peer = connected
    handler = client.get_connection(ENGINE)
    peer.send_bye()
    assert _ended_once(client, ended, handler) == CLOSED_BY_PEER
    assert peer.until_eof() == []
    # The engine said bye (pymasep's END_GAME, then bye): the interface's QUIT is dropped.
    client.send_frame_to(ENGINE, Frame(b"QUIT"))
    client.close()
    assert client.ended.empty()


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_server_that_dies_is_noticed_once(connected: Connected, ended: Ended, how: str) -> None:
    client, peer = connected
    handler = client.get_connection(ENGINE)
    if how == "reset":
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.sock.close()
    assert _ended_once(client, ended, handler).startswith(CONNECTION_LOST)


def test_sending_errors_are_typed(connected: Connected, ended: Ended) -> None:
    client, peer = connected
    with pytest.raises(UnknownConnectionError) as unknown:
        client.send_frame_to("another engine", Frame(b"?"))
    assert isinstance(unknown.value, KeyError)
    handler = client.get_connection(ENGINE)
    client.send_frame_to(ENGINE, Frame.bye_frame())  # closing; the server has not answered
    with pytest.raises(ConnectionClosedError):
        client.send_frame_to(ENGINE, Frame(b"behind the bye"))
    assert answer_the_bye(peer)() == [Frame.bye_frame()]
    assert _ended_once(client, ended, handler) == CLOSED_LOCALLY
    with pytest.raises(ConnectionClosedError):
        handler.send_frame_async(Frame(b"on the old handler"))


# --- closing ---------------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["close", "bye through send_frame_to"])
def test_a_graceful_close_delivers_every_frame_queued_before_it(
    connected: Connected, ended: Ended, how: str
) -> None:
    client, peer = connected
    handler = client.get_connection(ENGINE)
    frames = [Frame(struct.pack("!I", n) + os.urandom(16 * 1024)) for n in range(500)]
    for frame in frames:  # 8 MB: most of it still queued when the close starts
        client.send_frame_to(ENGINE, frame)
    read = answer_the_bye(peer)
    if how == "close":
        client.close(timeout=20)
    else:
        client.send_frame_to(ENGINE, Frame.bye_frame())  # what pymasep 0.2 interfaces do
    assert read() == [*frames, Frame.bye_frame()]
    assert _ended_once(client, ended, handler) == CLOSED_LOCALLY


@pytest.mark.timeout(30)
def test_close_is_idempotent_and_a_no_op_before_connect(
    connected: Connected, make_client: MakeClient
) -> None:
    make_client(ident="never-connected").close()
    client, peer = connected
    read = answer_the_bye(peer)
    client.close()
    client.close()
    assert read() == [Frame.bye_frame()]
    assert client.connection_ids() == []


@pytest.mark.timeout(30)
def test_close_cuts_a_server_that_never_answers(connected: Connected) -> None:
    client, _ = connected  # the raw server never reads, never closes
    handler = client.get_connection(ENGINE)
    client.close(timeout=0.3)  # returns, else pytest-timeout
    assert not handler.is_alive()
    assert client.connection_ids() == []


def test_the_context_manager_closes(raw_server: RawServer) -> None:
    with Client("ctx", SocketHandler, (), LOOPBACK, raw_server.port) as client:
        peer = connect(client, raw_server)
        handler = client.get_connection(ENGINE)
        read = answer_the_bye(peer)
    assert read() == [Frame.bye_frame()]
    assert not handler.is_alive()
    assert client.connection_ids() == []


@pytest.mark.timeout(60)
def test_50_connect_close_cycles_leave_no_thread_and_no_descriptor(raw_server: RawServer) -> None:
    def cycle(number: int) -> None:
        client = Client(f"cycle-{number}", SocketHandler, (), LOOPBACK, raw_server.port)
        peer = connect(client, raw_server)
        client.send_frame_to(ENGINE, Frame(b"hi"))
        if number % 2:
            read = answer_the_bye(peer)
            client.close()  # the interface leaves
            assert read()[-1] == Frame.bye_frame()
        else:
            handler = client.get_connection(ENGINE)
            peer.send_bye()  # the engine sends it away
            assert peer.until_eof() == [Frame(b"hi")]
            peer.sock.close()
            handler.join(5)
        raw_server.accepted.remove(peer.sock)

    cycle(-1)  # warm-up
    threads, fds = len(threading.enumerate()), descriptors()
    for number in range(50):
        cycle(number)
    assert_settles(threads, fds)


# --- logging and callbacks ------------------------------------------------------------------


@pytest.mark.parametrize("level", [logging.DEBUG, "INFO", "ERROR"])
def test_logs_go_to_pymasep_comm_loggers_and_nothing_to_disk(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    raw_server: RawServer,
    level: str | int,
) -> None:
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="pymasep.comm"):
        client = Client("logged", SocketHandler, (), LOOPBACK, raw_server.port, level)
        expected = logging.getLevelName(level) if isinstance(level, str) else level
        assert client.logger.level == expected
        peer = connect(client, raw_server)
        client.send_frame_to(ENGINE, Frame(b"hello"))
        assert peer.recv_data() == b"hello"
        read = answer_the_bye(peer)
        client.close()
        read()
    assert_logged_only_to_the_package(caplog, tmp_path, "pymasep.comm.client", level, ENGINE)
