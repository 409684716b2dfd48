"""pymasep 0.2's ``pymasep.communication.base_threaded_communication``:
:class:`~pymasep.comm.core.BaseThreadedCommunication`."""

from __future__ import annotations

from pymasep.comm.core import BaseThreadedCommunication

__all__ = ["BaseThreadedCommunication"]
