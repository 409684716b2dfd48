"""The exception tree: every error is a CommunicationError and the builtin it resembles,
and crosses a process boundary (pickle) with its message and attributes."""

from __future__ import annotations

import pickle

import pytest

from pymasep.comm.core import exceptions

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test

# One instance of every class the module exports, built as the library builds it.
INSTANCES: list[BaseException] = [
    exceptions.CommunicationError("generic"),
    exceptions.EncodeError("cannot encode"),
    exceptions.UnsupportedValueError("a set"),
    exceptions.DecodeError("bad xml"),
    exceptions.UnknownTypeError("app.Thing"),
    exceptions.FrameTooLargeError(70000, 65535, "the legacy wire has a 2-byte length"),
    exceptions.PeerFrameTooLargeError(2**30, 2**20),
    exceptions.InvalidArgumentError("max_connection must be at least 1"),
    exceptions.ConfigurationError("unknown option", "stall_timout", "/lab/comm.toml:3"),
    exceptions.InvalidStateError("the server is closed"),
    exceptions.SendBufferFullError(5_000_000, 4_000_000, "interface-1"),
    exceptions.CommunicationTimeoutError("too late"),
    exceptions.UnknownConnectionError("who"),
    exceptions.CommunicationConnectionError("state"),
    exceptions.ConnectionClosedError("closed"),
    exceptions.ProtocolError("unknown frame kind 9"),
    exceptions.HandshakeError("no hello"),
    exceptions.ConnectionRejectedError("the server is full"),
    exceptions.ServerNotFoundError("nobody answered"),
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
    assert isinstance(error, exceptions.CommunicationError)


@pytest.mark.parametrize(
    ("error_class", "builtin"),
    [
        (exceptions.EncodeError, ValueError),
        (exceptions.UnsupportedValueError, TypeError),
        (exceptions.DecodeError, ValueError),
        (exceptions.FrameTooLargeError, ValueError),
        (exceptions.InvalidArgumentError, ValueError),
        (exceptions.ConfigurationError, ValueError),
        (exceptions.InvalidStateError, RuntimeError),
        (exceptions.SendBufferFullError, BufferError),
        (exceptions.CommunicationTimeoutError, TimeoutError),
        (exceptions.UnknownConnectionError, KeyError),
        (exceptions.ConnectionClosedError, ConnectionError),
        (exceptions.ProtocolError, ConnectionError),
        (exceptions.HandshakeError, ConnectionError),
        (exceptions.ServerNotFoundError, ConnectionError),
        # Too large on receipt: the peer's fault, which ends the connection.
        (exceptions.PeerFrameTooLargeError, ConnectionError),
        (exceptions.PeerFrameTooLargeError, exceptions.FrameTooLargeError),
    ],
)
def test_each_error_is_also_the_builtin_it_resembles(
    error_class: type[BaseException], builtin: type[BaseException]
) -> None:
    assert issubclass(error_class, builtin)


def test_a_protocol_error_is_not_a_value_error() -> None:
    # A misbehaving server makes connect() raise a ConnectionError, nothing else.
    assert not issubclass(exceptions.ProtocolError, ValueError)
    assert not issubclass(exceptions.HandshakeError, ValueError)


def test_messages_are_not_doubled() -> None:
    assert (
        str(exceptions.ConnectionRejectedError("full")) == "the server refused the connection: full"
    )
    assert str(exceptions.UnknownConnectionError("x")) == "no connection registered with id 'x'"
