"""One connection after its handshake, as a state machine (sans-I/O: no sockets here).

A :class:`Connection` takes bytes received and calls to send or close, and hands back
frames to deliver, bytes to write and, in the end, a :class:`DisconnectReason`. It owns
the rules that every transport must agree on:

* **States.** ``OPEN`` (frames go both ways), ``CLOSING`` (this side said it will say
  bye: no new frame is accepted, queued frames still go out, then the bye; frames the
  peer still sends are delivered until it closes too) and ``CLOSED``. The handshake
  before ``OPEN`` belongs to :mod:`pymasep.comm.core.handshake`;
  :meth:`~pymasep.comm.core.Connection.from_handshake` takes over where it ends.
* **Bye.** The side that closes sends its queued frames, then a bye, then ends its
  writing direction, and reads until the peer ends too
  (:data:`~pymasep.comm.core.CLOSED_LOCALLY`). The side that receives a bye ends at once
  (:data:`~pymasep.comm.core.CLOSED_BY_PEER`): its peer reads nothing more, so frames
  still queued for it are dropped. An end of stream without a bye is
  :data:`~pymasep.comm.core.CONNECTION_LOST`.
* **Writing at once or in batches.** A frame is written at once by its sender when
  nothing waits before it, unless the connection is streaming: :data:`STREAM_AFTER`
  frames sent in a row with nothing received and without the queue running dry. Then
  frames are queued and the I/O thread writes them in large writes, which is what makes a
  stream fast at the receiver (few reads of many frames each). A request, a reply, a
  step's observation is written at once. The rule counts events; it reads no clock.
* **Send-side memory and progress** (:class:`SendLimits`): the bytes the kernel has not
  taken yet are bounded, whatever the peer does. Above the bound a sender waits while the
  peer drains (the connection knows when the kernel last took bytes from its queue),
  and a peer that took nothing for ``drain_timeout`` seconds is cut: a peer that reads
  slowly is throttled, one that reads nothing is dropped.
* **Receive-side stall**: a peer that stops in the middle of a frame is cut once
  ``stall_timeout`` seconds pass without a byte, which frees the partial frame.
* **Resuming** (:attr:`Connection.resume <pymasep.comm.core.Connection.resume>`, when
  both sides negotiated it): every data
  frame sent is numbered and held until the peer acknowledges it, every data frame
  received is counted and acknowledged now and then (:mod:`pymasep.comm.core.resume`).
  When the socket breaks without a bye, :meth:`~pymasep.comm.core.Connection.broke`
  drops what was in flight on it, and :meth:`~pymasep.comm.core.Connection.resumed`
  takes the next socket's first bytes: the
  frames the peer never got are sent again, so nothing is lost or delivered twice.

The driver (:class:`~pymasep.comm.core.driver.Driver`, in the process's I/O thread and
the senders' threads) moves the bytes; it calls a connection under its owner's lock,
since a connection is not thread-safe.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import takewhile
from typing import Any, Literal

from .exceptions import (
    CommunicationError,
    ConnectionClosedError,
    InvalidArgumentError,
    InvalidStateError,
    ProtocolError,
    SendBufferFullError,
)
from .frame import Frame, FrameKind
from .handshake import ClientHandshake, ServerHandshake
from .resume import RESUME_EXPIRED, ResumeState, decode_ack
from .tap import Tap
from .wire import (
    DEFAULT_MAX_FRAME_SIZE,
    V1_HEADER,
    FrameDecoder,
    Wire,
    encode_frame,
    encode_header,
)

__all__ = [
    "CLOSED_BY_PEER",
    "CLOSED_LOCALLY",
    "CONNECTION_LOST",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_SEND_LIMITS",
    "DEFAULT_STALL_TIMEOUT",
    "Connection",
    "ConnectionState",
    "ConnectionStats",
    "DisconnectCode",
    "DisconnectReason",
    "SendLimits",
    "SendPolicy",
    "SendQueue",
    "STREAM_AFTER",
]

Buffer = bytes | memoryview
SendPolicy = Literal["wait", "disconnect", "block", "raise"]
"""What happens to a frame sent while the peer's queue is above the high-water mark."""

DEFAULT_DRAIN_TIMEOUT = 1.0
"""Seconds a waiting sender gives a peer to take some bytes before it is cut (policy
``"wait"``): a process that reads at all reads far more often than that; a stopped one
costs its sender this long, once."""

DEFAULT_STALL_TIMEOUT = 20.0
"""Seconds a peer may stay silent in the middle of a frame before it is cut (20 s: far
above any pause of a live peer on a LAN, as websockets' default keepalive timeout)."""

_V1_PACK = V1_HEADER.pack
_V1_HEADER_SIZE = V1_HEADER.size
# Up to this payload size, joining header and payload costs less than a gather write.
_JOIN_LIMIT = 16 * 1024
_MIB = 1024 * 1024
_log = logging.getLogger("pymasep.comm.core")
_monotonic = time.monotonic
_time = time.time
# For the tap's per-frame paths: an enum's member, looked up on its class, costs 80 ns.
_DATA, _BYE, _V1 = FrameKind.DATA, FrameKind.BYE, Wire.V1

DIRECT_READ_SIZE = 1024 * 1024
"""Frames of at least this many bytes are read straight into a buffer of their own size
(zero-copy receive); smaller ones come many to a read."""

STREAM_AFTER = 16
"""Frames sent in a row, with nothing received and without the queue running dry, after
which a connection is streaming (see the module docstring)."""


class DisconnectCode(str, enum.Enum):
    """Why a connection ended, as a value to compare (``reason.code is ...``)."""

    CLOSED_LOCALLY = "closed by this side"
    """This side closed: :meth:`~pymasep.comm.core.SocketHandler.close` or a bye sent."""
    CLOSED_BY_PEER = "closed by the peer"
    """The peer said bye."""
    CONNECTION_LOST = "connection lost"
    """The connection ended without a bye (peer killed, network down, reset)."""
    PROTOCOL_ERROR = "protocol error"
    """The peer broke the wire protocol (an unknown frame kind, a frame too large)."""
    SLOW_CONSUMER = "slow consumer"
    """The peer took no byte for the drain timeout while a sender waited (policy
    ``"wait"``), or its queue went past the send limits (policy ``"disconnect"``)."""
    STALLED = "peer stalled"
    """The peer stopped in the middle of a frame for longer than the stall timeout."""
    INTERNAL_ERROR = "internal error"
    """A bug in this library or in a callback it could not contain; logged with its
    traceback."""
    RESUME_EXPIRED = RESUME_EXPIRED
    """The connection broke and was not resumed within ``resume_window`` (or its held
    session made room for a newer one): the frames still held were dropped."""
    RESUME_REFUSED = "resume refused"
    """The connection broke and the server refused to resume it (it restarted, or the
    session ended there): the client ends the session and says why, and never starts a
    new one in silence."""

    def __str__(self) -> str:
        return self.value


class DisconnectReason(str):
    """Why a connection ended: a :class:`DisconnectCode` and a detail.

    It is also the string that pymasep-comm gave before it had a type,
    ``"<code>"`` or ``"<code>: <detail>"``, so ``reason == CLOSED_BY_PEER`` and
    printing it keep working.

    Attributes:
        code: What kind of end it was.
        detail: What happened, in words (may be empty).
    """

    code: DisconnectCode
    detail: str

    def __new__(cls, code: DisconnectCode | str, detail: str = "") -> DisconnectReason:
        code = DisconnectCode(code)
        self = super().__new__(cls, f"{code.value}: {detail}" if detail else code.value)
        self.code = code
        self.detail = detail
        return self

    def __reduce__(self) -> tuple[type[DisconnectReason], tuple[str, str]]:
        return type(self), (self.code.value, self.detail)

    def __repr__(self) -> str:
        return f"DisconnectReason({self.code.name}, {self.detail!r})"

    @property
    def graceful(self) -> bool:
        """True when one side said bye (nothing was lost on the way)."""
        return self.code in (DisconnectCode.CLOSED_LOCALLY, DisconnectCode.CLOSED_BY_PEER)


CLOSED_LOCALLY = DisconnectCode.CLOSED_LOCALLY
"""Disconnect reason: ``SocketHandler.close()`` was called (or a bye frame sent)."""
CLOSED_BY_PEER = DisconnectCode.CLOSED_BY_PEER
"""Disconnect reason: the peer said bye."""
CONNECTION_LOST = DisconnectCode.CONNECTION_LOST
"""Disconnect reason: the connection ended without a bye (peer killed, network down)."""


@dataclass(frozen=True)
class SendLimits:
    """How many bytes may wait for a peer that reads slowly, and what happens beyond.

    Bytes wait when the kernel's send buffer is full: the peer reads slower than this
    side sends. The limits count those bytes (the kernel's own buffer is not counted).
    A frame sent while nothing waits is always accepted, however large.

    The default policy, ``"wait"``, tells a peer that reads slowly from one that reads
    nothing, by progress rather than by bytes alone: a frame sent while ``hard_limit``
    bytes wait makes its sender wait as long as the peer keeps taking bytes (a stream
    runs at the speed of the link and of its reader, nothing is lost); a peer that took
    no byte for ``drain_timeout`` seconds while a sender waits (a stopped process, a
    dead host) is disconnected with :attr:`DisconnectCode.SLOW_CONSUMER` as the reason,
    and the waiting send raises :class:`~pymasep.comm.core.ConnectionClosedError`. A
    frozen interface thus costs the engine ``hard_limit`` bytes and ``drain_timeout``
    seconds of one send, once; a healthy one is never cut.

    Attributes:
        policy: ``"wait"`` (default), as above. ``"disconnect"``: the sender never waits;
            the peer is cut as soon as its queue exceeds ``hard_limit``, or once its
            queue has stayed above ``soft_limit`` for ``soft_seconds`` (NATS' slow
            consumer, Redis' ``client-output-buffer-limit``), even while it reads: for a
            sender that must never wait and prefers to lose a peer that cannot keep up.
            ``"block"``: the sender waits until the queue is back under ``hard_limit``
            (ZeroMQ's HWM), at most ``block_timeout`` seconds, then gets a
            :class:`~pymasep.comm.core.CommunicationTimeoutError`, and the peer is never
            cut. ``"raise"``: the sender gets a
            :class:`~pymasep.comm.core.SendBufferFullError` at once, to drop or retry
            frames itself. With ``"block"`` and ``"raise"`` the frame is not queued and
            the connection stays.
        hard_limit: Bytes that may wait (64 MiB: four of the largest frame a peer
            accepts by default, many seconds of a game's observations).
        soft_limit: Bytes that may wait for ``soft_seconds`` at most (16 MiB), policy
            ``"disconnect"`` only. 0 turns the soft limit off.
        soft_seconds: See ``soft_limit`` (10 s).
        block_timeout: Seconds a ``"block"`` sender waits at most (None: no limit).
        drain_timeout: Seconds a waiting sender gives the peer to take a byte before it
            is cut, policy ``"wait"`` (1 s, ``DEFAULT_DRAIN_TIMEOUT``).
    """

    policy: SendPolicy = "wait"
    hard_limit: int = 64 * _MIB
    soft_limit: int = 16 * _MIB
    soft_seconds: float = 10.0
    block_timeout: float | None = 10.0
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT

    def __post_init__(self) -> None:
        if self.policy not in ("wait", "disconnect", "block", "raise"):
            raise InvalidArgumentError(
                f"policy must be 'wait', 'disconnect', 'block' or 'raise', not {self.policy!r}"
            )
        if self.hard_limit < 0 or self.soft_limit < 0 or self.soft_seconds < 0:
            raise InvalidArgumentError("send limits must not be negative")
        if not self.drain_timeout > 0:
            raise InvalidArgumentError(
                f"drain_timeout must be above 0 seconds, not {self.drain_timeout!r}"
            )


DEFAULT_SEND_LIMITS = SendLimits()
"""The limits a connection gets unless the application chooses others."""


@dataclass(frozen=True)
class ConnectionStats:
    """Counters of one connection, for monitoring (a snapshot; it does not change).

    Attributes:
        frames_sent: Data frames handed to the kernel whole (after a resume, those sent
            again count again).
        bytes_sent: Bytes (headers included) handed to the kernel.
        frames_queued: Frames waiting, whole or in part, for the kernel now.
        bytes_queued: Bytes waiting for the kernel now.
        frames_received: Frames received after the handshake.
        bytes_received: Bytes received (headers included, after the handshake).
        resumes: Times the connection broke and was resumed.
    """

    frames_sent: int
    bytes_sent: int
    frames_queued: int
    bytes_queued: int
    frames_received: int
    bytes_received: int
    resumes: int = 0


class ConnectionState(enum.Enum):
    """Where a :class:`Connection` stands."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class SendQueue(deque[Buffer]):
    """The encoded bytes of a connection that the kernel has not taken yet, oldest first.

    A :class:`collections.deque` of buffers: a frame's header and payload, joined or
    apart, and at the head maybe the unsent rest of one. It also answers ``qsize()`` and
    ``empty()``, as the ``queue.Queue`` of pymasep 0.2 did, for code written against that.
    """

    __slots__ = ()

    def qsize(self) -> int:
        """How many buffers wait for the socket (buffers, not frames: a frame may be two,
        and a frame written at once by its sender never waits here)."""
        return len(self)

    def empty(self) -> bool:
        """True when nothing waits for the socket."""
        return not self


def drop_sent(buffers: deque[Buffer], count: int) -> int:
    """Remove the first ``count`` bytes from a queue of buffers; return how many buffers
    were removed whole."""
    whole = 0
    while count:
        first = buffers[0]
        if len(first) <= count:
            count -= len(first)
            buffers.popleft()
            whole += 1
        else:
            buffers[0] = memoryview(first)[count:]
            count = 0
    return whole


class Connection:
    """The state of one connection once the handshake is done; see the module docstring.

    Args:
        wire: The wire format of the connection.
        peer_id: Id of the peer.
        decoder: The decoder of the handshake, which may hold bytes that follow the
            peer's hello; by default a fresh one.
        pending_frames: Frames that arrived with the peer's hello.
        limits: Send-side limits.
        stall_timeout: Seconds of silence in the middle of a frame before the peer is
            cut; None never cuts.
        max_frame_size: Largest payload accepted (when ``decoder`` is not given).
        tap: Told of the connection's events (:mod:`pymasep.comm.core.tap`); None: no
            one is.
        authenticated: True if the handshake proved both sides hold a key (for the tap).
    """

    def __init__(
        self,
        wire: Wire | str = Wire.V1,
        peer_id: str | None = None,
        *,
        decoder: FrameDecoder | None = None,
        pending_frames: Iterable[Frame] = (),
        limits: SendLimits = DEFAULT_SEND_LIMITS,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        tap: Tap | None = None,
        authenticated: bool = False,
    ) -> None:
        self.wire = Wire(wire)
        self.peer_id = peer_id
        self.decoder = decoder if decoder is not None else FrameDecoder(self.wire, max_frame_size)
        self.limits = limits
        self.stall_timeout = stall_timeout
        self.state = ConnectionState.OPEN
        self.reason: DisconnectReason | None = None
        """Why the connection ended, once it is ``CLOSED``."""
        self.send_queue = SendQueue()
        """Bytes the kernel has not taken yet, oldest first."""
        self.pending_frames: deque[Frame] = deque(pending_frames)
        """Frames received but not handed out yet (those that came with the hello)."""
        self.bye_sent = False
        """True once :meth:`bye_bytes` gave the bye to write."""
        self.bye_received = False
        """True once the peer's bye arrived: the driver then ends the connection."""
        self.queued_bytes = 0
        self.queued_frames = 0
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_received = 0
        self.bytes_received = 0
        self._frame_ends: deque[int] = deque()  # bytes_sent at which each queued frame ends
        self._soft_since: float | None = None
        self._drained_at = 0.0  # when the kernel last took bytes, or the queue filled
        self._last_receive = 0.0
        self.one_way_sends = 0
        """Frames sent since something was received or the queue ran dry."""
        # Reads counted by the reader alone, and the count the senders last saw: each
        # has a single writer, so neither needs the driver's lock.
        self.reads = 0
        self._reads_seen = 0
        self.tap = tap
        """Told of the connection's events; see :mod:`pymasep.comm.core.tap`."""
        self.untold_frames: list[Frame] = []
        """Data frames handed to be sent that the tap has not been told of yet, oldest
        first (see :meth:`note_sent`)."""
        self.untold_times: list[float] = []
        """When each of :attr:`untold_frames` was handed (``time.monotonic()``); a
        frame is appended before its time."""
        self._tell_lock = threading.Lock()  # tells in order, from any thread
        self.authenticated = authenticated
        """True if the handshake proved both sides hold a key."""
        self.resume: ResumeState | None = None
        """The session that outlives this connection's sockets when both sides
        negotiated resuming (set by the server or the client), else None."""
        self.broken = False
        """True from :meth:`broke` until :meth:`resumed`: no socket carries it."""

    @classmethod
    def from_handshake(
        cls,
        handshake: ClientHandshake | ServerHandshake,
        *,
        limits: SendLimits = DEFAULT_SEND_LIMITS,
        stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
        tap: Tap | None = None,
    ) -> Connection:
        """The connection that a completed handshake opens (``tap`` as in the class).

        Raises:
            InvalidStateError: The handshake is not complete.
        """
        peer = (
            handshake.server_ident
            if isinstance(handshake, ClientHandshake)
            else handshake.client_ident
        )
        if peer is None or handshake.wire is None or handshake.decoder is None:
            raise InvalidStateError("the handshake is not complete")
        return cls(
            handshake.wire,
            peer,
            decoder=handshake.decoder,
            pending_frames=handshake.pending_frames,
            limits=limits,
            stall_timeout=stall_timeout,
            tap=tap,
            authenticated=handshake.authenticates,
        )

    # -- the tap ---------------------------------------------------------------------

    def _tap(self, event: str, *args: Any) -> None:
        """Tell the tap of an event, with both clocks, after the frames sent before it;
        a tap that raises is logged."""
        if self.untold_times:
            self.tell_sent()
        try:
            getattr(self.tap, event)(self.peer_id or "", *args, time.monotonic(), time.time())
        except Exception:
            _log.exception("the tap failed on %s of %s", event, self.peer_id)

    def note_sent(self, frame: Frame) -> None:
        """Keep ``frame``, handed to be sent now, for the tap (if any, and if it is a
        data frame): the tap is told of the frames kept by :meth:`tell_sent`, at the
        latest before the connection's next event. :meth:`encode` calls this; a caller
        that encodes frames itself appends to :attr:`untold_frames` and
        :attr:`untold_times` (in that order) instead."""
        if self.tap is not None and frame.kind is _DATA:
            self.untold_frames.append(frame)
            self.untold_times.append(_monotonic())

    def tell_sent(self) -> None:
        """Tell the tap (:meth:`~pymasep.comm.core.tap.Tap.frames_sent`) of the data
        frames kept by :meth:`note_sent`, in their order, at once. Any thread: the tells
        are made one at a time, in order, and a frame kept meanwhile waits for the next;
        a tap that raises is logged."""
        tap = self.tap
        if tap is None:
            return
        with self._tell_lock:
            times = self.untold_times
            count = len(times)  # a frame is kept before its time: these have theirs
            if not count:
                return
            frames = self.untold_frames[:count]
            told = times[:count]
            del self.untold_frames[:count], times[:count]
            header = _V1_HEADER_SIZE if self.wire is _V1 else 2
            try:
                tap.frames_sent(self.peer_id or "", frames, header, told, _time() - _monotonic())
            except Exception:
                _log.exception("the tap failed on frames_sent of %s", self.peer_id)

    def opened(self, address: Any, tls: bool) -> None:
        """The driver starts driving the connection: tell the tap (if any) that it
        opened, then of the frames that came with the peer's hello. Call once, before
        handing out :attr:`pending_frames`.

        Args:
            address: The peer's address.
            tls: Whether the connection speaks TLS.
        """
        if self.tap is not None:
            self._tap("connected", address, self.wire, self.authenticated, tls)
            self._tap_received(self.pending_frames)

    def _tap_received(self, frames: Sequence[Frame]) -> None:
        # Once per read, not per frame: a stream's read holds hundreds.
        data = [frame for frame in frames if frame.kind is _DATA]
        if len(data) != len(frames):  # control frames: control_frame() tells a bye, and
            # the frames after it are not delivered
            before_bye = takewhile(lambda frame: frame.kind is not _BYE, frames)
            data = [frame for frame in before_bye if frame.kind is _DATA]
        if data:
            self._tap("frames_received", data, _V1_HEADER_SIZE if self.wire is _V1 else 2)

    # -- monitoring ------------------------------------------------------------------

    @property
    def stats(self) -> ConnectionStats:
        """The connection's counters now."""
        return ConnectionStats(
            frames_sent=self.frames_sent,
            bytes_sent=self.bytes_sent,
            frames_queued=self.queued_frames,
            bytes_queued=self.queued_bytes,
            frames_received=self.frames_received,
            bytes_received=self.bytes_received,
            resumes=0 if self.resume is None else self.resume.resumes,
        )

    # -- sending ---------------------------------------------------------------------

    def encode(self, frame: Frame) -> list[Buffer]:
        """The buffers of ``frame`` on this connection's wire; the frame is kept for the
        tap (:meth:`note_sent`).

        Raises:
            FrameTooLargeError: The wire cannot carry a frame this large.
        """
        buffers = self.frame_buffers(frame)
        if self.tap is not None:
            self.note_sent(frame)
        return buffers

    def frame_buffers(self, frame: Frame) -> list[Buffer]:
        """The buffers of ``frame`` on this connection's wire, and nothing else (as
        :meth:`encode`, without the tap).

        Raises:
            FrameTooLargeError: The wire cannot carry a frame this large.
        """
        if self.wire is Wire.LEGACY:
            return [encode_frame(frame, Wire.LEGACY)]
        if frame.size <= _JOIN_LIMIT:
            return [_V1_PACK(frame.kind, frame.size) + frame.message]
        return [encode_header(frame.kind, frame.size, Wire.V1), frame.message]

    def check_open(self) -> None:
        """Raise unless frames may be sent.

        Raises:
            ConnectionClosedError: The connection is closing or closed.
        """
        if self.state is not ConnectionState.OPEN:
            reason = self.reason or CLOSED_LOCALLY
            raise ConnectionClosedError(f"connection to {self.peer_id} is {reason}")

    def room_for(self, size: int, now: float) -> bool:
        """Whether a frame of ``size`` bytes may be queued now, under the limits.

        Returns:
            True if it may; False if the sender should wait (policies ``"wait"`` and
            ``"block"``).

        Raises:
            SendBufferFullError: Policy ``"raise"``, and the queue is full.

        With policy ``"disconnect"`` it always returns True: :meth:`slow_consumer`
        then tells whether the peer must be cut. With ``"wait"`` and ``"block"`` a sender
        told to wait asks :meth:`drain_deadline` how long.
        """
        limits = self.limits
        resume = self.resume
        if resume is not None:
            # The frames held for a resume count too (see ResumeState.room_for).
            if resume.room_for(size, self.queued_bytes, limits.hard_limit):
                return True
        elif not self.queued_bytes or self.queued_bytes + size <= limits.hard_limit:
            return True
        if limits.policy == "raise":
            raise SendBufferFullError(self.queued_bytes, limits.hard_limit, self.peer_id or "")
        return limits.policy == "disconnect"

    def write_directly(self) -> bool:
        """Whether the next frame is written at once by its sender (else it is queued);
        counts it as sent one way."""
        if self.reads != self._reads_seen:  # something arrived since: not a stream
            self._reads_seen = self.reads
            self.one_way_sends = 0
        self.one_way_sends += 1
        return not self.send_queue and self.one_way_sends <= STREAM_AFTER

    def streaming(self) -> bool:
        """True while frames go one way as a stream: more than
        :data:`~pymasep.comm.core.connection.STREAM_AFTER` sent in a row, and nothing
        received since."""
        return self.reads == self._reads_seen and self.one_way_sends > STREAM_AFTER

    def received(self) -> None:
        """Something arrived from the peer: the connection is not streaming (the reader
        calls it, without the driver's lock)."""
        self.reads += 1

    def ran_dry(self) -> None:
        """The driver found the queue empty: the next frames are written at once again."""
        self.one_way_sends = 0

    def wrote(self, size: int) -> None:
        """Count a frame of ``size`` bytes that the kernel took whole at once."""
        self.frames_sent += 1
        self.bytes_sent += size

    def enqueue(
        self, buffers: Iterable[Buffer], size: int, sent: int, now: float
    ) -> DisconnectReason | None:
        """Queue a frame of ``size`` bytes whose first ``sent`` bytes the kernel took.

        Returns:
            What :meth:`slow_consumer` returns after it: the reason to cut the peer, or
            None.
        """
        queue = self.send_queue
        if not self.queued_bytes:  # bytes start waiting now: the peer's clock starts
            self._drained_at = now
        queue.extend(buffers)
        if sent:
            self.bytes_sent += sent
            drop_sent(queue, sent)
        queued = self.queued_bytes = self.queued_bytes + size - sent
        self.queued_frames += 1
        # The frame is sent whole once every byte queued up to its end is.
        self._frame_ends.append(self.bytes_sent + queued)
        limits = self.limits
        if limits.soft_limit and queued > limits.soft_limit and self._soft_since is None:
            self._soft_since = now
        if queued > limits.hard_limit or self._soft_since is not None:
            return self.slow_consumer(now)
        return None

    def enqueue_control(self, data: bytes) -> None:
        """Queue bytes that are not a frame of the application (an ACK, a resume's
        answer): they are not counted as frames sent."""
        if not self.queued_bytes:
            self._drained_at = _monotonic()
        self.send_queue.append(data)
        self.queued_bytes += len(data)

    def sent(self, count: int, now: float) -> None:
        """Count ``count`` bytes from the head of the queue that the kernel took."""
        drop_sent(self.send_queue, count)
        if count:
            self._drained_at = now
        self.bytes_sent += count
        self.queued_bytes -= count
        ends = self._frame_ends
        while ends and ends[0] <= self.bytes_sent:
            ends.popleft()
            self.frames_sent += 1
            self.queued_frames -= 1
        self._check_soft(now)

    def _check_soft(self, now: float) -> None:
        soft = self.limits.soft_limit
        if soft and self.queued_bytes > soft:
            if self._soft_since is None:
                self._soft_since = now
        else:
            self._soft_since = None

    def slow_consumer(self, now: float) -> DisconnectReason | None:
        """The reason to cut the peer now for reading too slowly, or None.

        Only with policy ``"disconnect"``.
        """
        limits = self.limits
        if limits.policy != "disconnect":
            return None
        if self.queued_bytes > limits.hard_limit and self.queued_frames > 1:
            return DisconnectReason(
                DisconnectCode.SLOW_CONSUMER,
                f"{self.queued_bytes} bytes waited, above the hard limit of "
                f"{limits.hard_limit} bytes",
            )
        if self._soft_since is not None and now - self._soft_since >= limits.soft_seconds:
            return DisconnectReason(
                DisconnectCode.SLOW_CONSUMER,
                f"more than {limits.soft_limit} bytes waited for {limits.soft_seconds:g} s",
            )
        return None

    def drain_deadline(self, waiting_since: float) -> float | None:
        """When a sender that began waiting at ``waiting_since`` gives up on the peer
        unless the kernel takes some bytes before (policy ``"wait"``; None otherwise,
        and when nothing waits).

        The peer gets ``drain_timeout`` seconds from its last progress, and at least that
        from the moment the sender began to wait.
        """
        if self.limits.policy != "wait" or not self.queued_bytes:
            return None
        return max(self._drained_at, waiting_since) + self.limits.drain_timeout

    def not_draining(self, now: float, waiting_since: float) -> DisconnectReason | None:
        """The reason to cut a peer that a sender waits for, once :meth:`drain_deadline`
        has passed without progress; None while the peer drains (policy ``"wait"``)."""
        deadline = self.drain_deadline(waiting_since)
        if deadline is None or now < deadline:
            return None
        return DisconnectReason(
            DisconnectCode.SLOW_CONSUMER,
            f"took no byte for {self.limits.drain_timeout:g} s while "
            f"{self.queued_bytes} bytes waited (limit {self.limits.hard_limit})",
        )

    def send_deadline(self) -> float | None:
        """When :meth:`slow_consumer` will cut the peer if the queue does not shrink."""
        if self._soft_since is None or self.limits.policy != "disconnect":
            return None
        return self._soft_since + self.limits.soft_seconds

    # -- resuming --------------------------------------------------------------------

    def broke(self, now: float, reason: DisconnectReason) -> None:
        """The socket broke without a bye (``reason``) and the session is held
        (:attr:`resume` is set): drop the bytes in flight on it, each way. Every data
        frame among those queued is still held by the session, and the peer's partial
        frame, which the peer counts as not received, comes again whole."""
        assert self.resume is not None
        if self.tap is not None:
            self._tap("broken", reason)
        self.broken = True
        self.resume.broke(now)
        self._drop_queue()
        self.decoder = FrameDecoder(self.wire, self.decoder.max_frame_size)
        self.pending_frames.clear()
        self.one_way_sends = 0

    def resumed(self, decoder: FrameDecoder, pending_frames: Iterable[Frame]) -> None:
        """A new socket carries the session: read it with ``decoder`` (the resume
        handshake's, which may hold bytes), after ``pending_frames``; what was queued for
        an earlier socket is dropped (the caller then queues the answer and the frames
        to send again)."""
        self.broken = False
        self._drop_queue()
        self.decoder = decoder
        self.pending_frames = deque(pending_frames)
        self.one_way_sends = 0
        if self.tap is not None:
            self._tap("resumed")

    def _drop_queue(self) -> int:
        dropped = self.queued_bytes
        self.send_queue.clear()
        self._frame_ends.clear()
        self.queued_bytes = self.queued_frames = 0
        self._soft_since = None
        return dropped

    # -- closing ---------------------------------------------------------------------

    def close(self) -> bool:
        """Start a graceful close; True if this call started it (it was ``OPEN``).

        The driver then writes the queue, then :meth:`bye_bytes`, then ends its writing
        direction, and keeps reading until the peer ends.
        """
        if self.state is not ConnectionState.OPEN:
            return False
        self.state = ConnectionState.CLOSING
        return True

    def bye_bytes(self) -> bytes:
        """The bye to write once the queue is empty (call once)."""
        self.bye_sent = True
        if self.tap is not None:
            self._tap("bye", "out")
        return encode_frame(Frame.bye_frame(), self.wire)

    def finish(self, reason: DisconnectReason) -> int:
        """End the connection with ``reason`` (the first reason wins); return how many
        queued bytes are dropped."""
        if self.state is ConnectionState.CLOSED:
            return 0
        self.state = ConnectionState.CLOSED
        self.reason = reason
        dropped = self._drop_queue()
        if self.resume is not None:
            self.resume.log.clear()
        if self.tap is not None:
            self._tap("closed", reason)
        return dropped

    # -- receiving -------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> list[Frame]:
        """Feed bytes received; return the data frames they complete, in order.

        A bye among them sets :attr:`~pymasep.comm.core.Connection.bye_received`: the
        frames before it are returned, those after it are not (the peer said it sends
        nothing more), and the driver ends the connection with :meth:`bye_reason`.

        Raises:
            ProtocolError: The bytes break the protocol (the driver ends the connection
                with :meth:`protocol_error`).
        """
        return self.receive_frames(self.feed(data, now))

    def feed(self, data: bytes | bytearray | memoryview, now: float) -> list[Frame]:
        """Feed bytes received; return every frame they complete, control frames
        included: the driver's fast path hands the data frames on as it meets them and
        gives the others to :meth:`control_frame`.

        Raises:
            ProtocolError: The bytes break the protocol.
        """
        self.bytes_received += len(data)
        self._last_receive = now
        frames = self.decoder.feed(data)
        self.frames_received += len(frames)
        if self.tap is not None:
            self._tap_received(frames)
        return frames

    def count_received(
        self, frames: list[Frame], size: int | None = None, now: float | None = None
    ) -> bool:
        """Count ``frames``, data frames handed on, for the session's acknowledgements
        (:meth:`receive_frames` does; the driver, where it hands data frames on without
        it). ``size``: their bytes on the wire, if the caller knows them; ``now``: when
        they came, for the time rule of :class:`~pymasep.comm.core.resume.ReceiveLog`.
        Returns whether an ACK is due."""
        assert self.resume is not None
        if size is None:
            size = sum(frame.size for frame in frames) + _V1_HEADER_SIZE * len(frames)
        return self.resume.acks.count(len(frames), size, now)

    def direct_view(self) -> memoryview | None:
        """Where the driver reads the rest of a large frame straight into (see
        :meth:`FrameDecoder.direct_view <pymasep.comm.core.FrameDecoder.direct_view>`);
        None when no large frame is being received."""
        return self.decoder.direct_view(DIRECT_READ_SIZE)

    def direct_filled(self, count: int, now: float) -> list[Frame]:
        """Count ``count`` bytes read into :meth:`direct_view`, as :meth:`feed` does;
        return the frame once it is whole."""
        self.bytes_received += count
        self._last_receive = now
        frames = self.decoder.direct_filled(count)
        if frames:
            self.frames_received += 1
            if self.tap is not None:
                self._tap_received(frames)
        return frames

    def control_frame(self, frame: Frame) -> None:
        """Take a frame other than data that arrived after the handshake: a bye sets
        :attr:`~pymasep.comm.core.Connection.bye_received` (frames after it are not for
        the application).

        Raises:
            ProtocolError: A frame that has no place after the handshake (a hello).
        """
        if frame.kind is FrameKind.BYE:
            # The driver ends the connection (under its lock) with bye_reason().
            self.bye_received = True
            if self.tap is not None:
                self._tap("bye", "in")
        elif frame.kind is FrameKind.ACK and self.resume is not None:
            try:
                self.resume.log.ack(decode_ack(frame.message))
            except CommunicationError as error:  # a DecodeError, or counts gone wrong
                raise ProtocolError(f"a wrong ACK: {error}") from None
        else:
            raise ProtocolError(f"unexpected {frame.kind.name} frame after the handshake")

    def receive_frames(self, frames: Iterable[Frame]) -> list[Frame]:
        """Sort frames already decoded: data frames are returned, a bye ends the
        connection (see :meth:`receive_data`)."""
        data: list[Frame] = []
        for frame in frames:
            if frame.kind is FrameKind.DATA:
                data.append(frame)
            else:
                self.control_frame(frame)
                if self.bye_received:
                    break
        if self.resume is not None:
            self.count_received(data)
        return data

    def bye_reason(self) -> DisconnectReason:
        """The reason to end with once :attr:`~pymasep.comm.core.Connection.bye_received` is set."""
        if self.state is ConnectionState.CLOSING:
            return DisconnectReason(CLOSED_LOCALLY)
        return DisconnectReason(CLOSED_BY_PEER)

    def receive_eof(self) -> DisconnectReason:
        """The peer ended its stream; return the reason the connection ends with."""
        if self.state is ConnectionState.CLOSING:
            return DisconnectReason(CLOSED_LOCALLY)
        return DisconnectReason(CONNECTION_LOST)

    def receive_deadline(self) -> float | None:
        """When the peer will be cut if no byte arrives: set while a frame is partial."""
        if self.stall_timeout is None or not self.decoder.buffered:
            return None
        return self._last_receive + self.stall_timeout

    def stalled(self) -> DisconnectReason:
        """The reason for cutting a peer whose :meth:`receive_deadline` passed."""
        return DisconnectReason(
            DisconnectCode.STALLED,
            f"no byte for {self.stall_timeout:g} s with {self.decoder.buffered} bytes "
            "of a frame received",
        )

    @staticmethod
    def protocol_error(error: Exception) -> DisconnectReason:
        """The reason for ending a connection whose peer broke the protocol."""
        return DisconnectReason(DisconnectCode.PROTOCOL_ERROR, str(error))
