"""Fuzz targets: each takes one input (bytes) and raises :class:`BrokenContractError` when the code
under test breaks its contract.

A documented exception (``DecodeError``, ``ProtocolError``, ...) on bad bytes is the
contract, not a finding; any other exception escapes the target, and the fuzzer records
the input as a crash. Besides "no undocumented exception", each target checks results
against an oracle: a reference model of the wire (:func:`reference_frames`), the same
bytes fed whole, or a round trip.

Targets (``TARGETS``):

* ``decoder``: :class:`FrameDecoder`, either wire, any limit, the stream cut into reads
  wherever the fuzzer likes, each read as bytes, bytearray or memoryview.
* ``handshake``: :class:`ServerHandshake` and :class:`ClientHandshake` (both wires,
  without a key and with one) against a peer whose bytes the fuzzer writes, cut
  anywhere; and an honest pair with fuzzed ids, reasons and keys. A side with a key
  must never complete on fuzzed bytes: the fuzzer cannot forge a proof. Each side is
  driven through a :class:`Side` adapter, which collects what the side asks to send
  between reads (a challenge, a proof).
* ``message``: ``Message.from_bytes``; only ``DecodeError`` may escape, and what
  decodes must encode again to a message that decodes equal.
* ``discovery``: the query and reply parsers, which never raise; and the reply builder,
  whose every datagram the parser must read back.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import unicodedata
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fuzzinput import FuzzInput, pieces, place
from lxml import etree

from pymasep.comm.core import discovery
from pymasep.comm.core.auth import AuthKey
from pymasep.comm.core.exceptions import (
    ConnectionRejectedError,
    DecodeError,
    EncodeError,
    FrameTooLargeError,
    InvalidStateError,
    ProtocolError,
)
from pymasep.comm.core.frame import Frame, FrameKind
from pymasep.comm.core.handshake import (
    MAX_IDENT_SIZE,
    ClientHandshake,
    ResumeHandshake,
    ServerHandshake,
)
from pymasep.comm.core.message import Message
from pymasep.comm.core.resume import (
    EXTENDED_VERSION,
    MAX_RESUME_PAYLOAD,
    ClientSession,
    RefusalReason,
    ResumeAccept,
    ResumeOffer,
    ResumeRefused,
    ResumeRefusedError,
    SessionTable,
    decode_resume,
    encode_resume,
)
from pymasep.comm.core.typeregistry import register_type
from pymasep.comm.core.wire import DEFAULT_MAX_FRAME_SIZE, MAGIC, PREAMBLE, FrameDecoder, Wire

__all__ = ["MAX_LEN", "TARGETS", "BrokenContractError"]


class BrokenContractError(AssertionError):
    """The code under test broke its contract on this input."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BrokenContractError(message)


def _displayable(text: str) -> bool:
    return not any(unicodedata.category(char) in ("Cc", "Cs") for char in text)


# Limits a receiver may be configured with: the default, the edges, and the sizes that
# the handshake's own limit (MAX_IDENT_SIZE) and the legacy wire's sit next to.
LIMITS = (DEFAULT_MAX_FRAME_SIZE, 0, 1, 5, 16, MAX_IDENT_SIZE, 2**16 - 1)
WIRES = (Wire.V1, Wire.LEGACY)
DECODER_ERRORS = (FrameTooLargeError, ProtocolError)


# -- the wire's reference model ----------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """A frame as the reference model reads it, with the offset where it ends."""

    end: int
    kind: FrameKind
    payload: bytes


@dataclass
class Reference:
    """What a correct decoder makes of a whole stream."""

    frames: list[Unit]
    consumed: int
    error: type[Exception] | None = None
    error_at: int = 0
    """Offset by which the error can be seen: the end of the offending header."""


def reference_frames(stream: bytes, wire: Wire, limit: int, start: int = 0) -> Reference:
    """Read ``stream[start:]`` as frames of ``wire``, straight from the format's
    description in ``docs/protocol.md`` (offsets count from the start of ``stream``)."""
    header = 5 if wire is Wire.V1 else 2
    frames: list[Unit] = []
    position = start
    while len(stream) - position >= header:
        if wire is Wire.V1:
            code, size = stream[position], int.from_bytes(stream[position + 1 : position + 5])
        else:
            code, size = 0, int.from_bytes(stream[position : position + 2], "little")
        if size > limit:
            return Reference(frames, position, FrameTooLargeError, position + header)
        if code > max(FrameKind):
            return Reference(frames, position, ProtocolError, position + header)
        end = position + header + size
        if end > len(stream):
            break
        payload = stream[position + header : end]
        if wire is Wire.V1:
            kind = FrameKind(code)
        else:
            kind = FrameKind.BYE if payload == b"BYE" else FrameKind.DATA
        frames.append(Unit(end, kind, payload))
        position = end
    return Reference(frames, position)


def _is_error(error: Exception, expected: type[Exception] | None) -> bool:
    """Whether ``error`` is the model's kind of error. An oversized frame may also be a
    ProtocolError (a subclass can be both); an unknown kind must not look oversized."""
    if expected is FrameTooLargeError:
        return isinstance(error, FrameTooLargeError)
    if expected is ProtocolError:
        return isinstance(error, ProtocolError) and not isinstance(error, FrameTooLargeError)
    return False


def _frame_tuple(frame: Frame) -> tuple[FrameKind, bytes]:
    _check(type(frame.message) is bytes, f"a frame's payload is a {type(frame.message)}")
    _check(frame.size == len(frame.message), f"{frame!r}: size {frame.size}")
    _check(type(frame.kind) is FrameKind, f"{frame!r}: kind {frame.kind!r}")
    return frame.kind, frame.message


def _units(units: list[Unit]) -> list[tuple[FrameKind, bytes]]:
    return [(unit.kind, unit.payload) for unit in units]


# -- decoder ---------------------------------------------------------------------------


def _as_read(chunk: bytes, how: int) -> bytes | bytearray | memoryview:
    """The same bytes as a socket layer might hand them over."""
    if how == 1:
        return bytearray(chunk)
    if how == 2:
        return memoryview(chunk)
    if how == 3 and len(chunk) % 2 == 0:
        return memoryview(chunk).cast("H")  # items wider than a byte
    if how == 4:
        return memoryview(b"\xff" + chunk + b"\xff")[1:-1]  # a view into a larger buffer
    return chunk


def fuzz_decoder(data: bytes) -> None:
    """Feed a stream cut into reads; after each read the decoder must have returned
    exactly the frames that the reference model completes by then, and hold the rest."""
    source = FuzzInput(data)
    wire, limit, how = source.choose(WIRES), source.choose(LIMITS), source.u8() % 5
    cuts = source.cuts()
    stream = source.rest()
    reference = reference_frames(stream, wire, limit)
    decoder = FrameDecoder(wire, limit)
    received: list[tuple[FrameKind, bytes]] = []
    fed = 0
    for chunk in pieces(stream, cuts):
        before, fed = fed, fed + len(chunk)
        try:
            received += [_frame_tuple(frame) for frame in decoder.feed(_as_read(chunk, how))]
        except DECODER_ERRORS as error:
            _check(
                _is_error(error, reference.error) and before < reference.error_at <= fed,
                f"{type(error).__name__} at bytes {before}..{fed}; the model says "
                f"{reference.error} at {reference.error_at}",
            )
            # Frames completed in the read that fails are dropped with it.
            done = [unit for unit in reference.frames if unit.end <= before]
            _check(received == _units(done), "frames before the error differ from the model")
            return
        _check(
            reference.error is None or reference.error_at > fed,
            f"no error by byte {fed}; the model says {reference.error} at {reference.error_at}",
        )
        done = [unit for unit in reference.frames if unit.end <= fed]
        _check(received == _units(done), f"frames after byte {fed} differ from the model")
        last_end = done[-1].end if done else 0
        _check(decoder.buffered == fed - last_end, f"buffered {decoder.buffered} at byte {fed}")
    _check_decode_whole(stream, wire, limit, reference)


def _check_decode_whole(stream: bytes, wire: Wire, limit: int, reference: Reference) -> None:
    """``decode_whole`` takes the bytes only when they are one whole valid v1 frame."""
    decoder = FrameDecoder(wire, limit)
    frame = decoder.decode_whole(stream, len(stream))
    one = (
        wire is Wire.V1
        and reference.error is None
        and len(reference.frames) == 1
        and reference.frames[0].end == len(stream)
    )
    if one:
        _check(frame is not None, "decode_whole refused one whole frame")
        assert frame is not None
        _check([_frame_tuple(frame)] == _units(reference.frames), "decode_whole misread")
    else:
        _check(frame is None, f"decode_whole took bytes that are not one frame: {frame!r}")
    _check(decoder.buffered == 0, "decode_whole kept bytes")


# -- handshake -------------------------------------------------------------------------


HANDSHAKE_ERRORS = (FrameTooLargeError, ProtocolError, ConnectionRejectedError)
RESUMING = "RESUME "
"""What :meth:`Side.feed` returns, then the request's bytes in hex, for a server whose
handshake completed with a resume request instead of a hello."""
# The end of a resume request that opens a stream: the preamble, a header, the request.
_REQUEST_END = len(PREAMBLE) + 5 + MAX_RESUME_PAYLOAD


class Side:
    """Adapter over one side of a handshake: ``feed`` bytes from the peer until it
    returns the peer's id; ``decoder`` then carries on with the connection's frames.
    What the side asks to send between reads (``data_to_send``: a challenge, a proof)
    collects in ``sent``."""

    def __init__(self, machine: ServerHandshake | ClientHandshake) -> None:
        self.machine = machine
        self.sent = b""

    def feed(self, data: bytes) -> str | None:
        try:
            complete = self.machine.receive_data(data)
        finally:
            self.sent += self.machine.data_to_send()
        if not complete:
            return None
        if isinstance(self.machine, ServerHandshake) and self.machine.resume_request is not None:
            # A connection that resumes a session: no hello, no id (the table decides).
            _check(self.machine.client_ident is None, "a resume request and a hello")
            return RESUMING + encode_resume(self.machine.resume_request).hex()
        peer = (
            self.machine.client_ident
            if isinstance(self.machine, ServerHandshake)
            else self.machine.server_ident
        )
        _check(isinstance(peer, str) and peer != "", f"complete, with peer id {peer!r}")
        assert peer is not None
        _check(len(peer.encode("utf-8")) <= MAX_IDENT_SIZE, "an id longer than the limit")
        return peer

    @property
    def wire(self) -> Wire:
        assert self.machine.wire is not None
        return self.machine.wire

    @property
    def decoder(self) -> FrameDecoder:
        _check(self.machine.decoder is not None, "complete, without a decoder")
        assert self.machine.decoder is not None
        return self.machine.decoder


@dataclass
class Run:
    """What one side made of a stream: the peer's id, the frames behind the hello,
    and the error that ended it, if any."""

    peer: str | None = None
    frames: list[tuple[FrameKind, bytes]] = field(default_factory=list)
    error: type[Exception] | None = None


def _run_side(make: Callable[[], Side], stream: bytes, cuts: list[int]) -> tuple[Run, Side]:
    side = make()
    run = Run()
    for chunk in pieces(stream, cuts):
        try:
            if run.peer is None:
                run.peer = side.feed(chunk)
                if run.peer is not None:
                    run.frames += [_frame_tuple(f) for f in side.machine.pending_frames]
            else:
                run.frames += [_frame_tuple(f) for f in side.decoder.feed(chunk)]
        except HANDSHAKE_ERRORS as error:
            run.error = type(error)
            break
    return run, side


def _check_against_whole(make: Callable[[], Side], stream: bytes, cuts: list[int]) -> None:
    """Cut into reads anywhere, a side must end as it does when fed the stream whole;
    where that is an error, the cut run may have seen the hello and some frames first,
    which must then be what the stream holds."""
    whole, _ = _run_side(make, stream, [])
    cut, side = _run_side(make, stream, cuts)
    # Only whether it fails must not depend on the reads: which error it reports may,
    # when the stream breaks the protocol twice (a hello that is not UTF-8 followed, in
    # the same read, by an oversized header reports the header).
    if (cut.peer or "").startswith(RESUMING) and whole.error is not None:
        # Nothing may follow a resume request in the read that brings it; bytes that
        # come in a later read, after the handshake, are the connection's.
        _check(len(stream) > _REQUEST_END, f"a resume request alone failed fed whole: {whole}")
        return
    _check(
        (cut.error is None) == (whole.error is None),
        f"fed whole: {whole.error}; cut at {cuts}: {cut.error}",
    )
    if whole.error is None:
        _check(cut.peer == whole.peer, f"peer {cut.peer!r} cut, {whole.peer!r} whole")
        _check(cut.frames == whole.frames, "frames behind the hello differ when cut")
        return
    if cut.peer is None:
        return
    # The read that completed the handshake may hold frames behind the hello, and later
    # reads more, until the error: what was delivered must be the first frames there.
    limit = side.decoder.max_frame_size
    hello = reference_frames(stream, side.wire, limit, 5 if side.wire is Wire.V1 else 0)
    _check(bool(hello.frames), "a hello the model does not see")
    behind = reference_frames(stream, side.wire, limit, hello.frames[0].end)
    machine = side.machine
    # On version 2 the RESUME frame behind the hello (the offer, or its answer) is the
    # handshake's: the application's frames come after it.
    resume = machine.offer if isinstance(machine, ServerHandshake) else machine.resume_answer
    expected = _units(behind.frames)[1 if resume is not None else 0 :]
    _check(
        cut.frames == expected[: len(cut.frames)], "frames behind the hello are not the stream's"
    )


def _peer_answers(server: ServerHandshake, reason: str) -> None:
    """A server that has read a hello answers in bytes the client side reads back."""
    ident = server.client_ident
    assert ident is not None and server.wire is not None
    offer = server.offer  # set on version 2: its answers are for a client that offered
    client = ClientHandshake(ident, server.wire, resume_offer=offer)
    _check(client.receive_data(server.accept_bytes()), "the client did not read the accept")
    _check(client.server_ident == server.ident, f"server id read as {client.server_ident!r}")
    refusal = server.refuse_bytes(reason)
    if server.wire is Wire.LEGACY:
        _check(refusal == b"", "the legacy wire cannot carry a refusal")
        return
    client = ClientHandshake(ident, Wire.V1, resume_offer=offer)
    try:
        client.receive_data(refusal)
    except ConnectionRejectedError as error:
        cut = reason.encode("utf-8")[:MAX_IDENT_SIZE].decode("utf-8", "ignore")
        _check(error.reason == cut, f"reason read as {error.reason!r}, sent {reason!r}")
    else:
        raise BrokenContractError("the client read a refusal as an accept")


def _completes(receive: Callable[[bytes], bool], reads: list[bytes]) -> bool:
    """Feed reads until ``receive`` says complete, which must be at the last read that
    holds a byte (an empty read after it is never fed)."""
    last = max((index for index, read in enumerate(reads) if read), default=-1)
    for index, read in enumerate(reads):
        if receive(read):
            _check(index == last, f"complete at read {index}, the last byte is in read {last}")
            return True
    return False


KEY = b"fuzz key"
"""The key of the keyed sides. The fuzzer may write it into a stream, but not a proof:
that is an HMAC over the other side's fresh nonce."""

SERVER_KEYS: tuple[Callable[[], AuthKey], ...] = (
    lambda: KEY,
    lambda: {"p2": KEY},  # a fuzzed id is not p2, or, if it is, gets the bytes case
    lambda: lambda ident: None,
)
"""The three ways a server takes a key: bytes, a mapping, a callable (here one that
knows no id)."""


def _check_keyed_side(run: Run, side: Side) -> None:
    """A side with a key never completes on bytes the fuzzer writes, and never sends
    what would only follow a good proof: a server, only its challenge; a client, nothing
    (its proof answers a valid server proof)."""
    if (run.peer or "").startswith(RESUMING):
        # A resume request needs no AUTH exchange: its proof covers the key, and the
        # server's session table checks it (the resume target: never forged).
        _check(side.sent == b"", "a server sent its challenge to a resume request")
        return
    _check(run.peer is None, f"a side with a key accepted unauthenticated bytes: {run.peer!r}")
    if isinstance(side.machine, ClientHandshake):
        _check(side.sent == b"", f"a client with a key sent {side.sent!r} to a forged server")
        return
    if not side.sent:
        return
    _check(side.sent.startswith(PREAMBLE), f"a challenge without a preamble: {side.sent!r}")
    sent = reference_frames(side.sent, Wire.V1, DEFAULT_MAX_FRAME_SIZE, len(PREAMBLE))
    kinds = [unit.kind for unit in sent.frames]
    _check(
        kinds == [FrameKind.AUTH] and sent.consumed == len(side.sent),
        f"a server with a key sent {kinds} before any proof",
    )


def _pair_keys(source: FuzzInput, client_id: str) -> tuple[bytes | None, AuthKey | None, bool]:
    """The client's key, the server's, and whether they should agree."""
    how = source.u8() % 6
    if how == 0:
        return None, None, True
    if how == 1:
        return KEY, KEY, True
    if how == 2:
        return KEY, {client_id: KEY}, True
    if how == 3:
        return KEY, lambda ident: KEY if ident == client_id else None, True
    if how == 4:
        return KEY + b"!", KEY, False  # the wrong key
    return KEY, {}, False  # an id the server has no key for


def _honest_pair(source: FuzzInput) -> None:
    """A client and a server of this version, fuzzed ids, the bytes cut anywhere; with
    a key (v1), each completes only if the other holds the same key for this id."""
    wire = source.choose(WIRES)
    client_id = source.text(64) or "c"
    server_id = source.text(64) or "s"
    reason = source.text(255)
    refuse = source.u8() % 2 == 1
    client_key, server_key, agree = _pair_keys(source, client_id)
    if wire is Wire.LEGACY:
        client_key = server_key = None
        agree = True
    offsets = source.offsets()
    client = ClientHandshake(client_id, wire, authkey=client_key)
    server = ServerHandshake(server_id, authkey=server_key)
    hello = client.bytes_to_send()
    if server_key is not None:
        reads = pieces(hello, place(offsets, len(hello)))
        _check(not _completes(server.receive_data, reads), "a server complete before the proof")
        challenge = server.data_to_send()
        try:
            reads = pieces(challenge, place(offsets, len(challenge)))
            complete = _completes(client.receive_data, reads)
        except ConnectionRejectedError as error:
            _check(not agree, f"a client with the right key refused the challenge: {error}")
            _check(client.data_to_send() == b"", "a client that refused sent a proof")
            return
        _check(agree, "a client accepted the challenge of a server without its key")
        _check(not complete, "a client complete before the server's hello")
        hello = client.data_to_send()
    _check(_completes(server.receive_data, pieces(hello, place(offsets, len(hello)))), "server")
    _check(server.client_ident == client_id, f"client id read as {server.client_ident!r}")
    _check(server.wire is wire, f"client wire read as {server.wire}")
    _check(server.data_to_send() == b"", "a complete server has more to send")
    if server_key is None:  # a keyed server's answers follow its challenge's preamble
        _peer_answers(server, reason)
    answer = server.refuse_bytes(reason) if refuse else server.accept_bytes()
    if refuse and wire is Wire.LEGACY:
        return
    try:
        complete = _completes(client.receive_data, pieces(answer, place(offsets, len(answer))))
    except ConnectionRejectedError:
        _check(refuse, "an accept read as a refusal")
        return
    _check(not refuse, "a refusal read as an accept")
    _check(complete, "client")
    _check(client.server_ident == server_id, f"server id read as {client.server_ident!r}")


def fuzz_handshake(data: bytes) -> None:
    """One side of the handshake against bytes the fuzzer writes, or an honest pair.

    Modes: 0 a server, 1 a v1 client, 2 a legacy client, 3 an honest pair; with a key,
    4 to 6 a server (bytes, mapping, callable), 7 a v1 client.
    """
    source = FuzzInput(data)
    mode = source.u8() % 8
    if mode == 3:
        _honest_pair(source)
        return
    limit = source.choose(LIMITS)
    reason = source.text(64)
    cuts = source.cuts()
    stream = source.rest()
    make: Callable[[], Side]
    if mode == 0:
        make = lambda: Side(ServerHandshake("engine", limit))  # noqa: E731
    elif mode in (1, 2):
        wire = Wire.V1 if mode == 1 else Wire.LEGACY
        make = lambda: Side(ClientHandshake("interface", wire, limit))  # noqa: E731
    elif mode == 7:
        make = lambda: Side(ClientHandshake("p1", Wire.V1, limit, authkey=KEY))  # noqa: E731
    else:
        key = SERVER_KEYS[mode - 4]
        make = lambda: Side(ServerHandshake("engine", limit, authkey=key()))  # noqa: E731
    _check_against_whole(make, stream, cuts)
    whole, side = _run_side(make, stream, [])
    if mode >= 4:
        _check_keyed_side(whole, side)
        cut, cut_side = _run_side(make, stream, cuts)
        _check_keyed_side(cut, cut_side)
        return
    _check(side.sent == b"", f"a side without a key asked to send {side.sent!r}")
    machine = side.machine
    if isinstance(machine, ServerHandshake) and machine.client_ident is not None:
        _peer_answers(machine, reason)


# -- message ---------------------------------------------------------------------------


@register_type
class Piece:
    """A class that messages may name (``<type>``), as a game registers its own."""


def _canonical(value: Any) -> Any:
    """A value in a form that compares by value: NaN equal to NaN, sets regardless of
    order, XML elements by their canonical XML (they hash and compare by identity).

    An element's tail is text of its parent, not of the value: the codec writes an
    element without it and Message.__eq__ ignores it, so the comparison does too.
    """
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    if isinstance(value, ElementTree.Element):
        value = copy.copy(value)
        value.tail = None
        value = etree.fromstring(ElementTree.tostring(value))
    if isinstance(value, etree._Element):
        return ("xml", etree.tostring(value, method="c14n"))  # c14n never writes the tail
    if isinstance(value, (set, frozenset)):
        return ("set", sorted(repr(_canonical(item)) for item in value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_canonical(item) for item in value])
    if isinstance(value, dict):
        return ("dict", sorted((key, repr(_canonical(item))) for key, item in value.items()))
    return (type(value).__name__, value)


# The message grammar, for inputs that start with STRUCTURED: libFuzzer sees no coverage
# inside lxml, so raw bytes rarely get past the parser to the value decoders.
STRUCTURED = 1
_VALUE_TAGS = ("int", "float", "str", "bool", "false", "NoneType", "type")
_CONTAINER_TAGS = ("list", "tuple", "set", "dict")
_TEXTS = (
    "", "0", "1", "-1", "007", "1_0", " 7 ", "+3", "2e3", "1e309", "nan", "-nan", "inf",
    "-inf", "-0.0", "0x10", "True", "False", "true", "x", "\u00e9", "\r", "&amp;", "&#10;",
    "<class 'fuzztargets.Piece'>", "<class 'a.B'>", "<class ''>", "empty", "<![CDATA[ ]]>",
)  # fmt: skip


def _text(source: FuzzInput) -> str:
    return source.choose(_TEXTS).replace("<class", "&lt;class").replace("'>", "'&gt;")


def _value_xml(source: FuzzInput, depth: int) -> str:
    """One value element, from the grammar of xmlvalues.py (and a little outside it);
    the outermost is a dict, as in a message, seven times in eight."""
    pick = source.u8()
    if depth == 0 and pick % 8:
        pick = 3 * _CONTAINER_TAGS.index("dict")
    if depth < 8 and pick % 3 == 0:
        tag = _CONTAINER_TAGS[pick // 3 % len(_CONTAINER_TAGS)]
        items = []
        for index in range(source.u8() % 4):
            key = f' key="{source.choose(("a", "b", "", "a"))}"' if tag == "dict" else ""
            inner = _value_xml(source, depth + 1) if source.u8() % 8 else ""
            items.append(f"<item{key}>{inner}</item>" if source.u8() % 8 else inner + f"{index}")
        return f"<{tag}>{''.join(items)}</{tag}>"
    tag = _VALUE_TAGS[pick % len(_VALUE_TAGS)] if pick % 16 else "Other"
    attribute = ' content="empty"' if source.u8() % 8 == 0 else ""
    text = _text(source)
    return (
        f"<{tag}{attribute}>{text}</{tag}>" if text or source.u8() % 2 else f"<{tag}{attribute}/>"
    )


def _message_xml(source: FuzzInput) -> bytes:
    source_attribute = (
        f' src_sub_app="{source.choose(("p1", "", "&#233;"))}"' if source.u8() % 2 else ""
    )
    params = _value_xml(source, 0) if source.u8() % 8 else ""
    msg_type = _text(source)
    return f'<Message msg_type="{msg_type}"{source_attribute}>{params}</Message>'.encode()


def fuzz_message(data: bytes) -> None:
    """Decode untrusted bytes (or a message the grammar writes, for inputs that start
    with STRUCTURED); what decodes must survive a round trip unchanged."""
    if data[:1] == bytes([STRUCTURED]):
        data = _message_xml(FuzzInput(data[1:]))
    message = Message("", None, None)
    try:
        message.from_bytes(data)
    except DecodeError:
        return
    _check(isinstance(message.msg_type, str), f"msg_type decoded as {message.msg_type!r}")
    _check(
        message.src_sub_app_id is None or isinstance(message.src_sub_app_id, str),
        f"src_sub_app_id decoded as {message.src_sub_app_id!r}",
    )
    _check(message.params is None or isinstance(message.params, dict), "params not a dict")
    try:
        encoded = message.to_bytes()
    except EncodeError as error:
        raise BrokenContractError(f"a decoded message does not encode again: {error}") from error
    again = Message("", None, None)
    try:
        again.from_bytes(encoded)
    except DecodeError as error:
        raise BrokenContractError(f"a re-encoded message does not decode: {error}") from error
    # Compared by value, not with Message.__eq__: that compares sets with ==, so a set
    # holding NaN or an XML element never equals its own round trip (see the regression
    # tests in packages/pymasep-comm-core/tests/test_fuzz_regressions.py).
    _check(
        _canonical(again.params) == _canonical(message.params)
        and (again.msg_type, again.src_sub_app_id) == (message.msg_type, message.src_sub_app_id),
        f"round trip changed the message: {message!r} -> {again!r}",
    )


# -- discovery -------------------------------------------------------------------------


def _source(source: FuzzInput) -> tuple[str, int]:
    if source.u8() % 8 == 0:
        return ("::1", 10000)  # an IPv6 sender: no IPv4 server address to use
    return (".".join(str(b) for b in source.take(4).ljust(4, b"\0")), source.u16())


def _check_info(info: discovery.ServerInfo, datagram: bytes, sender: tuple[str, int]) -> None:
    _check(0 < info.port < 65536, f"port {info.port}")
    _check(info.wire in ("v1", "legacy"), f"wire {info.wire!r}")
    _check(isinstance(info.host, str) and info.host.count(".") == 3, f"host {info.host!r}")
    _check(info.id is None or (info.id != "" and _displayable(info.id)), f"id {info.id!r}")
    _check(info.name is None or _displayable(info.name), f"name {info.name!r}")
    if info.id is None:
        _check(info.host == sender[0], "a legacy reply is read with the sender's address")


def fuzz_discovery(data: bytes) -> None:
    """Parsers never raise, and read what they accept sanely; the builder's every
    datagram reads back."""
    source = FuzzInput(data)
    mode = source.u8() % 3
    if mode == 0:
        datagram = source.rest()
        found = discovery.query_format(datagram)
        _check(found in ("legacy", "v1", None), f"query format {found!r}")
        _check(discovery.is_query(datagram) == (found is not None), "is_query disagrees")
        return
    if mode == 1:
        sender = _source(source)
        datagram = source.rest()
        info = discovery.parse_reply(datagram, sender)
        if info is not None:
            _check_info(info, datagram, sender)
            if info.id is not None:
                _rebuild(info, sender)
        return
    _fuzz_build(source)


def _rebuild(info: discovery.ServerInfo, sender: tuple[str, int]) -> None:
    """A v1 reply read, built again from what was read, reads back the same."""
    assert info.id is not None
    try:
        again = discovery.build_reply(
            info.host,
            info.port,
            server_id=info.id,
            wire_versions=[info.wire],
            name=info.name,
            bound=True,
        )
    except EncodeError as error:
        raise BrokenContractError(f"a reply read cannot be built again: {error}") from error
    _check(discovery.parse_reply(again, sender) == info, "a rebuilt reply reads differently")


def _fuzz_build(source: FuzzInput) -> None:
    hosts = ("127.0.0.1", "10.0.0.2", "0.0.0.0", "::1", "")
    pick = source.u8() % (len(hosts) + 1)
    host = hosts[pick] if pick < len(hosts) else source.text(20)
    ports = (1, 65535, 0, 65536, 10000, -1)
    pick = source.u8() % (len(ports) + 1)
    port = ports[pick] if pick < len(ports) else source.u16()
    server_id = source.text(200)
    name = source.text(200) if source.u8() % 2 else None
    wires = [source.choose(("v1", "legacy", "v2", "")) for _ in range(source.u8() % 4)]
    bound = source.u8() % 2 == 1
    fmt: discovery.QueryFormat = "legacy" if source.u8() % 2 else "v1"
    try:
        reply = discovery.build_reply(
            host, port, server_id=server_id, wire_versions=wires, name=name, bound=bound, fmt=fmt
        )
    except EncodeError:
        return
    _check(len(reply) <= discovery.MAX_DATAGRAM_SIZE, f"a reply of {len(reply)} bytes")
    sender = ("192.0.2.1", 10000)
    info = discovery.parse_reply(reply, sender)
    _check(info is not None, f"the parser refused a built reply: {reply!r}")
    assert info is not None
    _check(info.port == port, f"port read as {info.port}")
    if fmt == "legacy":
        _check(info.id is None and info.host == sender[0], f"legacy reply read as {info}")
        return
    _check(info.id == server_id and info.name == name, f"id or name read as {info}")
    _check(info.wire == wires[0], f"wire read as {info.wire!r}, sent {wires}")
    _check(info.host == (host if bound else sender[0]), f"host read as {info.host!r}")


# -- resume ----------------------------------------------------------------------------

RESUME_PREAMBLE = MAGIC + bytes([EXTENDED_VERSION])
# A session as a real negotiation opens it: the fuzzer writes only what the other side
# sends. Its nonces and id are fixed, so that seeds can name the session; its secret
# still needs the key (with one) and the client's fresh nonce of each attempt.
SESSION_ID = bytes(range(16))
OFFER = ResumeOffer(30.0, 1024, bytes(range(32, 64)))
ACCEPT = ResumeAccept(30.0, 1024, SESSION_ID, bytes(range(64, 96)))
RESUME_ERRORS = (DecodeError, ProtocolError, FrameTooLargeError, ConnectionRejectedError)
"""What a resume exchange may raise on bad bytes: a malformed message or frame, a
refusal (``ResumeRefusedError`` is a ``ConnectionRejectedError``), a wrong proof."""


def _client_session(source: FuzzInput) -> Callable[[], ClientSession]:
    """Makes the client's side of the fixed session, with a key or not, a few frames
    sent and received, broken (the choices are read once, here)."""
    key = KEY if source.u8() % 2 else None
    sent, received = source.u8() % 4, source.u8() % 4

    def make() -> ClientSession:
        session = ClientSession.start(OFFER, ACCEPT, "p1", "engine", key)
        for index in range(sent):
            session.log.record(b"frame %d" % index)
        session.acks.count(received, 0)
        session.broke(0.0)
        return session

    return make


def _check_no_forged_accept(session: ClientSession, answer: bytes) -> None:
    """A client reads an answer the fuzzer wrote: a refusal, or an error; never an
    acceptance (its proof is an HMAC over the client's fresh nonce)."""
    try:
        resend = session.answer(answer)
    except ResumeRefusedError as refused:
        message = decode_resume(answer)
        _check(
            isinstance(message, ResumeRefused) and message.reason is refused.refusal,
            f"refused with {refused.refusal!r}, the answer says {message!r}",
        )
        return
    except RESUME_ERRORS:
        return
    raise BrokenContractError(f"a client accepted a forged resume answer, resending {resend!r}")


def _resume_client(source: FuzzInput) -> None:
    """A client's resume connection (ResumeHandshake) reads the server's bytes, cut
    anywhere, as it does fed whole; then its session reads the answer."""
    make = _client_session(source)
    limit = source.choose(LIMITS)
    cuts = source.cuts()
    stream = source.rest()
    outcomes = []
    for reads in (pieces(stream, cuts), [stream]):
        session = make()
        handshake = ResumeHandshake(session, limit)
        _check(handshake.bytes_to_send().startswith(RESUME_PREAMBLE), "not a version-2 request")
        answer: bytes | None = None
        frames: list[tuple[FrameKind, bytes]] = []
        failed = False
        for read in reads:
            try:
                if answer is None:
                    if handshake.receive_data(read):
                        answer = handshake.answer
                        frames += [_frame_tuple(f) for f in handshake.pending_frames]
                else:  # the frames sent again, behind the answer: the connection's
                    assert handshake.decoder is not None
                    frames += [_frame_tuple(f) for f in handshake.decoder.feed(read)]
            except RESUME_ERRORS:
                failed = True
                break
        if answer is not None:
            _check_no_forged_accept(session, answer)
        outcomes.append((answer, frames, failed))
    cut, whole = outcomes
    # Bytes that break the protocol behind a whole answer fail its read when they come
    # with it, and the connection's next read when they come later: either way it fails.
    _check(cut[2] == whole[2], f"cut at {cuts} failed: {cut[2]}; whole: {whole[2]}")
    if not whole[2]:
        _check(cut[:2] == whole[:2], f"cut at {cuts}: {cut[:2]!r}; whole: {whole[:2]!r}")


def _resume_server(source: FuzzInput) -> None:
    """A server reads ``MAGIC 02`` then the fuzzer's bytes (a hello and an offer, or a
    resume request), cut anywhere, as it does fed whole; a request it reads, even with
    the real session's id, its session table refuses: nobody can prove the secret."""
    keyed = source.u8() % 2 == 1
    steal = source.u8() % 2 == 1
    limit = source.choose(LIMITS)
    cuts = source.cuts()
    stream = RESUME_PREAMBLE + source.rest()
    cuts = [len(RESUME_PREAMBLE) + cut for cut in cuts]
    make = lambda: Side(ServerHandshake("engine", limit, authkey=KEY if keyed else None))  # noqa: E731
    _check_against_whole(make, stream, cuts)
    whole, side = _run_side(make, stream, [])
    server = side.machine
    assert isinstance(server, ServerHandshake)
    if whole.peer is None:
        return
    if server.client_ident is not None:
        _check(not keyed, "a server with a key completed without a proof")
        _check(isinstance(server.offer, ResumeOffer), "a version-2 hello without its offer")
        _peer_answers(server, "full")
        return
    request = server.resume_request
    assert request is not None
    _check(decode_resume(encode_resume(request)) == request, "a request does not read back")
    table = SessionTable(30.0, (lambda ident: KEY) if keyed else None)
    session, _ = table.open("p1", "engine", OFFER, 1024)
    if steal:  # the real session's id, as a stranger who saw it would send
        request = dataclasses.replace(request, session_id=session.session_id)
    table.broke(session.session_id, 0.0)
    decision = table.resume(request, 1.0)
    expected = RefusalReason.BAD_PROOF if steal else RefusalReason.UNKNOWN_SESSION
    _check(decision.refusal is expected, f"a forged request: {decision.refusal!r}")
    _check(decision.session is None and decision.resend == [], "a refusal resumed something")
    answer = server.resume_answer_bytes(decision.answer)
    _check(answer.startswith(RESUME_PREAMBLE), "a refusal without the version-2 preamble")
    refused = decode_resume(FrameDecoder().feed(answer[len(RESUME_PREAMBLE) :])[0].message)
    _check(refused == ResumeRefused(expected), f"the refusal reads back as {refused!r}")
    _check(table.get(session.session_id) is session, "a forged request ended the real session")


def fuzz_resume(data: bytes) -> None:
    """The resume exchange against bytes the fuzzer writes. Modes: 0 a server after
    ``MAGIC 02``, 1 a client's ResumeHandshake, 2 a client's session reading a raw
    answer payload (``ClientSession.answer``)."""
    source = FuzzInput(data)
    mode = source.u8() % 3
    if mode == 0:
        _resume_server(source)
    elif mode == 1:
        _resume_client(source)
    else:
        session = _client_session(source)()
        try:
            session.answer(b"")
        except InvalidStateError:
            pass  # no request yet: the documented state error
        else:
            raise BrokenContractError("an answer was read before any request")
        session.request()
        _check_no_forged_accept(session, source.rest())


TARGETS: dict[str, Callable[[bytes], None]] = {
    "decoder": fuzz_decoder,
    "handshake": fuzz_handshake,
    "message": fuzz_message,
    "discovery": fuzz_discovery,
    "resume": fuzz_resume,
}

MAX_LEN = {"decoder": 4096, "handshake": 4096, "message": 8192, "discovery": 1200, "resume": 1024}
"""Longest input the fuzzer builds per target: above a frame's header, a handshake's
hello limit and a datagram's size, short enough to keep executions fast."""
