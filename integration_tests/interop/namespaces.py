"""Network namespaces that the discovery tests create, so multicast never leaves them.

Two set-ups, both deleted when the test ends:

* :func:`run_in_fresh_namespace`: a child process in a namespace of its own holding only
  ``lo``, with multicast routed to ``lo`` (``unshare -n``; ``unshare -r -n`` without
  root). The child starts the 0.2 peer itself, so both share the namespace.
* :class:`NamespacePair`: two named namespaces joined by a veth pair with addresses of
  our choosing (two hosts on one link), multicast routed to the veth. Needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

CHILD_TIMEOUT = 40.0
_LOOPBACK_SETUP = "ip link set lo up && ip route add 224.0.0.0/4 dev lo"


def _run(command: list[str], timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def _unshare() -> list[str]:
    return ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]


def _why_no_netns() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only (multicast never runs on the host's network)"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed, so no network namespace can be made"
    try:
        probe = _run([*_unshare(), "sh", "-c", _LOOPBACK_SETUP])
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot create a network namespace: {error}"
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip() or probe.returncode}"
    return None


NO_NETNS = _why_no_netns()
requires_netns = pytest.mark.skipif(NO_NETNS is not None, reason=str(NO_NETNS))
requires_root = pytest.mark.skipif(
    NO_NETNS is not None or os.geteuid() != 0,
    reason=str(NO_NETNS or "two namespaces joined by a veth pair need root (ip netns add)"),
)


def _decode(process: subprocess.CompletedProcess[str], what: str) -> Any:
    if process.returncode != 0 or not process.stdout.strip():
        raise AssertionError(
            f"{what} exited with {process.returncode}\n"
            f"--- stdout\n{process.stdout}--- stderr\n{process.stderr[-4000:]}"
        )
    return json.loads(process.stdout.strip().splitlines()[-1])


def _child(script: str, function: str, args: tuple[str, ...]) -> list[str]:
    return [sys.executable, os.path.abspath(script), function, *args]


def run_in_fresh_namespace(script: str, function: str, *args: str) -> Any:
    """Run ``function(*args)`` of ``script`` (through :func:`harness.child_main`) in a
    fresh namespace holding only ``lo``; return its JSON result."""
    command = [*_unshare(), "sh", "-c", f'{_LOOPBACK_SETUP} && exec "$@"', "sh"]
    command += _child(script, function, args)
    return _decode(_run(command, CHILD_TIMEOUT), f"{function}{args} in a fresh namespace")


class NamespacePair:
    """Hosts ``a`` (:attr:`ADDRESS_A`) and ``b`` (:attr:`ADDRESS_B`) on one veth link."""

    ADDRESS_A = "10.201.0.1"
    ADDRESS_B = "10.201.0.2"

    def __init__(self) -> None:
        tag = os.getpid()
        self.names = {"a": f"pmi{tag}a", "b": f"pmi{tag}b"}
        self._links = {"a": f"pmi{tag}va", "b": f"pmi{tag}vb"}  # 15 characters at most
        self._created: list[str] = []

    def _ip(self, *args: str) -> None:
        result = _run(["ip", *args])
        if result.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")

    def __enter__(self) -> NamespacePair:
        try:
            for name in self.names.values():
                self._ip("netns", "add", name)
                self._created.append(name)
            # Both ends are created inside the namespaces: never in the host's.
            self._ip(
                "link", "add", "name", self._links["a"], "netns", self.names["a"],
                "type", "veth", "peer", "name", self._links["b"], "netns", self.names["b"],
            )  # fmt: skip
            for side, address in (("a", self.ADDRESS_A), ("b", self.ADDRESS_B)):
                name, link = self.names[side], self._links[side]
                self._ip("-n", name, "link", "set", "lo", "up")
                self._ip("-n", name, "address", "add", f"{address}/24", "dev", link)
                self._ip("-n", name, "link", "set", link, "up")
                self._ip("-n", name, "route", "add", "224.0.0.0/4", "dev", link)
        except BaseException as error:
            self.__exit__()
            if isinstance(error, RuntimeError):
                pytest.skip(f"cannot build two namespaces joined by a veth pair: {error}")
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name in reversed(self._created):
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                _run(["ip", "netns", "del", name])
        self._created.clear()

    def prefix(self, side: str) -> list[str]:
        """The command prefix that runs a program on host ``side``."""
        return ["ip", "netns", "exec", self.names[side]]

    def run(self, side: str, script: str, function: str, *args: str) -> Any:
        """Run ``function(*args)`` of ``script`` on host ``side``; return its JSON result."""
        command = [*self.prefix(side), *_child(script, function, args)]
        return _decode(_run(command, CHILD_TIMEOUT), f"{function}{args} on host {side}")
