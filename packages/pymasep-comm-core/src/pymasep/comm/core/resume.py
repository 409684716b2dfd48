"""Resuming a broken connection, as sans-I/O parts.

The handshake (:mod:`~pymasep.comm.core.handshake`), the
:class:`~pymasep.comm.core.Connection`, the driver, the server and the client call what
is here (see "How the handshake, the Connection and the driver call it" below). It
holds no socket and reads no clock: every method that needs the time takes ``now``
(``time.monotonic()`` in the driver), so that everything here is tested without sockets
and without sleeps.

What it gives a connection that breaks without a bye (a reset, an abort, a stall, an
error on the socket): both sides keep their session for ``resume_window`` seconds; the
client reconnects and proves it holds the session's secret; each side then resends
exactly the data frames the other had not received, so that delivery is exactly once
and in order, in both directions, for as long as both processes live. A process that
restarts loses its sessions: the other side is refused with
:attr:`RefusalReason.UNKNOWN_SESSION` and ends its session, saying why.

**Negotiation: why a preamble version 2.**

Resuming must never reach a peer that does not know it: pymasep 0.2, ``wire="legacy"``,
and pymasep-comm v1 peers built before it. A v1 peer of today refuses every byte it does
not expect: a hello's payload is the id, whole (fields appended to it would silently
change the id); a frame kind above 4 is a protocol error; and any frame but a data frame
or a bye after the handshake ends the connection. Nothing that a client adds to its
first bytes is ignored by an older server, so the offer is made where an older server
refuses it *cleanly, before anything else*: the version byte of the preamble.

* A client that may resume opens with ``MAGIC`` then version byte
  :data:`EXTENDED_VERSION` (2): "the v1 wire, and a resume offer follows the hello".
* A server that knows resuming answers with version byte 2 too, then its hello (or its
  challenge, with a key) and, after its hello, :class:`ResumeAccept` or
  :class:`ResumeDecline` (``resume_window=0``).
* A server built before checks the version byte before any frame and answers
  ``MAGIC 01`` + REFUSE: it never calls the application, never reads the offer. A
  client that reads version byte 1 in the answer knows the server is older, and connects
  again at once with version byte 1 and no offer, as today. This costs one extra
  connection per ``connect()`` to an older server (never to 0.2, which is ``wire=
  "legacy"``, nor to a new one); the client may remember the address for the process's
  lifetime.
* A client with ``resume_window=0`` sends version byte 1: bytes unchanged from today.
* An older client sends version byte 1; a new server treats it as today: no resume.

The frame header, kinds 0 to 4 and the shared-key proofs (whose transcript holds the
protocol version 1, which stays 1) are unchanged on a version-2 connection.

**Frames.**

Two new v1 frame kinds, only ever sent on a connection whose both sides negotiated
resuming. Their values follow :class:`~pymasep.comm.core.FrameKind`'s, because
:class:`~pymasep.comm.core.FrameDecoder` indexes kinds by value; an older decoder, which
never sees them, would refuse them with ``ProtocolError("unknown frame kind 5")`` rather
than misread them. All numbers are big-endian.

``ACK`` (kind :data:`ACK_KIND` = 5), payload exactly 8 bytes::

    +---------------------------------------+
    | count received (u64)                  |
    +---------------------------------------+

``RESUME`` (kind :data:`RESUME_KIND` = 6), payload a type byte then a body of a fixed
size per type (any other size, type or value out of range is a
:class:`~pymasep.comm.core.DecodeError`):

===========  ====  ======================================================  =========
message      type  body                                                    from
===========  ====  ======================================================  =========
OFFER        1     window ms (u32), ack every bytes (u32), nonce (32)      client
ACCEPT       2     window ms (u32), ack every bytes (u32), session id      server
                   (16), nonce (32)
DECLINE      3     (none)                                                  server
REQUEST      4     session id (16), attempt (u64), nonce (32), count       client
                   received (u64), proof (32)
ACCEPTED     5     count received (u64), proof (32)                        server
REFUSED      6     reason (u8: 1 unknown session, 2 expired, 3 bad proof)  server
===========  ====  ======================================================  =========

A window is 1 ms to :data:`MAX_WINDOW` (one day); "ack every bytes" is 1 to 2**32 - 1; an
attempt is at least 1. OFFER follows the client's HELLO; ACCEPT or DECLINE follows the
server's HELLO. A resuming connection opens with ``MAGIC 02`` + REQUEST instead of a
hello (with a key as without: the proof covers the key); the server answers ``MAGIC 02``
+ ACCEPTED, then frames flow, or ``MAGIC 02`` + REFUSED and closes.

**Sequence numbers and acknowledgements.**

Every data frame sent in a session has a number, implicit by count as in MQTT's packet
ids or TCP's sequence numbers: the first is 0, and the session's numbers go on across its
connections. The receiver counts the whole data frames it decoded; an ACK carries that
count, cumulatively. The sender keeps what was not acknowledged in a :class:`SendLog`
(the resend buffer) and drops it once acknowledged.

Counters are 64-bit and never wrap: at a million frames a second, 2⁶⁴ frames take
580,000 years. A session that would number frame 2⁶⁴ raises instead
(:class:`~pymasep.comm.core.InvalidStateError`), which no game reaches; nothing is ever
compared modulo anything, so a count that goes backwards is always an error.

Errors (:class:`~pymasep.comm.core.ProtocolError`; the connection ends as a protocol
error and is not resumed): an ACK, or a resume's count received, above the number of
frames sent (an acknowledgement of frames never sent); an ACK below the last one, or a
resume's count below the last ACK (counts going backwards).

When acknowledgements are sent (:class:`ReceiveLog`): an ACK is *due* once
:data:`ACK_EVERY_FRAMES` (8,192) data frames, or the peer's "ack every bytes" (see
below), have been received since the last one, or once :data:`ACK_INTERVAL` (0.1 s)
has passed since the first of them came; it is sent once, at the end of the read turn
that made it due (all the frames of that read counted first), and never otherwise. Why:

* Correctness never waits for an ACK: after a break, the resume exchange carries each
  side's exact count, so ACKs only release the sender's memory. They can be rare.
* Each ACK costs its receiver a wake-up and a read, in a process whose sending thread
  holds the GIL: on the bench's stream of 1 KiB frames, an ACK every 64 frames cost a
  fifth more time, every MiB about 7%, every 4 MiB about what no ACK at all costs. The
  count rules therefore leave a stream one ACK per 8 MiB, or per 0.1 s.
* The time rule bounds what a game-paced sender holds: the frames of a tenth of a
  second, whatever their size, for each interface of an engine that sends to many.
* A big frame, or a peer with small send limits, gets its ACK by bytes: each side asks
  for an ACK every ``min(8 MiB, hard_limit // 4)`` bytes (:func:`ack_every_bytes`),
  sent in its OFFER or ACCEPT, so that the resend buffer of a healthy peer never fills
  the limits and a waiting sender is never left waiting for an ACK.
* An idle connection keeps fewer than the frames a tenth of a second brought before it
  went idle (and one read more) unacknowledged: bounded, so no ACK timer is needed.

The resend buffer is memory the engine holds: it is counted against the same
:class:`~pymasep.comm.core.SendLimits` (:meth:`ResumeState.room_for`). The frames in
the send queue are also in the resend buffer (the same ``bytes`` objects: no copy), so
the bytes a connection holds are ``max(queued_bytes, log.unacked_bytes)``, which is what
the limits compare. A frame is still always taken while the send queue is empty: a
sender waits for the kernel, never for an ACK (a peer with nothing left to read may owe
one that it has no reason to send), so what waits for an ACK beyond the queue is what
the kernels hold plus less than the peer's "ack every" bytes. During an outage the log
is the queue: frames are taken while there is room in it, then the policy applies.

**Secrets and proofs.**

The OFFER and the ACCEPT each carry a fresh 32-byte nonce; the server picks a random
16-byte session id. Both sides derive the session's secret::

    secret = HMAC-SHA256(authkey or b"", "pymasep-comm v1 resume secret\\0" || 01
                         || client nonce || server nonce || session id
                         || client id || server id)       (each field length-prefixed)

so that with a key nobody without the key can derive it; without a key and without TLS
the nonces cross in clear, and the secret stops only those who did not see the handshake
(such a connection can be taken over by anyone on its path anyway; ``docs/protocol.md``
says what the secret protects). A resume proves both the secret and the key::

    proof key = HMAC-SHA256(authkey, "pymasep-comm v1 resume proof key\\0" || secret)
                (the secret itself without a key)
    client proof = HMAC(proof key, "...resume client proof\\0" || session id || attempt
                        || nonce || client's count received)
    server proof = HMAC(proof key, "...resume server proof\\0" || session id || attempt
                        || nonce || client's count || server's count)

The client's nonce is fresh on every attempt, so a recorded ACCEPTED is worth nothing
later. The *attempt* counts the client's resume attempts in the session; the server
accepts a proven request only with an attempt above the last it accepted, so a recorded
REQUEST cannot be replayed (and an accepted attempt whose answer was lost is followed by
a higher one, which is accepted). Proofs are compared with ``hmac.compare_digest``;
a refusal carries a reason code and never a secret, a proof or a count.

**State machines.**

Client (:class:`ClientSession`)::

    CONNECTING --HELLO+ACCEPT--> OPEN --break--> RESUMING --ACCEPTED--> OPEN
                  DECLINE: no session   |          |  connect fails, or REQUEST/answer
                                        |          |  lost: next attempt, with backoff
                                        |          |--REFUSED, window passed--> ENDED
                                        |--bye, close(), protocol error--> ENDED

Server (:class:`SessionTable`, one :class:`ServerSession` per client)::

    (handshake with OFFER) --> LIVE --break--> HELD --REQUEST proven--> LIVE
                                 |  ^            |--window passed, or evicted--> ENDED
                                 |  '--REQUEST proven (the server had not seen the
                                 |     break yet: the old connection is dropped)
                                 '--bye, close(), protocol error--> ENDED

**How the handshake, the Connection and the driver call it.**

* **Handshake** (``handshake.py``). The client, with ``resume_window > 0``, sends
  ``MAGIC 02`` and, right after its HELLO, ``resume_frame(offer)`` where
  ``offer = ResumeOffer.new(resume_window, ack_every_bytes(limits.hard_limit))``. If
  the answer's version byte is 1 (an older server, whose REFUSE follows), it connects
  again with ``MAGIC 01`` and no offer. The server's handshake accepts version 1 or 2;
  on 2 it reads the OFFER after the HELLO (``decode_resume(frame.message)``, a RESUME
  frame above :data:`MAX_RESUME_PAYLOAD` refused at its header as an oversized hello
  is) and, once it admits the client, calls ``session, accept = table.open(client_id,
  server_id, offer, ack_every_bytes(limits.hard_limit))`` and sends
  ``resume_frame(accept)`` right after its HELLO (``resume_frame(ResumeDecline())``
  with ``resume_window=0``). The client then builds its session with
  ``ClientSession.start(offer, accept, client_id, server_id, authkey)``. A server
  handshake that reads ``MAGIC 02`` then a RESUME frame instead of a HELLO decodes the
  REQUEST, calls ``decision = table.resume(request, now)``, sends ``MAGIC 02`` +
  ``decision.answer``, and closes if ``decision.refusal`` is set (logging the reason
  and the address); no AUTH exchange, since the proof covers the key. The client sends
  ``MAGIC 02`` + ``session.request()`` and reads the answer with
  ``resend = session.answer(frame.message)``; :class:`ResumeRefusedError` ends its
  session.
* **Connection** (``connection.py``) gets ``resume: ResumeState | None`` (the session,
  which outlives the connection). Sending: ``resume.log.record(frame.message)`` for
  every *new* data frame, under the owner's lock, in the same critical section that
  writes or queues its bytes, so that numbers follow the order of the bytes on the
  socket (the driver's ``send`` encodes small frames inline before taking the lock:
  the call goes after ``lock.acquire()``); resent frames are written without being
  recorded again. Receiving: every whole *data* frame handed on is counted once with
  ``resume.acks.count(frames, size)``, where it is handed on: ``Connection.
  receive_frames`` (which sorts data from control frames), the driver's ``_take`` when
  a read brought data frames only, and its whole-frame shortcut in ``_read``; the
  pending frames that came in the same read as the peer's HELLO (or as the RESUME
  answer) go through ``_take`` too. A frame missed or counted twice here is a frame
  lost or delivered twice after the next resume. ``control_frame``: an ACK calls
  ``resume.log.ack(decode_ack(frame.message))``, in the I/O thread, without the lock
  (see :class:`SendLog`); ACK and RESUME on a connection without ``resume`` stay
  protocol errors. Limits: ``room_for`` and the driver's check call
  ``resume.room_for(size, queued_bytes, limits.hard_limit)`` (every queued data frame
  is also in the log). :class:`~pymasep.comm.core.DisconnectCode`
  gains ``RESUME_EXPIRED = "resume window expired"`` (:data:`RESUME_EXPIRED`).
* **Driver** (``driver.py``). At the end of each read turn, under the lock,
  ``ack = resume.acks.take_ack()``; if not None, the 13 bytes are written or queued as
  a control frame (not recorded, not counted in ``frames_sent``). A read that brought
  only ACKs must not count as "something arrived" for
  :meth:`~pymasep.comm.core.Connection.write_directly`, or a stream would stop being
  batched. A break (end of stream, reset, error, stall, with no bye seen and
  ``resume`` set) does not end the handler: the driver drops the socket and the send
  queue (every data frame in it is in the log), logs a WARNING, and keeps accepting
  sends, which are recorded in the log only, under the same limits and policy (a
  ``"wait"`` sender waits for the resume or the window's end). On the client:
  ``session.broke(now)``, reconnection with backoff until ``session.expired(now)``, then
  ``detail = session.end()``. On the server: ``evicted = table.broke(session_id, now)``
  and a timer at ``table.next_deadline()`` calling ``table.expire(now)``, both lists
  of ``(session, detail)``. Each ended session gets ``on_disconnect`` with
  ``DisconnectReason(RESUME_EXPIRED, detail)``; its frames are dropped and later sends
  raise ``UnknownConnectionError`` once it is unregistered (``ConnectionClosedError`` on
  the handler itself). A bye, ``close()`` or a protocol error calls
  ``table.close(session_id)``: that session is never resumed. On a resume, the new
  socket's driver writes ``resend`` first, as data frames, then what is sent afterwards;
  ``decision.was_live`` tells the server to drop the old connection without a word; an
  INFO gives the outage's length and ``len(resend)``, and ``stats`` counts the resumes
  (``session.resumes``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from .auth import MAC_SIZE, NONCE_SIZE, new_nonce, proofs_match
from .exceptions import (
    ConnectionRejectedError,
    DecodeError,
    InvalidArgumentError,
    InvalidStateError,
    ProtocolError,
)
from .frame import FrameKind
from .wire import MAGIC, PROTOCOL_VERSION, V1_HEADER

__all__ = [
    "ACK_EVERY_FRAMES",
    "ACK_INTERVAL",
    "ACK_KIND",
    "DEFAULT_ACK_EVERY_BYTES",
    "DEFAULT_MAX_HELD_SESSIONS",
    "DEFAULT_RESUME_WINDOW",
    "EXTENDED_VERSION",
    "MAX_COUNT",
    "MAX_RESUME_PAYLOAD",
    "MAX_WINDOW",
    "RESUME_EXPIRED",
    "RESUME_KIND",
    "SESSION_ID_SIZE",
    "ClientSession",
    "RefusalReason",
    "ReceiveLog",
    "ResumeAccept",
    "ResumeAccepted",
    "ResumeDecision",
    "ResumeDecline",
    "ResumeMessage",
    "ResumeOffer",
    "ResumeRefused",
    "ResumeRefusedError",
    "ResumeRequest",
    "ResumeState",
    "SendLog",
    "ServerSession",
    "SessionTable",
    "ack_every_bytes",
    "ack_frame",
    "check_resume_window",
    "decode_ack",
    "decode_resume",
    "encode_resume",
    "preamble_version",
    "resume_frame",
    "session_secret",
]

ACK_KIND = FrameKind.ACK
"""Frame kind of an acknowledgement (the next after ``FrameKind.AUTH``)."""

RESUME_KIND = FrameKind.RESUME
"""Frame kind of every message of the resume negotiation and exchange."""

EXTENDED_VERSION = 2
"""Preamble version byte of a client that offers resuming (and of the server's answer)."""

DEFAULT_RESUME_WINDOW = 30.0
"""Seconds within which a broken connection may be resumed (``resume_window``)."""


def check_resume_window(resume_window: float) -> float:
    """``resume_window`` as the server and the client take it (0: never resume).

    Raises:
        InvalidArgumentError: It is negative.
    """
    if resume_window < 0:
        raise InvalidArgumentError(f"resume_window must not be negative, not {resume_window}")
    return resume_window


MAX_WINDOW = 86_400.0
"""Largest window a peer may offer or accept (one day): the u32 of milliseconds would
allow 49 days, which no game needs and a server should not promise to hold."""

MAX_COUNT = 2**64 - 1
"""Largest count of frames a session numbers (the u64 on the wire); never wraps."""

SESSION_ID_SIZE = 16
"""Bytes of a session id (128 random bits: never guessed)."""

ACK_EVERY_FRAMES = 8192
"""Data frames received after which an acknowledgement is due (see the module docstring)."""

ACK_INTERVAL = 0.1
"""Seconds after the first frame received since the last acknowledgement when one is due,
at the end of a read turn that counts frames (see the module docstring)."""

DEFAULT_ACK_EVERY_BYTES = 8 * 1024 * 1024
"""Bytes received after which an acknowledgement is due, at most (8 MiB)."""

DEFAULT_MAX_HELD_SESSIONS = 64
"""Sessions of broken connections a server holds at once, at most; each holds up to its
send limits in unacknowledged frames."""

RESUME_EXPIRED = "resume window expired"
"""Value of the ``DisconnectCode.RESUME_EXPIRED`` to add: a broken connection was not
resumed within its window (or its held session was evicted to make room)."""

_U32_MAX = 2**32 - 1
_HEADER = V1_HEADER
_COUNT = struct.Struct("!Q")
_OFFER = struct.Struct(f"!BII{NONCE_SIZE}s")
_ACCEPT = struct.Struct(f"!BII{SESSION_ID_SIZE}s{NONCE_SIZE}s")
_REQUEST = struct.Struct(f"!B{SESSION_ID_SIZE}sQ{NONCE_SIZE}sQ{MAC_SIZE}s")
_ACCEPTED = struct.Struct(f"!BQ{MAC_SIZE}s")
_REFUSED = struct.Struct("!BB")

_SECRET_LABEL = b"pymasep-comm v1 resume secret\0"
_PROOF_KEY_LABEL = b"pymasep-comm v1 resume proof key\0"
_CLIENT_LABEL = b"pymasep-comm v1 resume client proof\0"
_SERVER_LABEL = b"pymasep-comm v1 resume server proof\0"


class _Type(enum.IntEnum):
    OFFER = 1
    ACCEPT = 2
    DECLINE = 3
    REQUEST = 4
    ACCEPTED = 5
    REFUSED = 6


class RefusalReason(enum.IntEnum):
    """Why a server refuses a resume (the REFUSED message's reason byte)."""

    UNKNOWN_SESSION = 1
    """The server does not know the session: it restarted, or the session ended."""
    EXPIRED = 2
    """The session's window passed before the resume arrived (or it was evicted)."""
    BAD_PROOF = 3
    """The proof is wrong (no secret, another key) or replays an earlier attempt."""

    @property
    def text(self) -> str:
        """The reason in words, for logs and the client's error."""
        return _REFUSAL_TEXT[self]


_REFUSAL_TEXT = {
    RefusalReason.UNKNOWN_SESSION: "the server does not know this session (it restarted?)",
    RefusalReason.EXPIRED: "the session's resume window has passed",
    RefusalReason.BAD_PROOF: "the resume's proof is wrong",
}


class ResumeRefusedError(ConnectionRejectedError):
    """The server refused to resume the session (a ConnectionRejectedError; the client
    ends its session with it, ``DisconnectCode.RESUME_REFUSED``).

    Attributes:
        refusal: Why, as a :class:`RefusalReason`.
    """

    _init_attributes = ("refusal",)

    def __init__(self, refusal: RefusalReason | int) -> None:
        self.refusal = RefusalReason(refusal)
        super().__init__(self.refusal.text)


# -- messages --------------------------------------------------------------------------


def _check_window(window: float) -> int:
    """The window in whole milliseconds, or InvalidArgumentError."""
    if not 0 < window <= MAX_WINDOW:
        raise InvalidArgumentError(f"a resume window must be in (0, {MAX_WINDOW:g}] s: {window!r}")
    return max(1, round(window * 1000))


def _check_ack_bytes(value: int) -> int:
    if not 0 < value <= _U32_MAX:
        raise InvalidArgumentError(f"ack_bytes must be in [1, {_U32_MAX}], not {value}")
    return value


@dataclass(frozen=True)
class ResumeOffer:
    """The client offers resuming (after its HELLO).

    Attributes:
        window: Seconds the client will try to resume for.
        ack_bytes: The client wants an ACK at least every this many bytes it sends.
        nonce: The client's fresh nonce for the session secret.
    """

    window: float
    ack_bytes: int
    nonce: bytes = field(repr=False)  # without a key, the secret is made of the nonces

    @classmethod
    def new(cls, window: float, ack_bytes: int = DEFAULT_ACK_EVERY_BYTES) -> ResumeOffer:
        """An offer with a fresh nonce."""
        return cls(window, ack_bytes, new_nonce())


@dataclass(frozen=True)
class ResumeAccept:
    """The server accepts resuming (after its HELLO): a session starts.

    Attributes:
        window: Seconds both sides hold the session: the smaller of both windows.
        ack_bytes: The server wants an ACK at least every this many bytes it sends.
        session_id: The session's id, chosen by the server.
        nonce: The server's fresh nonce for the session secret.
    """

    window: float
    ack_bytes: int
    session_id: bytes
    nonce: bytes = field(repr=False)


@dataclass(frozen=True)
class ResumeDecline:
    """The server does not resume (``resume_window=0``): the connection goes on without."""


@dataclass(frozen=True)
class ResumeRequest:
    """The client asks to resume a session (the first frame of a new connection).

    Attributes:
        session_id: The session.
        attempt: The client's attempt number in the session, from 1.
        nonce: A fresh nonce.
        received: Data frames the client received in the session.
        proof: The client's proof (:meth:`ClientSession.request`).
    """

    session_id: bytes
    attempt: int
    nonce: bytes
    received: int
    proof: bytes = field(repr=False)


@dataclass(frozen=True)
class ResumeAccepted:
    """The server resumes the session.

    Attributes:
        received: Data frames the server received in the session.
        proof: The server's proof over the request.
    """

    received: int
    proof: bytes = field(repr=False)


@dataclass(frozen=True)
class ResumeRefused:
    """The server refuses to resume.

    Attributes:
        reason: Why.
    """

    reason: RefusalReason


ResumeMessage = (
    ResumeOffer | ResumeAccept | ResumeDecline | ResumeRequest | ResumeAccepted | ResumeRefused
)
"""Any message a RESUME frame carries."""


def encode_resume(message: ResumeMessage) -> bytes:
    """The payload of the RESUME frame that carries ``message``.

    Raises:
        InvalidArgumentError: A field out of its range or of the wrong size.
    """
    if isinstance(message, ResumeOffer):
        _check_size(message.nonce, NONCE_SIZE, "nonce")
        window = _check_window(message.window)
        return _OFFER.pack(_Type.OFFER, window, _check_ack_bytes(message.ack_bytes), message.nonce)
    if isinstance(message, ResumeAccept):
        _check_size(message.session_id, SESSION_ID_SIZE, "session id")
        _check_size(message.nonce, NONCE_SIZE, "nonce")
        window = _check_window(message.window)
        ack_bytes = _check_ack_bytes(message.ack_bytes)
        return _ACCEPT.pack(_Type.ACCEPT, window, ack_bytes, message.session_id, message.nonce)
    if isinstance(message, ResumeDecline):
        return bytes([_Type.DECLINE])
    if isinstance(message, ResumeRequest):
        _check_size(message.session_id, SESSION_ID_SIZE, "session id")
        _check_size(message.nonce, NONCE_SIZE, "nonce")
        _check_size(message.proof, MAC_SIZE, "proof")
        if not 0 < message.attempt <= MAX_COUNT:
            raise InvalidArgumentError(f"attempt must be in [1, 2**64 - 1]: {message.attempt}")
        _check_count(message.received)
        return _REQUEST.pack(
            _Type.REQUEST,
            message.session_id,
            message.attempt,
            message.nonce,
            message.received,
            message.proof,
        )
    if isinstance(message, ResumeAccepted):
        _check_size(message.proof, MAC_SIZE, "proof")
        _check_count(message.received)
        return _ACCEPTED.pack(_Type.ACCEPTED, message.received, message.proof)
    if isinstance(message, ResumeRefused):
        return _REFUSED.pack(_Type.REFUSED, RefusalReason(message.reason))
    raise InvalidArgumentError(f"not a resume message: {type(message).__name__}")


def _check_size(value: bytes, size: int, what: str) -> None:
    if len(value) != size:
        raise InvalidArgumentError(f"a {what} is {size} bytes, not {len(value)}")


def _check_count(count: int) -> None:
    if not 0 <= count <= MAX_COUNT:
        raise InvalidArgumentError(f"a count is in [0, 2**64 - 1], not {count}")


_SIZES = {
    _Type.OFFER: _OFFER.size,
    _Type.ACCEPT: _ACCEPT.size,
    _Type.DECLINE: 1,
    _Type.REQUEST: _REQUEST.size,
    _Type.ACCEPTED: _ACCEPTED.size,
    _Type.REFUSED: _REFUSED.size,
}

MAX_RESUME_PAYLOAD = max(_SIZES.values())
"""Largest RESUME payload (a REQUEST, 97 bytes): a receiver refuses a larger RESUME frame
as soon as its header is complete, as it does an oversized hello."""


def decode_resume(payload: bytes) -> ResumeMessage:
    """The message a RESUME frame's payload carries.

    Raises:
        DecodeError: Anything but exactly one well-formed message: an unknown type, a
            size other than the type's, a window, ack size, attempt or reason out of range.
    """
    if not payload:
        raise DecodeError("an empty RESUME frame")
    try:
        kind = _Type(payload[0])
    except ValueError:
        raise DecodeError(f"unknown RESUME message type {payload[0]}") from None
    if len(payload) != _SIZES[kind]:
        raise DecodeError(f"a RESUME {kind.name} is {_SIZES[kind]} bytes, not {len(payload)}")
    if kind is _Type.OFFER:
        _, window_ms, ack_bytes, nonce = _OFFER.unpack(payload)
        return ResumeOffer(_decode_window(window_ms), _decode_ack_bytes(ack_bytes), nonce)
    if kind is _Type.ACCEPT:
        _, window_ms, ack_bytes, session_id, nonce = _ACCEPT.unpack(payload)
        return ResumeAccept(
            _decode_window(window_ms), _decode_ack_bytes(ack_bytes), session_id, nonce
        )
    if kind is _Type.DECLINE:
        return ResumeDecline()
    if kind is _Type.REQUEST:
        _, session_id, attempt, nonce, received, proof = _REQUEST.unpack(payload)
        if attempt == 0:
            raise DecodeError("a resume attempt starts at 1")
        return ResumeRequest(session_id, attempt, nonce, received, proof)
    if kind is _Type.ACCEPTED:
        _, received, proof = _ACCEPTED.unpack(payload)
        return ResumeAccepted(received, proof)
    _, reason = _REFUSED.unpack(payload)
    try:
        return ResumeRefused(RefusalReason(reason))
    except ValueError:
        raise DecodeError(f"unknown resume refusal reason {reason}") from None


def _decode_window(window_ms: int) -> float:
    if not 0 < window_ms <= MAX_WINDOW * 1000:
        raise DecodeError(f"a resume window of {window_ms} ms")
    return window_ms / 1000


def _decode_ack_bytes(value: int) -> int:
    if value == 0:
        raise DecodeError("ack every 0 bytes")
    return value


def preamble_version(prefix: bytes) -> int | None:
    """The version byte of a v1 preamble, once its 5 bytes have arrived.

    The client that offered resuming reads the server's answer with it: 1 means a server
    built before resuming (its REFUSE follows: connect again with version 1 and no
    offer), :data:`EXTENDED_VERSION` a server that knows it.

    Returns:
        1 or 2, or None while fewer than 5 bytes have arrived.

    Raises:
        ProtocolError: The bytes are not a v1 preamble of either version.
    """
    if prefix[: len(MAGIC)] != MAGIC[: len(prefix)]:
        raise ProtocolError("the server does not speak the v1 wire")
    if len(prefix) <= len(MAGIC):
        return None
    version = prefix[len(MAGIC)]
    if version not in (PROTOCOL_VERSION, EXTENDED_VERSION):
        raise ProtocolError(f"the server speaks protocol version {version}")
    return version


def resume_frame(message: ResumeMessage) -> bytes:
    """The whole v1 RESUME frame (header and payload) that carries ``message``."""
    payload = encode_resume(message)
    return _HEADER.pack(RESUME_KIND, len(payload)) + payload


def ack_frame(count: int) -> bytes:
    """The whole v1 ACK frame (13 bytes) acknowledging ``count`` data frames."""
    _check_count(count)
    return _HEADER.pack(ACK_KIND, _COUNT.size) + _COUNT.pack(count)


def decode_ack(payload: bytes) -> int:
    """The count an ACK frame's payload carries.

    Raises:
        DecodeError: The payload is not exactly 8 bytes.
    """
    if len(payload) != _COUNT.size:
        raise DecodeError(f"an ACK is {_COUNT.size} bytes, not {len(payload)}")
    count: int = _COUNT.unpack(payload)[0]
    return count


def ack_every_bytes(hard_limit: int) -> int:
    """How often, in bytes, a side asks its peer to acknowledge: a quarter of its hard
    send limit, at most :data:`DEFAULT_ACK_EVERY_BYTES`, at least 1."""
    return max(1, min(DEFAULT_ACK_EVERY_BYTES, hard_limit // 4))


# -- secrets and proofs ----------------------------------------------------------------


def _field(value: bytes) -> bytes:
    # Length-prefixed, so that no two different tuples of fields hash the same bytes.
    return len(value).to_bytes(4, "big") + value


def session_secret(
    key: bytes | None,
    offer: ResumeOffer,
    accept: ResumeAccept,
    client_id: str,
    server_id: str,
) -> bytes:
    """The session's secret, which both sides derive from the negotiation.

    Args:
        key: The shared key of the handshake (for this client's id), or None.
        offer: The client's offer.
        accept: The server's acceptance.
        client_id: The client's id.
        server_id: The server's id.
    """
    transcript = b"".join(
        (
            _SECRET_LABEL,
            bytes([PROTOCOL_VERSION]),
            _field(offer.nonce),
            _field(accept.nonce),
            _field(accept.session_id),
            _field(client_id.encode("utf-8")),
            _field(server_id.encode("utf-8")),
        )
    )
    return hmac.new(key or b"", transcript, hashlib.sha256).digest()


def _proof_key(secret: bytes, key: bytes | None) -> bytes:
    if key is None:
        return secret
    return hmac.new(key, _PROOF_KEY_LABEL + secret, hashlib.sha256).digest()


def _client_proof(
    proof_key: bytes, session_id: bytes, attempt: int, nonce: bytes, received: int
) -> bytes:
    transcript = b"".join(
        (
            _CLIENT_LABEL,
            _field(session_id),
            _COUNT.pack(attempt),
            _field(nonce),
            _COUNT.pack(received),
        )
    )
    return hmac.new(proof_key, transcript, hashlib.sha256).digest()


def _server_proof(proof_key: bytes, request: ResumeRequest, received: int) -> bytes:
    transcript = b"".join(
        (
            _SERVER_LABEL,
            _field(request.session_id),
            _COUNT.pack(request.attempt),
            _field(request.nonce),
            _COUNT.pack(request.received),
            _COUNT.pack(received),
        )
    )
    return hmac.new(proof_key, transcript, hashlib.sha256).digest()


# -- sequence numbers and acknowledgements ---------------------------------------------

_HEADER_SIZE = _HEADER.size


class SendLog:
    """The data frames sent in a session that the peer has not acknowledged (the resend
    buffer), numbered by count.

    Frames ``acked`` to ``sent - 1`` are held, oldest first. The payloads are the
    caller's own ``bytes`` objects: holding them copies nothing.

    It is on the send path of every data frame of a resumable connection, so it costs
    little: :meth:`record` is one append and two additions, and an ACK releases its
    frames by moving an index (the list is compacted once its released head is the
    larger half), not by removing them one by one.

    Threads: the senders call :meth:`record` (and the driver :meth:`resume` and
    :meth:`clear`) under the connection's lock; the I/O thread calls :meth:`ack` without
    it, so that an ACK never makes a streaming sender hand its lock over. That is safe
    because each writes fields the other only reads (``record``: ``sent`` and
    ``recorded_bytes``, appending at the list's end; ``ack``: the head, ``acked`` and
    ``released_bytes``), each list operation is atomic, and :attr:`unacked_bytes`, which may
    read a moment's mix of both, only feeds the send limits. ``resume`` runs while no
    socket is read (or in the I/O thread itself).
    """

    __slots__ = ("_head", "acked", "frames", "recorded_bytes", "released_bytes", "sent")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        """The payloads held, oldest first (those before the head are released)."""
        self._head = 0  # index in frames of frame number `acked`
        self.recorded_bytes = 0
        """Bytes of every frame recorded, headers included (written by :meth:`record`)."""
        self.released_bytes = 0
        """Bytes of every frame released, headers included (written by :meth:`ack`):
        ``recorded_bytes - released_bytes`` is :attr:`unacked_bytes`, which the driver
        reads inline on the send path."""
        self.sent = 0
        """Data frames numbered so far: the number the next one gets."""
        self.acked = 0
        """Data frames the peer acknowledged (cumulatively)."""

    def __len__(self) -> int:
        """Frames held (sent and not acknowledged)."""
        return self.sent - self.acked

    @property
    def unacked_bytes(self) -> int:
        """Bytes held, headers included: what the send limits count."""
        return self.recorded_bytes - self.released_bytes

    def record(self, payload: bytes) -> int:
        """Hold a data frame about to be sent; return its number. (The driver's send
        path does the same inline: a call there costs as much as the rest of it.)

        Raises:
            InvalidStateError: The session has numbered 2**64 - 1 frames (counters never
                wrap; see the module docstring).
        """
        number = self.sent
        if number == MAX_COUNT:
            raise InvalidStateError("this session has sent 2**64 - 1 frames: it cannot number more")
        self.frames.append(payload)
        self.recorded_bytes += len(payload) + _HEADER_SIZE
        self.sent = number + 1
        return number

    def ack(self, count: int) -> int:
        """The peer received ``count`` frames: release those; return how many were.

        Raises:
            ProtocolError: ``count`` is above the frames sent (an acknowledgement of a
                frame never sent) or below an earlier acknowledgement (backwards).
        """
        if count > self.sent:
            raise ProtocolError(
                f"the peer acknowledged {count} frames, but only {self.sent} were sent"
            )
        if count < self.acked:
            raise ProtocolError(
                f"the peer acknowledged {count} frames after acknowledging {self.acked}"
            )
        released = count - self.acked
        if released:
            frames = self.frames
            head = self._head
            held = frames[head : head + released]
            self.released_bytes += sum(map(len, held)) + _HEADER_SIZE * released
            head += released
            if head * 2 > len(frames):  # amortised: each frame is moved at most once
                del frames[:head]
                head = 0
            self._head = head
            self.acked = count
        return released

    def resume(self, peer_received: int) -> list[bytes]:
        """After a resume: the frames to send again, exactly once and in order.

        The peer said it received ``peer_received`` frames: those are released (as an
        ACK would), and the rest, which the peer never got, are returned; they stay held
        until acknowledged on the new connection.

        Raises:
            ProtocolError: As :meth:`ack`.
        """
        self.ack(peer_received)
        return self.frames[self._head :]

    def clear(self) -> int:
        """Drop every frame held (the session ended); return how many were dropped."""
        dropped = len(self)
        self.frames.clear()
        self._head = 0
        self.released_bytes = self.recorded_bytes
        self.acked = self.sent
        return dropped


class ReceiveLog:
    """The receiving side's count of data frames, and when to acknowledge it.

    An ACK is due once ``ack_frames`` frames or ``ack_bytes`` bytes arrived
    since the last one, or, when the reader gives the time, once :data:`ACK_INTERVAL`
    seconds passed since the first of them arrived: the count rules keep a stream's ACKs
    few, the time rule keeps what a game-paced sender holds to a fraction of a second
    of its frames.

    Args:
        ack_bytes: The peer asked for an ACK at least every this many bytes.
        ack_frames: An ACK is due after this many frames at most.
    """

    __slots__ = ("_bytes", "_due", "_since", "ack_bytes", "ack_frames", "acked", "received")

    def __init__(
        self, ack_bytes: int = DEFAULT_ACK_EVERY_BYTES, ack_frames: int = ACK_EVERY_FRAMES
    ) -> None:
        if ack_bytes < 1 or ack_frames < 1:
            raise InvalidArgumentError("acknowledgement intervals must be at least 1")
        self.ack_bytes = ack_bytes
        self.ack_frames = ack_frames
        self.received = 0
        """Whole data frames received in the session."""
        self.acked = 0
        """The count the peer knows: the last ACK sent, or the last resume's."""
        self._bytes = 0  # received since the last ACK
        self._since: float | None = None  # when the first frame since the last ACK came
        self._due = False

    def count(self, frames: int, size: int, now: float | None = None) -> bool:
        """Count ``frames`` whole data frames received, ``size`` bytes with headers, at
        ``now`` (the monotonic clock; None: the time rule does not apply); return
        :attr:`ack_due` (the reader then acknowledges at the end of its turn)."""
        received = self.received = self.received + frames
        self._bytes += size
        if received - self.acked >= self.ack_frames or (
            self._bytes >= self.ack_bytes and received > self.acked
        ):
            self._due = True
        elif now is not None and received > self.acked:
            if self._since is None:
                self._since = now
            elif now - self._since >= ACK_INTERVAL:
                self._due = True
        return self._due

    @property
    def ack_due(self) -> bool:
        """True when an ACK should go out at the end of this read turn."""
        return self._due

    def take_ack(self) -> bytes | None:
        """The ACK frame to write now if one is due (it then counts as sent), else None."""
        if not self._due:
            return None
        self.resumed()
        return ack_frame(self.received)

    def resumed(self) -> None:
        """The resume exchange told the peer :attr:`received`: nothing is due."""
        self.acked = self.received
        self._bytes = 0
        self._since = None
        self._due = False


class ResumeState:
    """What a resumable session keeps across its connections, on either side.

    Attributes:
        session_id: The session.
        window: Seconds the session is held after a break.
        log: The frames sent and not acknowledged.
        acks: The frames received, and when to acknowledge them.
        broken_at: When the current break was seen, or None while connected.
        resumes: How many times the session resumed.
    """

    def __init__(self, session_id: bytes, window: float, peer_ack_bytes: int) -> None:
        self.session_id = session_id
        self.window = window
        self.log = SendLog()
        self.acks = ReceiveLog(peer_ack_bytes)
        self.broken_at: float | None = None
        self.resumes = 0

    @property
    def deadline(self) -> float | None:
        """When the session ends unless resumed; None while connected."""
        return None if self.broken_at is None else self.broken_at + self.window

    def room_for(self, size: int, queued_bytes: int, hard_limit: int) -> bool:
        """Whether a new data frame of ``size`` bytes (header included) may be taken now
        under ``hard_limit``; False: the sender's policy applies (wait, block, raise,
        disconnect), as for :meth:`Connection.room_for
        <pymasep.comm.core.Connection.room_for>`, which calls it.

        Connected, the bytes held are ``max(queued_bytes, log.unacked_bytes)``, and a
        frame is always taken while the send queue is empty: a sender never waits for
        an ACK, which a peer that has nothing more to read would not send (see
        :class:`ReceiveLog`); it waits for the kernel, as without resuming. During an
        outage the log is the queue: a frame is taken while the log is empty or there is
        room in it.
        """
        if self.broken_at is None:
            if not queued_bytes:
                return True
            held = max(queued_bytes, self.log.unacked_bytes)
        else:
            held = self.log.unacked_bytes
            if not held:
                return True
        return held + size <= hard_limit

    def broke(self, now: float) -> float:
        """The connection broke (first call wins); return the deadline."""
        if self.broken_at is None:
            self.broken_at = now
        return self.broken_at + self.window

    def expired(self, now: float) -> bool:
        """True once the window after the break has passed."""
        deadline = self.deadline
        return deadline is not None and now >= deadline

    def _resumed(self, peer_received: int) -> list[bytes]:
        resend = self.log.resume(peer_received)
        self.acks.resumed()
        self.broken_at = None
        self.resumes += 1
        return resend

    def end(self, why: str | None = None) -> str:
        """End the session for good: drop the frames held.

        Args:
            why: What ended it; by default that its window passed.

        Returns:
            The detail of the ``RESUME_EXPIRED`` reason: why, and what was dropped.
        """
        why = why or f"not resumed within {self.window:g} s"
        detail = (
            f"{why}; {len(self.log)} frames ({self.log.unacked_bytes} bytes) "
            "not acknowledged were dropped"
        )
        self.log.clear()
        return detail


# -- the client's session --------------------------------------------------------------


class ClientSession(ResumeState):
    """The client's resumable session, from the negotiation on.

    Build it with :meth:`start` once the server's ACCEPT has arrived.
    """

    def __init__(
        self,
        accept: ResumeAccept,
        secret: bytes,
        key: bytes | None,
    ) -> None:
        super().__init__(accept.session_id, accept.window, accept.ack_bytes)
        self._proof_key = _proof_key(secret, key)
        self.attempts = 0
        """Resume attempts made (the next request's attempt is one more)."""
        self._pending: ResumeRequest | None = None

    @classmethod
    def start(
        cls,
        offer: ResumeOffer,
        accept: ResumeAccept,
        client_id: str,
        server_id: str,
        key: bytes | None = None,
    ) -> ClientSession:
        """The session that the client's ``offer`` and the server's ``accept`` agreed.

        Raises:
            ProtocolError: The server's window is longer than the client offered.
        """
        if _check_window(accept.window) > _check_window(offer.window):
            raise ProtocolError(
                f"the server accepted a resume window of {accept.window:g} s, "
                f"above the {offer.window:g} s offered"
            )
        secret = session_secret(key, offer, accept, client_id, server_id)
        return cls(accept, secret, key)

    def request(self) -> bytes:
        """A fresh RESUME(REQUEST) frame for the next attempt (each call is a new
        attempt: an earlier one whose answer never came is never reused)."""
        self.attempts += 1
        nonce = new_nonce()
        received = self.acks.received
        proof = _client_proof(self._proof_key, self.session_id, self.attempts, nonce, received)
        self._pending = ResumeRequest(self.session_id, self.attempts, nonce, received, proof)
        return resume_frame(self._pending)

    def answer(self, payload: bytes) -> list[bytes]:
        """Read the server's answer to the last :meth:`request`; return the frames to
        send again, in order, before any other.

        Raises:
            ResumeRefusedError: The server refused (the session is over: the client
                ends it and says why).
            ProtocolError: Not an answer; a wrong server proof (not this session's
                server); or a count of frames never sent.
            DecodeError: Not a RESUME message.
        """
        request = self._pending
        if request is None:
            raise InvalidStateError("no resume request is waiting for an answer")
        message = decode_resume(payload)
        if isinstance(message, ResumeRefused):
            self._pending = None
            raise ResumeRefusedError(message.reason)
        if not isinstance(message, ResumeAccepted):
            raise ProtocolError(f"the server answered a resume with {type(message).__name__}")
        expected = _server_proof(self._proof_key, request, message.received)
        if not proofs_match(expected, message.proof):
            raise ProtocolError("the server's resume proof is wrong")
        self._pending = None
        return self._resumed(message.received)


# -- the server's sessions -------------------------------------------------------------


class ServerSession(ResumeState):
    """One client's resumable session on the server.

    Attributes:
        client_id: The client's id (its key, if any, is looked up again on each resume).
        last_attempt: The highest attempt accepted; a request must be above it.
    """

    def __init__(
        self, client_id: str, accept: ResumeAccept, secret: bytes, peer_ack_bytes: int
    ) -> None:
        super().__init__(accept.session_id, accept.window, peer_ack_bytes)
        self.client_id = client_id
        self._secret = secret
        self.last_attempt = 0

    @property
    def held(self) -> bool:
        """True while the session waits for a resume."""
        return self.broken_at is not None


@dataclass(frozen=True)
class ResumeDecision:
    """What the server does with a resume request.

    Attributes:
        answer: The RESUME frame to send (ACCEPTED or REFUSED).
        session: The session resumed, or None when refused.
        resend: The frames to send again, in order, before any other (accepted only).
        refusal: Why it was refused, or None.
        was_live: Accepted while the server still had the session's connection open
            (it had not seen the break): that connection is dropped without a word.
    """

    answer: bytes
    session: ServerSession | None = None
    resend: list[bytes] = field(default_factory=list)
    refusal: RefusalReason | None = None
    was_live: bool = False


class SessionTable:
    """The server's resumable sessions: live ones, and those of broken connections held
    for their window. Not thread-safe: the server calls it under its own lock.

    Args:
        window: The server's ``resume_window``, in seconds.
        key_lookup: The server's key for a client id (``auth.key_lookup(authkey)``), or
            None without a key. Looked up again at each resume: a key withdrawn since
            refuses the resume.
        max_held: Most sessions held at once; one more break evicts the oldest held.
        max_forgotten: Most ended session ids remembered, to refuse a late resume as
            ``EXPIRED`` rather than ``UNKNOWN_SESSION``.
    """

    def __init__(
        self,
        window: float = DEFAULT_RESUME_WINDOW,
        key_lookup: Callable[[str], bytes | None] | None = None,
        max_held: int = DEFAULT_MAX_HELD_SESSIONS,
        max_forgotten: int = 1024,
    ) -> None:
        _check_window(window)
        if max_held < 1 or max_forgotten < 0:
            raise InvalidArgumentError("max_held must be at least 1, max_forgotten at least 0")
        self.window = window
        self.max_held = max_held
        self.max_forgotten = max_forgotten
        self._lookup = key_lookup
        self._sessions: dict[bytes, ServerSession] = {}
        self._held: OrderedDict[bytes, ServerSession] = OrderedDict()  # oldest break first
        self._expired: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        """Sessions known, live and held."""
        return len(self._sessions)

    @property
    def held(self) -> int:
        """Sessions held for a resume now."""
        return len(self._held)

    def get(self, session_id: bytes) -> ServerSession | None:
        """The session with this id, live or held."""
        return self._sessions.get(session_id)

    def _key(self, client_id: str) -> bytes | None:
        return None if self._lookup is None else self._lookup(client_id)

    def open(
        self, client_id: str, server_id: str, offer: ResumeOffer, ack_bytes: int
    ) -> tuple[ServerSession, ResumeAccept]:
        """Start a session for a client admitted with ``offer``.

        Args:
            client_id: The client's id.
            server_id: The server's id.
            offer: The client's offer.
            ack_bytes: How often the server wants its frames acknowledged
                (:func:`ack_every_bytes` of its hard limit).

        Returns:
            The session, and the ACCEPT to send after the server's HELLO.
        """
        session_id = secrets.token_bytes(SESSION_ID_SIZE)
        window = min(self.window, offer.window)
        accept = ResumeAccept(window, ack_bytes, session_id, new_nonce())
        secret = session_secret(self._key(client_id), offer, accept, client_id, server_id)
        session = ServerSession(client_id, accept, secret, offer.ack_bytes)
        self._sessions[session_id] = session
        return session, accept

    def broke(self, session_id: bytes, now: float) -> list[tuple[ServerSession, str]]:
        """The session's connection broke: hold it for its window.

        Returns:
            Sessions evicted to stay within ``max_held`` (oldest break first), each with
            the detail of the ``RESUME_EXPIRED`` reason the caller ends it with.

        Raises:
            KeyError: No session has this id (it ended already).
        """
        session = self._sessions[session_id]
        if session_id in self._held:
            return []
        session.broke(now)
        self._held[session_id] = session
        evicted: list[tuple[ServerSession, str]] = []
        while len(self._held) > self.max_held:
            oldest = next(iter(self._held))
            why = f"evicted: {self.max_held} sessions were held already (max_held)"
            evicted.append(self._end(oldest, why, expired=True))
        return evicted

    def next_deadline(self) -> float | None:
        """When the next held session expires (for the driver's timer), or None."""
        # Windows differ by session (the smaller of both sides'): the oldest break is
        # not always the first deadline. At most max_held sessions are scanned.
        deadlines = [s.deadline for s in self._held.values() if s.deadline is not None]
        return min(deadlines, default=None)

    def expire(self, now: float) -> list[tuple[ServerSession, str]]:
        """End the held sessions whose window has passed.

        Returns:
            Them (oldest break first), each with the detail of its ``RESUME_EXPIRED``
            reason.
        """
        due = [sid for sid, session in self._held.items() if session.expired(now)]
        return [self._end(sid, None, expired=True) for sid in due]

    def close(self, session_id: bytes) -> None:
        """The session ended for good (a bye, ``close()``, a protocol error)."""
        if session_id in self._sessions:
            self._end(session_id, "closed", expired=False)

    def _end(
        self, session_id: bytes, why: str | None, *, expired: bool
    ) -> tuple[ServerSession, str]:
        session = self._sessions.pop(session_id)
        self._held.pop(session_id, None)
        detail = session.end(why)
        if expired and self.max_forgotten:
            self._expired[session_id] = None
            while len(self._expired) > self.max_forgotten:
                self._expired.popitem(last=False)
        return session, detail

    def resume(self, request: ResumeRequest, now: float) -> ResumeDecision:
        """Decide on a resume request.

        A held session whose window has passed is ended first (refused as expired).
        The proof is checked in constant time, under the secret and the client's key
        as the server knows it now, and its attempt must be above the last accepted.

        Raises:
            ProtocolError: A proven request whose count received is not one the server
                can have sent (above what it sent, below what the client acknowledged):
                the caller ends the session as a protocol error.
        """
        session = self._sessions.get(request.session_id)
        if session is not None and session.expired(now):
            self._end(session.session_id, None, expired=True)
            session = None
        if session is None:
            reason = (
                RefusalReason.EXPIRED
                if request.session_id in self._expired
                else RefusalReason.UNKNOWN_SESSION
            )
            return _refused(reason)
        key = self._key(session.client_id)
        if self._lookup is not None and key is None:
            return _refused(RefusalReason.BAD_PROOF)
        proof_key = _proof_key(session._secret, key)
        expected = _client_proof(
            proof_key, session.session_id, request.attempt, request.nonce, request.received
        )
        # The attempt is checked after the proof, whose comparison runs whatever it is.
        if not proofs_match(expected, request.proof) or request.attempt <= session.last_attempt:
            return _refused(RefusalReason.BAD_PROOF)
        was_live = session.broken_at is None
        resend = session._resumed(request.received)
        session.last_attempt = request.attempt
        self._held.pop(session.session_id, None)
        answer = ResumeAccepted(
            session.acks.received, _server_proof(proof_key, request, session.acks.received)
        )
        return ResumeDecision(resume_frame(answer), session, resend, None, was_live)


def _refused(reason: RefusalReason) -> ResumeDecision:
    return ResumeDecision(resume_frame(ResumeRefused(reason)), refusal=reason)
