"""The recorder's writer process: turns the events a Recorder sends into JSON lines.

Run by :class:`pymasep.comm.core.recorder.Recorder`, loaded by its path (``main(FD,
GZIP, LIMIT)``): it needs only the standard library, and starts without importing the
package. It reads batches from stdin (from its own parent only), each two 4-byte
big-endian lengths, a :mod:`marshal` dump of a list of event tuples (a frame's holds its
payload's length; the frames of a read are one tuple, with their lengths) and the
frames' payloads, one after the other; it formats one JSON line per event and appends
them to the file open on descriptor FD (gzip'ed when GZIP is ``1``), flushed after each
batch. At the end of stdin, or at the first error, it closes the file and prints
``{"written": N, "error": ...}`` on stdout: how many records reached the file.

The formatting happens here rather than in the game's process so that it costs the game
none of its GIL: the game's threads only append tuples and write them to the pipe. It
runs at the lowest priority (``nice`` 19): on a machine whose cores the game keeps busy,
the game goes first, and the lines are made in the time it leaves.

Stdin is read by a **relay**, a process forked at the start that keeps the game's
priority: it reads the pipe as soon as something comes, and holds up to LIMIT bytes that
the formatting has not taken yet (beyond that it stops reading, and the Recorder's
bounded queue fills: the game waits if the time to format never comes). It is a process
of its own, one thread: a reading thread beside the formatting one would wait for the
GIL that the formatting thread holds, which the kernel, at ``nice`` 19, leaves waiting
for a core while the game runs; the pipe would stay full and tens of MiB pile up in the
game's process.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import gzip
import json
import marshal
import os
import re
import select
import struct
import sys
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Any, BinaryIO

_MSG_TYPE = re.compile(rb'<Message msg_type="([^"]*)"')
_BATCH = struct.Struct("!II")
_NICENESS = 19
_CHUNK = 1024 * 1024  # bytes the relay reads at most at once (a pipe's worth)
_IOV_MAX = 1024  # buffers one os.writev takes (Linux, macOS); fewer where less
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


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def _events(meta: bytes, payloads: bytes) -> list[tuple[Any, ...]]:
    """A batch's events, one per frame, each frame's with its payload appended: a frame's
    event is ``(kind, peer, mono, wall, size, length)``, and the frames of one read are
    one event ``(kind, peer, mono, wall, header size, [length, ...])``."""
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
        for length in lengths:
            end = position + length
            events.append((kind, peer, mono, wall, size + length, length, payloads[position:end]))
            position = end
    return events


def relay(limit: int, source: int, sink: int) -> int:
    """Copy ``source`` to ``sink`` until the end of ``source``, reading it as soon as
    something comes while fewer than ``limit`` bytes wait for ``sink``'s reader; 0, or 1
    if ``sink``'s reader is gone."""
    os.set_blocking(sink, False)  # a write takes what fits, and the reading goes on
    held: deque[bytes | memoryview] = deque()
    size = 0
    reading = True
    poller = select.poll()
    while reading or held:
        for fd, wanted in ((source, reading and size < limit), (sink, bool(held))):
            if wanted:
                poller.register(fd, select.POLLIN if fd == source else select.POLLOUT)
            else:
                with contextlib.suppress(KeyError):
                    poller.unregister(fd)
        for fd, _ in poller.poll():
            if fd == source:
                data = os.read(source, min(_CHUNK, limit - size))
                if not data:  # the end: the Recorder closed, or its process ended
                    reading = False
                    continue
                held.append(data)
                size += len(data)
                continue
            try:
                written = os.writev(sink, list(islice(held, _IOV_MAX)))
            except BlockingIOError:
                continue
            except BrokenPipeError:  # the formatter stopped (it says why)
                return 1
            size -= written
            while written:
                first = held[0]
                if written < len(first):
                    held[0] = memoryview(first)[written:]
                    break
                held.popleft()
                written -= len(first)
    return 0


def _start_relay(limit: int, file: int) -> BinaryIO:
    """Fork the relay from stdin (``file``: the recording's descriptor, not the relay's
    to hold); return what it passes on."""
    read_end, write_end = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):  # a pipe's worth passed at once, where one may say
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _CHUNK)
    if os.fork() == 0:
        for other in (read_end, file, 1):
            os.close(other)
        os._exit(relay(limit, 0, write_end))
    os.close(write_end)
    # The relay's alone: if it ends, the Recorder learns it at its next write.
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    return os.fdopen(read_end, "rb")


def main(argv: list[str]) -> int:
    fd, compress, limit = int(argv[0]), argv[1] == "1", int(argv[2])
    stdin = _start_relay(limit, fd)
    with contextlib.suppress(AttributeError, OSError):  # no nice() here: as it is
        os.nice(_NICENESS)
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
    stdin.close()  # the relay ends at its next write, if it was not done
    os.wait()
    sys.stdout.write(json.dumps({"written": written, "error": error}) + "\n")
    sys.stdout.flush()
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
