"""The process's I/O thread: one ``selectors`` loop for every connection.

Every :class:`~pymasep.comm.core.SocketHandler` of every
:class:`~pymasep.comm.server.Server` and :class:`~pymasep.comm.client.Client` in a
process is driven by one thread, whatever their number: it waits on every socket at once
(``epoll`` on Linux), reads what arrives, writes what the senders' threads could not, and
runs the timers (a peer stalled in the middle of a frame, a close that takes too long).

Other threads hand it work with :meth:`IOLoop.call_soon_threadsafe`: a callback appended
to a queue, and one byte on a socket pair to wake the selector if it sleeps (the shape of
pika's ``add_callback_threadsafe`` and asyncio's ``call_soon_threadsafe``). What runs in
the loop is registered from the loop only: a selector is not thread-safe.

The thread starts with the first connection and ends once nothing is registered and no
callback or timer is left, so a program that closed everything has no thread of ours.

:class:`Scheduler` holds the part that needs no socket (timers and handed-over
callbacks, in order), tested on its own.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["IOLoop", "Scheduler", "Timer", "io_loop"]

_logger = logging.getLogger("pymasep.comm.connection")
Callback = Callable[[], object]
THREAD_NAME = "pymasep-comm-io"
"""The name of the I/O thread."""


class Timer:
    """A callback due at a time; :meth:`cancel` it to drop it."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback: Callback | None = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Drop the callback (idempotent; harmless once it ran)."""
        self.cancelled = True
        self.callback = None


class Scheduler:
    """Callbacks handed over by any thread, and timers, in the order they are due
    (sans-I/O: the loop asks it how long it may sleep and what to run now)."""

    def __init__(self) -> None:
        self._ready: deque[Callback] = deque()
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()  # timers may be set from any thread

    def add(self, callback: Callback) -> None:
        """Run ``callback`` at the next turn (thread-safe: ``deque.append`` is atomic)."""
        self._ready.append(callback)

    def call_at(self, when: float, callback: Callback) -> Timer:
        """Run ``callback`` once the monotonic clock reaches ``when`` (thread-safe)."""
        timer = Timer(when, callback)
        with self._lock:
            heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def timeout(self, now: float) -> float | None:
        """Seconds the loop may sleep: 0 when callbacks wait, None when nothing is due."""
        if self._ready:
            return 0.0
        with self._lock:
            self._drop_cancelled()
            if not self._timers:
                return None
            return max(0.0, self._timers[0][0] - now)

    def due(self, now: float) -> list[Callback]:
        """The callbacks to run now, in order: those handed over, then the timers due."""
        ready = self._ready
        callbacks = [ready.popleft() for _ in range(len(ready))]
        with self._lock:
            timers = self._timers
            while timers and (timers[0][2].cancelled or timers[0][0] <= now):
                timer = heapq.heappop(timers)[2]
                if timer.callback is not None:
                    callbacks.append(timer.callback)
                    timer.callback = None
        return callbacks

    @property
    def idle(self) -> bool:
        """True when no callback and no live timer is left."""
        if self._ready:
            return False
        with self._lock:
            self._drop_cancelled()
            return not self._timers

    def _drop_cancelled(self) -> None:
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)


class IOLoop:
    """One selector loop in one thread; see the module docstring.

    Use the process's own, :func:`io_loop`.
    """

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        """The selector; use it from the loop's thread only."""
        self.scheduler = Scheduler()
        self._waker, self._wakee = socket.socketpair()
        self._waker.setblocking(False)
        self._wakee.setblocking(False)
        self.selector.register(self._wakee, selectors.EVENT_READ, None)
        self._woken = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- any thread ------------------------------------------------------------------

    def in_loop(self) -> bool:
        """True in the loop's own thread."""
        return threading.current_thread() is self._thread

    def call_soon_threadsafe(self, callback: Callback) -> None:
        """Run ``callback`` in the loop's thread soon; wake it if it sleeps."""
        self.scheduler.add(callback)
        self._wake()

    def run_in_loop(self, callback: Callback) -> None:
        """Run ``callback`` now if this is the loop's thread, else soon in it."""
        if self.in_loop():
            callback()
        else:
            self.call_soon_threadsafe(callback)

    def call_at(self, when: float, callback: Callback) -> Timer:
        """Run ``callback`` in the loop's thread at ``when`` (monotonic clock)."""
        timer = self.scheduler.call_at(when, callback)
        if not self.in_loop():
            self._wake()
        return timer

    def _wake(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                self._thread.start()
                return
            if self._woken:
                return
            self._woken = True
        with contextlib.suppress(BlockingIOError, InterruptedError):
            self._waker.send(b"\0")

    # -- the loop's thread -----------------------------------------------------------

    def _run(self) -> None:
        selector = self.selector
        scheduler = self.scheduler
        ready, timers = scheduler._ready, scheduler._timers
        select = selector.select
        monotonic = time.monotonic
        while True:
            # Most turns have no callback and no timer: skip the scheduler's lock then.
            busy = ready or timers
            timeout = scheduler.timeout(monotonic()) if busy else None
            if timeout is None and len(selector.get_map()) == 1:
                # Nothing registered, nothing due: end, unless work came meanwhile.
                with self._lock:
                    if scheduler.idle:
                        self._thread = None
                        self._woken = False
                        return
                continue
            # Run in helpers: a loop variable outlives its loop, and in this frame the
            # last one (a connection's driver, its handler) would stay alive while the
            # loop sleeps, until the next event, maybe long after that connection ended.
            self._dispatch(select(timeout))
            if ready or timers:
                self._run_due(scheduler.due(monotonic()))

    def _dispatch(self, events: list[tuple[selectors.SelectorKey, int]]) -> None:
        for key, mask in events:
            if key.data is None:
                self._drain_waker()
                continue
            try:
                key.data(mask)
            except Exception:
                _logger.exception("an I/O callback failed")

    @staticmethod
    def _run_due(callbacks: list[Callback]) -> None:
        for callback in callbacks:
            try:
                callback()
            except Exception:
                _logger.exception("a callback of the I/O loop failed")

    def _drain_waker(self) -> None:
        # Drained before the flag is cleared: a byte sent once it is clear stays for the
        # next select. (The other order could swallow that byte and leave the flag set,
        # and no thread would wake the loop again.) Callbacks handed over meanwhile run
        # in this turn, which follows.
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._wakee.recv(4096):
                pass
        with self._lock:
            self._woken = False


_loop: IOLoop | None = None
_loop_lock = threading.Lock()


def _forget_in_child() -> None:
    # A forked child has none of its parent's threads: its connections (if it uses any)
    # get a loop of their own.
    global _loop
    _loop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def io_loop() -> IOLoop:
    """The process's I/O loop, made at first use (a forked child makes its own)."""
    global _loop
    loop = _loop
    if loop is None:
        with _loop_lock:
            if _loop is None:
                _loop = IOLoop()
            loop = _loop
    return loop
