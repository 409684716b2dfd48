"""Run a game as users deploy one: an engine process and interface processes.

:class:`Match` copies ``engine.py`` and ``interface.py`` into directories of their own,
each with a copy of ``rules.py`` and ``process_common.py`` (nothing else of this tree is
reachable from them), and starts them with the interpreters it is given: in ``nox -s
games`` a virtualenv with only pymasep-comm-server (and core) for the engine, one with
only pymasep-comm-client (and core) for the interfaces, both installed from the built
wheels. It reads the JSON lines each process prints (its transcript), lets the caller
wait for events, kill a process, and kills whatever is left when it ends. Every wait is
bounded.

This module needs only the standard library: the tests that use it run in a virtualenv
with pytest and nothing of pymasep-comm. Run as a script, it plays one game and prints
the transcripts as JSON (the discovery test runs it inside a network namespace).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ENGINE_VARIABLE = "GAMES_ENGINE_PYTHON"
INTERFACE_VARIABLE = "GAMES_INTERFACE_PYTHON"
WAIT = 20.0
"""Seconds that any one expected event may take."""

Event = dict[str, Any]
Listener = Callable[[str, Event], None]


class Process:
    """A running engine or interface: its transcript, read as it comes."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        cwd: Path,
        env: dict[str, str],
        listener: Listener | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.events: list[Event] = []
        self._changed = threading.Condition()
        self._listener = listener
        self._stderr = open(cwd / f"{name}.stderr", "w+b")  # noqa: SIM115 -- closed in stop()
        self.popen = subprocess.Popen(
            self.command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {"event": "garbage", "line": raw.decode(errors="replace")}
            event["received_at"] = time.monotonic()
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
            if self._listener is not None:
                self._listener(self.name, event)
        with self._changed:
            self.events.append({"event": "eof", "received_at": time.monotonic()})
            self._changed.notify_all()

    def find(self, kind: str, **match: Any) -> list[Event]:
        with self._changed:
            return [e for e in self.events if e["event"] == kind and _matches(e, match)]

    def wait_event(self, kind: str, timeout: float = WAIT, **match: Any) -> Event:
        """The first event ``kind`` with these fields; fail after ``timeout`` or at EOF
        (:func:`explained` adds the transcripts to the failure)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events:
                    if event["event"] == kind and _matches(event, match):
                        return event
                if self.events and self.events[-1]["event"] == "eof":
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        code = self.popen.poll()
        ended = "" if code is None else f" (it exited with {code})"
        raise AssertionError(f"{self.name}: no {kind} event {match or ''} in {timeout} s{ended}")

    def wait(self, timeout: float = WAIT) -> int:
        """Wait for the exit code (and the whole transcript)."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still runs after {timeout} s") from None
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGKILL)

    def stop(self) -> None:
        """Kill it if it still runs; reap it."""
        if self.popen.poll() is None:
            self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._reader.join(5)
        self._stderr.close()

    def stderr(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def report(self) -> str:
        with self._changed:
            lines = [json.dumps(_public(e)) for e in self.events]
        return (
            f"--- {self.name}: {' '.join(self.command)}\n"
            + "\n".join(lines[-40:])
            + f"\n--- {self.name} stderr\n{self.stderr()[-3000:]}"
        )

    def transcript(self) -> list[Event]:
        with self._changed:
            return [_public(e) for e in self.events]


def _matches(event: Event, match: dict[str, Any]) -> bool:
    return all(event.get(key) == value for key, value in match.items())


def _public(event: Event) -> Event:
    return {k: v for k, v in event.items() if k != "received_at"}


def interpreters() -> tuple[str, str]:
    """The engine's and the interfaces' interpreters (``nox -s games`` sets them)."""
    engine = os.environ.get(ENGINE_VARIABLE)
    interface = os.environ.get(INTERFACE_VARIABLE)
    if not engine or not interface:
        raise RuntimeError(
            f"{ENGINE_VARIABLE} and {INTERFACE_VARIABLE} name the interpreters of the engine's "
            f"virtualenv (pymasep-comm-server) and of the interfaces' (pymasep-comm-client): "
            f"nox -s games sets them up"
        )
    return engine, interface


class Match:
    """One game: an engine and its interfaces, each a process. A context manager: every
    process still running when it ends is killed.

    Args:
        engine_python: Interpreter of the engine (with pymasep-comm-server).
        interface_python: Interpreter of the interfaces (with pymasep-comm-client).
        workdir: Where to deploy the scripts; a temporary directory by default.
        listener: Called with (process name, event) for every transcript line, as it
            comes (in the reading thread of that process).
    """

    def __init__(
        self,
        engine_python: str,
        interface_python: str,
        workdir: Path | None = None,
        listener: Listener | None = None,
    ) -> None:
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="pymasep-games-")
        root = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.dirs = {"engine": root / "engine-host", "interface": root / "interface-host"}
        for side, script in (("engine", "engine.py"), ("interface", "interface.py")):
            self.dirs[side].mkdir(parents=True, exist_ok=True)
            for name in (script, "rules.py", "process_common.py"):
                shutil.copy2(HERE / name, self.dirs[side] / name)
        self.pythons = {"engine": engine_python, "interface": interface_python}
        self.listener = listener
        self.processes: dict[str, Process] = {}
        env = dict(os.environ)
        for variable in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
            env.pop(variable, None)
        env["PYTHONUNBUFFERED"] = "1"
        self.env = env

    def __enter__(self) -> Match:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self.processes.values():
            process.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _start(self, name: str, side: str, args: Sequence[str]) -> Process:
        if name in self.processes:
            raise ValueError(f"{name} already runs")
        script = self.dirs[side] / f"{side}.py"
        # -s: no user site-packages; the script's own directory is on sys.path (rules.py).
        command = [self.pythons[side], "-s", str(script), *args]
        process = Process(name, command, self.dirs[side], self.env, self.listener)
        self.processes[name] = process
        return process

    def start_engine(self, interfaces: int, *args: str, name: str = "engine") -> Process:
        """Start the engine and wait until it listens (its ``listening`` event)."""
        engine = self._start(name, "engine", ["--id", name, "--interfaces", str(interfaces), *args])
        engine.wait_event("listening")
        return engine

    def start_interface(
        self, ident: str, role: str, game: str, *args: str, engine: str | None = "engine"
    ) -> Process:
        """Start an interface; with ``engine`` it connects to that engine's port on
        loopback, else (``engine=None``) it finds the engine by discovery."""
        address: list[str] = []
        if engine is not None:
            port = self.processes[engine].wait_event("listening")["port"]
            address = ["--host", "127.0.0.1", "--port", str(port)]
        command = ["--id", ident, "--role", role, "--game", game, *address, *args]
        return self._start(ident, "interface", command)

    def finish(self, timeout: float = 60.0) -> dict[str, int]:
        """Wait for every process to exit; return their exit codes."""
        deadline = time.monotonic() + timeout
        return {
            name: process.wait(max(0.1, deadline - time.monotonic()))
            for name, process in self.processes.items()
        }

    def report(self) -> str:
        return "\n".join(process.report() for process in self.processes.values())

    def transcripts(self) -> dict[str, list[Event]]:
        return {name: process.transcript() for name, process in self.processes.items()}


@contextlib.contextmanager
def explained(match: Match) -> Iterator[None]:
    """Add every transcript and stderr to an assertion that fails inside the block."""
    try:
        yield
    except AssertionError as error:
        raise AssertionError(f"{error}\n{match.report()}") from None


# -- a game run as a script, for the network-namespace test --------------------------


def discovery_game(game: str, actors: list[str], observers: list[str]) -> dict[str, Any]:
    """Play a game whose interfaces find the engine by discovery: no address, no
    discovery interface named, the engine listening on every address. Only for a network
    namespace holding nothing but ``lo`` (the engine and interfaces refuse otherwise)."""
    engine_python, interface_python = interpreters()
    with Match(engine_python, interface_python) as match, explained(match):
        count = len(actors) + len(observers)
        match.start_engine(count, "--bind", "", "--discovery")
        for ident in actors:
            match.start_interface(ident, "Actor", game, engine=None)
        for ident in observers:
            match.start_interface(ident, "Observer", game, engine=None)
        codes = match.finish()
        return {"codes": codes, "transcripts": match.transcripts()}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 4 or argv[0] != "discovery-game":
        print("usage: games_harness.py discovery-game GAME ACTOR,... OBSERVER,...", file=sys.stderr)
        return 2
    _, game, actors, observers = argv
    result = discovery_game(game, actors.split(","), [o for o in observers.split(",") if o])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
