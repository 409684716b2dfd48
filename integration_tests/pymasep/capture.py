"""Capture the observations that pymasep's engine sends in ``nox -s pymasep``'s games.

    python capture.py PYTHON OUT    # PYTHON: pymasep 0.2 with pymasep-comm over it

Plays each game of :data:`test_games.GAMES` once, as ``nox -s pymasep`` does (its own
engine and interface, two processes, in a network namespace made for it), with the
engine logging at DEBUG level. pymasep's ``SubApp.send_message`` logs the bytes of every
message it sends (``Sent message b'...'``), so the engine's log holds each observation
exactly as it went out on the wire; nothing is rebuilt. The last observation of each
game is written to ``OUT/<game>.xml``, byte for byte.

The codec benchmark reads the copies kept in integration_tests/benchmarks/captured
(its README says when and how they were taken); ``test_capture.py`` captures again and
checks that the games still send what is kept there.
"""

from __future__ import annotations

import argparse
import ast
import re
import tempfile
from pathlib import Path

from test_games import GAMES, play

SENT = re.compile(r"Sent message (b'.*'|b\".*\")$")
"""A line of pymasep's SubApp log: the repr of the bytes it sent."""


def sent_observations(engine_folder: Path) -> list[bytes]:
    """The OBSERVATION messages an engine logged as sent, in order."""
    found = []
    for log in sorted((engine_folder / "logs").glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            match = SENT.search(line)
            if match is None:
                continue
            data = ast.literal_eval(match[1])
            if isinstance(data, bytes) and data.startswith(b'<Message msg_type="observation"'):
                found.append(data)
    return found


def capture(python: str, game: str, workdir: Path) -> tuple[bytes, dict[str, str]]:
    """Play ``game`` and return the last observation its engine sent, with the ids the
    game drew (``engine`` and ``interface``: they differ from one game to the next)."""
    result = play(python, game, "normal", workdir)
    for side in ("engine", "interface"):
        if result[side]["returncode"] != 0:
            raise RuntimeError(f"{game}: the {side} failed: {result[side]}")
    observations = sent_observations(workdir / "engine")
    if len(observations) != result["sent"] or not observations:
        sent = result["sent"]
        raise RuntimeError(f"{game}: {sent} observations sent, {len(observations)} logged")
    engine_id = next(line for line in result["engine"]["stdout"] if line.startswith("engine ready"))
    ids = {"engine": engine_id.split()[-1], "interface": result["interface_id"]}
    return observations[-1], ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("python", help="pymasep 0.2 with pymasep-comm installed over it")
    parser.add_argument("out", type=Path, help="the folder to write <game>.xml into")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for game in sorted(GAMES):
        with tempfile.TemporaryDirectory() as scratch:
            data, ids = capture(args.python, game, Path(scratch))
        (args.out / f"{game}.xml").write_bytes(data)
        print(f"{game}: {len(data)} bytes, ids {ids}")


if __name__ == "__main__":
    main()
