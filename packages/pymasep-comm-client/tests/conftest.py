"""Puts core's shared test support (``packages/pymasep-comm-core/tests/support``) on
``sys.path``, whatever directory pytest runs from."""

from __future__ import annotations

import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parents[2] / "pymasep-comm-core" / "tests" / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))

pytest_plugins = ["peers"]  # the shared fixtures (inbox, ended, no_thread_left_behind)
