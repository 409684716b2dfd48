"""Exceptions raised by pymasep-comm.

Every error the three distributions raise on purpose derives from
:class:`CommunicationError`. Where an error resembles a standard library
exception it also subclasses it, so ``except ValueError`` or
``except ConnectionError`` code written for pymasep 0.2 keeps working::

    CommunicationError
    ├── EncodeError (ValueError)                 a value or frame cannot be put on the wire
    │   └── UnsupportedValueError (TypeError)    a value of a type the XML cannot carry
    ├── DecodeError (ValueError)                 bytes or XML that are not a valid Message
    │   └── UnknownTypeError                     a class name that is not in the allowlist
    ├── FrameTooLargeError (ValueError)          a frame above the size limit (either side)
    ├── ProtocolError (ValueError)               the peer broke the wire protocol
    ├── CommunicationTimeoutError (TimeoutError) a deadline passed (connect, handshake, search)
    ├── UnknownConnectionError (KeyError)        no connection registered under that id
    └── CommunicationConnectionError (ConnectionError)
        ├── ConnectionClosedError                the connection is closed
        ├── HandshakeError                       the peer did not complete the handshake
        │   └── ConnectionRejectedError          the server refused the connection, with a reason
        └── ServerNotFoundError                  discovery found no server
"""

from __future__ import annotations

__all__ = [
    "CommunicationConnectionError",
    "CommunicationError",
    "CommunicationTimeoutError",
    "ConnectionClosedError",
    "ConnectionRejectedError",
    "DecodeError",
    "EncodeError",
    "FrameTooLargeError",
    "HandshakeError",
    "ProtocolError",
    "ServerNotFoundError",
    "UnknownConnectionError",
    "UnknownTypeError",
    "UnsupportedValueError",
]


class CommunicationError(Exception):
    """Base class of every error raised by pymasep-comm."""


class EncodeError(CommunicationError, ValueError):
    """A value, message or frame cannot be encoded for the wire."""


class UnsupportedValueError(EncodeError, TypeError):
    """A value of a type that the message XML cannot carry."""


class DecodeError(CommunicationError, ValueError):
    """Bytes or XML that do not decode to a valid :class:`~pymasep.comm.core.Message`."""


class UnknownTypeError(DecodeError):
    """A class name read from the wire that the application did not register.

    Attributes:
        name: The dotted name that was read.
    """

    def __init__(self, name: str) -> None:
        module = name.rpartition(".")[0]
        where = f", after `import {module}`" if module else ""
        super().__init__(
            f"a message names the class {name!r}, which is not registered; add this line "
            f"where the application starts{where}: pymasep.comm.core.register_type({name})"
        )
        self.name = name


class FrameTooLargeError(CommunicationError, ValueError):
    """A frame whose payload is larger than the limit of the wire or of the receiver.

    Attributes:
        size: The size of the payload, in bytes.
        limit: The largest size allowed, in bytes.
    """

    def __init__(self, size: int, limit: int, detail: str = "") -> None:
        message = f"frame of {size} bytes is larger than the limit of {limit} bytes"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.size = size
        self.limit = limit


class ProtocolError(CommunicationError, ValueError):
    """The peer sent bytes that break the wire protocol."""


class CommunicationTimeoutError(CommunicationError, TimeoutError):
    """A deadline passed: connecting, the handshake, a flush or a server search."""


class UnknownConnectionError(CommunicationError, KeyError):
    """No connection is registered under this id.

    Attributes:
        ident: The id that was asked for.
    """

    def __init__(self, ident: str) -> None:
        super().__init__(ident)
        self.ident = ident

    def __str__(self) -> str:
        return f"no connection registered with id {self.ident!r}"


class CommunicationConnectionError(CommunicationError, ConnectionError):
    """Base class of the errors about the state of a connection."""


class ConnectionClosedError(CommunicationConnectionError):
    """The connection is closed: by this side, by the peer, or lost."""


class HandshakeError(CommunicationConnectionError):
    """The peer did not complete the handshake."""


class ConnectionRejectedError(HandshakeError):
    """The server refused the connection.

    Attributes:
        reason: The reason the server gave.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the server refused the connection: {reason}")
        self.reason = reason


class ServerNotFoundError(CommunicationConnectionError):
    """Discovery found no server (pymasep 0.2 raised a plain ``ConnectionError``)."""
