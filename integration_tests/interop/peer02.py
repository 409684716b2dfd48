"""A pymasep 0.2 program, driven by the interop tests over its stdin and stdout.

Run by the interpreter of a virtualenv that holds pymasep 0.2 (never ours: the two
``pymasep`` packages cannot share one environment), with its working directory in a
temporary folder, since 0.2 writes ``logs/`` there::

    peer02.py server [--host H] [--announce]
    peer02.py client --id ID (--host H --port P | --search)

It prints one JSON object per line (events) and reads one JSON object per line (orders):

* events: ``ready`` (``port`` of a server), ``search`` (what ``search_server()`` found),
  ``connected`` (``server_id``), ``clients`` (ids registered by a server), ``frame``
  (each frame received: ``b64``, and ``message`` as 0.2 decodes it, described by
  :func:`cases.describe`, or ``error``), ``sent`` / ``failed`` (an order's outcome),
  ``handler_ended`` (``reason``: ``bye`` or ``eof``);
* orders: ``send`` (raw ``b64``), ``send_case`` (a Message whose parameters are
  ``cases.ALL_CASES[case]``), ``bye``, ``wait_clients`` (``count``, ``timeout``),
  ``exit``.

Only pymasep 0.2's own API is used, as a 0.2 application would. The process ends on
``exit``, on the end of stdin, or after ``--lifetime`` seconds, whatever 0.2's threads
(never daemons) are doing.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sys
import threading
import time
import traceback
from typing import Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import cases

from pymasep.communication import Client, Frame, Message, Server, SocketHandler

_print_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()


def decode(payload: bytes) -> dict[str, Any]:
    """What pymasep 0.2 makes of a frame, as a Message."""
    try:
        message = Message(None, None, None)
        message.from_bytes(payload)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    return {
        "message": {
            "msg_type": message.msg_type,
            "src": message.src_sub_app_id,
            "params": cases.describe(message.params),
        }
    }


class _EndOfStreamError(Exception):
    pass


class PeerHandler(SocketHandler):
    """0.2's SocketHandler, reporting each frame and the end of its thread."""

    def on_receive(self, frame: Frame) -> None:
        if frame.message == b"" and self._peer_closed():
            # 0.2 reads a closed connection as endless empty frames (a busy loop):
            # report it once and end this thread instead.
            raise _EndOfStreamError
        emit(
            "frame",
            size=frame.size,
            b64=base64.b64encode(frame.message).decode("ascii"),
            **decode(frame.message),
        )

    def _peer_closed(self) -> bool:
        try:
            return self.socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def run(self) -> None:
        try:
            super().run()
        except _EndOfStreamError:
            emit("handler_ended", reason="eof")
        except Exception as error:
            emit("handler_ended", reason=f"error: {type(error).__name__}: {error}")
        else:
            emit("handler_ended", reason="bye")


def _only_connection(node: Any) -> str:
    # A 0.2 server sends its hello before it registers the client: our client may be
    # connected a moment before the 0.2 side knows it. Wait for it, within a deadline.
    deadline = time.monotonic() + 5
    while not node._current_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    ids = list(node._current_connections)
    if len(ids) != 1:
        raise RuntimeError(f"expected one connection, have {ids}")
    return ids[0]


def _wait_clients(server: Any, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(server._current_connections) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    emit("clients", ids=sorted(server._current_connections))


def serve_orders(node: Any) -> None:
    """Carry out the orders read from stdin until ``exit`` or the end of stdin."""
    for line in sys.stdin:
        if not line.strip():
            continue
        order = json.loads(line)
        op = order["op"]
        try:
            if op == "exit":
                break
            if op == "wait_clients":
                _wait_clients(node, order["count"], order.get("timeout", 10.0))
                continue
            target = order.get("to") or _only_connection(node)
            if op == "send":
                frame = Frame(base64.b64decode(order["b64"]))
            elif op == "send_case":
                params = cases.ALL_CASES[order["case"]]
                message = Message(order.get("msg_type", cases.MSG_TYPE), params, cases.SRC)
                frame = Frame(message.to_bytes())
            elif op == "bye":
                frame = Frame.bye_frame()
            else:
                raise ValueError(f"unknown order {op!r}")
            node.send_frame_to(target, frame)
            emit("sent", op=op, case=order.get("case"), size=frame.size)
        except Exception as error:
            emit("failed", op=op, case=order.get("case"), error=f"{type(error).__name__}: {error}")


def run_server(args: argparse.Namespace) -> Any:
    server = Server(
        ident=args.id,
        max_connection=8,
        socket_handler_class=PeerHandler,
        socket_handler_args=(),
        host=args.host,
        port=0,
        wait_announcement=args.announce,
    )
    # 0.2 binds port 0 but keeps 0 as its port (and would announce it): fix that.
    server.port = server.socket.getsockname()[1]
    server.wait_connection()
    if args.announce:
        server.wait_announcement()
    emit("ready", role="server", id=args.id, port=server.port)
    return server


def run_client(args: argparse.Namespace) -> Any:
    client = Client(
        ident=args.id,
        socket_handler_class=PeerHandler,
        socket_handler_args=(),
        host=args.host,
        port=args.port,
    )
    if args.search:
        client.search_server()  # 0.2 logs failures and returns; host stays None
        emit("search", host=client.host, port=client.port)
        if client.host is None:
            return client
    client.connect()
    emit("connected", server_id=client.server_id)
    return client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("--id", default="peer02")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--announce", action="store_true")
    parser.add_argument("--search", action="store_true")
    parser.add_argument("--lifetime", type=float, default=120.0)
    args = parser.parse_args()
    if args.role == "server" and args.host is None:
        args.host = "127.0.0.1"
    # A peer never outlives its test, whatever 0.2's non-daemon threads do.
    watchdog = threading.Timer(args.lifetime, lambda: os._exit(3))
    watchdog.daemon = True
    watchdog.start()
    code = 0
    try:
        node = run_server(args) if args.role == "server" else run_client(args)
        serve_orders(node)
    except Exception:
        traceback.print_exc()
        emit("crashed", error=traceback.format_exc(limit=3))
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
