"""The process's I/O loop itself: callbacks from other threads, timers, failures, and
its thread ending once nothing is left."""

from __future__ import annotations

import logging
import queue
import threading
import time

import pytest

from pymasep.comm.core.ioloop import THREAD_NAME, IOLoop


def test_callbacks_and_timers_run_in_the_loop_thread_and_a_failing_one_is_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = IOLoop()  # one of its own: the process's may be busy with other tests
    ran: queue.Queue[tuple[str, bool]] = queue.Queue()

    def fails() -> None:
        raise RuntimeError("a bug in a callback")

    with caplog.at_level(logging.ERROR, logger="pymasep.comm.connection"):
        loop.call_soon_threadsafe(fails)
        loop.call_soon_threadsafe(lambda: ran.put(("soon", loop.in_loop())))
        loop.call_at(time.monotonic() + 0.05, lambda: ran.put(("timer", loop.in_loop())))
        assert ran.get(timeout=5) == ("soon", True)  # the failure stopped nothing
        assert ran.get(timeout=5) == ("timer", True)
    assert any("a bug in a callback" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    assert not loop.in_loop()


def test_the_loop_thread_ends_once_nothing_is_registered_and_starts_again_on_demand() -> None:
    loop = IOLoop()
    seen: queue.Queue[threading.Thread] = queue.Queue()
    loop.call_soon_threadsafe(lambda: seen.put(threading.current_thread()))
    thread = seen.get(timeout=5)
    assert thread.name == THREAD_NAME
    thread.join(5)  # nothing registered, no timer: it ends on its own
    assert not thread.is_alive()
    again = threading.Event()
    loop.run_in_loop(again.set)  # from outside the loop: a new thread runs it
    assert again.wait(5)
