"""Every keyword a Server or a Client takes beyond the seed's arguments can be set without
code, as pymasep needs (it builds both with the seed's arguments only): the table of
options (pymasep.comm.core.settings) has a setting for it, with the constructor's default.
One test for both sides, where both and the table are installed."""

from __future__ import annotations

import inspect
import logging

import pytest

from pymasep.comm.client import Client
from pymasep.comm.core.settings import OPTIONS, Option
from pymasep.comm.server import Server

SIDES: dict[str, type[Server] | type[Client]] = {"server": Server, "client": Client}


def _parameters(side: str) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(SIDES[side]).parameters)  # its constructor's


@pytest.mark.parametrize("side", SIDES)
def test_every_option_beyond_the_seeds_arguments_has_a_setting(side: str) -> None:
    # The seed's arguments come before the bare *; every keyword-only one is settable.
    added = {p.name for p in _parameters(side).values() if p.kind is p.KEYWORD_ONLY}
    settable = {o.argument for o in OPTIONS if side in o.sides}
    assert added - settable == set()


@pytest.mark.parametrize(
    ("side", "option"),
    [(side, option) for side in SIDES for option in OPTIONS if side in option.sides],
    ids=lambda value: value if isinstance(value, str) else value.name,
)
def test_every_option_feeds_a_parameter_with_the_same_default(side: str, option: Option) -> None:
    parameter = _parameters(side)[option.argument]
    if option.argument == "log_level":
        assert logging.getLevelName(str(option.default)) == parameter.default
    elif option.argument == option.name:
        assert option.default == parameter.default
