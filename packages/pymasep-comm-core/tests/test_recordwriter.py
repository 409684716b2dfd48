"""The recorder's writer process: its relay, which drains the game's pipe at once."""

from __future__ import annotations

import os
import threading

from pymasep.comm.core._recordwriter import relay


def _relay_in_thread(limit: int, source: int, sink: int) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(relay(limit, source, sink)))
    thread.start()
    return thread, result


def test_the_relay_copies_every_byte_in_order_through_a_bounded_backlog() -> None:
    game_r, game_w = os.pipe()
    out_r, out_w = os.pipe()
    data = bytes(range(256)) * 8192  # 2 MiB: more than a pipe holds, more than the limit
    thread, result = _relay_in_thread(64 * 1024, game_r, out_w)

    def write_all() -> None:
        os.write(game_w, data)
        os.close(game_w)  # the end: the relay stops once it has passed everything on

    writer = threading.Thread(target=write_all)
    writer.start()
    received = bytearray()
    while chunk := os.read(out_r, 65536):
        received += chunk
        if len(received) == len(data):
            break
    writer.join(10)
    thread.join(10)
    assert bytes(received) == data and result == [0]
    for fd in (game_r, out_r, out_w):
        os.close(fd)


def test_the_relay_stops_with_1_when_its_reader_is_gone() -> None:
    game_r, game_w = os.pipe()
    out_r, out_w = os.pipe()
    os.close(out_r)  # the formatter stopped
    os.write(game_w, b"a record")
    thread, result = _relay_in_thread(1024, game_r, out_w)
    thread.join(10)
    assert result == [1]
    for fd in (game_r, game_w, out_w):
        os.close(fd)
