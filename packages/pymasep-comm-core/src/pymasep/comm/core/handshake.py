"""The opening exchange of a connection, as state machines fed with bytes (sans-I/O).

A v1 client sends :data:`~pymasep.comm.core.wire.PREAMBLE` then a HELLO frame with its
id; the server answers with the preamble then its own HELLO, or a REFUSE frame with a
reason. A legacy (pymasep 0.2) client sends its id as a bare frame and the server answers
the same way. A server tells the two apart by the first four bytes.
"""

from __future__ import annotations

from .exceptions import (
    ConnectionRejectedError,
    HandshakeError,
    InvalidArgumentError,
    PeerFrameTooLargeError,
    ProtocolError,
)
from .frame import Frame, FrameKind
from .wire import (
    DEFAULT_MAX_FRAME_SIZE,
    MAGIC,
    PREAMBLE,
    PROTOCOL_VERSION,
    BytesLike,
    FrameDecoder,
    Wire,
    encode_frame,
)

__all__ = ["MAX_IDENT_SIZE", "ClientHandshake", "ServerHandshake", "detect_wire"]

MAX_IDENT_SIZE = 4096
"""Largest id, in UTF-8 bytes, that a hello may carry."""


def detect_wire(prefix: bytes) -> Wire | None:
    """Tell the wire of a client from the first bytes it sent.

    Args:
        prefix: The bytes received so far.

    Returns:
        The wire, or None while ``prefix`` is too short to tell.
    """
    if prefix[: len(MAGIC)] == MAGIC[: len(prefix)]:
        return Wire.V1 if len(prefix) >= len(MAGIC) else None
    return Wire.LEGACY


def _decode_ident(frame: Frame) -> str:
    try:
        ident = frame.message.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("the hello carries an id that is not UTF-8") from None
    if not ident:
        raise ProtocolError("the hello carries an empty id")
    return ident


class _Side:
    """What both sides share: a buffer before the preamble, then a frame decoder."""

    def __init__(self, wire: Wire | None, max_frame_size: int) -> None:
        self._max_frame_size = max_frame_size
        self._prefix = b""
        self.wire: Wire | None = None
        """The wire of the connection, once known."""
        self.decoder: FrameDecoder | None = None
        """The decoder to keep using after the handshake (it may hold buffered bytes)."""
        self.pending_frames: list[Frame] = []
        """Frames that arrived behind the peer's hello; they belong to the application."""
        self._awaiting_preamble = False
        if wire is not None:
            self._start(Wire(wire))

    def _start(self, wire: Wire) -> None:
        self.wire = wire
        self._awaiting_preamble = wire is Wire.V1
        self.decoder = FrameDecoder(wire, self._max_frame_size)

    def _frames(self, data: BytesLike) -> list[Frame]:
        """Strip the preamble and return the frames that ``data`` completes."""
        if self._awaiting_preamble:
            self._prefix += bytes(data)
            self._check_preamble(self._prefix[: len(PREAMBLE)])
            if len(self._prefix) < len(PREAMBLE):
                return []
            data, self._prefix = self._prefix[len(PREAMBLE) :], b""
            self._awaiting_preamble = False
        assert self.decoder is not None
        frames = self.decoder.feed(data)
        # A hello is small: refuse a big one before buffering it, so that a peer that
        # never finishes its hello cannot make us hold megabytes.
        announced = frames[0].size if frames else self.decoder.incoming_frame_size
        if announced is not None and announced > MAX_IDENT_SIZE:
            raise PeerFrameTooLargeError(announced, MAX_IDENT_SIZE, "a hello carries only an id")
        return frames

    def _check_preamble(self, received: bytes) -> None:
        """Raise as soon as the bytes received so far cannot start a v1 preamble."""
        if received[: len(MAGIC)] != MAGIC[: len(received)]:
            raise ProtocolError(self._not_v1_message())
        if len(received) > len(MAGIC) and received[len(MAGIC)] != PROTOCOL_VERSION:
            raise ProtocolError(
                f"the peer speaks protocol version {received[len(MAGIC)]}, "
                f"this side speaks {PROTOCOL_VERSION}"
            )

    def _not_v1_message(self) -> str:
        return "the peer does not speak the v1 wire"

    def _finish(self, frames: list[Frame]) -> str:
        """Take the hello from ``frames``; keep what follows it for the application."""
        assert self.decoder is not None
        hello, self.pending_frames = frames[0], frames[1:]
        return _decode_ident(hello)


class ClientHandshake(_Side):
    """The client's side of the handshake.

    Send :meth:`bytes_to_send`, then feed what the server answers to
    :meth:`receive_data` until it returns True; :attr:`server_ident` is then set.

    Args:
        ident: Id of the client.
        wire: The wire to speak.
        max_frame_size: Largest payload the client accepts, in bytes.
    """

    def __init__(
        self, ident: str, wire: Wire = Wire.V1, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    ) -> None:
        if not ident:
            raise InvalidArgumentError("the client id must not be empty")
        super().__init__(Wire(wire), max_frame_size)
        self.ident = ident
        self.server_ident: str | None = None
        """Id of the server, once the handshake is complete."""

    def bytes_to_send(self) -> bytes:
        """The client's opening bytes: the preamble (v1) and the hello."""
        assert self.wire is not None
        hello = encode_frame(Frame.hello_frame(self.ident), self.wire)
        return PREAMBLE + hello if self.wire is Wire.V1 else hello

    def receive_data(self, data: BytesLike) -> bool:
        """Feed bytes received from the server.

        Returns:
            True once the server's hello has arrived.

        Raises:
            ConnectionRejectedError: The server refused the connection.
            ProtocolError: The server's bytes break the protocol (for example a pymasep
                0.2 server answering a v1 client).
            PeerFrameTooLargeError: The server announced an oversized hello.
        """
        if self.server_ident is not None:
            raise HandshakeError("the handshake is already complete")
        frames = self._frames(data)
        if not frames:
            return False
        if frames[0].kind is FrameKind.REFUSE:
            raise ConnectionRejectedError(frames[0].message.decode("utf-8", "replace"))
        if self.wire is Wire.V1 and frames[0].kind is not FrameKind.HELLO:
            raise ProtocolError(f"the server opened with a {frames[0].kind.name} frame, not HELLO")
        # On the legacy wire the first frame is the hello whatever it says, even "BYE".
        self.server_ident = self._finish(frames)
        return True

    def _not_v1_message(self) -> str:
        return (
            "the server does not speak the v1 wire; "
            "if it runs pymasep 0.2, connect with wire='legacy'"
        )


class ServerHandshake(_Side):
    """The server's side of the handshake, for a client of either wire.

    Feed what the client sends to :meth:`receive_data` until it returns True; then
    send :meth:`accept_bytes` or :meth:`refuse_bytes`.

    Args:
        ident: Id of the server.
        max_frame_size: Largest payload the server accepts, in bytes.
    """

    def __init__(self, ident: str, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        super().__init__(None, max_frame_size)
        self.ident = ident
        self.client_ident: str | None = None
        """Id of the client, once its hello has arrived."""

    def receive_data(self, data: BytesLike) -> bool:
        """Feed bytes received from the client.

        Returns:
            True once the client's hello has arrived.

        Raises:
            ProtocolError: The client's bytes break the protocol.
            PeerFrameTooLargeError: The client announced an oversized hello.
        """
        if self.client_ident is not None:
            raise HandshakeError("the handshake is already complete")
        if self.wire is None:
            self._prefix += bytes(data)
            wire = detect_wire(self._prefix)
            if wire is None:
                return False
            data, self._prefix = self._prefix, b""
            self._start(wire)
        frames = self._frames(data)
        if not frames:
            return False
        if self.wire is Wire.V1 and frames[0].kind is not FrameKind.HELLO:
            raise ProtocolError(f"the client opened with a {frames[0].kind.name} frame, not HELLO")
        self.client_ident = self._finish(frames)
        return True

    def accept_bytes(self) -> bytes:
        """The server's answer that accepts the client: the preamble (v1) and the hello."""
        assert self.wire is not None
        hello = encode_frame(Frame.hello_frame(self.ident), self.wire)
        return PREAMBLE + hello if self.wire is Wire.V1 else hello

    def refuse_bytes(self, reason: str) -> bytes:
        """The server's answer that refuses the client, with a reason.

        Returns:
            The bytes to send before closing; empty on the legacy wire, which has no
            way to say why (a pymasep 0.2 client sees the connection close). A reason
            longer than :data:`MAX_IDENT_SIZE` bytes is cut, since clients refuse
            a longer first frame.
        """
        if self.wire is not Wire.V1:
            return b""
        reason = reason.encode("utf-8")[:MAX_IDENT_SIZE].decode("utf-8", "ignore")
        return PREAMBLE + encode_frame(Frame.refuse_frame(reason), Wire.V1)
