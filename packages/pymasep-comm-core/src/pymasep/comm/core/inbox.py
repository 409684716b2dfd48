"""What a handler's delivery thread has not delivered yet: :class:`Inbox`.

The I/O thread puts the frames it reads for a handler that has a delivery thread of its
own (see :class:`~pymasep.comm.core.SocketHandler`); the delivery thread takes them in
order, then the connection's end. The inbox is bounded: past :data:`RECEIVE_LIMIT`
bytes it asks the driver to stop reading that connection, and once the delivery thread
has taken everything, to read again. A handler that falls behind is then slowed down by
TCP, as a peer process would be, instead of making the engine hold its frames.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from .connection import DisconnectReason
from .frame import Frame

__all__ = ["RECEIVE_LIMIT", "Inbox"]

RECEIVE_LIMIT = 16 * 1024 * 1024
"""Bytes received that a handler with a delivery thread may hold undelivered before its
connection stops being read."""


class Inbox:
    """Frames handed from the I/O thread to one delivery thread, then the end.

    Args:
        pause_reading: Called with True to stop reading the connection, False to read
            again (the driver's ``pause_reading``).
        limit: Bytes held past which reading stops.
    """

    def __init__(self, pause_reading: Callable[[bool], None], limit: int = RECEIVE_LIMIT) -> None:
        self._items: deque[Frame | DisconnectReason] = deque()
        self._bytes = 0
        self._paused = False
        self._changed = threading.Condition(threading.Lock())
        self._pause_reading = pause_reading
        self._limit = limit

    def put(self, frames: list[Frame]) -> None:
        """Add frames (from the I/O thread); stop reading past the limit."""
        with self._changed:
            self._items.extend(frames)
            self._bytes += sum(frame.size for frame in frames)
            self._changed.notify()
            pause = self._bytes > self._limit and not self._paused
            if pause:
                self._paused = True
        if pause:
            self._pause_reading(True)

    def end(self, reason: DisconnectReason) -> None:
        """The connection ended: the delivery thread gets ``reason`` after the frames."""
        with self._changed:
            self._items.append(reason)
            self._changed.notify()

    def take(self) -> list[Frame | DisconnectReason]:
        """Everything held, in order, once there is something (the delivery thread)."""
        with self._changed:
            while not self._items:
                self._changed.wait()
            items = list(self._items)
            self._items.clear()
            self._bytes = 0
            resume, self._paused = self._paused, False
        if resume:
            self._pause_reading(False)
        return items
