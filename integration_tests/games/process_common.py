"""What the engine and the interfaces share: their transcript, and the checks they make
of the process they run in. Copied beside ``engine.py`` and ``interface.py`` with
``rules.py`` (standard library and lxml only)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from typing import Any

from lxml import etree

EXIT_LIFETIME = 3
"""The exit status of a process that ran longer than its ``--lifetime``."""


class LifetimeExceeded(Exception):  # noqa: N818 -- an event rather than an error
    """The process ran longer than its ``--lifetime``."""


@contextlib.contextmanager
def lifetime(seconds: int) -> Iterator[None]:
    """Raise LifetimeExceeded in the main thread after ``seconds``; transcribe it."""

    def expire(signum: int, frame: object) -> None:
        raise LifetimeExceeded

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    except LifetimeExceeded:
        emit("lifetime_exceeded", seconds=seconds)
        raise
    finally:
        signal.alarm(0)


def emit(event: str, **fields: Any) -> None:
    """Print one transcript event, a JSON object on a line of its own."""
    print(json.dumps({"event": event, **fields}), flush=True)


def distributions() -> dict[str, str]:
    """The pymasep distributions installed here, with their versions."""
    found = {}
    for name in ("pymasep-comm-core", "pymasep-comm-server", "pymasep-comm-client", "pymasep"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def threads_left(within: float) -> tuple[list[str], list[str]]:
    """The threads still running now, and those still running ``within`` seconds later.

    A connection that ended before close() may still be finishing its callbacks in its
    own thread (close() joins only the connections it closes itself).
    """

    def others() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t is not threading.main_thread()]

    now = [t.name for t in others()]
    deadline = time.monotonic() + within
    for thread in others():
        thread.join(max(0.0, deadline - time.monotonic()))
    return now, [t.name for t in others()]


def only_loopback_here() -> bool:
    """True inside a network namespace whose only interface is ``lo`` (made by a test)."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def digest(state: etree._Element) -> str:
    """A short digest of a state, the same on both sides whatever the serialization."""
    return hashlib.sha256(etree.tostring(state, method="c14n")).hexdigest()[:16]
