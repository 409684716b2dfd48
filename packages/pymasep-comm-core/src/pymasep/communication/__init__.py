"""pymasep 0.2's import path, served by pymasep-comm.

Code written for ``pymasep.communication`` works by changing only its dependencies:
Message, Frame, SocketHandler, SocketHandlerQueue and BaseThreadedCommunication come from
pymasep-comm-core; Server and Client come from pymasep-comm-server and
pymasep-comm-client when those distributions are installed.

0.2's modules are here too (``pymasep.communication.message``, ``.frame``,
``.base_threaded_communication``, ``.socket_handler``, ``.socket_handler_queue``,
``.server``, ``.client``), each serving the same class, because pymasep's own code imports
them: installed over pymasep 0.2, this distribution replaces every file of its
``pymasep/communication/`` (``python -m pymasep.comm.core`` checks that it did).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pymasep.comm.core import (
    BaseThreadedCommunication,
    Frame,
    Message,
    SocketHandler,
    SocketHandlerQueue,
)

if TYPE_CHECKING:
    from pymasep.comm.client import Client
    from pymasep.comm.server import Server

__all__ = [
    "BaseThreadedCommunication",
    "Client",
    "Frame",
    "Message",
    "Server",
    "SocketHandler",
    "SocketHandlerQueue",
]

# Server and Client live in their own distributions: an engine installs only the server,
# an interface only the client. Resolve them on first use.
_LAZY = {
    "Server": ("pymasep.comm.server", "pymasep-comm-server"),
    "Client": ("pymasep.comm.client", "pymasep-comm-client"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, distribution = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            raise ImportError(
                f"pymasep.communication.{name} needs the {distribution} distribution: "
                f"pip install {distribution}",
                name=module_name,
            ) from error
        raise
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
