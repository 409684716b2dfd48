"""The I/O loop's scheduling, without sockets: callbacks handed over and timers."""

from __future__ import annotations

import pytest

from pymasep.comm.core.ioloop import Scheduler

pytestmark = pytest.mark.disable_socket


def test_callbacks_run_in_the_order_they_were_handed_over_then_the_timers_due() -> None:
    scheduler = Scheduler()
    ran: list[str] = []
    scheduler.call_at(5.0, lambda: ran.append("timer at 5"))
    scheduler.call_at(1.0, lambda: ran.append("timer at 1"))
    scheduler.add(lambda: ran.append("first"))
    scheduler.add(lambda: ran.append("second"))
    assert scheduler.timeout(now=0.0) == 0.0  # callbacks wait: no sleep
    for callback in scheduler.due(now=1.0):
        callback()
    assert ran == ["first", "second", "timer at 1"]
    assert scheduler.timeout(now=2.0) == 3.0  # the timer at 5 is next
    for callback in scheduler.due(now=5.0):
        callback()
    assert ran[-1] == "timer at 5"
    assert scheduler.timeout(now=6.0) is None  # nothing left: sleep until woken
    assert scheduler.idle


def test_a_cancelled_timer_never_runs_and_does_not_keep_the_loop_up() -> None:
    scheduler = Scheduler()
    timer = scheduler.call_at(1.0, lambda: pytest.fail("a cancelled timer ran"))
    assert not scheduler.idle
    timer.cancel()
    assert scheduler.idle
    assert scheduler.timeout(now=0.0) is None
    assert scheduler.due(now=2.0) == []


def test_a_callback_handed_over_while_the_others_run_waits_for_the_next_turn() -> None:
    scheduler = Scheduler()
    ran: list[int] = []

    def first() -> None:
        ran.append(1)
        scheduler.add(lambda: ran.append(2))

    scheduler.add(first)
    for callback in scheduler.due(now=0.0):
        callback()
    assert ran == [1]  # one turn runs what was there when it began: no starvation
    assert scheduler.timeout(now=0.0) == 0.0
    for callback in scheduler.due(now=0.0):
        callback()
    assert ran == [1, 2]


def test_timers_due_at_once_run_in_time_order_each_once() -> None:
    scheduler = Scheduler()
    ran: list[float] = []
    for when in (3.0, 1.0, 2.0):
        scheduler.call_at(when, lambda when=when: ran.append(when))  # type: ignore[misc]
    for callback in scheduler.due(now=10.0):
        callback()
    assert ran == [1.0, 2.0, 3.0]
    assert scheduler.due(now=20.0) == []
