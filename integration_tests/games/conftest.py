"""Games played across processes and virtualenvs: ``nox -s games``.

The session builds the three wheels, installs pymasep-comm-server (with core) in one
virtualenv and pymasep-comm-client (with core) in another, and names their interpreters
in ``GAMES_ENGINE_PYTHON`` and ``GAMES_INTERFACE_PYTHON``. These tests run in a third
virtualenv that holds pytest and nothing of pymasep-comm.
"""

from __future__ import annotations

import pytest
from games_harness import interpreters


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to run (rather than skip everything) without the two interpreters."""
    try:
        interpreters()
    except RuntimeError as error:
        raise pytest.UsageError(str(error)) from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    try:
        engine, interface = interpreters()
    except RuntimeError:
        return []
    return [f"engine python: {engine}", f"interface python: {interface}"]


@pytest.fixture(scope="session")
def pythons() -> tuple[str, str]:
    """The engine's and the interfaces' interpreters."""
    return interpreters()
