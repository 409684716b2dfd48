"""What the command lines of pymasep-comm's packages share: running the command that a
parsed line names, with the exit status of a usage error for an argument out of range."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence

__all__ = ["Command", "run_command"]

Command = Callable[[argparse.Namespace], int]
"""A command: takes the parsed arguments, returns the exit status."""


def run_command(
    parser: argparse.ArgumentParser,
    commands: Mapping[str, Command],
    argv: Sequence[str] | None,
) -> int:
    """Parse ``argv`` with ``parser``, whose subcommands store their name as ``command``,
    and run the command of that name.

    Args:
        parser: The command line's parser.
        commands: Each subcommand's name and the function that runs it.
        argv: The arguments, without the program name; None reads ``sys.argv``.

    Returns:
        The command's exit status. A ``ValueError`` that the command raises (an argument
        out of range) is a usage error: printed with the usage, exit status 2.
    """
    args = parser.parse_args(argv)
    try:
        return commands[args.command](args)
    except ValueError as error:
        parser.error(str(error))  # exits with status 2
