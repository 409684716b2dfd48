"""The two wire formats and the incremental decoder, without sockets."""

from __future__ import annotations

import itertools
import os
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymasep.comm.core import (
    CommunicationError,
    EncodeError,
    Frame,
    FrameDecoder,
    FrameKind,
    FrameTooLargeError,
    ProtocolError,
    Wire,
    encode_frame,
)
from pymasep.comm.core.wire import (
    DEFAULT_MAX_FRAME_SIZE,
    LEGACY_MAX_FRAME_SIZE,
    MAGIC,
    PREAMBLE,
    PROTOCOL_VERSION,
    V1_MAX_FRAME_SIZE,
    encode_header,
)

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test

MiB = 1024 * 1024

# --- constants ---------------------------------------------------------------------------


def test_constants() -> None:
    assert MAGIC == b"\x89PMC"
    assert PROTOCOL_VERSION == 1
    assert PREAMBLE == b"\x89PMC\x01"
    assert V1_MAX_FRAME_SIZE == 4_294_967_295
    assert LEGACY_MAX_FRAME_SIZE == 65_535
    assert DEFAULT_MAX_FRAME_SIZE == 16_777_216


def test_wire_accepts_plain_strings() -> None:
    assert Wire("v1") is Wire.V1
    assert Wire("legacy") is Wire.LEGACY
    assert str(Wire.LEGACY) == "legacy"
    wire: object = Wire.V1  # a str too: compares equal to the plain name
    assert wire == "v1"


# --- encoding: v1 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (Frame(b"hello"), b"\x00\x00\x00\x00\x05hello"),
        (Frame(b""), b"\x00\x00\x00\x00\x00"),
        (Frame(b"BYE"), b"\x00\x00\x00\x00\x03BYE"),
        (Frame.hello_frame("alice"), b"\x01\x00\x00\x00\x05alice"),
        (Frame.bye_frame(), b"\x02\x00\x00\x00\x03BYE"),
        (Frame.refuse_frame("full"), b"\x03\x00\x00\x00\x04full"),
        (Frame(b"\xab" * 300), b"\x00\x00\x00\x01\x2c" + b"\xab" * 300),
        (Frame(b"\xcd" * 70_000), b"\x00\x00\x01\x11\x70" + b"\xcd" * 70_000),
    ],
)
def test_encode_v1(frame: Frame, expected: bytes) -> None:
    assert encode_frame(frame) == expected
    assert encode_frame(frame, Wire.V1) == expected
    assert encode_frame(frame, "v1") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "size", "expected"),
    [
        (FrameKind.DATA, 0, b"\x00\x00\x00\x00\x00"),
        (FrameKind.HELLO, 65_536, b"\x01\x00\x01\x00\x00"),
        (FrameKind.DATA, 64 * MiB, b"\x00\x04\x00\x00\x00"),
        (FrameKind.DATA, 2**32 - 1, b"\x00\xff\xff\xff\xff"),
        (FrameKind.REFUSE, 2**31, b"\x03\x80\x00\x00\x00"),
    ],
)
def test_encode_header_v1(kind: FrameKind, size: int, expected: bytes) -> None:
    assert encode_header(kind, size, Wire.V1) == expected


def test_v1_header_cannot_describe_4_gib() -> None:
    with pytest.raises(FrameTooLargeError) as info:
        encode_header(FrameKind.DATA, 2**32, Wire.V1)
    assert info.value.size == 2**32
    assert info.value.limit == V1_MAX_FRAME_SIZE


# --- encoding: legacy --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (Frame(b"hello"), b"\x05\x00hello"),
        (Frame(b""), b"\x00\x00"),
        (Frame.hello_frame("alice"), b"\x05\x00alice"),
        (Frame.bye_frame(), b"\x03\x00BYE"),
        (Frame(b"\xab" * 300), b"\x2c\x01" + b"\xab" * 300),
        (Frame(b"\xcd" * 65_535), b"\xff\xff" + b"\xcd" * 65_535),
    ],
)
def test_encode_legacy(frame: Frame, expected: bytes) -> None:
    assert encode_frame(frame, Wire.LEGACY) == expected
    assert encode_frame(frame, "legacy") == expected  # type: ignore[arg-type]


def test_legacy_matches_pymasep_0_2_layout() -> None:
    # pymasep 0.2's SocketHandler.send_frame: size.to_bytes(2, 'little') then the payload.
    for payload in (b"", b"x", b"<Message/>" * 100, bytes(range(256)) * 200):
        expected = len(payload).to_bytes(2, "little") + payload
        assert encode_frame(Frame(payload), Wire.LEGACY) == expected


def test_legacy_frame_above_65535_bytes_is_too_large() -> None:
    with pytest.raises(FrameTooLargeError) as info:
        encode_frame(Frame(b"x" * 65_536), Wire.LEGACY)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, CommunicationError)
    assert info.value.size == 65_536
    assert info.value.limit == LEGACY_MAX_FRAME_SIZE


def test_legacy_header_above_65535_bytes_is_too_large() -> None:
    with pytest.raises(FrameTooLargeError):
        encode_header(FrameKind.DATA, 65_536, Wire.LEGACY)


@pytest.mark.parametrize("wire", [Wire.LEGACY, "legacy"])
def test_legacy_cannot_carry_a_data_frame_bye(wire: Wire) -> None:
    with pytest.raises(EncodeError, match="BYE"):
        encode_frame(Frame(b"BYE"), wire)


def test_legacy_cannot_carry_a_refusal() -> None:
    with pytest.raises(EncodeError, match="refusal"):
        encode_frame(Frame.refuse_frame("full"), Wire.LEGACY)
    with pytest.raises(EncodeError, match="refusal"):
        encode_header(FrameKind.REFUSE, 4, Wire.LEGACY)


def test_encode_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="BYE"):
        encode_frame(Frame(b"BYE"), Wire.LEGACY)


def test_encode_header_takes_plain_strings() -> None:
    # Regression: "v1" once fell through to the legacy branch.
    assert encode_header(FrameKind.DATA, 10, "v1") == b"\x00\x00\x00\x00\x0a"  # type: ignore[arg-type]
    assert encode_header(FrameKind.DATA, 10, "legacy") == b"\x0a\x00"  # type: ignore[arg-type]


# --- decoding: fixed bytes ---------------------------------------------------------------


def test_decode_v1_hand_written_bytes() -> None:
    data = (
        b"\x01\x00\x00\x00\x05alice"
        b"\x00\x00\x00\x00\x00"
        b"\x00\x00\x00\x00\x03BYE"
        b"\x03\x00\x00\x00\x04full"
        b"\x02\x00\x00\x00\x03BYE"
    )
    assert FrameDecoder().feed(data) == [
        Frame.hello_frame("alice"),
        Frame(b""),
        Frame(b"BYE"),
        Frame.refuse_frame("full"),
        Frame.bye_frame(),
    ]


def test_decode_legacy_hand_written_bytes() -> None:
    frames = FrameDecoder(Wire.LEGACY).feed(b"\x05\x00alice\x00\x00\x02\x00hi\x03\x00BYE")
    assert frames == [Frame(b"alice"), Frame(b""), Frame(b"hi"), Frame.bye_frame()]
    assert [frame.kind for frame in frames] == [FrameKind.DATA] * 3 + [FrameKind.BYE]


def test_decoder_takes_plain_string_wire() -> None:
    assert FrameDecoder("legacy").wire is Wire.LEGACY  # type: ignore[arg-type]


def test_negative_max_frame_size_is_refused() -> None:
    with pytest.raises(ValueError, match="max_frame_size"):
        FrameDecoder(max_frame_size=-1)


@pytest.mark.parametrize("convert", [bytes, bytearray, memoryview])
@pytest.mark.parametrize("wire", list(Wire))
def test_decoder_takes_bytes_like(convert: type, wire: Wire) -> None:
    frames = [Frame(b"one"), Frame(b"two" * 100), Frame.bye_frame()]
    data = b"".join(encode_frame(frame, wire) for frame in frames)
    decoder = FrameDecoder(wire)
    received: list[Frame] = []
    for start in range(0, len(data), 7):  # cuts inside headers and payloads
        received += decoder.feed(convert(data[start : start + 7]))
    assert received == frames
    assert all(type(frame.message) is bytes for frame in received)
    assert decoder.buffered == 0


@pytest.mark.parametrize("view", [False, True])
def test_decoded_payloads_do_not_alias_the_input(view: bool) -> None:
    # A receive loop reuses one buffer (recv_into): nothing may point into it afterwards.
    def wrap(chunk: bytearray) -> bytearray | memoryview:
        return memoryview(chunk) if view else chunk

    chunk = bytearray(encode_frame(Frame(b"abc")) + encode_frame(Frame(b"defg"))[:7])
    decoder = FrameDecoder()
    (frame,) = decoder.feed(wrap(chunk))
    chunk[:] = b"\x00" * len(chunk)
    assert frame.message == b"abc"
    assert type(frame.message) is bytes
    assert decoder.feed(b"fg") == [Frame(b"defg")]


def test_buffered_and_incoming_frame_size() -> None:
    decoder = FrameDecoder()
    assert decoder.buffered == 0
    assert decoder.incoming_frame_size is None
    assert decoder.feed(b"\x00\x00\x00") == []
    assert decoder.incoming_frame_size is None
    assert decoder.feed(b"\x00\x04ab") == []
    assert decoder.incoming_frame_size == 4
    assert decoder.buffered == 7
    assert decoder.feed(b"cd\x00") == [Frame(b"abcd")]
    assert decoder.buffered == 1
    assert decoder.incoming_frame_size is None


def test_legacy_incoming_frame_size() -> None:
    decoder = FrameDecoder(Wire.LEGACY)
    decoder.feed(b"\x2c")
    assert decoder.incoming_frame_size is None
    decoder.feed(b"\x01")
    assert decoder.incoming_frame_size == 300


def test_empty_feed_returns_nothing() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    decoder.feed(b"\x00\x00")
    assert decoder.feed(b"") == []
    assert decoder.buffered == 2


# --- decoding: limits and errors ---------------------------------------------------------


@pytest.mark.parametrize("wire", list(Wire))
def test_frame_at_the_limit_is_accepted(wire: Wire) -> None:
    decoder = FrameDecoder(wire, max_frame_size=100)
    assert decoder.feed(encode_frame(Frame(b"x" * 100), wire)) == [Frame(b"x" * 100)]


@pytest.mark.parametrize("wire", list(Wire))
def test_oversized_frame_is_refused_from_its_header_alone(wire: Wire) -> None:
    decoder = FrameDecoder(wire, max_frame_size=100)
    header = encode_header(FrameKind.DATA, 101, wire)
    assert decoder.feed(header[:-1]) == []  # not yet a complete header
    with pytest.raises(FrameTooLargeError) as info:
        decoder.feed(header[-1:])  # no payload byte has arrived
    assert (info.value.size, info.value.limit) == (101, 100)


def test_whole_oversized_frame_in_one_chunk_is_refused() -> None:
    # One chunk holding exactly one frame takes the decoder's fast path: same limit.
    decoder = FrameDecoder(max_frame_size=10)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(encode_frame(Frame(b"x" * 11)))


@pytest.mark.parametrize("kind", list(FrameKind))
def test_one_whole_frame_per_chunk_keeps_its_kind(kind: FrameKind) -> None:
    decoder = FrameDecoder()
    for payload in (b"", b"ping", b"x" * 5000):
        data = memoryview(bytearray(encode_frame(Frame(payload, kind))))
        assert decoder.feed(data) == [Frame(payload, kind)]
        assert decoder.buffered == 0


@pytest.mark.parametrize("kind", list(FrameKind))
def test_decode_whole_takes_exactly_one_v1_frame(kind: FrameKind) -> None:
    buffer = bytearray(64)
    data = encode_frame(Frame(b"ping", kind))
    buffer[: len(data)] = data
    assert FrameDecoder().decode_whole(memoryview(buffer), len(data)) == Frame(b"ping", kind)


def test_decode_whole_leaves_anything_else_to_feed() -> None:
    one = encode_frame(Frame(b"ping"))
    decoder = FrameDecoder(max_frame_size=10)
    assert decoder.decode_whole(one[:-1], len(one) - 1) is None  # partial
    assert decoder.decode_whole(one + one, 2 * len(one)) is None  # two frames
    assert decoder.decode_whole(one[:3], 3) is None  # not even a header
    too_large = encode_frame(Frame(b"x" * 11))
    assert decoder.decode_whole(too_large, len(too_large)) is None
    unknown = b"\x09\x00\x00\x00\x01x"
    assert decoder.decode_whole(unknown, len(unknown)) is None
    legacy = encode_frame(Frame(b"ping"), Wire.LEGACY)
    assert FrameDecoder(Wire.LEGACY).decode_whole(legacy, len(legacy)) is None
    # Nothing was consumed: a partial frame, then its end, still decode in order.
    assert decoder.feed(one[:-1]) == []
    assert decoder.decode_whole(one[-1:], 1) is None  # bytes are buffered
    assert decoder.feed(one[-1:]) == [Frame(b"ping")]


def test_oversized_frame_after_good_frames_in_the_same_chunk() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    data = encode_frame(Frame(b"ok")) + encode_header(FrameKind.DATA, 11, Wire.V1)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(data)


def test_4_gib_header_is_refused_without_allocating() -> None:
    decoder = FrameDecoder()  # default limit: 16 MiB
    header = encode_header(FrameKind.DATA, 2**32 - 1, Wire.V1)
    tracemalloc.start()
    try:
        with pytest.raises(FrameTooLargeError) as info:
            decoder.feed(header)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert info.value.size == 2**32 - 1
    assert info.value.limit == DEFAULT_MAX_FRAME_SIZE


def test_just_above_default_limit_is_refused() -> None:
    with pytest.raises(FrameTooLargeError):
        FrameDecoder().feed(encode_header(FrameKind.DATA, DEFAULT_MAX_FRAME_SIZE + 1, Wire.V1))


@pytest.mark.parametrize("kind", [7, 8, 0x7F, 0xFF])
def test_unknown_v1_kind_is_a_protocol_error(kind: int) -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError, match=f"kind {kind}"):
        decoder.feed(bytes([kind]) + b"\x00\x00\x00\x01x")


def test_unknown_kind_is_refused_before_its_payload() -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(b"\x09\x00\x00\x10\x00")


# --- decoding: any frames, any chunking (hypothesis) -------------------------------------

_payloads = st.binary(max_size=300) | st.binary(min_size=1000, max_size=3000)
_v1_frames = st.builds(Frame, _payloads, st.sampled_from(FrameKind))
_legacy_frames = _payloads.filter(lambda payload: payload != b"BYE").map(Frame) | st.just(
    Frame.bye_frame()
)
_wire_and_frames = st.one_of(
    st.tuples(st.just(Wire.V1), st.lists(_v1_frames, max_size=12)),
    st.tuples(st.just(Wire.LEGACY), st.lists(_legacy_frames, max_size=12)),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cut % (len(data) + 1) for cut in cuts), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


def _check_decoding(wire: Wire, frames: list[Frame], chunks: list[bytes]) -> None:
    """Feed ``chunks``; every frame must come out as soon as its last byte is in."""
    ends = []
    position = 0
    for frame in frames:
        position += len(encode_frame(frame, wire))
        ends.append(position)
    decoder = FrameDecoder(wire)
    received: list[Frame] = []
    fed = 0
    for chunk in chunks:
        received += decoder.feed(chunk)
        fed += len(chunk)
        assert len(received) == sum(1 for end in ends if end <= fed)
        assert decoder.buffered == fed - (ends[len(received) - 1] if received else 0)
    assert received == frames
    assert decoder.buffered == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_wire_and_frames, st.lists(st.integers(min_value=0), max_size=40))
def test_any_frames_any_chunking(
    wire_and_frames: tuple[Wire, list[Frame]], cuts: list[int]
) -> None:
    wire, frames = wire_and_frames
    data = b"".join(encode_frame(frame, wire) for frame in frames)
    _check_decoding(wire, frames, _split(data, cuts))


@settings(max_examples=40, deadline=None)
@given(_wire_and_frames)
def test_any_frames_one_byte_at_a_time(wire_and_frames: tuple[Wire, list[Frame]]) -> None:
    wire, frames = wire_and_frames
    data = b"".join(encode_frame(frame, wire) for frame in frames)
    _check_decoding(wire, frames, [data[i : i + 1] for i in range(len(data))])


@settings(max_examples=100, deadline=None)
@given(_wire_and_frames)
def test_any_frames_one_chunk(wire_and_frames: tuple[Wire, list[Frame]]) -> None:
    wire, frames = wire_and_frames
    data = b"".join(encode_frame(frame, wire) for frame in frames)
    _check_decoding(wire, frames, [data])


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(Wire),
    st.integers(min_value=0, max_value=64) | st.just(DEFAULT_MAX_FRAME_SIZE),
    st.lists(st.binary(max_size=64), max_size=20),
)
def test_random_bytes_only_raise_library_errors(
    wire: Wire, max_frame_size: int, chunks: list[bytes]
) -> None:
    decoder = FrameDecoder(wire, max_frame_size)
    received = 0
    try:
        for chunk in chunks:
            frames = decoder.feed(chunk)
            assert all(isinstance(frame, Frame) for frame in frames)
            received += sum(frame.size for frame in frames)
    except FrameTooLargeError:
        pass
    except ProtocolError:
        if wire is not Wire.V1:  # the legacy wire has no kind byte to get wrong
            raise
    assert received <= sum(len(chunk) for chunk in chunks)


# --- decoding: volume --------------------------------------------------------------------


def _one_byte_at_a_time(decoder: FrameDecoder, data: bytes) -> list[Frame]:
    feed = decoder.feed
    view = memoryview(data)
    received: list[Frame] = []
    for position in range(len(data)):
        received += feed(view[position : position + 1])
    return received


# Linearity guards: a buffer that copied what it holds on each byte would take hours
# here (the pytest timeout fails it). Byte by byte through code the other tests cover.
@pytest.mark.no_cover
def test_v1_megabytes_one_byte_at_a_time() -> None:
    frames = [Frame(os.urandom(2 * MiB)), *(Frame(os.urandom(100)) for _ in range(50))]
    data = b"".join(encode_frame(frame) for frame in frames)
    decoder = FrameDecoder()
    assert _one_byte_at_a_time(decoder, data) == frames
    assert decoder.buffered == 0


@pytest.mark.no_cover
def test_legacy_megabyte_one_byte_at_a_time() -> None:
    frames = [Frame(os.urandom(LEGACY_MAX_FRAME_SIZE)) for _ in range(16)] + [Frame.bye_frame()]
    data = b"".join(encode_frame(frame, Wire.LEGACY) for frame in frames)
    decoder = FrameDecoder(Wire.LEGACY)
    assert _one_byte_at_a_time(decoder, data) == frames
    assert decoder.buffered == 0


def test_16_mib_frame_in_64_kib_chunks() -> None:
    payload = os.urandom(16 * MiB)
    data = encode_frame(Frame(payload)) + encode_frame(Frame.bye_frame())
    decoder = FrameDecoder()
    received: list[Frame] = []
    for start in range(0, len(data), 64 * 1024):
        received += decoder.feed(data[start : start + 64 * 1024])
    assert len(received) == 2
    assert received[0].size == 16 * MiB
    assert received[0].message == payload
    assert received[1] == Frame.bye_frame()
    assert decoder.buffered == 0


def test_memoryview_of_wide_items_is_read_as_bytes() -> None:
    """A view whose items are wider than a byte is decoded by its bytes, not its items."""
    import array

    encoded = encode_frame(Frame(b"abc")) + encode_frame(Frame(b"defg"))
    encoded += bytes(-len(encoded) % 4)  # pad to whole 32-bit items
    items = array.array("I")
    items.frombytes(encoded)
    frames = FrameDecoder(Wire.V1).feed(memoryview(items))
    assert [frame.message for frame in frames[:2]] == [b"abc", b"defg"]


def test_a_large_frame_is_read_in_place_into_one_buffer_of_its_size() -> None:
    payload = os.urandom(3 << 20)
    after = encode_frame(Frame(b"next"))
    data = encode_frame(Frame(payload)) + after
    decoder = FrameDecoder(Wire.V1)
    assert decoder.direct_view(1 << 20) is None  # nothing yet
    assert decoder.feed(data[:1000]) == []  # the header and a little
    view = decoder.direct_view(1 << 20)
    assert view is not None and len(view) == len(data) - len(after) - 1000
    first = 1 << 20
    view[:first] = data[1000 : 1000 + first]  # what recv_into would do
    assert decoder.direct_filled(first) == []
    assert decoder.buffered == 1000 + first
    rest = decoder.direct_view(1 << 20)
    assert rest is not None
    rest[:] = data[1000 + first : len(data) - len(after)]
    assert decoder.direct_filled(len(rest)) == [Frame(payload)]
    assert decoder.buffered == 0
    assert decoder.feed(after) == [Frame(b"next")]


def test_bytes_fed_while_a_frame_is_read_in_place_complete_it_first() -> None:
    payload = os.urandom(2 << 20)
    data = encode_frame(Frame(payload)) + encode_frame(Frame(b"next"))
    decoder = FrameDecoder(Wire.V1)
    decoder.feed(data[:100])
    assert decoder.direct_view(1 << 20) is not None
    assert decoder.incoming_frame_size == len(payload)
    assert decoder.feed(data[100:]) == [Frame(payload), Frame(b"next")]
    assert decoder.buffered == 0


def test_small_frames_and_the_legacy_wire_are_never_read_in_place() -> None:
    small = FrameDecoder(Wire.V1)
    small.feed(encode_frame(Frame(bytes(1000)))[:10])
    assert small.direct_view(1 << 20) is None
    legacy = FrameDecoder(Wire.LEGACY)
    legacy.feed(encode_frame(Frame(bytes(60000)), Wire.LEGACY)[:10])
    assert legacy.direct_view(1000) is None
