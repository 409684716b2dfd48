"""Message and the XML of its values: round trips, pymasep 0.2 bytes, hostile input."""

from __future__ import annotations

import builtins
import contextlib
import importlib
import inspect
import math
import sys
import threading
import tracemalloc
import xml.etree.ElementTree as ElementTree
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from pymasep.comm.core import (
    DecodeError,
    EncodeError,
    Message,
    UnknownTypeError,
    UnsupportedValueError,
    allow_imported_types,
    forbid_imported_types,
    register_type,
    registered_types,
    unregister_type,
)
from pymasep.comm.core.message import MAX_ENVELOPE_VALUE
from pymasep.comm.core.xmlvalues import MAX_DEPTH

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test


class Game:
    """Stands for the game class that a DEFINE message carries."""


class StateLike:
    """Stands for pymasep's State: an object with a to_xml() method."""

    def to_xml(self) -> ElementTree.Element:
        element = ElementTree.Element("State", name="board")
        ElementTree.SubElement(element, "Object", name="pawn").text = "3"
        return element


def _read(data: bytes) -> Message:
    """The message ``data`` holds, read as pymasep reads one: into a new message."""
    message = Message("x", None, None)
    message.from_bytes(data)
    return message


def _decoded(message: Message) -> Message:
    result = Message("stale", {"stale": 1}, "stale")
    result.from_bytes(message.to_bytes())
    return result


def _same(left: Any, right: Any) -> bool:
    """Equal values of the same type, NaN included."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return (math.isnan(left) and math.isnan(right)) or (
            left == right and math.copysign(1, left) == math.copysign(1, right)
        )
    if isinstance(left, (list, tuple)):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    return bool(left == right)


# -- the documented API --------------------------------------------------------------


def test_signature_and_constants_are_the_seeds() -> None:
    assert list(inspect.signature(Message).parameters) == [
        "msg_type",
        "param_dict",
        "src_sub_app_id",
    ]
    assert (
        Message.MESSAGE_TYPE_DEFINE,
        Message.MESSAGE_TYPE_OBSERVATION,
        Message.MESSAGE_TYPE_ACTION,
        Message.MESSAGE_TYPE_QUIT_GAME,
        Message.MESSAGE_TYPE_REGISTER,
        Message.MESSAGE_TYPE_END_GAME,
    ) == ("define", "observation", "action", "quit", "register", "end")
    message = Message("action", {"a": 1}, "iface")
    assert (message.msg_type, message.params, message.src_sub_app_id) == (
        "action",
        {"a": 1},
        "iface",
    )


def test_to_xml_is_an_elementtree_element_with_the_02_layout() -> None:
    xml = Message("register", {"id": "i1", "role": 1}, "i1").to_xml()
    assert type(xml) is ElementTree.Element
    assert xml.tag == "Message"
    assert xml.get("msg_type") == "register"
    assert xml.get("src_sub_app") == "i1"
    items = xml.find("dict")
    assert items is not None
    assert [item.get("key") for item in items] == ["id", "role"]
    assert xml.findtext("dict/item[@key='role']/int") == "1"


def test_str_is_the_xml() -> None:
    message = Message("end", None, "engine")
    assert str(message) == message.to_bytes().decode()
    assert etree.fromstring(str(message)).get("msg_type") == "end"


def test_from_xml_accepts_lxml_and_elementtree() -> None:
    original = Message("action", {"move": [1, 2], "name": "é", "state": StateLike().to_xml()}, "i")
    for node in (original.to_xml(), etree.fromstring(original.to_bytes())):
        message = Message("x", None, None)
        message.from_xml(node)
        assert message == original
        assert message.params is not None
        assert type(message.params["state"]) is ElementTree.Element


def test_lxml_elements_is_an_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Message("observation", {"state": StateLike().to_xml(), "n": [1]}, "engine")
    one = Message("x", None, None)
    one.lxml_elements = True
    one.from_bytes(original.to_bytes())
    assert one.params is not None
    assert isinstance(one.params["state"], etree._Element)
    assert one == original
    assert type(_decoded(original).params["state"]) is ElementTree.Element  # type: ignore[index]
    monkeypatch.setattr(Message, "lxml_elements", True)
    assert isinstance(original.to_xml(), etree._Element)
    every = _decoded(original)
    assert isinstance(every.params["state"], etree._Element)  # type: ignore[index]
    from_tree = Message("x", None, None)
    from_tree.from_xml(ElementTree.fromstring(original.to_bytes()))
    assert isinstance(from_tree.params["state"], etree._Element)  # type: ignore[index]


def test_equality() -> None:
    assert Message("a", {"x": 1}, "s") == Message("a", {"x": 1}, "s")
    assert Message("a", {"x": 1}, "s") != Message("a", {"x": 2}, "s")
    assert Message("a", {"x": 1}, "s") != Message("b", {"x": 1}, "s")
    assert Message("a", None, "s") != Message("a", None, "t")
    assert Message("a", {"f": math.nan}, "s") == Message("a", {"f": math.nan}, "s")


# -- values --------------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\ufffe\uffff"))
_text = _text.filter(lambda s: not any(ord(c) < 32 and c not in "\t\n\r" for c in s))
_scalars = (
    st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | _text
    | st.booleans()
    | st.none()
)
_hashable = st.recursive(
    st.integers() | _text | st.booleans() | st.none(),
    lambda inner: st.tuples(inner, inner),
    max_leaves=5,
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.sets(_hashable, max_size=4)
        | st.dictionaries(_text, inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text, _values, max_size=5))
def test_any_supported_value_round_trips_with_its_type(params: dict[str, Any]) -> None:
    message = Message("observation", params, "engine")
    assert _same(_decoded(message).params, params)
    via_xml = Message(None, None, None)  # type: ignore[arg-type]
    via_xml.from_xml(message.to_xml())
    assert _same(via_xml.params, params)


@pytest.mark.parametrize(
    "value",
    [
        -0.0,
        math.inf,
        -math.inf,
        1e-300,
        5e-324,
        None,
        False,
        True,
        "",
        "  leading and trailing  ",
        "\r\n\t\r",
        "😀 astral, é accent",
        [],
        (),
        set(),
        {},
        [[[]]],
        {"": {"": ""}},
        2**200,
        "<class 'os.system'>",
    ],
)
def test_values_0_2_gets_wrong_come_back_exactly(value: Any) -> None:
    params = {"v": value, " key\twith\nwhitespace\r": value}
    assert _same(_decoded(Message("a", params, "s")).params, params)


def test_no_params_means_none_after_decoding() -> None:
    decoded = _decoded(Message("end", None, "engine"))
    assert decoded.params is None
    assert decoded.msg_type == "end"
    assert decoded.src_sub_app_id == "engine"
    assert _decoded(Message("end", {}, "engine")).params == {}


def test_missing_source_id_round_trips_as_none() -> None:
    assert _decoded(Message("end", None, None)).src_sub_app_id is None


def test_false_is_never_written_as_02_bool() -> None:
    # pymasep 0.2 decodes <bool>False</bool> as True; it must never see that tag.
    assert b"<bool>False</bool>" not in Message("a", {"b": False}, "s").to_bytes()
    assert b"<bool>True</bool>" in Message("a", {"b": True}, "s").to_bytes()


def test_elements_and_to_xml_objects_come_back_as_elementtree_elements() -> None:
    board = etree.Element("Board", size="3")
    etree.SubElement(board, "Cell").text = "x"
    board_tail = ElementTree.Element("Action")
    board_tail.text = "go"
    board_tail.tail = "not part of the value"
    params = {"lxml": board, "etree": board_tail, "object": StateLike()}
    decoded = _decoded(Message("observation", params, "engine")).params
    assert decoded is not None
    assert all(type(decoded[key]) is ElementTree.Element for key in params)
    assert ElementTree.tostring(decoded["lxml"]) == etree.tostring(board)
    assert decoded["etree"].text == "go"
    assert not decoded["etree"].tail
    assert decoded["object"].find("Object").text == "3"


def test_the_callers_element_is_not_moved() -> None:
    tree = etree.Element("Root")
    child = etree.SubElement(tree, "State")
    Message("observation", {"observation": child}, "engine").to_bytes()
    assert child.getparent() is tree


def test_registered_class_round_trips_and_travels_as_02_writes_it() -> None:
    register_type(Game)
    try:
        message = Message("define", {"game": Game}, "iface")
        assert b"&lt;class 'test_message.Game'&gt;" in message.to_bytes()
        assert _decoded(message).params == {"game": Game}
        assert registered_types()["test_message.Game"] is Game
    finally:
        unregister_type(Game)
    with pytest.raises(UnknownTypeError) as raised:
        _decoded(Message("define", {"game": Game}, "iface"))
    assert raised.value.name == "test_message.Game"


def test_an_unregistered_class_names_the_line_to_add() -> None:
    with pytest.raises(UnknownTypeError) as raised:
        _decoded(Message("define", {"game": Game}, "iface"))
    assert "'test_message.Game'" in str(raised.value)
    assert "after `import test_message`" in str(raised.value)
    line = str(raised.value).rpartition(": ")[2]
    assert line == "pymasep.comm.core.register_type(test_message.Game)"
    # The line does what it says.
    names = {"pymasep": importlib.import_module("pymasep"), "test_message": sys.modules[__name__]}
    exec(line, names)
    try:
        assert _decoded(Message("define", {"game": Game}, "iface")).params == {"game": Game}
    finally:
        unregister_type(Game)


def test_imported_types_resolve_only_under_allowed_packages_already_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imported: list[str] = []
    real_import = builtins.__import__

    def recording_import(name: str, *args: Any, **kwargs: Any) -> Any:
        imported.append(name)
        return real_import(name, *args, **kwargs)

    def decode(name: str) -> Any:
        text = (
            b"<Message msg_type='define'><dict><item key='game'><type>&lt;class '"
            + name.encode()
            + b"'&gt;</type></item></dict></Message>"
        )
        message = _read(text)
        return (message.params or {})["game"]

    with pytest.raises(ValueError, match="dotted package name"):
        allow_imported_types("")
    allow_imported_types("test_message", "json")
    try:
        monkeypatch.setattr(builtins, "__import__", recording_import)
        monkeypatch.setattr(importlib, "import_module", recording_import)
        assert decode("test_message.Game") is Game
        assert decode("json.decoder.JSONDecoder") is sys.modules["json.decoder"].JSONDecoder
        for refused in (
            "test_message.StateLike.to_xml",  # not a class
            "test_message.ElementTree.Element",  # imported by the module, defined elsewhere
            "json.scanner_that_is_not_imported.X",
            "test_messages.Game",  # not under an allowed package
            "xml.etree.ElementTree.Element",  # imported, but not allowed
        ):
            with pytest.raises(UnknownTypeError):
                decode(refused)
        assert "json.scanner_that_is_not_imported" not in sys.modules
        assert not [name for name in imported if name.startswith(("json", "test_message"))]
    finally:
        forbid_imported_types()
    with pytest.raises(UnknownTypeError):
        decode("test_message.Game")


def test_register_type_is_a_decorator_and_refuses_name_clashes() -> None:
    @register_type
    class Local:
        pass

    try:
        with pytest.raises(ValueError, match="already registered"):
            register_type(Game, name=f"{Local.__module__}.{Local.__qualname__}")
        with pytest.raises(TypeError):
            register_type("not a class")  # type: ignore[type-var]
    finally:
        unregister_type(Local)


def test_a_class_name_from_the_wire_is_never_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    imported: list[str] = []
    real_import = builtins.__import__

    def recording_import(name: str, *args: Any, **kwargs: Any) -> Any:
        imported.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", recording_import)
    monkeypatch.setattr(importlib, "import_module", recording_import)
    text = (
        b"<Message msg_type='define'><dict><item key='game'>"
        b"<type>&lt;class 'evil_module.payload'&gt;</type></item></dict></Message>"
    )
    with pytest.raises(UnknownTypeError):
        _read(text)
    # In a str, the same text is only text (0.2 imported it).
    decoded = _read(text.replace(b"type>", b"str>"))
    assert decoded.params == {"game": "<class 'evil_module.payload'>"}
    assert not [name for name in imported if "evil" in name]
    assert "evil_module" not in sys.modules


# -- pymasep 0.2 bytes ---------------------------------------------------------------

# Written by pymasep 0.2's Message.to_bytes() (xml.etree, ASCII with character references).
BYTES_02 = (
    b'<Message msg_type="register" src_sub_app="interface-1"><dict>'
    b'<item key="id"><str>interface-1</str></item>'
    b'<item key="queue_id"><int>7</int></item>'
    b'<item key="empty"><str content="empty" /></item>'
    b'<item key="flag"><bool>True</bool></item>'
    b'<item key="unicode"><str>caf&#233;</str></item>'
    b'<item key="nested"><list><item><tuple><item><int>1</int></item><item><str>a</str></item>'
    b"</tuple></item><item><set><item><int>2</int></item></set></item>"
    b'<item><dict><item key="k"><list /></item></dict></item></list></item>'
    b'<item key="state"><State name="s"><Object>1</Object></State></item>'
    b"</dict></Message>"
)


def test_bytes_written_by_02_decode() -> None:
    message = _read(BYTES_02)
    assert message.msg_type == "register"
    assert message.src_sub_app_id == "interface-1"
    params = message.params
    assert params is not None
    state = params.pop("state")
    assert params == {
        "id": "interface-1",
        "queue_id": 7,
        "empty": "",
        "flag": True,
        "unicode": "café",
        "nested": [(1, "a"), {2}, {"k": []}],
    }
    assert state.tag == "State"
    assert state.find("Object").text == "1"


def test_02_false_and_none_decode_to_what_they_meant() -> None:
    message = _read(
        b'<Message msg_type="a" src_sub_app="s"><dict><item key="f"><bool>False</bool></item>'
        b'<item key="n"><NoneType>None</NoneType></item></dict></Message>'
    )
    assert message.params == {"f": False, "n": None}


def test_our_bytes_for_02_values_parse_to_02_trees() -> None:
    """For every value 0.2 handles, our XML is the tree 0.2 writes (attribute order aside)."""
    ours = _read(BYTES_02)
    assert ours.params is not None
    ours.params["state"] = ElementTree.fromstring('<State name="s"><Object>1</Object></State>')
    ours.params["unicode"] = "café"

    def canonical(data: bytes) -> bytes:
        return etree.tostring(etree.fromstring(data), method="c14n")

    assert canonical(ours.to_bytes()) == canonical(BYTES_02)


# -- what cannot be encoded ----------------------------------------------------------


@pytest.mark.parametrize("text", ["\x00", "a\x0bb", "\ud800", "\ufffe", "\x1f"])
def test_strings_xml_cannot_carry_fail_at_encode_time(text: str) -> None:
    for params in ({"v": text}, {text: 1}, {"v": [text]}):
        with pytest.raises(EncodeError, match=r"XML 1\.0"):
            Message("a", params, "s").to_bytes()
    with pytest.raises(EncodeError):
        Message("a", None, text).to_bytes()


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"v": object()}, "params['v']"),
        ({"v": [1, b"bytes"]}, "params['v'][1]"),
        ({"v": {1: "int key"}}, "params['v']"),
        ({"v": {"deep": [{"x": 1j}]}}, "params['v']['deep'][0]['x']"),
    ],
)
def test_unsupported_values_name_type_and_path(params: dict[str, Any], where: str) -> None:
    with pytest.raises(UnsupportedValueError) as raised:
        Message("a", params, "s").to_bytes()
    assert where in str(raised.value)
    assert isinstance(raised.value, TypeError)


def test_params_must_be_a_dict_and_msg_type_a_str() -> None:
    with pytest.raises(UnsupportedValueError):
        Message("a", [1, 2], "s").to_bytes()  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        Message(None, {}, "s").to_bytes()  # type: ignore[arg-type]


def test_nesting_is_bounded_on_both_sides() -> None:
    value: Any = 1
    for _ in range(MAX_DEPTH):
        value = [value]
    _decoded(Message("a", {"v": value[0]}, "s"))
    with pytest.raises(EncodeError, match="nested"):
        Message("a", {"v": [value]}, "s").to_bytes()


# -- hostile bytes -------------------------------------------------------------------

BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz ['
    + b'<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">'
        % (level, (b"&lol%d;" % (level - 1) if level > 1 else b"&lol;") * 10)
        for level in range(1, 10)
    )
    + b']><Message msg_type="a"><dict><item key="k"><str>&lol9;</str></item></dict></Message>'
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<Message msg_type="a"><dict><item key="k"><str>&x;</str></item></dict></Message>'
)
NETWORK = (
    b'<?xml version="1.0"?><!DOCTYPE m SYSTEM "http://127.0.0.1:9/evil.dtd"><Message msg_type="a"/>'
)


HOSTILE = {
    "bomb": BOMB,
    "xxe": XXE,
    "external-dtd": NETWORK,
    # The same in UTF-16, with and without a BOM, and declared in the XML declaration:
    # the parser reads UTF-8 only, so <!DOCTYPE cannot hide in another encoding.
    "utf-16-bom": "\ufeff".encode("utf-16-le") + XXE.decode().encode("utf-16-le"),
    "utf-16": XXE.decode().encode("utf-16-be"),
    "declared-utf-16": XXE.replace(b'version="1.0"', b'version="1.0" encoding="UTF-16"'),
    # A DOCTYPE inside a comment is text, but refusing it costs nothing.
    "comment": b"<!-- <!DOCTYPE m> --><Message msg_type='a'/>",
}


def _refused_allocating(data: bytes, lxml_elements: bool, match: str) -> int:
    """Decode ``data``, which must be refused, leaving the Message as it was; return the
    peak of the Python memory allocated meanwhile."""
    message = Message("x", None, None)
    message.lxml_elements = lxml_elements
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match=match):
            message.from_bytes(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message.msg_type == "x"
    return peak


@pytest.mark.parametrize("lxml_elements", [False, True], ids=["elementtree", "lxml"])
@pytest.mark.parametrize("data", list(HOSTILE.values()), ids=list(HOSTILE))
def test_entities_and_dtds_are_refused_before_anything_is_expanded(
    data: bytes, lxml_elements: bool
) -> None:
    # An expanded bomb would be a string of a billion characters, a followed entity
    # another document: neither is built.
    assert _refused_allocating(data, lxml_elements, match="") < 1_000_000


@pytest.mark.parametrize("lxml_elements", [False, True], ids=["elementtree", "lxml"])
def test_hostile_depth_is_a_decode_error_or_a_value_never_a_crash(lxml_elements: bool) -> None:
    deep = 50_000
    containers = b"<list><item>" * deep + b"<int>1</int>" + b"</item></list>" * deep
    element = b"<A>" * deep + b"</A>" * deep
    for value in (containers, element):
        message = Message("x", None, None)
        message.lxml_elements = lxml_elements
        data = b'<Message msg_type="a"><dict><item key="v">' + value + b"</item></dict></Message>"
        try:
            message.from_bytes(data)
        except DecodeError:
            pass
        else:
            # Only an element value may come back, as parsed (expat does not recurse).
            assert value is element and not lxml_elements
            assert message.params is not None and message.params["v"].tag == "A"


def test_only_the_five_xml_entities_and_character_references_are_read() -> None:
    text = (
        b"<Message msg_type='a'><dict><item key='k'><str>&lt;&amp;&gt;&quot;&apos;&#233;"
        b"</str></item><item key='u'><str>&undeclared;</str></item></dict></Message>"
    )
    with pytest.raises(DecodeError):
        _read(text)
    message = _read(text.split(b"<item key='u'>")[0] + b"</dict></Message>")
    assert message.params == {"k": "<&>\"'é"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not xml",
        b"<Message",
        b"<Other/>",
        b'<Message msg_type="a"><list/></Message>',
        b'<Message msg_type="a"><dict/><dict/></Message>',
        b'<Message msg_type="a"><dict><item><int>1</int></item></dict></Message>',
        b'<Message msg_type="a"><dict><item key="k"><int>one</int></item></dict></Message>',
        b'<Message msg_type="a"><dict><item key="k"><float>x</float></item></dict></Message>',
        b'<Message msg_type="a"><dict><item key="k"><bool>yes</bool></item></dict></Message>',
        b'<Message msg_type="a"><dict><item key="k"><list><x/></list></item></dict></Message>',
        b'<Message msg_type="a"><dict><item key="k"><list><item/></list></item></dict></Message>',
        b'<Message msg_type="a"><dict><item key="k"><set><item><list/></item></set></item>'
        b"</dict></Message>",
        b'<Message msg_type="a"><dict><item key="k"><type>os.system</type></item></dict></Message>',
    ],
)
def test_malformed_messages_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        _read(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        _read(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_random_bytes_inside_a_message_only_raise_decode_error(data: bytes) -> None:
    document = b'<Message msg_type="a"><dict>' + data + b"</dict></Message>"
    with contextlib.suppress(DecodeError):
        _read(document)


# -- the envelope's limits -----------------------------------------------------------


@pytest.mark.parametrize("lxml_elements", [False, True], ids=["elementtree", "lxml"])
@pytest.mark.parametrize("attribute", ["msg_type", "src_sub_app", "other"])
def test_a_50_mb_envelope_attribute_is_refused_before_it_is_parsed(
    attribute: str, lxml_elements: bool
) -> None:
    # As pymasep-comm and 0.2 write a start tag (double quotes, msg_type first), or not.
    first = b'msg_type="a" ' if attribute != "msg_type" else b""
    data = b'<Message %s%s="%s"><dict /></Message>' % (
        first,
        attribute.encode(),
        b"x" * 50_000_000,
    )
    # Refused before parsing: expat and lxml would have built the 50 MB value, and
    # neither the bytes nor any part of them is copied.
    assert _refused_allocating(data, lxml_elements, match="at most 10240 bytes") < 1_000_000


def test_envelope_values_up_to_the_limit_are_read_longer_ones_refused() -> None:
    # However it is written: escaped, as 0.2 writes non-ASCII, in single quotes.
    for longest in ("é" * MAX_ENVELOPE_VALUE, '"' * MAX_ENVELOPE_VALUE):
        sent = Message(longest, {"a": 1}, longest)
        received = _read(sent.to_bytes())
        assert received == sent
    written = b"&#233;" * MAX_ENVELOPE_VALUE
    for raw in (written, b">" * MAX_ENVELOPE_VALUE, b'"' * MAX_ENVELOPE_VALUE):
        data = b"<Message msg_type='%s'/>" % raw
        received = _read(data)
        received.to_bytes()  # what decodes encodes again
    longer = "a" * (MAX_ENVELOPE_VALUE + 1)
    for msg_type, source in ((longer, "engine"), ("a", longer)):
        with pytest.raises(EncodeError, match="1024 characters"):
            Message(msg_type, None, source).to_bytes()
        data = f'<Message msg_type="{msg_type}" src_sub_app="{source}"/>'.encode()
        with pytest.raises(DecodeError, match="1024 characters"):
            _read(data)


@pytest.mark.parametrize(
    "data",
    [
        # More attributes than the limit, a long name, a long element name.
        b"<Message msg_type='a'" + b"".join(b" a%d='x'" % i for i in range(16)) + b"/>",
        b"<Message msg_type='a' " + b"n" * 257 + b"='x'/>",
        b"<" + b"M" * 257 + b" msg_type='a'/>",
        # Too many comments before the start tag, and one too long.
        b"<!-- c -->" * 17 + b"<Message msg_type='a'/>",
        b"<!--" + b"c" * 10_241 + b"--><Message msg_type='a'/>",
        # A comment too long to be read as one is not read as a start tag either.
        b"<!-- a='b'>" + b"c" * 10_241 + b"--><Message msg_type='" + b"x" * 20_000 + b"'/>",
    ],
    ids=["attributes", "attribute-name", "element-name", "comments", "comment", "not-a-tag"],
)
def test_an_envelope_beyond_its_limits_is_refused(data: bytes) -> None:
    with pytest.raises(DecodeError, match="limits"):
        _read(data)


def test_an_envelope_within_its_limits_is_read_whatever_its_xml_style() -> None:
    data = (
        b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?>\n<!-- a comment -->\r\n"
        b"<?game pi?>\t<Message\n msg_type = 'a&amp;b' src_sub_app=\"e&quot;1\" "
        + b"".join(b" a%d='x'" % i for i in range(14))
        + b" ><dict><item key='k'><int>1</int></item></dict></Message>"
    )
    message = _read(data)
    assert (message.msg_type, message.src_sub_app_id, message.params) == ("a&b", 'e"1', {"k": 1})


@pytest.mark.parametrize("lxml_elements", [False, True], ids=["elementtree", "lxml"])
def test_messages_decode_right_in_many_threads_at_once(lxml_elements: bool) -> None:
    """The engine decodes on each connection's reader thread: parsers are never shared."""
    threads = 8
    sent = [
        Message("observation", {"state": ElementTree.Element("State", step=str(n)), "n": n}, "e")
        for n in range(threads)
    ]
    data = [message.to_bytes() for message in sent]
    start = threading.Barrier(threads)
    wrong: list[Any] = []

    def decode(index: int) -> None:
        start.wait()
        for _ in range(100):
            received = Message("x", None, None)
            received.lxml_elements = lxml_elements
            received.from_bytes(data[index])
            if received != sent[index]:
                wrong.append((index, received))

    workers = [threading.Thread(target=decode, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert wrong == []


@pytest.mark.parametrize("lxml_elements", [False, True], ids=["elementtree", "lxml"])
@pytest.mark.parametrize(
    "data",
    [
        b"<Message msg_type='a'><!DOCTYPE m [<!ENTITY x 'y'>]><dict /></Message>",
        b"<Message msg_type='a'><dict /></Message><!DOCTYPE m>",
        b"<?xml version='1.0' encoding='UTF-16'?><Message msg_type='a'/><!DOCTYPE m>",
    ],
    ids=["in-the-element", "after-it", "declared-utf-16"],
)
def test_a_doctype_after_the_start_tag_is_refused(data: bytes, lxml_elements: bool) -> None:
    message = Message("x", None, None)
    message.lxml_elements = lxml_elements
    with pytest.raises(DecodeError):
        message.from_bytes(data)
    assert message.msg_type == "x"
