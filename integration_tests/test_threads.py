"""A fixed number of threads for any number of connections: every connection of every
Server and Client in a process is driven by the process's one I/O thread."""

from __future__ import annotations

import queue
import resource
import threading
from collections.abc import Iterator

import pytest

from pymasep.comm.client import Client
from pymasep.comm.core import CLOSED_BY_PEER, CLOSED_LOCALLY, Frame, SocketHandlerQueue
from pymasep.comm.server import Server

LOOPBACK = "127.0.0.1"
BUDGET = 16  # threads above the process's own, whatever the number of interfaces


@pytest.fixture
def descriptors() -> Iterator[None]:
    """Room for two descriptors per interface, and the test's own."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < 2200:
        pytest.skip(f"needs 2,200 descriptors; the hard limit is {hard}")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Ends(SocketHandlerQueue):
    """Records how each connection ended."""

    ended: queue.Queue[str]

    def on_disconnect(self, reason: str) -> None:
        type(self).ended.put(reason)


def _interfaces(server: Server, count: int) -> list[tuple[Client, queue.Queue[bytes]]]:
    interfaces = []
    for number in range(count):
        inbox: queue.Queue[bytes] = queue.Queue()
        client = Client(f"i{number}", Ends, (inbox,), LOOPBACK, server.port)
        client.connect(timeout=30)
        interfaces.append((client, inbox))
    assert server.wait_for_connections(count, 30)
    return interfaces


@pytest.mark.timeout(300)
def test_200_interfaces_and_their_engine_run_on_a_fixed_number_of_threads(
    descriptors: None,
) -> None:
    Ends.ended = queue.Queue()
    own = threading.active_count()
    with Server("engine", 200, Ends, (queue.Queue(),), LOOPBACK, 0) as server:
        server.wait_connection()
        interfaces = _interfaces(server, 200)
        idle = threading.active_count() - own
        peak = 0
        payload = bytes(16 * 1024)
        for step in range(20):  # a stream to every interface: 64 MB in all
            for client, _ in interfaces:
                server.send_frame_to(client.id, Frame(step.to_bytes(4, "big") + payload))
            peak = max(peak, threading.active_count() - own)
        for _, inbox in interfaces:
            received = [inbox.get(timeout=60) for _ in range(20)]
            assert [int.from_bytes(m[:4], "big") for m in received] == list(range(20))
        for client, _ in interfaces:
            client.close()
    assert idle <= BUDGET, f"{idle} threads when idle"
    assert peak <= BUDGET, f"{peak} threads at the peak of the stream"


@pytest.mark.timeout(600)
def test_1000_interfaces_register_get_a_broadcast_and_close_cleanly(descriptors: None) -> None:
    Ends.ended = queue.Queue()
    own = threading.active_count()
    server = Server("engine", 1000, Ends, (queue.Queue(),), LOOPBACK, 0)
    server.wait_connection()
    try:
        interfaces = _interfaces(server, 1000)
        assert sorted(server.connection_ids()) == sorted(c.id for c, _ in interfaces)
        assert threading.active_count() - own <= BUDGET
        for client, _ in interfaces:
            server.send_frame_to(client.id, Frame(b"broadcast"))
        for _, inbox in interfaces:
            assert inbox.get(timeout=60) == b"broadcast"
    finally:
        server.close(timeout=30)
    # Each interface saw the engine's bye, and the engine each interface's answer.
    reasons = [Ends.ended.get(timeout=30) for _ in range(2000)]
    assert (reasons.count(CLOSED_BY_PEER), reasons.count(CLOSED_LOCALLY)) == (1000, 1000)
    assert server.connection_ids() == []
    for client, _ in interfaces:
        assert not client.is_connection_registered("engine")
