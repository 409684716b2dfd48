"""The unit that crosses a connection: :class:`Frame` and its kinds."""

from __future__ import annotations

import enum

__all__ = ["Frame", "FrameKind"]


class FrameKind(enum.IntEnum):
    """What a frame means to the transport. Only ``DATA`` frames reach the application."""

    DATA = 0
    """Application bytes (usually a :class:`~pymasep.comm.core.Message`)."""
    HELLO = 1
    """First frame of each side: carries the sender's id (UTF-8)."""
    BYE = 2
    """The sender closes the connection; nothing follows it."""
    REFUSE = 3
    """The server refuses the connection; carries the reason (UTF-8)."""
    AUTH = 4
    """A nonce or a proof of the authenticated handshake (see
    :mod:`pymasep.comm.core.auth`); never after the handshake."""
    ACK = 5
    """How many data frames the sender received in the session (resuming only, see
    :mod:`pymasep.comm.core.resume`)."""
    RESUME = 6
    """A message of the resume negotiation or exchange (resuming only)."""


_BYE_PAYLOAD = b"BYE"


class Frame:
    """Frame sent at tcp level.

    Args:
        msg: Bytes to send.
        kind: What the frame means to the transport. Application code only builds
            data frames; :meth:`hello_frame` and :meth:`bye_frame` build the others.

    Raises:
        TypeError: ``msg`` is not ``bytes``.
    """

    __slots__ = ("kind", "message", "size")

    def __init__(self, msg: bytes, kind: FrameKind = FrameKind.DATA) -> None:
        if type(msg) is not bytes:
            raise TypeError(f"Frame message type must be bytes, not {type(msg).__name__}")
        self.message: bytes = msg
        """The payload."""
        self.size: int = len(msg)
        """Length of the payload, in bytes."""
        self.kind: FrameKind = FrameKind(kind)
        """What the frame means to the transport (see :class:`FrameKind`)."""

    def __eq__(self, other: object) -> bool:
        """Check if two frames are equal: same kind and same payload.

        Args:
            other: The other frame to compare.

        Returns:
            True if frames are equal.
        """
        if not isinstance(other, Frame):
            return NotImplemented
        return self.kind == other.kind and self.message == other.message

    __hash__ = None  # type: ignore[assignment]  # frames are compared by value but stay mutable

    def __repr__(self) -> str:
        preview = self.message[:32] + (b"..." if self.size > 32 else b"")
        return f"Frame({preview!r}, kind={self.kind.name}, size={self.size})"

    @classmethod
    def hello_frame(cls, ident: str) -> Frame:
        """First frame to send at connection.

        Args:
            ident: Id of the sender.
        """
        return cls(ident.encode("utf-8"), FrameKind.HELLO)

    @classmethod
    def bye_frame(cls) -> Frame:
        """Frame that closes the connection (and ends the peer's handler thread)."""
        return cls(_BYE_PAYLOAD, FrameKind.BYE)

    @classmethod
    def refuse_frame(cls, reason: str) -> Frame:
        """Frame by which a server refuses a connection.

        Args:
            reason: Why, in words the client's user will read.
        """
        return cls(reason.encode("utf-8"), FrameKind.REFUSE)
