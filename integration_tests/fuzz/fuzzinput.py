"""The layout of a fuzz input: a few bytes of choices, then the bytes under test.

The fuzzer mutates one flat byte string; :class:`FuzzInput` reads choices off its front
(which wire, where to cut the stream into reads, ...) and hands the rest to the code
under test. It is plain Python, so that a target runs the same under atheris, under
pytest replaying the seed corpus, and in a regression test. :func:`plan` writes the
same layout, which is how ``make_corpus.py`` turns real frames into seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TypeVar

_T = TypeVar("_T")

MAX_CUTS = 16
"""Most places a stream is cut at: the reads that deliver it are one more."""


class FuzzInput:
    """Reads choices, then data, off the front of a fuzz input; never fails.

    Past the end every number reads as 0 and every byte string as empty, so any input,
    however short, means something.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def u8(self) -> int:
        """One byte, 0 to 255."""
        if self.position >= len(self.data):
            return 0
        value = self.data[self.position]
        self.position += 1
        return value

    def u16(self) -> int:
        """Two bytes, big-endian, 0 to 65535."""
        return self.u8() << 8 | self.u8()

    def choose(self, options: Sequence[_T]) -> _T:
        """One of ``options``, by one byte."""
        return options[self.u8() % len(options)]

    def take(self, count: int) -> bytes:
        """Up to ``count`` bytes."""
        chunk = self.data[self.position : self.position + count]
        self.position += len(chunk)
        return chunk

    def text(self, max_bytes: int) -> str:
        """A string of up to ``max_bytes`` UTF-8 bytes (one length byte first); bytes
        that are not UTF-8 become U+FFFD, so the string is always encodable."""
        return self.take(self.u8() % (max_bytes + 1)).decode("utf-8", "replace")

    def cuts(self) -> list[int]:
        """Where to cut the stream that follows (offsets, sorted, maybe repeated).

        Read as a count byte, then two bytes per cut; each offset is taken modulo the
        length of the rest of the input plus one, so that the fuzzer can cut anywhere,
        including at both ends (an empty read).
        """
        raw = self.offsets()
        return place(raw, len(self.data) - self.position)

    def offsets(self) -> list[int]:
        """A count byte, then that many (at most :data:`MAX_CUTS`) two-byte numbers."""
        return [self.u16() for _ in range(self.u8() % (MAX_CUTS + 1))]

    def rest(self) -> bytes:
        """Every byte not read yet."""
        chunk = self.data[self.position :]
        self.position = len(self.data)
        return chunk


def plan(choices: Sequence[int], cuts: Sequence[int], stream: bytes) -> bytes:
    """Build an input that :meth:`FuzzInput.u8` (once per choice), :meth:`FuzzInput.cuts`
    and :meth:`FuzzInput.rest` read back as ``choices``, ``cuts`` and ``stream``."""
    if len(cuts) > MAX_CUTS:
        raise ValueError(f"at most {MAX_CUTS} cuts")
    head = bytes(choices) + bytes([len(cuts)])
    return head + b"".join(cut.to_bytes(2, "big") for cut in cuts) + stream


def place(offsets: Sequence[int], length: int) -> list[int]:
    """Cuts in a stream of ``length`` bytes, from any numbers: sorted, each modulo
    ``length + 1``."""
    return sorted(offset % (length + 1) for offset in offsets)


def pieces(stream: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``stream`` cut at ``cuts``: the reads that deliver it, in order."""
    bounds = [0, *cuts, len(stream)]
    return [stream[start:end] for start, end in pairwise(bounds)]
