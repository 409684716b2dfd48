"""python -m pymasep.comm.server replay: what it refuses before it listens (the replays
themselves run on whole games: integration_tests/games/test_replay.py, nox -s pymasep)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymasep.comm.core.recorder import Recorder
from pymasep.comm.server.__main__ import main


def test_a_missing_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "none.jsonl")]) == 2
    assert "none.jsonl" in capsys.readouterr().err


def test_an_interface_s_recording_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Recorder(tmp_path / "p1.jsonl", "client", "p1").close()
    assert main(["replay", str(tmp_path / "p1.jsonl")]) == 2
    assert "recorded by a client" in capsys.readouterr().err


def test_a_recording_without_the_interface_asked_for_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Recorder(tmp_path / "engine.jsonl", "server", "engine").close()
    assert main(["replay", str(tmp_path / "engine.jsonl"), "--peer", "p9"]) == 2
    assert "no connection with 'p9'" in capsys.readouterr().err


def test_the_speed_is_max_or_a_positive_factor() -> None:
    with pytest.raises(SystemExit) as raised:
        main(["replay", "any.jsonl", "--speed", "0"])
    assert raised.value.code == 2
