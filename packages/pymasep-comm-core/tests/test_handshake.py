"""The opening exchange, as byte-fed state machines: both wires, refusals, bad peers."""

from __future__ import annotations

import itertools
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymasep.comm.core import (
    CommunicationError,
    ConnectionRejectedError,
    Frame,
    FrameKind,
    FrameTooLargeError,
    HandshakeError,
    ProtocolError,
    Wire,
    encode_frame,
)
from pymasep.comm.core.handshake import (
    MAX_IDENT_SIZE,
    ClientHandshake,
    ServerHandshake,
    detect_wire,
)
from pymasep.comm.core.wire import DEFAULT_MAX_FRAME_SIZE, PREAMBLE, encode_header

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test


def legacy_hello(ident: str) -> bytes:
    """What pymasep 0.2 sends as its hello (client) or answers (server)."""
    raw = ident.encode("utf-8")
    return len(raw).to_bytes(2, "little") + raw


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cut % (len(data) + 1) for cut in cuts), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


def _feed_until_done(side: ClientHandshake | ServerHandshake, chunks: list[bytes]) -> list[bytes]:
    """Feed chunks until the handshake completes; return the chunks left over."""
    for index, chunk in enumerate(chunks):
        if side.receive_data(chunk):
            return chunks[index + 1 :]
    raise AssertionError("the handshake did not complete")


_idents = st.text(min_size=1, max_size=40)  # no surrogates: every id encodes to UTF-8
_cuts = st.lists(st.integers(min_value=0), max_size=20)


# --- detect_wire -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "wire"),
    [
        (b"", None),
        (b"\x89", None),
        (b"\x89P", None),
        (b"\x89PM", None),
        (b"\x89PMC", Wire.V1),
        (b"\x89PMC\x01", Wire.V1),
        (b"\x89PMC\x07", Wire.V1),  # the version is checked later, with a clear error
        (b"\x05", Wire.LEGACY),
        (b"\x05\x00alice", Wire.LEGACY),
        (b"\x89\x00", Wire.LEGACY),  # a 0.2 hello of 137 bytes
        (b"\x89PMX", Wire.LEGACY),
        (b"GET / HTTP/1.1", Wire.LEGACY),
    ],
)
def test_detect_wire(prefix: bytes, wire: Wire | None) -> None:
    assert detect_wire(prefix) is wire


def test_a_0_2_peer_reads_the_magic_as_a_20617_byte_hello() -> None:
    assert int.from_bytes(PREAMBLE[:2], "little") == 20_617


# --- opening bytes -----------------------------------------------------------------------


def test_v1_client_opening_bytes() -> None:
    assert ClientHandshake("alice").bytes_to_send() == (
        b"\x89PMC\x01" + b"\x01\x00\x00\x00\x05alice"
    )


def test_legacy_client_opening_bytes_are_a_0_2_hello() -> None:
    client = ClientHandshake("alice", wire="legacy")  # type: ignore[arg-type]
    assert client.wire is Wire.LEGACY
    assert client.bytes_to_send() == b"\x05\x00alice" == legacy_hello("alice")


def test_client_id_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        ClientHandshake("")


# --- v1 accept ---------------------------------------------------------------------------


def test_v1_handshake() -> None:
    client = ClientHandshake("alice")
    server = ServerHandshake("engine")
    assert server.receive_data(client.bytes_to_send()) is True
    assert server.wire is Wire.V1
    assert server.client_ident == "alice"
    accept = server.accept_bytes()
    assert accept == b"\x89PMC\x01" + b"\x01\x00\x00\x00\x06engine"
    assert client.receive_data(accept) is True
    assert client.server_ident == "engine"
    assert client.pending_frames == server.pending_frames == []
    assert client.decoder is not None
    assert client.decoder.buffered == 0


@settings(max_examples=150, deadline=None)
@given(_idents, _idents, _cuts, _cuts)
def test_v1_handshake_in_any_chunks(
    client_id: str, server_id: str, client_cuts: list[int], server_cuts: list[int]
) -> None:
    client = ClientHandshake(client_id)
    server = ServerHandshake(server_id)
    rest = _feed_until_done(server, _split(client.bytes_to_send(), client_cuts))
    assert b"".join(rest) == b""  # True exactly when the last byte of the hello arrives
    assert server.client_ident == client_id
    assert server.wire is Wire.V1
    rest = _feed_until_done(client, _split(server.accept_bytes(), server_cuts))
    assert b"".join(rest) == b""
    assert client.server_ident == server_id
    assert client.pending_frames == server.pending_frames == []


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(Wire),
    st.lists(st.binary(max_size=200).filter(lambda payload: payload != b"BYE"), max_size=5),
    _cuts,
)
def test_frames_behind_the_hello_reach_the_application(
    wire: Wire, payloads: list[bytes], cuts: list[int]
) -> None:
    client = ClientHandshake("alice", wire)
    server = ServerHandshake("engine")
    frames = [Frame(payload) for payload in payloads]
    data = client.bytes_to_send() + b"".join(encode_frame(frame, wire) for frame in frames)
    rest = _feed_until_done(server, _split(data, cuts))
    assert server.wire is wire
    assert server.client_ident == "alice"
    assert server.decoder is not None
    received = list(server.pending_frames)
    for chunk in rest:
        received += server.decoder.feed(chunk)
    assert received == frames
    assert server.decoder.buffered == 0


def test_pending_frames_and_a_partial_frame_in_the_hello_chunk() -> None:
    server = ServerHandshake("engine")
    second = encode_frame(Frame(b"second frame"))
    data = PREAMBLE + encode_frame(Frame.hello_frame("alice")) + encode_frame(Frame(b"first"))
    assert server.receive_data(data + second[:7]) is True
    assert server.pending_frames == [Frame(b"first")]
    assert server.decoder is not None
    assert server.decoder.buffered == 7
    assert server.decoder.feed(second[7:]) == [Frame(b"second frame")]


def test_client_keeps_frames_behind_the_server_hello() -> None:
    client = ClientHandshake("alice")
    server = ServerHandshake("engine")
    server.receive_data(client.bytes_to_send())
    data = server.accept_bytes() + encode_frame(Frame(b"welcome")) + b"\x00\x00"
    assert client.receive_data(data) is True
    assert client.pending_frames == [Frame(b"welcome")]
    assert client.decoder is not None
    assert client.decoder.buffered == 2


def test_unicode_ident() -> None:
    client = ClientHandshake("élève ✓")
    server = ServerHandshake("moteur")
    server.receive_data(client.bytes_to_send())
    assert server.client_ident == "élève ✓"


def test_hello_of_exactly_max_ident_size_is_accepted() -> None:
    server = ServerHandshake("engine")
    assert server.receive_data(ClientHandshake("a" * MAX_IDENT_SIZE).bytes_to_send()) is True
    assert server.client_ident == "a" * MAX_IDENT_SIZE


def test_feeding_after_completion_is_an_error() -> None:
    client = ClientHandshake("alice")
    server = ServerHandshake("engine")
    server.receive_data(client.bytes_to_send())
    client.receive_data(server.accept_bytes())
    with pytest.raises(HandshakeError, match="already complete"):
        server.receive_data(b"x")
    with pytest.raises(HandshakeError, match="already complete"):
        client.receive_data(b"x")


def test_empty_chunks_are_harmless() -> None:
    server = ServerHandshake("engine")
    assert server.receive_data(b"") is False
    assert server.wire is None
    assert server.receive_data(PREAMBLE[:2]) is False
    assert server.receive_data(b"") is False
    assert server.receive_data(ClientHandshake("alice").bytes_to_send()[2:]) is True


# --- v1 refuse ---------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=80), _cuts)
def test_refusal_reaches_the_client_with_its_reason(reason: str, cuts: list[int]) -> None:
    client = ClientHandshake("alice")
    server = ServerHandshake("engine")
    server.receive_data(client.bytes_to_send())
    refuse = server.refuse_bytes(reason)
    assert refuse == PREAMBLE + encode_frame(Frame.refuse_frame(reason))
    with pytest.raises(ConnectionRejectedError) as info:
        _feed_until_done(client, _split(refuse, cuts))
    assert info.value.reason == reason
    assert isinstance(info.value, HandshakeError)
    assert isinstance(info.value, ConnectionError)


def test_refusal_bytes() -> None:
    server = ServerHandshake("engine")
    server.receive_data(ClientHandshake("alice").bytes_to_send())
    assert server.refuse_bytes("full") == b"\x89PMC\x01" + b"\x03\x00\x00\x00\x04full"


def test_long_refusal_reason_is_cut_and_still_a_refusal() -> None:
    # Regression: a reason above MAX_IDENT_SIZE bytes reached the client as FrameTooLargeError.
    client = ClientHandshake("alice")
    server = ServerHandshake("engine")
    server.receive_data(client.bytes_to_send())
    reason = "x" * (MAX_IDENT_SIZE - 1) + "é" * 10  # the cut falls inside a character
    with pytest.raises(ConnectionRejectedError) as info:
        client.receive_data(server.refuse_bytes(reason))
    assert info.value.reason == "x" * (MAX_IDENT_SIZE - 1)


def test_refusal_from_a_foreign_server_is_decoded_leniently() -> None:
    client = ClientHandshake("alice")
    with pytest.raises(ConnectionRejectedError) as info:
        client.receive_data(PREAMBLE + encode_frame(Frame(b"bad \xff", FrameKind.REFUSE)))
    assert info.value.reason == "bad \ufffd"


# --- legacy client on our server ---------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(_idents, _cuts)
def test_server_detects_a_0_2_client(ident: str, cuts: list[int]) -> None:
    server = ServerHandshake("engine")
    rest = _feed_until_done(server, _split(legacy_hello(ident), cuts))
    assert b"".join(rest) == b""
    assert server.wire is Wire.LEGACY
    assert server.client_ident == ident
    assert server.accept_bytes() == legacy_hello("engine")


def test_0_2_hello_of_137_bytes_starts_like_the_magic() -> None:
    ident = "p" * 137  # length byte 0x89, then 0x00
    server = ServerHandshake("engine")
    assert server.receive_data(legacy_hello(ident)[:1]) is False
    assert server.wire is None  # b"\x89" could still be v1
    assert server.receive_data(legacy_hello(ident)[1:]) is True
    assert server.wire is Wire.LEGACY
    assert server.client_ident == ident


def test_legacy_refusal_is_silent() -> None:
    server = ServerHandshake("engine")
    server.receive_data(legacy_hello("alice"))
    assert server.refuse_bytes("full") == b""


def test_legacy_client_gets_frames_behind_its_hello_as_0_2_would_send_them() -> None:
    server = ServerHandshake("engine")
    data = legacy_hello("alice") + b"\x02\x00hi" + b"\x03\x00BYE"
    assert server.receive_data(data) is True
    assert server.pending_frames == [Frame(b"hi"), Frame.bye_frame()]


def test_our_legacy_client_with_our_server() -> None:
    client = ClientHandshake("alice", Wire.LEGACY)
    server = ServerHandshake("engine")
    assert server.receive_data(client.bytes_to_send()) is True
    assert server.wire is Wire.LEGACY
    assert client.receive_data(server.accept_bytes()) is True
    assert client.server_ident == "engine"


# --- our legacy client on a 0.2 server ---------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(_idents, _cuts)
def test_legacy_client_with_a_0_2_server(server_id: str, cuts: list[int]) -> None:
    client = ClientHandshake("alice", Wire.LEGACY)
    # pymasep 0.2's WaitConnection: receive_frame() then send_frame(hello_frame(id)).
    hello = client.bytes_to_send()
    length = int.from_bytes(hello[:2], "little")
    assert hello[2 : 2 + length].decode("utf-8") == "alice"
    rest = _feed_until_done(client, _split(legacy_hello(server_id), cuts))
    assert b"".join(rest) == b""
    assert client.server_ident == server_id


# --- v1 client on a 0.2 server -----------------------------------------------------------


def test_v1_client_on_a_0_2_server_is_told_to_use_legacy() -> None:
    client = ClientHandshake("alice")
    # A 0.2 server reads b"\x89P" as a length and takes what else arrived as the id.
    opening = client.bytes_to_send()
    assert int.from_bytes(opening[:2], "little") == 20_617
    answer = legacy_hello("engine")
    with pytest.raises(ProtocolError, match="wire='legacy'"):
        client.receive_data(answer)


def test_v1_client_on_a_0_2_server_fails_on_the_first_byte() -> None:
    client = ClientHandshake("alice")
    with pytest.raises(ProtocolError, match="wire='legacy'"):
        client.receive_data(legacy_hello("engine")[:1])


# --- bad peers ---------------------------------------------------------------------------


def test_wrong_version_byte_on_the_server() -> None:
    server = ServerHandshake("engine")
    data = b"\x89PMC\x03" + encode_frame(Frame.hello_frame("alice"))
    with pytest.raises(ProtocolError, match="version 3"):
        server.receive_data(data)


def test_wrong_version_byte_on_the_client() -> None:
    client = ClientHandshake("alice")
    assert client.receive_data(b"\x89PMC") is False
    with pytest.raises(ProtocolError, match="version 0"):
        client.receive_data(b"\x00")


@pytest.mark.parametrize(
    ("wire", "opening", "limit"),
    [
        (
            Wire.V1,
            PREAMBLE + encode_header(FrameKind.HELLO, MAX_IDENT_SIZE + 1, Wire.V1),
            MAX_IDENT_SIZE,
        ),
        # Above the receive limit, the decoder refuses it before the hello check does.
        (
            Wire.V1,
            PREAMBLE + encode_header(FrameKind.HELLO, 2**32 - 1, Wire.V1),
            DEFAULT_MAX_FRAME_SIZE,
        ),
        (Wire.LEGACY, (MAX_IDENT_SIZE + 1).to_bytes(2, "little"), MAX_IDENT_SIZE),
        (Wire.LEGACY, b"\xff\xff", MAX_IDENT_SIZE),
    ],
)
def test_oversized_hello_is_refused_from_its_header(wire: Wire, opening: bytes, limit: int) -> None:
    server = ServerHandshake("engine")
    with pytest.raises(FrameTooLargeError) as info:
        server.receive_data(opening)  # no byte of the id has arrived
    assert info.value.limit == limit
    assert server.wire is wire
    assert server.decoder is not None
    assert server.decoder.buffered <= len(opening)


def test_oversized_server_hello_is_refused_by_the_client() -> None:
    client = ClientHandshake("alice")
    with pytest.raises(FrameTooLargeError):
        client.receive_data(PREAMBLE + encode_header(FrameKind.HELLO, 10_000, Wire.V1))


@pytest.mark.parametrize(
    "opening",
    [
        PREAMBLE + encode_frame(Frame(b"", FrameKind.HELLO)),
        PREAMBLE + encode_frame(Frame(b"\xff\xfe", FrameKind.HELLO)),
        PREAMBLE + encode_frame(Frame(b"caf\xc3", FrameKind.HELLO)),
        b"\x00\x00",
        b"\x02\x00\xff\xfe",
    ],
)
def test_empty_or_invalid_utf8_ident_is_a_protocol_error(opening: bytes) -> None:
    with pytest.raises(ProtocolError, match=r"empty|UTF-8"):
        ServerHandshake("engine").receive_data(opening)


def test_empty_server_ident_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="empty"):
        ClientHandshake("alice").receive_data(PREAMBLE + encode_frame(Frame(b"", FrameKind.HELLO)))


@pytest.mark.parametrize("kind", [FrameKind.DATA, FrameKind.BYE, FrameKind.REFUSE])
def test_v1_client_must_open_with_hello(kind: FrameKind) -> None:
    with pytest.raises(ProtocolError, match=f"{kind.name} frame"):
        ServerHandshake("engine").receive_data(PREAMBLE + encode_frame(Frame(b"alice", kind)))


@pytest.mark.parametrize("kind", [FrameKind.DATA, FrameKind.BYE])
def test_v1_server_must_open_with_hello(kind: FrameKind) -> None:
    with pytest.raises(ProtocolError, match=f"{kind.name} frame"):
        ClientHandshake("alice").receive_data(PREAMBLE + encode_frame(Frame(b"engine", kind)))


def test_unknown_kind_in_the_hello_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="kind 9"):
        ServerHandshake("engine").receive_data(PREAMBLE + b"\x09\x00\x00\x00\x01x")


def test_http_request_is_read_as_a_bogus_legacy_hello_and_refused() -> None:
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    server = ServerHandshake("engine")
    # b"GE" read as a little-endian length: 0x4547 = 17,735 bytes, above MAX_IDENT_SIZE.
    with pytest.raises(FrameTooLargeError) as info:
        server.receive_data(request[:2])
    assert server.wire is Wire.LEGACY
    assert (info.value.size, info.value.limit) == (0x4547, MAX_IDENT_SIZE)
    assert isinstance(info.value, CommunicationError)
    with pytest.raises(FrameTooLargeError):
        ServerHandshake("engine").receive_data(request)


def _tls_client_hello() -> bytes:
    """What a TLS client sends first, made without a socket (memory BIOs)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="engine")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("cut", [1, 2, 3, None])
def test_a_tls_client_hello_is_refused_at_once_by_a_server_without_tls(cut: int | None) -> None:
    hello = _tls_client_hello()
    server = ServerHandshake("engine")
    step = cut or len(hello)

    def feed() -> None:
        for start in range(0, len(hello), step):
            server.receive_data(hello[start : start + step])

    with pytest.raises(ProtocolError, match="TLS"):
        feed()


def test_a_0_2_hello_that_starts_like_tls_but_is_not_stays_legacy() -> None:
    server = ServerHandshake("engine")
    assert server.receive_data(b"\x16\x03") is False  # it may yet be TLS: wait
    assert server.receive_data(b"Z" + b"z" * 789) is True
    assert (server.wire, server.client_ident) == (Wire.LEGACY, "Z" + "z" * 789)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_random_bytes_to_the_server_only_raise_library_errors(chunks: list[bytes]) -> None:
    server = ServerHandshake("engine")
    try:
        for chunk in chunks:
            if server.receive_data(chunk):
                assert server.client_ident
                assert server.wire is not None
                break
    except (ProtocolError, FrameTooLargeError):
        pass  # any other exception fails the test


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(Wire),
    st.binary(max_size=10).map(lambda tail: PREAMBLE + tail) | st.binary(max_size=40),
    _cuts,
)
def test_random_bytes_to_the_client_only_raise_library_errors(
    wire: Wire, data: bytes, cuts: list[int]
) -> None:
    client = ClientHandshake("alice", wire)
    try:
        for chunk in _split(data, cuts):
            if client.receive_data(chunk):
                assert client.server_ident
                break
    except (ProtocolError, FrameTooLargeError, ConnectionRejectedError, HandshakeError):
        pass  # any other exception fails the test


def test_legacy_server_named_bye_is_a_hello() -> None:
    """On the legacy wire the first frame is the server's id, even when it reads "BYE"."""
    client = ClientHandshake("interface", Wire.LEGACY)
    assert client.receive_data(len(b"BYE").to_bytes(2, "little") + b"BYE")
    assert client.server_ident == "BYE"
