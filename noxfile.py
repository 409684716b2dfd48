"""Developer tasks for pymasep-comm: ``nox`` runs the tests, lint and type checks.

Each session is a thin wrapper over :func:`_install`; arguments after ``--`` reach the
tool it runs (``nox -s tests -- -k frame``).
"""

from __future__ import annotations

import re
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = ROOT / "packages"
DISTRIBUTIONS = ("core", "server", "client")
# Which sibling distributions each distribution's tests need installed beside it.
NEEDS = {"core": ("core",), "server": ("core", "server"), "client": ("core", "client")}
TEST_REQUIREMENTS = ("pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100")

nox.needs_version = ">=2024.3.2"
nox.options.sessions = ["tests", "integration", "lint", "typecheck"]
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
        str(ROOT / "integration_tests" / "benchmarks"),
        *session.posargs,
    )


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
    """Measure speed as ratios against baselines run in the same process."""
    _install(session, *DISTRIBUTIONS)
    session.run(
        "python", str(ROOT / "integration_tests" / "benchmarks" / "run.py"), *session.posargs
    )


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
