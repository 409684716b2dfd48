"""Test-side helpers: start a pymasep 0.2 peer (:mod:`peer02`) and talk to it.

The peer runs in pymasep 0.2's own virtualenv, whose interpreter the ``interop`` nox
session passes in ``PYMASEP02_PYTHON``; the tests run in ours. Every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEER02 = HERE / "peer02.py"
PYTHON_VARIABLE = "PYMASEP02_PYTHON"
WAIT = 10.0
"""Seconds any single expected event may take."""


def python02() -> str:
    """The interpreter of pymasep 0.2's virtualenv."""
    python = os.environ.get(PYTHON_VARIABLE)
    if not python:
        raise RuntimeError(
            f"{PYTHON_VARIABLE} is not set: it names a Python with pymasep 0.2 installed "
            f"(nox -s interop sets it up)"
        )
    return python


class Peer:
    """A running :mod:`peer02` process: send it orders, wait for its events.

    Args:
        args: The peer's arguments (``["server"]``, ``["client", "--id", ...]``).
        prefix: A command to run it under (``["ip", "netns", "exec", "ns1"]``).
        lifetime: Seconds after which the peer ends itself, whatever happens.
    """

    def __init__(
        self, args: Sequence[str], prefix: Sequence[str] = (), lifetime: float = 120.0
    ) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="peer02-")  # 0.2 writes logs/
        self._stderr = open(Path(self._workdir.name) / "stderr.txt", "w+b")  # noqa: SIM115
        env = dict(os.environ, PYGAME_HIDE_SUPPORT_PROMPT="1", SDL_VIDEODRIVER="dummy")
        env.pop("PYTHONPATH", None)
        command = [*prefix, python02(), str(PEER02), *args, "--lifetime", str(lifetime)]
        self.process = subprocess.Popen(
            command,
            cwd=self._workdir.name,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "garbage", "line": line.decode(errors="replace")})
        self.events.put({"event": "exited"})

    def order(self, op: str, **fields: Any) -> None:
        """Send the peer an order (see :mod:`peer02`)."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        self.process.stdin.flush()

    def send(self, payload: bytes, **fields: Any) -> None:
        self.order("send", b64=base64.b64encode(payload).decode("ascii"), **fields)

    def expect(self, *names: str, timeout: float = WAIT) -> dict[str, Any]:
        """Return the next event named one of ``names``; fail after ``timeout`` or on a
        ``crashed``/``exited`` event, with what the peer printed."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = self.events.get(timeout=max(0.0, remaining))
            except queue.Empty:
                raise AssertionError(
                    f"pymasep 0.2 peer: no {'/'.join(names)} event within {timeout} s\n"
                    + self.report()
                ) from None
            self.seen.append(event)
            if event["event"] in names:
                return event
            if event["event"] in ("crashed", "exited", "garbage"):
                raise AssertionError(
                    f"pymasep 0.2 peer ended while waiting for {'/'.join(names)}\n" + self.report()
                )

    def drain(self, settle: float = 0.2) -> list[dict[str, Any]]:
        """Events that arrive within ``settle`` seconds of each other."""
        found = []
        with contextlib.suppress(queue.Empty):
            while True:
                found.append(self.events.get(timeout=settle))
        self.seen.extend(found)
        return found

    def report(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace")[-4000:]
        return f"events so far: {self.seen[-20:]}\n--- peer stderr\n{err}"

    def close(self, timeout: float = 5.0) -> int:
        """Ask the peer to exit; kill it if it does not. Returns its exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.order("exit")
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._reader.join(timeout)
        self._stderr.close()
        self._workdir.cleanup()
        return self.process.returncode

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
