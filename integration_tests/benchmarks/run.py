"""Run every benchmark and print one table of ratios against same-run baselines.

Usage: ``nox -s bench`` (or ``python benchmarks/run.py [--rounds N]`` with the three
distributions installed). A ratio above 1 means faster than the baseline.
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

# Targets from the issues, as the lowest acceptable ratio (ours / baseline, higher is faster).
TARGETS = {
    "stream": 0.5,
    "round trip": 0.5,
    "16 MiB": 0.5,
}


def _target(row: dict[str, Any]) -> float | None:
    if "target" in row:  # rows that carry their own target (None: no target)
        target: float | None = row["target"]
        return target
    return next((value for key, value in TARGETS.items() if key in str(row["name"])), None)


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"{'workload':<64} {'ratio':>7} {'target':>7}  verdict")
    for row in rows:
        target = _target(row)
        shown = "" if target is None else f"{target:.2f}x"
        if row["ratio"] is None:  # a contender that could not do the workload
            print(f"{row['name']:<64} {'-':>7} {shown:>7}  {row.get('note', '')}")
            continue
        verdict = "" if target is None else ("met" if row["ratio"] >= target else "MISSED")
        print(f"{row['name']:<64} {row['ratio']:>6.2f}x {shown:>7}  {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload (default 5)")
    args = parser.parse_args(argv)
    rows = message_codec.run(args.rounds) + transport.run(args.rounds)
    rows += transport.run_tls(args.rounds)
    rows += contenders.run(args.rounds)
    rows += pymasep_game.run(min(args.rounds, 3))  # a game takes seconds: 3 rounds at most
    rows += recording.run(args.rounds)  # what recording costs (a section of its own)
    _print(rows)
    report.write(
        rows, DOCS / "benchmarks.md", DOCS / "_static" / "benchmarks.png", args.rounds, _target
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
