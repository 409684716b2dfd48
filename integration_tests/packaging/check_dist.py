"""Checks on the built distributions, run by ``nox -s build``.

``python check_dist.py contents DIST VERSION`` reads the wheels and sdists in ``DIST``:
one of each per distribution, all at ``VERSION``, the server and client pinning core to
it exactly, the ``pymasep`` and ``pymasep.comm`` namespaces left without
``__init__.py`` (PEP 420: the three distributions share them), ``py.typed`` and the
license in every wheel, no tests nor caches in a wheel.

``python check_dist.py smoke NAME...`` runs in a fresh virtualenv where only the named
distributions (``core``, ``server``, ``client``) are installed, from their wheels: it
imports what they provide, and checks that what they do not provide fails with an
ImportError that names the distribution to install.

Standard library only: the smoke test must not import anything the wheels did not
bring.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

DISTRIBUTIONS = ("core", "server", "client")
# Each distribution's own package, and the files its wheel must hold.
PACKAGE = {name: f"pymasep/comm/{name}" for name in DISTRIBUTIONS}
REQUIRED_FILES = {
    "core": (
        "pymasep/comm/core/__init__.py",
        "pymasep/comm/core/py.typed",
        "pymasep/communication/__init__.py",
        "pymasep/communication/py.typed",
        # The recorder's writer process and the watch page's static files (no build step).
        "pymasep/comm/core/_recordwriter.py",
        "pymasep/comm/core/watch/static/index.html",
        "pymasep/comm/core/watch/static/watch.js",
        "pymasep/comm/core/watch/static/watch.css",
        "pymasep/comm/core/watch/static/uPlot.iife.min.js",
        "pymasep/comm/core/watch/static/uPlot.min.css",
        "pymasep/comm/core/watch/static/uPlot.LICENSE",
    ),
    "server": ("pymasep/comm/server/__init__.py", "pymasep/comm/server/py.typed"),
    "client": ("pymasep/comm/client/__init__.py", "pymasep/comm/client/py.typed"),
}
FORBIDDEN_FILES = ("pymasep/__init__.py", "pymasep/comm/__init__.py")
# Parts of a path that have no business in a distribution.
# The one license; each distribution's directory holds a copy (hatchling takes license
# files from the project's own directory only).
LICENSE = Path(__file__).resolve().parents[2] / "LICENSE"
JUNK = re.compile(r"(^|/)(__pycache__|\.mypy_cache|\.pytest_cache|\.hypothesis|tests)(/|$)")


def _metadata(text: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for key, value in HeaderParser().parsestr(text).items():
        fields.setdefault(key, []).append(value)
    return fields


def _check_metadata(where: str, name: str, version: str, text: str) -> list[str]:
    problems = []
    fields = _metadata(text)
    if fields.get("Version") != [version]:
        problems.append(f"{where}: Version {fields.get('Version')}, not {version}")
    if fields.get("License-Expression") != ["MIT"]:
        problems.append(f"{where}: License-Expression {fields.get('License-Expression')}")
    if fields.get("License-File") != ["LICENSE"]:
        problems.append(f"{where}: License-File {fields.get('License-File')}, not LICENSE")
    if fields.get("Description-Content-Type") != ["text/markdown"]:
        problems.append(f"{where}: the README is not declared as Markdown")
    pins = [req for req in fields.get("Requires-Dist", []) if req.startswith("pymasep-comm")]
    wanted_pins = [] if name == "core" else [f"pymasep-comm-core=={version}"]
    if pins != wanted_pins:
        problems.append(f"{where}: requires {pins}, not {wanted_pins}")
    return problems


def _check_wheel(path: Path, name: str, version: str) -> list[str]:
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        dist_info = f"pymasep_comm_{name}-{version}.dist-info"
        metadata = wheel.read(f"{dist_info}/METADATA").decode("utf-8")
        license_file = f"{dist_info}/licenses/LICENSE"
        license_text = wheel.read(license_file) if license_file in names else None
    problems = _check_metadata(path.name, name, version, metadata)
    for forbidden in FORBIDDEN_FILES:
        if forbidden in names:
            problems.append(f"{path.name}: holds {forbidden}, which breaks the namespace")
    for required in REQUIRED_FILES[name]:
        if required not in names:
            problems.append(f"{path.name}: lacks {required}")
    if license_text is None:
        problems.append(f"{path.name}: lacks {license_file}")
    elif license_text != LICENSE.read_bytes():
        problems.append(f"{path.name}: its LICENSE differs from {LICENSE}")
    for entry in names:
        if entry.startswith(dist_info + "/"):
            continue
        if JUNK.search(entry):
            problems.append(f"{path.name}: holds {entry}")
        elif not entry.startswith(PACKAGE[name] + "/") and not (
            name == "core" and entry.startswith("pymasep/communication/")
        ):
            # Another distribution's files, or something outside the namespace.
            problems.append(f"{path.name}: holds {entry}, outside {PACKAGE[name]}")
    return problems


def _check_sdist(path: Path, name: str, version: str) -> list[str]:
    root = f"pymasep_comm_{name}-{version}"
    with tarfile.open(path) as sdist:
        names = sdist.getnames()
        member = sdist.extractfile(f"{root}/PKG-INFO")
        metadata = member.read().decode("utf-8") if member is not None else ""
    problems = _check_metadata(path.name, name, version, metadata)
    for required in ("LICENSE", "README.md", "pyproject.toml", *REQUIRED_FILES[name]):
        if f"{root}/{required}" not in names and f"{root}/src/{required}" not in names:
            problems.append(f"{path.name}: lacks {required}")
    for forbidden in FORBIDDEN_FILES:
        if f"{root}/src/{forbidden}" in names:
            problems.append(f"{path.name}: holds src/{forbidden}, which breaks the namespace")
    for entry in names:
        if re.search(r"(^|/)(__pycache__|\.mypy_cache|\.pytest_cache|\.hypothesis)(/|$)", entry):
            problems.append(f"{path.name}: holds {entry}")
    return problems


def contents(dist: Path, version: str) -> list[str]:
    """Check every artifact in ``dist``; return the problems found."""
    problems = []
    expected = {
        f"pymasep_comm_{name}-{version}{suffix}"
        for name in DISTRIBUTIONS
        for suffix in ("-py3-none-any.whl", ".tar.gz")
    }
    found = {path.name for path in dist.iterdir() if path.is_file()}
    if found != expected:
        problems.append(
            f"{dist} holds {sorted(found)}; expected exactly {sorted(expected)} "
            f"(missing {sorted(expected - found)}, extra {sorted(found - expected)})"
        )
    for name in DISTRIBUTIONS:
        wheel = dist / f"pymasep_comm_{name}-{version}-py3-none-any.whl"
        sdist = dist / f"pymasep_comm_{name}-{version}.tar.gz"
        if wheel.exists():
            problems += _check_wheel(wheel, name, version)
        if sdist.exists():
            problems += _check_sdist(sdist, name, version)
    return problems


def _expect_missing(attribute: str, distribution: str) -> None:
    """``from pymasep.communication import attribute`` must name the distribution."""
    try:
        exec(f"from pymasep.communication import {attribute}", {})
    except ImportError as error:
        if distribution not in str(error):
            raise AssertionError(f"the ImportError does not name {distribution}: {error}") from None
    else:
        raise AssertionError(f"{attribute} imported without {distribution} installed")


def smoke(installed: list[str]) -> None:
    """Import what the installed distributions provide; check what they do not."""
    for name in installed:
        if name not in DISTRIBUTIONS:
            raise SystemExit(f"unknown distribution {name!r}")
    core = importlib.import_module("pymasep.comm.core")
    if Path(sys.prefix).resolve() not in Path(core.__file__ or "").resolve().parents:
        raise AssertionError(f"pymasep.comm.core is not the installed one: {core.__file__}")
    from pymasep.communication import Frame, Message

    message = Message(Message.MESSAGE_TYPE_ACTION, {"move": "north", "done": False}, "p1")
    decoded = Message("", None, None)
    decoded.from_bytes(Frame(message.to_bytes()).message)
    assert decoded == message, (decoded, message)
    print(f"pymasep-comm-core {core.__version__} from {Path(core.__file__ or '').parent}")

    for name, attribute in (("server", "Server"), ("client", "Client")):
        module = f"pymasep.comm.{name}"
        if name in installed:
            exec(f"from pymasep.communication import {attribute}", {})
            importlib.import_module(module)
            print(f"pymasep-comm-{name}: {module} and pymasep.communication.{attribute} import")
        else:
            if importlib.util.find_spec(module) is not None:
                raise AssertionError(f"{module} is importable without pymasep-comm-{name}")
            _expect_missing(attribute, f"pymasep-comm-{name}")
            print(f"without pymasep-comm-{name}: {attribute} raises an ImportError naming it")
    if "server" in installed:
        import queue

        from pymasep.communication import Server, SocketHandlerQueue

        with Server("smoke", 1, SocketHandlerQueue, (queue.Queue(),), "127.0.0.1", 0) as server:
            server.wait_connection()
        print(f"pymasep-comm-server: a Server bound port {server.port} and closed")
    if "client" in installed:
        from importlib.metadata import entry_points

        (script,) = entry_points(group="console_scripts", name="pymasep-comm")
        assert script.value == "pymasep.comm.client.__main__:main", script
        assert callable(script.load())
        print("pymasep-comm-client: the pymasep-comm command loads")


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "contents":
        problems = contents(Path(argv[1]), argv[2])
        for problem in problems:
            print(problem, file=sys.stderr)
        if not problems:
            print(f"{argv[1]}: 3 wheels and 3 sdists at {argv[2]}, contents as expected")
        return 1 if problems else 0
    if len(argv) >= 2 and argv[0] == "smoke":
        smoke(argv[1:])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
