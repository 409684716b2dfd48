"""The observations the codec benchmark keeps are what pymasep's engine sends today.

integration_tests/benchmarks/captured holds the last observation of each game of
:data:`test_games.GAMES`, captured by capture.py from the engine's own log. Each test
plays the game again, captures anew and compares, as XML, with the copy kept: only the
ids that each game draws (the engine's, the interface's) may differ.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from capture import capture
from test_games import GAMES

from pymasep.comm.core.testing.netns import requires_netns

CAPTURED = Path(__file__).resolve().parents[1] / "benchmarks" / "captured"


def without_ids(data: bytes) -> str:
    """The message as canonical XML, its ids replaced: the engine's (``src_sub_app``)
    and the interface's (the ``control`` of the agent it plays)."""
    message = ElementTree.fromstring(data)
    message.set("src_sub_app", "engine")
    for agent in message.iter("Agent"):
        if "control" in agent.attrib:
            agent.set("control", "interface")
    return ElementTree.canonicalize(ElementTree.tostring(message, encoding="unicode"))


@requires_netns
@pytest.mark.parametrize("game", sorted(GAMES))
def test_the_kept_observation_is_what_the_game_sends(
    python: str, game: str, tmp_path: Path
) -> None:
    data, ids = capture(python, game, tmp_path)
    assert ids["engine"].encode() in data and ids["interface"].encode() in data
    assert b"<Belief" in data and b"&lt;graphml" in data  # agents, and their GraphML
    assert without_ids(data) == without_ids((CAPTURED / f"{game}.xml").read_bytes())
