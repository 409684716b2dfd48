"""pymasep 0.2's ``pymasep.communication.socket_handler_queue``:
:class:`~pymasep.comm.core.SocketHandlerQueue`."""

from __future__ import annotations

from pymasep.comm.core import SocketHandlerQueue

__all__ = ["SocketHandlerQueue"]
