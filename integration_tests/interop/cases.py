"""Values that cross between pymasep 0.2 and pymasep-comm, shared by both sides.

Pure Python (no pymasep import): the 0.2 peer (:mod:`peer02`, run by pymasep 0.2's
interpreter) and the tests (run by ours) import it alike. :func:`describe` turns a decoded
value into JSON that keeps its exact type, so that the two processes can compare what
each one decoded.
"""

from __future__ import annotations

import collections
import json
import xml.etree.ElementTree as ET
from typing import Any


class Thing:
    """A game object as pymasep 0.2 sends one: it serializes itself with ``to_xml()``."""

    def __init__(self, name: str, hp: int) -> None:
        self.name = name
        self.hp = hp

    def to_xml(self) -> ET.Element:
        element = ET.Element("Thing", {"name": self.name})
        hp = ET.SubElement(element, "Hp")
        hp.text = str(self.hp)
        return element


# Message parameters of every kind pymasep 0.2 carries faithfully. A Message's
# parameters are always a dict (0.2 asserts it on decoding).
VALUE_CASES: dict[str, dict[str, Any]] = {
    "int": {"v": 42},
    "negative int": {"v": -7},
    "zero": {"v": 0},
    "big int": {"v": 2**70},
    "str": {"v": "hello"},
    "empty str": {"v": ""},
    "unicode str": {"v": "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c"},
    "xml special str": {"v": "<a href=\"x\">&amp; 'q'</a> ]]>"},
    "spaced str": {"v": "  two  spaces  "},
    "list": {"v": [1, "two", 3]},
    "empty list": {"v": []},
    "tuple": {"v": (1, "two")},
    "empty tuple": {"v": ()},
    "set": {"v": {1, 2, 3}},
    "str set": {"v": {"a", "b"}},
    "empty set": {"v": set()},
    "dict": {"a": 1, "b": "x", "c": [2]},
    "empty dict value": {"v": {}},
    "bool True": {"v": True},
    "empty str in list": {"v": ["", "x", ""]},
    "nested": {
        "state": {
            "agents": [{"name": "a1", "pos": (1, 2), "tags": {"x"}}, {"name": "a2"}],
            "turn": 3,
            "log": ["", "start", ("t", 1)],
        },
        "additional_information": {"reward": 10, "game_log": []},
    },
    "element with to_xml": {"v": Thing("sword", 12)},
    "element in list": {"v": [Thing("a", 1), Thing("b", 2)]},
    "many keys": {f"k{i}": i for i in range(200)},
    # About 50 KB of XML: close to the 64 KiB a 0.2 frame can hold.
    "large": {"rows": [f"row {i} " + "x" * 40 for i in range(700)]},
}

# Values pymasep 0.2 writes but reads back wrong (docs/migration-notes-interop.md).
BEYOND_02: dict[str, dict[str, Any]] = {
    "False": {"v": False},
    "None": {"v": None},
    "float": {"v": 1.5},
    "mixed": {"v": [None, False, 0.25, True]},
    "class-like str": {"v": "<class 'os.system'>"},
}

# A class: 0.2 imports whatever a message names; pymasep-comm only registered classes.
CLASS_CASE: dict[str, Any] = {"v": collections.OrderedDict}

ALL_CASES = {**VALUE_CASES, **BEYOND_02, "class": CLASS_CASE}

MSG_TYPE = "observation"
SRC = "peer-\u00e9"


def _element(value: Any) -> dict[str, Any]:
    return {
        "t": "element",
        "tag": value.tag,
        "attrib": dict(sorted(value.attrib.items())),
        "text": value.text or "",
        "children": [_element(child) for child in value],
    }


def describe(value: Any) -> Any:
    """Describe a decoded value as JSON that keeps its type (``bool`` apart from ``int``,
    ``tuple`` from ``list``, sets unordered, dicts ordered, XML elements by content)."""
    if value is None:
        return {"t": "None"}
    if isinstance(value, bool):
        return {"t": "bool", "v": value}
    if isinstance(value, int):
        return {"t": "int", "v": str(value)}
    if isinstance(value, float):
        return {"t": "float", "v": repr(value)}
    if isinstance(value, str):
        return {"t": "str", "v": value}
    if isinstance(value, (list, tuple)):
        return {"t": type(value).__name__, "v": [describe(item) for item in value]}
    if isinstance(value, (set, frozenset)):
        items = sorted((describe(item) for item in value), key=json.dumps)
        return {"t": "set", "v": items}
    if isinstance(value, dict):
        return {"t": "dict", "v": [[describe(k), describe(v)] for k, v in value.items()]}
    if hasattr(value, "to_xml") and callable(value.to_xml):
        return _element(value.to_xml())
    if hasattr(value, "tag") and hasattr(value, "attrib"):
        return _element(value)
    return {"t": "other", "type": type(value).__name__, "repr": repr(value)}
