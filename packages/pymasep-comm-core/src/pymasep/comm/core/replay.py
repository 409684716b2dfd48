"""Play one side of a recording to a live peer and compare its answers: :func:`replay`.

What ``python -m pymasep.comm.server replay`` (the engine's side, to a live interface)
and ``python -m pymasep.comm.client replay`` (an interface's side, to a live engine)
run. The records of one connection are walked in their recorded order: a frame this side
sent is sent again (at the recorded pace, or at once); a frame this side received is
waited for and compared with what the live peer sends, message by message, as canonical
XML (C14N: the same message written with its attributes in another order matches, and
no class needs to be registered to compare). The first difference ends the replay: it
is a :class:`Divergence`, with the step it happened in. A recorded bye from the peer
is waited for too: anything the live peer sends before it is a divergence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .recording import Record, Recording, canonical_xml, pretty_xml

__all__ = ["END", "Divergence", "ReplayResult", "connection_records", "replay"]

END = None
"""What ``receive`` returns when the live peer's connection has ended."""


@dataclass(frozen=True)
class Divergence:
    """Where the live peer first differed from the recording.

    Attributes:
        index: Which of the peer's messages (from 1) differed.
        step: The game step of the recorded message (see
            :mod:`pymasep.comm.core.recording`).
        expected: The recorded frame (None: the recording has the peer's bye there).
        got: What the live peer sent (None: nothing within the timeout, or its
            connection ended).
        why: The difference, in words.
    """

    index: int
    step: int
    expected: Record | None
    got: bytes | None
    why: str

    def report(self) -> str:
        """The divergence for a person: where, why, and both messages' XML."""
        expected = (
            "(the peer's bye)"
            if self.expected is None or self.expected.payload is None
            else pretty_xml(self.expected.payload).rstrip()
        )
        got = "(nothing)" if self.got is None else pretty_xml(self.got).rstrip()
        return (
            f"first divergence: message {self.index} from the peer, at step {self.step}: "
            f"{self.why}\n--- recorded\n{expected}\n+++ live\n{got}"
        )


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did.

    Attributes:
        peer: Id of the recorded peer.
        sent: Frames sent to the live peer.
        compared: Messages from the live peer compared with the recording.
        divergence: The first difference, or None when everything matched.
    """

    peer: str
    sent: int
    compared: int
    divergence: Divergence | None

    @property
    def matched(self) -> bool:
        """True when the live peer answered as recorded."""
        return self.divergence is None

    def summary(self) -> str:
        """One line: what was replayed, and whether it matched."""
        verdict = (
            "all match"
            if self.divergence is None
            else f"diverged at message {self.divergence.index} (step {self.divergence.step})"
        )
        return (
            f"replayed {self.sent} frames to {self.peer}, compared {self.compared} "
            f"messages from it: {verdict}"
        )


def connection_records(recording: Recording, peer: str | None = None) -> list[Record]:
    """The records of one connection of a recording: the first one with ``peer`` (or
    the first one at all), from its ``connected`` to its ``closed``.

    Raises:
        LookupError: The recording has no such connection.
    """
    records: list[Record] = []
    chosen: str | None = None
    for record in recording:
        if chosen is None:
            if record.event == "connected" and peer in (None, record.peer):
                chosen = record.peer
                records.append(record)
            continue
        if record.peer != chosen:
            continue
        records.append(record)
        if record.event == "closed":
            break
    if chosen is None:
        raise LookupError(
            f"{recording.path} has no connection" + ("" if peer is None else f" with {peer!r}")
        )
    return records


def replay(
    records: Iterable[Record],
    send: Callable[[bytes], None],
    receive: Callable[[float], bytes | None],
    *,
    speed: float | None = None,
    timeout: float = 10.0,
    close: Callable[[], None] | None = None,
    rename: tuple[str, str] | None = None,
) -> ReplayResult:
    """Replay one connection's records to a live peer.

    Args:
        records: The connection's records (:func:`connection_records`).
        send: Sends a payload to the live peer.
        receive: The next payload from the live peer, waiting ``timeout`` seconds at
            most; None when nothing came, or :data:`END` (None) once its connection
            ended.
        speed: How many times faster than recorded to send (1: the recorded pace);
            None sends each frame as soon as its turn comes.
        timeout: Seconds to wait for each message of the live peer.
        close: Called where the recording has this side's bye.
        rename: ``(recorded id, live id)`` when the live peer's id is not the recorded
            one (pymasep's ids are new at each run): the recorded id is replaced by the
            live one in every frame sent, and the live id by the recorded one in every
            frame received before it is compared.

    Returns:
        What happened; its ``divergence`` says where the peer first differed.
    """
    sent = compared = 0
    peer = ""
    recorded_id, live_id = (
        (b"", b"")
        if rename is None
        else (
            rename[0].encode("utf-8"),
            rename[1].encode("utf-8"),
        )
    )
    start_wall: float | None = None
    start_mono = 0.0
    for record in _frames_and_byes(records):
        peer = peer or record.peer
        if record.event == "sent":
            payload = record.payload
            assert payload is not None
            if speed is not None:
                if start_wall is None:
                    start_wall, start_mono = time.monotonic(), record.monotonic
                delay = start_wall + (record.monotonic - start_mono) / speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # the recorded pace, not a synchronisation
            send(payload.replace(recorded_id, live_id) if recorded_id else payload)
            sent += 1
        elif record.event == "received":
            compared += 1
            got = receive(timeout)
            if got is not None and recorded_id:
                got = got.replace(live_id, recorded_id)
            expected = record.payload
            assert expected is not None
            if got is None:
                why = f"the peer sent nothing within {timeout:g} s, or left"
            elif canonical_xml(got) != canonical_xml(expected):
                why = "the messages differ"
            else:
                continue
            return ReplayResult(
                peer, sent, compared, Divergence(compared, record.step, record, got, why)
            )
        elif record.direction == "out":
            if close is not None:
                close()
        else:  # the peer's bye: it sends nothing more
            got = receive(timeout)
            if got is not None:
                compared += 1
                why = "the peer sent more than was recorded"
                return ReplayResult(
                    peer, sent, compared, Divergence(compared, record.step, None, got, why)
                )
    return ReplayResult(peer, sent, compared, None)


def _frames_and_byes(records: Iterable[Record]) -> Iterator[Record]:
    for record in records:
        if record.is_frame or record.event == "bye":
            yield record
