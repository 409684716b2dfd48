"""A game of the project's own recorded (PYMASEP_COMM_RECORD, no code changed), then
replayed: the engine's side to a fresh interface (no divergence) and to one whose policy
changed (the divergence at the step where it changed), and an interface's side to a
live engine. The replays run as users run them: ``python -m pymasep.comm.server replay``
in the engine's virtualenv, ``python -m pymasep.comm.client replay`` in the interfaces'."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from games_harness import WAIT, Match, explained

Pythons = tuple[str, str]
RECORD = "PYMASEP_COMM_RECORD"


@pytest.fixture(scope="module")
def recorded(pythons: Pythons, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A game of tic-tac-toe between alice and bob, every process recording: the
    recordings by id."""
    directory = tmp_path_factory.mktemp("records")
    with Match(*pythons) as match, explained(match):
        match.env[RECORD] = str(directory)
        match.start_engine(2)
        match.start_interface("alice", "Actor", "TicTacToe")
        match.start_interface("bob", "Actor", "TicTacToe")
        assert set(match.finish().values()) == {0}
    files = {path.name.split("-")[0]: path for path in directory.iterdir()}
    assert set(files) == {"engine", "alice", "bob"}
    return files


class Replay:
    """A replay command running, with the port it listens on (server side)."""

    def __init__(self, command: list[str]) -> None:
        self.popen = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []

    def port(self) -> int:
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()  # the first line says where it listens
        self.lines.append(line)
        found = re.search(r":(\d+)$", line.strip())
        assert found, line
        return int(found.group(1))

    def finish(self) -> tuple[int, str]:
        out, _ = self.popen.communicate(timeout=WAIT * 2)
        return self.popen.returncode, "".join(self.lines) + out


def replay_engine_side(
    pythons: Pythons, recording: Path, *interface_args: str, speed: str = "1"
) -> tuple[int, str, int]:
    engine_python, _ = pythons
    replay = Replay(
        [
            engine_python,
            "-m",
            "pymasep.comm.server",
            "replay",
            str(recording),
            "--peer",
            "alice",
            "--speed",
            speed,
            "--timeout",
            "10",
        ]
    )
    try:
        port = replay.port()
        with Match(*pythons) as match, explained(match):
            address = ("--host", "127.0.0.1", "--port", str(port))
            alice = match.start_interface(
                "alice", "Actor", "TicTacToe", *address, *interface_args, engine=None
            )
            code, output = replay.finish()
            alice_code = alice.wait()
    finally:
        replay.popen.kill()
        replay.popen.wait()
    return code, output, alice_code


def test_the_engine_side_replayed_to_a_fresh_interface_matches(
    pythons: Pythons, recorded: dict[str, Path]
) -> None:
    code, output, alice = replay_engine_side(pythons, recorded["engine"])
    assert code == 0, output
    assert "all match" in output and "divergence" not in output
    assert alice == 0  # alice played the whole game against the replay, and left


def test_a_changed_policy_diverges_at_the_step_it_changed(
    pythons: Pythons, recorded: dict[str, Path]
) -> None:
    # alice plays the even steps (0, 2, 4, ...): from step 4 she plays another cell
    code, output, _ = replay_engine_side(
        pythons, recorded["engine"], "--change-policy-at-step", "3", speed="max"
    )
    assert code == 1, output
    assert "first divergence" in output and "at step 4:" in output, output
    recorded_part, live_part = output.split("+++ live")
    assert 'msg_type="action"' in recorded_part and 'msg_type="action"' in live_part
    assert "diverged at message" in output


def test_the_interface_side_replayed_to_a_live_engine_matches(
    pythons: Pythons, recorded: dict[str, Path]
) -> None:
    _, interface_python = pythons
    with Match(*pythons) as match, explained(match):
        engine = match.start_engine(2)
        port = engine.wait_event("listening")["port"]
        match.start_interface("bob", "Actor", "TicTacToe")
        result = subprocess.run(
            [
                interface_python,
                "-m",
                "pymasep.comm.client",
                "replay",
                str(recorded["alice"]),
                "--server",
                f"127.0.0.1:{port}",
                "--speed",
                "max",
            ],
            capture_output=True,
            text=True,
            timeout=WAIT * 2,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "all match" in result.stdout
        assert match.finish()["engine"] == 0
