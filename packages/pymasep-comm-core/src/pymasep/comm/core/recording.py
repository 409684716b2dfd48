"""Read a recording back: :class:`Recording`, its :class:`Record` s, their messages.

A recording is what a :class:`~pymasep.comm.core.recorder.Recorder` writes (``record=``
or ``PYMASEP_COMM_RECORD``): JSON Lines, gzip'ed when the name ends with ``.gz``, a
header line first. ``docs/recording.md`` describes every field; no package is needed to
read one (``jq``, ``pandas.read_json(path, lines=True)``). This module adds what those do
not: the payloads as bytes and as :class:`~pymasep.comm.core.Message` s, and each
frame's game step.

A recording cut short (the process was killed) is read up to its last complete line. A
recording that is still being written can be followed: :meth:`Recording.follow` yields
the records written since its last call.

The **step** of a record is the game step it belongs to, per peer: an OBSERVATION starts
a step, and what follows it with that peer (the action that answers it) belongs to it.
Its number is the one the observed state carries, when its first element has a ``step``
or ``env_step`` attribute (pymasep's ``State`` has ``env_step``); else the observations
are counted from 0. What comes before the first observation (DEFINE, REGISTER) is step
0. The engine's recording and the interface's number their steps alike.
"""

from __future__ import annotations

import base64
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from .exceptions import DecodeError
from .message import Message
from .recorder import FORMAT

__all__ = ["OBSERVATION", "Record", "Recording", "canonical_xml", "pretty_xml"]

OBSERVATION = Message.MESSAGE_TYPE_OBSERVATION
"""The message type that starts a step."""
_STATE_STEP = re.compile(r'<item key="observation"><[^>]*?\b(?:env_step|step)="(-?\d+)"')
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Record:
    """One line of a recording (not the header).

    Attributes:
        seq: Its number in the recording, from 0.
        event: ``"connected"``, ``"sent"``, ``"received"``, ``"bye"``, ``"broken"``
            (held for a resume), ``"resumed"`` or ``"closed"``.
        peer: Id of the peer of the connection.
        monotonic: ``time.monotonic()`` of the recording process then.
        wall: ``time.time()`` then.
        direction: ``"out"`` (to the peer) or ``"in"``, for frames and byes; else None.
        size: Bytes on the wire, header included, for frames; else None.
        msg_type: The message's type, for a frame holding a Message; else None.
        step: The game step (see the module docstring).
        fields: The line's JSON object, every field as written.
    """

    seq: int
    event: str
    peer: str
    monotonic: float
    wall: float
    direction: str | None
    size: int | None
    msg_type: str | None
    step: int
    fields: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_frame(self) -> bool:
        """True for a frame sent or received."""
        return self.event in ("sent", "received")

    @property
    def xml(self) -> str | None:
        """The payload as text when it is XML (a Message), else None."""
        text = self.fields.get("xml")
        return text if isinstance(text, str) else None

    @property
    def payload(self) -> bytes | None:
        """The frame's payload, as it crossed the wire; None for other events."""
        if self.xml is not None:
            return self.xml.encode("utf-8")
        data = self.fields.get("base64")
        return base64.b64decode(data) if isinstance(data, str) else None

    def message(self) -> Message:
        """The payload decoded into a :class:`~pymasep.comm.core.Message`.

        Raises:
            DecodeError: Not a frame, or not a message (also for a value whose class is
                not registered in this process: see
                :func:`~pymasep.comm.core.register_type`).
        """
        payload = self.payload
        if payload is None:
            raise DecodeError(f"record {self.seq} is a {self.event!r} event, not a frame")
        message = Message("", None, None)
        message.from_bytes(payload)
        return message


def canonical_xml(payload: bytes) -> bytes:
    """The payload's canonical XML (C14N), to compare two messages without decoding
    their values (no class needs to be registered); the payload itself when it is not
    XML."""
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
        return bytes(etree.tostring(etree.fromstring(payload, parser), method="c14n"))
    except etree.XMLSyntaxError:
        return payload


def pretty_xml(payload: bytes) -> str:
    """The payload's XML indented for reading (its text as it is when it is not XML)."""
    try:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, huge_tree=True, remove_blank_text=True
        )
        root = etree.fromstring(payload, parser)
    except etree.XMLSyntaxError:
        return payload.decode("utf-8", "replace")
    return str(etree.tostring(root, pretty_print=True, encoding="unicode"))


class _Lines:
    """The complete lines of a file that may still grow, gzip'ed or not, read on demand."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._gzip = zlib.decompressobj(wbits=31) if path.name.endswith(".gz") else None
        self._rest = b""

    def read(self) -> list[bytes]:
        """Lines completed since the last call (without their newline)."""
        lines: list[bytes] = []
        while True:
            chunk = self._file.read(_CHUNK)
            if not chunk:
                return lines
            if self._gzip is not None:
                chunk = self._gzip.decompress(chunk)
                if self._gzip.eof:  # the next member of a concatenated gzip file
                    unused = self._gzip.unused_data
                    self._gzip = zlib.decompressobj(wbits=31)
                    chunk += self._gzip.decompress(unused) if unused else b""
            data = self._rest + chunk
            *complete, self._rest = data.split(b"\n")
            lines.extend(line for line in complete if line.strip())

    def close(self) -> None:
        self._file.close()


class Recording:
    """A recording, opened for reading: its header, then its records.

    Args:
        path: The file (``.jsonl`` or ``.jsonl.gz``).

    Raises:
        OSError: It cannot be read.
        DecodeError: It is not a recording (no header).

    Attributes:
        path: The file.
        header: The header line's JSON object (``format``, ``version``, ``side``,
            ``id``, ``package_version``, ``started_wall``, ...).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lines = _Lines(self.path)
        self._steps: dict[str, tuple[int, int]] = {}  # peer: (observations, step)
        self._buffer: list[bytes] = []
        first = self._next_lines()
        if not first:
            self._lines.close()
            raise DecodeError(f"{self.path} holds no recording header (empty or not written)")
        try:
            header = json.loads(first[0])
        except ValueError as error:
            self._lines.close()
            raise DecodeError(f"{self.path} is not a recording: {error}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            self._lines.close()
            raise DecodeError(f"{self.path} is not a pymasep-comm recording")
        self.header: dict[str, Any] = header
        self._buffer = first[1:]

    def _next_lines(self) -> list[bytes]:
        lines = self._buffer + self._lines.read()
        self._buffer = []
        return lines

    @property
    def side(self) -> str:
        """``"server"`` or ``"client"``: which side recorded it."""
        return str(self.header.get("side"))

    @property
    def id(self) -> str:
        """Id of the server or client that recorded it."""
        return str(self.header.get("id"))

    def _record(self, line: bytes) -> Record:
        fields = json.loads(line)
        peer = str(fields.get("peer", ""))
        msg_type = fields.get("type")
        seen, step = self._steps.get(peer, (0, 0))
        if msg_type == OBSERVATION and fields.get("event") in ("sent", "received"):
            xml = fields.get("xml")
            found = _STATE_STEP.search(xml, 0, 4096) if isinstance(xml, str) else None
            step = int(found.group(1)) if found else seen
            seen += 1
            self._steps[peer] = (seen, step)
        return Record(
            seq=int(fields.get("seq", -1)),
            event=str(fields.get("event")),
            peer=peer,
            monotonic=float(fields.get("mono", 0.0)),
            wall=float(fields.get("wall", 0.0)),
            direction=fields.get("dir"),
            size=fields.get("size"),
            msg_type=msg_type,
            step=step,
            fields=fields,
        )

    def follow(self) -> list[Record]:
        """The records written since the last call (or since the start): call it again
        to follow a recording that is being written."""
        return [self._record(line) for line in self._next_lines()]

    def __iter__(self) -> Iterator[Record]:
        """The records from where reading stands to the end of what is written now."""
        while True:
            records = self.follow()
            if not records:
                return
            yield from records

    def messages(
        self, peer: str | None = None, direction: str | None = None
    ) -> Iterator[tuple[Record, Message]]:
        """The frames as :class:`~pymasep.comm.core.Message` s, with their records.

        Args:
            peer: Only those of this peer.
            direction: Only ``"out"`` or ``"in"``.

        Raises:
            DecodeError: A frame is not a message.
        """
        for record in self:
            if not record.is_frame:
                continue
            if peer is not None and record.peer != peer:
                continue
            if direction is not None and record.direction != direction:
                continue
            yield record, record.message()

    def close(self) -> None:
        """Close the file."""
        self._lines.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
