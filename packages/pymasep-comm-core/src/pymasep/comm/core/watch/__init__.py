"""Watch a recording in the browser: ``python -m pymasep.comm.core watch PATH``.

:class:`WatchServer` serves one page on 127.0.0.1 (by default) for a recording, or for
every recording in a directory (new ones appear as they are made). The page shows the
connections, each connection's frames and bytes over time as a chart, the message
timeline filtered by peer and type, any message's XML, and a step scrubber. It follows
a recording while it grows: a live game shows as it is played.

Built on the standard library alone: ``http.server`` for the page and its static
files, and server-sent events (``text/event-stream``) to push records as they are
written (a one-way stream is all the page needs, so no websocket library; the browser's
``EventSource`` reconnects by itself). The chart is uPlot, vendored as a static file
with its licence (no build step, nothing fetched from the network).

Routes: ``/`` (the page), ``/static/<file>``, ``/recordings`` (the recordings, as JSON)
and ``/events?name=<recording>`` (its header, then its records in batches, then new
ones as they come; an ``caught-up`` event marks the end of what was already written).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..exceptions import DecodeError
from ..recording import Recording

__all__ = ["POLL_INTERVAL", "WatchServer"]

POLL_INTERVAL = 0.2
"""Seconds between two looks at a recording that may grow."""
_SUFFIXES = (".jsonl", ".jsonl.gz")
_log = logging.getLogger("pymasep.comm.core.watch")


class WatchServer(ThreadingHTTPServer):
    """The page's HTTP server (a ``http.server.ThreadingHTTPServer``).

    Run ``serve_forever()`` (in a thread of its own if need be), then :meth:`shutdown`
    and ``server_close()``; or use it as a context manager.

    Args:
        path: A recording, or a directory of recordings (``*.jsonl``, ``*.jsonl.gz``).
        host: Address to listen on (loopback by default: the page shows every message).
        port: Port to listen on (0: any free port; :attr:`url` says which).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path} does not exist")
        self.stopping = threading.Event()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        """The page's address."""
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}/"

    def recordings(self) -> dict[str, Path]:
        """The recordings watched, by name (the file name), oldest first."""
        if self.path.is_file():
            return {self.path.name: self.path}
        files = [p for p in self.path.iterdir() if p.name.endswith(_SUFFIXES) and p.is_file()]
        files.sort(key=lambda p: (p.stat().st_mtime, p.name))
        return {p.name: p for p in files}

    def shutdown(self) -> None:
        """Stop serving; the event streams end too."""
        self.stopping.set()
        super().shutdown()


class _Handler(BaseHTTPRequestHandler):
    server: WatchServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path in ("/", "/index.html"):
            self._static("index.html")
        elif url.path.startswith("/static/"):
            self._static(url.path.removeprefix("/static/"))
        elif url.path == "/recordings":
            self._recordings()
        elif url.path == "/events":
            self._events(query.get("name", [""])[0])
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def _static(self, name: str) -> None:
        static = resources.files(__package__).joinpath("static")
        names = {entry.name for entry in static.iterdir()}
        if name not in names:  # only the files that are there: no path reaches further
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        self._send(static.joinpath(name).read_bytes(), content_type)

    def _recordings(self) -> None:
        listing = []
        for name, path in self.server.recordings().items():
            try:
                with Recording(path) as recording:
                    header = recording.header
            except (OSError, DecodeError):
                continue  # not a recording, or its header is not written yet
            listing.append({"name": name, "header": header})
        self._send(json.dumps(listing).encode(), "application/json")

    def _events(self, name: str) -> None:
        path = self.server.recordings().get(name)
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND, "no such recording")
            return
        try:
            recording = Recording(path)
        except (OSError, DecodeError) as error:
            self.send_error(HTTPStatus.UNPROCESSABLE_ENTITY, str(error))
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.close_connection = True
        caught_up = False
        idle = 0
        try:
            with recording:
                self._event("header", recording.header)
                while not self.server.stopping.is_set():
                    records = recording.follow()
                    if records:
                        batch = [{**r.fields, "step": r.step} for r in records]
                        self._event("records", batch)
                        continue
                    if not caught_up:
                        self._event("caught-up", {})
                        caught_up = True
                    else:
                        idle += 1
                        if idle % 25 == 0:  # a comment, every 5 s: finds a page that has gone
                            self.wfile.write(b": idle\n\n")
                            self.wfile.flush()
                    self.server.stopping.wait(POLL_INTERVAL)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page was closed

    def _event(self, kind: str, data: Any) -> None:
        payload = json.dumps(data, separators=(",", ":"))
        self.wfile.write(f"event: {kind}\ndata: {payload}\n\n".encode())
        self.wfile.flush()
