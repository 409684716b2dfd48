"""What a newcomer meets first: nox --list, nox -s version, the demo's --help."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REST = re.compile(r"``|:(func|mod|class|meth|attr):`")


def _run(*command: str) -> str:
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@functools.cache
def _nox_list() -> str:
    return _run(sys.executable, "-m", "nox", "--list", "--no-color")


def test_nox_list_describes_each_session_in_one_plain_complete_line() -> None:
    listing = _nox_list()
    header = listing.split("Sessions defined in", 1)[0]
    assert header.strip() and not REST.search(header)
    sessions = re.findall(r"^[*-] (\S+) -> (.*)$", listing, re.MULTILINE)
    assert len(sessions) >= 10
    for name, description in sessions:
        assert description.endswith("."), f"{name}: cut mid-sentence: {description!r}"
        assert len(f"* {name} -> {description}") <= 100, name
        assert not REST.search(description), name


def test_nox_version_prints_the_version() -> None:
    printed = _run(sys.executable, "-m", "nox", "-s", "version", "--no-color")
    assert printed.strip() == (ROOT / "VERSION").read_text().strip()


def test_the_demo_help_is_plain_text() -> None:
    help_text = _run(
        sys.executable, str(ROOT / "integration_tests" / "games" / "demo.py"), "--help"
    )
    assert "nox -s demo" in " ".join(help_text.split())  # argparse wraps to the terminal
    assert not REST.search(help_text)


def test_ci_runs_lint_and_typecheck_once_and_the_rest_of_the_default_run_per_python() -> None:
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    jobs = dict(re.findall(r"^  (\w+):\n(.*?)(?=^  \w+:\n|\Z)", workflow, re.MULTILINE | re.DOTALL))
    once = re.findall(r"nox -s (.+)$", jobs["checks"], re.MULTILINE)
    per_python = re.findall(r"^\s+-s (.+)$", jobs["tests"], re.MULTILINE)
    assert "matrix" not in jobs["checks"] and "matrix" in jobs["tests"]
    default = _nox_list()
    selected = re.findall(r"^\* (\w+)", default, re.MULTILINE)
    assert once == ["lint typecheck"]
    assert len(per_python) == 1
    assert sorted(once[0].split() + per_python[0].split()) == sorted(dict.fromkeys(selected))
    assert selected[-1] == "coverage"  # last: it combines what the others measured


SYS_PATH_EDIT = re.compile(r"sys\.path\.(insert|append|extend)\(|sys\.path\s*(\[[^]]*\])?\s*\+?=")


def test_no_code_edits_sys_path() -> None:
    # Test support is an installed package (pymasep.comm.core.testing); a script finds
    # its neighbours because its own folder comes first on sys.path, a test module
    # because pytest puts its folder there.
    places = [ROOT / "noxfile.py"]
    for top in ("packages", "integration_tests"):
        places += (p for p in (ROOT / top).rglob("*.py") if ".nox" not in p.parts)
    edits = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in places
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SYS_PATH_EDIT.search(line)
    ]
    assert len(places) > 100 and edits == []
