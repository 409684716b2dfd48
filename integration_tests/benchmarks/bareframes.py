"""The bare-socket baselines' reading side: length-prefixed frames out of a stream of
bytes, split in one place for every baseline (broadcast, fan-out, game step, stream,
bare + queue echo)."""

from __future__ import annotations

import struct

_LENGTH = struct.Struct("!I")


class Frames:
    """The length-prefixed frames out of one socket's bytes, as they arrive."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the frames it completed (their payloads)."""
        buffer = self.buffer
        buffer += data
        frames, position = [], 0
        while len(buffer) - position >= 4:
            (size,) = _LENGTH.unpack_from(buffer, position)
            if len(buffer) - position - 4 < size:
                break
            frames.append(bytes(buffer[position + 4 : position + 4 + size]))
            position += 4 + size
        del buffer[:position]
        return frames
