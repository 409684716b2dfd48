"""The XML text of an ``xml.etree`` element, written straight from the tree, in one pass.

pymasep's objects hand their ``to_xml()`` over as ``xml.etree.ElementTree`` elements.
lxml writes only its own elements, so carrying one through lxml means serializing it with
ElementTree, re-parsing it and writing it again; ElementTree's own serializer is pure
Python that walks the tree twice (namespaces, then text) and escapes every string
through a function call. This writer walks the tree once, and each value that needs
escaping is escaped where it stands, alone: an agent's ``Belief``, whose GraphML text is
full of markup, costs its own escaping and nothing more.

* A text (or tail) is searched for what it must not hold as is when it is written
  (one regular-expression search), and escaped there if need be.
* Attribute values are written as they are, and each element with attributes is noted
  (its start tag begins a part of the output). Once the tree is written, one search
  over all the values at once finds whether any needs escaping (nearly never); if so,
  the start tags whose values need it, and only those, are written again, escaped, in
  their place.
* Names are checked once the tree is written, all at once (a set of the names already
  seen makes that nearly free). A name that is not a plain XML name (namespaces,
  comments, processing instructions), or a text or value that is not a ``str``, sends
  the element the careful way: ElementTree writes it and lxml checks it. A character
  XML 1.0 cannot carry, even escaped, raises :class:`EncodeError`.
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
_INVALID_CHARACTERS = "\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"
# What a text must not hold as is: markup, the carriage return that a parser would turn
# into a newline, and what XML 1.0 cannot carry at all ('"', tab and newline are fine).
_TEXT_NOT_AS_IS = re.compile(f"[&<>\r{_INVALID_CHARACTERS}]")
# The same for attribute values: also '"', and the whitespace that attribute
# normalization would turn into spaces.
_VALUE_NOT_AS_IS = re.compile(f'[&<>"\n\r\t{_INVALID_CHARACTERS}]')
_MARKUP = re.compile('[&<>"\n\r\t]')
_INVALID = re.compile(f"[{_INVALID_CHARACTERS}]")
_known_names: set[str] = set()  # names already checked, so a tag is checked once
_KNOWN_NAMES_LIMIT = 10_000
_tag = attrgetter("tag")
_attrib = attrgetter("attrib")
_pair = '="'.join
_attributes_of = '" '.join


def element_xml(element: ElementTree.Element) -> str:
    """The XML of an ElementTree element, without its tail.

    Raises:
        EncodeError: A text, attribute or name that XML 1.0 cannot carry.
    """
    heads: list[Any] = []
    try:
        parts = _write(element, heads)
        attributes = list(map(_attrib, heads))
        values = "".join(chain.from_iterable(map(dict.values, attributes)))
    except TypeError:  # a text or value that is not a str: ElementTree says which
        return _careful(element)
    if not (
        _known_names.issuperset(map(_tag, element.iter()))
        and _known_names.issuperset(chain.from_iterable(attributes))
    ):
        every = set(map(_tag, element.iter())).union(*attributes)
        if not all(isinstance(name, str) and _PLAIN_NAME.match(name) for name in every):
            return _careful(element)
        if len(_known_names) < _KNOWN_NAMES_LIMIT:
            _known_names.update(every)
    if _VALUE_NOT_AS_IS.search(values) is not None:
        _escape_heads(parts, heads)
    return "".join(parts)


def _text(text: str) -> str:
    """A text that :data:`_TEXT_NOT_AS_IS` found something in, escaped for content."""
    _check(text)
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def _escape_heads(parts: list[str], heads: list[Any]) -> None:
    """Escape, in ``parts``, the attribute values that need it, and only those.

    ``heads`` lists the elements with attributes in the order they were written; each
    one's start tag begins a part, written ``<tag a="x" b="y"`` without escaping. A part
    that begins so is that element's: no other part begins with ``<`` and a space after
    the tag, but those of elements with attributes (texts and tails are escaped).
    """
    position = 0
    for element in heads:
        attrib = element.attrib
        written = f'<{element.tag} {_attributes_of(map(_pair, attrib.items()))}"'
        while not parts[position].startswith(written):
            position += 1
        if _VALUE_NOT_AS_IS.search("".join(attrib.values())) is not None:
            for value in attrib.values():
                _check(value)
            escaped = _attributes_of(f'{key}="{escape(value)}' for key, value in attrib.items())
            parts[position] = f'<{element.tag} {escaped}"{parts[position][len(written) :]}'
        position += 1


def _check(text: str) -> None:
    bad = _INVALID.search(text)
    if bad is not None:
        raise EncodeError(
            f"character {bad.group()!r} at index {bad.start()} cannot be carried by XML 1.0"
        )


def _write(element: Any, heads: list[Any]) -> list[str]:
    """One pass, each text escaped where it needs to be; attribute values are written as
    they are, and the elements with attributes listed in ``heads``, in the order they
    are written, for :func:`_escape_heads`."""
    parts: list[str] = []
    add = parts.append
    add_head = heads.append
    text_bad = _TEXT_NOT_AS_IS.search

    def head(tag: str, attrib: dict[str, str]) -> str:
        # Most elements have one or two attributes: unpacked, they are written without
        # the joins, which took a fifth of the time of a pymasep state's elements.
        count = len(attrib)
        if count == 2:
            (key, value), (key2, value2) = attrib.items()
            return f'<{tag} {key}="{value}" {key2}="{value2}"'
        if count == 1:
            ((key, value),) = attrib.items()
            return f'<{tag} {key}="{value}"'
        return f'<{tag} {_attributes_of(map(_pair, attrib.items()))}"'

    def write(node: Any, tag: str, attrib: dict[str, str], text: str | None) -> None:
        # f-strings: one new string per piece, where + would make one per operand.
        if attrib:
            add_head(node)
            if len(attrib) == 2:  # head(), inlined where it is called most
                (key, value), (key2, value2) = attrib.items()
                start = f'<{tag} {key}="{value}" {key2}="{value2}"'
            else:
                start = head(tag, attrib)
        else:
            start = f"<{tag}"
        if text:
            if text_bad(text) is not None:
                text = _text(text)
            add(f"{start}>{text}")
        else:
            add(f"{start}>")
        for child in node:
            size = len(child)
            if not size:  # a leaf: written here, without a call
                ctag = child.tag
                cattrib = child.attrib
                ctext = child.text
                if cattrib:
                    add_head(child)
                    chead = head(ctag, cattrib)
                else:
                    chead = f"<{ctag}"
                if ctext:
                    if text_bad(ctext) is not None:
                        ctext = _text(ctext)
                    add(f"{chead}>{ctext}</{ctag}>")
                else:
                    add(f"{chead} />")
            elif size == 1 and not len(inner := child[0]) and not child.text:
                # One leaf inside, as a characteristic holds its value and a container's
                # item its element: both written here, without a call.
                ctag = child.tag
                cattrib = child.attrib
                if cattrib:
                    add_head(child)
                    if len(cattrib) == 2:  # head(), inlined where it is called most
                        (key, value), (key2, value2) = cattrib.items()
                        chead = f'<{ctag} {key}="{value}" {key2}="{value2}"'
                    else:
                        chead = head(ctag, cattrib)
                else:
                    chead = f"<{ctag}"
                itag = inner.tag
                iattrib = inner.attrib
                itext = inner.text
                if iattrib:  # its start tag begins a part of its own, as heads want
                    add(f"{chead}>")
                    chead = ""
                    add_head(inner)
                    ihead = head(itag, iattrib)
                else:
                    ihead = f"<{itag}"
                itail = inner.tail
                if itail:
                    if text_bad(itail) is not None:
                        itail = _text(itail)
                else:
                    itail = ""
                if itext:
                    if text_bad(itext) is not None:
                        itext = _text(itext)
                    if chead:
                        add(f"{chead}>{ihead}>{itext}</{itag}>{itail}</{ctag}>")
                    else:
                        add(f"{ihead}>{itext}</{itag}>{itail}</{ctag}>")
                elif chead:
                    add(f"{chead}>{ihead} />{itail}</{ctag}>")
                else:
                    add(f"{ihead} />{itail}</{ctag}>")
            else:
                write(child, child.tag, child.attrib, child.text)
            tail = child.tail
            if tail:
                add(_text(tail) if text_bad(tail) is not None else tail)
        add(f"</{tag}>")

    # The root's tail belongs to its parent: only children's tails are written.
    write(element, element.tag, element.attrib, element.text)
    return parts


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


def _careful(element: ElementTree.Element) -> str:
    """Namespaces, comments, values that are not str: ElementTree writes, lxml checks
    and rewrites."""
    tail = element.tail
    element.tail = None
    try:
        # As text: in US-ASCII (tostring's default) a name's non-ASCII letters would
        # become character references, which a name cannot hold.
        data = ElementTree.tostring(element, encoding="unicode")
        parsed = etree.fromstring(data)
    except (TypeError, etree.XMLSyntaxError) as error:
        raise EncodeError(
            f"the element <{element.tag}> holds what XML 1.0 cannot carry: {error}"
        ) from None
    finally:
        element.tail = tail
    return str(etree.tostring(parsed, encoding="unicode"))
