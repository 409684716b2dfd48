"""What the ``replay`` commands of both sides share (``python -m pymasep.comm.server
replay`` and ``pymasep-comm replay``): the command and its pace options, reading the
recording, and the run against a live peer that prints its outcome. Command-line code: it
prints, as their entry points do."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .exceptions import DecodeError
from .frame import Frame
from .recording import Record, Recording
from .replay import ReplayResult, connection_records, replay

__all__ = ["add_replay_command", "read_connection", "replay_live", "report", "speed"]


def speed(value: str) -> float | None:
    """``--speed``: ``max`` (None) or a positive factor."""
    if value == "max":
        return None
    factor = float(value)
    if factor <= 0:
        raise ValueError("the speed must be positive, or max")
    return factor


def read_connection(
    path: str, side: str, peer: str | None, other_side: str
) -> tuple[str, list[Record]] | None:
    """The id of a recording made by ``side`` and the records of its connection with
    ``peer`` (None: the first one), or None once the usage error is printed: the file
    cannot be read, or was recorded by the other side (``other_side`` names it)."""
    try:
        with Recording(path) as recording:
            if recording.side != side:
                print(f"{path} was recorded by {other_side}", file=sys.stderr)
                return None
            return recording.id, connection_records(recording, peer)
    except (OSError, DecodeError, LookupError) as error:
        print(f"replay: {error}", file=sys.stderr)
        return None


def add_replay_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    recorded_by: str,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """Add the ``replay`` command: its recording (``FILE``, made by ``recorded_by``) and
    its pace options, ``--speed`` and ``--timeout``; the caller adds the rest."""
    command = commands.add_parser("replay", help=help, description=description)
    command.add_argument("file", help=f"a recording (.jsonl or .jsonl.gz) made by {recorded_by}")
    command.add_argument(
        "--speed",
        type=speed,
        default=1.0,
        metavar="X",
        help="'max', or how many times the recorded pace (default 1)",
    )
    command.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="seconds to wait for each answer"
    )
    return command


def replay_live(
    records: Sequence[Record],
    send_frame: Callable[[Frame], None],
    receive: Callable[[float], bytes | None],
    args: argparse.Namespace,
    recorded_peer: str,
    live_peer: str,
) -> int:
    """:func:`~pymasep.comm.core.replay.replay` to a live peer, at the pace the options
    say, this side's bye sent as a bye frame; :func:`report` its outcome.

    Args:
        records: The recorded connection.
        send_frame: Sends a frame to the live peer.
        receive: The live peer's next payload within the timeout given, or None.
        args: The command's options (``--speed``, ``--timeout``).
        recorded_peer: The peer's id in the recording.
        live_peer: The live peer's id, which may be new at each run (pymasep's are): it
            stands for the recorded one in the frames.

    Returns:
        The exit status, as :func:`report` says.
    """
    result = replay(
        records,
        lambda payload: send_frame(Frame(payload)),
        receive,
        speed=args.speed,
        timeout=args.timeout,
        close=lambda: send_frame(Frame.bye_frame()),
        rename=None if live_peer == recorded_peer else (recorded_peer, live_peer),
    )
    return report(result)


def report(result: ReplayResult) -> int:
    """Print the divergence, if any, and the summary.

    Returns:
        The exit status: 0 when the peer answered as recorded, 1 otherwise.
    """
    if result.divergence is not None:
        print(result.divergence.report())
    print(result.summary())
    return 0 if result.matched else 1
