"""A TCP relay on loopback that a test can cut: :class:`CuttableProxy`.

A client connects to the proxy, which connects to the real server and relays bytes both
ways. :meth:`CuttableProxy.cut` resets every relayed connection at once, both sides
(``SO_LINGER`` 0, then close: each peer's kernel sees an RST, as when a NAT or a
firewall drops a flow); :meth:`CuttableProxy.refuse` makes new connections fail the same
way until it is turned off, as a network that is down does. The tests of resuming use it
where a network namespace is not needed: it talks to loopback only.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading

__all__ = ["CuttableProxy"]

_LINGER_RESET = struct.pack("ii", 1, 0)
_READ_SIZE = 256 * 1024


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` so that its peer sees a reset, not an end of stream."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


class CuttableProxy(contextlib.AbstractContextManager["CuttableProxy"]):
    """Relays loopback connections to ``target`` until told to cut them.

    Use it as a context manager; :attr:`port` is where clients connect.

    Args:
        target: The real server's ``(host, port)`` (a loopback address).
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        """The port clients connect to."""
        self.connections = 0
        """Connections accepted and relayed so far."""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._refusing = False
        self._requests: list[tuple[str, threading.Event]] = []  # "cut" or "stop"
        self._stop = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name="cuttable-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Reset every connection relayed now (both sides see an RST); returns once
        they are closed."""
        self._ask("cut")

    def refuse(self, refusing: bool = True) -> None:
        """While ``refusing``, reset every new connection as soon as it is accepted."""
        with self._lock:
            self._refusing = refusing

    def close(self) -> None:
        """Cut everything and stop relaying."""
        if self._thread.is_alive():
            self._ask("stop")
        self._thread.join(5)

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _ask(self, request: str) -> None:
        done = threading.Event()
        with self._lock:
            self._requests.append((request, done))
        self._wake_w.send(b"x")
        done.wait(5)

    def _run(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._wake_r:
                    self._wake_r.recv(64)
                    self._serve_request()
                elif sock is self._listener:
                    self._accept()
                else:
                    self._relay(sock)
        self._cut_all()
        self._selector.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def _serve_request(self) -> None:
        with self._lock:
            requests, self._requests = self._requests, []
        for request, done in requests:
            if request == "stop":
                self._stop = True
            self._cut_all()
            done.set()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        with self._lock:
            refusing = self._refusing
        if refusing:
            _reset(client)
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        self.connections += 1
        for sock in (client, server):
            sock.settimeout(10)  # a relay that cannot write for that long cuts the pair
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._selector.register(sock, selectors.EVENT_READ)
        self._peers[client], self._peers[server] = server, client

    def _relay(self, sock: socket.socket) -> None:
        other = self._peers.get(sock)
        if other is None:
            return
        try:
            data = sock.recv(_READ_SIZE)
            if data:
                other.sendall(data)
                return
            # An end of stream is relayed as one: the other side may still send.
            other.shutdown(socket.SHUT_WR)
            self._selector.unregister(sock)
        except OSError:
            self._cut_pair(sock)

    def _cut_pair(self, sock: socket.socket) -> None:
        other = self._peers.pop(sock, None)
        for each in (sock, other):
            if each is None:
                continue
            self._peers.pop(each, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(each)
            _reset(each)

    def _cut_all(self) -> None:
        for sock in list(self._peers):
            if sock in self._peers:
                self._cut_pair(sock)
