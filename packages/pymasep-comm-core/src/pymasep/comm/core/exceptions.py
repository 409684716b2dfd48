"""Exceptions raised by pymasep-comm.

Every error the three distributions raise derives from :class:`CommunicationError`.
Where an error resembles a standard library exception it also subclasses it, so
``except ValueError`` or ``except ConnectionError`` code written for pymasep 0.2 keeps
working. Every one of them pickles with its message and attributes (it can cross a
process boundary, as in a ``multiprocessing`` pool)::

    CommunicationError
    ├── EncodeError (ValueError)                 a value or frame cannot be put on the wire
    │   └── UnsupportedValueError (TypeError)    a value of a type the XML cannot carry
    ├── DecodeError (ValueError)                 bytes or XML that are not a valid Message
    │   └── UnknownTypeError                     a class name that is not in the allowlist
    ├── FrameTooLargeError (ValueError)          a frame above the size limit, refused on send
    ├── InvalidArgumentError (ValueError)        a parameter out of range (max_connection=0)
    │   └── ConfigurationError                   a setting of the environment or the TOML file
    ├── InvalidStateError (RuntimeError)         a call the object's state forbids (a closed server)
    ├── SendBufferFullError (BufferError)        send_policy="raise": the peer reads too slowly
    ├── CommunicationTimeoutError (TimeoutError) a deadline passed (connect, handshake, search)
    ├── UnknownConnectionError (KeyError)        no connection registered under that id
    └── CommunicationConnectionError (ConnectionError)
        ├── ConnectionClosedError                the connection is closed
        ├── ProtocolError                        the peer broke the wire protocol
        │   └── PeerFrameTooLargeError           the peer announced a frame above the limit
        │                                        (also a FrameTooLargeError)
        ├── HandshakeError                       the peer did not complete the handshake
        │   └── ConnectionRejectedError          the server refused the connection, with a reason
        │       └── ResumeRefusedError           the server refused to resume a session (resume.py)
        └── ServerNotFoundError                  discovery found no server

A frame that is too large is the caller's mistake when it is sent (a ``ValueError``,
nothing goes out) and the peer's when it is received: the connection then ends as a
protocol error (``PeerFrameTooLargeError``, a ``ConnectionError``; what ``connect()``
raises when a server opens with one).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CommunicationConnectionError",
    "CommunicationError",
    "CommunicationTimeoutError",
    "ConfigurationError",
    "ConnectionClosedError",
    "ConnectionRejectedError",
    "DecodeError",
    "EncodeError",
    "FrameTooLargeError",
    "HandshakeError",
    "InvalidArgumentError",
    "InvalidStateError",
    "PeerFrameTooLargeError",
    "ProtocolError",
    "SendBufferFullError",
    "ServerNotFoundError",
    "UnknownConnectionError",
    "UnknownTypeError",
    "UnsupportedValueError",
]


class CommunicationError(Exception):
    """Base class of every error raised by pymasep-comm."""

    _init_attributes: tuple[str, ...] = ()
    """The attributes that, in this order, are the arguments of ``__init__``: an error
    whose message ``__init__`` builds from them is unpickled by calling it again. Empty:
    the message is the argument, as for any exception."""

    def __reduce__(self) -> str | tuple[Any, ...]:
        if not self._init_attributes:
            return super().__reduce__()
        return type(self), tuple(getattr(self, name) for name in self._init_attributes)


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

    _init_attributes = ("name",)

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

    _init_attributes = ("size", "limit", "detail")

    def __init__(self, size: int, limit: int, detail: str = "") -> None:
        message = f"frame of {size} bytes is larger than the limit of {limit} bytes"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.size = size
        self.limit = limit
        self.detail = detail


class InvalidArgumentError(CommunicationError, ValueError):
    """A parameter is out of its range (``max_connection=0``, a negative size)."""


class ConfigurationError(InvalidArgumentError):
    """A setting read from the environment or the TOML file is wrong: an unknown name, a
    value of the wrong type, a missing file, a key file that others may read (see
    :mod:`pymasep.comm.core.settings`). Raised when the server or client is built.

    Attributes:
        detail: What is wrong.
        option: The option concerned (``""`` when none is, as for an unknown variable).
        source: Where it was read: the variable, or the file and its line.
    """

    _init_attributes = ("detail", "option", "source")

    def __init__(self, detail: str, option: str = "", source: str = "") -> None:
        super().__init__(": ".join(part for part in (source, option, detail) if part))
        self.detail = detail
        self.option = option
        self.source = source


class InvalidStateError(CommunicationError, RuntimeError):
    """The call is not allowed in the object's current state (a closed server, reading
    with :meth:`~pymasep.comm.core.SocketHandler.receive_frame` while the thread reads)."""


class SendBufferFullError(CommunicationError, BufferError):
    """The peer reads too slowly: its queue is above the high-water mark, and the
    connection's send policy is ``"raise"`` (see :class:`~pymasep.comm.core.SendLimits`).
    The frame was not queued; the connection stays open.

    Attributes:
        queued: Bytes waiting for the peer when the frame was refused.
        limit: The high-water mark, in bytes.
    """

    _init_attributes = ("queued", "limit", "peer")

    def __init__(self, queued: int, limit: int, peer: str = "") -> None:
        who = f" for {peer}" if peer else ""
        super().__init__(
            f"{queued} bytes already wait{who}, above the high-water mark of {limit} bytes"
        )
        self.queued = queued
        self.limit = limit
        self.peer = peer


class CommunicationTimeoutError(CommunicationError, TimeoutError):
    """A deadline passed: connecting, the handshake, a flush or a server search."""


class UnknownConnectionError(CommunicationError, KeyError):
    """No connection is registered under this id.

    Attributes:
        ident: The id that was asked for.
    """

    _init_attributes = ("ident",)

    def __init__(self, ident: str) -> None:
        super().__init__(ident)
        self.ident = ident

    def __str__(self) -> str:
        return f"no connection registered with id {self.ident!r}"


class CommunicationConnectionError(CommunicationError, ConnectionError):
    """Base class of the errors about the state of a connection."""


class ConnectionClosedError(CommunicationConnectionError):
    """The connection is closed: by this side, by the peer, or lost."""


class ProtocolError(CommunicationConnectionError):
    """The peer sent bytes that break the wire protocol: the connection cannot go on."""


class PeerFrameTooLargeError(FrameTooLargeError, ProtocolError):
    """The peer announced a frame above the receiver's limit: a protocol error that ends
    the connection (and a :class:`FrameTooLargeError`, as 0.2-era code may catch)."""


class HandshakeError(CommunicationConnectionError):
    """The peer did not complete the handshake."""


class ConnectionRejectedError(HandshakeError):
    """The server refused the connection.

    Attributes:
        reason: The reason the server gave.
    """

    _init_attributes = ("reason",)

    def __init__(self, reason: str) -> None:
        super().__init__(f"the server refused the connection: {reason}")
        self.reason = reason


class ServerNotFoundError(CommunicationConnectionError):
    """Discovery found no server (pymasep 0.2 raised a plain ``ConnectionError``)."""
