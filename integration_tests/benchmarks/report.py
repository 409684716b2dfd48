"""Write the benchmark page, ``docs/benchmarks.md``, and its chart from the rows of a run.

Rows come from the modules :mod:`run` aggregates. A row's baseline is read from its
``against`` key, or else from its name (``"<workload> vs <baseline>"``); every baseline
that is not pymasep 0.2 or pyzmq is the bare-Python one (plain sockets).
"""

from __future__ import annotations

import datetime
import itertools
import os
import platform
import re
from pathlib import Path
from typing import Any

COLUMNS = ("bare Python", "pymasep 0.2", "pyzmq")
_COLORS = {"bare Python": "#4C72B0", "pymasep 0.2": "#DD8452", "pyzmq": "#55A868"}

# Where the profiles behind the explanations of issue 17's targets come from: the engine
# of one I/O thread per process (re-profile when the transport changes: cpuprofile.py
# WORKLOAD prints the same tables).
PROFILED = (
    "Profiled with `integration_tests/benchmarks/cpuprofile.py` (cProfile in every thread "
    "of both processes, timed by each thread's CPU time, kernel time included) on the "
    "engine of one I/O thread per process (this page's code), on the 2-core machine: the "
    "seconds are CPU seconds of one run under the profiler, to compare with each other, "
    "not with this page's ratios."
)

# Why a target is missed, by the words of the row's name (the first entry whose words are
# all in the name): written from the profiles (PROFILED), and shown only while the target
# is missed.
EXPLANATIONS = [
    (
        ("broadcast of 1 KiB to 256 interfaces",),
        "The connections' locks. In the profile of 240 broadcasts to 256 interfaces (61,440 "
        "frames) the engine's process spent 5.2 s of CPU (15.8 s on the transport of a "
        "thread per connection), 2.2 s of it inside `lock.acquire` (69,028 acquires): the "
        "broadcasting thread queues most frames (57,600 of 61,440, a stream of one-way "
        "frames being coalesced) and the I/O thread drains them (2,029 `sendmsg`), each "
        "taking every connection's lock in turn, and each contended hand-over costs a GIL "
        "switch. The send path itself is about 25 us of Python a frame under the profiler "
        "(`Driver.send`). pyzmq queues in C, without the GIL. " + PROFILED,
    ),
    (
        ("growth from",),
        "The cost of a frame grows with the interfaces, less than it did. Under the "
        "profiler the engine's CPU per frame went from 77 us with 8 interfaces (1.85 s for "
        "24,000 frames) to 85 us with 256 (5.2 s for 61,440), the interfaces' process's "
        "from 19 us to 28 us; the rest of the growth is time spent waiting for the other "
        "process, which the profile of CPU time does not show. " + PROFILED,
    ),
    (
        ("fan-out of one observation", "bare"),
        "The send path's Python and the connections' locks, as for the broadcasts above; "
        "not profiled separately on this engine. " + PROFILED,
    ),
    (
        ("16 MiB", "pyzmq"),
        "Not the receive's copies any more: with the frame read straight into one buffer of "
        "its size, the receiving process spent 0.12 s in all its threads under a wall-clock "
        "profile (`--wall`), 10 ms of it preparing the buffer's views for 148 reads of about "
        "110 KiB each, one I/O-loop turn per read; the rest is waiting for the sender and "
        "for the hand-over to the thread that takes the frame. The payload is still copied "
        "once into `bytes` (`Frame.message` is `bytes`); pyzmq hands the buffer over. " + PROFILED,
    ),
    (
        ("stream of 1 KiB frames", "length-prefixed"),
        "The send path's Python: a frame goes through `send_frame_to`, the handler and the "
        "driver under the connection's lock. " + PROFILED,
    ),
    (
        ("bare + queue",),
        "Thread hand-overs. In the profile of 5,000 round trips pymasep-comm's engine "
        "spent 1.62 s of CPU against bare + queue's 0.82 s, and its interface 1.00 s "
        "against 0.54 s: 35,040 lock acquires on the engine's side (7 a round trip, 0.66 s), "
        "as each frame passes from the I/O thread to the application's queue and each "
        "reply from the application's thread through the connection's lock to the "
        "socket, where bare + queue has one reader thread and one queue a side. " + PROFILED,
    ),
    (
        ("round trip",),
        "A round trip crosses threads that the bare loop does not: the I/O thread reads "
        "the request and calls `on_receive`, which sends the echo; the interface's I/O "
        "thread reads the reply and hands it to the thread waiting on its queue. That "
        "hand-off is the price of a connection that never blocks the game loop; the rest "
        "is the Python of framing on each side. The bare loop sends and receives in the "
        "one thread that waits and does no framing.",
    ),
]


# Why pymasep-comm's first step of the scale table can be steeper than its later ones.
SCALE_NOTE = (
    "pymasep-comm moves every connection's bytes in one I/O thread per process; with more "
    "connections, each read and each write finds fewer frames to batch, so the cost of a "
    "frame grows with the interfaces (see the growth row's note)."
)


def _explain(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    name = str(row["name"])
    if row.get("measure") in CODEC_EXPLANATIONS:
        return _codec_explanation(row, rows)
    for words, text in EXPLANATIONS:
        if all(word in name for word in words):
            return text
    return (
        "No explanation is recorded for this miss: the target was met in the runs the "
        "explanations were written from. Compare with the other rows of this run (a loaded "
        "machine slows every threaded row) and profile before guessing."
    )


# Why a codec target is missed, from the profiles of the runs they were written from;
# the numbers are the run's own (the other measures of the same workload and heap).
CODEC_EXPLANATIONS = {
    "our share": (
        "Our share is encoding without `to_xml()`, {encode}x 0.2's speed in this run, plus "
        "decoding, {decode}x. Decoding is held at about 1x on purpose: it builds the same "
        "`xml.etree` elements as 0.2 with the same parser (expat through ElementTree's C "
        "tree builder), because those are what pymasep's `from_xml()` reads fastest (lxml's "
        "would parse faster and make the from_xml target fail); building them is nearly "
        "all of both sides' decode time. Creating the parser is about a quarter of an "
        "ACTION's parse, but it cannot be saved safely: ElementTree's parser is spent once "
        "closed and expat cannot be reset from Python, and one long-lived parser fed many "
        "documents inside a wrapper element would accept what a document alone is refused "
        "for. Checking the envelope's limits before parsing costs under a microsecond. "
        "0.2 spends {encode_part} of its share encoding, so with decode at {decode}x the "
        "target needs encoding {needed} faster than 0.2's. Encoding walks pymasep's "
        "ElementTree tree once in Python (`elementwriter`), where 0.2's ElementTree "
        "serializer walks it twice and escapes every string through a function call. "
        "Every check that a whole tree allows is made once, in C: the texts and tails, "
        "joined by `itertext()`, are checked for what XML 1.0 cannot carry and for markup, "
        "and escaped together in one string when they hold any; a start tag is written from "
        "the strings kept per plain name, so looking a name up is its check; the attribute "
        "values are checked joined. That made the writer 1.15-1.4x faster than before "
        "(about 3x ElementTree's serializer on the captured crowd observation), and what is "
        "left is the walk itself: about 0.37 us an element on the plain states (reading the "
        "element's tag, attributes, text, children and tail, building its strings), with "
        "the joined attribute values and the texts' checks about a tenth each. The rows "
        "that still miss are those where the walk is not most of the cost: the state with "
        "2 agents, whose 34 marked-up, non-ASCII labels make every string of the message "
        "wide (its join and its UTF-8 encoding cost about twice as much) and whose escaping "
        "is a fifth of the writer's time; and the ACTION and the duel's observation (9 and "
        "30 elements), where the Message's fixed costs weigh (the envelope and the params "
        "dict, about 2 us of the ACTION's 7.5 us) and decoding falls below 1x: on the "
        "ACTION, about 1 us above 0.2's, for checks 0.2 does not make (the envelope's "
        "limits, no DOCTYPE before it: 0.3 to 0.7 us; the envelope and every value read "
        "strictly)."
    ),
    "from_xml": (
        "pymasep's `from_xml()` reads the same kind of elements on both sides "
        "(`xml.etree.ElementTree.Element`, same tree): its time is its own Python, and "
        "the difference is the machine's noise (the rounds ranged {spread})."
    ),
}


def _codec_explanation(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    workload = str(row["workload"])
    heap = workload.rpartition(", ")[2]
    base = str(row["name"]).split(", ")[0]  # "message codec: <object>"

    def find(measure: str) -> dict[str, Any] | None:
        wanted = f"{base}, {measure}, {heap}"
        return next((r for r in rows if str(r.get("workload")) == wanted and r.get("ratio")), None)

    encode, decode = find("encode without to_xml"), find("decode")
    encode_part = needed = "an unmeasured part"
    if encode and decode and encode.get("baseline_ops_per_s") and decode.get("baseline_ops_per_s"):
        # 0.2's times, and the encode speed-up that the target needs with this decode.
        theirs_encode = 1 / float(encode["baseline_ops_per_s"])
        theirs_decode = 1 / float(decode["baseline_ops_per_s"])
        part = theirs_encode / (theirs_encode + theirs_decode)
        encode_part = f"{part:.0%}"
        room = 1 / float(row.get("target") or 2.0) - (1 - part) / float(decode["ratio"])
        needed = f"{part / room:.1f}x" if room > 0 else "more than any speed-up can give, as"
    spread = row.get("spread") or [0.0, 0.0]
    return CODEC_EXPLANATIONS[str(row["measure"])].format(
        encode=f"{encode['ratio']:.2f}" if encode else "not measured",
        decode=f"{decode['ratio']:.2f}" if decode else "not measured",
        encode_part=encode_part,
        needed=needed,
        spread=f"{spread[0]:.2f}x to {spread[1]:.2f}x",
    )


def _column(row: dict[str, Any]) -> str:
    against = str(row.get("against") or _split(row)[1])
    return against if against in COLUMNS[1:] else "bare Python"


def _split(row: dict[str, Any]) -> tuple[str, str]:
    """``(workload, baseline)`` from ``"<workload> vs <baseline> (<condition>)"``."""
    workload, _, against = str(row["name"]).rpartition(" vs ")
    if against.endswith(")") and " (" in against:  # a condition of the run, e.g. the heap
        against, _, condition = against[:-1].partition(" (")
        workload = f"{workload}, {condition}"
    return workload or str(row["name"]), against


def _workload(row: dict[str, Any]) -> str:
    return str(row.get("workload") or _split(row)[0])


def at_most(row: dict[str, Any]) -> bool:
    """Whether the row's target is a ceiling (a growth), not a floor (a speed ratio)."""
    return row.get("kind") == "growth"


def met(row: dict[str, Any], target: float) -> bool:
    """Whether the row's ratio meets ``target``: at least it, or at most it for a growth."""
    ratio = float(row["ratio"])
    return ratio <= target if at_most(row) else ratio >= target


def _pivot(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        if at_most(row):  # not a speed ratio: in the targets and the scale section only
            continue
        table.setdefault(_workload(row), {})[_column(row)] = row
    return table


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if row.get("ratio") is None:
        return "not measured¹"
    return f"**{row['ratio']:.2f}x**"


def _verdicts(rows: list[dict[str, Any]], target_of: Any) -> list[str]:
    lines = []
    for row in rows:
        target = target_of(row)
        if target is None:
            continue
        ratio = row.get("ratio")
        if ratio is None:
            lines.append(f"* **{row['name']}**: target {target:g}x, not measured.")
            continue
        shown = f"{ratio:.2f}x"
        if row.get("spread"):  # codec rows: the rounds' range, and the time it means
            low, high = row["spread"]
            shown += (
                f" (rounds {low:.2f}x to {high:.2f}x; our time {1 / ratio:.3f}x 0.2's, "
                f"at most {1 / target:.3f}x wanted)"
            )
        wanted = f"target at most {target:.3g}x" if at_most(row) else f"target {target:.3g}x"
        if met(row, target):
            lines.append(f"* {row['name']}: {shown}, {wanted} — met.")
        else:
            why = _explain(row, rows)
            if not row.get("spread"):  # the codec rows say it in their own terms above
                if at_most(row):
                    why = f"Over the target by a factor of {ratio / target:.2f}. {why}"
                else:
                    why = f"Short of the target by a factor of {target / ratio:.2f}. {why}"
            lines.append(f"* **{row['name']}: {shown}, {wanted} — missed.** {why}")
    return lines


def _chart(table: dict[str, dict[str, dict[str, Any]]], path: Path, target_of: Any) -> str | None:
    """Draw the ratios as grouped horizontal bars (log scale); return why not, if not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        return f"matplotlib is not installed ({error})"
    workloads = list(table)
    height = 0.8 / len(COLUMNS)
    figure, axes = plt.subplots(figsize=(10, 0.6 * len(workloads) + 1.6))
    targets_shown = False
    for index, column in enumerate(COLUMNS):
        positions, ratios = [], []
        for place, workload in enumerate(workloads):
            row = table[workload].get(column)
            if row is None:
                continue
            position = place + (index - 1) * height
            if not row.get("ratio"):  # say why, where the bar would be
                why = str(row.get("note", "")).partition(": ")[2].split(":")[0]
                axes.text(1.05, position, f"{column}: {why}", fontsize=6.5, va="center",
                          color="dimgray", style="italic")  # fmt: skip
                continue
            positions.append(position)
            ratios.append(row["ratio"])
            target = target_of(row)
            if target is not None:
                axes.plot([target], [position], marker="|", markersize=9, color="crimson",
                          linestyle="none", label=None if targets_shown else "target")  # fmt: skip
                targets_shown = True
        bars = axes.barh(positions, ratios, height, label=f"vs {column}", color=_COLORS[column])
        axes.bar_label(bars, labels=[f"{r:.2f}x" for r in ratios], fontsize=7, padding=2)
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    left, right = axes.get_xlim()
    axes.set_xlim(left, right * 4)  # room for the labels of the longest bars
    axes.set_yticks(range(len(workloads)), workloads, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("pymasep-comm speed / contender speed (log scale; right of 1 = faster)")
    axes.legend(fontsize=8, loc="lower right")
    axes.set_title("pymasep-comm against other ways to do the same work", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
    return None


def _scale(rows: list[dict[str, Any]]) -> list[str]:
    """How the time per broadcast grows with the interfaces, for each contender measured:
    relative to the fewest interfaces, beside what linear growth would give."""
    speeds: dict[int, dict[str, float]] = {}  # interfaces -> contender -> broadcasts/s
    for row in rows:
        match = re.fullmatch(r"broadcast of .* to (\d+) interfaces", _workload(row))
        if match is None:
            continue
        found = speeds.setdefault(int(match[1]), {})
        if row.get("ops_per_s"):
            found["pymasep-comm"] = row["ops_per_s"]
        if row.get("baseline_ops_per_s"):
            found[_column(row)] = row["baseline_ops_per_s"]
    if len(speeds) < 2:
        return []
    counts = sorted(speeds)
    fewest = counts[0]
    names = [n for n in ("pymasep-comm", *COLUMNS) if all(n in speeds[c] for c in counts)]
    lines = [
        "## Scale",
        "",
        f"Time per broadcast, relative to {fewest} interfaces (linear growth is the",
        "interface count's own ratio):",
        "",
        "| interfaces | linear | " + " | ".join(names) + " |",
        "| ---: | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for count in counts:
        growth = [speeds[fewest][n] / speeds[count][n] for n in names]
        cells = " | ".join(f"{g:.1f}x" for g in growth)
        lines.append(f"| {count} | {count / fewest:g}x | {cells} |")
    steps = []
    for low, high in itertools.pairwise(counts):
        grown = ", ".join(f"{n} {speeds[low][n] / speeds[high][n]:.1f}x" for n in names)
        steps.append(f"from {low} to {high} interfaces (linear: {high / low:g}x), {grown}")
    lines += ["", f"Step by step, the time per broadcast grew {'; '.join(steps)}. {SCALE_NOTE}"]
    return [*lines, ""]


def _sections(rows: list[dict[str, Any]], target_of: Any) -> list[str]:
    """Rows with a ``section`` (a workload against itself under another setting, such
    as recording on and off): a table of their own, with the time ratio beside."""
    lines: list[str] = []
    for section in dict.fromkeys(str(r["section"]) for r in rows):
        lines += [
            f"## {section}",
            "",
            "| workload | vs | ratio | time | target | verdict |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for row in (r for r in rows if r["section"] == section):
            target = target_of(row)
            wanted = "" if target is None else f"at most {1 / target:.2f}x the time"
            if row.get("ratio") is None:
                lines.append(f"| {_workload(row)} | {row['against']} | - | - | {wanted} | "
                             f"not measured: {row.get('note', '')} |")  # fmt: skip
                continue
            ratio = row["ratio"]
            verdict = "" if target is None else ("met" if ratio >= target else "**missed**")
            lines.append(f"| {_workload(row)} | {row['against']} | {ratio:.2f}x | "
                         f"{1 / ratio:.2f}x | {wanted} | {verdict} |")  # fmt: skip
        lines.append("")
        for row in (r for r in rows if r["section"] == section and r.get("why")):
            target = target_of(row)
            if target is not None and row.get("ratio") is not None and row["ratio"] < target:
                lines += [f"* **{_workload(row)}, missed**: {row['why']}", ""]
    return lines


def write(rows: list[dict[str, Any]], page: Path, chart: Path, rounds: int, target_of: Any) -> None:
    """Write the page and the chart for ``rows`` (``target_of(row)``: its target or None)."""
    sectioned = [row for row in rows if row.get("section")]
    rows = [row for row in rows if not row.get("section")]
    table = _pivot(rows)
    no_chart = _chart(table, chart, target_of)
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `nox -s bench` (integration_tests/benchmarks/run.py): do not edit. -->",
        "",
        "How fast pymasep-comm does the work of a game, as ratios against other ways of",
        "doing the same work, measured in the same run on the same machine. A ratio is",
        "pymasep-comm's speed divided by the other's: above 1, pymasep-comm is faster.",
        "Absolute times depend on the machine and are not quoted.",
        "",
        f"Each workload ran {rounds} interleaved rounds (pymasep-comm, then every",
        "contender, then again), and the ratio is that of the medians. The engine runs in a",
        "child process and the interfaces in another, over loopback TCP.",
        "",
    ]
    if no_chart is None:
        lines += [f"![ratios]({os.path.relpath(chart, page.parent)})", ""]
    else:
        lines += [f"(No chart: {no_chart}.)", ""]
    lines += [
        "| workload | vs bare Python | vs pymasep 0.2 | vs pyzmq |",
        "| --- | ---: | ---: | ---: |",
    ]
    for workload, cells in table.items():
        lines.append(
            f"| {workload} | " + " | ".join(_cell(cells.get(column)) for column in COLUMNS) + " |"
        )
    notes = [f"* {row['name']}: {row['note']}" for row in rows if row.get("ratio") is None]
    if notes:
        lines += ["", "¹ Not measured:", "", *notes]
    lines += [
        "",
        "## Targets",
        "",
        *_verdicts(rows, target_of),
        "",
        "Where a transport target is missed, its reason above comes from a profile of the",
        "transport measured (how it was taken, and on which transport, ends each reason):",
        "`python integration_tests/benchmarks/cpuprofile.py WORKLOAD` prints the same",
        "tables for the code of the day.",
        "",
        *_scale(rows),
        *_sections(sectioned, target_of),
        "## The workloads",
        "",
        "* **message codec**: pymasep-comm's `Message` and pymasep 0.2's, in one process,",
        "  on the very same objects built with pymasep 0.2's own classes: an OBSERVATION",
        "  holding a `State` of 30 or of 300 objects (each an `ObjectState` of four",
        "  `Characteristic`s; 14 and 140 elements per 10 objects), as pymasep's engine sends",
        "  it; one of 30 objects and 2 agents, whose `Belief`s pymasep writes as GraphML",
        "  text and whose strings hold markup, quotes, newlines, tabs and non-ASCII text;",
        "  the *captured* observations, the last that pymasep's engine sent in each of",
        "  `nox -s pymasep`'s games (the duel: 2 agents, 30 elements; the crowd: 300 tokens",
        "  and an agent, 1,822 elements; integration_tests/benchmarks/captured says how they",
        "  were captured), read back into pymasep's objects as its interface reads them;",
        "  and an ACTION holding an `Action`, as its interfaces send it. *encode*:",
        "  `to_bytes()`, pymasep's `to_xml()` included; *encode without to_xml*: the same",
        "  with the object's element already built; *decode*: `from_bytes()` of that",
        "  side's bytes; *our share*: encode without `to_xml` plus decode (target: at most",
        "  half 0.2's time, a ratio of 2x); *from_xml*: pymasep's own",
        "  `Environment.create_object()` / `create_action()` on the element decode returned",
        "  (target: at most 1.05x its time on 0.2's elements). Ratios are 0.2's CPU time",
        "  over ours, the median of at least 9 rounds' ratios (each round times both sides",
        "  back to back), under glibc's default heap and a steady one",
        "  (integration_tests/benchmarks/message_codec.py says why).",
        "* **stream of 1 KiB frames**: one-way, interface to engine, as fast as they go.",
        "* **round trip of a small frame**: the interface sends 4 bytes, the engine echoes;",
        "  the interface takes each reply from its `SocketHandlerQueue`. *A queue on each",
        "  side*: the engine's handler queues the frame too, and the engine's own thread",
        "  answers, against *bare + queue*: bare sockets where each side's reading thread",
        "  hands each frame to the consuming thread through a `queue.Queue` (the least a",
        "  queue-based handler can cost; the bare echo pays no hand-off at all).",
        "* **one 16 MiB frame**: sent and received whole.",
        "* **fan-out of one observation**: the engine has the observation's bytes (encoded",
        "  once) and sends them to each of 64 connected interfaces; timed from the start",
        "  signal until every interface has every frame.",
        "* **broadcast of 1 KiB to N interfaces**: the same with a 1 KiB frame, for 8, 64",
        "  and 256 connected interfaces: how the time per broadcast grows with them (target:",
        "  at most 40x from 8 to 256).",
        "* **game step, N interfaces in 4 processes**: the engine sends each interface its",
        "  observation (pymasep 0.2's `State` of 30 objects and 4 agents, each agent's",
        "  `Belief` written as GraphML text inside it, 42 KB as pymasep-comm encodes it)",
        "  and waits for every interface's action (pymasep's `Action`), for 8, 64 and 256",
        "  interfaces spread over 4 processes; steps per second. pymasep-comm's engine reads",
        "  the actions from its `SocketHandlerQueue`s' queue, as pymasep's engine does.",
        "* Every receiver checks every frame against what was sent: a contender that loses",
        "  or garbles one has no number (integration_tests/benchmarks/test_delivery.py runs",
        "  them all on a few frames in the default test run).",
        "* **200-step pymasep game**: pymasep 0.2's own engine and interface (two processes,",
        "  TCP) play integration_tests/pymasep's crowd game (100 objects, 201 observations),",
        "  on pymasep-comm installed over pymasep 0.2 and on 0.2 alone; at most 3 rounds.",
        "  Ratios of the game's wall time and of both processes' CPU time. pymasep paces",
        "  its loops (60 frames/s in the interface), so most of the time is pymasep's.",
        "* **recording on** (integration_tests/benchmarks/recording.py): the stream and",
        "  the pymasep game with both processes recording (`PYMASEP_COMM_RECORD`), against",
        "  themselves with recording off; *time* is the time with recording over without.",
        "",
        "Contenders: *bare Python* is plain `socket` code (one `sendall` per frame, one",
        "`selectors` loop reading every interface's socket, in each process; *bare +",
        "queue* for the queued round trip); *pymasep 0.2* is",
        "the original (PyPI `pymasep==0.2`) in its own virtualenv, as a 0.2 game would use",
        "it; *pyzmq* is ZeroMQ DEALER (interface) / ROUTER (engine) over TCP, the ROUTER",
        "blocking rather than dropping when a queue is full.",
        "",
        "## Reading the table",
        "",
        "* pymasep-comm moves every connection's bytes in one I/O thread per process",
        "  (selectors), as the bare broadcast baseline reads every socket from one loop;",
        "  the sender's thread writes directly while the kernel takes the bytes. A handler",
        "  whose `on_receive` may block gets a delivery thread; the benchmarks' handlers",
        "  say they never block (`receive_may_block = False`), as `SocketHandlerQueue` is.",
        "* Where pymasep 0.2 has no number, the note says why: it cannot carry the frame,",
        "  or it garbled frames or stalled (its receiver reads a frame with one `recv()`",
        "  and never asks for the rest). 0.2 is not run again for a workload once it failed.",
        "  Its round trip waits for TCP's delayed acknowledgement (it writes a frame in two",
        "  pieces without `TCP_NODELAY`), hence its outsized ratio.",
        "* The broadcasts send one-way frames to each connection, as a stream: after 16 in a",
        "  row, a connection queues them for the I/O thread, which coalesces them into large",
        "  writes (`sendmsg`) until something is received.",
        "",
        "## Run",
        "",
        "```",
        f"python {platform.python_version()} on {platform.system()} {platform.machine()},"
        f" {os.cpu_count()} CPUs, {datetime.date.today().isoformat()}",
        "```",
        "",
    ]
    page.write_text("\n".join(lines))
