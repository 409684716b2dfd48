"""The XML text of an ``xml.etree`` element, written straight from the tree, in one pass.

pymasep's objects hand their ``to_xml()`` over as ``xml.etree.ElementTree`` elements.
lxml writes only its own elements, so carrying one through lxml means serializing it with
ElementTree, re-parsing it and writing it again; ElementTree's own serializer is pure
Python that walks the tree twice (namespaces, then text) and escapes every string
through a function call. This writer walks the tree once, and what needs escaping is
escaped alone: an agent's ``Belief``, whose GraphML text is full of markup, costs its
own escaping and nothing more.

The walk is Python, so every check that can be made on a whole tree at once, in C, is
made so, and the walk itself does as little per element as it can:

* The texts and tails (``itertext()``, joined) are checked once for what XML 1.0 cannot
  carry, even escaped (:class:`EncodeError`), and once for markup. Where there is
  markup, they are escaped together, in one string, and the walk takes them escaped,
  in order; otherwise it writes them as they are.
* A start tag is written from the strings kept per name (``<tag``, `` name="``): looking
  a name up is the check that it is a plain XML name. A name not yet seen stops the
  walk; the tree's names are checked, kept, and the tree is written again. A name that
  is not plain (namespaces, comments, processing instructions), or a text or value
  that is not a ``str``, sends the element the careful way: ElementTree writes it and
  lxml checks it.
* Attribute values are written as they are, and each element with attributes begins
  a part of the output. Once the tree is written, all the values, joined, are checked
  at once; if one needs escaping (nearly never), the start tags whose values need it,
  and only those, are written again, escaped, in their place.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable
from itertools import chain
from operator import attrgetter
from typing import Any

from lxml import etree

from .exceptions import EncodeError

__all__ = ["element_xml", "escape"]

# Names that need no namespace handling; anything else goes the careful way.
_PLAIN_NAME = re.compile(r"[^\W\d][\w.\-]*\Z")
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# The control characters XML 1.0 cannot carry: UTF-8 writes them as themselves.
_CONTROLS = bytes(range(0x09)) + b"\x0b\x0c" + bytes(range(0x0E, 0x20))
# What a double-quoted attribute value must not hold as is: markup, '"', and the
# whitespace that attribute normalization would turn into spaces.
_MARKUP = re.compile('[&<>"\n\r\t]')
# Per plain name already seen, what a start tag writes for it: "<tag", and ' key="'
# for an attribute. Bounded: emptied when full, then filled again as names come.
_OPENINGS: dict[str, str] = {}
_ATTRIBUTES: dict[str, str] = {}
_NAMES_LIMIT = 10_000
_tag = attrgetter("tag")
_attrib = attrgetter("attrib")


def element_xml(element: ElementTree.Element) -> str:
    """The XML of an ElementTree element, without its tail.

    Raises:
        EncodeError: A text, attribute or name that XML 1.0 cannot carry.
    """
    try:
        texts = "".join(element.itertext())  # every text and tail but the root's tail
    except TypeError:  # a text that is not a str: ElementTree says which
        return _careful(element)
    if not _carried(texts):
        _refuse(element.itertext())
    for _ in range(2):  # a second time once new names are known
        parts: list[str] = []
        heads: list[dict[str, str]] = []
        escaped = None
        if "<" in texts or "&" in texts or ">" in texts or "\r" in texts:
            # One string to escape: texts hold no NUL (XML 1.0 cannot carry it).
            escaped = iter(_escape_text("\0".join(element.itertext())).split("\0")).__next__
        try:
            _write(element, parts.append, heads.append, escaped)
            values = "".join(chain.from_iterable(map(dict.values, heads)))
        except TypeError:  # a value that is not a str (or a name that cannot be one)
            return _careful(element)
        except (KeyError, StopIteration):  # a name not seen yet
            if not _learn_names(element):
                return _careful(element)
            continue
        if not _plain_value(values):
            _escape_heads(parts, [node for node in element.iter() if node.attrib])
        return "".join(parts)
    return _careful(element)  # not reached: every name is known on the second pass


def _carried(text: str) -> bool:
    """Whether XML 1.0 can carry ``text`` (a regular expression reads a character in
    the time these read ten)."""
    try:
        data = text.encode()  # lone surrogates cannot be encoded
    except UnicodeEncodeError:
        return False
    return (
        len(data.translate(None, _CONTROLS)) == len(data)
        and "\ufffe" not in text
        and "\uffff" not in text
    )


def _refuse(strings: Iterable[str]) -> None:
    """Raise for the first of ``strings`` that XML 1.0 cannot carry."""
    for text in strings:
        bad = _INVALID.search(text)
        if bad is not None:
            raise EncodeError(
                f"character {bad.group()!r} at index {bad.start()} cannot be carried by XML 1.0"
            )


def _plain_value(values: str) -> bool:
    """Whether attribute values can be written as they are; raise if XML 1.0 cannot
    carry them."""
    if not _carried(values):
        _refuse([values])
    return not (
        '"' in values
        or "&" in values
        or "<" in values
        or ">" in values
        or "\n" in values
        or "\r" in values
        or "\t" in values
    )


def _learn_names(element: ElementTree.Element) -> bool:
    """Keep the start tags' strings for the names of ``element``'s tree; False if one is
    not a plain XML name."""
    try:
        tags = set(map(_tag, element.iter()))
        keys = set().union(*map(_attrib, element.iter()))
    except TypeError:  # unhashable
        return False
    if not all(type(name) is str and _PLAIN_NAME.match(name) for name in tags | keys):
        return False
    if len(_OPENINGS) + len(_ATTRIBUTES) > _NAMES_LIMIT:
        _OPENINGS.clear()
        _ATTRIBUTES.clear()
    _OPENINGS.update({tag: f"<{tag}" for tag in tags})
    _ATTRIBUTES.update({key: f' {key}="' for key in keys})
    return True


def _escape_text(text: str) -> str:
    """Text for element content: markup, and the carriage return that a parser would
    turn into a newline."""
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
        written = _head(element.tag, attrib)
        while not parts[position].startswith(written):
            position += 1
        if _MARKUP.search("".join(attrib.values())) is not None:
            escaped = "".join(f' {key}="{escape(value)}"' for key, value in attrib.items())
            parts[position] = f"<{element.tag}{escaped}{parts[position][len(written) :]}"
        position += 1


def _head(tag: str, attrib: dict[str, str]) -> str:
    """``<tag a="x" b="y"``, the values as they are."""
    openings = _ATTRIBUTES
    if len(attrib) == 2:  # most elements have one or two attributes: unpacked
        (key, value), (key2, value2) = attrib.items()
        return f'{_OPENINGS[tag]}{openings[key]}{value}"{openings[key2]}{value2}"'
    if len(attrib) == 1:
        ((key, value),) = attrib.items()
        return f'{_OPENINGS[tag]}{openings[key]}{value}"'
    return _OPENINGS[tag] + "".join([f'{openings[key]}{value}"' for key, value in attrib.items()])


def _write(
    node: Any,
    add: Callable[[str], None],
    add_head: Callable[[dict[str, str]], None],
    escaped: Callable[[], str] | None,
) -> None:
    """Write ``node`` with ``add``, its texts and tails taken from ``escaped`` (in
    ``itertext()``'s order) when there is markup to escape; each attribute dict goes to
    ``add_head``, in the order the start tags are written.

    Raises:
        KeyError: A name not in :data:`_OPENINGS` or :data:`_ATTRIBUTES`.
    """
    # f-strings: one new string per piece, where + would make one per operand.
    openings = _OPENINGS
    attributes = _ATTRIBUTES
    attrib = node.attrib
    if len(attrib) == 2:  # _head(), inlined
        (key, value), (key2, value2) = attrib.items()
        start = f'{openings[node.tag]}{attributes[key]}{value}"{attributes[key2]}{value2}"'
        add_head(attrib)
    elif attrib:
        start = _head(node.tag, attrib)
        add_head(attrib)
    else:
        start = openings[node.tag]
    text = node.text
    if text:
        add(f"{start}>{escaped() if escaped else text}")
    else:
        add(f"{start}>")
    for child in node:
        size = len(child)
        if not size:  # a leaf: written here, without a call
            ctag = child.tag
            cattrib = child.attrib
            if cattrib:
                add_head(cattrib)
                chead = _head(ctag, cattrib)
            else:
                chead = openings[ctag]
            ctext = child.text
            if ctext:
                add(f"{chead}>{escaped() if escaped else ctext}</{ctag}>")
            else:
                add(f"{chead} />")
        elif size == 1 and not len(inner := child[0]) and not child.text and not inner.attrib:
            # One leaf inside, as a characteristic holds its value and a container's
            # item its element: both written here, without a call (a leaf with
            # attributes goes the general way: its start tag must begin a part).
            ctag = child.tag
            cattrib = child.attrib
            if not cattrib:
                chead = openings[ctag]
            elif len(cattrib) == 2:  # _head(), inlined where it is called most
                add_head(cattrib)
                (key, value), (key2, value2) = cattrib.items()
                chead = f'{openings[ctag]}{attributes[key]}{value}"{attributes[key2]}{value2}"'
            else:
                add_head(cattrib)
                chead = _head(ctag, cattrib)
            itag = inner.tag
            ihead = openings[itag]
            itext = inner.text
            if itext and escaped:
                itext = escaped()
            itail = inner.tail
            if itail and escaped:
                itail = escaped()
            if itext:
                add(f"{chead}>{ihead}>{itext}</{itag}>{itail or ''}</{ctag}>")
            else:
                add(f"{chead}>{ihead} />{itail or ''}</{ctag}>")
        else:
            _write(child, add, add_head, escaped)
        tail = child.tail
        if tail:
            add(escaped() if escaped else tail)
    add(f"</{node.tag}>")


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
