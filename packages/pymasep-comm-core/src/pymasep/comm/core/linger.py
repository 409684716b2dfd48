"""Nothing lost at exit: open communications close gracefully when the interpreter ends.

A frame that :meth:`~pymasep.comm.core.BaseThreadedCommunication.send_frame_to` or
:meth:`~pymasep.comm.core.SocketHandler.send_frame_async` accepted is delivered even if
the program ends right after, as ZeroMQ's ``LINGER`` does: at interpreter exit (an
``atexit`` hook, registered once), every communication that is still open sends its
queued frames, says bye and waits for its peers to close, for ``linger`` seconds at most.
The handlers' threads are daemon threads, so without this they would die with the
interpreter and take the queued frames with them; pymasep's engine never calls
``close()``.

Set :data:`DEFAULT_LINGER` (read at exit) to change it for every communication, or the
``linger`` attribute (``Server(..., linger=...)``, ``Client(..., linger=...)``) for one;
``0`` drops what is queued at exit.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from typing import Protocol

__all__ = ["DEFAULT_LINGER", "track"]

DEFAULT_LINGER = 10.0
"""Seconds that an open communication may take to close at interpreter exit, unless its
``linger`` attribute says otherwise (10 s: a peer that reads nothing cannot keep a
finished program up longer; a peer that reads, even 100 ms per frame, gets its frames)."""

_logger = logging.getLogger("pymasep.comm.connection")


class _Lingering(Protocol):
    linger: float | None

    def close(self, timeout: float = ...) -> None: ...


# By id, not in a WeakSet: a subclass that defines __eq__ may not be hashable.
_open: dict[int, weakref.ref[_Lingering]] = {}
_lock = threading.RLock()  # reentrant: a weakref callback may run inside it (GC)
_hooked = False


def _forget(key: int) -> None:
    with _lock:
        _open.pop(key, None)


def track(communication: _Lingering) -> None:
    """Close ``communication`` at interpreter exit if it is still alive then (it is held
    weakly: tracking keeps nothing alive)."""
    global _hooked
    key = id(communication)
    with _lock:
        _open[key] = weakref.ref(communication, lambda _: _forget(key))
        if not _hooked:
            atexit.register(_close_at_exit)
            _hooked = True


def _close_at_exit() -> None:
    with _lock:
        communications = [c for c in (ref() for ref in _open.values()) if c is not None]
    start = time.monotonic()
    for communication in communications:
        linger = communication.linger if communication.linger is not None else DEFAULT_LINGER
        # Each gets its own linger from the start: they do not add up.
        remaining = max(0.0, start + linger - time.monotonic())
        try:
            communication.close(remaining)
        except Exception:
            _logger.exception("closing %r at exit failed", communication)
