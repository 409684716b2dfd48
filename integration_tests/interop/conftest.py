"""Interop tests: pymasep-comm against the real pymasep 0.2, each in its own process.

Run them with ``nox -s interop``, which installs pymasep 0.2 from PyPI into a virtualenv
of its own and names its interpreter in ``PYMASEP02_PYTHON``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

import pytest
from harness import PYTHON_VARIABLE, python02

_PROBE = (
    "import json, importlib.metadata as m, pymasep.communication as c; "
    "print(json.dumps([m.version('pymasep'), c.__file__]))"
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to run (rather than skip) without a working pymasep 0.2 interpreter."""
    try:
        python = python02()
    except RuntimeError as error:
        raise pytest.UsageError(str(error)) from None
    if hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the controller has probed it already
    env = dict(os.environ, PYGAME_HIDE_SUPPORT_PROMPT="1", SDL_VIDEODRIVER="dummy")
    try:
        with tempfile.TemporaryDirectory() as cwd:  # importing 0.2 may write logs/ there
            probe = subprocess.run(
                [python, "-c", _PROBE],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=cwd,
                env=env,
                check=False,
            )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise pytest.UsageError(f"{PYTHON_VARIABLE}={python} does not run: {error}") from None
    if probe.returncode != 0:
        raise pytest.UsageError(
            f"{PYTHON_VARIABLE}={python} cannot import pymasep 0.2:\n{probe.stderr[-2000:]}"
        )
    version, path = json.loads(probe.stdout.strip().splitlines()[-1])
    if version != "0.2":
        raise pytest.UsageError(f"{PYTHON_VARIABLE}={python} has pymasep {version}, not 0.2")
    session.config.stash[_VERSION] = f"pymasep {version} at {path}"


_VERSION = pytest.StashKey[str]()


def pytest_report_header(config: pytest.Config) -> str:
    return f"peer: {config.stash.get(_VERSION, '?')}"
