"""Watch a game: ``nox -s demo`` (``-- --game Race``, ``-- --fast``, ``-- --help``).

Three processes on this machine: an engine (``integration_tests/games/engine.py``) and
two interfaces (``interface.py``), each script copied to a folder of its own as the game
tests deploy them, all three run by this interpreter. The engine listens on 127.0.0.1.
The interfaces know no address: they find the engine by discovery on loopback (both
sides pass ``--discovery-interface 127.0.0.1``, so the query and its answer go through
``lo`` alone; on Linux this works with no multicast route, and with one that leads to
another interface), then DEFINE the game, REGISTER, and play it to the end. This prints
the game turn by turn from the processes' transcripts, a progress line while it runs,
and a summary.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any

from games_harness import Event, Match

LOOPBACK = "127.0.0.1"


HELP = (
    "Watch a game: an engine and two interfaces, each a process on this machine, find "
    "each other by discovery on loopback and play to the end. Run it with: "
    "nox -s demo -- --game Race --fast"
)
"""The --help text: plain, for a terminal (the module docstring is for the docs)."""


def kib(count: float) -> str:
    return f"{count / 1024:.1f} KiB" if count < 1024 * 1024 else f"{count / 1024**2:.1f} MiB"


class Show:
    """Prints the transcript as the processes' events arrive (from several threads)."""

    def __init__(self, engine_id: str, players: list[str]) -> None:
        self.engine_id = engine_id
        self.players = players
        self.lock = threading.Lock()
        self.tty = sys.stdout.isatty()
        self.started = time.monotonic()
        self.game_started: float | None = None
        self.step = -1
        self.messages = 0
        self.bytes = 0
        self.progress_shown = False

    def line(self, text: str = "") -> None:
        """Print a line of the transcript; on a terminal, keep the progress line last."""
        if self.tty and self.progress_shown:
            sys.stdout.write("\r\033[K")
        print(text)
        if self.tty and self.progress_shown:
            sys.stdout.write(self.progress())
        sys.stdout.flush()

    def progress(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.step < 0:
            return f"  ... the interfaces look for the engine, connect, register | {elapsed:.1f} s"
        counts = f"{self.messages} messages | {kib(self.bytes)}"
        return f"  ... step {self.step} | {counts} | {elapsed:.1f} s"

    def show_progress(self) -> None:
        if self.tty:
            sys.stdout.write("\r\033[K" + self.progress())
            sys.stdout.flush()
            self.progress_shown = True
        else:
            print(self.progress(), flush=True)

    def tick(self, stop: threading.Event) -> None:
        """On a terminal, keep the progress line's clock running until ``stop``."""
        while self.tty and not stop.wait(0.2):
            with self.lock:
                self.show_progress()

    def __call__(self, name: str, event: Event) -> None:
        with self.lock:
            self.on_event(name, event)

    def on_event(self, process: str, event: Event) -> None:
        kind = event["event"]
        name = "engine" if process == self.engine_id else process
        who = f"  {name:<7} "
        if kind == "listening":
            self.line(
                f"{who}{self.engine_id} listens on {LOOPBACK}:{event['port']} and answers "
                f"discovery on {LOOPBACK}"
            )
        elif kind == "found":
            self.line(
                f"{who}found the engine at {event['host']}:{event['port']} by discovery "
                f"({event['seconds']:.2f} s)"
            )
        elif kind == "connected":
            self.line(f"{who}connected to {event['server_id']}; sends DEFINE and REGISTER")
        elif kind == "define" and name == "engine":
            self.line(f"{who}{event['source']} defines the game: {event['game']}")
        elif kind == "register":
            self.line(f"{who}{event['id']} registers as {event['role']}")
        elif kind == "start_game":
            self.game_started = time.monotonic()
            self.line(f"{who}{event['game']} starts between {' and '.join(event['players'])}")
            self.line()
        elif kind == "observation" and name == "engine":
            self.step = event["step"]
            self.messages, self.bytes = event["messages"], event["bytes"]
            picture = event["picture"]
            turn = f"to play: {event['to_play']}" if event["to_play"] else "game over"
            notes = [turn, f"sent to {', '.join(sorted(event['sizes']))}"]
            self.line(f"  step {event['step']:<3} {event['log']}")
            for index, row in enumerate(picture):
                note = notes[index] if index < len(notes) else ""
                self.line(f"            {row}    {note}".rstrip())
            self.show_progress()
        elif kind == "end":
            self.line()
            self.line(f"  engine  END_GAME: {event['result'] or 'no result'}")
        elif kind == "quit" and name != "engine":
            self.line(f"{who}sends QUIT_GAME and closes")
        elif kind == "disconnect":
            self.line(f"{who}connection to {event['id']} ended: {event['reason']}")
        elif kind in ("left", "rejected", "send_failed", "action_timeout"):
            details = {k: v for k, v in event.items() if k not in ("event", "received_at")}
            self.line(f"{who}{kind}: {details}")


def main() -> int:
    parser = argparse.ArgumentParser(description=HELP)
    parser.add_argument(
        "--game", choices=("TicTacToe", "Race"), default="TicTacToe", help="the game to play"
    )
    parser.add_argument("--players", default="alice,bob", help="two comma-separated ids")
    parser.add_argument("--fast", action="store_true", help="no pause between the steps")
    args = parser.parse_args()
    players = [name.strip() for name in args.players.split(",") if name.strip()]
    if len(players) != 2 or len(set(players)) != 2:
        parser.error("--players takes two different ids")

    engine_id = f"demo-engine-{os.getpid()}"  # the interfaces join this one, no other
    delay = "0" if args.fast else "0.35"
    show = Show(engine_id, players)
    print(
        f"pymasep-comm demo: {args.game} between {players[0]} and {players[1]}; the engine and "
        f"the two interfaces are separate processes on {LOOPBACK}\n"
    )
    python = sys.executable
    with Match(python, python, listener=show) as match:
        match.start_engine(
            len(players),
            "--bind",
            LOOPBACK,
            "--discovery",
            "--discovery-interface",
            LOOPBACK,
            "--step-delay",
            delay,
            name=engine_id,
        )
        discovery = ("--discovery-interface", LOOPBACK, "--engine-id", engine_id)
        for player in players:
            match.start_interface(player, "Actor", args.game, *discovery, engine=None)
        stop = threading.Event()
        ticker = threading.Thread(target=show.tick, args=(stop,), daemon=True)
        ticker.start()
        try:
            codes = match.finish(timeout=120)
        except AssertionError as error:
            print(f"\n\nthe demo did not finish: {error}", file=sys.stderr)
            return 1
        finally:
            stop.set()
            ticker.join()
        if show.tty and show.progress_shown:
            print()
        return summarize(match, engine_id, codes, show)


def summarize(match: Match, engine_id: str, codes: dict[str, int], show: Show) -> int:
    engine = match.processes[engine_id]
    if set(codes.values()) != {0} or not engine.find("summary"):
        print(f"\nsomething went wrong: exit codes {codes}\n{match.report()}", file=sys.stderr)
        return 1
    summary: dict[str, Any] = engine.find("summary")[0]
    end = engine.find("end")[0]
    sent = [(e["step"], e["digest"]) for e in engine.find("observation")]
    in_order = all(
        [(e["step"], e["digest"]) for e in match.processes[player].find("observation")] == sent
        for player in show.players
    )
    game_time = time.monotonic() - (show.game_started or show.started)
    messages = summary["sent"] + summary["received"]
    volume = summary["bytes_sent"] + summary["bytes_received"]
    print("\nsummary")
    print(f"  result     {end['result'] or 'no result'}")
    print(f"  steps      {summary['steps']}")
    print(
        f"  messages   {messages}: {summary['sent']} from the engine, "
        f"{summary['received']} from the interfaces"
    )
    print(f"  bytes      {volume} ({kib(volume)})")
    print(f"  time       {time.monotonic() - show.started:.2f} s in all, {game_time:.2f} s of play")
    print(
        f"  processes  {len(codes)}, all exited 0; every interface saw every step in order: "
        f"{'yes' if in_order else 'NO'}"
    )
    return 0 if in_order else 1


if __name__ == "__main__":
    sys.exit(main())
