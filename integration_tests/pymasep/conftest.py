"""pymasep 0.2's own engine and interfaces on pymasep-comm: ``nox -s pymasep``.

The session installs pymasep 0.2 from PyPI into a virtualenv, then pymasep-comm's three
wheels over it, as docs/migration.md says, and names its interpreter in
``PYMASEP_ON_COMM_PYTHON``. These tests run in the session's own virtualenv, which holds
pytest and pymasep-comm-core alone (for the test helpers), not pymasep.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PYTHON_VARIABLE = "PYMASEP_ON_COMM_PYTHON"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to run (rather than skip everything) without the interpreter to test."""
    python = os.environ.get(PYTHON_VARIABLE)
    if not python or not Path(python).exists():
        raise pytest.UsageError(
            f"{PYTHON_VARIABLE} must name the interpreter of a virtualenv with pymasep 0.2 "
            "and pymasep-comm installed over it: run nox -s pymasep"
        )


@pytest.fixture(scope="session")
def python() -> str:
    """The interpreter of pymasep 0.2 with pymasep-comm installed over it."""
    return os.environ[PYTHON_VARIABLE]
