"""How a handler's frames reach its callbacks: :class:`Delivery` and :class:`Inbox`.

A :class:`Delivery` calls the handler's ``on_receive`` for each data frame, then, once,
its ``on_closed`` and ``on_disconnect``: in the I/O thread itself, or (a handler whose
``on_receive`` may block) in the handler's own delivery thread, through an inbox.

The I/O thread puts the frames it reads for a handler that has a delivery thread of its
own (see :class:`~pymasep.comm.core.SocketHandler`); the delivery thread takes them in
order, then the connection's end. The inbox is bounded: past :data:`RECEIVE_LIMIT`
bytes it asks the driver to stop reading that connection, and once the delivery thread
has taken everything, to read again. A handler that falls behind is then slowed down by
TCP, as a peer process would be, instead of making the engine hold its frames.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .connection import DisconnectReason
from .frame import Frame

if TYPE_CHECKING:
    from .socket_handler import SocketHandler

__all__ = ["RECEIVE_LIMIT", "Delivery", "Inbox"]

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
        self._frames: deque[Frame] = deque()
        self._end: DisconnectReason | None = None
        self._bytes = 0
        self._paused = False
        self._changed = threading.Condition(threading.Lock())
        self._pause_reading = pause_reading
        self._limit = limit

    def put(self, frames: list[Frame]) -> None:
        """Add frames (from the I/O thread); stop reading past the limit."""
        with self._changed:
            self._frames.extend(frames)
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
            self._end = reason
            self._changed.notify()

    def take(self) -> tuple[list[Frame], DisconnectReason | None]:
        """Every frame held, in order, and the end once it has come, as soon as there is
        something (the delivery thread)."""
        with self._changed:
            while not self._frames and self._end is None:
                self._changed.wait()
            frames, end = list(self._frames), self._end
            self._frames.clear()
            self._bytes = 0
            resume, self._paused = self._paused, False
        if resume:
            self._pause_reading(False)
        return frames, end


class Delivery:
    """Delivers one handler's frames, then its end, to its callbacks.

    Until :meth:`begin` gives it an inbox, it delivers in the calling thread (the I/O
    thread); with one, the I/O thread puts frames in the inbox, and :meth:`run`, the
    handler's delivery thread, delivers them. An exception from a callback is logged:
    the application's bug must not cut the game's connection.

    Args:
        handler: The handler whose callbacks are called.
        log: Where the failures of the callbacks are logged.
    """

    def __init__(self, handler: SocketHandler, log: logging.LoggerAdapter[Any]) -> None:
        self.handler = handler
        self.log = log
        self.on_closed: Callable[[SocketHandler, DisconnectReason], None] | None = None
        """Called before the handler's ``on_disconnect``."""
        self.done = threading.Event()
        """Set once the callbacks of the end have run."""
        self._inbox: Inbox | None = None

    @property
    def threaded(self) -> bool:
        """True when the handler's delivery thread delivers."""
        return self._inbox is not None

    def begin(self, pause_reading: Callable[[bool], None]) -> None:
        """Deliver from the handler's delivery thread from now on, through an inbox."""
        self._inbox = Inbox(pause_reading)

    def take(self, frames: list[Frame]) -> None:
        """Frames from the I/O thread: deliver them, or put them in the inbox."""
        if self._inbox is not None:
            self._inbox.put(frames)
        else:
            self.deliver(frames)

    def deliver(self, frames: list[Frame]) -> None:
        """Call ``on_receive`` for each frame, in order."""
        on_receive = self.handler.on_receive
        for frame in frames:
            try:
                on_receive(frame)
            except Exception:
                self.log.exception("on_receive failed for a frame from %s", self.handler.peer_id)

    def ended(self, reason: DisconnectReason) -> None:
        """The connection ended: run the callbacks, after the frames of the inbox."""
        self.handler.disconnect_reason = reason
        if self._inbox is not None:
            self._inbox.end(reason)
        else:
            self._run_callbacks(reason)

    def run(self) -> None:
        """Deliver the inbox until the end, then run the callbacks (the delivery thread)."""
        assert self._inbox is not None, "begin() first"
        while True:
            frames, reason = self._inbox.take()
            self.deliver(frames)
            if reason is not None:
                self._run_callbacks(reason)
                return

    def _run_callbacks(self, reason: DisconnectReason) -> None:
        handler = self.handler
        self.log.info("connection to %s ended: %s", handler.peer_id or handler.addr, reason)
        try:
            if self.on_closed is not None:
                self.on_closed(handler, reason)
        except Exception:
            self.log.exception("on_closed failed for %s", handler.peer_id)
        try:
            handler.on_disconnect(reason)
        except Exception:
            self.log.exception("on_disconnect failed for %s", handler.peer_id)
        self.done.set()
