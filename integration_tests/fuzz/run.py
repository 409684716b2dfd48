"""Run the fuzz targets under atheris (libFuzzer, coverage-guided), one process each.

Usage (``nox -s fuzz -- ...`` passes the same arguments)::

    run.py [--seconds N] [--target NAME ...] [--out DIR]
    run.py --replay FILE ...        # run inputs through their target, plain Python

Each target starts from its seed corpus (``corpus/<target>``, kept in the repository)
plus what earlier runs in the same ``--out`` found, and stops after ``--seconds``. A
crash (an undocumented exception, or a :class:`fuzztargets.BrokenContractError`) is saved as
``<out>/crashes/<target>-crash-*``, and the run fails. ``--replay`` shows its traceback;
turn it into a regression test in the unit suite of the code it broke, and copy the
input to ``corpus/<target>/regress-<what>`` so that every later run starts from it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent

CORPUS = HERE / "corpus"
DICTIONARIES = HERE / "dictionaries"
DEFAULT_SECONDS = 6
"""Per target: with five targets, the whole run stays under a minute."""

_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_COVERAGE = re.compile(r"#\d+\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)")


def worker(target: str, libfuzzer_args: list[str]) -> None:
    """Fuzz one target in this process (atheris owns it until the time is up)."""
    import atheris

    with atheris.instrument_imports(include=["pymasep", "fuzztargets", "fuzzinput"]):
        import fuzztargets

    atheris.Setup([sys.argv[0], *libfuzzer_args], fuzztargets.TARGETS[target])
    atheris.Fuzz()


def fuzz(target: str, seconds: int, out: Path) -> dict[str, object]:
    """Fuzz ``target`` for ``seconds`` in a child process; return what it reported."""
    from fuzztargets import MAX_LEN

    grown = out / "corpus" / target  # libFuzzer adds what it finds to the first folder
    crashes = out / "crashes"
    grown.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    args = [
        str(grown),
        str(CORPUS / target),
        f"-max_total_time={seconds}",
        f"-max_len={MAX_LEN[target]}",
        "-timeout=10",  # one input taking 10 s is a hang: a finding
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={crashes}/{target}-",
    ]
    dictionary = DICTIONARIES / f"{target}.dict"
    if dictionary.exists():
        args.append(f"-dict={dictionary}")
    log = out / f"{target}.log"
    started = time.monotonic()
    with log.open("w") as output:
        code = subprocess.run(
            [sys.executable, __file__, "--worker", target, "--", *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=seconds + 120,
            check=False,
        ).returncode
    text = log.read_text(errors="replace")
    executed = _EXECUTED.search(text)
    coverage = _COVERAGE.findall(text)
    return {
        "target": target,
        "ok": code == 0,
        "executions": int(executed.group(1)) if executed else None,
        "coverage": int(coverage[-1][0]) if coverage else None,
        "corpus": int(coverage[-1][2]) if coverage else None,
        "seconds": round(time.monotonic() - started, 1),
        "crashes": sorted(str(path) for path in crashes.glob(f"{target}-*")),
        "log": str(log),
    }


def replay(paths: list[Path]) -> int:
    """Run each input through the target its folder or file name names; print failures."""
    from fuzztargets import TARGETS

    failed = 0
    for path in paths:
        target = next(
            (name for name in TARGETS if path.parent.name == name or path.name.startswith(name)),
            None,
        )
        if target is None:
            print(f"{path}: cannot tell its target (put it in corpus/<target>/ or name it so)")
            failed += 1
            continue
        try:
            TARGETS[target](path.read_bytes())
        except Exception:
            failed += 1
            print(f"--- {path} ({target}) fails:")
            traceback.print_exc()
        else:
            print(f"{path} ({target}): passes")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=DEFAULT_SECONDS, help="per target")
    parser.add_argument("--target", action="append", help="only this target (repeatable)")
    parser.add_argument("--out", type=Path, help="where the grown corpus, logs and crashes go")
    parser.add_argument("--replay", type=Path, nargs="+", help="run these inputs and stop")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("libfuzzer", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        worker(options.worker, options.libfuzzer)
        return 0
    if options.replay:
        return replay(options.replay)
    from fuzztargets import TARGETS

    targets = options.target or list(TARGETS)
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; there are {sorted(TARGETS)}")
    out = options.out or Path(tempfile.mkdtemp(prefix="pymasep-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    results = [fuzz(target, options.seconds, out) for target in targets]
    print(f"\n{'target':<10} {'result':<7} {'executions':>11} {'cov':>6} {'corpus':>7} {'s':>6}")
    for row in results:
        print(
            f"{row['target']:<10} {'ok' if row['ok'] else 'CRASH':<7} "
            f"{row['executions'] or '?':>11} {row['coverage'] or '?':>6} "
            f"{row['corpus'] or '?':>7} {row['seconds']:>6}"
        )
    failures = [row for row in results if not row["ok"]]
    for row in failures:
        print(f"\n{row['target']}: see {row['log']}")
        for crash in row["crashes"]:  # type: ignore[attr-defined]
            print(f"  crash input: {crash}\n  reproduce:   python {__file__} --replay {crash}")
        if not row["crashes"]:
            print("  no crash input saved: the fuzzer itself failed (the log says why)")
    print(f"\noutput in {out}")
    if options.out is None and not failures:
        shutil.rmtree(out, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
