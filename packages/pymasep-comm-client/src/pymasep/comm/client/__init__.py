"""pymasep-comm client: the interface's side of the connection.

:class:`Client` connects to an engine, found by address or by discovery, over the v1
wire or the legacy wire of pymasep 0.2.
"""

from __future__ import annotations

from .client import Client

__all__ = ["Client"]
