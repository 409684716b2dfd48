"""Games played to the end across processes, as users deploy them.

The engine runs with only pymasep-comm-server (and core) installed, each interface with
only pymasep-comm-client (and core), each side in a virtualenv of its own made from the
built wheels (``nox -s games``). The processes follow pymasep's message flow (DEFINE,
REGISTER, OBSERVATION, ACTION, END_GAME, QUIT_GAME) and print their transcripts as JSON
lines, which the tests compare. Everything runs on loopback, except the discovery game,
which runs inside a network namespace that the test makes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from games_harness import HERE, Match, Process, explained

from pymasep.comm.core.testing.netns import requires_netns, run_in_namespace

ENGINE_DISTRIBUTIONS = {"pymasep-comm-core", "pymasep-comm-server"}
INTERFACE_DISTRIBUTIONS = {"pymasep-comm-core", "pymasep-comm-client"}
MIB = 1024 * 1024

Pythons = tuple[str, str]


def observed(process: Process) -> list[tuple[int, str]]:
    """(step, digest of the state) of every observation an interface received, in order."""
    return [(e["step"], e["digest"]) for e in process.find("observation")]


def sent_to(engine: Process, ident: str) -> list[tuple[int, str]]:
    """(step, digest) of every observation the engine sent to ``ident``, in order."""
    return [
        (e["step"], e["digest"]) for e in engine.find("observation") if e["sizes"].get(ident, 0) > 0
    ]


def events_after(process: Process, kind: str, **match: Any) -> list[dict[str, Any]]:
    """The events of ``process`` after its first ``kind`` event with these fields."""
    events = process.transcript()
    first = next(
        index
        for index, event in enumerate(events)
        if event["event"] == kind and all(event.get(k) == v for k, v in match.items())
    )
    return events[first + 1 :]


def check_installed_alone(match: Match) -> None:
    """Each process imported pymasep-comm from its own virtualenv, holding only its side."""
    for name, process in match.processes.items():
        start = process.wait_event("start")
        side = "engine" if name.startswith("engine") else "interface"
        wanted = ENGINE_DISTRIBUTIONS if side == "engine" else INTERFACE_DISTRIBUTIONS
        assert set(start["distributions"]) == wanted, f"{name}: {start['distributions']}"
        venv = Path(match.pythons[side]).parent.parent
        assert Path(start["core"]).is_relative_to(venv), f"{name} imported {start['core']}"


def check_clean_exit(process: Process, code: int) -> None:
    assert code == 0, f"{process.name} exited with {code}"
    summary = process.wait_event("summary")
    assert summary["threads"] == [], f"{process.name} left threads: {summary['threads']}"


def start_game(
    match: Match,
    game: str,
    actors: list[str],
    observers: list[str],
    engine_args: tuple[str, ...] = (),
    extra: dict[str, tuple[str, ...]] | None = None,
) -> Process:
    extra = extra or {}
    engine = match.start_engine(len(actors) + len(observers), *engine_args)
    for ident in actors:
        match.start_interface(ident, "Actor", game, *extra.get(ident, ()))
    for ident in observers:
        match.start_interface(ident, "Observer", game, *extra.get(ident, ()))
    return engine


def test_two_actors_and_an_observer_play_tic_tac_toe(pythons: Pythons) -> None:
    with Match(*pythons) as match, explained(match):
        engine = start_game(match, "TicTacToe", ["alice", "bob"], ["olga"])
        codes = match.finish()
        check_installed_alone(match)
        for name, process in match.processes.items():
            check_clean_exit(process, codes[name])

        # The DEFINE carried the class, resolved through both sides' allowlists.
        assert {e["game"] for e in engine.find("define")} == {"rules.TicTacToe"}
        roles = {e["id"]: e["role"] for e in engine.find("register")}
        assert roles == {"alice": "Actor", "bob": "Actor", "olga": "Observer"}
        end = engine.wait_event("end")
        assert end["result"] == "draw" and end["step"] == 9  # both play the best moves
        steps = [e["step"] for e in engine.find("observation")]
        assert steps == list(range(10))

        # Everybody saw every step, in order, with the very state the engine sent.
        for ident in ("alice", "bob", "olga"):
            interface = match.processes[ident]
            assert observed(interface) == sent_to(engine, ident), ident
            assert {e["element"] for e in interface.find("observation")} == {"lxml.etree._Element"}
            interface.wait_event("end_game")
            engine.wait_event("quit", id=ident)
        assert {e["reward"] for e in match.processes["olga"].find("observation")} == {None}
        assert all(
            isinstance(e["reward"], float) for e in match.processes["alice"].find("observation")
        )
        # Each actor's moves were played, on its turns, none refused.
        assert not engine.find("rejected")
        for ident in ("alice", "bob"):
            played = [e["step"] for e in engine.find("action", source=ident)]
            assert played == [e["step"] for e in match.processes[ident].find("action")]
        assert not match.processes["olga"].find("action")


@pytest.mark.parametrize(
    ("quitter", "role", "at_step"),
    [("bob", "actor", 4), ("olga", "observer", 3)],
)
def test_an_interface_quits_mid_game(
    pythons: Pythons, quitter: str, role: str, at_step: int
) -> None:
    actors, observers = ["ann", "bob", "cyd"], ["olga"]
    quit_args: dict[str, tuple[str, ...]] = {quitter: ("--quit-at-step", str(at_step))}
    with Match(*pythons) as match, explained(match):
        engine = start_game(match, "Race", actors, observers, extra=quit_args)
        codes = match.finish()
        for name, process in match.processes.items():
            check_clean_exit(process, codes[name])

        leaving = match.processes[quitter]
        assert [e["step"] for e in leaving.find("observation")][-1] == at_step
        leaving.wait_event("quit", why=f"leaving at step {at_step}")
        assert not leaving.find("end_game")
        # An actor quits on its turn, so the engine waits for it; nothing waits for an
        # observer, whose QUIT the engine may read steps later, even after the end.
        read_at = engine.wait_event("quit", id=quitter)["step"]
        assert read_at == at_step if role == "actor" else read_at >= at_step
        later = events_after(engine, "quit", id=quitter)
        if role == "actor" or any(e["event"] == "end" for e in later):  # read in the game
            engine.wait_event("left", id=quitter, why="quit")
        engine.wait_event("disconnect", id=quitter, reason="closed by the peer")
        # Once the engine read the QUIT, nothing more went to it; the game went on.
        assert not [e for e in later if e["event"] == "observation" and quitter in e["sizes"]]
        assert {e["to"] for e in engine.find("send_failed")} <= {quitter}
        end = engine.wait_event("end")
        assert end["step"] > at_step + 1 and end["winner"] != quitter
        if role == "actor":
            after = engine.wait_event("observation", step=at_step + 1)
            assert after["log"] == f"{quitter} left (quit)" and after["to_play"] == "cyd"
        for ident in [*actors, *observers]:
            if ident != quitter:
                assert observed(match.processes[ident]) == sent_to(engine, ident), ident
                assert observed(match.processes[ident])[-1][0] == end["step"]
                match.processes[ident].wait_event("end_game")


@pytest.mark.parametrize(
    ("game", "actors", "victim", "at_step"),
    [("Race", ["ann", "bob", "cyd"], "bob", 4), ("TicTacToe", ["alice", "bob"], "bob", 3)],
)
def test_a_killed_interface_is_noticed_within_a_second(
    pythons: Pythons, game: str, actors: list[str], victim: str, at_step: int
) -> None:
    with Match(*pythons) as match, explained(match):
        engine = start_game(
            match, game, actors, ["olga"], extra={victim: ("--stall-at-step", str(at_step))}
        )
        # It is the victim's turn: the engine waits for its action when it dies. The
        # victim read that observation (it stalls after reading it), so the kill cannot
        # cut a frame the engine is still sending it.
        stalled = match.processes[victim].wait_event("stalled", step=at_step)
        assert engine.wait_event("observation", step=at_step)["to_play"] == victim
        killed_at = time.monotonic()
        match.processes[victim].kill()
        noticed = engine.wait_event("disconnect", timeout=5, id=victim)
        assert noticed["received_at"] - killed_at < 1.0, "the engine noticed too late"
        assert noticed["reason"].startswith("connection lost")
        engine.wait_event("left", id=victim)
        assert stalled["step"] == at_step

        codes = match.finish()
        assert codes[victim] == -9
        for name, process in match.processes.items():
            if name != victim:
                check_clean_exit(process, codes[name])
        end = engine.wait_event("end")
        after = engine.wait_event("observation", step=at_step + 1)
        assert after["log"].startswith(f"{victim} left (connection lost")
        if game == "Race":  # the race goes on without it
            assert end["step"] > at_step + 1 and end["winner"] in actors
        else:  # a player who leaves tic-tac-toe forfeits
            assert end["step"] == at_step + 1 and end["winner"] == "alice"
        for ident in [*actors, "olga"]:
            if ident != victim:
                assert observed(match.processes[ident]) == sent_to(engine, ident), ident
                match.processes[ident].wait_event("end_game")


def test_a_large_state_crosses_every_step(pythons: Pythons) -> None:
    with Match(*pythons) as match, explained(match):
        started = time.monotonic()
        engine = start_game(
            match, "TicTacToe", ["alice", "bob"], ["olga"], ("--pad-bytes", str(MIB + 4096))
        )
        codes = match.finish()
        seconds = time.monotonic() - started
        for name, process in match.processes.items():
            check_clean_exit(process, codes[name])
        steps = len(engine.find("observation"))
        assert steps == 10
        for ident in ("alice", "bob", "olga"):
            seen = match.processes[ident].find("observation")
            assert [(e["step"], e["digest"]) for e in seen] == sent_to(engine, ident)
            assert min(e["bytes"] for e in seen) >= MIB, ident
        moved = engine.wait_event("summary")["bytes_sent"]
        print(f"{moved / MIB:.0f} MiB in {steps} steps to 3 interfaces: {seconds:.2f} s")


# -- discovery, inside a network namespace the test makes ----------------------------


@requires_netns
def test_interfaces_find_the_engine_by_discovery_in_a_namespace() -> None:
    harness = str(HERE / "games_harness.py")
    game = ("discovery-game", "TicTacToe", "alice,bob", "olga")
    result = run_in_namespace(sys.executable, harness, *game, timeout=90)
    codes, transcripts = result["codes"], result["transcripts"]
    report = json.dumps(transcripts, indent=1)[-6000:]
    assert set(codes.values()) == {0}, f"{codes}\n{report}"

    def events(name: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in transcripts[name] if e["event"] == kind]

    listening = events("engine", "listening")[0]
    assert listening["host"] == "" and listening["discovery"] is True
    engine_steps = [(e["step"], e["digest"]) for e in events("engine", "observation")]
    for ident in ("alice", "bob", "olga"):
        (found,) = events(ident, "found")
        # Found, not configured: the announcer named the address facing the interface.
        assert (found["host"], found["port"]) == ("127.0.0.1", listening["port"]), found
        assert found["servers"] == ["engine"]
        assert [(e["step"], e["digest"]) for e in events(ident, "observation")] == engine_steps
        assert events(ident, "end_game") and events(ident, "summary")[0]["threads"] == []
    assert events("engine", "end")[0]["result"] == "draw"
    assert events("engine", "summary")[0]["threads"] == []
