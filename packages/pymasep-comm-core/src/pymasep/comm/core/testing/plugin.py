"""The pytest plugin of pymasep-comm's test suites: their shared fixtures and markers.

A test suite loads it from its ``conftest.py``::

    pytest_plugins = ["pymasep.comm.core.testing.plugin"]

A test module whose tests must open no socket (codec, handshake, connection state: the
sans-I/O core) says so in one line, and pytest-socket then makes any socket it opens
fail the test::

    pytestmark = pytest.mark.disable_socket

A module that wants every test checked for threads left behind says
``pytestmark = pytest.mark.usefixtures("no_thread_left_behind")``. No test sees the
``PYMASEP_COMM_*`` variables of the developer's environment (an autouse fixture): a
``PYMASEP_COMM_RECORD`` or a key file set for one's own games would change what every
Server and Client under test does.

A test that drives code other tests cover through millions of iterations (a linearity
guard, say) is marked ``@pytest.mark.no_cover``: coverage pauses while it runs, which
would otherwise multiply its time several times over.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "no_cover: run with coverage measurement paused (long loops only)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    measuring = _coverage() if item.get_closest_marker("no_cover") else None
    if measuring is not None:
        measuring.stop()
    try:
        return (yield)
    finally:
        if measuring is not None:
            measuring.start()


def _coverage() -> Any:
    """The coverage measurement this process runs under, if any."""
    try:
        import coverage
    except ImportError:
        return None
    return coverage.Coverage.current()


@pytest.fixture
def no_thread_left_behind() -> Iterator[None]:
    """Every thread a test starts (handlers, servers, clients, helpers) has ended after it."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2
    for thread in set(threading.enumerate()) - before:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert [t.name for t in set(threading.enumerate()) - before if t.is_alive()] == []


@pytest.fixture(autouse=True)
def no_settings_of_the_developer(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``PYMASEP_COMM_*`` variable of the developer's environment reaches the test."""
    for variable in list(os.environ):
        if variable.startswith("PYMASEP_COMM_"):
            monkeypatch.delenv(variable)


@pytest.fixture
def inbox() -> queue.Queue[bytes]:
    """A queue for a SocketHandlerQueue's (or a Recorder's) received payloads."""
    return queue.Queue()


@pytest.fixture
def ended() -> queue.Queue[Any]:
    """A queue for a Recorder's ``on_disconnect`` reasons."""
    return queue.Queue()
