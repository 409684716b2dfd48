"""Recording (pymasep.comm.core.recorder) and reading back (pymasep.comm.core.recording),
fed by the tap's calls directly: no sockets."""

from __future__ import annotations

import gzip
import json
import logging
import os
import threading
from pathlib import Path

import pytest
from lxml import etree

from pymasep.comm.core import (
    DecodeError,
    DisconnectCode,
    DisconnectReason,
    Frame,
    Message,
    Wire,
)
from pymasep.comm.core.recorder import FORMAT, Recorder, recorder_for
from pymasep.comm.core.recording import Recording, canonical_xml, pretty_xml

pytestmark = pytest.mark.disable_socket


def message(msg_type: str, **params: object) -> bytes:
    return Message(msg_type, dict(params), "engine").to_bytes()


def play(recorder: Recorder, steps: int = 3) -> list[bytes]:
    """A small game as an engine's connection sees it; returns the frames sent."""
    recorder.connected("p1", ("127.0.0.1", 5000), Wire.V1, True, False, 1.0, 1e9)
    recorder.frame_received("p1", message("register", id="p1"), 40, 1.1, 1e9 + 0.1)
    sent = []
    for step in range(1, steps + 1):
        observation = message("observation", step=step, board="x<o")
        sent.append(observation)
        recorder.frame_sent("p1", observation, len(observation) + 5, 1 + step, 1e9 + step)
        action = message("action", move=step)
        recorder.frame_received("p1", action, len(action) + 5, 1.5 + step, 1e9 + step)
    recorder.frame_sent("p1", b"\x00\xffnot xml", 14, 9.0, 1e9 + 9)
    recorder.bye("p1", "in", 9.5, 1e9 + 9.5)
    recorder.closed("p1", DisconnectReason(DisconnectCode.CLOSED_BY_PEER), 10.0, 1e9 + 10)
    return sent


@pytest.mark.parametrize("name", ["game.jsonl", "game.jsonl.gz"])
def test_a_recording_is_json_lines_with_a_header_and_reads_back(tmp_path: Path, name: str) -> None:
    with Recorder(tmp_path / name, "server", "engine") as recorder:
        sent = play(recorder)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(tmp_path / name, "rt", encoding="utf-8") as file:
        lines = [json.loads(line) for line in file]  # plain JSON, one object a line
    header = lines[0]
    assert (header["format"], header["version"], header["side"], header["id"]) == (
        FORMAT,
        1,
        "server",
        "engine",
    )
    assert "package_version" in header
    assert [line["event"] for line in lines[1:]] == [
        "connected",
        "received",
        *["sent", "received"] * 3,
        "sent",
        "bye",
        "closed",
    ]
    assert lines[1] | {"seq": 0} == {
        "seq": 0,
        "event": "connected",
        "peer": "p1",
        "mono": 1.0,
        "wall": 1e9,
        "address": "127.0.0.1:5000",
        "wire": "v1",
        "authenticated": True,
        "tls": False,
    }
    assert lines[-1]["reason"] == "closed by the peer" and lines[-1]["graceful"] is True
    with Recording(tmp_path / name) as recording:
        assert (recording.side, recording.id) == ("server", "engine")
        records = list(recording)
    assert [r.seq for r in records] == list(range(len(records)))
    frames = [r for r in records if r.is_frame]
    assert [r.payload for r in frames if r.direction == "out"] == [*sent, b"\x00\xffnot xml"]
    assert frames[-1].xml is None and frames[-1].fields["base64"]
    observation = frames[1]
    assert (observation.msg_type, observation.step, observation.size) == (
        "observation",
        0,
        len(sent[0]) + 5,
    )
    assert observation.message() == Message("observation", {"step": 1, "board": "x<o"}, "engine")
    # the register before the first observation is step 0; each action is in its step
    assert [(r.msg_type, r.step) for r in frames[:6]] == [
        ("register", 0),
        ("observation", 0),
        ("action", 0),
        ("observation", 1),
        ("action", 1),
        ("observation", 2),
    ]


def test_the_frames_of_a_read_are_one_record_each_with_the_read_s_times(tmp_path: Path) -> None:
    payloads = [message("action", move=1), b"\x00binary", message("action", move=2)]
    with Recorder(tmp_path / "r.jsonl", "server", "engine") as recorder:
        recorder.frame_sent("p1", message("observation", step=1), 40, 1.0, 1e9 + 1)
        recorder.frames_received("p1", [Frame(p) for p in payloads], 5, 2.0, 1e9 + 2)
        recorder.frames_received("p2", [Frame(b"<Message/>")], 2, 3.0, 1e9 + 3)
    with Recording(tmp_path / "r.jsonl") as recording:
        records = list(recording)
    assert [(r.seq, r.peer, r.direction, r.size, r.monotonic, r.wall) for r in records] == [
        (0, "p1", "out", 40, 1.0, 1e9 + 1),
        (1, "p1", "in", len(payloads[0]) + 5, 2.0, 1e9 + 2),
        (2, "p1", "in", len(payloads[1]) + 5, 2.0, 1e9 + 2),
        (3, "p1", "in", len(payloads[2]) + 5, 2.0, 1e9 + 2),
        (4, "p2", "in", 12, 3.0, 1e9 + 3),
    ]
    assert [r.payload for r in records[1:4]] == payloads
    assert recorder.written == 5


def test_frames_sent_told_at_once_are_one_record_each_with_its_own_time(tmp_path: Path) -> None:
    payloads = [message("observation", step=1), b"\x00binary", message("observation", step=2)]
    with Recorder(tmp_path / "s.jsonl", "server", "engine") as recorder:
        recorder.frames_sent("p1", [Frame(p) for p in payloads], 5, [1.0, 1.25, 1.5], 1e9)
        recorder.frames_received("p1", [Frame(message("action", move=1))], 5, 2.0, 1e9 + 2)
    with Recording(tmp_path / "s.jsonl") as recording:
        records = list(recording)
    assert [(r.peer, r.direction, r.size, r.monotonic, r.wall) for r in records[:3]] == [
        ("p1", "out", len(payload) + 5, mono, 1e9 + mono)
        for payload, mono in zip(payloads, [1.0, 1.25, 1.5], strict=True)
    ]
    assert [r.payload for r in records[:3]] == payloads
    assert (records[3].direction, recorder.written) == ("in", 4)


def test_messages_filters_by_peer_and_direction(tmp_path: Path) -> None:
    with Recorder(tmp_path / "g.jsonl", "server", "engine") as recorder:
        play(recorder, steps=2)
    with Recording(tmp_path / "g.jsonl") as recording, pytest.raises(DecodeError):
        list(recording.messages(direction="out"))  # the last frame sent is not XML
    with Recording(tmp_path / "g.jsonl") as recording:
        actions = [m.params for _, m in recording.messages(peer="p1", direction="in")]
    assert actions == [{"id": "p1"}, {"move": 1}, {"move": 2}]


def test_a_directory_gets_one_file_named_by_id_and_start_time(tmp_path: Path) -> None:
    with (
        Recorder(tmp_path, "client", "p/1") as first,
        Recorder(tmp_path, "client", "p/1") as second,
    ):
        pass
    assert first.path != second.path
    assert first.path.parent == tmp_path and first.path.name.startswith("p_1-")
    assert first.path.name.endswith(".jsonl")


def test_an_existing_file_is_never_written_over(tmp_path: Path) -> None:
    (tmp_path / "old.jsonl").write_text("precious\n")
    with pytest.raises(FileExistsError):
        Recorder(tmp_path / "old.jsonl", "server", "engine")
    assert (tmp_path / "old.jsonl").read_text() == "precious\n"


def test_a_path_that_is_not_a_jsonl_file_is_a_directory(tmp_path: Path) -> None:
    """As PYMASEP_COMM_RECORD=records gives it (the settings layer passes it as record=)."""
    assert recorder_for(None, "server", "engine") is None
    recorder = recorder_for(tmp_path / "records", "server", "engine")
    assert recorder is not None
    recorder.close()
    assert recorder.path.parent == tmp_path / "records" and recorder.path.suffix == ".jsonl"
    explicit = recorder_for(tmp_path / "mine.jsonl", "client", "p1")
    assert explicit is not None
    explicit.close()
    assert explicit.path == tmp_path / "mine.jsonl"


@pytest.mark.parametrize("name", ["crash.jsonl", "crash.jsonl.gz"])
def test_a_recording_cut_short_reads_up_to_its_last_complete_line(
    tmp_path: Path, name: str
) -> None:
    whole = tmp_path / name
    with Recorder(whole, "server", "engine") as recorder:
        play(recorder)
    data = whole.read_bytes()
    if name.endswith(".gz"):  # a gzip file without its end, as a killed process leaves
        plain = gzip.decompress(data)
        cut = plain[: plain.rindex(b"\n", 0, len(plain) - 1) + 30]
        compressor = gzip.GzipFile(tmp_path / "cut.gz", "wb")
        compressor.write(cut)
        compressor.flush()  # a sync flush, as the recorder does: no trailer after it
        compressor.fileobj.close()  # type: ignore[union-attr]
        cut_path = tmp_path / "cut.gz"
    else:
        cut_path = tmp_path / "cut.jsonl"
        cut_path.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 30])
    with Recording(whole) as recording:
        expected = [r.seq for r in recording][:-1]
    with Recording(cut_path) as recording:
        assert [r.seq for r in recording] == expected


def test_a_growing_recording_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl.gz"
    recorder = Recorder(path, "server", "engine")
    recorder.connected("p1", "addr", Wire.V1, False, False, 1.0, 1.0)
    recorder.close()  # (closed, so that the test knows the line is there)
    with Recording(path) as recording:
        assert [r.event for r in recording.follow()] == ["connected"]
        assert recording.follow() == []


def test_a_slow_reader_slows_the_game_and_loses_nothing(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    recorder = Recorder(pipe, "server", "engine", max_pending_bytes=10_000)
    os.set_blocking(reader, True)
    payload = message("observation", text="x" * 2000)
    count = 500  # about 1 MB: far more than the pipes and the queue hold
    chunks: list[bytes] = []
    reading = threading.Event()

    def read() -> None:  # a slow disk: nothing is read until the game has had to wait
        reading.wait(30)
        while chunk := os.read(reader, 1 << 16):
            chunks.append(chunk)

    slow_disk = threading.Thread(target=read)
    slow_disk.start()
    for i in range(count):
        if recorder.waits and not reading.is_set():
            reading.set()
        recorder.frame_sent("p1", payload, len(payload) + 5, float(i), float(i))
    reading.set()
    recorder.close()
    slow_disk.join(30)
    os.close(reader)
    lines = b"".join(chunks).splitlines()
    assert len(lines) == 1 + count
    assert [json.loads(line)["seq"] for line in lines[1:]] == list(range(count))
    assert recorder.waits > 0 and recorder.dropped == 0 and recorder.written == count


def test_a_burst_reaches_the_file_once_it_ends_without_waiting_for_close(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    recorder = Recorder(pipe, "server", "engine")
    os.set_blocking(reader, True)
    count = 160  # 10 MiB told at once: a burst, far above BURST_RATE, kept while it lasts
    recorder.frames_sent("p1", [Frame(bytes(64 * 1024))] * count, 5, [0.0] * count, 0.0)
    received = bytearray()

    def read() -> None:  # until the header and every frame's line are there
        while received.count(b"\n") < 1 + count and (chunk := os.read(reader, 1 << 20)):
            received.extend(chunk)

    follower = threading.Thread(target=read)
    follower.start()
    follower.join(30)
    written_before_close = received.count(b"\n")
    recorder.close()
    os.close(reader)
    assert written_before_close == 1 + count
    assert recorder.written == count and recorder.dropped == 0


def test_a_failing_disk_is_logged_once_and_the_game_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with caplog.at_level(logging.WARNING, "pymasep.comm.core.recorder"):
        recorder = Recorder("/dev/full", "server", "engine")
        for i in range(3):
            recorder.frame_sent("p1", b"<Message msg_type='x'/>", 28, float(i), float(i))
        recorder.close()
    assert recorder.error is not None and recorder.written == 0
    assert recorder.dropped == 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "recording stopped" in errors[0].getMessage()
    assert "3 events were not recorded" in caplog.text


def test_events_after_close_are_counted_not_written(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "r.jsonl", "server", "engine")
    recorder.close()
    recorder.frame_sent("p1", b"late", 9, 0.0, 0.0)
    assert recorder.dropped == 1
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1


def test_a_file_that_is_not_a_recording_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"hello": 1}\n')
    with pytest.raises(DecodeError, match="not a pymasep-comm recording"):
        Recording(tmp_path / "x.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DecodeError, match="no recording header"):
        Recording(tmp_path / "empty.jsonl")


def test_xml_is_compared_canonically_and_shown_indented() -> None:
    assert canonical_xml(b'<a y="2"  x="1"/>') == canonical_xml(b'<a x="1" y="2"></a>')
    assert canonical_xml(b"\x00binary") == b"\x00binary"
    assert pretty_xml(b"<a><b>1</b></a>") == "<a>\n  <b>1</b>\n</a>\n"


def test_the_step_is_the_one_the_observed_state_carries(tmp_path: Path) -> None:
    """pymasep's State carries env_step (its first observation may be step 1)."""
    with Recorder(tmp_path / "e.jsonl", "server", "engine") as recorder:
        for step in (1, 3):
            state = etree.Element("State", name="s", env_step=str(step))
            observation = Message("observation", {"observation": state}, "engine").to_bytes()
            recorder.frame_sent("p1", observation, 9, 0.0, 0.0)
            recorder.frame_received("p1", message("action", add=2), 9, 0.0, 0.0)
    with Recording(tmp_path / "e.jsonl") as recording:
        assert [r.step for r in recording] == [1, 1, 3, 3]
