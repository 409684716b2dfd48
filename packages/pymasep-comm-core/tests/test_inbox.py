"""How a handler's frames reach its callbacks (inbox.Delivery, inbox.Inbox), without
sockets: the order, the end, the bound on what waits undelivered."""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

import pytest

from pymasep.comm.core import Frame
from pymasep.comm.core.connection import CLOSED_BY_PEER, DisconnectReason
from pymasep.comm.core.inbox import Delivery, Inbox

LOG = logging.LoggerAdapter(logging.getLogger("pymasep.comm.test"), {"peer": "p1"})


class FakeHandler:
    """What a Delivery calls of a SocketHandler, noting each call and its thread."""

    peer_id = "p1"
    addr = ("127.0.0.1", 1)

    def __init__(self, fail_on: bytes = b"") -> None:
        self.calls: list[tuple[str, Any]] = []
        self.threads: set[threading.Thread] = set()
        self.disconnect_reason: DisconnectReason | None = None
        self._fail_on = fail_on

    def on_receive(self, frame: Frame) -> None:
        self.threads.add(threading.current_thread())
        self.calls.append(("frame", frame.message))
        if frame.message == self._fail_on:
            raise RuntimeError("the application's bug")

    def on_disconnect(self, reason: str) -> None:
        self.threads.add(threading.current_thread())
        self.calls.append(("disconnect", reason))


def _delivery(handler: FakeHandler) -> tuple[Delivery, list[tuple[str, Any]]]:
    delivery = Delivery(cast(Any, handler), LOG)
    closed: list[tuple[str, Any]] = []
    delivery.on_closed = lambda _, reason: closed.append(("closed", reason))
    return delivery, closed


def test_without_a_delivery_thread_frames_and_the_end_are_delivered_in_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = FakeHandler(fail_on=b"b")
    delivery, closed = _delivery(handler)
    with caplog.at_level(logging.ERROR, logger="pymasep.comm"):
        delivery.take([Frame(b"a"), Frame(b"b")])
        delivery.take([Frame(b"c")])
    reason = DisconnectReason(CLOSED_BY_PEER)
    delivery.ended(reason)
    # A failing on_receive is logged, and the next frames still come.
    assert handler.calls == [
        ("frame", b"a"),
        ("frame", b"b"),
        ("frame", b"c"),
        ("disconnect", reason),
    ]
    assert "on_receive failed" in caplog.text
    assert closed == [("closed", reason)] and handler.disconnect_reason is reason
    assert handler.threads == {threading.current_thread()}
    assert delivery.done.is_set() and not delivery.threaded


def test_with_a_delivery_thread_every_frame_then_the_end_reach_that_thread() -> None:
    handler = FakeHandler()
    delivery, closed = _delivery(handler)
    delivery.begin(lambda paused: None)
    thread = threading.Thread(target=delivery.run)
    frames = [Frame(bytes([n])) for n in range(200)]
    for frame in frames[:100]:
        delivery.take([frame])  # before the thread runs: held in the inbox
    thread.start()
    for frame in frames[100:]:
        delivery.take([frame])
    reason = DisconnectReason(CLOSED_BY_PEER)
    delivery.ended(reason)
    thread.join(10)
    assert not thread.is_alive()
    assert handler.calls == [("frame", f.message) for f in frames] + [("disconnect", reason)]
    assert handler.threads == {thread} and closed == [("closed", reason)]
    assert delivery.threaded and delivery.done.is_set()


def test_the_inbox_stops_reading_past_its_limit_and_reads_again_once_taken() -> None:
    paused: list[bool] = []
    inbox = Inbox(paused.append, limit=10)
    inbox.put([Frame(bytes(6))])
    assert paused == []
    inbox.put([Frame(bytes(6))])  # 12 bytes held: over the limit
    inbox.put([Frame(bytes(6))])  # already paused: said once
    assert paused == [True]
    frames, end = inbox.take()
    assert len(frames) == 3 and end is None and paused == [True, False]
    reason = DisconnectReason(CLOSED_BY_PEER)
    inbox.put([Frame(b"last")])
    inbox.end(reason)
    frames, end = inbox.take()
    assert [f.message for f in frames] == [b"last"] and end is reason
