"""The allowlist of classes that a message may name: ``register_type()``.

pymasep 0.2 imported any dotted path read from the wire, which lets a peer import any
module. Here a ``type`` value decodes only to a class the application registered.
"""

from __future__ import annotations

import threading
from typing import TypeVar

__all__ = ["register_type", "registered_types", "resolve_type", "type_name", "unregister_type"]

_T = TypeVar("_T", bound=type)

# The builtin value types are harmless and appear in pymasep's own messages.
_BUILTINS: dict[str, type] = {
    cls.__name__: cls for cls in (int, str, float, bool, list, tuple, set, dict, type(None))
}
_registry: dict[str, type] = dict(_BUILTINS)
_lock = threading.Lock()


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


def resolve_type(name: str) -> type | None:
    """The class registered under ``name``, or None."""
    return _registry.get(name)
