"""``python -m pymasep.comm.core``: which code serves ``pymasep.communication``."""

from __future__ import annotations

import sys

from .installation import main

sys.exit(main())
