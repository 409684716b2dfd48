"""pymasep 0.2's ``pymasep.communication.message``: :class:`~pymasep.comm.core.Message`."""

from __future__ import annotations

from pymasep.comm.core import Message

__all__ = ["Message"]
