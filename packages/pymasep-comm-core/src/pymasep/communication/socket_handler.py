"""pymasep 0.2's ``pymasep.communication.socket_handler``:
:class:`~pymasep.comm.core.SocketHandler`."""

from __future__ import annotations

from pymasep.comm.core import SocketHandler

__all__ = ["SocketHandler"]
