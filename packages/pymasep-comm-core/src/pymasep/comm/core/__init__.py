"""pymasep-comm core: everything the engine and its interfaces share.

Messages and their XML, frames and the two wire formats, the handshake, the exception
tree, and the threaded connection handlers that :mod:`pymasep.comm.server` and
:mod:`pymasep.comm.client` build on.
"""

from __future__ import annotations

import logging
from importlib import metadata

from .communication import BaseThreadedCommunication
from .connection import (
    CLOSED_BY_PEER,
    CLOSED_LOCALLY,
    CONNECTION_LOST,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_SEND_LIMITS,
    DEFAULT_STALL_TIMEOUT,
    Connection,
    ConnectionState,
    ConnectionStats,
    DisconnectCode,
    DisconnectReason,
    SendLimits,
)
from .exceptions import (
    CommunicationConnectionError,
    CommunicationError,
    CommunicationTimeoutError,
    ConfigurationError,
    ConnectionClosedError,
    ConnectionRejectedError,
    DecodeError,
    EncodeError,
    FrameTooLargeError,
    HandshakeError,
    InvalidArgumentError,
    InvalidStateError,
    PeerFrameTooLargeError,
    ProtocolError,
    SendBufferFullError,
    ServerNotFoundError,
    UnknownConnectionError,
    UnknownTypeError,
    UnsupportedValueError,
)
from .frame import Frame, FrameKind
from .message import Message
from .socket_handler import (
    SocketHandler,
    SocketHandlerPeerQueue,
    SocketHandlerQueue,
    close_handlers,
)
from .typeregistry import (
    allow_imported_types,
    forbid_imported_types,
    register_type,
    registered_types,
    unregister_type,
)
from .wire import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, Wire, encode_frame

__all__ = [
    "CLOSED_BY_PEER",
    "CLOSED_LOCALLY",
    "CONNECTION_LOST",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_SEND_LIMITS",
    "DEFAULT_STALL_TIMEOUT",
    "BaseThreadedCommunication",
    "CommunicationConnectionError",
    "CommunicationError",
    "CommunicationTimeoutError",
    "ConfigurationError",
    "Connection",
    "ConnectionClosedError",
    "ConnectionRejectedError",
    "ConnectionState",
    "ConnectionStats",
    "DecodeError",
    "DisconnectCode",
    "DisconnectReason",
    "EncodeError",
    "Frame",
    "FrameDecoder",
    "FrameKind",
    "FrameTooLargeError",
    "HandshakeError",
    "InvalidArgumentError",
    "InvalidStateError",
    "Message",
    "PeerFrameTooLargeError",
    "ProtocolError",
    "SendBufferFullError",
    "SendLimits",
    "ServerNotFoundError",
    "SocketHandler",
    "SocketHandlerPeerQueue",
    "SocketHandlerQueue",
    "UnknownConnectionError",
    "UnknownTypeError",
    "UnsupportedValueError",
    "Wire",
    "__version__",
    "allow_imported_types",
    "close_handlers",
    "encode_frame",
    "forbid_imported_types",
    "register_type",
    "registered_types",
    "unregister_type",
]

try:
    __version__ = metadata.version("pymasep-comm-core")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# A library never configures logging; the NullHandler keeps Python from printing
# "no handler" warnings when the application has not configured it either.
logging.getLogger("pymasep.comm").addHandler(logging.NullHandler())
