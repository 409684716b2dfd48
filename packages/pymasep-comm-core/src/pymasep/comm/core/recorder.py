"""Record every frame and connection event of a server or a client: :class:`Recorder`.

``Server(..., record=PATH)``, ``Client(..., record=PATH)``, or ``PYMASEP_COMM_RECORD=DIR``
in the environment (so that code which builds its servers and clients itself, as
pymasep's engine and interfaces do, records without a change): each server and client
writes one file. :mod:`pymasep.comm.core.recording` reads them back; ``docs/recording.md``
describes the format.

The recorder is a :class:`~pymasep.comm.core.tap.Tap`. The connections' threads append
each event to a queue and go on: the frames of one read from a socket, or of one tell of
frames sent, are one entry, their payloads kept by reference (neither copied nor
formatted in the game's process). The recorder's own thread hands the queue, in batches
of :data:`HAND_OVER_BYTES`, to a writer process of the recorder's own
(``pymasep/comm/core/_recordwriter.py``), through a pipe, at least every
:data:`FLUSH_INTERVAL` seconds. The writer process makes the JSON lines and appends them
to the file, on the CPU time the game leaves (``SCHED_IDLE``, else ``nice`` 19): making a
line costs more than the frame's own trip through the connection, and there it takes
none of the game's GIL.

**Bursts.** While events come faster than :data:`BURST_RATE` (a stream, not a game's
pace), the recorder's thread keeps them in the queue, up to seven eighths of its bound,
and hands them over once the burst ends: a writer that made lines during a stream would
take the CPU and the memory bandwidth that the stream runs on. So a recording follows a
live game within a fraction of a second, and a stream's records reach the file after it
(or, past seven eighths of the bound, while it goes on, and the stream then waits for
the writer as with a slow disk).

**A disk slower than the game.** At most :data:`DEFAULT_MAX_PENDING_BYTES` of events
(their payloads, and about 100 bytes each besides) wait in the game's process, and a
batch and the pipe's megabyte in the writer process. Beyond that, the thread that sends
or receives a frame waits until the writer has taken some: the game slows down to the
disk's pace (or to the CPU time it leaves the writer), and nothing is dropped. The first
such wait is logged at WARNING, and :attr:`Recorder.waits` counts them.

**A disk that fails** (full, removed): the writer process stops, the error is logged
once at ERROR, the file keeps what was written before, and the recorder stops: events
from then on are counted in :attr:`Recorder.dropped` (logged again at close), never
written, and the game goes on unhindered. Events that come after :meth:`Recorder.close`
are counted there too. Once closed, :attr:`Recorder.written` says how many records
reached the file.

**Crashes.** The file is only ever appended to, and the writer process flushes it after
each batch. If the game's process dies, the writer process still writes what it was
handed (all but the last :data:`FLUSH_INTERVAL` seconds of a game, or the part of a
burst still kept) and closes the file (a gzip file gets its trailer); if both die, the
file's complete lines are readable (a gzip file then lacks its trailer: ``zcat`` prints
what is there, then complains; the reader takes it as it is).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import marshal
import operator
import os
import re
import select
import struct
import subprocess
import sys
import threading
import time
import weakref
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .tap import Direction, Tap

if TYPE_CHECKING:
    from .connection import DisconnectReason
    from .frame import Frame
    from .wire import Wire

__all__ = [
    "BURST_RATE",
    "DEFAULT_MAX_PENDING_BYTES",
    "FLUSH_INTERVAL",
    "HAND_OVER_BYTES",
    "FORMAT",
    "FORMAT_VERSION",
    "Recorder",
    "recorder_for",
]

FORMAT = "pymasep-comm-recording"
"""The header's ``format``."""
FORMAT_VERSION = 1
"""The header's ``version``: raised when a reader of the previous one could not read it."""
DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024
"""Bytes of events that may wait for the writer before senders and readers wait for it
(64 MiB, as a connection's send limit: thousands of a game's observations, many seconds
of play, far more than a disk's hiccup)."""
_EVENT_COST = 100  # bytes an event costs besides its payload (the tuple, its numbers)
_MESSAGE = operator.attrgetter("message")
_FRAMES: list[bytes] = []  # an entry's payloads: in its event's frames (frames sent)
FLUSH_INTERVAL = 0.1
"""Seconds at most between an event and its hand-over to the writer process, which then
writes its line to the file (for a follower) when it gets the CPU time."""
HAND_OVER_BYTES = 1024 * 1024
"""Bytes of events handed to the writer process in one batch (a pipe's worth)."""
BURST_RATE = 16 * 1024 * 1024
"""Bytes a second of events above which the game is taken to be in a burst: the events
then wait in the game's process, up to seven eighths of the queue's bound, until the
burst ends (16 MiB/s: a game's pace of observations is far below it, a stream of small
frames far above)."""

Side = Literal["server", "client"]
_log = logging.getLogger("pymasep.comm.core.recorder")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_BATCH = struct.Struct("!II")  # a batch's bytes of marshalled events, of payloads


def _iov_max() -> int:
    """Buffers one ``os.writev`` takes (1024 on Linux and macOS; 16 is POSIX's least)."""
    try:
        return max(16, min(os.sysconf("SC_IOV_MAX"), 1024))
    except (AttributeError, ValueError, OSError):
        return 16


_IOV_MAX = _iov_max()
_FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".gz")
_PIPE_SIZE = 1024 * 1024


class _Pipe:
    """The pipe to the writer process, made non-blocking: batches written whole and in
    order, by the recorder's own thread alone. A write that finds the pipe full keeps
    the rest of its batch (:attr:`busy`), to be written first by the next one.

    Args:
        fd: The pipe's descriptor.
    """

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._rest: list[bytes | memoryview] = []  # of the batch being written
        self._writable = select.poll()
        self._writable.register(fd, select.POLLOUT)

    @property
    def busy(self) -> bool:
        """A batch is not fully written."""
        return bool(self._rest)

    def start(self, events: list[tuple[Any, ...]], payloads: list[bytes]) -> None:
        """Begin a batch: its length, the events' tuples (marshalled: numbers and short
        strings), then the payloads as they are, without a copy here (``os.writev``)."""
        meta = marshal.dumps(events)
        self._rest = [_BATCH.pack(len(meta), sum(map(len, payloads))), meta, *payloads]

    def wait_writable(self, timeout: float) -> None:
        """Wait until the pipe has room, or ``timeout`` seconds at most."""
        self._writable.poll(timeout * 1000)

    def drop(self) -> None:
        """Forget the batch being written (the writer process is gone)."""
        self._rest = []

    def write(self, wait: bool) -> bool:
        """Write the batch's rest (each system call without the GIL); True once it is
        all written. ``wait``: False to stop where the pipe is full, True to wait for
        room."""
        rest = self._rest
        while rest:
            chunk = rest[:_IOV_MAX]
            try:
                written = os.writev(self.fd, chunk)
            except BlockingIOError:
                if not wait:
                    self._rest = rest
                    return False
                self._writable.poll()
                continue
            ends = list(accumulate(map(len, chunk)))
            whole = bisect_right(ends, written)  # buffers written whole
            rest = rest[whole:]
            done = ends[whole - 1] if whole else 0
            if written > done:  # one in part
                rest[0] = memoryview(rest[0])[written - done :]
        self._rest = []
        return True


def _enlarge(pipe: int) -> None:
    """Make a pipe hold a batch (where the system lets one say): its writer stops less
    often to wait for its reader."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


_WRITER = Path(__file__).with_name("_recordwriter.py")
# The writer module, loaded by its path under its own name: the package's __init__ is not
# run (pymasep's own __init__, around ours, imports pygame and opencv: most of a second),
# and the module is still the package's (coverage, tracebacks).
_RUN_WRITER = (
    "import importlib.util as u, sys;"
    "s = u.spec_from_file_location('pymasep.comm.core._recordwriter', sys.argv[1]);"
    "m = u.module_from_spec(s); s.loader.exec_module(m); sys.exit(m.main(sys.argv[2:]))"
)
# Popen's arguments for a new process group (process_group is new in Python 3.11).
_OWN_PROCESS_GROUP: dict[str, Any] = (
    {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
)
_WRITER_TIMEOUT = 60.0  # seconds the writer process may take to write what it holds
_live: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _version() -> str:
    from . import __version__

    return __version__


class Recorder(Tap):
    """Writes every event of every connection it taps to one JSON Lines file.

    Args:
        path: A file whose name ends with ``.jsonl`` (``.jsonl.gz`` or ``.gz``: gzip),
            created; it must not exist, unless it is a named pipe or a character device
            (a reader at the other end). Any other path is a directory (created if need
            be): a new file in it, named by ``ident`` and the start time
            (``<ident>-<UTC time>-<process id>.jsonl``).
        side: ``"server"`` or ``"client"``, for the header.
        ident: Id of the server or client, for the header and the file name.
        max_pending_bytes: Bytes of events that may wait for the writer in this process,
            and again in the writer process (see the module docstring).

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
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
    ) -> None:
        started_wall, started_mono = time.time(), time.monotonic()
        target = Path(path)
        if target.is_dir() or not (target.exists() or target.name.endswith(_FILE_SUFFIXES)):
            target.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started_wall))
            micro = int(started_wall % 1 * 1e6)
            name = _UNSAFE.sub("_", ident)[:100] or "anonymous"
            target = target / f"{name}-{stamp}.{micro:06d}Z-{os.getpid()}.jsonl"
        self.path = target
        """The file written."""
        self.side = side
        self.ident = ident
        self.max_pending_bytes = max_pending_bytes
        exists = target.exists()
        if exists and not (target.is_fifo() or target.is_char_device()):
            raise FileExistsError(f"{target} exists: a recording is never written over")
        # Append-only: a new file, or a pipe or device that someone reads.
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        flags |= 0 if exists else os.O_CREAT | os.O_EXCL
        fd = os.open(target, flags, 0o644)
        try:
            # Processes of their own format and write (see _recordwriter), at a lower
            # priority. In a process group of their own, so that Ctrl-C in a terminal
            # does not stop them before the game's last records reach them; but in the
            # game's session, where that priority counts (Linux weighs each session as
            # one under autogroup scheduling).
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _RUN_WRITER,
                    str(_WRITER),
                    str(fd),
                    "1" if target.suffix == ".gz" else "0",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(fd,),
                **_OWN_PROCESS_GROUP,
            )
        finally:
            os.close(fd)
        assert self._process.stdin is not None
        _enlarge(self._process.stdin.fileno())
        # The queue: each entry one event (the frames of a read, or of a tap's tell, are
        # one), the frames' payloads, how many records it makes, and its cost in bytes.
        self._queue: deque[tuple[tuple[Any, ...], list[bytes], int, int]] = deque()
        self._pending_bytes = 0  # of the events queued or being handed over
        self._arrived = 0  # bytes queued since the recorder's thread last looked
        self._defer_limit = max_pending_bytes * 7 // 8  # see _write_loop
        self._wake_at = self._defer_limit  # a game's thread wakes the recorder's then
        self._pipe = _Pipe(self._process.stdin.fileno())
        self._flight = (0, 0)  # the batch being handed over: its records, its bytes
        self._lock = threading.Lock()  # the queue and its byte count
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._closed = False
        self._stopped = False  # closed, or stopped by an error: events are dropped
        self.written = 0
        """Records written to the file (the header not counted): known once closed."""
        self._handed = 0  # records handed to the writer process
        self.waits = 0
        """How many times a connection's thread waited for the writer (a slow disk)."""
        self.dropped = 0
        """Events not written: after a write error, or after :meth:`close`."""
        self.error: str | None = None
        """Why the recorder stopped before it was closed (a write error), if it did."""
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
        self._queue.append((("header", header), [], 0, 0))
        self._writer = threading.Thread(
            target=self._write_loop, name=f"pymasep-comm-recorder-{ident}", daemon=True
        )
        self._writer.start()
        _live.add(self)

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, {self.side!r}, {self.ident!r})"

    # -- the tap: called by the connections' threads ------------------------------------

    def _put(self, event: tuple[Any, ...]) -> None:
        """Queue an event without a payload (the rare ones: a connection's life)."""
        self._queue_entry(event, [], 1, _EVENT_COST)

    def _put_frames(
        self, event: tuple[Any, ...], payloads: list[bytes], lengths: list[int]
    ) -> None:
        """Queue the frames of one event: a tuple of their numbers (their payloads'
        ``lengths``) and references to their payloads, neither copied nor formatted here
        (the game's threads wait while this runs)."""
        self._queue_entry(event, payloads, len(lengths), sum(lengths) + _EVENT_COST * len(lengths))

    def _queue_entry(
        self, event: tuple[Any, ...], payloads: list[bytes], records: int, cost: int
    ) -> None:
        with self._lock:
            if self._stopped:
                self.dropped += records
                return
            self._queue.append((event, payloads, records, cost))
            self._arrived += cost
            pending = self._pending_bytes = self._pending_bytes + cost
        if pending > self._wake_at:
            self._wake_at = self.max_pending_bytes  # once, until the queue is drained
            self._wake.set()
            if pending > self.max_pending_bytes:
                self._wait_for_room()

    def _hand_over(self, wait: bool, defer: bool) -> None:
        """Hand the queue to the writer process, a batch of about
        :data:`HAND_OVER_BYTES` at a time, after the rest of the batch before it (in the
        recorder's thread). ``wait``: True to wait for the writer process to make room,
        False to stop where the pipe is full; ``defer``: True to hand over nothing new."""
        pipe = self._pipe
        while True:
            if pipe.busy and not self._write(wait):
                return
            if defer:
                return
            with self._lock:
                if not self._queue:
                    return
                events: list[tuple[Any, ...]] = []
                payloads: list[bytes] = []
                records = cost = 0
                while self._queue and cost < HAND_OVER_BYTES:
                    event, its_payloads, its_records, its_cost = self._queue.popleft()
                    if its_payloads is _FRAMES:  # frames sent: (..., frames) as told
                        its_payloads = list(map(_MESSAGE, event[5]))
                        lengths = list(map(len, its_payloads))
                        event = (*event[:2], list(event[2]), *event[3:5], lengths)
                    events.append(event)
                    payloads += its_payloads
                    records += its_records
                    cost += its_cost
            self._flight = (records, cost)  # still counted in _pending_bytes until written
            if self.error is None:
                pipe.start(events, payloads)
                del events, payloads  # the pipe holds the payloads until they are written
            else:  # queued before the recorder stopped
                self.dropped += records
                self._handed_over()

    def _write(self, wait: bool) -> bool:
        """Write the batch in flight; False if the pipe is full (``wait`` False)."""
        try:
            if not self._pipe.write(wait):
                return False
        except (OSError, ValueError) as error:  # ValueError: marshal, a bug
            self._pipe.drop()
            self._fail(str(error))
            self.dropped += self._flight[0]
        else:
            self._handed += self._flight[0]
        self._handed_over()
        return True

    def _handed_over(self) -> None:
        """The batch in flight is written (or dropped): its bytes make room."""
        handing = self._flight[1]
        self._flight = (0, 0)
        with self._lock:
            self._pending_bytes -= handing
            if self._pending_bytes <= self._defer_limit:
                self._wake_at = self._defer_limit
        if handing:
            with self._room:
                self._room.notify_all()

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
                    self._pending_bytes <= self.max_pending_bytes
                    or self._closed
                    or self.error is not None
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
        """Record a connection opening (see :meth:`~pymasep.comm.core.tap.Tap.connected`)."""
        if isinstance(address, tuple) and len(address) >= 2:
            host = str(address[0])
            address = f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
        event = ("connected", peer_id, monotonic, wall, str(address), str(wire), authenticated, tls)
        self._put(event)

    def frame_sent(
        self, peer_id: str, payload: bytes, size: int, monotonic: float, wall: float
    ) -> None:
        """Record a frame sent (see :meth:`~pymasep.comm.core.tap.Tap.frame_sent`)."""
        length = len(payload)
        self._put_frames(("sent", peer_id, monotonic, wall, size, length), [payload], [length])

    def frames_sent(
        self,
        peer_id: str,
        frames: Sequence[Frame],
        header_size: int,
        monotonic: Sequence[float],
        wall_offset: float,
    ) -> None:
        """Record frames sent (see :meth:`~pymasep.comm.core.tap.Tap.frames_sent`): one
        event for them all."""
        # Only counted here, in the sender's thread: the payloads are taken from the
        # frames when the batch is handed over, in the recorder's.
        cost = sum(map(len, map(_MESSAGE, frames))) + _EVENT_COST * len(frames)
        event = ("sent", peer_id, monotonic, wall_offset, header_size, frames)
        self._queue_entry(event, _FRAMES, len(frames), cost)

    def frame_received(
        self, peer_id: str, payload: bytes, size: int, monotonic: float, wall: float
    ) -> None:
        """Record a frame received (see :meth:`~pymasep.comm.core.tap.Tap.frame_received`)."""
        length = len(payload)
        event = ("received", peer_id, monotonic, wall, size, length)
        self._put_frames(event, [payload], [length])

    def frames_received(
        self, peer_id: str, frames: Sequence[Frame], header_size: int, monotonic: float, wall: float
    ) -> None:
        """Record the frames of a read (see
        :meth:`~pymasep.comm.core.tap.Tap.frames_received`): one event for them all."""
        payloads = [frame.message for frame in frames]
        lengths = list(map(len, payloads))
        event = ("received", peer_id, monotonic, wall, header_size, lengths)
        self._put_frames(event, payloads, lengths)

    def bye(self, peer_id: str, direction: Direction, monotonic: float, wall: float) -> None:
        """Record a bye (see :meth:`~pymasep.comm.core.tap.Tap.bye`)."""
        self._put(("bye", peer_id, monotonic, wall, direction))

    def closed(self, peer_id: str, reason: DisconnectReason, monotonic: float, wall: float) -> None:
        """Record a connection's end (see :meth:`~pymasep.comm.core.tap.Tap.closed`)."""
        self._put(
            ("closed", peer_id, monotonic, wall, str(reason), reason.code.name, reason.graceful)
        )

    def broken(self, peer_id: str, reason: DisconnectReason, monotonic: float, wall: float) -> None:
        """Record a connection that broke and is held for a resume (see
        :meth:`~pymasep.comm.core.tap.Tap.broken`)."""
        self._put(("broken", peer_id, monotonic, wall, str(reason), reason.code.name))

    def resumed(self, peer_id: str, monotonic: float, wall: float) -> None:
        """Record a connection resumed (see :meth:`~pymasep.comm.core.tap.Tap.resumed`)."""
        self._put(("resumed", peer_id, monotonic, wall))

    # -- the writer thread ---------------------------------------------------------------

    def _write_loop(self) -> None:
        """Hand the queue over in batches, at least every FLUSH_INTERVAL, except during
        a burst (see the module docstring); at close, the rest."""
        self._wake.set()  # the header goes out at once
        pipe = self._pipe
        last = time.monotonic()
        while True:
            if pipe.busy:  # wait for the writer process to make room (without the GIL)
                pipe.wait_writable(FLUSH_INTERVAL)
            else:
                self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            closing = self._closed
            now = time.monotonic()
            with self._lock:
                arrived, self._arrived = self._arrived, 0
                pending = self._pending_bytes
            streaming = arrived > BURST_RATE * (now - last)
            last = now
            full = pending > self.max_pending_bytes
            self._hand_over(
                wait=closing or full,
                defer=streaming and not closing and pending <= self._defer_limit,
            )
            if closing and not self._queue and not pipe.busy:
                break
        with contextlib.suppress(OSError):
            self._process.stdin.close()  # type: ignore[union-attr]
        self._finish_writer()

    def _finish_writer(self) -> None:
        """Wait for the writer process; learn how many records reached the file."""
        process = self._process
        assert process.stdout is not None
        try:
            process.wait(_WRITER_TIMEOUT)  # its status line is small: the pipe holds it
            out = process.stdout.read().decode("utf-8", "replace")
            status = json.loads(out.splitlines()[-1]) if out.strip() else {}
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            process.kill()
            process.wait()
            status = {"written": 0, "error": "the writer process did not finish"}
        finally:
            process.stdout.close()
        self.written = int(status.get("written", 0))
        if status.get("error") or process.returncode:
            self._fail(status.get("error") or f"the writer process ended with {process.returncode}")
        self.dropped += max(0, self._handed - self.written)

    def _fail(self, error: str) -> None:
        if self.error is None:
            _log.error("%s: recording stopped: %s", self.path, error)
            self.error = error
        with self._lock:
            self._stopped = True
            self.dropped += sum(entry[2] for entry in self._queue)
            self._queue.clear()
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
            self._closed = self._stopped = True
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
    """The recorder a Server or Client makes for its ``record`` argument (which the
    settings layer fills from ``PYMASEP_COMM_RECORD`` or the TOML file's ``record`` when
    the code passes none), or None when there is nothing to record."""
    return None if record is None else Recorder(record, side, ident)


def _close_all_at_exit() -> None:
    # Registered when this module is imported, before pymasep.comm.core.linger's hook
    # (at the first communication made), so it runs after it (atexit runs the last
    # registered first): the connections that linger closes are recorded to their end.
    for recorder in list(_live):
        recorder.close(timeout=5.0)


atexit.register(_close_all_at_exit)
