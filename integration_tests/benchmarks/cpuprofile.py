"""Profile one benchmark workload: CPU time per function, in every thread of both processes.

Usage (with the three distributions installed, from a scratch directory)::

    python integration_tests/benchmarks/cpuprofile.py WORKLOAD [--top N] [--wall]

Each thread runs under a ``cProfile.Profile`` timed by ``time.thread_time`` (the CPU
time of that thread, kernel time included: a thread wake-up costs where it is paid), or
by ``time.perf_counter`` with ``--wall``; the threads' profiles are merged per process,
the engine's (the forked child) and the interfaces' (this one), and printed. The
explanations of missed targets in report.py were written from these profiles.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing.process
import pstats
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import contenders
import fanout
import gamestep
import transport
import workloads

WORKLOADS: dict[str, Callable[[], float]] = {
    "broadcast-256": lambda: fanout.ours(256, 240, contenders.scale_payload()),
    "broadcast-256-bare": lambda: fanout.bare(256, 240, contenders.scale_payload()),
    "broadcast-8": lambda: fanout.ours(8, 3000, contenders.scale_payload()),
    "fan-out-64": lambda: fanout.ours(64, 100, workloads.our_observation_bytes()),
    "fan-out-64-bare": lambda: fanout.bare(64, 100, workloads.our_observation_bytes()),
    "stream": lambda: transport.ours_stream(50_000, bytes(1024)),
    "stream-bare": lambda: transport.bare_stream(50_000, bytes(1024)),
    "round-trip-queued": lambda: transport.ours_round_trip(5000, b"ping", queued=True),
    "round-trip-bare-queue": lambda: transport.bare_queue_round_trip(5000, b"ping"),
    "16-mib": lambda: transport.ours_big_frame(16 * 1024 * 1024),
    "game-step-64": lambda: gamestep.ours(64, 40, *workloads.game_step_messages()[:2]),
}


class _Profiles:
    """Every thread's profiler in this process, merged on demand."""

    def __init__(self, timer: Callable[[], float]) -> None:
        self.timer = timer
        self.profiles: list[cProfile.Profile] = []

    def start(self) -> cProfile.Profile:
        profile = cProfile.Profile(self.timer)
        self.profiles.append(profile)
        profile.enable()
        return profile

    def merged(self) -> pstats.Stats | None:
        stats: pstats.Stats | None = None
        for profile in self.profiles:
            if stats is None:
                stats = pstats.Stats(profile)
            else:
                stats.add(profile)
        return stats


def _install(profiles: _Profiles, out: Path) -> None:
    """Profile every thread started from now on, and the forked engine's own thread,
    whose merged profile is written to ``out`` when its process ends."""
    bootstrap_inner: Any = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def profiled_inner(thread: threading.Thread) -> None:
        profile = profiles.start()
        try:
            bootstrap_inner(thread)
        finally:
            profile.disable()

    threading.Thread._bootstrap_inner = profiled_inner  # type: ignore[attr-defined]
    process_run = multiprocessing.process.BaseProcess.run

    def profiled_run(process: multiprocessing.process.BaseProcess) -> None:
        profiles.profiles.clear()  # the parent's, inherited by the fork
        profile = profiles.start()
        try:
            process_run(process)
        finally:
            profile.disable()
            stats = profiles.merged()
            if stats is not None:
                stats.dump_stats(out)

    multiprocessing.process.BaseProcess.run = profiled_run  # type: ignore[method-assign,assignment]


def _show(title: str, stats: pstats.Stats, top: int) -> None:
    text = io.StringIO()
    stats.stream = text  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"== {title}: {total:.3f} s in all threads")
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--top", type=int, default=15, help="functions shown per process")
    parser.add_argument("--wall", action="store_true", help="wall-clock time, not CPU time")
    args = parser.parse_args(argv)
    profiles = _Profiles(time.perf_counter if args.wall else time.thread_time)
    with tempfile.TemporaryDirectory() as scratch:
        engine_file = Path(scratch) / "engine.pstats"
        _install(profiles, engine_file)
        main_profile = profiles.start()
        result = WORKLOADS[args.workload]()
        main_profile.disable()
        # The run's threads end as it closes; the engine has written its profile by now.
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(10)
        print(f"{args.workload}: {result:.1f} operations/s under the profiler")
        if engine_file.exists():
            _show("engine process", pstats.Stats(str(engine_file)), args.top)
    interfaces = profiles.merged()
    if interfaces is not None:
        _show("interfaces' process", interfaces, args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
