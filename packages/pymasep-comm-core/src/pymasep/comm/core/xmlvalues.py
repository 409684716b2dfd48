"""The XML of message values, both ways, and the hardened parser for untrusted bytes.

The layout is pymasep 0.2's: one element per value, tagged by its type (``int``,
``str``, ``list``, ``tuple``, ``set``, ``dict``, ``bool``, ``type``); containers hold
``<item>`` elements (with a ``key`` attribute in a dict); the empty string is
``<str content="empty"/>``. Where 0.2 cannot carry a value right, new tags that 0.2
decodes to the raw element (never to a wrong value) carry it: ``<float>``,
``<NoneType/>`` and ``<false/>`` (0.2 reads ``<bool>False</bool>`` as True).

Encoding appends the XML in pieces and joins them once; an element value is written
from the caller's tree (ElementTree elements by :mod:`.elementwriter`, lxml's by lxml),
never moved, copied or re-parsed. Decoding parses once and walks; the elements it hands
back are ``xml.etree.ElementTree`` elements, as 0.2's, unless lxml's are asked for.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from typing import Any

from lxml import etree

from .elementwriter import element_xml, escape
from .exceptions import DecodeError, EncodeError, UnknownTypeError, UnsupportedValueError
from .typeregistry import resolve_type, type_name

__all__ = [
    "MAX_DEPTH",
    "check_text",
    "decode_value",
    "encode_value",
    "escape",
    "parse_xml",
    "text_xml",
]

MAX_DEPTH = 100
"""Deepest nesting of containers that a value may have (the parser reads no deeper)."""

# Characters XML 1.0 cannot carry, even escaped; lone surrogates cannot be encoded.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_CLASS_TEXT = re.compile(r"<class '([^']+)'>\Z")
# Either of the above: a text that matches neither is written as it is.
_NOT_AS_IS = re.compile('[&<>"\n\r\t\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')


def _path(where: Any) -> str:
    """``params['a'][0]`` from the (parent, key) pairs that the walk nests: built only
    for an error, never for every value."""
    keys = []
    while isinstance(where, tuple):
        where, key = where
        keys.append(f"[{key!r}]")
    return str(where) + "".join(reversed(keys))


def check_text(text: str, where: Any) -> None:
    """Raise unless XML 1.0 can carry ``text``."""
    bad = _INVALID_XML.search(text)
    if bad is not None:
        raise EncodeError(
            f"{_path(where)}: character {bad.group()!r} at index {bad.start()} "
            f"cannot be carried by XML 1.0"
        )


def text_xml(text: str, where: Any) -> str:
    """``text`` escaped for content or a double-quoted attribute value.

    Raises:
        EncodeError: A character XML 1.0 cannot carry.
    """
    # Nearly always: an identifier holds neither markup nor what XML cannot carry,
    # and is told in a tenth of the time of a search.
    if text.isidentifier() or _NOT_AS_IS.search(text) is None:
        return text
    check_text(text, where)
    return escape(text)


def _is_element(value: Any) -> bool:
    return isinstance(value, (etree._Element, ElementTree.Element))


def _element_xml(element: Any, where: Any) -> str:
    if isinstance(element, ElementTree.Element):
        try:
            return element_xml(element)
        except EncodeError as error:
            raise EncodeError(f"{_path(where)}: {error}") from None
    # lxml writes its own elements; with_tail=False: the tail belongs to the parent.
    return str(etree.tostring(element, encoding="unicode", with_tail=False))


def encode_value(
    value: Any, add: Callable[[str], Any], where: Any = "params", depth: int = 0
) -> None:
    """Append the XML of ``value``, in pieces, with ``add`` (a list's ``append``).

    Element values (and what ``to_xml()`` returns) are written from the caller's tree,
    which is never moved or copied.

    Raises:
        UnsupportedValueError: A value (or a dict key) of a type the XML cannot carry.
        EncodeError: A string XML cannot carry, or nesting deeper than :data:`MAX_DEPTH`.
    """
    cls = type(value)
    if cls is str:
        if value:
            add(f"<str>{text_xml(value, where)}</str>")
        else:
            add('<str content="empty" />')
    elif cls is int or cls is float:
        add(f"<{cls.__name__}>{value!r}</{cls.__name__}>")
    elif cls is bool:
        add("<bool>True</bool>" if value else "<false />")
    elif value is None:
        add("<NoneType />")
    elif cls is list or cls is tuple or cls is set or cls is dict:
        if depth >= MAX_DEPTH:
            raise EncodeError(f"{_path(where)}: nested deeper than {MAX_DEPTH} containers")
        tag = cls.__name__
        if not value:
            add(f"<{tag} />")
            return
        add(f"<{tag}>")
        if cls is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise UnsupportedValueError(
                        f"{_path(where)}: dict keys must be str, not {type(key).__name__} ({key!r})"
                    )
                inner = (where, key)
                add(f'<item key="{text_xml(key, inner)}">')
                encode_value(item, add, inner, depth + 1)
                add("</item>")
        else:
            for index, item in enumerate(value):
                add("<item>")
                encode_value(item, add, (where, index), depth + 1)
                add("</item>")
        add(f"</{tag}>")
    elif isinstance(value, type):
        add(f"<type>&lt;class '{escape(type_name(value))}'&gt;</type>")
    elif _is_element(value):
        add(_element_xml(value, where))
    elif callable(to_xml := getattr(value, "to_xml", None)):
        element = to_xml()
        if not _is_element(element):
            raise UnsupportedValueError(
                f"{_path(where)}: {cls.__name__}.to_xml() returned {type(element).__name__}, "
                f"not an XML element"
            )
        add(_element_xml(element, where))
    elif isinstance(value, bool):  # before int: bool subclasses int
        encode_value(bool(value), add, where, depth)
    elif isinstance(value, (str, int, float)):
        # Subclasses (enums, numpy scalars that subclass float) travel as their base type.
        base = next(base for base in (str, int, float) if isinstance(value, base))
        encode_value(base(value), add, where, depth)
    else:
        raise UnsupportedValueError(
            f"{_path(where)}: values of type {cls.__module__}.{cls.__qualname__} cannot be put "
            f"in a message (supported: int, float, str, bool, None, list, tuple, set, dict "
            f"with str keys, registered classes, XML elements and objects with a to_xml() "
            f"method)"
        )


# -- decoding ------------------------------------------------------------------------


def _only_child(item: Any, where: Any) -> Any:
    if len(item) == 1 and type(item[0].tag) is str:  # always, but in an lxml tree
        return item[0]
    children = [child for child in item if isinstance(child.tag, str)]  # comments out
    if len(children) != 1:
        raise DecodeError(f"{_path(where)}: an <item> holds {len(children)} values, not 1")
    return children[0]


def _items(node: Any, where: Any) -> Any:
    for child in node:
        if child.tag != "item":
            break
    else:  # every child an <item>: always, but in an lxml tree with comments
        return node
    for child in node:
        if child.tag != "item" and isinstance(child.tag, str):
            raise DecodeError(f"{_path(where)}: <{child.tag}> inside <{node.tag}>, expected <item>")
    return [child for child in node if child.tag == "item"]


def _decode_int(node: Any, where: Any) -> int:
    try:
        return int(node.text or "")
    except ValueError:
        raise DecodeError(f"{_path(where)}: <int> holds {node.text!r}") from None


def _decode_float(node: Any, where: Any) -> float:
    try:
        return float(node.text or "")
    except ValueError:
        raise DecodeError(f"{_path(where)}: <float> holds {node.text!r}") from None


def _decode_str(node: Any, where: Any) -> str | None:
    if node.text is not None:
        return str(node.text)
    # 0.2 writes "" this way; a bare <str/> is None to 0.2, and so it is here.
    return "" if node.get("content") == "empty" else None


def _decode_bool(node: Any, where: Any) -> bool:
    text = node.text
    if text == "True":
        return True
    if text == "False":
        return False
    raise DecodeError(f"{_path(where)}: <bool> holds {text!r}, not True or False")


def _decode_sequence(node: Any, where: Any) -> Any:
    values = [
        decode_value(_only_child(item, where), (where, index))
        for index, item in enumerate(_items(node, where))
    ]
    if node.tag == "list":
        return values
    if node.tag == "tuple":
        return tuple(values)
    try:
        return set(values)
    except TypeError as error:
        raise DecodeError(f"{_path(where)}: a <set> holds an unhashable value: {error}") from None


def _decode_dict(node: Any, where: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in _items(node, where):
        key = item.get("key")
        if key is None:
            raise DecodeError(f"{_path(where)}: a dict <item> has no key attribute")
        value = _only_child(item, where)
        # decode_value, inlined: most values of a pymasep message are elements.
        decoder = _DECODERS.get(value.tag)
        result[key] = value if decoder is None else decoder(value, (where, key))
    return result


def _decode_type(node: Any, where: Any) -> type:
    match = _CLASS_TEXT.match(node.text or "")
    if match is None:
        raise DecodeError(f"{_path(where)}: <type> holds {node.text!r}, not <class 'module.Name'>")
    cls = resolve_type(match.group(1))
    if cls is None:
        raise UnknownTypeError(match.group(1))
    return cls


_DECODERS: dict[str, Callable[[Any, Any], Any]] = {
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


def decode_value(node: Any, where: Any = "params") -> Any:
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
    # lxml's parsers can be reused, unlike ElementTree's, and lxml locks one while it
    # parses: shared, it would be safe but make the connections' reader threads wait
    # for each other. One per thread.
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


def parse_xml(
    data: bytes | bytearray | memoryview | str,
    *,
    lxml_elements: bool = False,
    prolog_checked: bool = False,
) -> Any:
    """Parse untrusted XML: no DTD, no entity expansion, no network.

    By default the tree is ``xml.etree.ElementTree``'s (what pymasep's ``from_xml()``
    reads fastest), parsed by expat with its encoding forced to UTF-8; with
    ``lxml_elements`` it is lxml's, parsed by libxml2 without DTD, network or huge
    trees (depth at most 256, a text node at most 10 MB).

    Either way a DOCTYPE is refused before the parser sees a byte: no DOCTYPE, no DTD,
    so no entity but XML's five and character references can be declared, expanded or
    fetched. With the encoding forced to UTF-8, ``<!DOCTYPE`` can only be written as
    those ASCII bytes, so looking for them finds every one (and rejects, harmlessly,
    the same text inside a comment). The size is bounded by the frame that carried the
    bytes.

    ``prolog_checked``: the caller has made sure that ``data`` holds nothing before its
    root element but whitespace, comments and processing instructions (as
    ``Message.from_bytes`` does, with the envelope's limits). Then, for ElementTree, the
    search is skipped (a fiftieth of a large message's decoding): a DOCTYPE can only
    come before the root element, and expat, whose encoding is forced, refuses one
    anywhere else as malformed. libxml2 may read the rest of a document in the encoding
    its declaration names: for lxml, the search is always made.

    Raises:
        DecodeError: Malformed XML, or a document with a DOCTYPE (where entities live).
    """
    if type(data) is not bytes:
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if (lxml_elements or not prolog_checked) and b"<!DOCTYPE" in data:
        raise DecodeError("a message may not have a DOCTYPE (entities are refused)")
    if lxml_elements:
        try:
            root = etree.fromstring(data, _parser())
        except (etree.XMLSyntaxError, ValueError) as error:
            raise DecodeError(f"not well-formed XML: {error}") from None
        if root.getroottree().docinfo.doctype:  # type: ignore[union-attr]
            raise DecodeError("a message may not have a DOCTYPE (entities are refused)")
        return root
    # Forcing UTF-8 (what both 0.2 and we write) makes the DOCTYPE check above complete.
    # A parser per document: creating one costs about a quarter of parsing a small
    # message (an ACTION), but ElementTree's parser is spent once closed, and expat
    # cannot be reset from Python. Feeding many documents to one long-lived parser
    # inside a wrapper element would accept what a document alone is refused for (text
    # around its element, a document cut short swallowing the next) unless a Python
    # target watched every event, which costs more than the parser's creation.
    parser = ElementTree.XMLParser(encoding="utf-8")
    try:
        parser.feed(data)
        return parser.close()
    except ElementTree.ParseError as error:
        raise DecodeError(f"not well-formed XML: {error}") from None
