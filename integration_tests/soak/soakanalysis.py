"""What the soak run makes of what it saw: frame order, growth, the report and its chart.

No sockets and no processes here, so that ``test_soakanalysis.py`` checks it on made-up
series and sequences.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# What "keeps growing" means, per metric: the median of the last third of the samples
# exceeds the median of the first third by more than this, and the metric is still
# rising at the end: the median of the last sixth exceeds the median of the sixth
# before it by more than an eighth of that rise (a steady leak gives a quarter). A
# one-off step (a cache filling, the allocator keeping an arena) is flat by the last
# third and is not growth; a leak, even one that starts mid-run, is. The margins sit
# above what 16 interfaces joining and leaving move: each connection is one descriptor
# and one or two threads.
TOLERANCES = {"rss_mib": 8.0, "threads": 4.0, "fds": 4.0}
"""Allowed rise of the last third's median over the first third's, per metric."""

METRICS = {
    "rss_mib": "resident memory (MiB)",
    "threads": "threads",
    "fds": "open file descriptors",
}


@dataclass
class Growth:
    """How one metric moved over a run."""

    metric: str
    first: float
    middle: float
    last: float
    tolerance: float
    end_rise: float
    """Median of the last sixth of the samples minus that of the sixth before it."""

    @property
    def rise(self) -> float:
        return self.last - self.first

    @property
    def keeps_growing(self) -> bool:
        return self.rise > self.tolerance and self.end_rise > self.rise / 8


def growth(metric: str, values: Sequence[float], tolerance: float | None = None) -> Growth:
    """Compare the thirds of a series of samples (at least 6), and the last two sixths.

    Raises:
        ValueError: Fewer than 6 samples: too few to tell growth from noise.
    """
    if len(values) < 6:
        raise ValueError(f"{metric}: {len(values)} samples, at least 6 are needed")
    count = len(values)
    third, sixth = count // 3, count // 6
    median = statistics.median
    return Growth(
        metric,
        median(values[:third]),
        median(values[third : count - third]),
        median(values[count - third :]),
        TOLERANCES[metric] if tolerance is None else tolerance,
        median(values[count - sixth :]) - median(values[count - 2 * sixth : count - sixth]),
    )


@dataclass
class FrameOrder:
    """The order of the numbered frames one connection delivered.

    Every frame carries the engine's step number; on a connection they must arrive
    one after the other, from wherever the connection started. A number above the next
    one expected is a loss (the frames between went missing); one below, a reordering
    or a duplicate.
    """

    expected: int | None = None
    received: int = 0
    losses: list[tuple[int, int]] = field(default_factory=list)
    """``(expected, received)`` where numbers were skipped."""
    reorders: list[tuple[int, int]] = field(default_factory=list)
    """``(expected, received)`` where a number came back or came late."""

    def add(self, number: int) -> None:
        if self.expected is not None and number != self.expected:
            (self.losses if number > self.expected else self.reorders).append(
                (self.expected, number)
            )
        self.received += 1
        if self.expected is None or number >= self.expected:
            self.expected = number + 1

    @property
    def intact(self) -> bool:
        return not self.losses and not self.reorders


@dataclass
class Sample:
    """One look at the engine process."""

    seconds: float
    rss_mib: float
    threads: int
    fds: int
    connections: int


def tracing_problem() -> str | None:
    """Why this process's memory cannot be judged now, or None.

    A tracer given to every new thread (``threading.settrace``; coverage.py's, on Python
    before 3.12) is kept per thread until the process ends: the engine starts a delivery
    thread per connection, so its memory would grow with the tracers, not with the engine
    (about 1 KiB per connection: 15 MiB over a 30-minute run).
    """
    if threading.gettrace() is None:
        return None
    return (
        "every new thread gets a tracer (threading.settrace; coverage?): its memory per "
        "thread would be measured as the engine's; run the soak without it"
    )


def read_sample(seconds: float, connections: int) -> Sample:
    """Sample this process: resident memory and threads from ``/proc/self/status``,
    descriptors from ``/proc/self/fd`` (Linux)."""
    import os

    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return Sample(
        seconds=seconds,
        rss_mib=int(fields["VmRSS"][0]) / 1024,
        threads=int(fields["Threads"][0]),
        fds=len(os.listdir("/proc/self/fd")),
        connections=connections,
    )


def growths(samples: Sequence[Sample]) -> list[Growth]:
    return [growth(name, [getattr(s, name) for s in samples]) for name in METRICS]


def chart(samples: Sequence[Sample], path: Path, title: str) -> None:
    """Plot the three metrics (and the connection count) over time, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.seconds / 60 for s in samples]
    figure, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    for axis, name in zip(axes, [*METRICS, "connections"], strict=True):
        axis.plot(minutes, [getattr(s, name) for s in samples], linewidth=1.2)
        axis.set_ylabel(METRICS.get(name, "connections"), fontsize=8)
        axis.grid(True, alpha=0.3)
        for boundary in (1, 2):
            axis.axvline(minutes[-1] * boundary / 3, color="grey", linestyle=":", linewidth=0.8)
    axes[-1].set_xlabel("minutes since every interface had joined (dotted: thirds)")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report(
    *,
    verdict: bool,
    failures: Sequence[str],
    settings: Sequence[tuple[str, str]],
    traffic: Sequence[tuple[str, str]],
    notes: Sequence[str],
    results: Sequence[Growth],
    chart_name: str,
    interfaces: str = "16 interfaces, each a process",
    arguments: str = "",
) -> str:
    """The report, as Markdown that fits ``docs/`` (a page with one chart beside it);
    ``interfaces`` says who played, ``arguments`` the run's options beside the defaults
    (for the command that regenerates it)."""
    lines = [
        "# Soak run",
        "",
        f"**Result: {'PASS' if verdict else 'FAIL'}.**"
        f" An engine (`Server`) plays with {interfaces}, on loopback,"
        " while interfaces leave and join, some are killed with SIGKILL, peers send"
        " garbage and one interface stops reading. Regenerate with"
        f" `nox -s soak -- --minutes 30{arguments} --out docs --chart _static/soak.png`.",
        "",
    ]
    if failures:
        lines += ["## Failures", "", *[f"- {failure}" for failure in failures], ""]
    lines += ["## Settings", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in settings]
    lines += ["", "## Frames and connections", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in traffic]
    lines += [
        "",
        "## The engine process over time",
        "",
        "Medians of the first, middle and last third of the samples. A metric *keeps"
        " growing* when the last third exceeds the first by more than the tolerance and"
        " it still rises at the end: the last sixth exceeds the sixth before it by more"
        " than an eighth of that rise (a one-off step is not growth).",
        "",
        "| metric | first third | middle third | last third | rise | tolerance | rise at the end"
        " | keeps growing |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for item in results:
        lines.append(
            f"| {METRICS[item.metric]} | {item.first:.1f} | {item.middle:.1f} | "
            f"{item.last:.1f} | {item.rise:+.1f} | {item.tolerance:g} | {item.end_rise:+.1f} | "
            f"{'**yes**' if item.keeps_growing else 'no'} |"
        )
    lines += ["", f"![The engine's memory, threads and descriptors over time]({chart_name})", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    return "\n".join(lines)
