"""Resuming a broken connection (issue 18), end to end, in network namespaces the tests make.

Each test runs a scenario in a fresh namespace holding only ``lo`` (``run_isolated``);
there, an engine (a :class:`Server`) and an interface (a :class:`Client`) run as two
processes of their own (:func:`peer`) and stream game-paced frames both ways, while the
scenario breaks their connection for real: ``ss -K`` (the kernel's SOCK_DESTROY, so the
client gets ``ECONNABORTED`` and the server ``ECONNRESET``), ``ip link set lo down``, a
killed and restarted engine, or a stranger who sends a resume request. Every frame must
arrive exactly once and in order on both sides, for as long as both processes live.

A peer prints one JSON object a line: its log records (``pymasep.comm``, INFO and up),
its ``on_disconnect`` reasons, its progress, and at the end its report; the scenario
waits on those lines, never on the clock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from pymasep.comm.core import Frame, FrameDecoder, FrameKind, SocketHandler
from pymasep.comm.core.resume import (
    ClientSession,
    RefusalReason,
    ResumeAccept,
    ResumeOffer,
    ResumeRefused,
    ResumeRequest,
    decode_resume,
    resume_frame,
)
from pymasep.comm.core.testing.netns import child_main, requires_netns, run_isolated
from pymasep.comm.core.wire import MAGIC, PREAMBLE

HERE = __file__
SERVER_ID = "engine"
CLIENT_ID = "interface"
FRAMES = 3000
"""Frames each side streams to the other."""
BURST = 10
PACE = 0.005
"""A burst of BURST frames every PACE seconds: 3000 frames take about 1.5 s."""
STREAM_SECONDS = 20.0
"""Most a stream may take, outages included (its loop is bounded in time too)."""
KILL_AT = 1000
"""Frames the engine has received from the interface when the scenario breaks things."""
KEY = b"resume test key"
RESUMED = "resumed the connection to"
WAIT = 15.0
"""Seconds a scenario waits for any one event at most."""


# -- the peers (each a process of its own, inside the namespace) -----------------------


def payload(sender: str, index: int) -> bytes:
    """Frame ``index`` of ``sender``'s stream: its number, then up to 299 bytes that
    depend on it, so that a frame lost, repeated, swapped or garbled shows."""
    return b"%s %d " % (sender.encode(), index) + bytes([index % 251]) * (index % 300)


_print_lock = threading.Lock()


def emit(**event: Any) -> None:
    with _print_lock:
        print(json.dumps(event), flush=True)


class Stream:
    """What one peer received of the other's stream, checked frame by frame."""

    def __init__(self, sender: str, total: int) -> None:
        self.sender = sender
        self.total = total
        self.received = 0
        self.faults: list[str] = []
        self.disconnects: list[tuple[str, str]] = []
        self.changed = threading.Condition()

    def receive(self, message: bytes) -> None:
        with self.changed:
            expected = payload(self.sender, self.received)
            if message != expected and len(self.faults) < 5:
                self.faults.append(f"frame #{self.received} is {message[:24]!r}")
            self.received += 1
            count = self.received
            self.changed.notify_all()
        if count % 500 == 0:
            emit(ev="received", n=count)

    def disconnected(self, code: str, reason: str) -> None:
        with self.changed:
            self.disconnects.append((code, reason))
            self.changed.notify_all()
        emit(ev="disconnect", code=code, reason=reason)

    def wait_all(self, deadline: float) -> None:
        with self.changed:
            self.changed.wait_for(
                # A fault is final: each frame after a lost one is wrong too.
                lambda: self.received >= self.total or bool(self.disconnects or self.faults),
                max(0.0, deadline - time.monotonic()),
            )


class Tally(SocketHandler):
    """Hands every frame to the peer's :class:`Stream`."""

    def __init__(self, conn: socket.socket, addr: Any, logger: Any, stream: Stream) -> None:
        super().__init__(conn, addr, logger)
        self.stream = stream

    def on_receive(self, frame: Frame) -> None:
        self.stream.receive(frame.message)

    def on_disconnect(self, reason: str) -> None:
        code = getattr(reason, "code", None)
        self.stream.disconnected(code.name if code is not None else "", str(reason))


class LogEvents(logging.Handler):
    """Prints each log record as an event line."""

    def emit(self, record: logging.LogRecord) -> None:
        emit(ev="log", level=record.levelname, msg=record.getMessage())


def _send_all(send: Callable[[Frame], None], me: str, total: int) -> tuple[int, str | None]:
    """Stream ``total`` frames, a burst at a time; stop at the first error. Return how
    many were sent and the error's class name, if any."""
    deadline = time.monotonic() + STREAM_SECONDS
    for index in range(total):
        if time.monotonic() > deadline:
            return index, "deadline"
        try:
            send(Frame(payload(me, index)))
        except Exception as error:  # what a game would meet: reported, not hidden
            return index, type(error).__name__
        if index % BURST == BURST - 1:
            time.sleep(PACE)  # the game's pace, not a synchronisation
    return total, None


def peer(role: str, options: str) -> dict[str, Any]:
    """A peer: ``role`` "server" or "client"; ``options`` JSON: port, window, key (hex
    or null), frames. Streams to the other side once connected, reports, and closes
    when its stdin ends."""
    from pymasep.comm.client import Client
    from pymasep.comm.server import Server

    config = json.loads(options)
    logging.getLogger("pymasep.comm").addHandler(LogEvents())
    key = bytes.fromhex(config["key"]) if config.get("key") else None
    me, other = (SERVER_ID, CLIENT_ID) if role == "server" else (CLIENT_ID, SERVER_ID)
    stream = Stream(other, config["frames"])
    window = config["window"]
    comm: Server | Client
    if role == "server":
        comm = Server(
            SERVER_ID, 4, Tally, (stream,), "127.0.0.1", config["port"],
            log_level="INFO", resume_window=window, authkey=key,
        )  # fmt: skip
        comm.wait_connection()
        emit(ev="ready", port=comm.port)
        if not comm.wait_for_peer(CLIENT_ID, WAIT):
            raise AssertionError("the interface never connected")
        resume = comm.get_connection(CLIENT_ID).connection.resume
        emit(ev="session", id=None if resume is None else resume.session_id.hex())
    else:
        comm = Client(
            CLIENT_ID, Tally, (stream,), "127.0.0.1", config["port"],
            log_level="INFO", resume_window=window, authkey=key,
        )  # fmt: skip
        comm.connect(timeout=5)
        emit(ev="connected")
    handler = comm.get_connection(other)
    sent, error = _send_all(lambda frame: comm.send_frame_to(other, frame), me, config["frames"])
    stream.wait_all(time.monotonic() + STREAM_SECONDS)
    after: str | None = None
    if stream.disconnects:  # the session ended: what does a game's next send meet?
        try:
            comm.send_frame_to(other, Frame(b"late"))
        except Exception as late:
            after = type(late).__name__
    report = {
        "sent": sent,
        "send_error": error,
        "send_after_end": after,
        "received": stream.received,
        "faults": stream.faults,
        "resumes": handler.stats.resumes,
        "connected": comm.connection_ids(),
    }
    emit(ev="done", **report)
    sys.stdin.read()  # until the scenario closes it
    comm.close()
    handler.join(WAIT)  # its on_disconnect has run
    return {**report, "disconnects": stream.disconnects}


# -- the scenario's side ---------------------------------------------------------------


class Peer:
    """A peer process, its event lines collected as they come."""

    def __init__(self, role: str, **options: Any) -> None:
        config = {"port": 0, "window": 30.0, "key": None, "frames": FRAMES, **options}
        command = [sys.executable, HERE, "peer", role, json.dumps(config)]
        self.role = role
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._news: queue.Queue[None] = queue.Queue()
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=target, daemon=True)
            for target in (self._read_events, self._read_stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _read_events(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"ev": "text", "text": line}
            if not isinstance(event, dict):
                event = {"ev": "text", "text": line}
            with self._lock:
                self.events.append(event)
            self._news.put(None)
        self._news.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def find(self, test: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._lock:
            return [event for event in self.events if test(event)]

    def wait(
        self, test: Callable[[dict[str, Any]], bool], what: str, count: int = 1
    ) -> dict[str, Any]:
        """The ``count``-th event that passes ``test``, waiting up to WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while True:
            found = self.find(test)
            if len(found) >= count:
                return found[count - 1]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (not self._readers[0].is_alive() and self._news.empty()):
                tail = "".join(self.stderr[-30:])
                raise AssertionError(f"{self.role}: no {what} within {WAIT} s\n{tail}")
            with contextlib.suppress(queue.Empty):
                self._news.get(timeout=remaining)

    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        return self.wait(
            lambda e: e.get("ev") == name and all(e.get(k) == v for k, v in fields.items()),
            f"{name} {fields or ''}",
        )

    def logged(self, pattern: str, count: int = 1) -> dict[str, Any]:
        """The ``count``-th log line that matches ``pattern``, waiting for it."""
        return self.wait(
            lambda e: e.get("ev") == "log" and re.search(pattern, e["msg"]) is not None,
            f"log line {pattern!r} (number {count})",
            count,
        )

    def logs(self) -> list[str]:
        return [f"{e['level']} {e['msg']}" for e in self.find(lambda e: e.get("ev") == "log")]

    def finish(self) -> dict[str, Any]:
        """Close its stdin (it closes, then reports); return its report and logs."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.role} did not end\n{''.join(self.stderr[-30:])}") from None
        for reader in self._readers:
            reader.join(WAIT)
        final = self.find(lambda e: "disconnects" in e)
        if self.process.returncode != 0 or not final:
            raise AssertionError(
                f"{self.role} exited with {self.process.returncode}\n{''.join(self.stderr)}"
            )
        return {**final[-1], "logs": self.logs()}

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(WAIT)


def ss_kill(port: int, *both: str) -> int:
    """``ss -K`` the client's end of the connections to ``port`` (with ``both``, the
    server's too); return how many established sockets it destroyed."""
    where = ["dst", "127.0.0.1", "dport", "=", str(port)]
    if both:
        where = [f"( dport = :{port} or sport = :{port} )"]
    done = subprocess.run(["ss", "-K", *where], capture_output=True, text=True, timeout=10)
    return sum(1 for line in done.stdout.splitlines() if "ESTAB" in line)


def ip_link(state: str) -> None:
    subprocess.run(["ip", "link", "set", "lo", state], check=True, timeout=10)


def start_pair(**options: Any) -> tuple[Peer, Peer, int]:
    """An engine and an interface streaming to each other; return them and the port."""
    server = Peer("server", **options)
    port = server.event("ready")["port"]
    client = Peer("client", port=port, **options)
    client.event("connected")
    return server, client, port


def finish_pair(server: Peer, client: Peer) -> dict[str, Any]:
    """Wait until both streams are over, then close the interface, then the engine."""
    server.event("done")
    client.event("done")
    return {"client": client.finish(), "server": server.finish()}


def kill_mid_stream(server: Peer, port: int) -> int:
    server.event("received", n=KILL_AT)
    return ss_kill(port)


def scenario_ss_kill(times: str) -> dict[str, Any]:
    """``ss -K`` mid-stream, ``times`` times; each kill the moment the previous one has
    resumed (the second hits a connection that has just resumed)."""
    server, client, port = start_pair()
    try:
        killed = [kill_mid_stream(server, port)]
        for count in range(2, int(times) + 1):
            client.logged(RESUMED)
            killed.append(ss_kill(port))
            client.logged(RESUMED, count)
        return {"killed": killed, **finish_pair(server, client)}
    finally:
        server.kill()
        client.kill()


BLACKOUT = 3.0
"""Seconds the link stays down: reconnecting fails that long (the scenario itself)."""


def scenario_blackout() -> dict[str, Any]:
    """The link goes down, ``ss -K`` kills the connection, the client's reconnections
    fail for BLACKOUT seconds, then the link comes back."""
    server, client, port = start_pair()
    try:
        server.event("received", n=KILL_AT)
        ip_link("down")
        killed = ss_kill(port)
        down_at = time.monotonic()
        client.logged("broke")
        # The scenario: the network is gone for a while, whatever the peers do.
        time.sleep(BLACKOUT)
        resumed_during_blackout = bool(client.find(lambda e: RESUMED in e.get("msg", "")))
        ip_link("up")
        client.logged(RESUMED)
        outage = time.monotonic() - down_at
        return {
            "killed": killed,
            "outage": outage,
            "resumed_during_blackout": resumed_during_blackout,
            **finish_pair(server, client),
        }
    finally:
        ip_link("up")
        server.kill()
        client.kill()


def _raw_resume(port: int, request: ResumeRequest | bytes) -> tuple[bytes, str]:
    """Send ``MAGIC 02`` + a resume request from a socket of our own; return what the
    server answered until it closed, and our address as the server's log shows it."""
    frame = request if isinstance(request, bytes) else resume_frame(request)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        address = str(sock.getsockname())
        sock.sendall(MAGIC + b"\x02" + frame)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer, address


def refusal(reason: RefusalReason) -> bytes:
    """The whole answer of a server refusing a resume."""
    return MAGIC + b"\x02" + resume_frame(ResumeRefused(reason))


def scenario_window_passes() -> dict[str, Any]:
    """resume_window=1 on both sides; the link goes down and both ends are killed; it
    stays down past the window; then a resume of that session is tried anyway."""
    server, client, port = start_pair(window=1.0)
    try:
        session = server.event("session")["id"]
        server.event("received", n=KILL_AT)
        ip_link("down")
        killed = ss_kill(port, "both")
        ended = {
            "client": client.event("disconnect"),
            "server": server.event("disconnect"),
        }
        ip_link("up")
        late = ResumeRequest(bytes.fromhex(session), 1, os.urandom(32), 0, os.urandom(32))
        answer, address = _raw_resume(port, late)
        server.logged("refusing the resume from")
        return {
            "killed": killed,
            "ended": ended,
            "late_answer": answer.hex(),
            "late_address": address,
            **finish_pair(server, client),
        }
    finally:
        ip_link("up")
        server.kill()
        client.kill()


def scenario_server_restarted() -> dict[str, Any]:
    """The network goes down and ``ss -K`` breaks the connection; meanwhile the engine's
    process is killed and a new one listens on the same port; the network comes back:
    the new engine does not know the session. (Killed while connected, the engine's
    kernel would close or reset the connection, which may or may not resume.)"""
    first, client, port = start_pair()
    second = None
    try:
        first.event("received", n=KILL_AT)
        ip_link("down")
        ss_kill(port)
        client.logged("broke")
        first.kill()
        second = Peer("server", port=port)
        second.event("ready")
        ip_link("up")
        ended = client.event("disconnect")
        second.logged("refusing the resume from")
        client.event("done")
        client_report = client.finish()
        # The interface is gone: the new engine never saw a session start.
        second_logs = second.logs()
        second.kill()
        return {"ended": ended, "client": client_report, "second_logs": second_logs}
    finally:
        ip_link("up")
        for process in (first, client, second):
            if process is not None:
                process.kill()


def scenario_hijack(keyed: str) -> dict[str, Any]:
    """Strangers send resume requests for the live session: with its real id and no
    secret; and, with a key, proven with the secret an eavesdropper derives from the
    handshake it saw, without the key. Then the real client resumes after ``ss -K``."""
    key = KEY.hex() if keyed == "key" else None
    sniffer = Sniffer()
    server = Peer("server", key=key)
    port = server.event("ready")["port"]
    sniffer.start(port)
    client = Peer("client", port=port, key=key)
    try:
        session = bytes.fromhex(server.event("session")["id"])
        client.event("connected")
        offer, accept = sniffer.negotiation()
        server.event("received", n=KILL_AT)
        attempts: dict[str, ResumeRequest | bytes] = {
            "no secret": ResumeRequest(session, 1, os.urandom(32), 0, os.urandom(32)),
            "zero proof": ResumeRequest(session, 1, bytes(32), 0, bytes(32)),
        }
        if key is not None:
            # Everything a passive eavesdropper saw: the nonces, the session id, the
            # ids. Without the key it derives the secret as a keyless session's.
            stolen = ClientSession.start(offer, accept, CLIENT_ID, SERVER_ID, None)
            attempts["secret without the key"] = stolen.request()
        answers = {}
        for name, request in attempts.items():
            answer, address = _raw_resume(port, request)
            answers[name] = {"answer": answer.hex(), "address": address}
        killed = ss_kill(port)
        client.logged(RESUMED)
        return {
            "session": session.hex(),
            "nonces": [offer.nonce.hex(), accept.nonce.hex()],
            "answers": answers,
            "killed": killed,
            **finish_pair(server, client),
        }
    finally:
        sniffer.stop()
        server.kill()
        client.kill()


class Sniffer:
    """Reads the handshake off ``lo`` (a packet socket, in the test's own namespace):
    the client's OFFER and the server's ACCEPT, as anyone on the path sees them."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.segments: dict[str, dict[int, bytes]] = {"up": {}, "down": {}}
        self.found: dict[str, Any] = {}
        self.client_port: int | None = None
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, port: int) -> None:
        self._thread = threading.Thread(target=self._run, args=(port,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sock.close()

    def _run(self, port: int) -> None:
        while not self._stop.is_set():
            try:
                packet, address = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if address[2] == socket.PACKET_OUTGOING:  # lo shows each packet twice
                continue
            ip = packet[14:]  # lo's link header: an Ethernet one, of zeros
            if len(ip) < 20 or ip[9] != socket.IPPROTO_TCP:
                continue
            total = struct.unpack("!H", ip[2:4])[0]
            tcp = ip[(ip[0] & 15) * 4 : total]
            source, destination, sequence = struct.unpack("!HHI", tcp[:8])
            data = tcp[(tcp[12] >> 4) * 4 :]
            if not data or port not in (source, destination):
                continue
            with self.changed:
                client = source if destination == port else destination
                if self.client_port is None:
                    self.client_port = client  # the first connection: the client's
                if client != self.client_port or len(self.found) == 2:
                    continue
                direction = "up" if destination == port else "down"
                self.segments[direction].setdefault(sequence, data)
                self._parse()
                self.changed.notify_all()

    def _parse(self) -> None:
        """Look for the OFFER in what the client sent, the ACCEPT in what the server
        sent (their first bytes, in sequence order)."""
        for direction, wanted in (("up", ResumeOffer), ("down", ResumeAccept)):
            if direction in self.found:
                continue
            stream = b"".join(data for _, data in sorted(self.segments[direction].items()))
            decoder = FrameDecoder()
            for frame in decoder.feed(stream[len(PREAMBLE) :]):
                if frame.kind is FrameKind.RESUME:
                    message = decode_resume(frame.message)
                    if isinstance(message, wanted):
                        self.found[direction] = message
                    break

    def negotiation(self) -> tuple[ResumeOffer, ResumeAccept]:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.found) == 2, WAIT):
                raise AssertionError("the handshake was not seen on lo")
            return self.found["up"], self.found["down"]


# -- the tests -------------------------------------------------------------------------


def assert_stream_whole(result: dict[str, Any], *, resumes: int) -> None:
    """Both sides sent and received every frame, once, in order, and resumed
    ``resumes`` times; each ended only when the interface closed."""
    for side in ("client", "server"):
        report = result[side]
        assert report["send_error"] is None, report
        assert (report["sent"], report["received"]) == (FRAMES, FRAMES), report
        assert report["faults"] == [], report
        assert report["resumes"] == resumes, report
    assert [code for code, _ in result["client"]["disconnects"]] == ["CLOSED_LOCALLY"]
    assert [code for code, _ in result["server"]["disconnects"]] == ["CLOSED_BY_PEER"]


def logged(report: dict[str, Any], pattern: str) -> list[str]:
    return [line for line in report["logs"] if re.search(pattern, line)]


@requires_netns
def test_ss_kill_mid_stream_resumes_and_every_frame_arrives_once_in_order() -> None:
    result = run_isolated(HERE, "scenario_ss_kill", "1", timeout=60)
    assert result["killed"] == [1]
    assert_stream_whole(result, resumes=1)
    client, server = result["client"], result["server"]
    assert logged(client, r"^WARNING the connection to engine broke .*may resume within 30 s")
    assert logged(server, r"^WARNING the connection to interface broke")
    assert logged(client, rf"^INFO {RESUMED} engine after \S+ s; \d+ frames sent again")
    assert logged(server, r"^INFO interface resumed from \('127\.0\.0\.1', \d+\)")
    # Nothing else went wrong: the break is the one warning of either side.
    assert [len(logged(side, "^WARNING")) for side in (client, server)] == [1, 1]


@requires_netns
def test_ss_kill_twice_in_a_row_resumes_twice() -> None:
    result = run_isolated(HERE, "scenario_ss_kill", "2", timeout=60)
    assert result["killed"] == [1, 1]
    assert_stream_whole(result, resumes=2)
    assert len(logged(result["client"], RESUMED)) == 2


@requires_netns
def test_a_blackout_longer_than_reconnecting_loses_nothing() -> None:
    result = run_isolated(HERE, "scenario_blackout", timeout=60)
    assert result["killed"] == 1
    assert not result["resumed_during_blackout"]
    assert result["outage"] >= BLACKOUT
    assert_stream_whole(result, resumes=1)
    (resumed,) = logged(result["client"], rf"{RESUMED} engine after (\S+) s")
    after = float(re.search(r"after (\S+) s", resumed)[1])  # type: ignore[index]
    assert after >= BLACKOUT, resumed


@requires_netns
def test_a_resume_after_the_window_is_refused_and_both_sides_are_told() -> None:
    result = run_isolated(HERE, "scenario_window_passes", timeout=60)
    assert result["killed"] == 2
    for side in ("client", "server"):
        ended = result["ended"][side]
        assert ended["code"] == "RESUME_EXPIRED", ended
        assert re.search(r"not resumed within 1 s.*frames \(\d+ bytes\).*dropped", ended["reason"])
        report = result[side]
        assert report["disconnects"][0][0] == "RESUME_EXPIRED"
        assert len(report["disconnects"]) == 1, report["disconnects"]  # close() adds none
        # Whatever arrived before the break arrived once and in order.
        assert report["faults"] == [] and 0 < report["received"] < FRAMES
        # A send to the peer whose session ended: the peer is no longer registered.
        assert report["send_after_end"] == "UnknownConnectionError", report
        assert report["connected"] == [], report
    assert result["server"]["received"] >= KILL_AT
    late = bytes.fromhex(result["late_answer"])
    assert late == refusal(RefusalReason.EXPIRED)
    (refused,) = logged(result["server"], "refusing the resume")
    assert refused.startswith("WARNING") and result["late_address"] in refused
    assert "window has passed" in refused


@requires_netns
def test_a_restarted_server_refuses_the_resume_and_the_client_says_why() -> None:
    result = run_isolated(HERE, "scenario_server_restarted", timeout=60)
    ended = result["ended"]
    assert ended["code"] == "RESUME_REFUSED", ended
    assert "does not know this session" in ended["reason"]
    client = result["client"]
    assert logged(client, r"^WARNING the server refused to resume the connection: .*restarted")
    assert client["disconnects"] == [[ended["code"], ended["reason"]]]
    assert client["send_after_end"] == "UnknownConnectionError"
    assert client["faults"] == [] and client["connected"] == []
    # The new engine refused the resume, and no session started there in silence.
    second = result["second_logs"]
    assert next(line for line in second if "refusing the resume from" in line).startswith("WARN")
    assert not [line for line in second if re.search(r"interface (connected|resumed)", line)]


@requires_netns
@pytest.mark.parametrize("keyed", ["no key", "key"])
def test_a_hijack_is_refused_and_the_real_session_still_resumes(keyed: str) -> None:
    result = run_isolated(HERE, "scenario_hijack", keyed, timeout=60)
    expected = {"no secret", "zero proof"}
    if keyed == "key":
        expected.add("secret without the key")
    assert set(result["answers"]) == expected
    server = result["server"]
    refusals = logged(server, "refusing the resume")
    for attempt in result["answers"].values():
        assert bytes.fromhex(attempt["answer"]) == refusal(RefusalReason.BAD_PROOF)
        (line,) = [line for line in refusals if attempt["address"] in line]
        assert line.startswith("WARNING") and "proof is wrong" in line
    # Never a secret, a proof or a nonce in any log line of either side.
    secrets = [result["session"], *result["nonces"], KEY.hex(), KEY.decode()]
    for side in ("client", "server"):
        assert not [line for line in result[side]["logs"] if any(s in line for s in secrets)]
    assert result["killed"] == 1
    assert_stream_whole(result, resumes=1)


if __name__ == "__main__":
    child_main(globals())
