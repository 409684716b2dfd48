"""Which code serves ``pymasep.communication``: ``python -m pymasep.comm.core`` says.

pymasep 0.2 ships a ``pymasep/communication/`` of its own, and pymasep-comm-core ships the
same file names, so that pymasep's engine and interfaces run on pymasep-comm. pip does not
know that two distributions own one file: whichever was installed last wins, file by file,
and reinstalling or upgrading pymasep brings its copy back. This module does not guess
from versions or imports: it hashes each file of the package's folder and compares it with
the hash that each distribution's ``RECORD`` says it installed there.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import importlib.util
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = [
    "Installation",
    "Verdict",
    "describe",
    "inspect",
    "inspect_environment",
    "reinstall_command",
]

CORE = "pymasep-comm-core"
PACKAGE = ("pymasep", "communication")


class Verdict(enum.Enum):
    """Who serves ``pymasep.communication``."""

    OURS = "ours"
    """Every file is pymasep-comm-core's, and none of its files is missing."""
    MIX = "mix"
    """Some files are pymasep-comm-core's and some are not, or some of its are missing."""
    OTHER = "other"
    """No file is pymasep-comm-core's: pymasep 0.2's own copy, for instance."""
    ABSENT = "absent"
    """There is no ``pymasep.communication`` package at all."""


@dataclass(frozen=True)
class Installation:
    """What :func:`inspect` found in the folder of ``pymasep.communication``.

    Attributes:
        directory: The package's folder, or None when there is none.
        owners: Each ``.py`` file of the folder, by name, with the distribution (``name
            version``) whose ``RECORD`` has its current content, or None when none has.
        missing: The files that pymasep-comm-core installed there and that are gone.
        core: pymasep-comm-core's distribution, when it is installed.
    """

    directory: Path | None
    owners: dict[str, str | None]
    missing: tuple[str, ...]
    core: metadata.Distribution | None

    @property
    def verdict(self) -> Verdict:
        """Who serves the package, from :attr:`owners` and :attr:`missing`."""
        if self.directory is None:
            return Verdict.ABSENT
        ours = [name for name, owner in self.owners.items() if owner == self.core_label]
        if not ours:
            return Verdict.OTHER
        if len(ours) == len(self.owners) and not self.missing:
            return Verdict.OURS
        return Verdict.MIX

    @property
    def core_label(self) -> str | None:
        """``pymasep-comm-core <version>``, or None when it is not installed."""
        return None if self.core is None else _label(self.core)


def _label(distribution: metadata.Distribution) -> str:
    return f"{distribution.metadata['Name']} {distribution.version}"


def _record_hash(path: Path) -> str:
    # The RECORD format (PEP 376, wheel spec): urlsafe base64 of the digest, unpadded.
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _recorded(distribution: metadata.Distribution, directory: Path) -> dict[str, str | None]:
    """The hashes ``distribution`` recorded for the ``.py`` files it put in ``directory``."""
    found: dict[str, str | None] = {}
    for file in distribution.files or ():
        if file.parts[:-1] != PACKAGE or file.suffix != ".py":
            continue
        if Path(str(distribution.locate_file(file))).resolve().parent != directory:
            continue  # the same distribution name installed on another sys.path entry
        found[file.name] = None if file.hash is None else f"{file.hash.mode}={file.hash.value}"
    return found


def inspect(
    directory: Path | None,
    distributions: Iterable[metadata.Distribution],
    core: metadata.Distribution | None,
) -> Installation:
    """Attribute each ``.py`` file of ``directory`` to the distribution that installed it.

    Args:
        directory: The folder of ``pymasep.communication``, or None when there is none.
        distributions: The distributions that may have installed files there (pymasep,
            for instance); pymasep-comm-core's own is ``core``.
        core: pymasep-comm-core's distribution, or None when it is not installed.

    Returns:
        What was found; :attr:`Installation.verdict` sums it up.
    """
    if directory is None:
        return Installation(None, {}, (), core)
    directory = directory.resolve()
    # Core first: when two distributions recorded the same content, the file is ours.
    candidates = [core] if core is not None else []
    candidates += [d for d in distributions if core is None or _label(d) != _label(core)]
    records = [(_label(d), _recorded(d, directory)) for d in candidates]
    owners: dict[str, str | None] = {}
    for path in sorted(directory.glob("*.py")):
        content = _record_hash(path)
        owners[path.name] = next(
            (label for label, hashes in records if hashes.get(path.name) == content), None
        )
    core_files = _recorded(core, directory) if core is not None else {}
    missing = tuple(sorted(name for name in core_files if name not in owners))
    return Installation(directory, owners, missing, core)


def inspect_environment() -> Installation:
    """:func:`inspect` the ``pymasep.communication`` that this interpreter would import.

    It finds the package without importing it (only its parent, ``pymasep``), so that a
    broken mix can be inspected too.
    """
    spec = importlib.util.find_spec(".".join(PACKAGE))
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    directory = Path(locations[0]) if locations else None
    try:
        core: metadata.Distribution | None = metadata.distribution(CORE)
    except metadata.PackageNotFoundError:
        core = None
    names = set(metadata.packages_distributions().get(PACKAGE[0], ()))
    others = []
    for name in sorted(names):
        try:
            others.append(metadata.distribution(name))
        except metadata.PackageNotFoundError:  # a name listed by a stale dist-info
            continue
    return inspect(directory, others, core)


def reinstall_command(core: metadata.Distribution | None) -> str:
    """The pip command that puts pymasep-comm-core's files back in place.

    It reinstalls from where core was installed (the wheel file or the source folder that
    ``direct_url.json`` names), or from the index when it came from one.
    """
    target = f"{CORE}=={core.version}" if core is not None else CORE
    origin = core.read_text("direct_url.json") if core is not None else None
    if origin:
        url = json.loads(origin).get("url", "")
        parsed = urlparse(url)
        if parsed.scheme == "file":
            target = unquote(parsed.path)
        elif url:
            target = url
    options = "--force-reinstall --no-deps " if core is not None else ""
    return f"{sys.executable} -m pip install {options}{target}"


def describe(installation: Installation) -> str:
    """The report that ``python -m pymasep.comm.core`` prints."""
    verdict = installation.verdict
    where = f"pymasep.communication ({installation.directory})"
    fix = reinstall_command(installation.core)
    if verdict is Verdict.ABSENT:
        return (
            "pymasep.communication is not installed in this environment.\n"
            f"Install pymasep-comm-core: {fix}"
        )
    lines = []
    if verdict is Verdict.OURS:
        count = len(installation.owners)
        lines.append(f"{where} is served by {installation.core_label}: all {count} files.")
    else:
        owners = {
            owner or "changed since installed (no RECORD has it)"
            for owner in installation.owners.values()
        }
        if verdict is Verdict.MIX:
            lines.append(
                f"{where} is a MIX of {', '.join(sorted(owners))}: pymasep would run "
                "another implementation's classes beside pymasep-comm's and fail."
            )
        else:
            lines.append(f"{where} is not pymasep-comm's: it is {', '.join(sorted(owners))}.")
        for name, owner in installation.owners.items():
            lines.append(f"  {name:32} {owner or 'changed since installed (no RECORD has it)'}")
        for name in installation.missing:
            lines.append(f"  {name:32} missing (pymasep-comm-core installed it)")
        lines.append(
            "pip lets the distribution installed last overwrite another's files: this "
            "happens when pymasep is installed, reinstalled or upgraded after pymasep-comm."
        )
        lines.append(f"Fix: {fix}")
    lines.append(", ".join(_side(role, name) for role, name in _SIDES))
    return "\n".join(lines)


_SIDES = (("Server", "pymasep-comm-server"), ("Client", "pymasep-comm-client"))


def _side(role: str, name: str) -> str:
    try:
        return f"{role}: {name} {metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return f"{role}: {name} not installed"
