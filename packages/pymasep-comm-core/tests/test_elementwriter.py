"""ElementTree elements written straight from the tree: what the parser reads back is the tree."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ElementTree
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pymasep.comm.core import EncodeError
from pymasep.comm.core.elementwriter import element_xml

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test


def _shape(element: ElementTree.Element) -> Any:
    """Everything a reader sees."""
    return (
        element.tag,
        dict(element.attrib),
        element.text or None,
        [(_shape(child), child.tail or None) for child in element],
    )


def _round_trip(element: ElementTree.Element) -> ElementTree.Element:
    return ElementTree.fromstring(element_xml(element).encode("utf-8"))


# XML 1.0 characters, without the ones that cannot travel in a text as they are. (One
# characters strategy, not a filter: rejection sampling made this test the suite's slowest.)
_CHARACTERS = st.characters(
    min_codepoint=0x20,
    exclude_categories=["Cs"],
    exclude_characters="\ufffe\uffff",
    include_characters="\t\n\r",
)
_TEXT = st.text(_CHARACTERS, max_size=12)
_NAME = st.sampled_from(["State", "Object", "a", "x.y", "b-c", "_u", "état"])


@st.composite
def _trees(
    draw: Any, strings: st.SearchStrategy[str] = _TEXT, deepest: int = 3, depth: int = 0
) -> ElementTree.Element:
    """Trees at most ``deepest`` levels below the root; attributes, texts and tails from
    ``strings``."""
    element = ElementTree.Element(draw(_NAME), draw(st.dictionaries(_NAME, strings, max_size=3)))
    element.text = draw(st.none() | strings)
    if depth < deepest:
        for child in draw(st.lists(_trees(strings, deepest, depth + 1), max_size=3)):
            child.tail = draw(st.none() | strings)
            element.append(child)
    return element


@settings(max_examples=300, deadline=None)
@given(_trees())
def test_any_tree_reads_back_as_itself(tree: ElementTree.Element) -> None:
    assert _shape(_round_trip(tree)) == _shape(tree)


# Strings as real observations hold them: markup (an agent's Belief is GraphML text),
# quotes, newlines, tabs, carriage returns and non-ASCII text, mixed with plain ones.
_MARKED = st.lists(
    st.sampled_from(['<graph id="g">', "&amp;", "&", "<", ">", '"', "'", "\n", "\t", "\r"])
    | st.sampled_from(["\r\n", "]]>", "é", "Zoé", "日本", "\U0001f600", " ", "run", "7"])
    | _TEXT,
    max_size=6,
).map("".join)


# Shallower: more leaves and one-leaf elements, for which the writer has a short way each.
_MARKED_TREES = _trees(_MARKED, deepest=2)


_CR = "\ue000"  # stands for a text's carriage return in ElementTree's output


def _elementtree_xml(tree: ElementTree.Element) -> str:
    """ElementTree's serialization, but for a text's carriage return: ElementTree writes
    it as it is, which any parser reads as a newline; it is written as ``&#13;`` here."""
    tree = copy.deepcopy(tree)
    for element in tree.iter():
        if element.text:
            element.text = element.text.replace("\r", _CR)
        if element.tail:
            element.tail = element.tail.replace("\r", _CR)
    return ElementTree.tostring(tree, encoding="unicode").replace(_CR, "&#13;")


@settings(max_examples=150, deadline=None)
@given(_MARKED_TREES)
def test_the_same_document_as_elementtree_writes(tree: ElementTree.Element) -> None:
    """Compared with ElementTree's own serializer, as XML (canonical form, which is
    blind to which character references are used and how empty elements are written)."""
    strings = [s for e in tree.iter() for s in (e.text, e.tail, *e.attrib.values()) if s]
    assume(not any(_CR in string for string in strings))
    ours = element_xml(tree)
    assert ElementTree.canonicalize(ours) == ElementTree.canonicalize(_elementtree_xml(tree))
    assert _shape(ElementTree.fromstring(ours)) == _shape(tree)


def test_markup_and_whitespace_in_values_are_escaped() -> None:
    element = ElementTree.Element("A", name='say "<&>"', note="tab\there\nline\rcr")
    element.text = "a < b && c > d ]]>"
    child = ElementTree.SubElement(element, "B")
    child.tail = "x\r\ny"
    back = _round_trip(element)
    assert back.attrib == element.attrib
    assert back.text == element.text
    assert back[0].tail == "x\r\ny"


def test_the_roots_tail_is_not_written() -> None:
    element = ElementTree.Element("A")
    element.tail = "outside"
    assert element_xml(element) in ("<A />", "<A></A>")
    assert element.tail == "outside"


def test_namespaces_and_comments_are_written_as_elementtree_does() -> None:
    element = ElementTree.Element("{urn:game}State")
    ElementTree.SubElement(element, "{urn:game}Object").text = "1"
    element.append(ElementTree.Comment("a comment"))
    back = _round_trip(element)
    assert back.tag == "{urn:game}State"
    assert back.find("{urn:game}Object").text == "1"  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["\x00", "\x1f", "\ud800", "\ufffe"])
def test_what_xml_cannot_carry_fails_at_encode_time(bad: str) -> None:
    text = ElementTree.Element("A")
    text.text = bad
    attribute = ElementTree.Element("A", v=bad)
    for element in (text, attribute):
        with pytest.raises(EncodeError, match=r"XML 1\.0"):
            element_xml(element)


@pytest.mark.parametrize("count", [1, 2, 3], ids=["1-attribute", "2-attributes", "3-attributes"])
def test_values_that_are_not_strings_fail_at_encode_time(count: int) -> None:
    text = ElementTree.Element("A")
    text.text = 3  # type: ignore[assignment]
    for value in (3, None):
        attributes: dict[str, Any] = {f"a{index}": "x" for index in range(count - 1)}
        attributes["v"] = value
        attribute = ElementTree.Element("A", attributes)
        leaf = ElementTree.Element("B")
        leaf.append(ElementTree.Element("A", attributes))
        for element in (text, attribute, leaf):
            with pytest.raises(EncodeError):
                element_xml(element)


def test_names_that_are_not_xml_names_fail_at_encode_time() -> None:
    with pytest.raises(EncodeError):
        element_xml(ElementTree.Element("a b"))


def test_comments_beside_markup_are_written_as_elementtree_does() -> None:
    element = ElementTree.Element("State")
    element.text = "a < b"
    element.append(ElementTree.Comment("x & y"))
    element[0].tail = "c > d"
    ElementTree.SubElement(element, "Object", name='"q"').text = "e & f"
    ours = element_xml(element)
    assert ElementTree.canonicalize(ours) == ElementTree.canonicalize(_elementtree_xml(element))


def test_names_are_checked_however_many_were_seen() -> None:
    """The writer keeps what it writes for each name it has seen: past its bound, new
    names are still written, and names that are not plain still refused."""
    for index in range(12_000):
        leaf = ElementTree.Element(f"n{index}", {f"a{index}": "v"})
        assert _shape(_round_trip(leaf)) == _shape(leaf)
    with pytest.raises(EncodeError):
        element_xml(ElementTree.Element("a b"))
    with pytest.raises(EncodeError):
        element_xml(ElementTree.Element("A", {"a b": "v"}))
