"""The watch page in a real headless Chromium: a recorded game opened, a live game
followed, the step scrubber, and a screenshot."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from playwright.sync_api import Browser, Page, expect

from pymasep.comm.client import Client
from pymasep.comm.core import Frame, Message, SocketHandlerQueue
from pymasep.comm.core.testing.peers import wait_registered
from pymasep.comm.core.watch import WatchServer
from pymasep.comm.server import Server

LOOPBACK = "127.0.0.1"
WAIT_MS = 10_000


def state(step: int) -> etree._Element:
    """A pymasep-like state: a board, and an agent whose belief is GraphML text."""
    element = etree.Element("State", step=str(step))
    etree.SubElement(element, "Board").text = "X.O" * 3
    agent = etree.SubElement(element, "Agent", id="p1")
    etree.SubElement(agent, "Belief").text = f'<graphml><node id="n{step}"/></graphml>'
    return element


class Game:
    """An engine and two interfaces in this process; the engine records."""

    def __init__(self, record: Path) -> None:
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.server = Server(
            "engine", 4, SocketHandlerQueue, (self.inbox,), LOOPBACK, 0, record=record
        )
        self.server.wait_connection()
        self.clients: dict[str, Client] = {}
        self.inboxes: dict[str, queue.Queue[bytes]] = {}
        self.ports: dict[str, int] = {}
        for ident in ("p1", "p2"):
            inbox: queue.Queue[bytes] = queue.Queue()
            client = Client(ident, SocketHandlerQueue, (inbox,), LOOPBACK, self.server.port)
            client.connect()
            wait_registered(self.server, ident)
            self.clients[ident], self.inboxes[ident] = client, inbox
            assert client.socket is not None
            self.ports[ident] = client.socket.getsockname()[1]
            self.act(ident, "register", {"id": ident})

    def act(self, ident: str, msg_type: str, params: dict[str, object]) -> None:
        payload = Message(msg_type, params, ident).to_bytes()
        self.clients[ident].send_frame_to("engine", Frame(payload))
        assert self.inbox.get(timeout=5) == payload

    def step(self, step: int) -> None:
        """Both interfaces observe; p1 acts."""
        for ident in ("p1", "p2"):
            observation = Message(
                "observation", {"observation": state(step), "reward": 0.5}, "engine"
            ).to_bytes()
            self.server.send_frame_to(ident, Frame(observation))
            assert self.inboxes[ident].get(timeout=5) == observation
        self.act("p1", "action", {"cell": step})

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.server.close()


@pytest.fixture
def watch() -> Iterator[list[WatchServer]]:
    servers: list[WatchServer] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def serve(servers: list[WatchServer], path: Path) -> WatchServer:
    server = WatchServer(path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
    return server


def peer_row(page: Page, peer: str) -> object:
    return page.locator(f'#connections tr[data-peer="{peer}"]')


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def test_a_recorded_game_opens_with_its_connections_counts_and_scrubber(
    tmp_path: Path, page: Page, watch: list[WatchServer], screenshots: Path
) -> None:
    game = Game(tmp_path)
    for step in range(6):
        game.step(step)
    game.close()
    assert game.server.recorder is not None
    server = serve(watch, game.server.recorder.path)

    page.goto(server.url)
    expect(page.locator("body")).to_have_attribute("data-caught-up", "yes", timeout=WAIT_MS)
    rows = page.locator("#connections tbody tr")
    expect(rows).to_have_count(2)
    p1 = page.locator('#connections tr[data-peer="p1"]')
    # p1: 6 observations out; register and 6 actions in. p2: 6 out, its register in.
    expect(p1.locator(".frames-out")).to_have_text("6")
    expect(p1.locator(".frames-in")).to_have_text("7")
    expect(p1.locator(".address")).to_have_text(f"127.0.0.1:{game.ports['p1']}")
    expect(p1.locator(".wire")).to_have_text("v1")
    expect(p1.locator(".state")).to_contain_text("closed")
    p2 = page.locator('#connections tr[data-peer="p2"]')
    expect(p2.locator(".frames-out")).to_have_text("6")
    expect(p2.locator(".frames-in")).to_have_text("1")
    expect(page.locator("#timeline tbody tr")).to_have_count(20)
    expect(page.locator("#chart canvas")).to_have_count(1)

    # the timeline filtered by peer and type
    page.select_option("#filter-peer", "p1")
    page.select_option("#filter-type", "action")
    expect(page.locator("#timeline tbody tr")).to_have_count(6)
    page.select_option("#filter-type", "observation")
    expect(page.locator("#timeline tbody tr")).to_have_count(6)

    # the scrubber lands on step 4: p1's observation of step 4, its XML pretty-printed
    page.locator("#scrubber").evaluate(
        "(s, v) => { s.value = v; s.dispatchEvent(new Event('input')); }", "4"
    )
    expect(page.locator("#step-label")).to_have_text("step 4")
    expect(page.locator("#xml-title")).to_contain_text("step 4 · to p1 · observation")
    expect(page.locator("#xml")).to_contain_text('<State step="4">')
    expect(page.locator("#xml")).to_contain_text("\n      <Board>X.OX.OX.O</Board>")
    expect(page.locator("#xml")).to_contain_text('<Belief>&lt;graphml&gt;&lt;node id="n4"/&gt;')
    expect(page.locator("#timeline tr.selected .step")).to_have_text("4")

    # any message opens by a click
    page.locator("#timeline tbody tr").first.click()
    expect(page.locator("#xml-title")).to_contain_text("step 0 · to p1")
    page.screenshot(path=str(screenshots / "watch.png"), full_page=True)
    assert (screenshots / "watch.png").stat().st_size > 10_000


def test_the_page_follows_a_live_game(tmp_path: Path, page: Page, watch: list[WatchServer]) -> None:
    game = Game(tmp_path)
    try:
        assert game.server.recorder is not None
        server = serve(watch, tmp_path)  # the directory: the engine's recording is there
        page.goto(f"{server.url}?name={game.server.recorder.path.name}")
        p1 = page.locator('#connections tr[data-peer="p1"]')
        expect(p1.locator(".frames-in")).to_have_text("1", timeout=WAIT_MS)
        expect(p1.locator(".frames-out")).to_have_text("0")
        game.step(0)
        game.step(1)
        expect(p1.locator(".frames-out")).to_have_text("2", timeout=WAIT_MS)
        expect(p1.locator(".frames-in")).to_have_text("3")
        expect(p1.locator(".state")).to_have_text("open")
        game.clients["p2"].close()
        p2 = page.locator('#connections tr[data-peer="p2"]')
        expect(p2.locator(".state")).to_contain_text("closed by the peer", timeout=WAIT_MS)
        expect(page.locator("#status")).to_contain_text("live")
    finally:
        game.close()
