"""Play one game: a pymasep engine and a pymasep interface, each a process of its own.

Run inside a network namespace that the caller made (pymasep's Engine joins a multicast
group at start): ``play.py PYTHON GAME CASE WORKDIR [--set KEY=VALUE ...]``, where PYTHON
has pymasep installed, CASE is one of :data:`CASES` and WORKDIR an empty folder (each
process writes its logs/ under it). ``--config FILE`` gives both processes pymasep-comm's
settings file (PYMASEP_COMM_CONFIG), ``--interface-env NAME=VALUE`` sets a variable for
the interface alone, ``--interface-id ID`` names the interface. In the ``refused`` case
the engine must refuse the interface: the report holds the line of the engine's log that
says so. In the ``reset`` case the connection is killed mid-game with ``ss -K`` (as a NAT
or a Wi-Fi handover resets it); it resumes and the game goes on to its end. Prints, as
its last line, a JSON report of both sides: exit codes, stdout, stderr, the observations
the engine logged as sent and those the interface got, and pymasep's log files that hold
a traceback.

``--record DIR`` makes both processes record (``PYMASEP_COMM_RECORD``). Case ``replay``
plays the engine's recording ``--recording FILE`` to a fresh interface instead of
running an engine (``python -m pymasep.comm.server replay --any-id``; pymasep's ids are
new at each run), the interface launched with ``--interface-option``s.

Standard library only: it runs under any interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from pymasep.comm.core.testing.processes import start_in_group

HERE = Path(__file__).resolve().parent
LAUNCH = HERE / "launch.py"
PORT = 60123
CASES = ("normal", "slow", "discovery", "killed", "refused", "replay", "reset")
START_TIMEOUT = 90.0  # importing pymasep (pygame, opencv, scipy...) on a busy machine
GAME_TIMEOUT = 150.0
# A killed process's kernel closes its socket (an end of stream: noticed at once) or,
# with bytes still unread in it, resets it, which the engine cannot tell from a network
# that broke: it then holds the connection for its resume window (30 s by default).
KILLED_NOTICED_WITHIN = 45.0
KILL_AFTER = 3  # observations the interface gets before it is killed (or its connection)


class Child:
    """A process whose stdout and stderr lines are collected by threads as they come."""

    def __init__(self, name: str, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self.process = start_in_group(command, cwd=cwd, env=env)
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._news: queue.Queue[tuple[str, str]] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, label), daemon=True)
            for label, stream in (("stdout", self.process.stdout), ("stderr", self.process.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, label: str) -> None:
        for line in stream:
            self.lines[label].append(line.rstrip("\n"))
            self._news.put((label, line))
        self._news.put((label, ""))  # end of the stream

    def wait_line(self, label: str, pattern: str, timeout: float, count: int = 1) -> re.Match[str]:
        """Wait until ``count`` lines of ``label`` (stdout or stderr) match ``pattern``;
        return the last of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for line in list(self.lines[label]) if (m := re.search(pattern, line))]
            if len(found) >= count:
                return found[count - 1]
            ended = self.process.poll() is not None and not any(r.is_alive() for r in self._readers)
            remaining = deadline - time.monotonic()
            if ended or remaining <= 0:
                break
            try:
                self._news.get(timeout=remaining)
            except queue.Empty:
                break
        why = f"exited with {self.process.returncode}" if ended else f"within {timeout} s"
        raise TimeoutError(f"{self.name}: no {label} line matching {pattern!r}: {why}")

    def wait(self, timeout: float) -> int | None:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        for reader in self._readers:
            reader.join(5)

    def report(self, code: int | None) -> dict[str, Any]:
        return {"returncode": code, "stdout": self.lines["stdout"], "stderr": self.lines["stderr"]}


def _tracebacks(folder: Path) -> list[str]:
    """pymasep's log files under ``folder`` that hold a traceback."""
    found = []
    for log in sorted(folder.glob("logs/*")):
        if log.is_file() and "Traceback" in log.read_text(errors="replace"):
            found.append(str(log))
    return found


def _sent_observations(folder: Path) -> int:
    """The observations pymasep's Engine logged as sent (its DEBUG log)."""
    return sum(
        log.read_text(errors="replace").count("Send observation :")
        for log in folder.glob("logs/Engine-*.log")
    )


def _environment() -> dict[str, str]:
    return dict(
        os.environ,
        SDL_VIDEODRIVER="dummy",
        SDL_AUDIODRIVER="dummy",
        PYGAME_HIDE_SUPPORT_PROMPT="1",
        PYTHONPATH=str(HERE),
    )


def replay(
    python: str,
    game: str,
    recording: Path,
    workdir: Path,
    settings: list[str],
    interface_options: list[str],
) -> dict[str, Any]:
    """The engine's side of ``recording`` replayed to a fresh interface."""
    env = _environment()
    folder = workdir / "interface"
    folder.mkdir(parents=True, exist_ok=True)
    command = [python, "-m", "pymasep.comm.server", "replay", str(recording), "--any-id"]
    command += [f"--port={PORT}", "--speed=max", "--timeout=30", "--connect-timeout=90"]
    replayer = Child("replay", command, workdir, env)
    interface: Child | None = None
    codes: dict[str, int | None] = {"replay": None, "interface": None}
    try:
        replayer.wait_line("stdout", r"waiting for", START_TIMEOUT)
        options = [f"--set={setting}" for setting in settings]
        where = ["--host=127.0.0.1", f"--port={PORT}"]
        interface = Child(
            "interface",
            [python, str(LAUNCH), "interface", game, *where, *interface_options, *options],
            folder,
            env,
        )
        codes["replay"] = replayer.wait(GAME_TIMEOUT)
        # A diverging interface may wait for the engine for ever: it gets a moment.
        codes["interface"] = interface.wait(15)
    finally:
        for child in (interface, replayer):
            if child is not None and child.process.poll() is None:
                child.kill()
    return {
        "replay": replayer.report(codes["replay"]),
        "interface": interface.report(codes["interface"]) if interface else None,
    }


def play(
    python: str,
    game: str,
    case: str,
    workdir: Path,
    settings: list[str],
    config: Path | None = None,
    interface_env: dict[str, str] | None = None,
    interface_id: str | None = None,
    record: Path | None = None,
) -> dict[str, Any]:
    env = _environment()
    if config is not None:
        env["PYMASEP_COMM_CONFIG"] = str(config)
    if record is not None:
        env["PYMASEP_COMM_RECORD"] = str(record)
    options = [f"--set={setting}" for setting in settings]
    folders = {side: workdir / side for side in ("engine", "interface")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    engine = Child(
        "engine",
        [python, str(LAUNCH), "engine", game, f"--port={PORT}", "--log-level=DEBUG", *options],
        folders["engine"],
        env,
    )
    interface: Child | None = None
    result: dict[str, Any] = {"case": case, "game": game}
    codes: dict[str, int | None] = {"engine": None, "interface": None}
    try:
        engine.wait_line("stdout", r"^engine ready", START_TIMEOUT)
        where = [] if case == "discovery" else ["--host=127.0.0.1", f"--port={PORT}"]
        # reset: slow, so that the game is still going on when its connection is killed.
        slow = ["--slow=0.1"] if case in ("slow", "reset") else []
        named = [f"--id={interface_id}"] if interface_id else []
        interface = Child(
            "interface",
            [python, str(LAUNCH), "interface", game, *where, *slow, *named, *options],
            folders["interface"],
            {**env, **(interface_env or {})},
        )
        if case == "refused":
            codes["interface"] = interface.wait(START_TIMEOUT)
            refused = engine.wait_line("stderr", r"refusing .*authentication failed", 30)
            result["engine_refused"] = refused.string
            engine.kill()  # it waits for an interface for ever
        else:
            _play(engine, interface, case, result, codes)
    finally:
        for child in (interface, engine):
            if child is not None and child.process.poll() is None:
                child.kill()
    return _finish(result, engine, interface, codes, folders, started)


def _play(
    engine: Child,
    interface: Child,
    case: str,
    result: dict[str, Any],
    codes: dict[str, int | None],
) -> None:
    """Play the game to its end, or kill the interface in the middle (case killed); in
    case reset, kill its connection in the middle and play on."""
    interface_id = interface.wait_line("stdout", r"^interface ready (\S+)", START_TIMEOUT)[1]
    result["interface_id"] = interface_id
    game_started = time.monotonic()
    if case == "reset":
        interface.wait_line("stdout", r"^observation \d+$", 60, count=KILL_AFTER)
        result["killed"] = _reset_connections()
        # The engine saw it break: its communication logs that it may resume.
        result["engine_broke"] = engine.wait_line("stderr", r"broke .*may resume", 30).string
    if case == "killed":
        interface.wait_line("stdout", r"^observation \d+$", 60, count=KILL_AFTER)
        interface.kill()
        # The engine notices: its communication logs the lost connection.
        noticed = engine.wait_line(
            "stderr", rf"{re.escape(interface_id)}.*disconnected", KILLED_NOTICED_WITHIN
        )
        result["engine_noticed"] = noticed.string
        engine.kill()  # pymasep's engine waits for the gone player's action forever
    else:
        codes["interface"] = interface.wait(GAME_TIMEOUT)
        # From the interface's start to its end: what a player waits for.
        result["game_seconds"] = time.monotonic() - game_started
        codes["engine"] = engine.wait(GAME_TIMEOUT)


def _reset_connections() -> int:
    """Kill every connection to the engine's port (``ss -K``: the interface gets
    ECONNABORTED, the engine ECONNRESET); return how many were established."""
    where = ["dst", "127.0.0.1", "dport", "=", str(PORT)]
    done = subprocess.run(["ss", "-K", *where], capture_output=True, text=True, timeout=10)
    return sum(1 for line in done.stdout.splitlines() if "ESTAB" in line)


def _finish(
    result: dict[str, Any],
    engine: Child,
    interface: Child | None,
    codes: dict[str, int | None],
    folders: dict[str, Path],
    started: float,
) -> dict[str, Any]:
    """Complete the report once both processes have ended."""
    result["seconds"] = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # both processes, once ended
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["engine"] = engine.report(codes["engine"])
    result["interface"] = interface.report(codes["interface"]) if interface else None
    result["sent"] = _sent_observations(folders["engine"])
    result["log_tracebacks"] = _tracebacks(folders["engine"]) + _tracebacks(folders["interface"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("python")
    parser.add_argument("game")
    parser.add_argument("case", choices=CASES)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--set", action="append", default=[], dest="settings")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--interface-env", action="append", default=[])
    parser.add_argument("--interface-id")
    parser.add_argument("--record", type=Path, default=None)
    parser.add_argument("--recording", type=Path, default=None)
    parser.add_argument("--interface-option", action="append", default=[])
    args = parser.parse_args()
    if args.case == "replay":
        report = replay(
            args.python,
            args.game,
            args.recording,
            args.workdir,
            args.settings,
            args.interface_option,
        )
        print(json.dumps(report))
        return
    interface_env = dict(item.split("=", 1) for item in args.interface_env)
    report = play(
        args.python,
        args.game,
        args.case,
        args.workdir,
        args.settings,
        args.config,
        interface_env,
        args.interface_id,
        args.record,
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
