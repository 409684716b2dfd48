"""Puts the shared test support (``support/`` beside this file) on ``sys.path``, whatever
directory pytest runs from."""

from __future__ import annotations

import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))

pytest_plugins = ["peers"]  # the shared fixtures (inbox, ended, no_thread_left_behind)
