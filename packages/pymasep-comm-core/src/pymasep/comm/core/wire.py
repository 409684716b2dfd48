"""The two wire formats and the incremental frame decoder (sans-I/O: no sockets here).

``v1`` (the default) frames are a 5-byte header, ``!BI`` (kind, payload length), then
the payload. ``legacy`` frames are pymasep 0.2's: a 2-byte little-endian length, then the
payload; its hello is the bare id and its bye the payload ``b"BYE"``. ``docs/protocol.md``
draws both layouts and the handshake.
"""

from __future__ import annotations

import enum
import struct

from .exceptions import (
    EncodeError,
    FrameTooLargeError,
    InvalidArgumentError,
    PeerFrameTooLargeError,
    ProtocolError,
)
from .frame import Frame, FrameKind

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "LEGACY_MAX_FRAME_SIZE",
    "MAGIC",
    "PROTOCOL_VERSION",
    "V1_MAX_FRAME_SIZE",
    "FrameDecoder",
    "Wire",
    "encode_frame",
    "encode_header",
]

MAGIC = b"\x89PMC"
"""First bytes a v1 peer sends. 0.2 would read ``\\x89P`` as a 20,617-byte hello, so no
real 0.2 client starts this way, which is how a server tells the two apart."""

PROTOCOL_VERSION = 1
"""Version byte that follows :data:`MAGIC`."""

PREAMBLE = MAGIC + bytes([PROTOCOL_VERSION])

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
"""Largest payload a receiver accepts unless configured otherwise (16 MiB).

A peer can make a receiver hold up to this much for a frame it never finishes (until the
stall timeout cuts it), on every connection at once: the limit is what a hostile or
broken peer may cost. 16 MiB is 256 times the largest message pymasep 0.2 could send
(64 KiB), and room for a large game state or an image; websockets chooses 1 MiB for the
web. An application with larger messages raises it on both sides (``max_frame_size=``)."""

V1_MAX_FRAME_SIZE = 2**32 - 1
"""Largest payload the v1 header can describe."""

LEGACY_MAX_FRAME_SIZE = 2**16 - 1
"""Largest payload pymasep 0.2's 2-byte length can describe."""

V1_HEADER = struct.Struct("!BI")
"""Layout of a v1 header: kind, then payload length (the socket handler packs it inline)."""
_V1_HEADER = V1_HEADER
_LEGACY_HEADER = struct.Struct("<H")
_BYE = b"BYE"
_V1_HEADER_SIZE = _V1_HEADER.size
_V1_UNPACK_FROM = _V1_HEADER.unpack_from
_KINDS = tuple(FrameKind)
_KIND_COUNT = len(_KINDS)

BytesLike = bytes | bytearray | memoryview
"""What :meth:`FrameDecoder.feed` takes."""


class Wire(str, enum.Enum):
    """A wire format. Plain strings work wherever a Wire is expected (``wire="legacy"``)."""

    V1 = "v1"
    """This project's wire: 4 GiB frames, control frames apart from data."""
    LEGACY = "legacy"
    """pymasep 0.2 byte for byte: 64 KiB frames, ``b"BYE"`` closes."""

    def __str__(self) -> str:
        return self.value


_new_frame = Frame.__new__


def _make_frame(payload: bytes, kind: FrameKind) -> Frame:
    # The decoder builds many small frames: skip Frame.__init__'s checks, which the
    # decoder has already made.
    frame = _new_frame(Frame)
    frame.message = payload
    frame.size = len(payload)
    frame.kind = kind
    return frame


def encode_header(kind: FrameKind, size: int, wire: Wire) -> bytes:
    """Encode the header that goes before a payload of ``size`` bytes.

    Args:
        kind: What the frame means to the transport.
        size: Length of the payload, in bytes.
        wire: The wire format.

    Raises:
        FrameTooLargeError: The wire cannot describe a payload this large.
        EncodeError: The legacy wire cannot carry a refusal.
    """
    if type(wire) is not Wire:  # the conversion costs more than the encoding
        wire = Wire(wire)
    if wire is Wire.V1:
        if size > V1_MAX_FRAME_SIZE:
            raise FrameTooLargeError(size, V1_MAX_FRAME_SIZE, "the v1 wire has a 4-byte length")
        return _V1_HEADER.pack(kind, size)
    if size > LEGACY_MAX_FRAME_SIZE:
        raise FrameTooLargeError(
            size, LEGACY_MAX_FRAME_SIZE, "the legacy wire (pymasep 0.2) has a 2-byte length"
        )
    if kind is FrameKind.REFUSE:
        raise EncodeError("the legacy wire (pymasep 0.2) cannot carry a refusal")
    return _LEGACY_HEADER.pack(size)


def encode_frame(frame: Frame, wire: Wire = Wire.V1) -> bytes:
    """Encode a frame, header and payload.

    Args:
        frame: The frame.
        wire: The wire format.

    Raises:
        FrameTooLargeError: The wire cannot describe a payload this large.
        EncodeError: The legacy wire cannot tell this frame from another one: a data frame
            whose payload is ``b"BYE"``, or a refusal.
    """
    wire = Wire(wire)
    if wire is Wire.LEGACY and frame.kind is FrameKind.DATA and frame.message == _BYE:
        raise EncodeError("the legacy wire (pymasep 0.2) reads a data frame b'BYE' as a bye")
    return encode_header(frame.kind, frame.size, wire) + frame.message


class FrameDecoder:
    """Turns bytes, in chunks of any size, into complete frames.

    Partial frames wait in one buffer until the rest arrives. A header announcing a
    payload above ``max_frame_size`` is refused at once, before anything is allocated.

    Args:
        wire: The wire format of the bytes that will be fed.
        max_frame_size: Largest payload accepted, in bytes.
    """

    def __init__(self, wire: Wire = Wire.V1, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 0:
            raise InvalidArgumentError(f"max_frame_size must be positive, not {max_frame_size}")
        self.wire = Wire(wire)
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        # A large frame read in place (see direct_view): the whole frame, and how many
        # of its bytes are there.
        self._large: bytearray | None = None
        self._large_filled = 0

    @property
    def buffered(self) -> int:
        """Number of bytes held that do not make a complete frame yet."""
        return len(self._buffer) + self._large_filled

    def direct_view(self, threshold: int) -> memoryview | None:
        """Where to read the rest of a large frame straight into (zero-copy receive).

        Once the header of a v1 data frame of at least ``threshold`` bytes has arrived,
        the frame gets one buffer of its own size, holding what is here already; the
        reader then reads the missing bytes into the returned view (``recv_into``) and
        calls :meth:`direct_filled`, instead of :meth:`feed`: no payload is copied
        between reads nor concatenated.

        Returns:
            The view of the bytes still missing, or None when no such frame is being
            received.
        """
        if self._large is None:
            buffer = self._buffer
            if self.wire is not Wire.V1 or len(buffer) < _V1_HEADER_SIZE:
                return None
            kind, size = _V1_UNPACK_FROM(buffer)
            total = _V1_HEADER_SIZE + size
            if size < threshold or kind != FrameKind.DATA or len(buffer) >= total:
                return None
            if size > self.max_frame_size:
                return None  # feed() raises on it
            self._large = bytearray(total)
            self._large[: len(buffer)] = buffer
            self._large_filled = len(buffer)
            self._buffer = bytearray()
        return memoryview(self._large)[self._large_filled :]

    def direct_filled(self, count: int) -> list[Frame]:
        """Count ``count`` bytes read into :meth:`direct_view`; return the frame once
        it is whole (a copy of its payload into ``bytes``, the only one)."""
        large = self._large
        assert large is not None, "direct_filled() without direct_view()"
        self._large_filled += count
        if self._large_filled < len(large):
            return []
        self._large = None
        self._large_filled = 0
        return [_make_frame(bytes(memoryview(large)[_V1_HEADER_SIZE:]), FrameKind.DATA)]

    @property
    def incoming_frame_size(self) -> int | None:
        """Payload size announced by the frame being received, or None before its header."""
        if self._large is not None:
            return len(self._large) - _V1_HEADER_SIZE
        header = _V1_HEADER if self.wire is Wire.V1 else _LEGACY_HEADER
        if len(self._buffer) < header.size:
            return None
        return int(header.unpack_from(self._buffer)[-1])

    def feed(self, data: BytesLike) -> list[Frame]:
        """Add received bytes and return the frames they complete, in order.

        Args:
            data: Bytes as read from the connection.

        Raises:
            PeerFrameTooLargeError: A header announces a payload above ``max_frame_size``
                (a :class:`~pymasep.comm.core.ProtocolError` and a ``FrameTooLargeError``).
            ProtocolError: A v1 header has an unknown kind.

        After an error the decoder is unusable: the stream cannot be resynchronised.
        """
        if self._large is not None:  # a large frame read in place: fill it first
            view = memoryview(self._large)[self._large_filled :]
            take = min(len(view), len(data))
            view[:take] = memoryview(data).cast("B")[:take]
            frames = self.direct_filled(take)
            return frames + self.feed(memoryview(data).cast("B")[take:]) if frames else frames
        buffer = self._buffer
        source: BytesLike
        if buffer:
            buffer += data
            source = buffer
        else:
            # Frames are copied out of ``data`` as they are split: no copy of the whole.
            # A view of wider items is recast so that indexes count bytes.
            source = data.cast("B") if isinstance(data, memoryview) and data.itemsize != 1 else data
            # A request or a reply usually arrives as one read holding exactly one frame.
            whole = self.decode_whole(source, len(source))
            if whole is not None:
                return [whole]
        if self.wire is Wire.V1:
            frames, consumed = self._split_v1(source)
        else:
            frames, consumed = self._split_legacy(source)
        if source is buffer:
            del buffer[:consumed]
        elif consumed < len(source):
            buffer += memoryview(source)[consumed:]
        return frames

    def decode_whole(self, data: BytesLike, count: int) -> Frame | None:
        """Decode ``data[:count]`` if it is exactly one v1 frame and nothing is buffered.

        A cheaper :meth:`feed` for the common read that holds one whole request or reply.
        When it returns None nothing was consumed: :meth:`feed` the bytes instead, which
        also raises the errors that this method leaves to it.

        Args:
            data: Bytes as read from the connection (a byte buffer, indexed by byte).
            count: How many of them were read.

        Returns:
            The frame, or None when the bytes are anything else.
        """
        if self._buffer or self._large is not None or count < _V1_HEADER_SIZE:
            return None
        if self.wire is not Wire.V1:
            return None
        kind, size = _V1_UNPACK_FROM(data)
        if size != count - _V1_HEADER_SIZE or kind >= _KIND_COUNT or size > self.max_frame_size:
            return None
        # _make_frame, inlined: a call is a fifth of this method's cost.
        frame = _new_frame(Frame)
        frame.message = bytes(data[_V1_HEADER_SIZE:count])
        frame.size = size
        frame.kind = _KINDS[kind]
        return frame

    def _split_v1(self, source: BytesLike) -> tuple[list[Frame], int]:
        frames: list[Frame] = []
        unpack_from = _V1_HEADER.unpack_from
        header_size = _V1_HEADER.size
        limit = self.max_frame_size
        total = len(source)
        position = 0
        while total - position >= header_size:
            kind, size = unpack_from(source, position)
            if size > limit:
                raise PeerFrameTooLargeError(size, limit)
            if kind >= len(_KINDS):
                raise ProtocolError(f"unknown frame kind {kind}")
            start = position + header_size
            end = start + size
            if end > total:
                break
            frames.append(_make_frame(bytes(source[start:end]), _KINDS[kind]))
            position = end
        return frames, position

    def _split_legacy(self, source: BytesLike) -> tuple[list[Frame], int]:
        frames: list[Frame] = []
        unpack_from = _LEGACY_HEADER.unpack_from
        limit = self.max_frame_size
        total = len(source)
        position = 0
        while total - position >= 2:
            (size,) = unpack_from(source, position)
            if size > limit:
                raise PeerFrameTooLargeError(size, limit)
            end = position + 2 + size
            if end > total:
                break
            payload = bytes(source[position + 2 : end])
            kind = FrameKind.BYE if payload == _BYE else FrameKind.DATA
            frames.append(_make_frame(payload, kind))
            position = end
        return frames, position
