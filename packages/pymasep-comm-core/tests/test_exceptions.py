"""The exception tree: every error is a CommunicationError and the builtin it resembles,
and crosses a process boundary (pickle) with its message and attributes."""

from __future__ import annotations

import pickle

import pytest

from pymasep.comm.core import exceptions
from pymasep.comm.core.exceptions import (
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

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test

# One instance of every class the module exports, built as the library builds it.
INSTANCES: list[BaseException] = [
    CommunicationError("generic"),
    EncodeError("cannot encode"),
    UnsupportedValueError("a set"),
    DecodeError("bad xml"),
    UnknownTypeError("app.Thing"),
    FrameTooLargeError(70000, 65535, "the legacy wire has a 2-byte length"),
    PeerFrameTooLargeError(2**30, 2**20),
    InvalidArgumentError("max_connection must be at least 1"),
    ConfigurationError("unknown option", "stall_timout", "/lab/comm.toml:3"),
    InvalidStateError("the server is closed"),
    SendBufferFullError(5_000_000, 4_000_000, "interface-1"),
    CommunicationTimeoutError("too late"),
    UnknownConnectionError("who"),
    CommunicationConnectionError("state"),
    ConnectionClosedError("closed"),
    ProtocolError("unknown frame kind 9"),
    HandshakeError("no hello"),
    ConnectionRejectedError("the server is full"),
    ServerNotFoundError("nobody answered"),
]


def test_every_exported_exception_has_an_instance_here() -> None:
    assert {type(error).__name__ for error in INSTANCES} == set(exceptions.__all__)


@pytest.mark.parametrize("error", INSTANCES, ids=lambda error: type(error).__name__)
def test_every_exception_pickles_with_its_message_and_attributes(error: BaseException) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


@pytest.mark.parametrize("error", INSTANCES, ids=lambda error: type(error).__name__)
def test_every_exception_is_a_communication_error(error: BaseException) -> None:
    assert isinstance(error, CommunicationError)


@pytest.mark.parametrize(
    ("error_class", "builtin"),
    [
        (EncodeError, ValueError),
        (UnsupportedValueError, TypeError),
        (DecodeError, ValueError),
        (FrameTooLargeError, ValueError),
        (InvalidArgumentError, ValueError),
        (ConfigurationError, ValueError),
        (InvalidStateError, RuntimeError),
        (SendBufferFullError, BufferError),
        (CommunicationTimeoutError, TimeoutError),
        (UnknownConnectionError, KeyError),
        (ConnectionClosedError, ConnectionError),
        (ProtocolError, ConnectionError),
        (HandshakeError, ConnectionError),
        (ServerNotFoundError, ConnectionError),
        # Too large on receipt: the peer's fault, which ends the connection.
        (PeerFrameTooLargeError, ConnectionError),
        (PeerFrameTooLargeError, FrameTooLargeError),
    ],
)
def test_each_error_is_also_the_builtin_it_resembles(
    error_class: type[BaseException], builtin: type[BaseException]
) -> None:
    assert issubclass(error_class, builtin)


def test_a_protocol_error_is_not_a_value_error() -> None:
    # A misbehaving server makes connect() raise a ConnectionError, nothing else.
    assert not issubclass(ProtocolError, ValueError)
    assert not issubclass(HandshakeError, ValueError)


def test_messages_are_not_doubled() -> None:
    assert str(ConnectionRejectedError("full")) == "the server refused the connection: full"
    assert str(UnknownConnectionError("x")) == "no connection registered with id 'x'"
