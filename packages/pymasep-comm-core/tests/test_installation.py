"""``python -m pymasep.comm.core``: which distribution's files serve pymasep.communication.

Each test lays out a site-packages folder of its own, with the dist-info RECORDs that pip
would write, so that every state pip can leave behind is reproduced without pip.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from pymasep.comm.core.installation import Verdict, describe, inspect

FILES = ("__init__.py", "message.py", "frame.py")
OURS = "from pymasep.comm.core import Message\n"
THEIRS = "class Message:  # pymasep 0.2's own\n    pass\n"


def _record_line(path: str, content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(content)}"


def _distribution(site: Path, name: str, version: str, text: str) -> metadata.Distribution:
    """A dist-info in ``site`` that records FILES of pymasep/communication with ``text``."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [_record_line(f"pymasep/communication/{file}", text.encode()) for file in FILES]
    (info / "RECORD").write_text("\n".join(lines) + "\n")
    return metadata.PathDistribution(info)


def _write(site: Path, text: str, *files: str) -> Path:
    package = site / "pymasep" / "communication"
    package.mkdir(parents=True, exist_ok=True)
    for file in files:
        (package / file).write_text(text)
    return package


def test_our_files_over_pymasep_are_ours(tmp_path: Path) -> None:
    pymasep = _distribution(tmp_path, "pymasep", "0.2", THEIRS)
    core = _distribution(tmp_path, "pymasep-comm-core", "0.3.0", OURS)
    package = _write(tmp_path, OURS, *FILES)  # pip wrote ours last, over 0.2's
    installation = inspect(package, [pymasep], core)
    assert installation.verdict is Verdict.OURS
    assert set(installation.owners.values()) == {"pymasep-comm-core 0.3.0"}
    assert "served by pymasep-comm-core 0.3.0" in describe(installation)


def test_pymasep_reinstalled_over_ours_is_reported_with_the_fix(tmp_path: Path) -> None:
    pymasep = _distribution(tmp_path, "pymasep", "0.2", THEIRS)
    core = _distribution(tmp_path, "pymasep-comm-core", "0.3.0", OURS)
    package = _write(tmp_path, THEIRS, *FILES)
    installation = inspect(package, [pymasep], core)
    assert installation.verdict is Verdict.OTHER
    assert set(installation.owners.values()) == {"pymasep 0.2"}
    assert "pip install --force-reinstall --no-deps pymasep-comm-core==0.3.0" in describe(
        installation
    )


def test_some_files_of_each_is_a_mix(tmp_path: Path) -> None:
    pymasep = _distribution(tmp_path, "pymasep", "0.2", THEIRS)
    core = _distribution(tmp_path, "pymasep-comm-core", "0.3.0", OURS)
    package = _write(tmp_path, OURS, "__init__.py")
    _write(tmp_path, THEIRS, "message.py", "frame.py")  # the state issue 10 reported
    installation = inspect(package, [pymasep], core)
    assert installation.verdict is Verdict.MIX
    assert installation.owners["message.py"] == "pymasep 0.2"
    report = describe(installation)
    assert "MIX" in report and "frame.py" in report and "Fix:" in report


def test_an_edited_or_missing_file_is_not_ours(tmp_path: Path) -> None:
    core = _distribution(tmp_path, "pymasep-comm-core", "0.3.0", OURS)
    package = _write(tmp_path, OURS, "__init__.py", "message.py")
    (package / "message.py").write_text(OURS + "# edited\n")
    installation = inspect(package, [], core)
    assert installation.verdict is Verdict.MIX
    assert installation.owners["message.py"] is None
    assert installation.missing == ("frame.py",)


def test_a_pymasep_that_ships_no_communication_of_its_own(tmp_path: Path) -> None:
    # A future pymasep that depends on pymasep-comm: its RECORD lists nothing there.
    future = tmp_path / "pymasep-0.3.dist-info"
    future.mkdir()
    (future / "METADATA").write_text("Metadata-Version: 2.1\nName: pymasep\nVersion: 0.3\n")
    (future / "RECORD").write_text(_record_line("pymasep/__init__.py", b"") + "\n")
    core = _distribution(tmp_path, "pymasep-comm-core", "0.3.0", OURS)
    package = _write(tmp_path, OURS, *FILES)
    installation = inspect(package, [metadata.PathDistribution(future)], core)
    assert installation.verdict is Verdict.OURS


def test_without_core_the_package_is_someone_elses(tmp_path: Path) -> None:
    pymasep = _distribution(tmp_path, "pymasep", "0.2", THEIRS)
    package = _write(tmp_path, THEIRS, *FILES)
    assert inspect(package, [pymasep], None).verdict is Verdict.OTHER
    assert inspect(None, [pymasep], None).verdict is Verdict.ABSENT


def test_the_command_reports_this_environment() -> None:
    # The wheel installed by nox: every file is core's.
    done = subprocess.run(
        [sys.executable, "-m", "pymasep.comm.core"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is served by pymasep-comm-core" in done.stdout
