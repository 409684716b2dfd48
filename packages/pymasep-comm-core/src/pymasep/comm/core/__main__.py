"""``python -m pymasep.comm.core``: which code serves ``pymasep.communication``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .installation import Verdict, describe, inspect_environment


def main(argv: Sequence[str] | None = None) -> int:
    """Print which code serves ``pymasep.communication``; 0 when it is pymasep-comm's.

    Args:
        argv: The command-line arguments (none are taken but ``--help``).

    Returns:
        The exit status: 0 when every file is pymasep-comm-core's, 1 otherwise.
    """
    parser = argparse.ArgumentParser(
        prog="python -m pymasep.comm.core",
        description="Say which distribution's files serve pymasep.communication "
        "(pymasep-comm's, pymasep 0.2's, or a mix), and how to fix a mix.",
    )
    parser.parse_args(argv)
    installation = inspect_environment()
    print(describe(installation))
    return 0 if installation.verdict is Verdict.OURS else 1


if __name__ == "__main__":
    sys.exit(main())
