"""pymasep 0.2's ``pymasep.communication.client``: :class:`~pymasep.comm.client.Client`.

Importing this module needs pymasep-comm-client: without it, the package's lazy lookup
raises the ImportError that names the distribution to install.
"""

from __future__ import annotations

from pymasep.communication import Client

__all__ = ["Client"]
