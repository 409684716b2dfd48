"""Run every benchmark and print one table of ratios against same-run baselines.

Usage: ``nox -s bench`` (or ``python benchmarks/run.py [--rounds N]`` with the three
distributions installed). A ratio above 1 means faster than the baseline.

``nox -s bench -- --quick`` is for checking the benchmarks themselves, not for figures:
one round of the transport, TLS and contender rows, with a tenth of the frames and
steps, without the codec and the pymasep game, and the page written to the working
directory (the session's scratch one) instead of docs/.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import contenders
import message_codec
import pymasep_game
import recording
import report
import transport

DOCS = Path(__file__).resolve().parents[2] / "docs"

# Targets of the transport rows (issues 6 and 17), by row name, as the lowest acceptable
# ratio (ours / baseline, higher is faster). The other rows carry their own.
TARGETS = {
    "stream of 1 KiB frames vs length-prefixed loop": 1.0,
    "round trip of a small frame, a queue on each side vs bare + queue": 0.9,
    "one 16 MiB frame vs bare socket": 0.5,
}


def _target(row: dict[str, Any]) -> float | None:
    if "target" in row:  # rows that carry their own target (None: no target)
        target: float | None = row["target"]
        return target
    return TARGETS.get(str(row["name"]))


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"{'workload':<72} {'ratio':>7} {'target':>8}  verdict")
    for row in rows:
        target = _target(row)
        at_most = report.at_most(row)
        shown = "" if target is None else f"{'<=' if at_most else ''}{target:.2f}x"
        if row["ratio"] is None:  # a contender that could not do the workload
            print(f"{row['name']:<72} {'-':>7} {shown:>8}  {row.get('note', '')}")
            continue
        verdict = "" if target is None else ("met" if report.met(row, target) else "MISSED")
        print(f"{row['name']:<72} {row['ratio']:>6.2f}x {shown:>8}  {verdict}")


def _quick() -> None:
    """A tenth of the frames, broadcasts and steps: for checking, never for figures."""
    transport.STREAM_FRAMES //= 10
    transport.ROUND_TRIPS //= 10
    contenders.FAN_OUT_BROADCASTS //= 10
    contenders.SCALE = {n: max(10, count // 10) for n, count in contenders.SCALE.items()}
    contenders.GAME_STEPS = {n: max(3, steps // 10) for n, steps in contenders.GAME_STEPS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, help="rounds per workload (default 5, quick 1)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="check the benchmarks: fewer frames, no codec or game, the page written here",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    if args.quick:
        _quick()
        rows = transport.run(rounds) + transport.run_tls(rounds) + contenders.run(rounds)
        rows += transport.run_resume(rounds)
        page, chart = Path("benchmarks.md").resolve(), Path("benchmarks.png").resolve()
    else:
        rows = message_codec.run(rounds) + transport.run(rounds)
        rows += transport.run_tls(rounds)
        rows += contenders.run(rounds)
        rows += pymasep_game.run(min(rounds, 3))  # a game takes seconds: 3 rounds at most
        rows += recording.run(rounds)  # what recording costs (a section of its own)
        rows += transport.run_resume(rounds)  # what resuming costs (a section too)
        page, chart = DOCS / "benchmarks.md", DOCS / "_static" / "benchmarks.png"
    _print(rows)
    report.write(rows, page, chart, rounds, _target)
    print(f"page: {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
