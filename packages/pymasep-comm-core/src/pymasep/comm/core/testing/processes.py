"""Run a command in a process group of its own, and leave nothing of it behind.

For the tests' children in network namespaces (:mod:`.netns`) and the benchmarks' runs of
other interpreters (pymasep 0.2's): a child that hangs, or forks something that outlives
it, must not outlive the test or the measurement. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

__all__ = ["run_in_group"]


def run_in_group(
    command: list[str],
    timeout: float,
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a session (process group) of its own and collect its output as
    text; then kill whatever is left of the group: the command itself past ``timeout``, and
    every process it started and left running.

    Args:
        command: The program and its arguments.
        timeout: Seconds the command may run.
        cwd: Its working directory; None keeps this process's.
        env: Its whole environment; None passes this process's.

    Returns:
        The command, its exit status, its standard output and its standard error.

    Raises:
        subprocess.TimeoutExpired: The command ran past ``timeout`` (it is killed first).
    """
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):  # nothing of the group is left
            os.killpg(process.pid, signal.SIGKILL)
        if process.returncode is None:  # timed out: reap it, close its pipes
            process.communicate()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
