"""BaseThreadedCommunication: the registry of connections that Server and Client share.

Connections are handlers over ``socket.socketpair()``, registered the way Server and
Client register theirs (``attach`` with ``on_closed``, then ``add_connection``); the
peers are played by hand with core's wire codec.
"""

from __future__ import annotations

import inspect
import logging
import os
import queue
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from pymasep.comm.core import (
    BaseThreadedCommunication,
    Connection,
    ConnectionClosedError,
    Frame,
    SocketHandler,
    SocketHandlerQueue,
    UnknownConnectionError,
    Wire,
)
from pymasep.comm.core.connection import (
    CLOSED_BY_PEER,
    CLOSED_LOCALLY,
    DisconnectCode,
    DisconnectReason,
)
from pymasep.comm.core.testing.peers import RawPeer, RecordsDisconnects, answer_the_bye

# Every thread a test starts (handlers, helpers) has ended after it.
pytestmark = pytest.mark.usefixtures("no_thread_left_behind")


class Hub(RecordsDisconnects, BaseThreadedCommunication):
    """Records every ``on_disconnect(ident, reason)`` in ``ended``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peers: list[RawPeer] = []  # the far ends, closed by the fixture

    def plug(self, ident: str) -> tuple[SocketHandler, RawPeer]:
        """Register a started connection to a peer called ``ident``, as Server and Client
        (the other subclasses) do."""
        conn, other = socket.socketpair()
        handler = self.socket_handler_class(conn, ident, self.logger, *self.socket_handler_args)
        handler.attach(Connection(Wire.V1, ident), on_closed=self._connection_closed)
        self.add_connection(ident, handler)
        handler.start()
        peer = RawPeer(other, timeout=10, recv_size=65536)
        self.peers.append(peer)
        return handler, peer


@pytest.fixture
def hub(inbox: queue.Queue[bytes]) -> Iterator[Hub]:
    communication = Hub("hub", SocketHandlerQueue, (inbox,), None, None, logging.WARNING)
    yield communication
    for peer in communication.peers:
        peer.sock.close()
    communication.close(timeout=0.5)


# --- the API of pymasep 0.2 ---------------------------------------------------------------


def test_the_constructor_takes_the_parameters_of_pymasep_02() -> None:
    parameters = inspect.signature(BaseThreadedCommunication).parameters
    assert list(parameters) == [
        "ident",
        "socket_handler_class",
        "socket_handler_args",
        "host",
        "port",
        "log_level",
    ]
    assert all(p.default is inspect.Parameter.empty for p in parameters.values())
    for name in ("add_connection", "get_connection", "is_connection_registered", "send_frame_to"):
        assert callable(getattr(BaseThreadedCommunication, name)), name


def test_the_attributes_of_pymasep_02() -> None:
    args: tuple[queue.Queue[bytes]] = (queue.Queue(),)
    communication = BaseThreadedCommunication(
        "me", SocketHandlerQueue, args, "127.0.0.1", 4321, logging.INFO
    )
    with communication:
        assert communication.id == "me"
        assert communication.host == "127.0.0.1"
        assert communication.port == 4321
        assert communication.socket is None  # nothing listens or connects yet
        assert communication.socket_handler_class is SocketHandlerQueue
        assert communication.socket_handler_args is args
        assert communication.connection_ids() == []
        assert isinstance(communication.logger, logging.Logger)


@pytest.mark.parametrize(("level", "expected"), [(logging.DEBUG, 10), ("ERROR", 40), (15, 15)])
def test_the_logger_is_under_pymasep_comm_at_the_level_asked(
    level: str | int, expected: int
) -> None:
    communication = BaseThreadedCommunication("logged", SocketHandler, (), None, None, level)
    assert communication.logger.name == "pymasep.comm.communication"
    assert communication.logger.level == expected
    assert communication.logger.handlers == []  # a library adds no handler


def test_records_go_to_the_component_logger_with_the_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    one = BaseThreadedCommunication("one", SocketHandler, (), None, None, logging.INFO)
    BaseThreadedCommunication("two", SocketHandler, (), None, None, logging.ERROR)
    with caplog.at_level(logging.DEBUG, logger="pymasep.comm.communication"):
        one.logger.info("hello")
    [record] = caplog.records
    assert record.name == "pymasep.comm.communication"
    assert record.comm_id == "one"  # type: ignore[attr-defined]
    # One logger per component: making communications registers no logger per id.
    assert "pymasep.comm.communication.one" not in logging.root.manager.loggerDict


def test_the_package_logger_has_a_null_handler_and_no_other() -> None:
    # Without one, an application that configures no logging would see our warnings on
    # stderr through logging.lastResort; with any other, it would see them twice.
    handlers = logging.getLogger("pymasep.comm").handlers
    assert [type(handler) for handler in handlers] == [logging.NullHandler]


# --- the registry ------------------------------------------------------------------------


def test_connections_are_registered_by_the_peer_id(hub: Hub, inbox: queue.Queue[bytes]) -> None:
    assert not hub.is_connection_registered("a")
    first, peer_a = hub.plug("a")
    _, peer_b = hub.plug("b")
    assert hub.is_connection_registered("a")
    assert hub.get_connection("a") is first
    assert sorted(hub.connection_ids()) == ["a", "b"]
    hub.send_frame_to("a", Frame(b"for a"))
    hub.send_frame_to("b", Frame(b"for b"))
    assert peer_a.recv_frame() == Frame(b"for a")
    assert peer_b.recv_frame() == Frame(b"for b")
    peer_b.send(b"from b")
    assert inbox.get(timeout=5) == b"from b"


def test_wait_for_peer_follows_one_id_in_and_out(hub: Hub) -> None:
    assert hub.wait_for_peer("a", 0.05) is False  # never connected: times out
    assert hub.wait_for_peer("a", 0, connected=False) is True
    _, peer = hub.plug("a")
    hub.plug("b")
    assert hub.wait_for_peer("a", 0) is True
    peer.sock.close()  # the handler's thread notices, then unregisters "a"
    assert hub.wait_for_peer("a", 5, connected=False) is True
    assert not hub.is_connection_registered("a")
    assert hub.wait_for_peer("b", 0) is True


def test_an_unknown_id_is_a_typed_key_error(hub: Hub) -> None:
    hub.plug("known")
    with pytest.raises(UnknownConnectionError, match="'ghost'") as raised:
        hub.send_frame_to("ghost", Frame(b"boo"))
    assert isinstance(raised.value, KeyError)
    assert raised.value.ident == "ghost"
    with pytest.raises(KeyError):
        hub.get_connection("ghost")


# --- connections that end ----------------------------------------------------------------


def _ended_once(hub: Hub, handler: SocketHandler) -> tuple[str, str]:
    ended = hub.ended.get(timeout=5)
    handler.join(2)
    assert not handler.is_alive(), "the handler thread still runs"
    assert hub.ended.empty(), "on_disconnect ran more than once"
    return ended


def test_a_peer_that_says_bye_is_unregistered_and_reported_once(hub: Hub) -> None:
    handler, peer = hub.plug("leaver")
    _, stayer = hub.plug("stayer")
    peer.send_bye()
    assert _ended_once(hub, handler) == ("leaver", CLOSED_BY_PEER)
    assert hub.connection_ids() == ["stayer"]
    hub.send_frame_to("stayer", Frame(b"still here"))
    assert stayer.recv_frame() == Frame(b"still here")
    closed = answer_the_bye(stayer)
    hub.close()
    assert closed() == [Frame.bye_frame()]
    assert hub.ended.get(timeout=5)[0] == "stayer"
    assert hub.ended.empty()  # closing does not report the leaver twice


def test_a_frame_for_a_peer_that_said_bye_is_dropped_quietly(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    # pymasep's interface sends QUIT after the engine's END_GAME: the engine may have
    # said bye already. The peer announced it reads nothing more: no traceback.
    handler, peer = hub.plug("leaver")
    peer.send_bye()
    _ended_once(hub, handler)
    hub.logger.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger=hub.logger.name):
        hub.send_frame_to("leaver", Frame(b"QUIT"))
    assert any("said bye" in record.getMessage() for record in caplog.records)
    with pytest.raises(UnknownConnectionError):
        hub.send_frame_to("never-connected", Frame(b"boo"))


def test_a_peer_that_vanishes_is_unregistered_and_reported_once(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    handler, peer = hub.plug("crasher")
    with caplog.at_level(logging.WARNING, logger=hub.logger.name):
        peer.sock.close()
        ident, reason = _ended_once(hub, handler)
    # At the default level (WARNING): pymasep's Engine says nothing else about it.
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "crasher disconnected: connection lost"
    ]
    assert ident == "crasher"
    assert isinstance(reason, DisconnectReason)
    assert reason.code is DisconnectCode.CONNECTION_LOST
    assert not hub.is_connection_registered("crasher")
    # Lost without a bye: a frame for it is an error the sender must hear of.
    with pytest.raises(UnknownConnectionError):
        hub.send_frame_to("crasher", Frame(b"gone"))


def test_a_bye_through_send_frame_to_closes_after_the_queued_frames(hub: Hub) -> None:
    handler, peer = hub.plug("done")
    for number in range(100):
        hub.send_frame_to("done", Frame(b"%d" % number))
    hub.send_frame_to("done", Frame.bye_frame())  # what pymasep 0.2 engines do
    # Closing, and the peer has not answered: the connection takes nothing more.
    with pytest.raises(ConnectionClosedError):
        hub.send_frame_to("done", Frame(b"behind the bye"))
    frames = peer.until_eof()
    assert frames == [*(Frame(b"%d" % n) for n in range(100)), Frame.bye_frame()]
    peer.sock.close()
    assert _ended_once(hub, handler) == ("done", CLOSED_LOCALLY)
    with pytest.raises(UnknownConnectionError):
        hub.send_frame_to("done", Frame(b"gone"))


def test_on_disconnect_raising_does_not_keep_the_connection(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(ident: str, reason: str) -> None:
        raise RuntimeError("callback bug")

    hub.on_disconnect = broken  # type: ignore[method-assign]
    handler, peer = hub.plug("x")
    with caplog.at_level(logging.ERROR, logger=hub.logger.name):
        peer.send_bye()
        handler.join(5)
    assert not hub.is_connection_registered("x")
    assert any("callback bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_an_old_handler_ending_does_not_unregister_its_replacement(hub: Hub) -> None:
    old, old_peer = hub.plug("same")
    new, new_peer = hub.plug("same")  # registered under the same id: replaces the old
    assert hub.get_connection("same") is new
    old_peer.sock.close()
    old.join(5)
    assert hub.get_connection("same") is new
    hub.send_frame_to("same", Frame(b"to the new one"))
    assert new_peer.recv_frame() == Frame(b"to the new one")


# --- closing -----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_close_delivers_every_queued_frame_then_closes_every_connection(hub: Hub) -> None:
    plugged = [hub.plug(f"p{n}") for n in range(3)]
    frames = [Frame(os.urandom(32 * 1024)) for _ in range(100)]  # 3.2 MB per connection
    for ident in hub.connection_ids():
        for frame in frames:
            hub.send_frame_to(ident, frame)

    readers = [answer_the_bye(peer) for _, peer in plugged]
    # The peers answer: close() returns long before its timeout (else pytest-timeout).
    hub.close(timeout=60)
    for join in readers:
        assert join() == [*frames, Frame.bye_frame()]
    assert hub.connection_ids() == []
    reported = sorted(hub.ended.get(timeout=1) for _ in plugged)
    assert reported == [(f"p{n}", CLOSED_LOCALLY) for n in range(3)]
    for handler, _ in plugged:
        assert not handler.is_alive()
    hub.close()  # idempotent
    assert hub.ended.empty()


@pytest.mark.timeout(30)
def test_close_gives_up_on_silent_peers_after_the_timeout(hub: Hub) -> None:
    handlers = [hub.plug(f"mute{n}")[0] for n in range(4)]  # peers that never answer
    hub.close(timeout=0.3)
    # Cut, and done with: unregistered, reported, their threads ended.
    assert hub.connection_ids() == []
    assert sorted(hub.ended.get_nowait() for _ in handlers) == [
        (f"mute{n}", CLOSED_LOCALLY) for n in range(4)
    ]
    assert not any(handler.is_alive() for handler in handlers)


def test_the_context_manager_closes(inbox: queue.Queue[bytes]) -> None:
    with Hub("ctx", SocketHandlerQueue, (inbox,), None, None, logging.WARNING) as hub:
        handler, peer = hub.plug("inside")
        closing = answer_the_bye(peer)
    assert closing() == [Frame.bye_frame()]
    assert not handler.is_alive()
    assert hub.connection_ids() == []
    assert hub.ended.get_nowait() == ("inside", CLOSED_LOCALLY)
