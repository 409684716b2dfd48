"""Run test code inside network namespaces that the test creates and deletes.

Discovery sends multicast. So that no datagram of the tests ever leaves the machine, every
test that opens a discovery socket runs its body in a child process inside a network
namespace of its own: either a fresh one holding only ``lo`` (``unshare -n``, with a
multicast route to ``lo``), or one of two named namespaces joined by a veth pair and
nothing else (:class:`NamespacePair`).

A test module runs its own functions in the child: it ends with
``if __name__ == "__main__": child_main(globals())``, and the test calls
``run_isolated(__file__, "function_name", "arg", ...)``. The function returns something
JSON can carry; the child prints it as its last line of output and the helper returns it
decoded.

The one copy serves the server's, the client's, the integration, interop and games tests:
it needs only the standard library and pytest. The children it starts run with the same
interpreter, where this package is installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from .processes import run_in_group

__all__ = [
    "CHILD_TIMEOUT",
    "LOOPBACK_SETUP",
    "NO_NETNS",
    "REQUIRE_NETNS",
    "NamespacePair",
    "child_main",
    "finish",
    "namespace_command",
    "requires_netns",
    "requires_netns_pair",
    "run_in_namespace",
    "run_isolated",
    "serve_and_query",
    "unshare_command",
    "wait_for_stdin_eof",
    "wait_line",
]

CHILD_TIMEOUT = 20.0
"""Seconds a child may run before it is killed (a test that hangs fails, fast)."""

# Commands that turn a fresh namespace into "one host": loopback up, and multicast routed
# to loopback, the only interface there is.
LOOPBACK_SETUP = "ip link set lo up && ip route add 224.0.0.0/4 dev lo"


def _run(command: list[str], timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def unshare_command() -> list[str]:
    """The command prefix that runs a command in a new network namespace."""
    # Without root, a user namespace (-r: map this user to root in it) lets the test own
    # its network namespace.
    return ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]


def _why_no_netns() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only; multicast tests never run on the host's network"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed (util-linux / iproute2), so no namespace to run in"
    try:
        probe = _run([*unshare_command(), "sh", "-c", LOOPBACK_SETUP], timeout=10.0)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot create a network namespace: {error}"
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip() or probe.returncode}"
    return None


def _why_no_netns_pair() -> str | None:
    reason = _why_no_netns()
    if reason is not None:
        return reason
    if os.geteuid() != 0:
        return "named namespaces joined by a veth pair need root (ip netns add)"
    return None


NO_NETNS = _why_no_netns()
"""Why no namespace can be made here, or None."""
_NO_NETNS_PAIR = _why_no_netns_pair()

REQUIRE_NETNS = os.environ.get("PYMASEP_COMM_REQUIRE_NETNS") == "1"
"""Set (to 1) where namespaces must work, as in CI: a test that needs one is never
skipped there, so a runner that cannot make namespaces fails instead of hiding them."""

requires_netns = pytest.mark.skipif(
    NO_NETNS is not None and not REQUIRE_NETNS, reason=NO_NETNS or ""
)
"""Skip a test that needs a namespace of its own, saying why there is none."""

requires_netns_pair = pytest.mark.skipif(
    _NO_NETNS_PAIR is not None and not REQUIRE_NETNS, reason=_NO_NETNS_PAIR or ""
)
"""Skip a test that needs two namespaces joined by a veth pair, saying why there are none."""


def _decode(process: subprocess.CompletedProcess[str], what: str) -> Any:
    if process.returncode != 0:
        raise AssertionError(
            f"{what} exited with {process.returncode}\n"
            f"--- stdout\n{process.stdout}--- stderr\n{process.stderr[-4000:]}"
        )
    lines = process.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"{what} printed nothing\n--- stderr\n{process.stderr}")
    return json.loads(lines[-1])


def _child_command(script: str, function: str, args: tuple[str, ...]) -> list[str]:
    return [sys.executable, os.path.abspath(script), function, *args]


def run_isolated(
    script: str,
    function: str,
    *args: str,
    multicast_route: bool = True,
    timeout: float = CHILD_TIMEOUT,
) -> Any:
    """Run ``function(*args)`` of ``script`` in a fresh namespace that holds only ``lo``.

    The namespace ends with the child: nothing to clean up.

    Args:
        script: The test module (``__file__``).
        function: The name of the function to call in the child.
        *args: Its arguments, as strings.
        multicast_route: Route multicast to ``lo``; without it, multicast has no route.
        timeout: Seconds before the child is killed.

    Returns:
        What the function returned, through JSON.
    """
    command = _child_command(script, function, args)
    process = run_in_group(namespace_command(*command, multicast_route=multicast_route), timeout)
    return _decode(process, f"{function}{args} in a fresh namespace")


def run_in_namespace(*command: str, timeout: float = CHILD_TIMEOUT) -> Any:
    """Run ``command`` in a fresh namespace holding only ``lo`` (multicast routed to it)
    and return the JSON of its last line of output, as :func:`run_isolated` does."""
    process = run_in_group(namespace_command(*command), timeout)
    return _decode(process, f"{command!r} in a fresh namespace")


def namespace_command(*command: str, multicast_route: bool = True) -> list[str]:
    """``command`` wrapped to run in a fresh namespace that holds only ``lo`` (up, with
    multicast routed to it unless ``multicast_route`` is false); the namespace ends with
    the command. For a test that runs the command itself (its own cwd, env, output)."""
    setup = LOOPBACK_SETUP if multicast_route else "ip link set lo up"
    return [*unshare_command(), "sh", "-c", f'{setup} && exec "$@"', "sh", *command]


def wait_line(process: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """Read one line from a child's stdout, failing if none comes within ``timeout``."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        process.kill()
        raise AssertionError(f"no output from {process.args!r} within {timeout} s")
    return process.stdout.readline()


class NamespacePair:
    """Two namespaces, ``a`` and ``b``, as two hosts on one link (a veth pair).

    Host ``a`` is :attr:`ADDRESS_A`, host ``b`` :attr:`ADDRESS_B` (a /24 of their own);
    each routes multicast to its end of the veth. Names carry the test's process id, so
    concurrent runs do not collide. Use it as a context manager: the namespaces (and the
    veth with them) are deleted on exit, whatever happened.
    """

    ADDRESS_A = "10.200.0.1"
    ADDRESS_B = "10.200.0.2"

    def __init__(self) -> None:
        tag = f"{os.getpid()}"
        self.names = {"a": f"pmc{tag}a", "b": f"pmc{tag}b"}
        self.links = {"a": f"pmc{tag}va", "b": f"pmc{tag}vb"}  # at most 15 characters
        self._created: list[str] = []
        self._children: list[subprocess.Popen[str]] = []

    def _ip(self, *args: str) -> None:
        result = _run(["ip", *args])
        if result.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")

    def __enter__(self) -> NamespacePair:
        try:
            for side in ("a", "b"):
                self._ip("netns", "add", self.names[side])
                self._created.append(self.names[side])
            a, b = self.names["a"], self.names["b"]
            # Both ends are created inside the namespaces: the veth never exists in the
            # host's namespace, even for a moment.
            self._ip(
                "link", "add", "name", self.links["a"], "netns", a,
                "type", "veth", "peer", "name", self.links["b"], "netns", b,
            )  # fmt: skip
            for side, address in (("a", self.ADDRESS_A), ("b", self.ADDRESS_B)):
                name, link = self.names[side], self.links[side]
                self._ip("-n", name, "link", "set", "lo", "up")
                self._ip("-n", name, "address", "add", f"{address}/24", "dev", link)
                self._ip("-n", name, "link", "set", link, "up")
                self._ip("-n", name, "route", "add", "224.0.0.0/4", "dev", link)
        except BaseException as error:
            self.__exit__(None, None, None)
            if isinstance(error, RuntimeError):
                pytest.skip(f"cannot build two namespaces joined by a veth pair: {error}")
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for child in self._children:
            if child.poll() is None:
                child.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5)
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
        for name in reversed(self._created):
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                _run(["ip", "netns", "del", name])
        self._created.clear()

    def prefix(self, side: str) -> list[str]:
        """The command prefix that runs a program on host ``side``."""
        return ["ip", "netns", "exec", self.names[side]]

    def run(
        self, side: str, script: str, function: str, *args: str, timeout: float = CHILD_TIMEOUT
    ) -> Any:
        """Run ``function(*args)`` of ``script`` on host ``side`` and return its result."""
        command = [*self.prefix(side), *_child_command(script, function, args)]
        return _decode(_run(command, timeout=timeout), f"{function}{args} on host {side}")

    def start(self, side: str, script: str, function: str, *args: str) -> subprocess.Popen[str]:
        """Start ``function(*args)`` of ``script`` on host ``side`` in the background.

        The child is killed on exit from the pair if still running.
        """
        command = [*self.prefix(side), *_child_command(script, function, args)]
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._children.append(child)
        return child


def serve_and_query(script: str, serve: str, query: str, *serve_args: str) -> Any:
    """Two hosts (a :class:`NamespacePair`): ``serve(*serve_args)`` of ``script`` runs on
    host ``a``, ``query()`` on host ``b``; return what ``query`` returned.

    ``serve`` prints ``ready`` once it serves, then serves until its stdin closes
    (:func:`wait_for_stdin_eof`); it is stopped once ``query`` has returned.
    """
    with NamespacePair() as pair:
        server = pair.start("a", script, serve, *serve_args)
        assert wait_line(server).strip() == "ready", "the serving host did not start"
        result = pair.run("b", script, query)
        finish(server)
    return result


def finish(process: subprocess.Popen[str], timeout: float = 10.0) -> Any:
    """Close a background child's stdin (its signal to stop) and return its result."""
    stdout, stderr = process.communicate(input="", timeout=timeout)
    return _decode(
        subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr),
        f"background child {process.args!r}",
    )


def wait_for_stdin_eof(timeout: float = CHILD_TIMEOUT) -> None:
    """In a background child: block until the test closes stdin, at most ``timeout``."""
    select.select([sys.stdin], [], [], timeout)


def child_main(namespace: dict[str, Any]) -> None:
    """Entry point of a child: call the function named by ``sys.argv[1]``, print its result.

    Args:
        namespace: The test module's ``globals()``.
    """
    function: Callable[..., Any] = namespace[sys.argv[1]]
    started = time.monotonic()
    result = function(*sys.argv[2:])
    sys.stderr.write(f"{sys.argv[1]} took {time.monotonic() - started:.3f} s\n")
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
