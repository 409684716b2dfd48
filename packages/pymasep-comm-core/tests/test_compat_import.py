"""``pymasep.communication``: pymasep 0.2's import path, with only core installed."""

from __future__ import annotations

import importlib
import importlib.util
from importlib import metadata

import pytest

import pymasep.communication as communication
from pymasep.comm import core

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test


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


# pymasep 0.2's pymasep/communication/, file by file: pymasep's own code imports these
# submodules (pymasep.application.sub_app imports .message, .frame and
# .base_threaded_communication).
LAYOUT_02 = {
    "message": "Message",
    "frame": "Frame",
    "base_threaded_communication": "BaseThreadedCommunication",
    "socket_handler": "SocketHandler",
    "socket_handler_queue": "SocketHandlerQueue",
}


@pytest.mark.parametrize(("module", "name"), sorted(LAYOUT_02.items()))
def test_0_2_submodules_serve_the_classes_of_core(module: str, name: str) -> None:
    submodule = importlib.import_module(f"pymasep.communication.{module}")
    assert getattr(submodule, name) is getattr(core, name)
    assert submodule.__all__ == [name]


@pytest.mark.parametrize(
    ("module", "name", "distribution"),
    [("server", "Server", "pymasep-comm-server"), ("client", "Client", "pymasep-comm-client")],
)
def test_server_and_client_submodules_need_their_distribution(
    module: str, name: str, distribution: str
) -> None:
    if importlib.util.find_spec(f"pymasep.comm.{module}") is not None:
        submodule = importlib.import_module(f"pymasep.communication.{module}")
        assert getattr(submodule, name) is getattr(communication, name)
        return
    with pytest.raises(ImportError, match=f"pip install {distribution}"):
        importlib.import_module(f"pymasep.communication.{module}")
    # A failed import leaves nothing half-initialised behind: it fails the same way again.
    with pytest.raises(ImportError, match=f"pip install {distribution}"):
        importlib.import_module(f"pymasep.communication.{module}")


def test_the_wheel_ships_every_file_of_0_2s_communication_package() -> None:
    # Installed over pymasep 0.2, these paths overwrite all of 0.2's Python files, so
    # none of its code is left in pymasep.communication.
    files_02 = {"__init__", "client", "server", *LAYOUT_02}
    recorded = {
        path.stem
        for path in metadata.files("pymasep-comm-core") or []
        if path.parts[:2] == ("pymasep", "communication") and path.suffix == ".py"
    }
    assert recorded == files_02
