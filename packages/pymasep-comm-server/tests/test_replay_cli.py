"""python -m pymasep.comm.server replay: what it refuses before it listens (the replays
themselves run on whole games: integration_tests/games/test_replay.py, nox -s pymasep)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymasep.comm.core.recorder import Recorder, Side
from pymasep.comm.server.__main__ import main


@pytest.mark.parametrize(
    ("recorded", "options", "error"),
    [
        (None, [], "none.jsonl"),
        (("client", "p1"), [], "recorded by a client"),
        (("server", "engine"), ["--peer", "p9"], "no connection with 'p9'"),
    ],
    ids=["a missing file", "an interface's recording", "no such interface in it"],
)
def test_a_usage_error_exits_with_2_and_says_why(
    recorded: tuple[Side, str] | None,
    options: list[str],
    error: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / ("none" if recorded is None else recorded[1])
    path = path.with_suffix(".jsonl")
    if recorded is not None:
        Recorder(path, *recorded).close()
    assert main(["replay", str(path), *options]) == 2
    assert error in capsys.readouterr().err


def test_the_speed_is_max_or_a_positive_factor() -> None:
    with pytest.raises(SystemExit) as raised:
        main(["replay", "any.jsonl", "--speed", "0"])
    assert raised.value.code == 2
