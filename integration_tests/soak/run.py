"""Soak run: an engine plays with 16 interface processes for minutes, under abuse, and
watches its own memory, threads and descriptors.

Usage: ``nox -s soak -- [--minutes N] [--out DIR] [--seed S] [--interfaces N
--processes P]`` (or this file, with the three distributions and matplotlib installed).
Loopback only; it stops by itself. ``--interfaces 64 --processes 4`` plays with 64
interface slots, the players among them sharing 4 processes (:mod:`soaklayout` says
how); by default each of the 16 is a process of its own, as described below.

This process is the engine: a :class:`~pymasep.comm.server.Server` (public API only)
that sends an observation per step to every connected interface; each answers with an
action naming the step. The 16 interface slots:

* 8 stay for the whole run (``h00``..``h07``);
* 4 leave after a random number of steps and join again, each time a new process
  under the same id (``c08``..``c11``): churn;
* 2 are killed with SIGKILL at random moments and started again (``k12``, ``k13``);
* 1 completes the handshake and then never reads (``s14``): the stalled interface;
* 1 is a process that attacks the port with garbage, connection after connection
  (ids ``g*`` when it gets as far as a hello).

It fails when a healthy interface (every slot but the stalled one and the garbage)
loses, duplicates or reorders a frame, either way; when a staying interface is
disconnected; when a staying interface's last actions do not all arrive; or when the
engine's resident memory, thread count or descriptor count keeps growing (last third of
the run against the first, see ``soakanalysis.TOLERANCES``). It writes ``soak.md`` and
its chart (``--chart``, ``soak.png`` by default) to ``--out``; for the docs:
``nox -s soak -- --minutes 30 --out docs --chart _static/soak.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soakanalysis import (
    FrameOrder,
    Sample,
    chart,
    growths,
    read_sample,
    report,
    tracing_problem,
)
from soaklayout import Layout, layout

from pymasep.comm.core import (
    CommunicationError,
    DecodeError,
    Frame,
    Message,
    SendLimits,
    SocketHandler,
)
from pymasep.comm.server import Server

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SLOW_CONSUMER = re.compile(r"slow", re.IGNORECASE)
"""How the engine's disconnect reason names a peer it cut for not reading."""


@dataclass
class Session:
    """One connection of one interface, as the engine sees it."""

    ident: str
    sent: int = 0
    last_sent: int | None = None
    actions: FrameOrder = field(default_factory=FrameOrder)
    first_sent: int | None = None
    decode_errors: int = 0
    ended: str | None = None


class Tally:
    """What ended connections and peer processes add up to. It is kept instead of them,
    so that the harness's own memory does not grow with the run it measures."""

    LISTED = 20
    """Problems listed by name; the rest are counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.actions = 0
        self.faults = 0
        """Frames lost or reordered, both sides."""
        self.problems: list[str] = []
        self.problem_count = 0
        self.reports = 0
        self.observations = 0
        self.garbage: dict[str, int] = {}
        self.rejoins = 0
        """Churning players that left and joined again inside their process."""

    def _problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < self.LISTED:
            self.problems.append(text)

    def add_session(self, session: Session) -> None:
        """An engine-side connection that ended (or was still open at the end)."""
        with self.lock:
            self.sent += session.sent
            if session.ident[:1] not in "hck":  # the stalled one and the garbage
                return
            order = session.actions
            self.actions += order.received
            self.faults += len(order.losses) + len(order.reorders)
            if not order.intact:
                self._problem(
                    f"engine side, {session.ident}: actions lost {order.losses[:3]} "
                    f"or reordered {order.reorders[:3]}"
                )
            if session.decode_errors:
                self._problem(f"{session.ident}: {session.decode_errors} actions did not decode")

    def add_report(self, slot: str, data: dict[str, Any]) -> None:
        """What a peer process reported when it ended by itself."""
        if data.get("role") == "players":  # several players in one process
            for player in data["players"]:
                self.add_report(f"{slot}/{player['id']}", player)
            with self.lock:
                self.rejoins += data["rejoins"]
            return
        with self.lock:
            if "error" in data:
                self._problem(f"peer {slot} failed: {data['error'].strip().splitlines()[-1]}")
            elif data["role"] == "garbage":
                self.garbage = data["attacks"]
            elif data["role"] == "player":
                self.reports += 1
                self.observations += data["received"]
                self.faults += len(data["losses"]) + len(data["reorders"])
                if data["losses"] or data["reorders"] or data["decode_errors"]:
                    self._problem(
                        f"interface side, {slot}: observations lost {data['losses'][:3]}, "
                        f"reordered {data['reorders'][:3]}, undecodable {data['decode_errors']}"
                    )


class Engine:
    """The game side: what the handler threads and the step loop share."""

    def __init__(self, tally: Tally, slots: Layout) -> None:
        self.slots = slots
        self.lock = threading.Lock()
        self.sessions: dict[SocketHandler, Session] = {}
        self.tally = tally
        self.disconnects: Counter[str] = Counter()
        self.slow_consumers = 0
        self.stalled_ends = 0
        self.steps = 0
        self.over = False
        """Set when the game ends: from then on interfaces leave as they should."""
        self.staying_dropped: list[str] = []

    def session(self, handler: SocketHandler) -> Session:
        with self.lock:
            session = self.sessions.get(handler)
            if session is None:
                session = Session(handler.peer_id or "?")
                if not handler.closed:  # else ended() has run: keep no reference to it
                    self.sessions[handler] = session
            return session

    def received(self, handler: SocketHandler, frame: Frame) -> None:
        session = self.session(handler)
        message = Message("", None, None)
        try:
            message.from_bytes(frame.message)
            step = message.params["step"] if message.params else None
        except (DecodeError, KeyError, TypeError):
            session.decode_errors += 1
            return
        if isinstance(step, int):
            session.actions.add(step)

    def ended(self, handler: SocketHandler, reason: str) -> None:
        with self.lock:
            session = self.sessions.pop(handler, None) or Session(handler.peer_id or "?")
            session.ended = reason
            kind = session.ident[:1]
            self.disconnects[f"{kind}: {_reason_kind(reason)}"] += 1
            if session.ident in self.slots.staying and not self.over:
                self.staying_dropped.append(f"{session.ident}: {reason}")
            if session.ident == self.slots.stalled:
                self.stalled_ends += 1
            if SLOW_CONSUMER.search(reason):
                self.slow_consumers += 1
        self.tally.add_session(session)


def _reason_kind(reason: str) -> str:
    """A disconnect reason without its details (addresses, byte counts)."""
    return reason.split(":")[0]


class EngineHandler(SocketHandler):
    def __init__(self, conn: Any, addr: Any, logger: logging.Logger, engine: Engine) -> None:
        super().__init__(conn, addr, logger)
        self.engine = engine

    def on_receive(self, frame: Frame) -> None:
        self.engine.received(self, frame)

    def on_disconnect(self, reason: str) -> None:
        self.engine.ended(self, reason)


def step_loop(server: Server, engine: Engine, stop: threading.Event, options: Any) -> None:
    """Send each step's observation to every interface connected, at a steady rate."""
    filler = "x" * options.observation_bytes
    period = options.step_ms / 1000
    next_at = time.monotonic()
    while not stop.is_set():
        step = engine.steps
        payload = Message(
            Message.MESSAGE_TYPE_OBSERVATION,
            {"step": step, "observation": filler},
            "engine",
        ).to_bytes()
        frame = Frame(payload)
        for ident in server.connection_ids():
            try:
                handler = server.get_connection(ident)
                session = engine.session(handler)
                if session.first_sent is None:
                    # Before sending: the answer may arrive before send returns.
                    session.first_sent = session.actions.expected = step
                session.last_sent = step
                handler.send_frame_async(frame)
            except CommunicationError:
                continue  # it left between the two calls
            session.sent += 1
        engine.steps += 1
        next_at += period
        stop.wait(max(0.0, next_at - time.monotonic()))


@dataclass
class Peers:
    """The interface processes: start, kill, restart, collect their reports."""

    port: int
    work: Path
    rng: random.Random
    deadline: float
    tally: Tally
    slots: Layout
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    reports: dict[str, Path] = field(default_factory=dict)
    started: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    count: int = 0

    def start(self, slot: str, role: str, *extra: str, seconds: float | None = None) -> None:
        self.count += 1
        report_path = self.work / f"{slot}-{self.count}.json"
        if seconds is None:  # bounded even if the engine never ends the game
            seconds = max(1.0, self.deadline - time.monotonic() + 60)
        command = [
            sys.executable,
            str(HERE / "peer.py"),
            role,
            "--port",
            str(self.port),
            "--id",
            slot,
            "--max-seconds",
            f"{seconds:.0f}",
            "--seed",
            str(self.rng.randrange(2**31)),
            "--report",
            str(report_path),
            *extra,
        ]
        with (self.work / f"{slot}-{self.count}.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.running[slot] = process
        self.reports[slot] = report_path
        self.started[slot[:1]] += 1

    def start_player(self, slot: str) -> None:
        """Start the player process ``slot``: one player, or several sharing it."""
        ids = self.slots.processes[slot]
        if len(ids) > 1:
            self.start(slot, "players", "--ids", ",".join(ids))
            return
        churning = slot in self.slots.churning
        leave = ["--leave-after", str(self.rng.randrange(25, 250))] if churning else []
        self.start(slot, "player", *leave)

    def reap(self) -> list[str]:
        """Collect the processes that have ended; return their slots."""
        ended = [slot for slot, process in self.running.items() if process.poll() is not None]
        for slot in ended:
            self.running.pop(slot)
            path = self.reports.pop(slot)
            if path.exists():
                self.tally.add_report(slot, json.loads(path.read_text()))
        return ended

    def kill(self, slot: str) -> None:
        process = self.running.get(slot)
        if process is not None and process.poll() is None:
            process.kill()  # SIGKILL, to this process's own child only
            process.wait(5)
            self.kills[slot[:1]] += 1
            self.reports.pop(slot, None)
            self.running.pop(slot)

    def stop_all(self, timeout: float) -> None:
        """Wait for the players to end on their own, then kill whatever is left."""
        end = time.monotonic() + timeout
        for process in list(self.running.values()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, end - time.monotonic()))
        self.reap()
        for slot in list(self.running):
            self.kill(slot)


def run(options: argparse.Namespace) -> int:
    out: Path = options.out or Path(tempfile.mkdtemp(prefix="pymasep-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    # The peers' logs and reports: kept only when the run fails.
    work = Path(tempfile.mkdtemp(prefix="pymasep-soak-peers-"))
    rng = random.Random(options.seed)
    seconds = options.minutes * 60
    slots = options.slots
    tally = Tally()
    engine = Engine(tally, slots)
    failures: list[str] = []
    notes: list[str] = []
    limits, limits_text = _send_limits(options.send_limit_mib)
    # Room for every interface, and for the garbage process's connections beside them.
    connections = max(64, 2 * options.interfaces)
    server = Server(
        "engine", connections, EngineHandler, (engine,), HOST, 0, handshake_timeout=2.0, **limits
    )
    server.wait_connection()
    assert server.port is not None
    peers = Peers(server.port, work, rng, time.monotonic() + seconds + 30, tally, slots)
    stop = threading.Event()
    stepper = threading.Thread(target=step_loop, args=(server, engine, stop, options))
    samples: list[Sample] = []
    try:
        for slot in slots.processes:
            peers.start_player(slot)
        players = len(slots.staying + slots.churning + slots.killed)
        if not server.wait_for_connections(players, timeout=60):
            failures.append(f"only {len(server.connection_ids())} interfaces joined within 60 s")
        if not options.no_stalled:
            peers.start(slots.stalled, "stalled")
        peers.start(slots.garbage, "garbage", seconds=seconds)
        stepper.start()
        started = time.monotonic()
        end = started + seconds
        next_sample = started
        next_kill = started + rng.uniform(2, 6)
        stalls_handled = 0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                samples.append(read_sample(now - started, len(server.connection_ids())))
                next_sample += options.sample_seconds
            for slot in peers.reap():
                ids = slots.processes.get(slot, [])
                if ids and (ids[0] in slots.killed or (len(ids) == 1 and slot in slots.churning)):
                    peers.start_player(slot)
                elif ids:
                    failures.append(f"staying interfaces {ids} ended before the end of the run")
            with engine.lock:
                cut = engine.stalled_ends
            if cut > stalls_handled:
                # The engine cut the stalled interface: stall again, as a new process.
                stalls_handled = cut
                peers.kill(slots.stalled)
                peers.start(slots.stalled, "stalled")
            if now >= next_kill:
                victim = rng.choice(slots.killed_slots)
                peers.kill(victim)
                peers.start_player(victim)
                next_kill = now + rng.uniform(2, 6)
            time.sleep(0.1)  # the orchestrator's tick: it polls processes, not a sync
        stop.set()
        stepper.join(10)
        if not options.no_stalled:
            notes.append(_stalled_queue(server, slots.stalled))
        last_step = engine.steps - 1
        _drain(server, engine, last_step, failures)
        engine.over = True
        end_game = Frame(Message(Message.MESSAGE_TYPE_END_GAME, None, "engine").to_bytes())
        for ident in server.connection_ids():
            with contextlib.suppress(CommunicationError):
                server.send_frame_to(ident, end_game)
        peers.kill(slots.stalled)
        peers.stop_all(timeout=20)
    finally:
        stop.set()
        server.close()
        for slot in list(peers.running):
            peers.kill(slot)
    options.limits_text = limits_text
    return _conclude(options, out, engine, peers, samples, failures, notes, seconds)


def _send_limits(soft_mib: float) -> tuple[dict[str, Any], str]:
    """The engine's limits on what waits for a slow interface.

    Limits far below the defaults, so that the stalled interface is cut well within a
    short run and its first and last thirds both see stalls come and go: under the
    default policy ("wait"), a send waits once four times ``soft_mib`` MiB wait, and the
    interface is cut once it took no byte for the drain timeout; under "disconnect", it
    is cut once more than ``soft_mib`` MiB have waited for 2 s (or four times that at
    once). 0 keeps the Server's defaults.
    """
    if soft_mib <= 0:
        return {}, "the Server's defaults"
    soft = int(soft_mib * 2**20)
    limits = SendLimits(hard_limit=4 * soft, soft_limit=soft, soft_seconds=2.0)
    if limits.policy == "wait":  # the default policy: the soft limit does not apply
        return {"send_limits": limits}, (
            f"policy 'wait' (the default): a send waits once {4 * soft_mib:g} MiB wait, and "
            f"the interface is cut once it took no byte for {limits.drain_timeout:g} s"
        )
    return {"send_limits": limits}, (
        f"cut once more than {soft_mib:g} MiB wait for 2 s, or {4 * soft_mib:g} MiB at once"
    )


def _stalled_queue(server: Server, stalled: str) -> str:
    """What the engine holds for the stalled interface at the end, if still connected."""
    try:
        handler = server.get_connection(stalled)
    except CommunicationError:
        return "At the end the stalled interface was not connected."
    queued = handler.stats.bytes_queued
    return (
        f"At the end the engine held {queued / 2**20:.1f} MiB queued for the stalled "
        "interface (SocketHandler.stats)."
    )


def _drain(server: Server, engine: Engine, last_step: int, failures: list[str]) -> None:
    """Wait (bounded) until every staying interface has answered the last step."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        behind = []
        for ident in engine.slots.staying:
            try:
                session = engine.session(server.get_connection(ident))
            except CommunicationError:
                continue
            if session.last_sent is not None and session.actions.expected != session.last_sent + 1:
                behind.append(ident)
        if not behind:
            return
        time.sleep(0.05)  # polling a bounded wait for in-flight actions
    failures.append(f"staying interfaces never answered their last observations: {behind}")


def _conclude(
    options: argparse.Namespace,
    out: Path,
    engine: Engine,
    peers: Peers,
    samples: list[Sample],
    failures: list[str],
    notes: list[str],
    seconds: float,
) -> int:
    tally = engine.tally
    for session in list(engine.sessions.values()):  # still connected at the end
        tally.add_session(session)
    failures += tally.problems
    if tally.problem_count > len(tally.problems):
        failures.append(f"... and {tally.problem_count - len(tally.problems)} more like these")
    for dropped in engine.staying_dropped:
        failures.append(f"a staying interface was disconnected during the game: {dropped}")
    churned = max(0, peers.started["c"] - len(engine.slots.churning)) + tally.rejoins
    if peers.kills["k"] == 0 or churned == 0:
        failures.append("the run was too short for churn and kills: give it more minutes")
    if len(samples) < 6:
        failures.append(f"{len(samples)} samples: too few to judge growth")
        results = []
    else:
        results = growths(samples)
        for item in results:
            if item.keeps_growing:
                failures.append(
                    f"{item.metric} keeps growing: {item.first:.1f} -> {item.middle:.1f} -> "
                    f"{item.last:.1f} (tolerance {item.tolerance:g})"
                )
    if options.no_stalled:
        notes.append("Run without the stalled interface (--no-stalled).")
    elif engine.slow_consumers:
        notes.append(
            f"The engine cut {engine.slow_consumers} connection(s) as slow consumers "
            f"(stalled interface: {engine.stalled_ends}); expected for the "
            "stalled interface, which then stalls again as a new process."
        )
    else:
        notes.append(
            "The engine never cut the stalled interface: what it sends to it stays in the "
            "engine's memory, which grows for as long as the interface stays connected "
            "(until the engine disconnects slow consumers)."
        )
    if tally.garbage:
        attacks = ", ".join(f"{name} {count}" for name, count in sorted(tally.garbage.items()))
        notes.append(f"Garbage sent: {attacks}.")
    kills = peers.kills
    traffic = [
        ("steps (observations to each interface connected)", str(engine.steps)),
        ("observations sent, all interfaces", str(tally.sent)),
        ("actions received from healthy interfaces", str(tally.actions)),
        (
            f"observations received by the {tally.reports} interfaces that reported",
            str(tally.observations),
        ),
        ("frames lost or reordered", str(tally.faults)),
        (
            "interface processes started (staying/churning/killed/stalled/garbage)",
            "/".join(str(peers.started[k]) for k in "hcksg"),
        ),
        (
            "processes killed with SIGKILL (killed slots/stalled/others at the end)",
            "/".join(
                str(n) for n in (kills["k"], kills["s"], kills.total() - kills["k"] - kills["s"])
            ),
        ),
        (
            "disconnects seen by the engine",
            ", ".join(f"{k} {v}" for k, v in sorted(engine.disconnects.items())),
        ),
    ]
    if engine.slots.shared:
        traffic.insert(
            5,
            (
                "churning players that left and joined again inside their process",
                str(tally.rejoins),
            ),
        )
    settings = [
        (
            "duration",
            f"{options.minutes:g} min ({len(samples)} samples, every {options.sample_seconds:g} s)",
        ),
        (
            "interfaces",
            engine.slots.describe()
            + (", no stalled (--no-stalled)" if options.no_stalled else ", 1 stalled")
            + ", 1 sending garbage",
        ),
        (
            "step",
            f"every {options.step_ms:g} ms, an observation of {options.observation_bytes} bytes",
        ),
        ("engine's send limits", options.limits_text),
        ("seed", str(options.seed)),
        (
            "machine",
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}",
        ),
        ("date", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
    ]
    verdict = not failures
    if samples:
        (out / options.chart).parent.mkdir(parents=True, exist_ok=True)
        chart(
            samples,
            out / options.chart,
            f"Soak run, {options.minutes:g} min: {'PASS' if verdict else 'FAIL'}",
        )
    page = report(
        verdict=verdict,
        failures=failures,
        settings=settings,
        traffic=traffic,
        notes=notes,
        results=results,
        chart_name=options.chart.as_posix(),
        interfaces=(
            f"{options.interfaces} interfaces, the players in {len(engine.slots.processes)} "
            "processes"
            if engine.slots.shared
            else f"{options.interfaces} interfaces, each a process"
        ),
        arguments=(" --interfaces " + str(options.interfaces) if options.interfaces != 16 else "")
        + (f" --processes {options.processes}" if options.processes else ""),
    )
    (out / "soak.md").write_text(page)
    print(page)
    print(f"\nreport: {out / 'soak.md'}\nchart:  {out / options.chart}")
    if verdict:
        shutil.rmtree(peers.work, ignore_errors=True)
    else:
        print(f"the peers' logs: {peers.work}")
    return 0 if verdict else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument(
        "--out", type=Path, help="folder for soak.md (default: a new temporary one)"
    )
    parser.add_argument(
        "--chart", type=Path, default=Path("soak.png"), help="the chart's path, under --out"
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--interfaces", type=int, default=16, help="interface slots, stalled and garbage included"
    )
    parser.add_argument(
        "--processes",
        type=int,
        help="processes the players share (default: one each); e.g. --interfaces 64 --processes 4",
    )
    parser.add_argument("--step-ms", type=float, default=40.0)
    parser.add_argument("--observation-bytes", type=int, default=16384)
    parser.add_argument("--sample-seconds", type=float)
    parser.add_argument(
        "--send-limit-mib",
        type=float,
        default=4.0,
        help="engine's soft send limit (0: the Server's defaults), where it has send limits",
    )
    parser.add_argument(
        "--no-stalled", action="store_true", help="diagnosis: run without the stalled interface"
    )
    options = parser.parse_args(argv)
    problem = tracing_problem()
    if problem:
        parser.error(problem)
    try:
        options.slots = layout(options.interfaces, options.processes)
    except ValueError as error:
        parser.error(str(error))
    if options.sample_seconds is None:
        # About 60 samples in a short run, one every 5 s in a long one.
        options.sample_seconds = min(5.0, max(0.5, options.minutes * 60 / 60))
    return run(options)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
