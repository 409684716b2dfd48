"""Frame: the seed API of pymasep 0.2, plus kinds."""

from __future__ import annotations

import socket

import pytest
import pytest_socket

from pymasep.comm.core import Frame, FrameKind

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test


def test_frame_kinds_have_the_wire_values() -> None:
    assert [(kind.name, int(kind)) for kind in FrameKind] == [
        ("DATA", 0),
        ("HELLO", 1),
        ("BYE", 2),
        ("REFUSE", 3),
        ("AUTH", 4),
        ("ACK", 5),
        ("RESUME", 6),
    ]


def test_frame_holds_message_and_size() -> None:
    frame = Frame(b"hello")
    assert frame.message == b"hello"
    assert frame.size == 5
    assert frame.kind is FrameKind.DATA


def test_empty_frame() -> None:
    frame = Frame(b"")
    assert frame.message == b""
    assert frame.size == 0


def test_size_counts_bytes_not_characters() -> None:
    payload = "é✓".encode()
    assert Frame(payload).size == len(payload) == 5


@pytest.mark.parametrize(
    "msg", ["hello", bytearray(b"hello"), memoryview(b"hello"), None, 42, [104]]
)
def test_non_bytes_message_is_a_type_error(msg: object) -> None:
    with pytest.raises(TypeError, match="bytes"):
        Frame(msg)  # type: ignore[arg-type]


def test_bytes_subclass_is_refused_like_pymasep_0_2() -> None:
    class Payload(bytes):
        pass

    with pytest.raises(TypeError, match="Payload"):
        Frame(Payload(b"x"))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="9"):
        Frame(b"x", 9)  # type: ignore[arg-type]


def test_kind_given_as_int_becomes_a_frame_kind() -> None:
    assert Frame(b"x", 2).kind is FrameKind.BYE  # type: ignore[arg-type]


def test_equal_frames() -> None:
    assert Frame(b"abc") == Frame(b"abc")
    assert (Frame(b"abc") != Frame(b"abc")) is False
    assert Frame(b"abc") != Frame(b"abd")
    assert Frame(b"abc", FrameKind.HELLO) == Frame(b"abc", FrameKind.HELLO)


def test_frames_of_different_kinds_are_not_equal() -> None:
    assert Frame(b"alice") != Frame(b"alice", FrameKind.HELLO)
    assert Frame(b"full") != Frame(b"full", FrameKind.REFUSE)


def test_data_frame_bye_is_not_the_bye_frame() -> None:
    assert Frame(b"BYE") != Frame.bye_frame()
    assert Frame(b"BYE").message == Frame.bye_frame().message


def test_comparison_with_other_types_is_false_not_an_error() -> None:
    assert Frame(b"abc") != b"abc"
    assert Frame(b"abc") != "abc"
    assert Frame(b"abc") != None  # noqa: E711


def test_frames_are_not_hashable() -> None:
    with pytest.raises(TypeError, match="unhashable"):
        hash(Frame(b"abc"))


def test_hello_frame_carries_the_id_in_utf8() -> None:
    frame = Frame.hello_frame("élève-1")
    assert frame == Frame("élève-1".encode(), FrameKind.HELLO)
    assert frame.size == len("élève-1".encode())


def test_bye_frame() -> None:
    frame = Frame.bye_frame()
    assert frame.kind is FrameKind.BYE
    assert frame.message == b"BYE"
    assert frame.size == 3
    assert frame == Frame.bye_frame()


def test_refuse_frame_carries_the_reason_in_utf8() -> None:
    frame = Frame.refuse_frame("serveur plein")
    assert frame.kind is FrameKind.REFUSE
    assert frame.message == b"serveur plein"


def test_repr_shows_kind_and_size_and_cuts_long_payloads() -> None:
    assert repr(Frame(b"hi")) == "Frame(b'hi', kind=DATA, size=2)"
    long = repr(Frame(b"x" * 100, FrameKind.HELLO))
    assert long == f"Frame({b'x' * 32 + b'...'!r}, kind=HELLO, size=100)"


def test_a_sans_io_module_can_open_no_socket() -> None:
    # The guard the codec, handshake and connection-state modules share: one line each.
    with pytest.raises(pytest_socket.SocketBlockedError):
        socket.socket()
