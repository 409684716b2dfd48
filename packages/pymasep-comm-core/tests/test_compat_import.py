"""``pymasep.communication``: pymasep 0.2's import path, with only core installed."""

from __future__ import annotations

import importlib.util

import pytest

import pymasep.communication as communication
from pymasep.comm import core


def test_core_names_are_the_ones_of_pymasep_comm_core() -> None:
    for name in ("Message", "Frame", "SocketHandler", "SocketHandlerQueue"):
        assert getattr(communication, name) is getattr(core, name)
    assert communication.BaseThreadedCommunication is core.BaseThreadedCommunication
    assert set(communication.__all__) >= {"Server", "Client", "Message", "Frame"}


@pytest.mark.parametrize(
    ("name", "module", "distribution"),
    [
        ("Server", "pymasep.comm.server", "pymasep-comm-server"),
        ("Client", "pymasep.comm.client", "pymasep-comm-client"),
    ],
)
def test_server_and_client_name_the_distribution_to_install(
    name: str, module: str, distribution: str
) -> None:
    if importlib.util.find_spec(module) is not None:
        assert getattr(communication, name).__module__.startswith(module)
        return
    with pytest.raises(ImportError, match=f"pip install {distribution}"):
        getattr(communication, name)


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError):
        communication.Nothing  # noqa: B018


def test_the_namespace_levels_have_no_init() -> None:
    # PEP 420: three distributions share pymasep/ and pymasep/comm/.
    import pymasep
    import pymasep.comm

    assert pymasep.__file__ is None
    assert pymasep.comm.__file__ is None
