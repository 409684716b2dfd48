"""pymasep-comm server: the engine's side of the connection.

:class:`Server` accepts the interfaces, refuses those beyond ``max_connection`` or with an
id already connected, and answers discovery queries when asked to.
"""

from __future__ import annotations

from .server import Server

__all__ = ["Server"]
