"""The opening exchange of a connection, as state machines fed with bytes (sans-I/O).

A v1 client sends :data:`~pymasep.comm.core.wire.PREAMBLE` then a HELLO frame with its
id; the server answers with the preamble then its own HELLO, or a REFUSE frame with a
reason. A legacy (pymasep 0.2) client sends its id as a bare frame and the server answers
the same way. A server tells the two apart by the first four bytes.

With a key (``authkey``) a v1 handshake takes one more round trip, in which both sides
prove they hold the key (:mod:`pymasep.comm.core.auth`)::

    client: PREAMBLE, AUTH(client nonce), HELLO(client id)
    server: PREAMBLE, AUTH(server nonce + server proof + server id)   (or REFUSE)
    client: AUTH(client proof)
    server: HELLO(server id)                                           (or REFUSE)

A server's HELLO still means "accepted", with or without a key. A legacy client cannot
authenticate, so a server with a key refuses it.

A client that may resume a broken connection (:mod:`pymasep.comm.core.resume`) opens
with preamble version 2 and sends its OFFER right after its HELLO; a server that knows
resuming answers with version 2 and its ACCEPT (or DECLINE) right after its HELLO. A
server built before refuses version 2 with a version-1 preamble before reading a frame:
the client then sees :attr:`ClientHandshake.older_server` and connects again without
the offer. A connection that resumes a session opens with version 2 and a REQUEST
instead of a hello (:class:`ResumeHandshake`; the server's
:attr:`ServerHandshake.resume_request`), and needs no AUTH exchange: the request's
proof covers the key.
"""

from __future__ import annotations

from collections.abc import Callable

from .auth import (
    AUTH_FAILED,
    MAC_SIZE,
    NONCE_SIZE,
    AuthKey,
    check_key,
    key_lookup,
    new_nonce,
    proof,
    proofs_match,
)
from .exceptions import (
    CommunicationError,
    ConnectionRejectedError,
    HandshakeError,
    InvalidArgumentError,
    PeerFrameTooLargeError,
    ProtocolError,
)
from .frame import Frame, FrameKind
from .resume import (
    EXTENDED_VERSION,
    ClientSession,
    ResumeAccept,
    ResumeDecline,
    ResumeOffer,
    ResumeRequest,
    decode_resume,
    resume_frame,
)
from .wire import (
    DEFAULT_MAX_FRAME_SIZE,
    MAGIC,
    PREAMBLE,
    PROTOCOL_VERSION,
    BytesLike,
    FrameDecoder,
    Wire,
    encode_frame,
)

__all__ = [
    "MAX_IDENT_SIZE",
    "ClientHandshake",
    "ResumeHandshake",
    "ServerHandshake",
    "detect_wire",
]

MAX_IDENT_SIZE = 4096
"""Largest id, in UTF-8 bytes, that a hello may carry."""

_MAX_CHALLENGE_SIZE = MAX_IDENT_SIZE + NONCE_SIZE + MAC_SIZE
# A TLS client opens with a handshake record: type 22, then version 3.x (x at most 4).
# Read as pymasep 0.2's wire it is a 790-byte hello whose id starts with a control
# byte, which no 0.2 client sends: a server without TLS refuses it at once rather than
# wait, with the client, for the rest of a hello that never comes.
_TLS_RECORD_START = b"\x16\x03"
_TLS_LAST_MINOR = 4
"""Largest challenge a server sends: its nonce, its proof and its id."""


def detect_wire(prefix: bytes) -> Wire | None:
    """Tell the wire of a client from the first bytes it sent.

    Args:
        prefix: The bytes received so far.

    Returns:
        The wire, or None while ``prefix`` is too short to tell.
    """
    if prefix[: len(MAGIC)] == MAGIC[: len(prefix)]:
        return Wire.V1 if len(prefix) >= len(MAGIC) else None
    return Wire.LEGACY


def _decode_ident(frame: Frame) -> str:
    try:
        ident = frame.message.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("the hello carries an id that is not UTF-8") from None
    if not ident:
        raise ProtocolError("the hello carries an empty id")
    return ident


class _Side:
    """What both sides share: a buffer before the preamble, then a frame decoder."""

    def __init__(self, wire: Wire | None, max_frame_size: int) -> None:
        self._max_frame_size = max_frame_size
        self._prefix = b""
        self.wire: Wire | None = None
        """The wire of the connection, once known."""
        self.decoder: FrameDecoder | None = None
        """The decoder to keep using after the handshake (it may hold buffered bytes)."""
        self.pending_frames: list[Frame] = []
        """Frames that arrived behind the peer's hello; they belong to the application."""
        self._outgoing = b""
        self._size_limit = MAX_IDENT_SIZE  # of the frames of the handshake
        self._awaiting_preamble = False
        self._versions: tuple[int, ...] = (PROTOCOL_VERSION,)  # preamble versions taken
        self.version = PROTOCOL_VERSION
        """The peer's preamble version, once read: 2 when both sides may resume."""
        if wire is not None:
            self._start(Wire(wire))

    def _start(self, wire: Wire) -> None:
        self.wire = wire
        self._awaiting_preamble = wire is Wire.V1
        self.decoder = FrameDecoder(wire, self._max_frame_size)

    def _frames(self, data: BytesLike) -> list[Frame]:
        """Strip the preamble and return the frames that ``data`` completes."""
        if self._awaiting_preamble:
            self._prefix += bytes(data)
            self._check_preamble(self._prefix[: len(PREAMBLE)])
            if len(self._prefix) < len(PREAMBLE):
                return []
            self.version = self._prefix[len(MAGIC)]
            data, self._prefix = self._prefix[len(PREAMBLE) :], b""
            self._awaiting_preamble = False
        assert self.decoder is not None
        frames = self.decoder.feed(data)
        # A hello is small: refuse a big one before buffering it, so that a peer that
        # never finishes its hello cannot make us hold megabytes.
        announced = frames[0].size if frames else self.decoder.incoming_frame_size
        self._check_size(announced)
        return frames

    def _check_size(self, announced: int | None) -> None:
        limit = self._size_limit
        if announced is not None and announced > limit:
            reason = "a hello carries only an id"
            if limit != MAX_IDENT_SIZE:
                reason = "a handshake frame carries only an id and a proof"
            raise PeerFrameTooLargeError(announced, limit, reason)

    def _check_preamble(self, received: bytes) -> None:
        """Raise as soon as the bytes received so far cannot start a v1 preamble."""
        if received[: len(MAGIC)] != MAGIC[: len(received)]:
            raise ProtocolError(self._not_v1_message())
        if len(received) > len(MAGIC) and received[len(MAGIC)] not in self._versions:
            raise ProtocolError(
                f"the peer speaks protocol version {received[len(MAGIC)]}, "
                f"this side speaks {PROTOCOL_VERSION}"
            )

    def _not_v1_message(self) -> str:
        return "the peer does not speak the v1 wire"

    def data_to_send(self) -> bytes:
        """Bytes that the last :meth:`receive_data` asks to send now (empty if none);
        each call hands them out once."""
        data, self._outgoing = self._outgoing, b""
        return data

    def _finish(self, frames: list[Frame]) -> str:
        """Take the hello from ``frames``; keep what follows it for the application."""
        assert self.decoder is not None
        hello, self.pending_frames = frames[0], frames[1:]
        return _decode_ident(hello)

    def _resume_message(self, frame: Frame, wanted: tuple[type, ...]) -> object:
        """The resume message ``frame`` carries, of one of the ``wanted`` types.

        Raises:
            ProtocolError: Another frame, or another message.
        """
        if frame.kind is not FrameKind.RESUME:
            raise ProtocolError(f"a {frame.kind.name} frame where a RESUME was due")
        try:
            message = decode_resume(frame.message)
        except CommunicationError as error:
            raise ProtocolError(f"a malformed RESUME frame: {error}") from None
        if not isinstance(message, wanted):
            raise ProtocolError(f"a RESUME {type(message).__name__} where it has no place")
        return message


class ClientHandshake(_Side):
    """The client's side of the handshake.

    Send :meth:`bytes_to_send`, then feed what the server answers to
    :meth:`receive_data` until it returns True, sending :meth:`data_to_send` after each
    call; :attr:`server_ident` is then set.

    Args:
        ident: Id of the client.
        wire: The wire to speak.
        max_frame_size: Largest payload the client accepts, in bytes.
        authkey: The key to prove, and that the server must prove it holds; None for
            no authentication (v1 only).
        resume_offer: Offer the server to resume this connection if it breaks (v1
            only); None: no offer, the bytes of a client built before resuming.

    Raises:
        InvalidArgumentError: An empty id, an empty key, or a key or an offer on the
            legacy wire.
    """

    def __init__(
        self,
        ident: str,
        wire: Wire = Wire.V1,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        *,
        authkey: bytes | None = None,
        resume_offer: ResumeOffer | None = None,
    ) -> None:
        if not ident:
            raise InvalidArgumentError("the client id must not be empty")
        super().__init__(Wire(wire), max_frame_size)
        self.ident = ident
        self.server_ident: str | None = None
        """Id of the server, once the handshake is complete."""
        self._key = None if authkey is None else check_key(authkey)
        if self._key is not None and self.wire is not Wire.V1:
            raise InvalidArgumentError("the legacy wire (pymasep 0.2) cannot authenticate")
        if resume_offer is not None and self.wire is not Wire.V1:
            raise InvalidArgumentError("the legacy wire (pymasep 0.2) cannot resume")
        self.offer = resume_offer
        """What the client offered to resume, or None."""
        self.resume_answer: ResumeAccept | ResumeDecline | None = None
        """The server's answer to the offer, once the handshake is complete."""
        self.older_server = False
        """True when the client offered to resume and the server answered with version 1:
        a server built before resuming, which refuses the offer; connect again without."""
        self._hello_ident: str | None = None  # the server's hello, read before its answer
        if resume_offer is not None:
            self._versions = (PROTOCOL_VERSION, EXTENDED_VERSION)
        self._nonce = new_nonce() if self._key is not None else b""
        if self._key is not None:
            self._size_limit = _MAX_CHALLENGE_SIZE
        self._challenged_by: str | None = None  # the server id its proof covered

    @property
    def authenticates(self) -> bool:
        """True if both sides must prove they hold a key."""
        return self._key is not None

    def bytes_to_send(self) -> bytes:
        """The client's opening bytes: the preamble (v1), the nonce (with a key) and the
        hello."""
        assert self.wire is not None
        hello = encode_frame(Frame.hello_frame(self.ident), self.wire)
        if self.wire is not Wire.V1:
            return hello
        preamble = PREAMBLE
        if self.offer is not None:
            preamble = MAGIC + bytes([EXTENDED_VERSION])
            hello += resume_frame(self.offer)
        if self._key is not None:
            return preamble + encode_frame(Frame(self._nonce, FrameKind.AUTH)) + hello
        return preamble + hello

    def receive_data(self, data: BytesLike) -> bool:
        """Feed bytes received from the server.

        Returns:
            True once the server's hello has arrived.

        Raises:
            ConnectionRejectedError: The server refused the connection.
            ProtocolError: The server's bytes break the protocol (for example a pymasep
                0.2 server answering a v1 client).
            PeerFrameTooLargeError: The server announced an oversized hello.
        """
        if self.server_ident is not None or self.older_server:
            raise HandshakeError("the handshake is already complete")
        frames = self._frames(data)
        if (
            self.offer is not None
            and not self._awaiting_preamble
            and self.version != EXTENDED_VERSION
        ):
            self.older_server = True  # its REFUSE of version 2 follows: not read
            return False
        if not frames:
            return False
        if self._hello_ident is None:
            if self.wire is Wire.V1 and frames[0].kind is FrameKind.REFUSE:
                raise ConnectionRejectedError(frames[0].message.decode("utf-8", "replace"))
            if self._key is not None and self._challenged_by is None:
                return self._answer_challenge(frames)
            if self.wire is Wire.V1 and frames[0].kind is not FrameKind.HELLO:
                raise ProtocolError(
                    f"the server opened with a {frames[0].kind.name} frame, not HELLO"
                )
            # On the legacy wire the first frame is the hello whatever it says, even "BYE".
            hello_ident = self._finish(frames)
            if self._challenged_by is not None and hello_ident != self._challenged_by:
                raise ProtocolError("the server's hello and its proof name different ids")
            self._hello_ident = hello_ident
            frames = self.pending_frames
        if self.offer is not None:
            if not frames:  # the answer to the offer follows the hello
                self._check_size(self.decoder.incoming_frame_size if self.decoder else None)
                return False
            answer = self._resume_message(frames[0], (ResumeAccept, ResumeDecline))
            assert isinstance(answer, (ResumeAccept, ResumeDecline))
            self.resume_answer = answer
            self.pending_frames = frames[1:]
        self.server_ident = self._hello_ident
        return True

    def _answer_challenge(self, frames: list[Frame]) -> bool:
        """Check the server's proof and queue the client's (frames[0] is not a refusal)."""
        assert self._key is not None
        challenge = frames[0]
        # A server without a key answers with its hello: it cannot prove anything, and
        # this side refuses it as it refuses a wrong proof, without saying which.
        if challenge.kind is not FrameKind.AUTH or len(frames) > 1:
            raise ConnectionRejectedError(AUTH_FAILED)
        payload = challenge.message
        server_nonce = payload[:NONCE_SIZE]
        server_proof = payload[NONCE_SIZE : NONCE_SIZE + MAC_SIZE]
        try:
            server_ident = payload[NONCE_SIZE + MAC_SIZE :].decode("utf-8")
        except UnicodeDecodeError:
            raise ConnectionRejectedError(AUTH_FAILED) from None
        if len(server_proof) != MAC_SIZE or not server_ident:
            raise ConnectionRejectedError(AUTH_FAILED)
        expected = proof(self._key, "server", self._nonce, server_nonce, self.ident, server_ident)
        if not proofs_match(expected, server_proof):
            raise ConnectionRejectedError(AUTH_FAILED)
        self._challenged_by = server_ident
        mine = proof(self._key, "client", self._nonce, server_nonce, self.ident, server_ident)
        self._outgoing += encode_frame(Frame(mine, FrameKind.AUTH))
        return False

    def _not_v1_message(self) -> str:
        return (
            "the server does not speak the v1 wire; "
            "if it runs pymasep 0.2, connect with wire='legacy'"
        )


class ServerHandshake(_Side):
    """The server's side of the handshake, for a client of either wire.

    Feed what the client sends to :meth:`receive_data` until it returns True, sending
    :meth:`data_to_send` after each call; then send :meth:`accept_bytes` or
    :meth:`refuse_bytes`. With a key, True means the client proved it holds the key for
    the id it gave.

    Args:
        ident: Id of the server.
        max_frame_size: Largest payload the server accepts, in bytes.
        authkey: The key every client must prove it holds; a mapping from a client's
            id to its key; or a callable returning the key for an id (None refuses
            that id). None for no authentication.
    """

    def __init__(
        self,
        ident: str,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        *,
        authkey: AuthKey | None = None,
    ) -> None:
        super().__init__(None, max_frame_size)
        self.ident = ident
        self.client_ident: str | None = None
        """Id of the client, once its hello has arrived (and, with a key, its proof)."""
        self._lookup: Callable[[str], bytes | None] | None = (
            None if authkey is None else key_lookup(authkey)
        )
        self._client_nonce: bytes | None = None
        self._claimed_ident: str | None = None  # the id of a hello whose proof is awaited
        self._expected_proof: bytes | None = None  # None: no proof is good
        self._preamble_sent = False
        self._versions = (PROTOCOL_VERSION, EXTENDED_VERSION)
        self._hello_ident: str | None = None  # a hello read, its offer not yet
        self._first_frame = True
        self.offer: ResumeOffer | None = None
        """The client's offer to resume, once the handshake is complete (version 2)."""
        self.resume_request: ResumeRequest | None = None
        """Set instead of :attr:`client_ident` when the connection asks to resume a
        session: the server answers with :meth:`resume_answer_bytes`."""

    @property
    def authenticates(self) -> bool:
        """True if clients must prove they hold a key."""
        return self._lookup is not None

    @property
    def challenged(self) -> str | None:
        """The id a client claimed while its proof is awaited, else None.

        A client checks the server's proof first: one that leaves at this point holds
        another key than the server's for that id (or none is known for it).
        """
        return self._claimed_ident if self.client_ident is None else None

    def receive_data(self, data: BytesLike) -> bool:
        """Feed bytes received from the client.

        Returns:
            True once the client's hello has arrived.

        Raises:
            ProtocolError: The client's bytes break the protocol.
            PeerFrameTooLargeError: The client announced an oversized hello.
        """
        if self.client_ident is not None or self.resume_request is not None:
            raise HandshakeError("the handshake is already complete")
        if self.wire is None:
            self._prefix += bytes(data)
            if self._prefix.startswith(_TLS_RECORD_START[: len(self._prefix)]):
                if len(self._prefix) <= len(_TLS_RECORD_START):
                    return False
                if self._prefix[len(_TLS_RECORD_START)] <= _TLS_LAST_MINOR:
                    raise ProtocolError("the client speaks TLS; this server has no ssl_context")
            wire = detect_wire(self._prefix)
            if wire is None:
                return False
            data, self._prefix = self._prefix, b""
            if wire is Wire.LEGACY and self._lookup is not None:
                raise ConnectionRejectedError(AUTH_FAILED)  # 0.2 cannot authenticate
            self._start(wire)
        frames = self._frames(data)
        if frames and self._first_frame:
            self._first_frame = False
            if frames[0].kind is FrameKind.RESUME and self.version == EXTENDED_VERSION:
                return self._take_request(frames)
        if self._lookup is not None:
            return self._authenticate(frames)
        if self._hello_ident is None:
            if not frames:
                return False
            if self.wire is Wire.V1 and frames[0].kind is not FrameKind.HELLO:
                if frames[0].kind is FrameKind.AUTH:  # the client wants a key this side has not
                    raise ConnectionRejectedError(AUTH_FAILED)
                raise ProtocolError(
                    f"the client opened with a {frames[0].kind.name} frame, not HELLO"
                )
            self._hello_ident = self._finish(frames)
            frames = self.pending_frames
        if self.version == EXTENDED_VERSION:
            if not frames:  # the offer follows the hello: bounded as the hello was
                self._check_size(self.decoder.incoming_frame_size if self.decoder else None)
                return False
            self._take_offer(frames.pop(0))
            self.pending_frames = frames
        self.client_ident = self._hello_ident
        return True

    def _take_offer(self, frame: Frame) -> None:
        offer = self._resume_message(frame, (ResumeOffer,))
        assert isinstance(offer, ResumeOffer)
        self.offer = offer

    def _take_request(self, frames: list[Frame]) -> bool:
        """A connection that opens with a resume request: nothing may follow it before
        the server's answer."""
        if len(frames) > 1:
            raise ProtocolError("a resume request is followed by nothing before its answer")
        request = self._resume_message(frames[0], (ResumeRequest,))
        assert isinstance(request, ResumeRequest)
        self.resume_request = request
        return True

    def _authenticate(self, frames: list[Frame]) -> bool:
        """The steps of a handshake with a key; True once the client's proof is good."""
        assert self._lookup is not None and self.decoder is not None
        while frames:
            frame = frames.pop(0)
            self._check_size(frame.size)
            if self._client_nonce is None:
                if frame.kind is not FrameKind.AUTH or frame.size != NONCE_SIZE:
                    raise ConnectionRejectedError(AUTH_FAILED)
                self._client_nonce = frame.message
            elif self._claimed_ident is None:
                if frame.kind is not FrameKind.HELLO:
                    raise ProtocolError(f"the client sent a {frame.kind.name} frame, not HELLO")
                self._challenge(_decode_ident(frame))
            elif self.version == EXTENDED_VERSION and self.offer is None:
                self._take_offer(frame)
            else:
                expected = self._expected_proof
                if (
                    frame.kind is not FrameKind.AUTH
                    or expected is None
                    or not proofs_match(expected, frame.message)
                ):
                    raise ConnectionRejectedError(AUTH_FAILED)
                self.client_ident = self._claimed_ident
                self.pending_frames = frames
                return True
        # Bytes of the next handshake frame may be buffered: bound them as a hello's.
        self._check_size(self.decoder.incoming_frame_size)
        return False

    def _challenge(self, claimed: str) -> None:
        """Queue the server's nonce and proof for a client that says it is ``claimed``."""
        assert self._lookup is not None and self._client_nonce is not None
        self._claimed_ident = claimed
        server_nonce = new_nonce()
        key = self._lookup(claimed)
        if key is None:
            # An id without a key gets a challenge that looks the same, and the same
            # refusal after its proof: the answer does not tell which ids exist.
            server_proof = new_nonce()[:MAC_SIZE]
            # Not b"": compare_digest(b"", b"") is True, so an empty AUTH would pass.
            self._expected_proof = None
        else:
            args = (self._client_nonce, server_nonce, claimed, self.ident)
            server_proof = proof(key, "server", *args)
            self._expected_proof = proof(key, "client", *args)
        payload = server_nonce + server_proof + self.ident.encode("utf-8")
        self._outgoing += self._preamble() + encode_frame(Frame(payload, FrameKind.AUTH))
        self._preamble_sent = True

    def accept_bytes(self, resume: ResumeAccept | ResumeDecline | None = None) -> bytes:
        """The server's answer that accepts the client: the preamble (v1) and the hello,
        then, to a client that offered to resume, ``resume`` (a DECLINE by default)."""
        assert self.wire is not None
        hello = encode_frame(Frame.hello_frame(self.ident), self.wire)
        if self.offer is not None:
            hello += resume_frame(resume or ResumeDecline())
        return self._preamble() + hello

    def resume_answer_bytes(self, answer: bytes) -> bytes:
        """The server's answer to a :attr:`resume_request`: the preamble then
        ``answer``, the RESUME frame that :meth:`SessionTable.resume
        <pymasep.comm.core.resume.SessionTable.resume>` decided."""
        return self._preamble() + answer

    def _preamble(self) -> bytes:
        if self.wire is not Wire.V1 or self._preamble_sent:
            return b""
        return MAGIC + bytes([self.version])

    def refuse_bytes(self, reason: str) -> bytes:
        """The server's answer that refuses the client, with a reason.

        Returns:
            The bytes to send before closing; empty on the legacy wire, which has no
            way to say why (a pymasep 0.2 client sees the connection close). A reason
            longer than :data:`MAX_IDENT_SIZE` bytes is cut, since clients refuse
            a longer first frame.
        """
        if self.wire is not Wire.V1:
            return b""
        reason = reason.encode("utf-8")[:MAX_IDENT_SIZE].decode("utf-8", "ignore")
        return self._preamble() + encode_frame(Frame.refuse_frame(reason), Wire.V1)


class ResumeHandshake(_Side):
    """The client's side of a connection that resumes a session.

    Send :meth:`bytes_to_send` (version 2 and a fresh REQUEST), then feed what the
    server answers to :meth:`receive_data` until it returns True: :attr:`answer` is
    then the payload of the server's RESUME frame, for :meth:`ClientSession.answer
    <pymasep.comm.core.resume.ClientSession.answer>`, and :attr:`pending_frames` the
    frames that followed it (the first frames the server sends again).

    Args:
        session: The session to resume; each handshake is a new attempt.
        max_frame_size: Largest payload the client accepts, in bytes.
    """

    def __init__(self, session: ClientSession, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE):
        super().__init__(Wire.V1, max_frame_size)
        self._versions = (EXTENDED_VERSION,)
        self._request = session.request()
        self.answer: bytes | None = None
        """The payload of the server's answer, once it has arrived."""

    def bytes_to_send(self) -> bytes:
        """The opening bytes: the version-2 preamble and the request."""
        return MAGIC + bytes([EXTENDED_VERSION]) + self._request

    def receive_data(self, data: BytesLike) -> bool:
        """Feed bytes received from the server.

        Returns:
            True once its answer has arrived.

        Raises:
            ConnectionRejectedError: The server refused the connection outright (it is
                closing, for example), with a reason.
            ProtocolError: The server's bytes break the protocol.
        """
        if self.answer is not None:
            raise HandshakeError("the handshake is already complete")
        frames = self._frames(data)
        if not frames:
            return False
        if frames[0].kind is FrameKind.REFUSE:
            raise ConnectionRejectedError(frames[0].message.decode("utf-8", "replace"))
        if frames[0].kind is not FrameKind.RESUME:
            raise ProtocolError(f"the server answered a resume with a {frames[0].kind.name} frame")
        self.answer, self.pending_frames = frames[0].message, frames[1:]
        return True
