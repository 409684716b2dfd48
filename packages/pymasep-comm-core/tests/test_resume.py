"""Resuming a broken connection, without sockets: the messages, sequence numbers and
acknowledgements, the secret and its proofs, the server's table of held sessions, and
exactly-once delivery across any breaks and resumes (not wired into connections yet)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymasep.comm.core import (
    ConnectionRejectedError,
    DecodeError,
    Frame,
    FrameDecoder,
    InvalidArgumentError,
    InvalidStateError,
    PeerFrameTooLargeError,
    ProtocolError,
)
from pymasep.comm.core.auth import MAC_SIZE, NONCE_SIZE
from pymasep.comm.core.connection import Connection, DisconnectCode, DisconnectReason
from pymasep.comm.core.handshake import (
    MAX_IDENT_SIZE,
    ClientHandshake,
    ResumeHandshake,
    ServerHandshake,
)
from pymasep.comm.core.resume import (
    ACK_EVERY_FRAMES,
    ACK_INTERVAL,
    ACK_KIND,
    DEFAULT_ACK_EVERY_BYTES,
    EXTENDED_VERSION,
    MAX_COUNT,
    MAX_RESUME_PAYLOAD,
    MAX_WINDOW,
    RESUME_KIND,
    SESSION_ID_SIZE,
    ClientSession,
    ReceiveLog,
    RefusalReason,
    ResumeAccept,
    ResumeAccepted,
    ResumeDecline,
    ResumeMessage,
    ResumeOffer,
    ResumeRefused,
    ResumeRefusedError,
    ResumeRequest,
    SendLog,
    SessionTable,
    ack_every_bytes,
    ack_frame,
    check_resume_window,
    decode_ack,
    decode_resume,
    encode_resume,
    preamble_version,
    resume_frame,
)
from pymasep.comm.core.wire import MAGIC, PREAMBLE, V1_HEADER, encode_frame

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test

KEY = b"the engine's key"


def payload_of(frame: bytes) -> bytes:
    _kind, size = V1_HEADER.unpack_from(frame)
    assert len(frame) == V1_HEADER.size + size
    return frame[V1_HEADER.size :]


def negotiate(
    table: SessionTable,
    *,
    client_window: float = 30.0,
    client_key: bytes | None = None,
    ack_bytes: int = DEFAULT_ACK_EVERY_BYTES,
    client_id: str = "alice",
) -> ClientSession:
    """The handshake's part: the client's OFFER, the server's ACCEPT, over the wire."""
    offer = ResumeOffer.new(client_window, ack_bytes)
    received_offer = decode_resume(payload_of(resume_frame(offer)))
    assert isinstance(received_offer, ResumeOffer)
    _session, accept = table.open(client_id, "engine", received_offer, ack_bytes)
    received_accept = decode_resume(payload_of(resume_frame(accept)))
    assert isinstance(received_accept, ResumeAccept)
    return ClientSession.start(offer, received_accept, client_id, "engine", client_key)


def request_of(frame: bytes) -> ResumeRequest:
    message = decode_resume(payload_of(frame))
    assert isinstance(message, ResumeRequest)
    return message


# --- the messages -----------------------------------------------------------------------

_bytes = st.binary
_counts = st.integers(min_value=0, max_value=MAX_COUNT)
_windows = st.integers(min_value=1, max_value=int(MAX_WINDOW * 1000)).map(lambda ms: ms / 1000)
_ack_bytes = st.integers(min_value=1, max_value=2**32 - 1)
_messages: st.SearchStrategy[ResumeMessage] = st.one_of(
    st.builds(ResumeOffer, _windows, _ack_bytes, _bytes(min_size=NONCE_SIZE, max_size=NONCE_SIZE)),
    st.builds(
        ResumeAccept,
        _windows,
        _ack_bytes,
        _bytes(min_size=SESSION_ID_SIZE, max_size=SESSION_ID_SIZE),
        _bytes(min_size=NONCE_SIZE, max_size=NONCE_SIZE),
    ),
    st.just(ResumeDecline()),
    st.builds(
        ResumeRequest,
        _bytes(min_size=SESSION_ID_SIZE, max_size=SESSION_ID_SIZE),
        st.integers(min_value=1, max_value=MAX_COUNT),
        _bytes(min_size=NONCE_SIZE, max_size=NONCE_SIZE),
        _counts,
        _bytes(min_size=MAC_SIZE, max_size=MAC_SIZE),
    ),
    st.builds(ResumeAccepted, _counts, _bytes(min_size=MAC_SIZE, max_size=MAC_SIZE)),
    st.builds(ResumeRefused, st.sampled_from(RefusalReason)),
)


@settings(max_examples=300, deadline=None)
@given(_messages)
def test_every_message_round_trips_through_its_frame(message: ResumeMessage) -> None:
    frame = resume_frame(message)
    assert len(frame) - V1_HEADER.size <= MAX_RESUME_PAYLOAD
    assert V1_HEADER.unpack_from(frame)[0] == RESUME_KIND
    assert decode_resume(payload_of(frame)) == message


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=120),
        _messages.map(encode_resume).flatmap(
            lambda good: st.tuples(
                st.just(good), st.integers(0, len(good)), st.binary(max_size=3)
            ).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + len(t[2]) :])
        ),
    )
)
def test_a_payload_is_one_exact_message_or_a_decode_error(payload: bytes) -> None:
    # Random bytes and corrupted messages: either exactly one message, which encodes
    # back to the same bytes, or DecodeError; never another exception.
    try:
        message = decode_resume(payload)
    except DecodeError:
        return
    assert encode_resume(message) == payload


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"", "empty"),
        (b"\x07", "unknown RESUME message type 7"),
        (b"\x00", "unknown RESUME message type 0"),
        (b"\x03\x00", "DECLINE is 1 bytes, not 2"),
        (b"\x06\x04", "unknown resume refusal reason 4"),
        (b"\x01" + bytes(8) + bytes(NONCE_SIZE), "window of 0 ms"),
        (b"\x01" + (86_400_001).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(32), "window"),
        (b"\x01" + (1000).to_bytes(4, "big") + bytes(4) + bytes(32), "ack every 0 bytes"),
        (b"\x04" + bytes(16) + bytes(8) + bytes(32 + 8 + 32), "attempt starts at 1"),
    ],
)
def test_garbage_is_refused_with_a_decode_error(payload: bytes, words: str) -> None:
    with pytest.raises(DecodeError, match=words):
        decode_resume(payload)


def test_a_resume_window_of_0_turns_resuming_off_and_a_negative_one_is_refused() -> None:
    assert check_resume_window(0) == 0
    assert check_resume_window(2.5) == 2.5
    with pytest.raises(InvalidArgumentError, match="resume_window must not be negative"):
        check_resume_window(-1)


def test_an_ack_is_eight_bytes_of_count() -> None:
    frame = ack_frame(MAX_COUNT)
    assert frame[:5] == bytes([ACK_KIND]) + (8).to_bytes(4, "big")
    assert decode_ack(payload_of(frame)) == MAX_COUNT
    for bad in (b"", bytes(7), bytes(9)):
        with pytest.raises(DecodeError):
            decode_ack(bad)
    with pytest.raises(InvalidArgumentError):
        ack_frame(MAX_COUNT + 1)


def test_the_new_kinds_are_protocol_errors_on_a_connection_that_did_not_negotiate_them() -> None:
    # A peer that never offered (or was declined) must not get them: an ACK or a RESUME
    # frame after its handshake ends the connection as a protocol error.
    for frame in (ack_frame(3), resume_frame(ResumeDecline())):
        connection = Connection(peer_id="p")
        with pytest.raises(ProtocolError, match="unexpected"):
            connection.receive_data(frame, 0.0)


# What a server built before resuming answers a client's version byte 2, recorded: its
# handshake refuses the preamble before reading any frame.
OLDER_SERVER_ANSWER = PREAMBLE + encode_frame(
    Frame.refuse_frame("the peer speaks protocol version 2, this side speaks 1")
)


@pytest.mark.parametrize("authkey", [None, KEY])
def test_a_client_sees_an_older_server_refuse_its_offer(authkey: bytes | None) -> None:
    client = ClientHandshake("a", authkey=authkey, resume_offer=ResumeOffer.new(30.0))
    assert client.bytes_to_send().startswith(MAGIC + bytes([EXTENDED_VERSION]))
    assert client.receive_data(OLDER_SERVER_ANSWER) is False
    assert client.older_server and client.server_ident is None
    assert preamble_version(OLDER_SERVER_ANSWER) == 1


def test_the_preamble_version_tells_an_older_server_from_a_new_one() -> None:
    assert preamble_version(MAGIC + bytes([EXTENDED_VERSION]) + b"more") == EXTENDED_VERSION
    with pytest.raises(ProtocolError, match="does not speak the v1 wire"):
        preamble_version(b"\x06\x00engine")  # a pymasep 0.2 server's hello
    with pytest.raises(ProtocolError, match="protocol version 3"):
        preamble_version(MAGIC + b"\x03")


@pytest.mark.parametrize(
    "message",
    [
        ResumeOffer(0.0, 1, bytes(NONCE_SIZE)),
        ResumeOffer(MAX_WINDOW + 1, 1, bytes(NONCE_SIZE)),
        ResumeOffer(1.0, 0, bytes(NONCE_SIZE)),
        ResumeOffer(1.0, 1, bytes(NONCE_SIZE - 1)),
        ResumeAccept(1.0, 1, bytes(SESSION_ID_SIZE + 1), bytes(NONCE_SIZE)),
        ResumeRequest(bytes(16), 0, bytes(32), 0, bytes(32)),
        ResumeRequest(bytes(16), 1, bytes(32), -1, bytes(32)),
        ResumeAccepted(MAX_COUNT + 1, bytes(32)),
    ],
)
def test_a_message_out_of_range_is_not_encoded(message: ResumeMessage) -> None:
    with pytest.raises(InvalidArgumentError):
        encode_resume(message)


def test_a_refusal_pickles_with_its_reason() -> None:
    error = pickle.loads(pickle.dumps(ResumeRefusedError(RefusalReason.EXPIRED)))
    assert isinstance(error, ResumeRefusedError)
    assert isinstance(error, ConnectionRejectedError)  # what connect() callers catch
    assert error.refusal is RefusalReason.EXPIRED
    assert "window has passed" in str(error)


# --- sequence numbers and acknowledgements ----------------------------------------------


def test_the_send_log_numbers_frames_and_releases_them_on_ack() -> None:
    log = SendLog()
    assert [log.record(b"x" * n) for n in (1, 2, 3)] == [0, 1, 2]
    assert log.unacked_bytes == 6 + 3 * V1_HEADER.size
    assert log.ack(2) == 2
    assert (len(log), log.unacked_bytes) == (1, 3 + V1_HEADER.size)
    assert log.ack(2) == 0  # the same count again: nothing new, no error
    assert log.resume(2) == [b"xxx"]
    assert len(log) == 1  # resent frames stay held until acknowledged


def test_acks_of_any_size_release_exactly_the_frames_they_count() -> None:
    log = SendLog()
    payloads = [bytes([n % 256]) * (n % 7) for n in range(300)]
    for payload in payloads:
        log.record(payload)
    released = 0
    for count in (1, 2, 130, 131, 260):
        released += log.ack(count)
        assert released == count
        assert log.unacked_bytes == sum(len(p) + V1_HEADER.size for p in payloads[count:])
    assert log.resume(260) == payloads[260:]


def test_an_ack_of_frames_never_sent_is_a_protocol_error() -> None:
    log = SendLog()
    log.record(b"a")
    with pytest.raises(ProtocolError, match="acknowledged 2 frames, but only 1 were sent"):
        log.ack(2)
    with pytest.raises(ProtocolError, match="only 1 were sent"):
        log.resume(5)


def test_an_ack_that_goes_backwards_is_a_protocol_error() -> None:
    log = SendLog()
    for _ in range(3):
        log.record(b"a")
    log.ack(2)
    with pytest.raises(ProtocolError, match="acknowledged 1 frames after acknowledging 2"):
        log.ack(1)
    with pytest.raises(ProtocolError, match="after acknowledging 2"):
        log.resume(0)
    assert len(log) == 1  # nothing released by the refused counts


def test_the_resend_log_counts_against_the_send_limit_but_never_waits_for_an_ack() -> None:
    session = negotiate(SessionTable())
    session.log.record(b"x" * 95)  # 100 bytes held, not acknowledged
    # Connected: an empty send queue takes any frame, however much waits for an ACK.
    assert session.room_for(500, queued_bytes=0, hard_limit=200)
    # Bytes queued: the bytes held are the larger of the queue and the log.
    assert session.room_for(100, queued_bytes=50, hard_limit=200)
    assert not session.room_for(101, queued_bytes=50, hard_limit=200)
    assert not session.room_for(1, queued_bytes=250, hard_limit=200)
    # During an outage the log is the queue.
    session.broke(0.0)
    assert session.room_for(100, queued_bytes=0, hard_limit=200)
    assert not session.room_for(101, queued_bytes=0, hard_limit=200)
    session.log.ack(1)
    assert session.room_for(500, queued_bytes=0, hard_limit=200)


def test_counters_never_wrap() -> None:
    log = SendLog()
    log.sent = log.acked = MAX_COUNT - 1
    assert log.record(b"last") == MAX_COUNT - 1
    with pytest.raises(InvalidStateError, match="2\\*\\*64 - 1"):
        log.record(b"one too many")


def test_an_ack_is_due_every_ack_every_frames_once_per_read_turn() -> None:
    acks = ReceiveLog()
    acks.count(ACK_EVERY_FRAMES - 1, 100)
    assert acks.take_ack() is None
    acks.count(ACK_EVERY_FRAMES * 3, 100)  # one read turn with many frames: one ACK
    frame = acks.take_ack()
    assert frame is not None and decode_ack(payload_of(frame)) == ACK_EVERY_FRAMES * 4 - 1
    assert acks.take_ack() is None


def test_an_ack_is_due_after_the_bytes_the_peer_asked_for() -> None:
    acks = ReceiveLog(ack_bytes=1000)
    acks.count(1, 999)
    assert acks.take_ack() is None
    acks.count(1, 1)
    frame = acks.take_ack()
    assert frame is not None and decode_ack(payload_of(frame)) == 2


def test_an_ack_is_due_a_tenth_of_a_second_after_the_first_frame_it_acknowledges() -> None:
    acks = ReceiveLog()
    assert acks.count(1, 100, now=0.0) is False  # the clock starts with this frame
    assert acks.count(1, 100, now=ACK_INTERVAL / 2) is False
    assert acks.count(1, 100, now=ACK_INTERVAL) is True
    frame = acks.take_ack()
    assert frame is not None and decode_ack(payload_of(frame)) == 3
    # After an ACK the clock starts again with the next frame, not at the ACK.
    assert acks.count(1, 100, now=20.0) is False
    assert acks.take_ack() is None


def test_each_side_asks_for_acks_well_within_its_send_limit() -> None:
    assert ack_every_bytes(64 * 1024 * 1024) == DEFAULT_ACK_EVERY_BYTES
    assert ack_every_bytes(400_000) == 100_000
    assert ack_every_bytes(0) == 1


# --- negotiation, secret and proofs -----------------------------------------------------


def test_the_window_is_the_smaller_of_both() -> None:
    session = negotiate(SessionTable(window=10.0), client_window=30.0)
    assert session.window == 10.0
    session = negotiate(SessionTable(window=30.0), client_window=5.0)
    assert session.window == 5.0


def test_a_client_refuses_a_window_longer_than_it_offered() -> None:
    offer = ResumeOffer.new(5.0)
    accept = ResumeAccept(6.0, 1, bytes(SESSION_ID_SIZE), bytes(NONCE_SIZE))
    with pytest.raises(ProtocolError, match="above the 5 s offered"):
        ClientSession.start(offer, accept, "alice", "engine")


@pytest.mark.parametrize("key", [None, KEY])
def test_a_client_with_the_secret_resumes(key: bytes | None) -> None:
    table = SessionTable(key_lookup=None if key is None else (lambda ident: key))
    client = negotiate(table, client_key=key)
    client.log.record(b"to the server")
    server = table.get(client.session_id)
    assert server is not None
    server.log.record(b"to the client")
    client.broke(0.0)
    table.broke(client.session_id, 1.0)
    decision = table.resume(request_of(client.request()), 2.0)
    assert decision.refusal is None and decision.session is server
    assert decision.resend == [b"to the client"]
    assert client.answer(payload_of(decision.answer)) == [b"to the server"]
    assert (server.resumes, client.resumes, table.held) == (1, 1, 0)


def _refusal(decision_answer: bytes) -> RefusalReason:
    message = decode_resume(payload_of(decision_answer))
    assert isinstance(message, ResumeRefused)
    return message.reason


def test_a_resume_without_the_secret_is_refused() -> None:
    table = SessionTable()
    victim = negotiate(table)
    table.broke(victim.session_id, 0.0)
    # The attacker knows the session id (guessed or seen) but not the nonces' secret:
    # it runs a negotiation of its own and swaps the id in.
    attacker = negotiate(SessionTable())
    attacker.session_id = victim.session_id
    decision = table.resume(request_of(attacker.request()), 1.0)
    assert decision.refusal is RefusalReason.BAD_PROOF
    assert decision.answer == resume_frame(ResumeRefused(RefusalReason.BAD_PROOF))
    assert table.held == 1  # the victim can still resume
    assert table.resume(request_of(victim.request()), 2.0).refusal is None


@pytest.mark.parametrize("client_key", [None, b"another key"])
def test_a_resume_without_the_key_is_refused(client_key: bytes | None) -> None:
    table = SessionTable(key_lookup=lambda ident: KEY)
    # The same negotiation, without the server's key: neither the secret nor the proof
    # key is the server's.
    client = negotiate(table, client_key=client_key)
    table.broke(client.session_id, 0.0)
    assert table.resume(request_of(client.request()), 1.0).refusal is RefusalReason.BAD_PROOF


def test_a_resume_is_refused_once_the_key_is_withdrawn() -> None:
    keys = {"alice": KEY}
    table = SessionTable(key_lookup=keys.get)
    client = negotiate(table, client_key=KEY)
    table.broke(client.session_id, 0.0)
    del keys["alice"]
    assert table.resume(request_of(client.request()), 1.0).refusal is RefusalReason.BAD_PROOF


def test_a_recorded_request_cannot_be_replayed() -> None:
    table = SessionTable()
    client = negotiate(table)
    table.broke(client.session_id, 0.0)
    recorded = request_of(client.request())
    assert table.resume(recorded, 1.0).refusal is None
    table.broke(client.session_id, 2.0)
    assert table.resume(recorded, 3.0).refusal is RefusalReason.BAD_PROOF


def test_an_attempt_whose_answer_was_lost_is_followed_by_one_that_succeeds() -> None:
    table = SessionTable()
    client = negotiate(table)
    table.broke(client.session_id, 0.0)
    assert table.resume(request_of(client.request()), 1.0).refusal is None  # answer lost
    decision = table.resume(request_of(client.request()), 2.0)
    assert decision.refusal is None and decision.was_live
    assert client.answer(payload_of(decision.answer)) == []


def test_a_resume_of_an_unknown_session_is_refused() -> None:
    # The server restarted: a new table knows nothing.
    client = negotiate(SessionTable())
    decision = SessionTable().resume(request_of(client.request()), 0.0)
    assert decision.refusal is RefusalReason.UNKNOWN_SESSION
    with pytest.raises(ResumeRefusedError, match="does not know this session") as caught:
        client.answer(payload_of(decision.answer))
    assert caught.value.refusal is RefusalReason.UNKNOWN_SESSION


def test_a_session_ended_by_a_bye_cannot_be_resumed() -> None:
    table = SessionTable()
    client = negotiate(table)
    table.close(client.session_id)
    assert table.resume(request_of(client.request()), 0.0).refusal is (
        RefusalReason.UNKNOWN_SESSION
    )


def test_a_client_refuses_an_answer_without_the_servers_proof() -> None:
    client = negotiate(SessionTable())
    client.log.record(b"kept")
    client.request()
    forged = encode_resume(ResumeAccepted(0, bytes(MAC_SIZE)))
    with pytest.raises(ProtocolError, match="proof is wrong"):
        client.answer(forged)
    assert len(client.log) == 1  # nothing released on a forged answer


def test_an_answer_without_a_request_is_a_state_error() -> None:
    client = negotiate(SessionTable())
    with pytest.raises(InvalidStateError):
        client.answer(encode_resume(ResumeRefused(RefusalReason.EXPIRED)))


def test_a_proven_resume_with_an_impossible_count_is_a_protocol_error() -> None:
    table = SessionTable()
    client = negotiate(table)
    table.broke(client.session_id, 0.0)
    client.acks.count(5, 50)  # the server never sent 5 frames
    with pytest.raises(ProtocolError, match="only 0 were sent"):
        table.resume(request_of(client.request()), 1.0)


# --- the table of held sessions ---------------------------------------------------------


def test_a_held_session_expires_after_its_window_with_a_reason() -> None:
    table = SessionTable(window=10.0)
    client = negotiate(table)
    server = table.get(client.session_id)
    assert server is not None
    server.log.record(b"lost")
    table.broke(client.session_id, 100.0)
    assert table.next_deadline() == 110.0
    assert table.expire(109.9) == []
    ((ended, detail),) = table.expire(110.0)
    assert ended is server
    assert detail == "not resumed within 10 s; 1 frames (9 bytes) not acknowledged were dropped"
    assert (len(table), table.held, table.next_deadline(), len(server.log)) == (0, 0, None, 0)
    late = table.resume(request_of(client.request()), 111.0)
    assert late.refusal is RefusalReason.EXPIRED


def test_a_client_gives_up_when_its_window_passes_and_says_what_it_drops() -> None:
    client = negotiate(SessionTable(window=5.0))
    client.log.record(b"unsent")
    assert client.broke(10.0) == 15.0
    assert client.broke(12.0) == 15.0  # the first break counts
    assert not client.expired(14.9)
    assert client.expired(15.0)
    assert client.end() == (
        "not resumed within 5 s; 1 frames (11 bytes) not acknowledged were dropped"
    )
    assert len(client.log) == 0


def test_a_resume_after_the_window_is_refused_even_before_expire_runs() -> None:
    table = SessionTable(window=10.0)
    client = negotiate(table)
    table.broke(client.session_id, 0.0)
    assert table.resume(request_of(client.request()), 10.0).refusal is RefusalReason.EXPIRED
    assert len(table) == 0


def test_the_first_deadline_is_the_shortest_window_not_the_oldest_break() -> None:
    table = SessionTable(window=30.0)
    long = negotiate(table, client_window=30.0)
    short = negotiate(table, client_window=5.0, client_id="bob")
    table.broke(long.session_id, 0.0)
    table.broke(short.session_id, 1.0)
    assert table.next_deadline() == 6.0
    assert [s.client_id for s, _ in table.expire(6.0)] == ["bob"]


def test_held_sessions_are_bounded_the_oldest_break_is_evicted() -> None:
    table = SessionTable(max_held=2)
    clients = [negotiate(table, client_id=f"c{i}") for i in range(3)]
    assert table.broke(clients[0].session_id, 0.0) == []
    assert table.broke(clients[1].session_id, 1.0) == []
    ((evicted, detail),) = table.broke(clients[2].session_id, 2.0)
    assert evicted.client_id == "c0"
    assert detail.startswith("evicted: 2 sessions were held already")
    assert table.held == 2
    assert table.resume(request_of(clients[0].request()), 3.0).refusal is RefusalReason.EXPIRED


def test_forgotten_sessions_are_bounded_too() -> None:
    table = SessionTable(window=1.0, max_forgotten=1)
    first, second = negotiate(table), negotiate(table, client_id="bob")
    for client in (first, second):
        table.broke(client.session_id, 0.0)
    table.expire(5.0)
    forgotten = table.resume(request_of(first.request()), 6.0)
    assert forgotten.refusal is RefusalReason.UNKNOWN_SESSION
    assert table.resume(request_of(second.request()), 6.0).refusal is RefusalReason.EXPIRED


def test_table_limits_are_checked() -> None:
    with pytest.raises(InvalidArgumentError):
        SessionTable(window=0.0)
    with pytest.raises(InvalidArgumentError):
        SessionTable(max_held=0)


# --- exactly once, in order, across breaks and resumes ----------------------------------


@dataclass
class _Side:
    name: str
    sent: list[bytes] = field(default_factory=list)
    delivered: list[bytes] = field(default_factory=list)


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.sampled_from("cs"), st.integers(1, 150)),
        st.tuples(st.just("deliver"), st.sampled_from("cs"), st.integers(1, 200)),
        # A break: what arrives of each direction's frames in flight, then the rest is
        # lost; and whether the server saw the break before the client came back.
        st.tuples(st.just("break"), st.integers(0, 200), st.integers(0, 200), st.booleans()),
        # A resume attempt: it succeeds, or its request or its answer is lost.
        st.tuples(st.just("resume"), st.sampled_from(["ok", "lose request", "lose answer"])),
    ),
    max_size=60,
)


@settings(max_examples=250, deadline=None)
@given(_ops, st.integers(min_value=1, max_value=400), st.sampled_from([None, KEY]))
def test_every_frame_arrives_once_and_in_order_across_breaks_and_resumes(
    ops: list[tuple[object, ...]], ack_bytes: int, key: bytes | None
) -> None:
    table = SessionTable(window=1000.0, key_lookup=None if key is None else (lambda i: key))
    client = negotiate(table, client_key=key, ack_bytes=ack_bytes)
    server = table.get(client.session_id)
    assert server is not None
    states = {"c": client, "s": server}
    sides = {"c": _Side("client"), "s": _Side("server")}
    # Frames in flight from each side: ("data", payload) or ("ack", frame bytes).
    flight: dict[str, list[tuple[str, bytes]]] = {"c": [], "s": []}
    connected = True
    now = 0.0

    def other(name: str) -> str:
        return "s" if name == "c" else "c"

    def deliver(sender: str, count: int, link_up: bool) -> None:
        receiver = other(sender)
        arriving, flight[sender][:] = flight[sender][:count], flight[sender][count:]
        for kind, payload in arriving:
            if kind == "data":
                sides[receiver].delivered.append(payload)
                states[receiver].acks.count(1, len(payload) + V1_HEADER.size)
            else:
                states[receiver].log.ack(decode_ack(payload_of(payload)))
        ack = states[receiver].acks.take_ack()  # the end of the receiver's read turn
        if ack is not None and link_up:
            flight[receiver].append(("ack", ack))

    def resume(outcome: str) -> None:
        nonlocal connected
        request = client.request()
        if outcome == "lose request":
            return
        decision = table.resume(request_of(request), now)
        assert decision.refusal is None
        if outcome == "lose answer":
            table.broke(client.session_id, now)  # the new connection died too
            return
        resent_by_client = client.answer(payload_of(decision.answer))
        flight["c"] = [("data", p) for p in resent_by_client]
        flight["s"] = [("data", p) for p in decision.resend]
        connected = True

    for op in ops:
        now += 1.0
        if op[0] == "send":
            _, name, count = op
            assert isinstance(name, str) and isinstance(count, int)
            for _ in range(count):
                payload = f"{name}{len(sides[name].sent)}".encode()
                sides[name].sent.append(payload)
                states[name].log.record(payload)
                if connected:  # during an outage frames wait in the log only
                    flight[name].append(("data", payload))
        elif op[0] == "deliver":
            _, name, count = op
            assert isinstance(name, str) and isinstance(count, int)
            if connected:
                deliver(name, count, link_up=True)
        elif op[0] == "break":
            _, keep_c, keep_s, server_saw_it = op
            assert isinstance(keep_c, int) and isinstance(keep_s, int)
            if connected:
                deliver("c", keep_c, link_up=False)
                deliver("s", keep_s, link_up=False)
                flight = {"c": [], "s": []}
                connected = False
                client.broke(now)
                if server_saw_it:
                    table.broke(client.session_id, now)
        elif not connected:
            outcome = op[1]
            assert isinstance(outcome, str)
            resume(outcome)

    if not connected:
        resume("ok")
    while flight["c"] or flight["s"]:
        deliver("c", len(flight["c"]), link_up=True)
        deliver("s", len(flight["s"]), link_up=True)

    assert sides["s"].delivered == sides["c"].sent
    assert sides["c"].delivered == sides["s"].sent
    for name in "cs":
        # What stays held is what the peer received but had no reason to acknowledge yet.
        unacked = states[other(name)].acks
        assert len(states[name].log) == unacked.received - unacked.acked < ACK_EVERY_FRAMES


# -- the negotiation and the resume, through the handshakes (no sockets) ---------------


def _negotiate(authkey: bytes | None, table: SessionTable | None) -> ClientHandshake:
    """Run a client's and a server's handshakes against each other, the client
    offering to resume; the server opens a session in ``table`` (None: it declines)."""
    client = ClientHandshake("alice", authkey=authkey, resume_offer=ResumeOffer.new(30.0))
    server = ServerHandshake("engine", authkey=authkey)
    data = client.bytes_to_send()
    while not server.receive_data(data):
        assert client.receive_data(server.data_to_send()) is False
        data = client.data_to_send()
    assert server.client_ident == "alice" and server.offer is not None
    answer: ResumeAccept | ResumeDecline = ResumeDecline()
    if table is not None:
        _, answer = table.open("alice", "engine", server.offer, DEFAULT_ACK_EVERY_BYTES)
    # The server's first data frame may come in the same read as its answer.
    first = encode_frame(Frame(b"first"))
    assert client.receive_data(server.accept_bytes(answer) + first) is True
    return client


@pytest.mark.parametrize("authkey", [None, KEY])
def test_an_offer_accepted_in_the_handshake_starts_the_same_session_on_both_sides(
    authkey: bytes | None,
) -> None:
    table = SessionTable(30.0, None if authkey is None else (lambda ident: authkey))
    client = _negotiate(authkey, table)
    assert isinstance(client.resume_answer, ResumeAccept)
    assert [f.message for f in client.pending_frames] == [b"first"]
    assert client.offer is not None
    session = ClientSession.start(client.offer, client.resume_answer, "alice", "engine", authkey)
    # The session resumes on a new connection: its request opens it, with no hello.
    resume = ResumeHandshake(session)
    server2 = ServerHandshake("engine", authkey=authkey)
    assert server2.receive_data(resume.bytes_to_send()) is True
    assert server2.resume_request is not None and server2.client_ident is None
    decision = table.resume(server2.resume_request, 1.0)
    assert decision.refusal is None
    again = encode_frame(Frame(b"sent again"))
    assert resume.receive_data(server2.resume_answer_bytes(decision.answer) + again) is True
    assert resume.answer is not None
    assert session.answer(resume.answer) == []
    assert [f.message for f in resume.pending_frames] == [b"sent again"]


def test_a_server_that_does_not_resume_declines_and_the_connection_goes_on() -> None:
    client = _negotiate(None, None)
    assert isinstance(client.resume_answer, ResumeDecline)
    assert client.server_ident == "engine"
    assert [f.message for f in client.pending_frames] == [b"first"]


def test_a_client_that_does_not_offer_sends_todays_bytes() -> None:
    client = ClientHandshake("alice")
    assert client.bytes_to_send() == PREAMBLE + encode_frame(Frame.hello_frame("alice"))
    server = ServerHandshake("engine")
    assert server.receive_data(client.bytes_to_send()) is True
    assert server.offer is None and server.accept_bytes().startswith(PREAMBLE)


def test_a_resume_request_followed_by_more_bytes_is_a_protocol_error() -> None:
    server = ServerHandshake("engine")
    request = ResumeRequest(bytes(16), 1, bytes(32), 0, bytes(32))
    data = MAGIC + bytes([EXTENDED_VERSION]) + resume_frame(request)
    with pytest.raises(ProtocolError, match="nothing before its answer"):
        server.receive_data(data + encode_frame(Frame(b"x")))


@pytest.mark.parametrize(
    "message",
    [ResumeDecline(), ResumeRequest(bytes(16), 1, bytes(32), 0, bytes(32))],
)
def test_a_hello_followed_by_anything_but_an_offer_is_a_protocol_error(
    message: ResumeMessage,
) -> None:
    server = ServerHandshake("engine")
    hello = MAGIC + bytes([EXTENDED_VERSION]) + encode_frame(Frame.hello_frame("a"))
    with pytest.raises(ProtocolError, match="no place"):
        server.receive_data(hello + resume_frame(message))


@pytest.mark.parametrize("reads", ["one read", "two reads"])
@pytest.mark.parametrize("side", ["server", "client"])
def test_an_answer_or_offer_announced_larger_than_a_hello_is_refused_at_its_header(
    side: str, reads: str
) -> None:
    # Found by the resume fuzz target: the hello read, a side waits for the RESUME frame
    # behind it, which must be as bounded as the hello, whether its header comes in the
    # hello's read or later (else an unauthenticated client makes the server buffer up
    # to max_frame_size per handshake).
    huge = V1_HEADER.pack(RESUME_KIND, MAX_IDENT_SIZE + 1)
    machine: ServerHandshake | ClientHandshake
    if side == "server":
        machine = ServerHandshake("engine")
    else:
        machine = ClientHandshake("alice", resume_offer=ResumeOffer.new(30.0))
    hello = MAGIC + bytes([EXTENDED_VERSION]) + encode_frame(Frame.hello_frame("a"))
    if reads == "two reads":
        assert machine.receive_data(hello) is False
        hello = b""
    with pytest.raises(PeerFrameTooLargeError):
        machine.receive_data(hello + huge)


# -- the connection's side: numbering, acknowledgements, a break ------------------------


def _resumable() -> Connection:
    connection = Connection(peer_id="p")
    connection.resume = ClientSession(
        ResumeAccept(30.0, DEFAULT_ACK_EVERY_BYTES, bytes(16), bytes(32)), bytes(32), None
    )
    return connection


def test_an_ack_releases_what_it_acknowledges_and_a_wrong_one_is_a_protocol_error() -> None:
    connection = _resumable()
    assert connection.resume is not None
    for payload in (b"a", b"b", b"c"):
        connection.resume.log.record(payload)
    connection.receive_data(ack_frame(2), 0.0)
    assert connection.resume.log.acked == 2 and len(connection.resume.log) == 1
    with pytest.raises(ProtocolError, match="acknowledged 9 frames"):
        connection.receive_data(ack_frame(9), 0.0)


def test_data_frames_received_are_counted_for_the_acknowledgements() -> None:
    connection = _resumable()
    assert connection.resume is not None
    frames = b"".join(encode_frame(Frame(b"x" * 10)) for _ in range(ACK_EVERY_FRAMES))
    assert len(connection.receive_data(frames, 0.0)) == ACK_EVERY_FRAMES
    assert connection.resume.acks.received == ACK_EVERY_FRAMES
    assert connection.resume.acks.take_ack() == ack_frame(ACK_EVERY_FRAMES)


def test_a_break_drops_what_was_in_flight_and_a_resume_reads_the_new_socket() -> None:
    connection = _resumable()
    connection.enqueue([b"queued"], 6, 0, 0.0)
    connection.receive_data(encode_frame(Frame(b"partial"))[:7], 0.0)
    connection.broke(1.0, DisconnectReason(DisconnectCode.CONNECTION_LOST, "reset"))
    assert connection.broken and connection.stats.bytes_queued == 0
    assert connection.resume is not None and connection.resume.broken_at == 1.0
    decoder = FrameDecoder()
    connection.resumed(decoder, [Frame(b"pending")])
    assert not connection.broken and connection.decoder is decoder
    assert [f.message for f in connection.pending_frames] == [b"pending"]
