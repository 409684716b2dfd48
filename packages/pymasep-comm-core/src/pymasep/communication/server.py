"""pymasep 0.2's ``pymasep.communication.server``: :class:`~pymasep.comm.server.Server`.

Importing this module needs pymasep-comm-server: without it, the package's lazy lookup
raises the ImportError that names the distribution to install.
"""

from __future__ import annotations

from pymasep.communication import Server

__all__ = ["Server"]
