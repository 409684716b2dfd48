"""Raw-socket peers and recording handlers that the tests of the three distributions (and
the integration tests) share.

Everything here needs pymasep-comm-core and the standard library, nothing else of
pymasep-comm: the server's tests and the client's each run with only their distribution
(and core) installed. The fixtures that go with these helpers are in :mod:`.plugin`.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pymasep.comm.core import (
    BaseThreadedCommunication,
    ConnectionClosedError,
    Frame,
    FrameDecoder,
    FrameKind,
    SocketHandler,
    SocketHandlerQueue,
    Wire,
    encode_frame,
)
from pymasep.comm.core.handshake import ClientHandshake, ServerHandshake
from pymasep.comm.core.wire import encode_header

LOOPBACK = "127.0.0.1"

Join = Callable[..., Any]


# --- raw peers -----------------------------------------------------------------------------


class RawPeer:
    """The far end of a connection, played with plain ``send``/``recv`` and core's codec.

    Args:
        sock: The socket.
        wire: The wire the connection speaks.
        decoder: The decoder to carry on with (after a handshake); a new one by default.
        pending: Frames already decoded (those that came with the handshake).
        timeout: The socket's timeout in seconds; None leaves it as it is.
        recv_size: How many bytes :meth:`recv_frame` asks ``recv`` for, by default.
    """

    def __init__(
        self,
        sock: socket.socket,
        wire: Wire = Wire.V1,
        decoder: FrameDecoder | None = None,
        pending: Iterable[Frame] = (),
        *,
        timeout: float | None = 20,
        recv_size: int = 256 * 1024,
    ) -> None:
        self.sock = sock
        if timeout is not None:
            self.sock.settimeout(timeout)
        self.wire = wire
        self.decoder = decoder if decoder is not None else FrameDecoder(wire)
        self.frames: deque[Frame] = deque(pending)
        self.recv_size = recv_size
        self.client_ident: str | None = None  # the id a client said in its hello, if any

    def send(self, payload: bytes) -> None:
        self.sock.sendall(encode_frame(Frame(payload), self.wire))

    def send_bye(self) -> None:
        self.sock.sendall(encode_frame(Frame.bye_frame(), self.wire))

    def recv_frame(self, size: int | None = None) -> Frame | None:
        """The next frame of any kind, or None at the end of the stream."""
        while not self.frames:
            data = self.sock.recv(size or self.recv_size)
            if not data:
                return None
            self.frames.extend(self.decoder.feed(data))
        return self.frames.popleft()

    def recv_data(self) -> bytes:
        frame = self.recv_frame()
        assert frame is not None, "the connection ended"
        assert frame.kind is FrameKind.DATA, frame
        return frame.message

    def until_eof(self) -> list[Frame]:
        frames = []
        while (frame := self.recv_frame()) is not None:
            frames.append(frame)
        return frames

    def leave(self) -> None:
        """Say bye, wait for the other side to close, close."""
        self.send_bye()
        self.until_eof()
        self.sock.close()


class RawClient(RawPeer):
    """A client made of a socket and core's ClientHandshake, nothing of the server side;
    with ``authkey``, it proves it holds the key (and checks that the server does)."""

    def __init__(
        self, port: int | None, ident: str, *, timeout: float = 10, authkey: bytes | None = None
    ) -> None:
        assert port is not None, "the server has no port yet"
        sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self.handshake = ClientHandshake(ident, authkey=authkey)
        try:
            sock.sendall(self.handshake.bytes_to_send())
            while not self.handshake.receive_data(self._recv(sock)):
                sock.sendall(self.handshake.data_to_send())
        except BaseException:
            sock.close()
            raise
        assert self.handshake.wire is not None and self.handshake.decoder is not None
        super().__init__(
            sock,
            self.handshake.wire,
            self.handshake.decoder,
            self.handshake.pending_frames,
            timeout=None,
        )

    @staticmethod
    def _recv(sock: socket.socket) -> bytes:
        data = sock.recv(65536)
        if not data:
            raise ConnectionClosedError("the server closed during the handshake")
        return data


def legacy_frame(payload: bytes) -> bytes:
    """pymasep 0.2's framing, written out by hand: 2-byte little-endian length, payload."""
    return len(payload).to_bytes(2, "little") + payload


def read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, f"the stream ended after {len(data)} of {count} bytes"
        data += chunk
    return data


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything until the other side closes (a reset counts as a close)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


# --- streams that test the framing -------------------------------------------------------


def numbered_frames(total: int, size: int, batch: int = 256) -> Iterator[bytes]:
    """Data frames #0..#total-1 of ``size`` bytes (the number in the first four bytes, for
    :class:`Sequencer`), encoded for the v1 wire, ``batch`` frames per blob."""
    filler = bytes(range(256)) * (size // 256 + 1)
    header = encode_header(FrameKind.DATA, size, Wire.V1)
    for first in range(0, total, batch):
        yield b"".join(
            header + struct.pack("!I", n) + filler[: size - 4]
            for n in range(first, min(first + batch, total))
        )


FRAGMENT_SIZES = (1, 2, 3, 4, 5, 6, 7, 1023, 1029, 1031, 4096, 9000, 65537, 200_003)


def send_fragmented(
    sock: socket.socket,
    blobs: Iterable[bytes],
    seed: int,
    sizes: Iterable[int] = FRAGMENT_SIZES,
) -> None:
    """Send the blobs cut at sizes drawn from ``sizes``, so that the far end's reads end
    anywhere: in headers, in payloads."""
    rng = random.Random(seed)
    choices = list(sizes)
    for blob in blobs:
        view = memoryview(blob)
        while view:
            cut = rng.choice(choices)
            sock.sendall(view[:cut])
            view = view[cut:]


def tagged(sender: int, index: int, count: int) -> bytes:
    """The payload ``index`` of ``sender``: their 8-byte tag, ``count`` times over."""
    return struct.pack("!II", sender, index) * count


def assert_never_interleaved(payloads: Iterable[bytes], senders: int, per_sender: int) -> None:
    """Each :func:`tagged` payload arrived whole, each sender's in order, all of them."""
    last = dict.fromkeys(range(senders), -1)
    for payload in payloads:
        head = payload[:8]
        assert payload == head * (len(payload) // 8), "a frame was mixed with another"
        sender, index = struct.unpack("!II", head)
        assert index == last[sender] + 1, "a sender's frames arrived out of order"
        last[sender] = index
    assert last == dict.fromkeys(range(senders), per_sender - 1)


# --- threads -------------------------------------------------------------------------------


def in_thread(target: Callable[..., Any], *args: Any) -> Join:
    """Start ``target(*args)``; the returned ``join(timeout=30)`` joins it, then returns
    or raises what it did."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(target(*args))
        except BaseException as error:  # re-raised by the test through join()
            result.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join(timeout: float = 30) -> Any:
        thread.join(timeout)
        assert result, "the helper thread did not finish in time"
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]

    return join


def serve_one_client(
    listener: socket.socket,
    handshake: ServerHandshake,
    *frames: Frame,
    ssl_context: ssl.SSLContext | None = None,
) -> Join:
    """Play a pymasep-comm server for one client, in a thread: accept it on ``listener``
    (over TLS with ``ssl_context``), carry ``handshake`` to its end, send the acceptance
    and ``frames`` in one write, then wait for the client's bye and close."""

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(10)
        sock = conn if ssl_context is None else ssl_context.wrap_socket(conn, server_side=True)
        with sock:
            while not handshake.receive_data(sock.recv(65536)):
                sock.sendall(handshake.data_to_send())
            sock.sendall(handshake.accept_bytes() + b"".join(map(encode_frame, frames)))
            sock.recv(65536)  # the client's bye

    return in_thread(serve)


def answer_the_bye(peer: RawPeer) -> Join:
    """Read in a thread until the other side closes, then close, as a real peer does."""

    def run() -> list[Frame]:
        frames = peer.until_eof()
        peer.sock.close()
        return frames

    return in_thread(run)


def descriptors() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def assert_settles(threads: int, fds: int, seconds: float = 5) -> None:
    """Wait up to ``seconds`` for the threads and descriptors to fall back to at most
    ``threads`` and ``fds``; fail if they do not."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (
        len(threading.enumerate()) > threads or descriptors() > fds
    ):
        time.sleep(0.01)
    assert len(threading.enumerate()) <= threads
    assert descriptors() <= fds


def wait_registered(
    communication: BaseThreadedCommunication, ident: str, present: bool = True
) -> None:
    """Wait until ``communication`` (a Server, a Client) lists ``ident`` (or, with
    ``present=False``, no longer does); fail after 5 s.

    The server answers the hello, then registers the connection: a client can finish its
    handshake a moment before the server lists it. Likewise a client sees the end of a
    connection a moment before the server unregisters it.
    """
    listed = communication.wait_for_peer(ident, 5, connected=present)
    assert listed, f"{ident} registered: {not present}, still"


# --- communications and handlers that record ----------------------------------------------


class RecordsDisconnects:
    """Mixed in before a BaseThreadedCommunication (a Server, a Client): queues each
    ``on_disconnect(ident, reason)`` in :attr:`ended`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ended: queue.Queue[tuple[str, str]] = queue.Queue()

    def on_disconnect(self, ident: str, reason: str) -> None:
        self.ended.put((ident, reason))


class Recorder(SocketHandlerQueue):
    """Queues the payloads it receives and each ``on_disconnect`` reason."""

    def __init__(
        self,
        conn: socket.socket,
        addr: Any,
        logger: logging.Logger,
        inbox: queue.Queue[bytes],
        ended: queue.Queue[Any],
    ) -> None:
        super().__init__(conn, addr, logger, inbox)
        self.ended = ended

    def on_disconnect(self, reason: str) -> None:
        self.ended.put(reason)


class PeerRecorder(Recorder):
    """A :class:`Recorder` that queues ``(peer_id, reason)`` (for a server's handlers)."""

    def on_disconnect(self, reason: str) -> None:
        self.ended.put((self.peer_id, reason))


class Echo(SocketHandler):
    def on_receive(self, frame: Frame) -> None:
        self.send_frame_async(frame)


class Sequencer(SocketHandler):
    """Checks that ``total`` frames of ``size`` bytes carry 0, 1, 2, ... in their first four
    bytes; sets ``done`` after the last."""

    def __init__(
        self,
        conn: socket.socket,
        addr: Any,
        logger: logging.Logger,
        total: int,
        size: int,
        done: threading.Event,
    ) -> None:
        super().__init__(conn, addr, logger)
        self.total, self.size, self.done = total, size, done
        self.expected = 0
        self.faults: list[str] = []

    def on_receive(self, frame: Frame) -> None:
        (number,) = struct.unpack_from("!I", frame.message)
        if number != self.expected or frame.size != self.size:
            self.faults.append(f"got #{number} ({frame.size} bytes), expected #{self.expected}")
        self.expected = number + 1
        if self.expected == self.total:
            self.done.set()
