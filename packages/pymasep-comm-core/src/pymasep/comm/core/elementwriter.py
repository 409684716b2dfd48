"""The XML text of an ``xml.etree`` element, written straight from the tree.

pymasep's objects hand their ``to_xml()`` over as ``xml.etree.ElementTree`` elements.
lxml writes only its own elements, so carrying one through lxml means serializing it with
ElementTree, re-parsing it and writing it again; ElementTree's own serializer is pure
Python that walks the tree twice (namespaces, then text) and escapes every string
through a function call. This writer walks the tree once and escapes nothing in the
common case: it gathers every text and attribute value as it goes and checks them all
at once at the end. Only when one of them needs escaping, holds a character XML 1.0
cannot carry, or a name is not a plain XML name (namespaces, comments, processing
instructions) does it write again, carefully (see :func:`element_xml`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from itertools import chain
from operator import attrgetter
from typing import Any

from lxml import etree

from .exceptions import EncodeError

__all__ = ["element_xml", "escape"]

# Names that need no namespace handling; anything else goes the careful way.
_PLAIN_NAME = re.compile(r"[^\W\d][\w.\-]*\Z")
# What a text or attribute value must not hold as is: markup, the whitespace that
# attribute normalization would turn into spaces, and what XML 1.0 cannot carry at all.
_MARKUP = re.compile('[&<>"\n\r\t]')
_NOT_AS_IS = re.compile('[&<>"\n\r\t\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_known_names: set[str] = set()  # names already checked, so a tag is checked once
_KNOWN_NAMES_LIMIT = 10_000
_tag = attrgetter("tag")
_pair = '="'.join


def element_xml(element: ElementTree.Element) -> str:
    """The XML of an ElementTree element, without its tail.

    Raises:
        EncodeError: A text, attribute or name that XML 1.0 cannot carry.
    """
    texts: list[str] = []
    attributes: list[dict[str, str]] = []
    try:
        xml = _write(element, texts, attributes)
        values = "".join(texts) + "".join(chain.from_iterable(map(dict.values, attributes)))
    except TypeError:  # a text or value that is not a str: ElementTree says which
        return _careful(element)
    as_is = _NOT_AS_IS.search(values) is None
    if (
        as_is
        and _known_names.issuperset(map(_tag, element.iter()))
        and _known_names.issuperset(chain.from_iterable(attributes))
    ):
        return xml  # nearly always: names seen before, nothing to escape
    names = set(map(_tag, element.iter())).union(*attributes)
    if not all(isinstance(name, str) and _PLAIN_NAME.match(name) for name in names):
        return _careful(element)
    if len(_known_names) < _KNOWN_NAMES_LIMIT:
        _known_names.update(names)
    if not as_is:
        if _INVALID.search(values) is not None:
            return _careful(element)
        return _write_escaped(element)
    return xml


def _write(element: Any, texts: list[str], attributes: list[dict[str, str]]) -> str:
    """One pass, nothing escaped: the caller checks ``texts`` and ``attributes`` after."""
    parts: list[str] = []
    add = parts.append
    add_text = texts.append
    add_attributes = attributes.append
    attributes_of = '" '.join

    def write(node: Any, tag: str, attrib: dict[str, str], text: str | None) -> None:
        # f-strings: one new string per piece, where + would make one per operand.
        if attrib:
            add_attributes(attrib)
            head = f'<{tag} {attributes_of(map(_pair, attrib.items()))}"'
        else:
            head = f"<{tag}"
        if text:
            add_text(text)
            add(f"{head}>{text}")
        else:
            add(f"{head}>")
        for child in node:
            size = len(child)
            if not size:  # a leaf: written here, without a call
                ctag = child.tag
                cattrib = child.attrib
                ctext = child.text
                if cattrib:
                    add_attributes(cattrib)
                    chead = f'<{ctag} {attributes_of(map(_pair, cattrib.items()))}"'
                else:
                    chead = f"<{ctag}"
                if ctext:
                    add_text(ctext)
                    add(f"{chead}>{ctext}</{ctag}>")
                else:
                    add(f"{chead} />")
            elif size == 1 and not len(inner := child[0]) and not child.text:
                # One leaf inside, as a characteristic holds its value and a container's
                # item its element: both written here, without a call.
                ctag = child.tag
                cattrib = child.attrib
                if cattrib:
                    add_attributes(cattrib)
                    chead = f'<{ctag} {attributes_of(map(_pair, cattrib.items()))}"'
                else:
                    chead = f"<{ctag}"
                itag = inner.tag
                iattrib = inner.attrib
                itext = inner.text
                if iattrib:
                    add_attributes(iattrib)
                    ihead = f'<{itag} {attributes_of(map(_pair, iattrib.items()))}"'
                else:
                    ihead = f"<{itag}"
                itail = inner.tail
                if itail:
                    add_text(itail)
                else:
                    itail = ""
                if itext:
                    add_text(itext)
                    add(f"{chead}>{ihead}>{itext}</{itag}>{itail}</{ctag}>")
                else:
                    add(f"{chead}>{ihead} />{itail}</{ctag}>")
            else:
                write(child, child.tag, child.attrib, child.text)
            tail = child.tail
            if tail:
                add_text(tail)
                add(tail)
        add(f"</{tag}>")

    # The root's tail belongs to its parent: only children's tails are written.
    write(element, element.tag, element.attrib, element.text)
    return "".join(parts)


def _escape_text(text: str) -> str:
    if _NOT_AS_IS.search(text) is None:
        return text
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def escape(text: str) -> str:
    """Text for element content or a double-quoted attribute value."""
    if _MARKUP.search(text) is None:
        return text
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


def _write_escaped(element: Any) -> str:
    """The same XML as :func:`_write`, every text and value escaped (names are plain)."""
    parts: list[str] = []
    add = parts.append

    def write(node: Any) -> None:
        tag = node.tag
        attrib = node.attrib
        if attrib:
            add("<" + tag + "".join(f' {key}="{escape(value)}"' for key, value in attrib.items()))
        else:
            add("<" + tag)
        text = node.text
        if len(node) or text:
            add(">" + _escape_text(text) if text else ">")
            for child in node:
                write(child)
                if child.tail:
                    add(_escape_text(child.tail))
            add("</" + tag + ">")
        else:
            add(" />")

    write(element)
    return "".join(parts)


def _careful(element: ElementTree.Element) -> str:
    """Namespaces, comments, bad characters: ElementTree writes, lxml checks and rewrites."""
    tail = element.tail
    element.tail = None
    try:
        data = ElementTree.tostring(element)
        parsed = etree.fromstring(data)
    except (TypeError, etree.XMLSyntaxError) as error:
        raise EncodeError(
            f"the element <{element.tag}> holds what XML 1.0 cannot carry: {error}"
        ) from None
    finally:
        element.tail = tail
    return str(etree.tostring(parsed, encoding="unicode"))
