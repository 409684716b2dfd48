"""Record every frame and connection event of a server or a client: :class:`Recorder`.

``Server(..., record=PATH)``, ``Client(..., record=PATH)``, or ``PYMASEP_COMM_RECORD=DIR``
in the environment (so that code which builds its servers and clients itself, as
pymasep's engine and interfaces do, records without a change): each server and client
writes one file. :mod:`pymasep.comm.core.recording` reads them back; ``docs/recording.md``
describes the format.

The recorder is a :class:`~pymasep.comm.core.tap.Tap`. The connection's threads hand it
each event (a tuple, with the payload as it is) and go on; a writer thread of its own
turns them into JSON lines and writes them, so the game never waits for the disk while
the recorder keeps up.

**A disk slower than the game.** At most :data:`DEFAULT_MAX_PENDING` events wait for the
writer. Beyond that, the thread that sends or receives a frame waits until the writer
has written some: the game slows down to the disk's pace, and nothing is dropped. The
first such wait is logged at WARNING, and :attr:`Recorder.waits` counts them.

**A disk that fails** (full, removed): the error is logged once at ERROR, the file keeps
what was written before, and the recorder stops: events from then on are counted in
:attr:`Recorder.dropped` (logged again at close), never written, and the game goes on
unhindered. Events that come after :meth:`Recorder.close` are counted there too.

**Crashes.** The file is only ever appended to, and flushed to the kernel at least every
:data:`FLUSH_INTERVAL` seconds while events come: a process that dies leaves a file
whose complete lines are readable (a gzip file then lacks its trailer; ``zcat`` prints
what is there, then complains; the reader takes it as it is).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import gzip
import json
import logging
import os
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from .tap import Direction, Tap

if TYPE_CHECKING:
    from .connection import DisconnectReason
    from .wire import Wire

__all__ = [
    "DEFAULT_MAX_PENDING",
    "ENV_RECORD",
    "FLUSH_INTERVAL",
    "FORMAT",
    "FORMAT_VERSION",
    "Recorder",
    "recorder_for",
]

FORMAT = "pymasep-comm-recording"
"""The header's ``format``."""
FORMAT_VERSION = 1
"""The header's ``version``: raised when a reader of the previous one could not read it."""
ENV_RECORD = "PYMASEP_COMM_RECORD"
"""The environment variable naming a directory where every Server and Client records
(read by :func:`recorder_for` when no ``record=`` is given; an empty value is unset)."""
DEFAULT_MAX_PENDING = 10_000
"""Events that may wait for the writer before senders and readers wait for it (a few
megabytes of a game's observations: many seconds of play, far more than a disk's hiccup)."""
FLUSH_INTERVAL = 0.1
"""Seconds at most between an event and its line reaching the kernel (and a follower)."""

Side = Literal["server", "client"]
_log = logging.getLogger("pymasep.comm.core.recorder")
_MSG_TYPE = re.compile(rb'<Message msg_type="([^"]*)"')
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_dumps = json.dumps
# The C escaper behind json.dumps(str, ensure_ascii=False), without its per-call setup.
_escape: Callable[[str], str] = json.encoder.encode_basestring
_b64 = base64.b64encode
_COMPACT = (",", ":")
_live: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _version() -> str:
    from . import __version__

    return __version__


class Recorder(Tap):
    """Writes every event of every connection it taps to one JSON Lines file.

    Args:
        path: The file to write (``.gz``: gzip), created; it must not exist, unless it
            is a named pipe or a character device (a reader at the other end). An
            existing directory, or a path ending with a separator: a new file in it,
            named by ``ident`` and the start time
            (``<ident>-<UTC time>-<process id>.jsonl``).
        side: ``"server"`` or ``"client"``, for the header.
        ident: Id of the server or client, for the header and the file name.
        max_pending: Events that may wait for the writer (see the module docstring).

    Raises:
        FileExistsError: ``path`` names a file that exists.
        OSError: The file cannot be created.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        side: Side,
        ident: str,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        started_wall, started_mono = time.time(), time.monotonic()
        target = Path(path)
        if target.is_dir() or str(path).endswith(("/", os.sep)):
            target.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started_wall))
            micro = int(started_wall % 1 * 1e6)
            name = _UNSAFE.sub("_", ident)[:100] or "anonymous"
            target = target / f"{name}-{stamp}.{micro:06d}Z-{os.getpid()}.jsonl"
        self.path = target
        """The file written."""
        self.side = side
        self.ident = ident
        self.max_pending = max_pending
        exists = target.exists()
        if exists and not (target.is_fifo() or target.is_char_device()):
            raise FileExistsError(f"{target} exists: a recording is never written over")
        # Append-only: a new file, or a pipe or device that someone reads.
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        flags |= 0 if exists else os.O_CREAT | os.O_EXCL
        raw = os.fdopen(os.open(target, flags, 0o644), "ab")
        self._file: gzip.GzipFile | BinaryIO = (
            gzip.GzipFile(fileobj=raw, mode="wb") if target.suffix == ".gz" else raw
        )
        self._raw = raw
        self._pending: deque[tuple[Any, ...]] = deque()
        self._peers: dict[str, str] = {}  # peer id: its JSON string (the writer's)
        self._types: dict[bytes, str] = {}  # message type: its JSON string (the writer's)
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._closed = False
        self.written = 0
        """Records written so far (the header not counted)."""
        self.waits = 0
        """How many times a connection's thread waited for the writer (a slow disk)."""
        self.dropped = 0
        """Events not written: after a write error, or after :meth:`close`."""
        self.error: OSError | None = None
        """The write error that stopped the recorder, if one did."""
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "side": side,
            "id": ident,
            "package": "pymasep-comm-core",
            "package_version": _version(),
            "started_wall": started_wall,
            "started_mono": started_mono,
            "pid": os.getpid(),
        }
        self._pending.append(("header", header))
        self._writer = threading.Thread(
            target=self._write_loop, name=f"pymasep-comm-recorder-{ident}", daemon=True
        )
        self._writer.start()
        _live.add(self)

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, {self.side!r}, {self.ident!r})"

    # -- the tap: called by the connections' threads ------------------------------------

    def _put(self, event: tuple[Any, ...]) -> None:
        pending = self._pending
        if len(pending) >= self.max_pending and not self._closed and self.error is None:
            self._wait_for_room()
        if self._closed or self.error is not None:
            self.dropped += 1
            return
        pending.append(event)

    def _wait_for_room(self) -> None:
        with self._room:
            if not self.waits:
                _log.warning(
                    "%s: the disk is slower than the game; the game waits for the recorder",
                    self.path,
                )
            self.waits += 1
            self._wake.set()
            self._room.wait_for(
                lambda: (
                    len(self._pending) < self.max_pending or self._closed or self.error is not None
                )
            )

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
        """Record a connection opening (see :meth:`Tap.connected`)."""
        self._put(("connected", peer_id, monotonic, wall, address, str(wire), authenticated, tls))

    def frame_sent(
        self, peer_id: str, payload: bytes, size: int, monotonic: float, wall: float
    ) -> None:
        """Record a frame sent (see :meth:`Tap.frame_sent`)."""
        self._put(("sent", peer_id, monotonic, wall, payload, size))

    def frame_received(
        self, peer_id: str, payload: bytes, size: int, monotonic: float, wall: float
    ) -> None:
        """Record a frame received (see :meth:`Tap.frame_received`)."""
        self._put(("received", peer_id, monotonic, wall, payload, size))

    def bye(self, peer_id: str, direction: Direction, monotonic: float, wall: float) -> None:
        """Record a bye (see :meth:`Tap.bye`)."""
        self._put(("bye", peer_id, monotonic, wall, direction))

    def closed(self, peer_id: str, reason: DisconnectReason, monotonic: float, wall: float) -> None:
        """Record a connection's end (see :meth:`Tap.closed`)."""
        self._put(
            ("closed", peer_id, monotonic, wall, str(reason), reason.code.name, reason.graceful)
        )

    def resumed(self, peer_id: str, monotonic: float, wall: float) -> None:
        """Record a connection resumed (reserved: nothing resumes connections yet)."""
        self._put(("resumed", peer_id, monotonic, wall))

    # -- the writer thread ---------------------------------------------------------------

    def _line(self, seq: int, event: tuple[Any, ...]) -> str:
        kind = event[0]
        if kind == "header":
            return _dumps(event[1]) + "\n"
        peer = self._peers.get(event[1])
        if peer is None:
            peer = self._peers[event[1]] = _escape(event[1])
        head = (
            f'{{"seq":{seq},"event":"{kind}","peer":{peer},"mono":{event[2]!r},"wall":{event[3]!r}'
        )
        if kind == "sent" or kind == "received":
            # Once per frame: kept to C calls (escaping, base64) and one f-string.
            payload: bytes = event[4]
            body = None
            if payload.startswith(b"<"):
                with contextlib.suppress(UnicodeDecodeError):
                    body = f'"xml":{_escape(payload.decode())}'
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
            return f'{head},"dir":"{direction}","size":{event[5]},"type":{msg_type},{body}}}\n'
        if kind == "connected":
            address, wire, authenticated, tls = event[4:]
            if isinstance(address, tuple) and len(address) >= 2:
                address = (
                    f"[{address[0]}]:{address[1]}"
                    if ":" in str(address[0])
                    else f"{address[0]}:{address[1]}"
                )
            extra = {
                "address": str(address),
                "wire": wire,
                "authenticated": authenticated,
                "tls": tls,
            }
        elif kind == "bye":
            extra = {"dir": event[4]}
        elif kind == "closed":
            extra = {"reason": event[4], "code": event[5], "graceful": event[6]}
        else:
            extra = {}
        if not extra:
            return f"{head}}}\n"
        return f"{head},{_dumps(extra, ensure_ascii=False, separators=_COMPACT)[1:]}\n"

    def _write_loop(self) -> None:
        pending = self._pending
        file = self._file
        dirty = False
        header_written = False
        last_flush = time.monotonic()
        self._wake.set()  # the header goes out at once
        while True:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            closing = self._closed
            count = len(pending)
            if count and self.error is None:
                # The header is the first event, numbered -1: records count from 0.
                first = self.written - (not header_written)
                lines = [self._line(first + i, pending.popleft()) for i in range(count)]
                try:
                    file.write("".join(lines).encode())
                    if not header_written:  # at once, so that a reader sees the file's kind
                        file.flush()
                except OSError as error:
                    self._fail(error, count - (not header_written))
                else:
                    self.written += count - (not header_written)
                    dirty = True
                header_written = True
                with self._room:
                    self._room.notify_all()
            now = time.monotonic()
            if dirty and (closing or now - last_flush >= FLUSH_INTERVAL or not pending):
                try:
                    file.flush()
                except OSError as error:
                    self._fail(error, 0)
                dirty = False
                last_flush = now
            if closing and not pending:
                break
        try:
            file.close()
            if file is not self._raw:
                self._raw.close()
        except OSError as error:
            self._fail(error, 0)

    def _fail(self, error: OSError, lost: int) -> None:
        if self.error is None:
            _log.error("%s: recording stopped after %d records: %s", self.path, self.written, error)
            self.error = error
        self.dropped += lost + len(self._pending)
        self._pending.clear()
        with self._room:
            self._room.notify_all()

    # -- closing -------------------------------------------------------------------------

    def close(self, timeout: float | None = 10.0) -> None:
        """Write what waits, then close the file. Idempotent. Events that come later are
        counted in :attr:`dropped` and logged.

        Args:
            timeout: Seconds to wait at most for the writer.
        """
        with self._room:
            already = self._closed
            self._closed = True
            self._room.notify_all()
        self._wake.set()
        if threading.current_thread() is not self._writer:
            self._writer.join(timeout)
        if not already and self.dropped:
            _log.warning(
                "%s: %d events were not recorded%s",
                self.path,
                self.dropped,
                f" ({self.error})" if self.error else "",
            )

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def recorder_for(record: str | os.PathLike[str] | None, side: Side, ident: str) -> Recorder | None:
    """The recorder a Server or Client makes: for ``record`` if given, else for the
    directory named by :data:`ENV_RECORD` in the environment, else None.

    The one place that reads ``PYMASEP_COMM_RECORD``.
    """
    if record is None:
        record = os.environ.get(ENV_RECORD) or None
        if record is None:
            return None
        record = os.path.join(record, "")  # always a directory
    return Recorder(record, side, ident)


def _close_all_at_exit() -> None:
    # Registered when this module is imported, before pymasep.comm.core.linger's hook
    # (at the first communication made), so it runs after it (atexit runs the last
    # registered first): the connections that linger closes are recorded to their end.
    for recorder in list(_live):
        recorder.close(timeout=5.0)


atexit.register(_close_all_at_exit)
