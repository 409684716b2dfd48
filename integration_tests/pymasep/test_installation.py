"""The documented installation: pymasep 0.2, then pymasep-comm over it, and the check.

``nox -s pymasep`` installs them as docs/migration.md says; these tests check what
``python -m pymasep.comm.core`` says about it, and that its fix works when pymasep is
reinstalled over pymasep-comm (the one way a user gets a mix).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

QUIET = dict(os.environ, PYGAME_HIDE_SUPPORT_PROMPT="1")


def check(python: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Importing pymasep 0.2 may write logs/ into the working directory: a scratch one.
    return subprocess.run(
        [python, "-m", "pymasep.comm.core"],
        capture_output=True, text=True, timeout=120, cwd=cwd, env=QUIET, check=False,
    )  # fmt: skip


def test_no_code_of_pymasep_0_2_is_left_in_pymasep_communication(
    python: str, tmp_path: Path
) -> None:
    done = check(python, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is served by pymasep-comm-core" in done.stdout
    assert "Server: pymasep-comm-server" in done.stdout
    assert "Client: pymasep-comm-client" in done.stdout


def test_pymasep_reinstalled_over_pymasep_comm_is_reported_and_fixed(
    python: str, tmp_path: Path
) -> None:
    pip = [python, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps"]
    try:
        subprocess.run([*pip, "pymasep==0.2"], check=True, timeout=300, capture_output=True)
        done = check(python, tmp_path)
        assert done.returncode == 1
        assert "is not pymasep-comm's: it is pymasep 0.2" in done.stdout
        fix = next(line for line in done.stdout.splitlines() if line.startswith("Fix: "))
        subprocess.run(shlex.split(fix[len("Fix: ") :]), check=True, timeout=300)
    finally:
        fixed = check(python, tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
