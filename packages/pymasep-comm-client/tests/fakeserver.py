"""A stand-in for a server's discovery side, written with raw sockets.

The client's tests cannot use pymasep-comm-server (they run with only the client and core
installed), so :class:`Responder` answers queries the way a pymasep-comm server or a
pymasep 0.2 server does. It only runs inside the tests' own network namespaces.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

from pymasep.comm.core.discovery import (
    DEFAULT_GROUP,
    DEFAULT_PORT,
    build_reply,
    query_format,
)

Replier = Callable[[bytes, tuple[str, int]], list[bytes]]
"""Given a datagram and its sender, the datagrams to send back."""


def v1_server(
    server_id: str,
    port: int,
    *,
    name: str | None = None,
    wires: tuple[str, ...] = ("v1", "legacy"),
    requires: tuple[str, ...] = (),
) -> Replier:
    """Answer like a pymasep-comm server whose address is the one the reply comes from."""

    def reply(datagram: bytes, peer: tuple[str, int]) -> list[bytes]:
        fmt = query_format(datagram)
        if fmt is None:
            return []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(peer)
            host = probe.getsockname()[0]
        return [
            build_reply(
                host,
                port,
                server_id=server_id,
                wire_versions=wires,
                name=name,
                fmt=fmt,
                requires=requires,
            )
        ]

    return reply


def pymasep_02_server(port: int) -> Replier:
    """Answer like pymasep 0.2: any datagram, with the *client's* address as host."""
    return lambda datagram, peer: [f"{peer[0]}:{port}".encode()]


def noisy(replier: Replier, noise: list[bytes]) -> Replier:
    """Send ``noise`` before each real reply."""
    return lambda datagram, peer: [*noise, *replier(datagram, peer)]


class Responder(threading.Thread):
    """Listen on the discovery group and port, answer with ``replier``.

    Attributes:
        queries: The datagrams received so far.
    """

    def __init__(
        self, replier: Replier, *, group: str = DEFAULT_GROUP, port: int = DEFAULT_PORT
    ) -> None:
        super().__init__(daemon=True)
        self.replier = replier
        self.queries: list[bytes] = []
        self._stop_event = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind(("", port))
        membership = socket.inet_aton(group) + socket.inet_aton("0.0.0.0")
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        # A short timeout bounds how long stop() waits: simple, and enough for a test.
        self.sock.settimeout(0.02)

    def run(self) -> None:
        with self.sock:
            while not self._stop_event.is_set():
                try:
                    datagram, peer = self.sock.recvfrom(65535)
                except TimeoutError:
                    continue
                self.queries.append(datagram)
                for reply in self.replier(datagram, peer):
                    self.sock.sendto(reply, peer)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(1.0)


@contextlib.contextmanager
def responding(*repliers: Replier) -> Iterator[list[Responder]]:
    """Run one :class:`Responder` per replier for the duration of a ``with`` block."""
    responders = [Responder(replier) for replier in repliers]
    for responder in responders:
        responder.start()
    try:
        yield responders
    finally:
        for responder in responders:
            responder.stop()
