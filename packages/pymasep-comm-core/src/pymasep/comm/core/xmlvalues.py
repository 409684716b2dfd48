"""The XML of message values, both ways, and the hardened parser for untrusted bytes.

The layout is pymasep 0.2's: one element per value, tagged by its type (``int``,
``str``, ``list``, ``tuple``, ``set``, ``dict``, ``bool``, ``type``); containers hold
``<item>`` elements (with a ``key`` attribute in a dict); the empty string is
``<str content="empty"/>``. Where 0.2 cannot carry a value right, new tags that 0.2
decodes to the raw element (never to a wrong value) carry it: ``<float>``,
``<NoneType/>`` and ``<false/>`` (0.2 reads ``<bool>False</bool>`` as True).

Encoding streams through :func:`lxml.etree.xmlfile` (an element value is serialized in
place, so the caller's element is never moved or copied, and no intermediate copy of a
large state is made); decoding parses once and walks.
"""

from __future__ import annotations

import copy
import re
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from typing import Any

from lxml import etree

from .exceptions import DecodeError, EncodeError, UnknownTypeError, UnsupportedValueError
from .typeregistry import resolve_type, type_name

__all__ = ["MAX_DEPTH", "check_text", "decode_value", "encode_value", "parse_xml"]

MAX_DEPTH = 100
"""Deepest nesting of containers that a value may have (the parser reads no deeper)."""

# Characters XML 1.0 cannot carry, even escaped; lone surrogates cannot be encoded.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_CLASS_TEXT = re.compile(r"<class '([^']+)'>\Z")


def check_text(text: str, where: str) -> None:
    """Raise unless XML 1.0 can carry ``text``."""
    bad = _INVALID_XML.search(text)
    if bad is not None:
        raise EncodeError(
            f"{where}: character {bad.group()!r} at index {bad.start()} "
            f"cannot be carried by XML 1.0"
        )


def _element(value: Any) -> Any:
    """An lxml or ElementTree element without its tail (which belongs to its parent)."""
    if isinstance(value, ElementTree.Element):
        if value.tail:
            value = copy.copy(value)  # shallow: only to drop the tail, children are shared
            value.tail = None
        # lxml writes only its own elements; convert through the serialized form.
        return etree.fromstring(ElementTree.tostring(value))
    return value


def _is_element(value: Any) -> bool:
    return isinstance(value, (etree._Element, ElementTree.Element))


def encode_value(value: Any, xf: Any, where: str = "params", depth: int = 0) -> None:
    """Write the XML of ``value`` to an :func:`lxml.etree.xmlfile` writer.

    lxml escapes; this checks first, for an error that says where the bad value is.

    Raises:
        UnsupportedValueError: A value (or a dict key) of a type the XML cannot carry.
        EncodeError: A string XML cannot carry, or nesting deeper than :data:`MAX_DEPTH`.
    """
    cls = type(value)
    if cls is str:
        if value:
            check_text(value, where)
            with xf.element("str"):
                xf.write(value)
        else:
            xf.write(_EMPTY_STR)
    elif cls is int or cls is float:
        with xf.element(cls.__name__):
            xf.write(repr(value))
    elif cls is bool:
        xf.write(_TRUE if value else _FALSE)
    elif value is None:
        xf.write(_NONE)
    elif cls is list or cls is tuple or cls is set or cls is dict:
        if depth >= MAX_DEPTH:
            raise EncodeError(f"{where}: nested deeper than {MAX_DEPTH} containers")
        with xf.element(cls.__name__):
            if cls is dict:
                for key, item in value.items():
                    if type(key) is not str:
                        raise UnsupportedValueError(
                            f"{where}: dict keys must be str, not {type(key).__name__} ({key!r})"
                        )
                    inner = f"{where}[{key!r}]"
                    check_text(key, inner)
                    with xf.element("item", key=key):
                        encode_value(item, xf, inner, depth + 1)
            else:
                for index, item in enumerate(value):
                    with xf.element("item"):
                        encode_value(item, xf, f"{where}[{index}]", depth + 1)
    elif isinstance(value, type):
        with xf.element("type"):
            xf.write(f"<class '{type_name(value)}'>")
    elif _is_element(value):
        xf.write(_element(value), with_tail=False)
    elif callable(getattr(value, "to_xml", None)):
        element = value.to_xml()
        if not _is_element(element):
            raise UnsupportedValueError(
                f"{where}: {cls.__name__}.to_xml() returned {type(element).__name__}, "
                f"not an XML element"
            )
        xf.write(_element(element), with_tail=False)
    elif isinstance(value, bool):  # before int: bool subclasses int
        encode_value(bool(value), xf, where, depth)
    elif isinstance(value, (str, int, float)):
        # Subclasses (enums, numpy scalars that subclass float) travel as their base type.
        base = next(base for base in (str, int, float) if isinstance(value, base))
        encode_value(base(value), xf, where, depth)
    else:
        raise UnsupportedValueError(
            f"{where}: values of type {cls.__module__}.{cls.__qualname__} cannot be put in a "
            f"message (supported: int, float, str, bool, None, list, tuple, set, dict with str "
            f"keys, registered classes, XML elements and objects with a to_xml() method)"
        )


_EMPTY_STR = etree.Element("str", content="empty")
_TRUE = etree.Element("bool")
_TRUE.text = "True"
_FALSE = etree.Element("false")
_NONE = etree.Element("NoneType")


# -- decoding ------------------------------------------------------------------------


def _only_child(item: etree._Element, where: str) -> etree._Element:
    children = [child for child in item if isinstance(child.tag, str)]
    if len(children) != 1:
        raise DecodeError(f"{where}: an <item> holds {len(children)} values, not 1")
    return children[0]


def _items(node: etree._Element, where: str) -> list[etree._Element]:
    items = [child for child in node if isinstance(child.tag, str)]
    for child in items:
        if child.tag != "item":
            raise DecodeError(f"{where}: <{child.tag}> inside <{node.tag}>, expected <item>")
    return items


def _decode_int(node: etree._Element, where: str) -> int:
    try:
        return int(node.text or "")
    except ValueError:
        raise DecodeError(f"{where}: <int> holds {node.text!r}") from None


def _decode_float(node: etree._Element, where: str) -> float:
    try:
        return float(node.text or "")
    except ValueError:
        raise DecodeError(f"{where}: <float> holds {node.text!r}") from None


def _decode_str(node: etree._Element, where: str) -> str | None:
    if node.text is not None:
        return str(node.text)
    # 0.2 writes "" this way; a bare <str/> is None to 0.2, and so it is here.
    return "" if node.get("content") == "empty" else None


def _decode_bool(node: etree._Element, where: str) -> bool:
    text = node.text
    if text == "True":
        return True
    if text == "False":
        return False
    raise DecodeError(f"{where}: <bool> holds {text!r}, not True or False")


def _decode_sequence(node: etree._Element, where: str) -> Any:
    values = [
        decode_value(_only_child(item, where), f"{where}[{index}]")
        for index, item in enumerate(_items(node, where))
    ]
    if node.tag == "list":
        return values
    if node.tag == "tuple":
        return tuple(values)
    try:
        return set(values)
    except TypeError as error:
        raise DecodeError(f"{where}: a <set> holds an unhashable value: {error}") from None


def _decode_dict(node: etree._Element, where: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in _items(node, where):
        key = item.get("key")
        if key is None:
            raise DecodeError(f"{where}: a dict <item> has no key attribute")
        result[key] = decode_value(_only_child(item, where), f"{where}[{key!r}]")
    return result


def _decode_type(node: etree._Element, where: str) -> type:
    match = _CLASS_TEXT.match(node.text or "")
    if match is None:
        raise DecodeError(f"{where}: <type> holds {node.text!r}, not <class 'module.Name'>")
    cls = resolve_type(match.group(1))
    if cls is None:
        raise UnknownTypeError(match.group(1))
    return cls


_DECODERS: dict[str, Callable[[etree._Element, str], Any]] = {
    "int": _decode_int,
    "str": _decode_str,
    "float": _decode_float,
    "bool": _decode_bool,
    "false": lambda node, where: False,
    "NoneType": lambda node, where: None,
    "list": _decode_sequence,
    "tuple": _decode_sequence,
    "set": _decode_sequence,
    "dict": _decode_dict,
    "type": _decode_type,
}


def decode_value(node: etree._Element, where: str = "params") -> Any:
    """The value an element holds; an element of any other tag is returned itself.

    Raises:
        DecodeError: The element is malformed for its tag.
        UnknownTypeError: A ``<type>`` names a class that is not registered.
    """
    decoder = _DECODERS.get(node.tag)
    if decoder is None:
        return node
    return decoder(node, where)


# -- parsing -------------------------------------------------------------------------

_parsers = threading.local()


def _parser() -> etree.XMLParser:
    # A parser object must not be used by two threads at once: one per thread.
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            collect_ids=False,
        )
        _parsers.parser = parser
    return parser


def parse_xml(data: bytes | bytearray | memoryview | str) -> etree._Element:
    """Parse untrusted XML: no DTD, no entity expansion, no network, no huge trees.

    Raises:
        DecodeError: Malformed XML, or a document with a DOCTYPE (where entities live).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        root = etree.fromstring(bytes(data), _parser())
    except (etree.XMLSyntaxError, ValueError) as error:
        raise DecodeError(f"not well-formed XML: {error}") from None
    if root.getroottree().docinfo.doctype:  # type: ignore[union-attr]
        raise DecodeError("a message may not have a DOCTYPE (entities are refused)")
    return root
