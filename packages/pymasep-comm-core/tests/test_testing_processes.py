"""The test support's process runner (pymasep.comm.core.testing.processes): a command
runs in a group of its own, and nothing of the group outlives the call."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from pymasep.comm.core.testing.processes import run_in_group

pytestmark = pytest.mark.disable_socket


def _ended(pid: int) -> bool:
    """Whether ``pid`` has ended (exited, maybe not yet reaped by its new parent)."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([descriptor], [], [], 10)[0])  # readable once it exits
    finally:
        os.close(descriptor)


def test_the_output_and_status_come_back_and_what_the_command_left_running_is_killed() -> None:
    # The straggler does not hold the output pipes, as a daemon would not.
    script = "sleep 60 >/dev/null 2>&1 & echo $!; echo oops >&2; exit 3"
    done = run_in_group(["sh", "-c", script], timeout=30)
    assert (done.returncode, done.stderr) == (3, "oops\n")
    assert _ended(int(done.stdout))


def test_a_command_past_its_timeout_is_killed_with_what_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; exec sleep 60"
    with pytest.raises(subprocess.TimeoutExpired):
        run_in_group(["sh", "-c", script], timeout=2)
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2 and all(map(_ended, started))


def test_the_working_directory_and_environment_are_the_given_ones(tmp_path: Path) -> None:
    code = "import os; print(os.getcwd(), os.environ['ONLY'], 'PATH' in os.environ)"
    done = run_in_group([sys.executable, "-c", code], 30, cwd=str(tmp_path), env={"ONLY": "x"})
    assert done.stdout.split() == [str(tmp_path), "x", "False"]
