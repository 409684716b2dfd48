"""The allowlist of classes that a message may name: ``register_type()``.

pymasep 0.2 imported any dotted path read from the wire, which lets a peer import any
module. Here a ``type`` value decodes only to a class the application registered, or,
if the application opts in with :func:`~pymasep.comm.core.allow_imported_types`, to a
class defined in a module that is already imported and lies under a package the
application named.
Nothing is ever imported because the wire said so.
"""

from __future__ import annotations

import re
import sys
import threading
from typing import TypeVar

__all__ = [
    "allow_imported_types",
    "forbid_imported_types",
    "register_type",
    "registered_types",
    "resolve_type",
    "type_name",
    "unregister_type",
]

_T = TypeVar("_T", bound=type)

# The builtin value types are harmless and appear in pymasep's own messages.
_BUILTINS: dict[str, type] = {
    cls.__name__: cls for cls in (int, str, float, bool, list, tuple, set, dict, type(None))
}
_registry: dict[str, type] = dict(_BUILTINS)
_imported_packages: set[str] = set()
_lock = threading.Lock()
_DOTTED = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*\Z")


def type_name(cls: type) -> str:
    """The name under which a class travels: ``module.qualname`` (``int`` for builtins)."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def register_type(cls: _T, name: str | None = None) -> _T:
    """Allow a class to travel in messages (a DEFINE message carries the game class).

    Usable as a decorator. Registering the same class twice is harmless.

    Args:
        cls: The class.
        name: The name it travels under; by default ``module.qualname``, which is
            what pymasep 0.2 writes.

    Returns:
        The class, unchanged.

    Raises:
        TypeError: ``cls`` is not a class.
        ValueError: Another class is registered under that name.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_type() takes a class, not {type(cls).__name__}")
    key = type_name(cls) if name is None else name
    with _lock:
        current = _registry.get(key)
        if current is not None and current is not cls:
            raise ValueError(f"{key!r} is already registered for {current!r}")
        _registry[key] = cls
    return cls


def unregister_type(cls_or_name: type | str) -> None:
    """Remove a class from the allowlist (by class or by name). Unknown ones are ignored."""
    with _lock:
        if isinstance(cls_or_name, str):
            _registry.pop(cls_or_name, None)
            return
        for key in [key for key, value in _registry.items() if value is cls_or_name]:
            del _registry[key]


def registered_types() -> dict[str, type]:
    """A copy of the allowlist: name -> class."""
    with _lock:
        return dict(_registry)


def allow_imported_types(*packages: str) -> None:
    """Opt-in: let messages name classes of modules already imported under ``packages``.

    A name read from the wire that is not registered then resolves to a class when all
    of these hold: it starts with one of ``packages`` (``"mygame"`` allows
    ``mygame.MyGame`` and ``mygame.rules.Board``, not ``mygames.X``); the longest
    module part of it is in :data:`sys.modules` already (it is never imported); and
    the object found there is a class defined under that very name (its
    ``__module__`` and ``__qualname__``), so a name cannot reach a class a module only
    imported from elsewhere (``mygame.os.system`` finds nothing).

    Args:
        packages: Dotted package or module names, such as ``"mygame"``.

    Raises:
        ValueError: A name that is not a dotted Python name (the empty string would
            allow every imported module).
    """
    for package in packages:
        if not isinstance(package, str) or not _DOTTED.match(package):
            raise ValueError(f"not a dotted package name: {package!r}")
    with _lock:
        _imported_packages.update(packages)


def forbid_imported_types(*packages: str) -> None:
    """Undo :func:`allow_imported_types` for ``packages`` (all of them if none given)."""
    with _lock:
        if packages:
            _imported_packages.difference_update(packages)
        else:
            _imported_packages.clear()


def _imported_class(name: str) -> type | None:
    with _lock:
        allowed = any(name.startswith(package + ".") for package in _imported_packages)
    if not allowed or not _DOTTED.match(name):
        return None
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:split]))
        if module is None:
            continue
        found: object = module
        for attribute in parts[split:]:
            found = getattr(found, attribute, None)
        if isinstance(found, type) and type_name(found) == name:
            return found
        return None
    return None


def resolve_type(name: str) -> type | None:
    """The class registered under ``name``; else, if allowed, the imported one; or None."""
    found = _registry.get(name)
    if found is None and _imported_packages:
        found = _imported_class(name)
    return found
