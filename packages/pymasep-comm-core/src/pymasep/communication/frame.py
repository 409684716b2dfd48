"""pymasep 0.2's ``pymasep.communication.frame``: :class:`~pymasep.comm.core.Frame`."""

from __future__ import annotations

from pymasep.comm.core import Frame

__all__ = ["Frame"]
