"""replay() over a recording, with the live peer played by lists: no sockets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pymasep.comm.core import DisconnectCode, DisconnectReason, Message, Wire
from pymasep.comm.core.recorder import Recorder
from pymasep.comm.core.recording import Record, Recording
from pymasep.comm.core.replay import connection_records, replay

pytestmark = pytest.mark.disable_socket


def msg(msg_type: str, source: str, **params: object) -> bytes:
    return Message(msg_type, dict(params), source).to_bytes()


@pytest.fixture
def records(tmp_path: Path) -> list[Record]:
    """An engine's recording: p1 registers, plays 3 steps, says bye; p2 is there too."""
    with Recorder(tmp_path / "engine.jsonl", "server", "engine") as recorder:
        recorder.connected("p2", "a", Wire.V1, False, False, 0.0, 0.0)
        recorder.connected("p1", "b", Wire.V1, False, False, 0.0, 0.0)
        recorder.frame_received("p1", msg("register", "p1", id="p1"), 9, 0.1, 0.1)
        for step in range(3):
            recorder.frame_sent("p1", msg("observation", "engine", step=step), 9, 1.0, 1.0)
            recorder.frame_sent("p2", msg("observation", "engine", step=step), 9, 1.0, 1.0)
            recorder.frame_received("p1", msg("action", "p1", move=step), 9, 1.5, 1.5)
        recorder.bye("p1", "in", 2.0, 2.0)
        recorder.closed("p1", DisconnectReason(DisconnectCode.CLOSED_BY_PEER), 2.0, 2.0)
    with Recording(tmp_path / "engine.jsonl") as recording:
        return connection_records(recording, "p1")


def live_peer(answers: list[bytes]) -> tuple[list[bytes], Callable[[float], bytes | None]]:
    sent: list[bytes] = []

    def receive(timeout: float) -> bytes | None:
        return answers.pop(0) if answers else None

    return sent, receive


def test_one_connection_is_picked_from_connected_to_closed(records: list[Record]) -> None:
    assert {r.peer for r in records} == {"p1"}
    assert (records[0].event, records[-1].event) == ("connected", "closed")


def test_a_peer_that_answers_as_recorded_matches(records: list[Record]) -> None:
    answers = [msg("register", "p1", id="p1")] + [msg("action", "p1", move=s) for s in range(3)]
    sent, receive = live_peer(answers)
    result = replay(records, sent.append, receive)
    assert result.matched and (result.sent, result.compared) == (3, 4)
    assert sent == [msg("observation", "engine", step=s) for s in range(3)]
    assert result.summary() == "replayed 3 frames to p1, compared 4 messages from it: all match"


def test_the_first_different_answer_is_the_divergence_with_its_step(
    records: list[Record],
) -> None:
    answers = [msg("register", "p1", id="p1"), msg("action", "p1", move=0)]
    answers.append(msg("action", "p1", move=9))
    sent, receive = live_peer(answers)
    result = replay(records, sent.append, receive, speed=None)
    divergence = result.divergence
    assert divergence is not None
    assert (divergence.index, divergence.step, divergence.why) == (3, 1, "the messages differ")
    report = divergence.report()
    assert '<item key="move">\n      <int>1</int>' in report.split("+++ live")[0]
    assert "<int>9</int>" in report.split("+++ live")[1]
    assert len(sent) == 2  # nothing more was sent after the divergence


def test_silence_and_extra_messages_are_divergences(records: list[Record]) -> None:
    sent, receive = live_peer([msg("register", "p1", id="p1")])
    result = replay(records, sent.append, receive, timeout=0.01)
    assert result.divergence is not None and result.divergence.got is None
    assert "nothing within 0.01 s" in result.divergence.why
    answers = [msg("register", "p1", id="p1")] + [msg("action", "p1", move=s) for s in range(3)]
    sent, receive = live_peer([*answers, msg("action", "p1", move=3)])
    result = replay(records, sent.append, receive)
    assert result.divergence is not None and result.divergence.expected is None
    assert result.divergence.why == "the peer sent more than was recorded"


def test_attributes_in_another_order_still_match(records: list[Record]) -> None:
    register = b'<Message src_sub_app="p1" msg_type="register"><dict><item key="id">'
    register += b"<str>p1</str></item></dict></Message>"
    answers = [register] + [msg("action", "p1", move=s) for s in range(3)]
    sent, receive = live_peer(answers)
    assert replay(records, sent.append, receive).matched


def test_no_such_connection_is_a_lookup_error(tmp_path: Path) -> None:
    Recorder(tmp_path / "e.jsonl", "server", "engine").close()
    with Recording(tmp_path / "e.jsonl") as recording, pytest.raises(LookupError, match="'p9'"):
        connection_records(recording, "p9")


def test_a_peer_under_another_id_is_replayed_with_its_id_renamed(records: list[Record]) -> None:
    answers = [msg("register", "q7", id="q7")] + [msg("action", "q7", move=s) for s in range(3)]
    sent, receive = live_peer(answers)
    assert replay(records, sent.append, receive, rename=("p1", "q7")).matched
    unrenamed, receive = live_peer(list(answers))
    assert not replay(records, unrenamed.append, receive).matched
