"""The recorder's writer process: turns the events a Recorder sends into JSON lines.

Run by :class:`pymasep.comm.core.recorder.Recorder`, loaded by its path (``main(FD,
GZIP)``): it needs only the standard library, and starts without importing the package.
It reads batches from stdin (from its own parent only), each two 4-byte big-endian
lengths, a :mod:`marshal` dump of a list of event tuples (a frame's holds its payload's
length; the frames of a read are one tuple, with their lengths, and so are the frames
sent that a tap was told of at once, with their times) and the frames' payloads, one
after the other; it formats one JSON line per event and appends them to the file open on
descriptor FD (gzip'ed when GZIP is ``1``), flushed after each batch. At the end of
stdin, or at the first error, it closes the file and prints ``{"written": N, "error":
...}`` on stdout: how many records reached the file.

The formatting happens here rather than in the game's process so that it costs the game
none of its GIL: the game's threads only append tuples and write them to the pipe. It
runs only on the CPU time the game leaves (``SCHED_IDLE``, else ``nice`` 19): while the
game keeps the cores busy, the pipe stays full and the Recorder keeps the events (its
bounded queue: the game waits once it is full); they are written when the game pauses,
or after it. Making a line costs more than a frame's trip through the connection: making
them while a stream runs would slow it down by more than half.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import marshal
import os
import re
import struct
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

_MSG_TYPE = re.compile(rb'<Message msg_type="([^"]*)"')
_BATCH = struct.Struct("!II")
_NICENESS = 19
_COMPACT = (",", ":")
_dumps = json.dumps
# The C escaper behind json.dumps(str, ensure_ascii=False), without its per-call setup.
_escape: Callable[[str], str] = json.encoder.encode_basestring
_b64 = base64.b64encode


class Formatter:
    """Formats events as JSON lines, numbering the records from 0."""

    def __init__(self) -> None:
        self.seq = 0
        self._peers: dict[str, str] = {}  # peer id: its JSON string
        self._types: dict[bytes, str] = {}  # message type: its JSON string

    def line(self, event: tuple[Any, ...]) -> str:
        kind = event[0]
        if kind == "header":
            return _dumps(event[1]) + "\n"
        seq = self.seq
        self.seq += 1
        peer = self._peers.get(event[1])
        if peer is None:
            peer = self._peers[event[1]] = _escape(event[1])
        head = (
            f'{{"seq":{seq},"event":"{kind}","peer":{peer},"mono":{event[2]!r},"wall":{event[3]!r}'
        )
        if kind == "sent" or kind == "received":
            payload: bytes = event[6]
            body = None
            if payload.startswith(b"<"):
                try:
                    body = f'"xml":{_escape(payload.decode())}'
                except UnicodeDecodeError:
                    body = None
            if body is None:
                body = f'"base64":"{_b64(payload).decode()}"'
            match = _MSG_TYPE.match(payload, 0, 200)
            msg_type = "null"
            if match:
                found = match.group(1)
                msg_type = self._types.get(found) or self._types.setdefault(
                    found, _escape(found.decode("utf-8", "replace"))
                )
            direction = "out" if kind == "sent" else "in"
            return f'{head},"dir":"{direction}","size":{event[4]},"type":{msg_type},{body}}}\n'
        if kind == "connected":
            address, wire, authenticated, tls = event[4:]
            extra = {"address": address, "wire": wire, "authenticated": authenticated, "tls": tls}
        elif kind == "bye":
            extra = {"dir": event[4]}
        elif kind == "closed":
            extra = {"reason": event[4], "code": event[5], "graceful": event[6]}
        elif kind == "broken":
            extra = {"reason": event[4], "code": event[5]}
        else:
            extra = {}
        if not extra:
            return f"{head}}}\n"
        return f"{head},{_dumps(extra, ensure_ascii=False, separators=_COMPACT)[1:]}\n"


def _lower_priority() -> None:
    """Run only on the CPU time the game leaves: ``SCHED_IDLE`` where the system has it
    (Linux; a task of that policy gives way to any other at once), else ``nice`` 19."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return
    with contextlib.suppress(AttributeError, OSError):  # no nice() here: as it is
        os.nice(_NICENESS)


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def _events(meta: bytes, payloads: bytes) -> list[tuple[Any, ...]]:
    """A batch's events, one per frame, each frame's with its payload appended: a frame's
    event is ``(kind, peer, mono, wall, size, length)``; the frames of one read are one
    event ``(kind, peer, mono, wall, header size, [length, ...])``, and the frames sent
    that a tap was told of at once, one event ``(kind, peer, [mono, ...], wall offset,
    header size, [length, ...])``."""
    events: list[tuple[Any, ...]] = []
    position = 0
    for event in marshal.loads(meta):
        kind = event[0]
        if kind != "sent" and kind != "received":
            events.append(event)
            continue
        kind, peer, mono, wall, size, lengths = event
        if type(lengths) is int:
            end = position + lengths
            events.append((*event, payloads[position:end]))
            position = end
            continue
        if type(mono) is list:  # frames sent: each its time; ``wall`` is the offset
            for handed, length in zip(mono, lengths, strict=True):
                end = position + length
                chunk = payloads[position:end]
                events.append((kind, peer, handed, handed + wall, size + length, length, chunk))
                position = end
            continue
        for length in lengths:
            end = position + length
            events.append((kind, peer, mono, wall, size + length, length, payloads[position:end]))
            position = end
    return events


def main(argv: list[str]) -> int:
    fd, compress = int(argv[0]), argv[1] == "1"
    _lower_priority()
    stdin = os.fdopen(0, "rb")
    raw = os.fdopen(fd, "ab")
    file: BinaryIO = gzip.GzipFile(fileobj=raw, mode="wb") if compress else raw  # type: ignore[assignment]
    formatter = Formatter()
    written = 0
    error = None
    try:
        while (head := _read(stdin, _BATCH.size)) is not None:
            meta_size, payload_size = _BATCH.unpack(head)
            meta, payloads = _read(stdin, meta_size), _read(stdin, payload_size)
            if meta is None or payloads is None:
                break
            events = _events(meta, payloads)
            del meta, payloads
            file.write("".join(map(formatter.line, events)).encode())
            file.flush()
            written = formatter.seq
    except OSError as failure:
        error = str(failure)
    finally:
        try:
            file.close()
            if file is not raw:
                raw.close()
        except OSError as failure:
            error = error or str(failure)
    stdin.close()
    sys.stdout.write(json.dumps({"written": written, "error": error}) + "\n")
    sys.stdout.flush()
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
