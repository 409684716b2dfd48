"""What fuzzing (``nox -s fuzz``, ``integration_tests/fuzz``) found in core, one test each."""

from __future__ import annotations

import pytest
from lxml import etree

from pymasep.comm.core import ConnectionRejectedError, Frame, FrameKind, Message, encode_frame
from pymasep.comm.core.auth import AUTH_FAILED, AuthKey
from pymasep.comm.core.discovery import parse_reply
from pymasep.comm.core.handshake import ClientHandshake, ServerHandshake
from pymasep.comm.core.wire import PREAMBLE

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test

# Found by the message target's grammar: Message.__eq__ (message._same) compares sets
# with ==, under which a set's items match by hash and identity, so NaN never equals
# another NaN, nor an element an equal copy of it; every other container compares its
# items with _same. message._same now pairs a set's items with _same.


def _round_trip(message: Message) -> Message:
    received = Message("", None, None)
    received.from_bytes(message.to_bytes())
    return received


def test_a_set_holding_nan_equals_its_round_trip() -> None:
    sent = Message(Message.MESSAGE_TYPE_OBSERVATION, {"seen": {float("nan"), 1.0}}, "engine")
    assert _round_trip(sent) == sent


def test_a_set_holding_an_element_equals_its_round_trip() -> None:
    sent = Message(Message.MESSAGE_TYPE_OBSERVATION, {"seen": {etree.Element("Other"), ()}}, "e")
    assert _round_trip(sent) == sent


def test_a_list_holding_nan_and_an_element_equals_its_round_trip() -> None:
    # The same values outside a set already compare by value: the tests above are
    # about sets only.
    sent = Message(
        Message.MESSAGE_TYPE_OBSERVATION, {"seen": [float("nan"), etree.Element("O")]}, "e"
    )
    assert _round_trip(sent) == sent


# Found by the message target: an element name that is a valid XML name but not a plain
# one (a combining mark after its first letter) takes the writer's careful path, where
# ElementTree wrote it as US-ASCII, turning the mark into a character reference inside
# the tag, which no parser reads: a received message could not be sent on. The careful
# path now writes text.


def test_an_element_named_with_a_combining_mark_encodes_again() -> None:
    data = (
        '<Message msg_type="observation" src_sub_app="engine"><dict>'
        '<item key="log"><s\u0316 content="empty" /></item></dict></Message>'
    ).encode()
    received = Message("", None, None)
    received.from_bytes(data)
    assert received.params is not None and received.params["log"].tag == "s\u0316"
    assert _round_trip(received) == received


# Found by probing what the discovery target's parser accepts: parse_reply takes any
# JSON string as a server's id or name, so one datagram from anyone on the network
# puts a lone surrogate or terminal control codes into ServerInfo. A surrogate makes
# `pymasep-comm discover` die with UnicodeEncodeError as it prints its table (every
# other server's answer is lost with it) and makes ServerNotFoundError's message
# unprintable; an escape sequence in a name rewrites the user's terminal. Such a reply
# is now refused (surrogates, C0 and C1 controls are not printable).
_SENDER = ("192.0.2.7", 10000)


@pytest.mark.parametrize(
    "fields",
    [
        b'{"v":1,"id":"\\ud800","wire":["v1"]}',
        b'{"v":1,"id":"engine","wire":["v1"],"name":"\\u001b[2J\\u001b[31mpwned"}',
        b'{"v":1,"id":"e\\u0085","wire":["v1"]}',
    ],
    ids=["surrogate id", "escape codes in the name", "C1 control in the id"],
)
def test_a_reply_with_unprintable_text_is_refused(fields: bytes) -> None:
    assert parse_reply(b"192.0.2.7:5000:" + fields, _SENDER) is None


def test_a_reply_with_printable_text_outside_ascii_is_read() -> None:
    # What the fix must keep: names are free text, escaped to ASCII on the wire.
    reply = b'192.0.2.7:5000:{"v":1,"id":"moteur","wire":["v1"],"name":"Course \\u2603"}'
    info = parse_reply(reply, _SENDER)
    assert info is not None
    assert (info.id, info.name) == ("moteur", "Course \u2603")


# Found by the handshake target (a server with a mapping as its key): for an id the
# mapping or callable has no key for, the server expected the proof b"", and
# hmac.compare_digest(b"", b"") is True, so a client that claimed any unknown id and
# answered the challenge with an empty AUTH frame was authenticated without a key. An
# id without a key now has no proof that matches.
@pytest.mark.parametrize(
    "authkey",
    [{"p2": b"k" * 32}, lambda ident: None],
    ids=["mapping without the id", "callable returning None"],
)
def test_an_empty_proof_for_an_id_without_a_key_is_refused(authkey: AuthKey) -> None:
    server = ServerHandshake("engine", authkey=authkey)
    opening = ClientHandshake("intruder", authkey=b"any key").bytes_to_send()
    assert not server.receive_data(opening)
    assert server.data_to_send().startswith(PREAMBLE)  # the challenge, as for a known id
    with pytest.raises(ConnectionRejectedError) as raised:
        server.receive_data(encode_frame(Frame(b"", FrameKind.AUTH)))
    assert raised.value.reason == AUTH_FAILED
    assert server.client_ident is None
