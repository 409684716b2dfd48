"""Checks that the server's and the client's suites make alike: the constructor that
pymasep 0.2 documents, and where the logs go."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from pymasep.comm.core.communication import BaseThreadedCommunication

__all__ = ["assert_logged_only_to_the_package", "assert_seed_constructor"]


def assert_seed_constructor(cls: type[Any], positional: list[tuple[str, Any]]) -> None:
    """``cls`` is a :class:`BaseThreadedCommunication` whose constructor takes the seed's
    ``positional`` parameters (name, default; ``inspect.Parameter.empty`` for none), in
    order, and anything else by keyword only, with a default."""
    parameters = list(inspect.signature(cls).parameters.values())
    assert [
        (p.name, p.default) for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD
    ] == positional
    for extra in parameters[len(positional) :]:
        assert extra.kind is extra.KEYWORD_ONLY and extra.default is not extra.empty, extra
    assert issubclass(cls, BaseThreadedCommunication)


def assert_logged_only_to_the_package(
    caplog: pytest.LogCaptureFixture, workdir: Path, logger: str, level: str | int, peer: str
) -> None:
    """The records of a run at ``level`` went to ``logger`` only, with the communication's
    id ``logged``, none at ERROR (nothing went wrong) and the ``peer`` named otherwise;
    nothing was written to the working directory."""
    assert list(workdir.iterdir()) == []  # no logs/ directory, no file at all
    assert {r.name for r in caplog.records} <= {logger}
    assert {getattr(r, "comm_id", None) for r in caplog.records} <= {"logged"}
    if level == "ERROR":
        assert caplog.records == []
    else:
        assert any(peer in r.getMessage() for r in caplog.records)
