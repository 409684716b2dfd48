"""Record every frame and connection event of a server or a client: :class:`Recorder`.

``Server(..., record=PATH)``, ``Client(..., record=PATH)``, or ``PYMASEP_COMM_RECORD=DIR``
in the environment (so that code which builds its servers and clients itself, as
pymasep's engine and interfaces do, records without a change): each server and client
writes one file. :mod:`pymasep.comm.core.recording` reads them back; ``docs/recording.md``
describes the format.

The recorder is a :class:`~pymasep.comm.core.tap.Tap`. The connection's threads append
each event (a tuple, the payload as it is) to a bounded queue and go on; a thread of the
recorder hands them in batches to a writer process of its own
(``pymasep/comm/core/_recordwriter.py``), which formats the JSON lines and appends them
to the file. Formatting a line costs more than the frame's own trip through the
connection: in a process of its own it takes none of the game's GIL (on a machine with a
core to spare, none of its time either).

**A disk slower than the game.** At most :data:`DEFAULT_MAX_PENDING_BYTES` of events
(their payloads, and about 100 bytes each besides) wait for the writer. Beyond that, the
thread that sends or receives a frame waits until the writer has taken some: the game
slows down to the disk's pace, and nothing is dropped. The first such wait is logged at
WARNING, and :attr:`Recorder.waits` counts them. A burst shorter than that (a stream of
tens of thousands of frames) does not wait: it is written while the game goes on.

**A disk that fails** (full, removed): the writer process stops, the error is logged
once at ERROR, the file keeps what was written before, and the recorder stops: events
from then on are counted in :attr:`Recorder.dropped` (logged again at close), never
written, and the game goes on unhindered. Events that come after :meth:`Recorder.close`
are counted there too. Once closed, :attr:`Recorder.written` says how many records
reached the file.

**Crashes.** The file is only ever appended to, and the writer process flushes it after
each batch, at least every :data:`FLUSH_INTERVAL` seconds while events come. If the
game's process dies, the writer process still writes what it was handed and closes the
file (a gzip file gets its trailer); if both die, the file's complete lines are readable
(a gzip file then lacks its trailer: ``zcat`` prints what is there, then complains; the
reader takes it as it is).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import marshal
import os
import re
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .tap import Direction, Tap

if TYPE_CHECKING:
    from .connection import DisconnectReason
    from .wire import Wire

__all__ = [
    "DEFAULT_MAX_PENDING_BYTES",
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
DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024
"""Bytes of events that may wait for the writer before senders and readers wait for it
(64 MiB, as a connection's send limit: thousands of a game's observations, many seconds
of play, far more than a disk's hiccup)."""
_EVENT_COST = 100  # bytes an event costs besides its payload (the tuple, its numbers)
FLUSH_INTERVAL = 0.1
"""Seconds at most between an event and its line reaching the kernel (and a follower)."""

Side = Literal["server", "client"]
_log = logging.getLogger("pymasep.comm.core.recorder")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LENGTH = struct.Struct("!I")
_FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".gz")
_PIPE_SIZE = 1024 * 1024


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (each system call without the GIL)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


_WRITER = Path(__file__).with_name("_recordwriter.py")
# The writer module, loaded by its path under its own name: the package's __init__ is not
# run (pymasep's own __init__, around ours, imports pygame and opencv: most of a second),
# and the module is still the package's (coverage, tracebacks).
_RUN_WRITER = (
    "import importlib.util as u, sys;"
    "s = u.spec_from_file_location('pymasep.comm.core._recordwriter', sys.argv[1]);"
    "m = u.module_from_spec(s); s.loader.exec_module(m); sys.exit(m.main(sys.argv[2:]))"
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
        max_pending_bytes: Bytes of events that may wait for the writer (see the module
            docstring).

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
            # A process of its own formats and writes (see _recordwriter): not a new
            # session's leader for nothing: Ctrl-C in a terminal must not stop it before
            # the game's last records reach it.
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
                start_new_session=True,
            )
        finally:
            os.close(fd)
        if hasattr(fcntl, "F_SETPIPE_SZ"):
            # A larger pipe: the writer thread blocks (and takes the GIL back) less often.
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._process.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)  # type: ignore[union-attr]
        self._pending: deque[tuple[Any, ...]] = deque()
        self._pending_bytes = 0  # of the events queued or being handed over
        self._lock = threading.Lock()  # the queue and its byte count
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._closed = False
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
        self._pending.append(("header", header))
        self._writer = threading.Thread(
            target=self._write_loop, name=f"pymasep-comm-recorder-{ident}", daemon=True
        )
        self._writer.start()
        _live.add(self)

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, {self.side!r}, {self.ident!r})"

    # -- the tap: called by the connections' threads ------------------------------------

    def _put(self, event: tuple[Any, ...], size: int = 0) -> None:
        with self._lock:
            if self._closed or self.error is not None:
                self.dropped += 1
                return
            self._pending.append(event)
            self._pending_bytes += size + _EVENT_COST
            full = self._pending_bytes > self.max_pending_bytes
        if full:
            self._wait_for_room()

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
        # Once per frame: _put inlined.
        with self._lock:
            if self._closed or self.error is not None:
                self.dropped += 1
                return
            self._pending.append(("sent", peer_id, monotonic, wall, payload, size))
            self._pending_bytes += len(payload) + _EVENT_COST
            full = self._pending_bytes > self.max_pending_bytes
        if full:
            self._wait_for_room()

    def frame_received(
        self, peer_id: str, payload: bytes, size: int, monotonic: float, wall: float
    ) -> None:
        """Record a frame received (see :meth:`~pymasep.comm.core.tap.Tap.frame_received`)."""
        # Once per frame: _put inlined.
        with self._lock:
            if self._closed or self.error is not None:
                self.dropped += 1
                return
            self._pending.append(("received", peer_id, monotonic, wall, payload, size))
            self._pending_bytes += len(payload) + _EVENT_COST
            full = self._pending_bytes > self.max_pending_bytes
        if full:
            self._wait_for_room()

    def bye(self, peer_id: str, direction: Direction, monotonic: float, wall: float) -> None:
        """Record a bye (see :meth:`~pymasep.comm.core.tap.Tap.bye`)."""
        self._put(("bye", peer_id, monotonic, wall, direction))

    def closed(self, peer_id: str, reason: DisconnectReason, monotonic: float, wall: float) -> None:
        """Record a connection's end (see :meth:`~pymasep.comm.core.tap.Tap.closed`)."""
        self._put(
            ("closed", peer_id, monotonic, wall, str(reason), reason.code.name, reason.graceful)
        )

    def resumed(self, peer_id: str, monotonic: float, wall: float) -> None:
        """Record a connection resumed (reserved: nothing resumes connections yet)."""
        self._put(("resumed", peer_id, monotonic, wall))

    # -- the writer thread ---------------------------------------------------------------

    def _write_loop(self) -> None:
        pipe = self._process.stdin
        assert pipe is not None
        self._wake.set()  # the header goes out at once
        while True:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            closing = self._closed
            with self._lock:
                batch, self._pending = self._pending, deque()
                handing = self._pending_bytes  # still counted until handed over
            count = len(batch)
            if count and self.error is None:
                data = marshal.dumps(list(batch))
                try:
                    _write_all(pipe.fileno(), _LENGTH.pack(len(data)) + data)
                except (OSError, ValueError) as error:  # ValueError: marshal, a bug
                    self._fail(str(error))
                    self.dropped += count - (batch[0][0] == "header")
                else:
                    self._handed += count - (batch[0][0] == "header")
            elif count:  # queued before the recorder stopped
                self.dropped += count - (batch[0][0] == "header")
            with self._lock:
                self._pending_bytes -= handing
            if handing:
                with self._room:
                    self._room.notify_all()
            if closing and not self._pending:
                break
        with contextlib.suppress(OSError):
            pipe.close()
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
            self.dropped += len(self._pending)
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
