"""A hook on every connection's events: :class:`Tap`.

A tap sees what a :class:`~pymasep.comm.core.Connection` sees, as it happens: the
connection opening (peer, address, wire, whether a key authenticated it, TLS), each data
frame sent and received (its payload, its size on the wire, the time), a bye either way,
and the end with its reason. It is what recording, watching and replaying a game are
built on, and what any other observer may use.

Give one to :attr:`~pymasep.comm.core.BaseThreadedCommunication.tap` before the
connections open: the server and the client pass it to each
:class:`~pymasep.comm.core.Connection` they create. A connection without a tap (the
default) pays nothing for the hook but one ``is None`` test where frames come and go.

The methods are called from the process's I/O thread (which reads) and any sender's,
possibly at the same time, for one connection or many: a tap must be thread-safe, quick
(the game waits while it runs), must not send on a connection (it may be called with
the connection's locks held) and must not raise. An exception it raises is logged and
otherwise ignored: the connection goes on.

When each event fires:

* :meth:`Tap.connected`: once, when the connection starts to be driven, before any frame
  received on it is reported. A frame sent in the moment between the server registering
  a connection and starting it can be reported just before it.
* :meth:`Tap.frames_sent`: data frames were handed to the connection to be sent, each
  with the time it was handed. A sender's thread only keeps the frame (the tap's work
  would be part of every frame's cost); the connection tells the tap of the frames it
  keeps at once, in their order: after :data:`SENT_BATCH` of them, after a frame larger
  than 16 KiB, before any later event of the connection (a frame received, a bye, the
  end), and at the latest :data:`SENT_DELAY` seconds after the first. So a frame is
  told before what the connection received after it was sent, and a frame the
  connection then drops, because it ends before the kernel takes the frame, is told as
  sent (the :meth:`Tap.closed` that follows says why). Its default calls
  :meth:`Tap.frame_sent` for each frame. Handshake and control frames are not data
  frames.
* :meth:`Tap.frames_received`: the data frames that one read from the socket completed
  are decoded, in the I/O thread, before the application's ``on_receive`` runs for them;
  they share one time, the read's. Its default calls :meth:`Tap.frame_received` for each
  frame, so that a tap may see them one by one (a tap that wants them cheaply, as the
  recorder, takes them at once).
* :meth:`Tap.bye`: this side wrote its bye (``"out"``), or the peer's arrived (``"in"``).
* :meth:`Tap.closed`: once, when the connection ends, with its
  :class:`~pymasep.comm.core.DisconnectReason` (``reason.graceful`` is False when the
  connection broke).
* :meth:`Tap.broken`: a connection that may resume broke without a bye, and is held
  for its resume window (it has not ended: no :meth:`Tap.closed` yet).
* :meth:`Tap.resumed`: a connection that broke without a bye was resumed on a new
  socket (frames sent again are not reported again: they were reported when first sent).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .connection import DisconnectReason
    from .frame import Frame
    from .wire import Wire

__all__ = ["SENT_BATCH", "SENT_DELAY", "Direction", "Tap"]

Direction = Literal["in", "out"]
"""``"out"``: from this side to the peer; ``"in"``: from the peer to this side."""

SENT_BATCH = 256
"""Data frames sent on a connection that its tap is told of at once, at most (a
stream's frames are told in batches of this many)."""
SENT_DELAY = 0.05
"""Seconds at most between a data frame handed to be sent and the tap told of it."""

_log = logging.getLogger("pymasep.comm.core.tap")


class Tap:
    """Receives a connection's events; override the methods you need (each does nothing
    here). See the module docstring for when each is called and from which thread.

    Times are given twice: ``monotonic`` (``time.monotonic()``, to measure durations)
    and ``wall`` (``time.time()``, seconds since the epoch, to date them).
    """

    def connected(
        self,
        peer_id: str,
        address: Any,
        wire: Wire,
        authenticated: bool,
        tls: bool,
        monotonic: float,
        wall: float,
    ) -> None:
        """A connection opened.

        Args:
            peer_id: Id of the peer.
            address: The peer's address, as the socket gives it (``(host, port)``).
            wire: The wire format spoken.
            authenticated: True if both sides proved they hold a key (the key itself is
                never given).
            tls: True if the connection speaks TLS.
            monotonic: ``time.monotonic()`` then.
            wall: ``time.time()`` then.
        """

    def frame_sent(
        self, peer_id: str, payload: bytes, size: int, monotonic: float, wall: float
    ) -> None:
        """A data frame was handed to the connection to send; called for each frame by
        :meth:`frames_sent` unless it is overridden.

        Args:
            peer_id: Id of the peer.
            payload: The frame's payload (a :class:`~pymasep.comm.core.Message`'s bytes
                for a pymasep game).
            size: Bytes on the wire, header included.
            monotonic: ``time.monotonic()`` when it was handed.
            wall: ``time.time()`` when it was handed.
        """

    def frames_sent(
        self,
        peer_id: str,
        frames: Sequence[Frame],
        header_size: int,
        monotonic: Sequence[float],
        wall_offset: float,
    ) -> None:
        """Data frames were handed to the connection to send (see the module docstring
        for when this is called). Here: :meth:`frame_sent` for each; one that raises is
        logged and the next is told.

        ``frames`` and ``monotonic`` are the tap's to keep: the connection does not use
        them again.

        Args:
            peer_id: Id of the peer.
            frames: The data frames, in the order they were handed.
            header_size: Bytes of each frame's header on the wire: a frame's size on the
                wire is its ``size`` plus this.
            monotonic: ``time.monotonic()`` when each frame was handed.
            wall_offset: ``time.time() - time.monotonic()`` now: a frame's
                ``monotonic`` plus this is the ``time.time()`` when it was handed.
        """
        tell = self.frame_sent
        for frame, handed in zip(frames, monotonic, strict=True):
            try:
                tell(peer_id, frame.message, frame.size + header_size, handed, handed + wall_offset)
            except Exception:
                _log.exception("the tap failed on frame_sent of %s", peer_id)

    def frame_received(
        self, peer_id: str, payload: bytes, size: int, monotonic: float, wall: float
    ) -> None:
        """A data frame arrived from the peer (arguments as :meth:`frame_sent`); called
        for each frame by :meth:`frames_received` unless it is overridden."""

    def frames_received(
        self, peer_id: str, frames: Sequence[Frame], header_size: int, monotonic: float, wall: float
    ) -> None:
        """Data frames arrived from the peer, completed by one read from the socket (one
        frame or hundreds: a stream's read holds many). Here: :meth:`frame_received` for
        each, with the same times; one that raises is logged and the next is told.

        Args:
            peer_id: Id of the peer.
            frames: The data frames, in their order.
            header_size: Bytes of each frame's header on the wire: a frame's size on the
                wire is its ``size`` plus this.
            monotonic: ``time.monotonic()`` after the read.
            wall: ``time.time()`` after the read.
        """
        tell = self.frame_received
        for frame in frames:
            try:
                tell(peer_id, frame.message, frame.size + header_size, monotonic, wall)
            except Exception:
                _log.exception("the tap failed on frame_received of %s", peer_id)

    def bye(self, peer_id: str, direction: Direction, monotonic: float, wall: float) -> None:
        """A bye was written (``"out"``) or received (``"in"``).

        Args:
            peer_id: Id of the peer.
            direction: Which way the bye went.
            monotonic: ``time.monotonic()`` then.
            wall: ``time.time()`` then.
        """

    def closed(self, peer_id: str, reason: DisconnectReason, monotonic: float, wall: float) -> None:
        """The connection ended (called once).

        Args:
            peer_id: Id of the peer.
            reason: Why; ``reason.graceful`` is False when it broke.
            monotonic: ``time.monotonic()`` then.
            wall: ``time.time()`` then.
        """

    def broken(self, peer_id: str, reason: DisconnectReason, monotonic: float, wall: float) -> None:
        """The connection broke without a bye and is held for a resume: it has not
        ended (:meth:`resumed` or :meth:`closed` follows).

        Args:
            peer_id: Id of the peer.
            reason: What broke it.
            monotonic: ``time.monotonic()`` then.
            wall: ``time.time()`` then.
        """

    def resumed(self, peer_id: str, monotonic: float, wall: float) -> None:
        """A connection to ``peer_id`` that broke without a bye was resumed on a new
        socket; the frames it sends again are not reported again."""
