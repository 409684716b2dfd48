"""Developer tasks for pymasep-comm. `nox` runs the default sessions (marked *).

Arguments after -- reach the tool a session runs: nox -s "tests(package='core')" -- -k frame.
Every tool is pinned in constraints.txt (refresh it with nox -s lock).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = ROOT / "packages"
DISTRIBUTIONS = ("core", "server", "client")
# Which sibling distributions each distribution's tests need installed beside it.
NEEDS = {"core": ("core",), "server": ("core", "server"), "client": ("core", "client")}
# The tools, by name: their versions are pinned in CONSTRAINTS, which nox -s lock writes.
CONSTRAINTS = ROOT / "constraints.txt"
TEST_REQUIREMENTS = (
    "pytest",
    "pytest-timeout",
    "pytest-socket",
    "pytest-xdist",
    "hypothesis",
    "coverage",
    "trustme",
)
LINT_REQUIREMENTS = ("ruff",)
# The watch page's browser tests: playwright drives the system's Chromium (apt-get
# install chromium; .ci/run installs it), so no browser is downloaded.
WATCH_REQUIREMENTS = ("playwright",)
TYPECHECK_REQUIREMENTS = ("mypy", "lxml-stubs", "nox", *TEST_REQUIREMENTS, *WATCH_REQUIREMENTS)
BUILD_REQUIREMENTS = ("build", "hatchling", "twine")
DOCS_REQUIREMENTS = ("sphinx", "furo", "myst-parser")
# What nox -s lock resolves: every tool, and the documentation's held at the releases it
# was last checked against (Sphinx warnings fail its build; raise them on purpose).
LOCKED = (
    *TEST_REQUIREMENTS,
    *LINT_REQUIREMENTS,
    *TYPECHECK_REQUIREMENTS,
    *BUILD_REQUIREMENTS,
    *WATCH_REQUIREMENTS,
    "sphinx==8.1.3",
    "furo==2025.12.19",
    "myst-parser==4.0.1",
    "lxml",
    "matplotlib",
    "pyzmq",
)
# Pinned by hand, per Python: no atheris release serves them all (3.0 has no wheel for
# Python 3.10, and 2.3's instrumentation breaks the fuzz targets on 3.11 and later).
PER_PYTHON_PINS = (
    'atheris==2.3.0; python_version < "3.11"',
    'atheris==3.0.0; python_version >= "3.11"',
)

nox.needs_version = ">=2024.3.2"
nox.options.sessions = [
    "tests",
    "integration",
    "lint",
    "typecheck",
    "interop",
    "games",
    "pymasep",
    "watch",
    "fuzz",
    "soak",
    "coverage",
]
nox.options.error_on_external_run = True
# uv makes the virtualenvs and installs into them when nox has it (pip install "nox[uv]",
# as the README says): seconds less per session than pip. Without it, virtualenv and pip.
nox.options.default_venv_backend = "uv|virtualenv"
# Byte-compiled at install, as pip does: uv does not by default, and where the environment
# forbids writing bytecode (PYTHONDONTWRITEBYTECODE) every process, every pytest-xdist
# worker, would compile pytest, hypothesis and lxml's Python again.
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")


def _python(venv: Path) -> str:
    return str(venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python"))


def _install_into(session: nox.Session, python: str, *args: str) -> None:
    """Install ``args`` into the virtualenv of ``python``, made without pip of its own
    (``python -m venv --without-pip``: ensurepip is slow), with the session's installer."""
    if session.venv_backend == "uv":
        session.run("uv", "pip", "install", "--quiet", "--python", python, *args, external=True)
    else:
        session.run("python", "-m", "pip", "--quiet", "--python", python, "install", *args)


# --- wheels: built one way, once per change of the sources ------------------------------


def _sources_digest() -> str:
    """A digest of what goes into the three wheels, and of the pinned build tools."""
    digest = hashlib.sha256(CONSTRAINTS.read_bytes())
    for name in DISTRIBUTIONS:
        project = PACKAGES / f"pymasep-comm-{name}"
        files = [project / "pyproject.toml", project / "README.md", project / "LICENSE"]
        files += sorted(p for p in (project / "src").rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _builder(session: nox.Session) -> str:
    """The interpreter of a virtualenv (in nox's cache) holding the pinned build tools."""
    venv = (session.cache_dir / "builder").resolve()
    stamp = venv / "constraints.txt"
    if not (stamp.exists() and stamp.read_bytes() == CONSTRAINTS.read_bytes()):
        session.run("python", "-m", "venv", "--clear", "--without-pip", str(venv))
        _install_into(session, _python(venv), "-c", str(CONSTRAINTS), "build", "hatchling")
        shutil.copyfile(CONSTRAINTS, stamp)
    return _python(venv)


def _build(session: nox.Session, outdir: Path, *, sdists: bool = False) -> None:
    """Build each distribution's wheel into ``outdir``; with ``sdists``, its sdist first,
    and the wheel from that sdist (as an installer given the sdist would).

    The one way wheels are made here (the build session, the tests' installs, the games'
    virtualenvs): ``python -m build`` with the hatchling pinned in constraints.txt.
    """
    python = _builder(session)
    for name in DISTRIBUTIONS:
        project = str(PACKAGES / f"pymasep-comm-{name}")
        build = (python, "-m", "build", "--no-isolation", "--outdir", str(outdir), project)
        session.run(*build, *(() if sdists else ("--wheel",)), external=True, silent=True)


def _wheels(session: nox.Session) -> dict[str, Path]:
    """The three wheels of the current sources, built on first use (kept in nox's cache)."""
    version = (ROOT / "VERSION").read_text().strip()
    store = (session.cache_dir / "wheels" / _sources_digest()).resolve()
    if not store.exists():
        building = store.with_name(f"{store.name}.{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        _build(session, building)
        building.replace(store)  # whole, or not at all, even with two nox runs at once
    return {
        name: next(store.glob(f"pymasep_comm_{name}-{version}-*.whl")) for name in DISTRIBUTIONS
    }


def _install(session: nox.Session, *distributions: str, requirements: tuple[str, ...] = ()) -> None:
    """Install the named distributions (``core``, ``server``, ``client``), from the wheels
    of this tree, and the requirements, pinned by constraints.txt."""
    wheels = _wheels(session)
    paths = [str(wheels[name]) for name in distributions]
    # Ours first, replacing what a reused virtualenv (nox -r) holds under the same
    # version; then their dependencies and the requirements.
    reinstall = "--reinstall" if session.venv_backend == "uv" else "--force-reinstall"
    session.install("--no-deps", reinstall, "--quiet", *paths)
    session.install("-c", str(CONSTRAINTS), *paths, *requirements)


# --- coverage: measured by every test session, combined by the last --------------------

COVERAGE_DATA = ROOT / ".nox" / ".cache" / "coverage"


def _pytest(
    session: nox.Session, *args: str, env: dict[str, str] | None = None, parallel: bool = False
) -> None:
    """Run pytest under coverage (see _measured). With ``parallel``, in two workers or
    more (pytest-xdist; ``-- -n 0`` for one process): for suites whose tests compute or
    wait independently of each other, and are collected alike in every worker."""
    workers = ("-n", "auto", "--maxprocesses", "4", "--dist", "worksteal") if parallel else ()
    _measured(session, "-m", "pytest", *workers, *args, env=env)


def _forget_coverage(session: nox.Session) -> str:
    """Delete what this session's previous runs left in COVERAGE_DATA; return the name
    its data goes under."""
    name = re.sub(r"[^\w-]+", "-", session.name).strip("-")
    COVERAGE_DATA.mkdir(parents=True, exist_ok=True)
    for stale in COVERAGE_DATA.glob(f".coverage.{name}.*"):
        stale.unlink()
    return name


def _measured(session: nox.Session, *args: str, env: dict[str, str] | None = None) -> None:
    """Run ``python *args`` under coverage; this session's data (and its subprocesses')
    replace what its previous run left in COVERAGE_DATA."""
    name = _forget_coverage(session)
    env = {
        **(env or {}),
        "COVERAGE_FILE": str(COVERAGE_DATA / f".coverage.{name}"),
        "COVERAGE_RCFILE": str(ROOT / ".coveragerc"),
    }
    session.run("coverage", "run", *args, env=env)


# --- tests -------------------------------------------------------------------------------


@nox.session
@nox.parametrize("package", DISTRIBUTIONS)
def tests(session: nox.Session, package: str) -> None:
    """Run one distribution's unit tests against its installed wheel."""
    _install(session, *NEEDS[package], requirements=TEST_REQUIREMENTS)
    tests = str(PACKAGES / f"pymasep-comm-{package}" / "tests")
    _pytest(session, tests, *session.posargs, parallel=True)


@nox.session
def integration(session: nox.Session) -> None:
    """Run the tests that need the three distributions together (not the interop ones)."""
    # pyzmq: the benchmarks' delivery tests run every contender, pyzmq's too.
    _install(session, *DISTRIBUTIONS, requirements=(*TEST_REQUIREMENTS, "nox", "pyzmq"))
    apart = ("interop", "games", "pymasep", "watch")  # their own sessions
    ignore = [arg for name in apart for arg in ("--ignore", str(ROOT / "integration_tests" / name))]
    _pytest(session, str(ROOT / "integration_tests"), *ignore, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff, and that the three distributions share one version."""
    check_versions()
    session.install("-c", str(CONSTRAINTS), *LINT_REQUIREMENTS)
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")


# The test code, by groups that mypy checks apart: their modules import each other by
# bare name (conftest, harness, ...), and the same names recur from one group to the
# next. Each group: its directories, and where it finds the modules it imports.
TYPED_TEST_GROUPS = (
    (("packages/pymasep-comm-core/tests",), ""),
    (("packages/pymasep-comm-server/tests",), ""),
    (("packages/pymasep-comm-client/tests",), ""),
    (("integration_tests", "integration_tests/packaging"), ""),
    (("integration_tests/interop",), ""),
    (("integration_tests/games",), ""),
    (("integration_tests/benchmarks",), ""),
    (("integration_tests/pymasep",), ""),
    (("integration_tests/watch",), ""),
    (("integration_tests/fuzz",), ""),
    (("integration_tests/soak",), ""),
)


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the sources, the tests and this noxfile with mypy --strict (mypy.ini)."""
    _install(session, *DISTRIBUTIONS, requirements=TYPECHECK_REQUIREMENTS)
    packages = [arg for name in DISTRIBUTIONS for arg in ("-p", f"pymasep.comm.{name}")]
    session.run("mypy", *packages, "-p", "pymasep.communication", *session.posargs)
    for directories, path in TYPED_TEST_GROUPS:
        files = sorted(str(f) for d in directories for f in (ROOT / d).glob("*.py"))
        if "integration_tests" in directories:
            files.append(str(ROOT / "noxfile.py"))
        session.run("mypy", *files, *session.posargs, env={"MYPYPATH": path})


# --- pymasep 0.2, interop, games ---------------------------------------------------------

PYMASEP_02 = "pymasep==0.2"


def _pymasep02(session: nox.Session) -> str | None:
    """Install pymasep 0.2 from PyPI, with every dependency it declares, in a virtualenv
    of its own (its ``pymasep`` and ours cannot share one); return its interpreter, or
    None when it cannot be fetched. The virtualenv is kept in nox's cache across runs."""
    import time

    venv = (session.cache_dir / "pymasep-0.2").resolve()  # tests run in other directories
    python = _python(venv)
    check = [python, "-c", "import importlib.metadata as m; assert m.version('pymasep') == '0.2'"]
    if Path(python).exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    session.run("python", "-m", "venv", "--clear", str(venv))
    # Whether the index (whatever pip is configured with) can serve pymasep 0.2 at all:
    # a download of its own file alone, judged by pip's exit status.
    options = ["--no-deps", "--timeout", "20", "--retries", "1", "-d", session.create_tmp()]
    fetch = [python, "-m", "pip", "download", "--quiet", *options, PYMASEP_02]
    if subprocess.run(fetch, capture_output=True).returncode != 0:
        session.warn(f"pip cannot fetch {PYMASEP_02} from its index (offline?)")
        return None
    started = time.monotonic()
    _install_into(session, python, PYMASEP_02)
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
    env = {"PYMASEP02_PYTHON": python}
    _pytest(session, interop_tests, *session.posargs, env=env, parallel=True)


GAMES = ROOT / "integration_tests" / "games"


@nox.session
def games(session: nox.Session) -> None:
    """Play games across processes, each side in a virtualenv of its own.

    The engine runs in a virtualenv with only pymasep-comm-server, the interfaces in one
    with only pymasep-comm-client, both installed from the wheels built here; pytest runs
    in a third, with core alone (for the test helpers).
    """
    wheels = _wheels(session)
    _install(session, "core", requirements=TEST_REQUIREMENTS)
    tmp = Path(session.create_tmp()).resolve()  # the processes run in other directories
    pythons = {}
    for side in ("server", "client"):
        venv = tmp / f"{side}-venv"
        # lxml from the index, pymasep-comm from the wheels.
        session.run("python", "-m", "venv", "--clear", "--without-pip", str(venv))
        python = _python(venv)
        files = [str(wheels["core"]), str(wheels[side])]
        # coverage: its .pth file makes each process measure itself when the test
        # session asks (COVERAGE_PROCESS_START), else it stays out of the way.
        _install_into(session, python, "-c", str(CONSTRAINTS), "lxml", "coverage", *files)
        pythons[side] = python
    env = {"GAMES_ENGINE_PYTHON": pythons["server"], "GAMES_INTERFACE_PYTHON": pythons["client"]}
    # In one process: each game runs several processes already.
    _pytest(session, "--timeout", "120", str(GAMES), *session.posargs, env=env)


PYMASEP_ON_COMM = ROOT / "integration_tests" / "pymasep"


def _pymasep_on_comm(session: nox.Session) -> str:
    """Install pymasep 0.2 then our three wheels over it, in a fresh virtualenv, exactly
    as docs/migration.md says; check it with ``python -m pymasep.comm.core`` (no 0.2 code
    left in pymasep.communication); return its interpreter."""
    wheels = _wheels(session)
    tmp = Path(session.create_tmp()).resolve()  # the processes run in other directories
    # A fresh virtualenv each run: the documented steps, in order, from nothing.
    venv = tmp / "pymasep-on-comm"
    session.run("python", "-m", "venv", "--clear", str(venv))
    python = _python(venv)
    pip = (python, "-m", "pip", "install", "--quiet")
    session.run(*pip, PYMASEP_02, external=True)
    session.run(*pip, *(str(wheels[name]) for name in DISTRIBUTIONS), external=True)
    # No coverage here: finding pymasep.comm.core at start-up would import pymasep's
    # __init__ (opencv, numpy...) before the process is ready for it.
    with session.chdir(tmp):  # importing pymasep 0.2 may write logs/ into the working directory
        quiet = {"PYGAME_HIDE_SUPPORT_PROMPT": "1"}
        session.run(python, "-m", "pymasep.comm.core", external=True, env=quiet)
    return python


@nox.session
def pymasep(session: nox.Session) -> None:
    """Play pymasep 0.2's own engine and interfaces on our wheels, installed as documented.

    pymasep 0.2 from PyPI, then our three wheels over it (docs/migration.md); ``python -m
    pymasep.comm.core`` checks that no 0.2 code is left in pymasep.communication; then
    whole games across processes, also with keys and TLS from a settings file
    (PYMASEP_COMM_CONFIG). pytest runs with core alone (for the test helpers).
    """
    if _pymasep02(session) is None:  # PyPI unreachable (the venv is interop's, cached)
        if os.environ.get("CI"):
            session.error("PyPI is unreachable: no pymasep 0.2")
        session.skip("PyPI is unreachable: no pymasep 0.2")
    _install(session, "core", requirements=TEST_REQUIREMENTS)
    env = {"PYMASEP_ON_COMM_PYTHON": _pymasep_on_comm(session)}
    _pytest(session, "--timeout", "600", str(PYMASEP_ON_COMM), *session.posargs, env=env)


WATCH = ROOT / "integration_tests" / "watch"


@nox.session
def watch(session: nox.Session) -> None:
    """The watch page (python -m pymasep.comm.core watch) in a real headless Chromium.

    Debian's ``chromium`` (``apt-get install chromium``; another with WATCH_CHROMIUM),
    driven by playwright. The screenshot the tests take lands in .nox/.cache/watch/
    (docs/_static/watch.png is a copy).
    """
    _install(session, *DISTRIBUTIONS, requirements=(*TEST_REQUIREMENTS, *WATCH_REQUIREMENTS))
    env = {"WATCH_SCREENSHOTS": str(ROOT / ".nox" / ".cache" / "watch")}
    _pytest(session, str(WATCH), *session.posargs, env=env)


FUZZ = ROOT / "integration_tests" / "fuzz"


@nox.session
def fuzz(session: nox.Session) -> None:
    """Fuzz the decoder, handshakes, Message and discovery (-- --seconds N per target).

    atheris, coverage-guided, from the seed corpus (``-- --target decoder``, ``-- --replay
    FILE``); the corpus grown by earlier runs is kept, so each run starts where they ended.
    """
    _install(session, "core", requirements=("atheris",))
    out = Path(session.create_tmp()).resolve() / "fuzz"
    session.run("python", str(FUZZ / "run.py"), "--out", str(out), *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Play an engine with 16 interface processes under churn (-- --minutes N, default 1).

    SIGKILLs, garbage and a stalled interface too; fails on a lost or reordered frame, or
    on an engine whose memory, threads or descriptors keep growing (``-- --out DIR`` for
    soak.md and soak.png, default this session's tmp/soak). ``-- --interfaces 64
    --processes 4``: 64 interfaces, the players among them sharing 4 processes.
    """
    _install(session, *DISTRIBUTIONS, requirements=("matplotlib", "coverage"))
    out = Path(session.create_tmp()).resolve() / "soak"
    soak_run = ROOT / "integration_tests" / "soak" / "run.py"
    # Not under coverage: on Python < 3.12 coverage.py gives every new thread a tracer and
    # keeps it until the process ends (about 1 KiB each), and the engine starts a delivery
    # thread per connection, so the run would measure coverage's memory, not the engine's
    # (run.py refuses to run under such a tracer).
    _forget_coverage(session)  # measured by earlier versions: that data no longer counts
    session.run("python", str(soak_run), "--out", str(out), *session.posargs)


@nox.session
def coverage(session: nox.Session) -> None:
    """Combine the test sessions' coverage; fail under the floor in .coveragerc."""
    session.install("-c", str(CONSTRAINTS), "coverage")
    parts = sorted(COVERAGE_DATA.glob(".coverage.*")) if COVERAGE_DATA.exists() else []
    if not parts:
        session.error("no coverage data: run the test sessions first (plain `nox` does)")
    env = {"COVERAGE_FILE": str(ROOT / ".coverage"), "COVERAGE_RCFILE": str(ROOT / ".coveragerc")}
    session.run("coverage", "combine", "--keep", "--quiet", str(COVERAGE_DATA), env=env)
    session.run("coverage", "report", *session.posargs, env=env)


@nox.session
def demo(session: nox.Session) -> None:
    """Watch an engine and two interfaces find each other and play (-- --game Race)."""
    _install(session, *DISTRIBUTIONS)
    session.run("python", str(GAMES / "demo.py"), *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Measure speed as ratios against baselines; rewrite docs/benchmarks.md.

    ``-- --quick`` checks the benchmarks themselves (a tenth of the work, one round, no
    codec or pymasep game) and writes the page into the session's scratch folder.
    """
    python02 = _pymasep02(session)
    env = {"PYMASEP02_PYTHON": python02} if python02 else {}
    if python02:
        # pymasep 0.2 first, then ours over it, as a 0.2 user switches: the codec
        # benchmark builds pymasep's own objects and runs 0.2's Message beside ours.
        session.install(PYMASEP_02)
        # pymasep's own game on pymasep-comm, against the same on 0.2.
        env["PYMASEP_ON_COMM_PYTHON"] = _pymasep_on_comm(session)
    _install(session, *DISTRIBUTIONS, requirements=("pyzmq", "matplotlib", "trustme"))
    # pymasep 0.2 writes logs/ into the working directory when imported.
    with session.chdir(session.create_tmp()):
        session.run(
            "python", str(ROOT / "integration_tests" / "benchmarks" / "run.py"),
            *session.posargs, env=env,
        )  # fmt: skip


# --- documentation, distributions, version, pins ----------------------------------------


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


@nox.session
def build(session: nox.Session) -> None:
    """Build the wheels and sdists into dist/, check them, install each alone, run its tests."""
    check_versions()
    version = (ROOT / "VERSION").read_text().strip()
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    _build(session, dist, sdists=True)
    session.install("-c", str(CONSTRAINTS), "twine")
    session.run("twine", "check", "--strict", *sorted(str(path) for path in dist.iterdir()))
    checker = str(ROOT / "integration_tests" / "packaging" / "check_dist.py")
    session.run("python", checker, "contents", str(dist), version)
    for installed in (("core",), ("core", "server"), ("core", "client")):
        venv = Path(session.create_tmp()).resolve() / f"smoke-{installed[-1]}"
        session.run("python", "-m", "venv", "--clear", str(venv))
        python = _python(venv)
        pip = (python, "-m", "pip", "--quiet")
        # lxml from the index; pymasep-comm from dist/ alone, pins resolved there.
        session.run(*pip, "install", "-c", str(CONSTRAINTS), "lxml", external=True)
        wanted = f"pymasep-comm-{installed[-1]}=={version}"
        session.run(*pip, "install", "--no-index", "--find-links", str(dist), wanted, external=True)
        session.run(*pip, "check", external=True)
        session.run(python, checker, "smoke", *installed, external=True)
        # The sdist's tests run from the sdist, with only these distributions installed
        # (and from its own folder: this repository's pytest.ini stays out of it).
        sdist = next(dist.glob(f"pymasep_comm_{installed[-1]}-{version}.tar.gz"))
        unpacked = Path(session.create_tmp()) / f"sdist-{installed[-1]}"
        shutil.rmtree(unpacked, ignore_errors=True)
        shutil.unpack_archive(sdist, unpacked)
        tests = next(unpacked.glob("*/tests"))
        session.run(*pip, "install", "-c", str(CONSTRAINTS), *TEST_REQUIREMENTS, external=True)
        pytest = (python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "auto")
        with session.chdir(tests.parent):
            session.run(*pytest, "--maxprocesses", "4", "tests", external=True)


@nox.session(python=False)
def version(session: nox.Session) -> None:
    """Print the version after checking it everywhere; set it with -- X.Y.Z."""
    if session.posargs:
        (ROOT / "VERSION").write_text(session.posargs[0].strip() + "\n")
        _write_versions()
    check_versions()
    print((ROOT / "VERSION").read_text().strip())


@nox.session(venv_backend="virtualenv")  # pip's --report resolves the pins
def lock(session: nox.Session) -> None:
    """Refresh constraints.txt: the newest tools that work on the oldest Python we support."""
    import json

    oldest = re.search(
        r'requires-python = ">=([\d.]+)"',
        (PACKAGES / "pymasep-comm-core" / "pyproject.toml").read_text(),
    )
    assert oldest is not None
    report = Path(session.create_tmp()) / "report.json"
    # Resolved for the oldest Python, so that the pins install on every supported one,
    # against the package index alone: no constraints or local wheel folders this
    # machine's pip may be configured with.
    env = {"PIP_CONSTRAINT": "", "PIP_FIND_LINKS": ""}
    session.run(
        "python", "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
        "--python-version", oldest[1], "--only-binary=:all:", "--target", str(report.parent / "t"),
        "--report", str(report), *dict.fromkeys(LOCKED), env=env,
    )  # fmt: skip
    installs = json.loads(report.read_text())["install"]
    pins = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in installs)
    CONSTRAINTS.write_text(
        f"# The version of every tool the nox sessions install, resolved for Python {oldest[1]}\n"
        "# (the oldest the distributions support) by `nox -s lock`, which rewrites this file.\n"
        + "\n".join([*sorted(pins, key=str.lower), *PER_PYTHON_PINS])
        + "\n"
    )
    session.log(f"{len(pins)} pins written to {CONSTRAINTS.name}")


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
