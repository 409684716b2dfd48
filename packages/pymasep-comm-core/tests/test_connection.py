"""The connection state machine, without sockets: bytes and calls in, frames and reasons out."""

from __future__ import annotations

import pickle

import pytest

from pymasep.comm.core import (
    CLOSED_BY_PEER,
    CLOSED_LOCALLY,
    CONNECTION_LOST,
    Connection,
    ConnectionClosedError,
    ConnectionState,
    DisconnectCode,
    DisconnectReason,
    Frame,
    InvalidArgumentError,
    InvalidStateError,
    PeerFrameTooLargeError,
    ProtocolError,
    SendBufferFullError,
    SendLimits,
    Wire,
    encode_frame,
)
from pymasep.comm.core.connection import STREAM_AFTER
from pymasep.comm.core.handshake import ClientHandshake, ServerHandshake

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test

KIB = 1024


def data(payload: bytes, wire: Wire = Wire.V1) -> bytes:
    return encode_frame(Frame(payload), wire)


# --- the reason ----------------------------------------------------------------------------


def test_a_reason_is_the_string_it_always_was_and_carries_its_code() -> None:
    plain = DisconnectReason(CLOSED_BY_PEER)
    assert plain == "closed by the peer" == CLOSED_BY_PEER
    assert plain.code is DisconnectCode.CLOSED_BY_PEER and plain.detail == ""
    lost = DisconnectReason(CONNECTION_LOST, "[Errno 104] reset")
    assert str(lost) == "connection lost: [Errno 104] reset"
    assert lost.code is DisconnectCode.CONNECTION_LOST
    assert plain.graceful and not lost.graceful


def test_a_reason_pickles_with_its_code_and_detail() -> None:
    reason = DisconnectReason(DisconnectCode.SLOW_CONSUMER, "too slow")
    copy = pickle.loads(pickle.dumps(reason))
    assert (copy, copy.code, copy.detail) == (reason, reason.code, reason.detail)


# --- opening -------------------------------------------------------------------------------


def test_a_completed_handshake_opens_a_connection_with_what_followed_the_hello() -> None:
    server = ServerHandshake("engine")
    client = ClientHandshake("iface")
    assert server.receive_data(client.bytes_to_send() + data(b"early"))
    connection = Connection.from_handshake(server)
    assert connection.state is ConnectionState.OPEN
    assert (connection.peer_id, connection.wire) == ("iface", Wire.V1)
    assert list(connection.pending_frames) == [Frame(b"early")]


def test_an_incomplete_handshake_opens_nothing() -> None:
    with pytest.raises(InvalidStateError):
        Connection.from_handshake(ServerHandshake("engine"))


# --- receiving -----------------------------------------------------------------------------


def test_bytes_in_any_chunks_give_the_data_frames_and_count_them() -> None:
    connection = Connection(Wire.V1, "peer")
    stream = data(b"one") + data(b"two")
    frames = [f for i in range(len(stream)) for f in connection.receive_data(stream[i : i + 1], 0)]
    assert frames == [Frame(b"one"), Frame(b"two")]
    stats = connection.stats
    assert (stats.frames_received, stats.bytes_received) == (2, len(stream))


def test_a_bye_from_the_peer_ends_with_closed_by_the_peer_and_nothing_after_it() -> None:
    connection = Connection(Wire.V1, "peer")
    stream = data(b"last") + encode_frame(Frame.bye_frame()) + data(b"ignored")
    assert connection.receive_data(stream, 0) == [Frame(b"last")]
    assert connection.bye_received
    assert connection.bye_reason().code is CLOSED_BY_PEER


def test_the_legacy_bye_is_a_bye() -> None:
    connection = Connection(Wire.LEGACY, "old")
    assert connection.receive_data(data(b"hi", Wire.LEGACY) + b"\x03\x00BYE", 0) == [Frame(b"hi")]
    assert connection.bye_received


def test_an_end_of_stream_without_bye_is_a_lost_connection() -> None:
    assert Connection(Wire.V1, "peer").receive_eof().code is CONNECTION_LOST


def test_a_hello_after_the_handshake_is_a_protocol_error() -> None:
    connection = Connection(Wire.V1, "peer")
    with pytest.raises(ProtocolError, match="HELLO") as raised:
        connection.receive_data(encode_frame(Frame.hello_frame("again")), 0)
    reason = connection.protocol_error(raised.value)
    assert reason.code is DisconnectCode.PROTOCOL_ERROR and "HELLO" in reason.detail


def test_a_frame_above_the_limit_is_a_protocol_error() -> None:
    connection = Connection(Wire.V1, "peer", max_frame_size=1000)
    with pytest.raises(PeerFrameTooLargeError) as raised:
        connection.receive_data(b"\x00\x00\x00\x10\x00", 0)
    assert isinstance(raised.value, ConnectionError)


def test_a_peer_silent_in_the_middle_of_a_frame_has_a_deadline() -> None:
    connection = Connection(Wire.V1, "peer", stall_timeout=5)
    assert connection.receive_deadline() is None  # between frames a peer may be silent
    frame = data(bytes(100))
    connection.receive_data(frame[:50], now=100.0)
    assert connection.receive_deadline() == 105.0
    connection.receive_data(frame[50:60], now=103.0)  # progress moves it
    assert connection.receive_deadline() == 108.0
    reason = connection.stalled()
    assert reason.code is DisconnectCode.STALLED and "60 bytes" in reason.detail
    connection.receive_data(frame[60:], now=104.0)
    assert connection.receive_deadline() is None


def test_no_stall_deadline_when_turned_off() -> None:
    connection = Connection(Wire.V1, "peer", stall_timeout=None)
    connection.receive_data(data(bytes(100))[:50], now=0)
    assert connection.receive_deadline() is None


# --- closing -------------------------------------------------------------------------------


def test_closing_refuses_new_frames_and_sends_the_bye_once_the_queue_is_empty() -> None:
    connection = Connection(Wire.V1, "peer")
    assert connection.close()
    assert not connection.close()  # once
    assert connection.state is ConnectionState.CLOSING
    with pytest.raises(ConnectionClosedError):
        connection.check_open()
    assert connection.bye_bytes() == encode_frame(Frame.bye_frame())
    # The peer's frames in flight still arrive; its end of stream, or its own bye,
    # completes our close.
    assert connection.receive_data(data(b"in flight"), 0) == [Frame(b"in flight")]
    assert connection.receive_eof().code is CLOSED_LOCALLY
    connection.receive_data(encode_frame(Frame.bye_frame()), 0)
    assert connection.bye_reason().code is CLOSED_LOCALLY


def test_the_first_reason_wins_and_the_queue_is_dropped() -> None:
    connection = Connection(Wire.V1, "peer")
    connection.enqueue([bytes(10)], 10, 0, now=0)
    assert connection.finish(DisconnectReason(CONNECTION_LOST, "reset")) == 10
    assert connection.finish(DisconnectReason(CLOSED_LOCALLY)) == 0
    assert connection.reason == "connection lost: reset"
    assert connection.state is ConnectionState.CLOSED and not connection.send_queue
    with pytest.raises(ConnectionClosedError, match="reset"):
        connection.check_open()


# --- sending and its limits ----------------------------------------------------------------


def test_counters_follow_frames_written_at_once_queued_and_sent_in_parts() -> None:
    connection = Connection(Wire.V1, "peer")
    connection.wrote(105)  # taken whole by the kernel
    connection.enqueue(connection.encode(Frame(bytes(100))), 105, 5, now=0)  # 5 bytes taken
    connection.enqueue(connection.encode(Frame(bytes(100))), 105, 0, now=0)
    stats = connection.stats
    assert (stats.frames_sent, stats.frames_queued, stats.bytes_queued) == (1, 2, 205)
    connection.sent(150, now=0)
    assert (connection.stats.frames_sent, connection.stats.frames_queued) == (2, 1)
    connection.sent(55, now=0)
    stats = connection.stats
    assert (stats.frames_sent, stats.bytes_sent, stats.bytes_queued) == (3, 315, 0)
    assert not connection.send_queue


def test_a_frame_always_fits_an_empty_queue() -> None:
    connection = Connection(Wire.V1, "peer", limits=SendLimits("raise", hard_limit=10))
    assert connection.room_for(1000, now=0)


def test_policy_raise_refuses_a_frame_above_the_hard_limit() -> None:
    connection = Connection(Wire.V1, "peer", limits=SendLimits("raise", hard_limit=100 * KIB))
    connection.enqueue([bytes(90 * KIB)], 90 * KIB, 0, now=0)
    assert connection.room_for(10 * KIB, now=0)
    with pytest.raises(SendBufferFullError) as raised:
        connection.room_for(10 * KIB + 1, now=0)
    assert (raised.value.queued, raised.value.limit) == (90 * KIB, 100 * KIB)
    assert connection.slow_consumer(now=1e9) is None  # never disconnects


def test_policy_block_asks_the_sender_to_wait() -> None:
    connection = Connection(Wire.V1, "peer", limits=SendLimits("block", hard_limit=100))
    connection.enqueue([bytes(90)], 90, 0, now=0)
    assert not connection.room_for(20, now=0)
    connection.sent(50, now=0)
    assert connection.room_for(20, now=0)


def test_policy_disconnect_cuts_above_the_hard_limit_at_once() -> None:
    limits = SendLimits("disconnect", hard_limit=100 * KIB, soft_limit=0)
    connection = Connection(Wire.V1, "peer", limits=limits)
    connection.enqueue([bytes(150 * KIB)], 150 * KIB, 0, now=0)  # one frame: accepted
    assert connection.slow_consumer(now=0) is None
    assert connection.room_for(KIB, now=0)
    connection.enqueue([bytes(KIB)], KIB, 0, now=0)
    reason = connection.slow_consumer(now=0)
    assert reason is not None and reason.code is DisconnectCode.SLOW_CONSUMER
    assert "hard limit" in reason.detail


def test_policy_disconnect_cuts_above_the_soft_limit_held_for_its_time() -> None:
    limits = SendLimits("disconnect", hard_limit=100 * KIB, soft_limit=10 * KIB, soft_seconds=5)
    connection = Connection(Wire.V1, "peer", limits=limits)
    connection.enqueue([bytes(20 * KIB)], 20 * KIB, 0, now=100)
    assert connection.send_deadline() == 105
    assert connection.slow_consumer(now=104) is None
    connection.sent(15 * KIB, now=104)  # back under the soft limit: the clock restarts
    assert connection.send_deadline() is None
    connection.enqueue([bytes(20 * KIB)], 20 * KIB, 0, now=110)
    reason = connection.slow_consumer(now=115)
    assert reason is not None and reason.code is DisconnectCode.SLOW_CONSUMER
    assert "5 s" in reason.detail


def test_policy_wait_asks_the_sender_to_wait_while_the_peer_drains() -> None:
    connection = Connection(Wire.V1, "peer", limits=SendLimits(hard_limit=100 * KIB))
    assert connection.limits.policy == "wait"  # the default
    connection.enqueue([bytes(90 * KIB)], 90 * KIB, 0, now=100)
    assert not connection.room_for(20 * KIB, now=100)
    # A sender waits from 100.5: the peer has until 101.5 to take a byte.
    assert connection.drain_deadline(waiting_since=100.5) == 101.5
    connection.sent(KIB, now=101.2)  # it took some: a new second from then
    assert connection.not_draining(now=102.0, waiting_since=100.5) is None
    assert connection.drain_deadline(waiting_since=100.5) == 102.2
    connection.sent(30 * KIB, now=102.0)
    assert connection.room_for(20 * KIB, now=102.0)
    assert connection.slow_consumer(now=1e9) is None  # never cut for bytes alone


def test_policy_wait_cuts_a_peer_that_took_nothing_for_the_drain_timeout() -> None:
    limits = SendLimits(hard_limit=100 * KIB, drain_timeout=0.5)
    connection = Connection(Wire.V1, "peer", limits=limits)
    connection.enqueue([bytes(90 * KIB)], 90 * KIB, 0, now=10)
    # Its last progress was long ago, but a sender that starts waiting gives it the
    # full timeout from then.
    assert connection.not_draining(now=60.4, waiting_since=60) is None
    reason = connection.not_draining(now=60.5, waiting_since=60)
    assert reason is not None and reason.code is DisconnectCode.SLOW_CONSUMER
    assert "took no byte for 0.5 s" in reason.detail


def test_only_policy_wait_has_a_drain_deadline() -> None:
    for policy in ("disconnect", "block", "raise"):
        connection = Connection(Wire.V1, "peer", limits=SendLimits(policy, hard_limit=10))
        connection.enqueue([bytes(90)], 90, 0, now=0)
        assert connection.drain_deadline(waiting_since=0) is None
        assert connection.not_draining(now=1e9, waiting_since=0) is None
    empty = Connection(Wire.V1, "peer")
    assert empty.drain_deadline(waiting_since=0) is None  # nothing waits: nothing to drain


def test_limits_are_checked() -> None:
    with pytest.raises(InvalidArgumentError):
        SendLimits("drop")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        SendLimits(hard_limit=-1)
    with pytest.raises(InvalidArgumentError):
        SendLimits(drain_timeout=0)


def test_frames_are_written_at_once_until_a_stream_is_seen() -> None:
    connection = Connection(Wire.V1, "peer")
    assert all(connection.write_directly() for _ in range(STREAM_AFTER))
    assert not connection.write_directly()  # one way, again and again: a stream
    connection.received()  # a reply: requests and replies go out at once
    assert connection.write_directly()
    for _ in range(STREAM_AFTER):
        connection.write_directly()
    connection.ran_dry()  # the writer caught up: the next frames go out at once again
    assert connection.write_directly()
    connection.enqueue([b"waiting"], 7, 0, now=0)
    connection.received()
    assert not connection.write_directly()  # never ahead of what waits
