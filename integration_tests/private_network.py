"""A private network namespace for the tests that multicast (discovery).

Multicast runs only inside a namespace the test creates (``unshare -n``, loopback up, a
multicast route to loopback): no datagram can reach a real network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

SETUP = "ip link set lo up && ip route add 224.0.0.0/4 dev lo"
"""Shell commands that make a fresh namespace one host whose multicast stays on loopback."""


def unshare() -> list[str]:
    """The command prefix that runs a command in a new network namespace."""
    # Without root, a user namespace (-r) lets the test own its network namespace.
    return ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]


def _why_not() -> str | None:
    if not sys.platform.startswith("linux") or not (shutil.which("unshare") and shutil.which("ip")):
        return "needs Linux with unshare and ip to make a private network namespace"
    probe = subprocess.run([*unshare(), "sh", "-c", SETUP], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    return None


_REASON = _why_not()
requires_namespace = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")
"""Skips, saying why, where no namespace can be made."""
