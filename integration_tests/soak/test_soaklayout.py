"""The soak run's interfaces and the processes that host them (soaklayout)."""

from __future__ import annotations

import pytest
from soaklayout import layout


def test_by_default_each_of_the_16_interfaces_is_a_process_of_its_own() -> None:
    slots = layout()
    assert slots.staying == [f"h{n:02d}" for n in range(8)]
    assert slots.churning == ["c08", "c09", "c10", "c11"]
    assert slots.killed == ["k12", "k13"]
    assert (slots.stalled, slots.garbage) == ("s14", "g15")
    assert all(ids == [slot] for slot, ids in slots.processes.items())
    assert len(slots.processes) == 14
    assert slots.killed_slots == ["k12", "k13"]


def test_64_interfaces_in_4_processes_keep_the_killed_players_apart() -> None:
    slots = layout(64, 4)
    players = slots.staying + slots.churning + slots.killed
    assert len(players) == 62
    assert len(slots.processes) == 4
    hosted = [ident for ids in slots.processes.values() for ident in ids]
    assert sorted(hosted) == sorted(players)  # each player once
    assert slots.killed_slots == ["kp"]
    assert slots.processes["kp"] == slots.killed
    for slot in ("hp0", "hp1", "hp2"):
        assert not set(slots.processes[slot]) & set(slots.killed)
        assert set(slots.processes[slot]) & set(slots.staying)  # the game's end reaches it


@pytest.mark.parametrize(
    ("interfaces", "processes", "why"),
    [(4, None, "at least 5 are needed"), (16, 1, "the killed players need their own")],
)
def test_a_layout_that_cannot_hold_every_kind_is_refused(
    interfaces: int, processes: int | None, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        layout(interfaces, processes)
