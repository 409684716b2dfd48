"""Developer tasks for pymasep-comm: ``nox`` runs the tests, lint and type checks.

Each session is a thin wrapper over :func:`_install`; arguments after ``--`` reach the
tool it runs (``nox -s tests -- -k frame``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = ROOT / "packages"
DISTRIBUTIONS = ("core", "server", "client")
# Which sibling distributions each distribution's tests need installed beside it.
NEEDS = {"core": ("core",), "server": ("core", "server"), "client": ("core", "client")}
TEST_REQUIREMENTS = ("pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "trustme>=1.1")

nox.needs_version = ">=2024.3.2"
nox.options.sessions = [
    "tests",
    "integration",
    "lint",
    "typecheck",
    "interop",
    "games",
    "pymasep",
    "fuzz",
    "soak",
]
nox.options.error_on_external_run = True


def _install(session: nox.Session, *distributions: str, requirements: tuple[str, ...] = ()) -> None:
    """Install the named distributions (``core``, ``server``, ``client``) from this tree."""
    paths = [str(PACKAGES / f"pymasep-comm-{name}") for name in distributions]
    session.install(*paths, *requirements)


@nox.session
@nox.parametrize("package", DISTRIBUTIONS)
def tests(session: nox.Session, package: str) -> None:
    """Run one distribution's unit tests against its installed wheel."""
    _install(session, *NEEDS[package], requirements=TEST_REQUIREMENTS)
    session.run("pytest", str(PACKAGES / f"pymasep-comm-{package}" / "tests"), *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Run the tests that need the three distributions together (not the interop ones)."""
    _install(session, *DISTRIBUTIONS, requirements=TEST_REQUIREMENTS)
    session.run(
        "pytest",
        str(ROOT / "integration_tests"),
        "--ignore",
        str(ROOT / "integration_tests" / "interop"),
        "--ignore",
        str(ROOT / "integration_tests" / "games"),
        "--ignore",
        str(ROOT / "integration_tests" / "pymasep"),
        "--ignore",
        str(ROOT / "integration_tests" / "benchmarks"),
        *session.posargs,
    )
    # The client's discovery tests against the real Announcer: its own session installs
    # only the client and core, so they are skipped there and run here.
    client_discovery = PACKAGES / "pymasep-comm-client" / "tests" / "test_discovery.py"
    session.run("pytest", str(client_discovery), "-k", "announcer", "-rs")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff, and that the three distributions share one version."""
    check_versions()
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the sources with mypy --strict."""
    _install(session, *DISTRIBUTIONS, requirements=("mypy>=1.10", "lxml-stubs"))
    packages = [arg for name in DISTRIBUTIONS for arg in ("-p", f"pymasep.comm.{name}")]
    session.run("mypy", "--strict", *packages, "-p", "pymasep.communication", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Measure speed as ratios against baselines, pymasep 0.2 and pyzmq in the same run;
    rewrite docs/benchmarks.md and its chart."""
    python02 = _pymasep02(session)
    env = {"PYMASEP02_PYTHON": python02} if python02 else {}
    if python02:
        # pymasep 0.2 first, then ours over it, as a 0.2 user switches: the codec
        # benchmark builds pymasep's own objects and runs 0.2's Message beside ours.
        session.install(PYMASEP_02)
        # pymasep's own game on pymasep-comm, against the same on 0.2.
        env["PYMASEP_ON_COMM_PYTHON"] = _pymasep_on_comm(session)
    _install(session, *DISTRIBUTIONS, requirements=("pyzmq", "matplotlib", "trustme"))
    session.run(
        "python",
        str(ROOT / "integration_tests" / "benchmarks" / "run.py"),
        *session.posargs,
        env=env,
    )


PYMASEP_02 = "pymasep==0.2"
# What pip says when it cannot reach the index at all (rather than any other failure).
_OFFLINE = (
    "NewConnectionError",
    "ConnectTimeout",
    "Max retries exceeded",
    "ProxyError",
    "name resolution",
    "Network is unreachable",
)


def _pymasep02(session: nox.Session) -> str | None:
    """Install pymasep 0.2 from PyPI, with every dependency it declares, in a virtualenv
    of its own (its ``pymasep`` and ours cannot share one); return its interpreter, or
    None when PyPI is unreachable. The virtualenv is kept in nox's cache across runs."""
    import subprocess
    import sys
    import time

    venv = (session.cache_dir / "pymasep-0.2").resolve()  # tests run in other directories
    python = str(venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python"))
    check = [python, "-c", "import importlib.metadata as m; assert m.version('pymasep') == '0.2'"]
    if Path(python).exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    session.run("python", "-m", "venv", "--clear", str(venv))
    options = ["--no-deps", "--timeout", "20", "--retries", "1", "-d", session.create_tmp()]
    fetch = subprocess.run(
        [python, "-m", "pip", "download", *options, PYMASEP_02], capture_output=True, text=True
    )
    if fetch.returncode != 0 and any(sign in fetch.stderr for sign in _OFFLINE):
        session.warn(f"PyPI is unreachable, no {PYMASEP_02}: {fetch.stderr[-300:]}")
        return None
    started = time.monotonic()
    session.run(python, "-m", "pip", "install", "--quiet", PYMASEP_02, external=True)
    session.log(f"{PYMASEP_02} (with its dependencies) took {time.monotonic() - started:.0f} s")
    return python


@nox.session
def interop(session: nox.Session) -> None:
    """Talk to the real pymasep 0.2, each side in its own process and virtualenv."""
    _install(session, *DISTRIBUTIONS, requirements=TEST_REQUIREMENTS)
    python = _pymasep02(session)
    if python is None:
        # Offline, a developer may skip it; CI (which sets CI) must not pass without it.
        if os.environ.get("CI"):
            session.error("PyPI is unreachable: no pymasep 0.2")
        session.skip("PyPI is unreachable: no pymasep 0.2")
    interop_tests = str(ROOT / "integration_tests" / "interop")
    session.run("pytest", "-rs", interop_tests, *session.posargs, env={"PYMASEP02_PYTHON": python})


GAMES = ROOT / "integration_tests" / "games"


@nox.session
def games(session: nox.Session) -> None:
    """Play games across processes as users deploy them: the engine in a virtualenv with
    only pymasep-comm-server, the interfaces in one with only pymasep-comm-client, both
    installed from the wheels built here; pytest runs in a third, without pymasep-comm."""
    import shutil
    import sys

    session.install("pytest>=8", "pytest-timeout>=2.3", "hatchling>=1.27", "pip>=22.3")
    version = (ROOT / "VERSION").read_text().strip()
    tmp = Path(session.create_tmp()).resolve()  # the processes run in other directories
    wheels = tmp / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    projects = [str(PACKAGES / f"pymasep-comm-{name}") for name in DISTRIBUTIONS]
    build = ("--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels))
    session.run("python", "-m", "pip", "wheel", *build, *projects)
    pythons = {}
    for side in ("server", "client"):
        venv = tmp / f"{side}-venv"
        # Without pip of its own (ensurepip is slow): this session's pip (--python)
        # installs into it, lxml from the index and pymasep-comm from the wheels' files.
        session.run("python", "-m", "venv", "--clear", "--without-pip", str(venv))
        python = str(venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python"))
        files = [
            str(next(wheels.glob(f"pymasep_comm_{n}-{version}-*.whl"))) for n in ("core", side)
        ]
        session.run("python", "-m", "pip", "--quiet", "--python", python, "install", "lxml", *files)
        pythons[side] = python
    env = {"GAMES_ENGINE_PYTHON": pythons["server"], "GAMES_INTERFACE_PYTHON": pythons["client"]}
    session.run("pytest", "-rs", "--timeout", "120", str(GAMES), *session.posargs, env=env)


PYMASEP_ON_COMM = ROOT / "integration_tests" / "pymasep"


def _pymasep_on_comm(session: nox.Session) -> str:
    """Install pymasep 0.2 then our three wheels over it, in a fresh virtualenv, exactly
    as docs/migration.md says; check it with ``python -m pymasep.comm.core`` (no 0.2 code
    left in pymasep.communication); return its interpreter."""
    import shutil
    import sys

    session.install("hatchling>=1.27")
    version = (ROOT / "VERSION").read_text().strip()
    tmp = Path(session.create_tmp()).resolve()  # the processes run in other directories
    wheels = tmp / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    projects = [str(PACKAGES / f"pymasep-comm-{name}") for name in DISTRIBUTIONS]
    build = ("--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels))
    session.run("python", "-m", "pip", "wheel", *build, *projects)
    # A fresh virtualenv each run: the documented steps, in order, from nothing.
    venv = tmp / "pymasep-on-comm"
    session.run("python", "-m", "venv", "--clear", str(venv))
    python = str(venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python"))
    pip = (python, "-m", "pip", "install", "--quiet")
    session.run(*pip, PYMASEP_02, external=True)
    files = [
        str(wheels / f"pymasep_comm_{name}-{version}-py3-none-any.whl") for name in DISTRIBUTIONS
    ]
    session.run(*pip, *files, external=True)
    with session.chdir(tmp):  # importing pymasep 0.2 may write logs/ into the working directory
        quiet = {"PYGAME_HIDE_SUPPORT_PROMPT": "1"}
        session.run(python, "-m", "pymasep.comm.core", external=True, env=quiet)
    return python


@nox.session
def pymasep(session: nox.Session) -> None:
    """pymasep 0.2's own engine and interfaces on pymasep-comm: install them as
    docs/migration.md says (pymasep 0.2 from PyPI, then our three wheels over it), check
    with ``python -m pymasep.comm.core`` that no 0.2 code is left in
    pymasep.communication, then play whole games across processes."""
    if _pymasep02(session) is None:  # PyPI unreachable (the venv is interop's, cached)
        if os.environ.get("CI"):
            session.error("PyPI is unreachable: no pymasep 0.2")
        session.skip("PyPI is unreachable: no pymasep 0.2")
    session.install("pytest>=8", "pytest-timeout>=2.3")
    env = {"PYMASEP_ON_COMM_PYTHON": _pymasep_on_comm(session)}
    session.run(
        "pytest", "-rs", "--timeout", "600", str(PYMASEP_ON_COMM), *session.posargs, env=env
    )


@nox.session
def demo(session: nox.Session) -> None:
    """Watch a game: an engine and two interfaces, each a process, find each other by
    discovery on loopback and play to the end (``-- --game Race``, ``-- --fast``)."""
    _install(session, *DISTRIBUTIONS)
    session.run("python", str(ROOT / "integration_tests" / "demo" / "run.py"), *session.posargs)


DOCS_REQUIREMENTS = ("sphinx==8.1.3", "furo==2025.12.19", "myst-parser==4.0.1")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML documentation into docs/_build/html; any warning fails the build."""
    _install(session, *DISTRIBUTIONS, requirements=DOCS_REQUIREMENTS)
    out = ROOT / "docs" / "_build"
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "--fresh-env",
        "-b",
        "html",
        "-d",
        str(out / "doctrees"),
        str(ROOT / "docs"),
        str(out / "html"),
        *session.posargs,
    )


FUZZ = ROOT / "integration_tests" / "fuzz"


@nox.session
def fuzz(session: nox.Session) -> None:
    """Fuzz the frame decoder, the handshakes, Message.from_bytes and the discovery parsers
    with atheris, coverage-guided, from the seed corpus (``-- --seconds N`` per target,
    ``-- --target decoder``, ``-- --replay FILE``)."""
    _install(session, "core", requirements=("atheris>=2.3",))
    # The corpus grown by earlier runs is kept here, so each run starts where they ended.
    out = Path(session.create_tmp()).resolve() / "fuzz"
    session.run("python", str(FUZZ / "run.py"), "--out", str(out), *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Play an engine with 16 interface processes under churn, SIGKILLs, garbage and a
    stalled interface; fail on a lost or reordered frame, or on an engine whose memory,
    threads or descriptors keep growing (``-- --minutes N``, default 1; ``-- --out DIR``
    for soak.md and soak.png, default this session's tmp/soak)."""
    _install(session, *DISTRIBUTIONS, requirements=("matplotlib",))
    out = Path(session.create_tmp()).resolve() / "soak"
    soak_run = ROOT / "integration_tests" / "soak" / "run.py"
    session.run("python", str(soak_run), "--out", str(out), *session.posargs)


BUILD_REQUIREMENTS = ("build==1.6.1", "twine==7.0.0")


@nox.session
def build(session: nox.Session) -> None:
    """Build the wheels and sdists into dist/ and check them; then install each wheel
    alone, from dist/ only, in a fresh virtualenv and import it."""
    import shutil
    import sys

    check_versions()
    version = (ROOT / "VERSION").read_text().strip()
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install(*BUILD_REQUIREMENTS)
    for name in DISTRIBUTIONS:
        project = str(PACKAGES / f"pymasep-comm-{name}")
        session.run("python", "-m", "build", "--outdir", str(dist), project)
    session.run("twine", "check", "--strict", *sorted(str(path) for path in dist.iterdir()))
    checker = str(ROOT / "integration_tests" / "packaging" / "check_dist.py")
    session.run("python", checker, "contents", str(dist), version)
    for installed in (("core",), ("core", "server"), ("core", "client")):
        venv = Path(session.create_tmp()) / f"smoke-{installed[-1]}"
        session.run("python", "-m", "venv", "--clear", str(venv))
        python = str(venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python"))
        pip = (python, "-m", "pip", "--quiet")
        # lxml from the index; pymasep-comm from dist/ alone, pins resolved there.
        session.run(*pip, "install", "lxml", external=True)
        wanted = f"pymasep-comm-{installed[-1]}=={version}"
        session.run(*pip, "install", "--no-index", "--find-links", str(dist), wanted, external=True)
        session.run(*pip, "check", external=True)
        session.run(python, checker, "smoke", *installed, external=True)


@nox.session(python=False)
def version(session: nox.Session) -> None:
    """Check the version everywhere, or set it: ``nox -s version -- 0.4.0``."""
    if session.posargs:
        (ROOT / "VERSION").write_text(session.posargs[0].strip() + "\n")
        _write_versions()
    check_versions()


_VERSION_LINE = re.compile(r'^version = "([^"]*)"$', re.MULTILINE)
_CORE_PIN = re.compile(r'"pymasep-comm-core==([^"]*)"')


def _write_versions() -> None:
    wanted = (ROOT / "VERSION").read_text().strip()
    for name in DISTRIBUTIONS:
        path = PACKAGES / f"pymasep-comm-{name}" / "pyproject.toml"
        text = _VERSION_LINE.sub(f'version = "{wanted}"', path.read_text())
        path.write_text(_CORE_PIN.sub(f'"pymasep-comm-core=={wanted}"', text))


def check_versions() -> None:
    """Fail unless every pyproject carries the version in ``VERSION`` and pins core to it."""
    wanted = (ROOT / "VERSION").read_text().strip()
    problems = []
    for name in DISTRIBUTIONS:
        path = PACKAGES / f"pymasep-comm-{name}" / "pyproject.toml"
        text = path.read_text()
        found = _VERSION_LINE.findall(text)
        if found != [wanted]:
            problems.append(f"{path.relative_to(ROOT)}: version {found}, VERSION says {wanted}")
        pins = _CORE_PIN.findall(text)
        if name != "core" and pins != [wanted]:
            problems.append(f"{path.relative_to(ROOT)}: pins core to {pins}, not {wanted}")
    if problems:
        raise SystemExit(
            "versions drifted (fix with nox -s version -- X.Y.Z):\n" + "\n".join(problems)
        )
