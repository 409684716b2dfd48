"""Message bytes cross between pymasep 0.2 and pymasep-comm with every value 0.2 handles.

Each case of :data:`cases.VALUE_CASES` travels as a Message in a real frame, over both
kinds of connection (a 0.2 Client on our Server, our legacy Client on a 0.2 Server), in
both directions; the receiver decodes it with its own Message and must find exactly what
pymasep 0.2 itself finds in those bytes: the same types, the same values.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cases import ALL_CASES, BEYOND_02, CLASS_CASE, MSG_TYPE, SRC, VALUE_CASES, describe
from harness import Peer
from ours import LOOPBACK, SERVER_ID, RecordingClient, RecordingServer

from pymasep.comm.core import (
    Frame,
    Message,
    UnknownTypeError,
    register_type,
    unregister_type,
)

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0


class Link:
    """One live connection between our side and a 0.2 peer, for many messages."""

    def __init__(self, peer: Peer, ours: RecordingServer | RecordingClient, peer_id: str):
        self.peer = peer
        self.ours = ours
        self.peer_id = peer_id

    def bytes_from_02(self, case: str) -> bytes:
        self.peer.order("send_case", case=case)
        event = self.peer.expect("sent", "failed")
        assert event["event"] == "sent", f"pymasep 0.2 could not send {case!r}: {event}"
        return self.ours.inbox.get(timeout=WAIT)

    def from_02(self, case: str) -> Message:
        message = Message("", None, None)  # the 0.2 way: build, then fill
        message.from_bytes(self.bytes_from_02(case))
        return message

    def to_02(self, case: str) -> dict[str, Any]:
        message = Message(MSG_TYPE, ALL_CASES[case], SRC)
        self.ours.send_frame_to(self.peer_id, Frame(message.to_bytes()))
        event = self.peer.expect("frame")
        assert "message" in event, f"pymasep 0.2 cannot decode our {case!r}: {event['error']}"
        return dict(event["message"])


@pytest.fixture(scope="module")
def peer_to_our_server() -> Iterator[Link]:
    with RecordingServer() as server:
        server.wait_connection()
        with Peer(["client", "--host", LOOPBACK, "--port", str(server.port)]) as peer:
            assert peer.expect("connected")["server_id"] == SERVER_ID
            assert server.wait_for_connections(1, WAIT)
            yield Link(peer, server, "peer02")


@pytest.fixture(scope="module")
def our_client_to_peer() -> Iterator[Link]:
    with Peer(["server", "--id", "peer02-server"]) as peer:
        port = int(peer.expect("ready")["port"])
        with RecordingClient(LOOPBACK, port, wire="legacy") as client:
            client.connect(timeout=WAIT)
            yield Link(peer, client, "peer02-server")


@pytest.fixture(params=["0.2 client, our server", "our client, 0.2 server"])
def link(request: pytest.FixtureRequest) -> Link:
    name = "peer_to_our_server" if request.param.startswith("0.2") else "our_client_to_peer"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", VALUE_CASES)
def test_02_message_decodes_on_our_side(link: Link, case: str) -> None:
    message = link.from_02(case)
    assert message.msg_type == MSG_TYPE
    assert message.src_sub_app_id == SRC
    assert describe(message.params) == describe(VALUE_CASES[case])


@pytest.mark.parametrize("case", VALUE_CASES)
def test_our_message_decodes_on_02_side(link: Link, case: str) -> None:
    decoded = link.to_02(case)
    assert decoded["msg_type"] == MSG_TYPE
    assert decoded["src"] == SRC
    assert decoded["params"] == describe(VALUE_CASES[case])


# -- values 0.2 gets wrong itself ---------------------------------------------------------


def _element(tag: str, text: str = "") -> dict[str, Any]:
    return {"t": "element", "tag": tag, "attrib": {}, "text": text, "children": []}


# What 0.2 makes of our encoding of each value it cannot carry: an XML element it does
# not know (never a wrong value, as its own <bool>False</bool> becomes True).
AS_SEEN_BY_02 = {
    "False": _element("false"),
    "None": _element("NoneType"),
    "float": _element("float", "1.5"),
    "mixed": {
        "t": "list",
        "v": [
            _element("NoneType"),
            _element("false"),
            _element("float", "0.25"),
            {"t": "bool", "v": True},
        ],
    },
}


@pytest.mark.parametrize("case", BEYOND_02)
def test_what_02_writes_but_misreads_decodes_right_on_our_side(link: Link, case: str) -> None:
    # 0.2 itself reads back False as True, None and floats as elements, and imports
    # the function a "<class '...'>" string names; the values it meant arrive here.
    assert describe(link.from_02(case).params) == describe(BEYOND_02[case])


@pytest.mark.parametrize("case", AS_SEEN_BY_02)
def test_our_values_beyond_02_reach_it_as_unknown_elements(link: Link, case: str) -> None:
    decoded = link.to_02(case)
    assert decoded["params"] == {"t": "dict", "v": [[describe("v"), AS_SEEN_BY_02[case]]]}


def test_class_from_02_decodes_only_once_registered(link: Link) -> None:
    payload = link.bytes_from_02("class")
    with pytest.raises(UnknownTypeError):
        Message("", None, None).from_bytes(payload)
    register_type(CLASS_CASE["v"])
    try:
        message = Message("", None, None)
        message.from_bytes(payload)
        assert message.params == CLASS_CASE
        # ... and the other way: 0.2 imports the class our message names.
        decoded = link.to_02("class")
        assert decoded["params"] == describe(CLASS_CASE)
    finally:
        unregister_type(CLASS_CASE["v"])
