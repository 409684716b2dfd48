"""The soak run's own judgement: growth of a series, order of numbered frames, report."""

from __future__ import annotations

import contextlib
import random
import threading
from pathlib import Path

import pytest
from soakanalysis import FrameOrder, Growth, growth, read_sample, report, tracing_problem


def _noisy(values: list[float], spread: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [value + rng.uniform(-spread, spread) for value in values]


def test_a_flat_noisy_series_does_not_grow() -> None:
    series = _noisy([40.0] * 90, spread=3.0)
    assert not growth("rss_mib", series).keeps_growing


def test_a_steady_leak_grows() -> None:
    series = _noisy([40.0 + 0.5 * i for i in range(60)], spread=1.0)
    result = growth("rss_mib", series)
    assert result.keeps_growing
    assert result.rise == pytest.approx(20, abs=3)


def test_a_leak_that_starts_mid_run_grows() -> None:
    # The stalled interface on a server without a send limit: flat, then a ramp.
    series = [32.0] * 30 + [32.0 + 0.6 * i for i in range(30)]
    assert growth("rss_mib", series).keeps_growing


def test_a_one_off_step_is_not_growth() -> None:
    # Warm-up: a cache fills during the first half, then the level holds.
    series = _noisy([30.0] * 20 + [50.0] * 40, spread=0.5)
    result = growth("rss_mib", series)
    assert result.rise > result.tolerance
    assert not result.keeps_growing


def test_a_rise_within_the_tolerance_is_not_growth() -> None:
    series = [20.0 + 0.05 * i for i in range(60)]  # 3 units over the run, tolerance 4
    assert not growth("fds", series).keeps_growing
    assert growth("fds", series, tolerance=1).keeps_growing


def test_churn_moves_descriptors_without_growth() -> None:
    rng = random.Random(3)
    series = [float(25 + rng.randrange(-3, 4)) for _ in range(60)]
    assert not growth("fds", series).keeps_growing


def test_too_few_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 6"):
        growth("threads", [1.0] * 5)


def test_consecutive_numbers_from_any_start_are_intact() -> None:
    order = FrameOrder()
    for number in range(1000, 1100):
        order.add(number)
    assert order.intact
    assert order.received == 100


def test_a_skipped_number_is_a_loss() -> None:
    order = FrameOrder()
    for number in [1, 2, 4, 5]:
        order.add(number)
    assert order.losses == [(3, 4)]
    assert not order.reorders


def test_a_late_or_repeated_number_is_a_reordering() -> None:
    order = FrameOrder()
    for number in [1, 3, 2, 4, 4]:
        order.add(number)
    assert order.losses == [(2, 3)]
    assert order.reorders == [(4, 2), (5, 4)]


def test_an_expected_start_catches_a_first_frame_lost() -> None:
    order = FrameOrder(expected=10)
    order.add(11)
    assert order.losses == [(10, 11)]


def test_a_sample_reads_this_process() -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("reads /proc (Linux)")
    before = read_sample(0.0, 0)
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(Path(__file__).open("rb"))
        after = read_sample(1.0, 0)
    assert after.fds == before.fds + 3
    assert before.rss_mib > 1
    assert before.threads >= 1


def test_the_report_says_why_it_failed() -> None:
    result = Growth("rss_mib", 30.0, 40.0, 50.0, 8.0, 5.0)
    page = report(
        verdict=False,
        failures=["rss_mib keeps growing"],
        settings=[("duration", "1 min")],
        traffic=[("frames lost or reordered", "0")],
        notes=["a note"],
        results=[result],
        chart_name="soak.png",
    )
    assert "**Result: FAIL.**" in page
    assert "- rss_mib keeps growing" in page
    assert "| resident memory (MiB) | 30.0 | 40.0 | 50.0 | +20.0 | 8 | +5.0 | **yes** |" in page
    assert "](soak.png)" in page


def test_memory_is_not_judged_under_a_tracer_that_every_new_thread_gets() -> None:
    # coverage.py's, before Python 3.12, keeps a tracer per thread started: the soak's
    # engine starts one per connection and its memory grew by the tracers.
    saved = threading.gettrace()  # coverage's own, when this test runs under it
    try:
        threading.settrace(None)
        assert tracing_problem() is None
        threading.settrace(lambda *args: None)
        problem = tracing_problem()
        assert problem is not None and "tracer" in problem
    finally:
        threading.settrace(saved)
