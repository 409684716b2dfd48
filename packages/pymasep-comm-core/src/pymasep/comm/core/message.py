"""What the engine and its interfaces say to each other: :class:`Message`."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ElementTree
from typing import Any

from lxml import etree

from .elementwriter import element_xml
from .exceptions import DecodeError, EncodeError, UnsupportedValueError
from .xmlvalues import decode_value, encode_value, parse_xml, text_xml

__all__ = [
    "MAX_ENVELOPE_ATTRIBUTES",
    "MAX_ENVELOPE_BYTES",
    "MAX_ENVELOPE_NAME",
    "MAX_ENVELOPE_VALUE",
    "MAX_PROLOG_ITEMS",
    "Message",
]

MAX_ENVELOPE_VALUE = 1024
"""Longest value of an attribute of a message's start tag (``msg_type``,
``src_sub_app``, any other), in characters."""

MAX_ENVELOPE_BYTES = 10 * MAX_ENVELOPE_VALUE
"""Longest such value as written in the XML, in bytes, refused before parsing: no
character takes more than ten bytes to write (``&#1114111;``), so a value within
:data:`MAX_ENVELOPE_VALUE` passes however it is written, and nothing long is built."""

MAX_ENVELOPE_NAME = 256
"""Longest name, in bytes, of the message's element and of its attributes."""

MAX_ENVELOPE_ATTRIBUTES = 16
"""Most attributes the message's start tag may hold."""

MAX_PROLOG_ITEMS = 16
"""Most comments and processing instructions (the XML declaration is one) before the
message's start tag; each is at most :data:`MAX_ENVELOPE_BYTES` bytes long."""

# The start of a message, up to the end of its start tag, within the limits above. Each
# piece is bounded, so a match never reads far, whatever follows: expat builds a start
# tag's attributes before it hands them over, so a long one must be refused before.
# No two pieces can match the same bytes (whitespace only comes before a '<' or a name,
# a comment cannot hold "--", nor an instruction "?>"), so a failing match does not
# backtrack far either; and what the pattern reads as a comment or an instruction is
# what a parser reads as one (a name never starts with '!' or '?'). Nothing it matches
# holds "<!DOCTYPE", not even a comment, as parse_xml() refuses it everywhere.
_SPACE = rb"[ \t\r\n]"
_NAME = rb"[^ \t\r\n/>=<\"'!?][^ \t\r\n/>=<\"']{0,%d}" % (MAX_ENVELOPE_NAME - 1)
_VALUE = rb"(?:\"[^\"<]{0,%d}\"|'[^'<]{0,%d}')" % (MAX_ENVELOPE_BYTES, MAX_ENVELOPE_BYTES)
_ATTRIBUTE = rb"%s+%s%s*=%s*%s" % (_SPACE, _NAME, _SPACE, _SPACE, _VALUE)
_COMMENT = rb"<!--(?:[^-<]|-(?!-)|<(?!!DOCTYPE)){0,%d}-->" % MAX_ENVELOPE_BYTES
_INSTRUCTION = rb"<\?(?:[^?]|\?(?!>)){0,%d}\?>" % MAX_ENVELOPE_BYTES
_PROLOG = rb"(?:\xef\xbb\xbf)?%s*(?:(?:%s|%s)%s*){0,%d}" % (
    _SPACE,
    _COMMENT,
    _INSTRUCTION,
    _SPACE,
    MAX_PROLOG_ITEMS,
)
_ENVELOPE = re.compile(
    rb"%s<%s(?:%s){0,%d}%s*/?>" % (_PROLOG, _NAME, _ATTRIBUTE, MAX_ENVELOPE_ATTRIBUTES, _SPACE)
)


# The start tag as pymasep-comm and pymasep 0.2 write it, its values at most
# MAX_ENVELOPE_VALUE bytes (so as many characters at most): checked first, in half the
# time of the pattern above (which matches it too), and then the values need no count.
_AS_WRITTEN = re.compile(
    rb'<Message msg_type="[^"<]{0,%d}"(?: src_sub_app="[^"<]{0,%d}")?(?: ?/)?>'
    % (MAX_ENVELOPE_VALUE, MAX_ENVELOPE_VALUE)
)


def _check_envelope(data: bytes) -> bool:
    """Refuse bytes whose start tag breaks the envelope's limits, before any parsing;
    return whether its values are known to be within :data:`MAX_ENVELOPE_VALUE`."""
    if _AS_WRITTEN.match(data) is not None:
        return True
    if _ENVELOPE.match(data) is None:
        raise DecodeError(
            "not a message within the envelope's limits: a start tag first (after at most "
            f"{MAX_PROLOG_ITEMS} comments or processing instructions), with at most "
            f"{MAX_ENVELOPE_ATTRIBUTES} attributes, names of at most {MAX_ENVELOPE_NAME} "
            f"bytes and values of at most {MAX_ENVELOPE_BYTES} bytes as written"
        )
    return False


def _envelope_value(text: str, where: str) -> str:
    if len(text) > MAX_ENVELOPE_VALUE:
        raise EncodeError(
            f"{where} is longer than {MAX_ENVELOPE_VALUE} characters: the receiver would "
            f"refuse the message"
        )
    return text_xml(text, where)


def _same(left: Any, right: Any) -> bool:
    """Equality for message values: NaN equals NaN, elements compare by content."""
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, (etree._Element, ElementTree.Element)):
        if not isinstance(right, (etree._Element, ElementTree.Element)):
            return False
        return _xml(left) == _xml(right)
    if type(left) in (list, tuple) and type(left) is type(right):
        return len(left) == len(right) and all(map(_same, left, right))
    if type(left) in (set, frozenset) and type(left) is type(right):
        # Set membership goes by hash and ==, under which NaN and an element's copy
        # never match: pair the items with _same instead (sets here are small).
        unmatched = list(right)
        for item in left:
            match = next((i for i, other in enumerate(unmatched) if _same(item, other)), None)
            if match is None:
                return False
            del unmatched[match]
        return not unmatched
    if type(left) is dict and type(right) is dict:
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    return bool(left == right)


def _xml(element: Any) -> bytes:
    if isinstance(element, ElementTree.Element):
        element = etree.fromstring(element_xml(element))
    return bytes(etree.tostring(element, method="c14n", with_tail=False))


class Message:
    """Object send between thread or through network.

    * DEFINE: Define the game used by the engine.

      * Param: 'game': name of the game class (doted path)

    * REGISTER: Register the interface.

      * Param: 'id': id of the interface, 'queue_id': id of the queue used by interface
        to receive messages, 'role': 'InterfaceInfo.ROLE_OBSERVER' interface is only
        observer, 'InterfaceInfo.ROLE_ACTOR' interface is actor

    * OBSERVATION: Observation sent by engine to interface,

      * Param: 'observation': State object, 'additional_information': dictionary
        containing additional information. Ex: 'game_log', 'reward'

    * ACTION: Action sent by interface to engine

      * Param: 'action': Action object

    * END_GAME: Game is finished (by engine)

      * Param : None

    * QUI_GAME: Game is finished (by user)

      * Param : None

    Params hold int, float, str, bool, None, list, tuple, set, dict (str keys), classes
    registered with :func:`~pymasep.comm.core.register_type`, XML elements (lxml or
    ElementTree) and objects with a ``to_xml()`` method. Elements come back as
    ``xml.etree.ElementTree`` elements, as pymasep 0.2 gives them, unless
    :attr:`lxml_elements` is set.

    Args:
        msg_type: Type of message. See above.
        param_dict: Parameters of the message. May be None.
        src_sub_app_id: SubApplication id that send the message.
    """

    MESSAGE_TYPE_DEFINE = "define"
    """I -> E : Init the initial state"""

    MESSAGE_TYPE_OBSERVATION = "observation"
    """E -> I : Observation"""

    MESSAGE_TYPE_ACTION = "action"
    """I -> E : Action"""

    MESSAGE_TYPE_QUIT_GAME = "quit"
    """I -> E : Game is finished (by user)"""

    MESSAGE_TYPE_REGISTER = "register"
    """I -> E : Register interface to engine"""

    MESSAGE_TYPE_END_GAME = "end"
    """E -> I : Game is finished (by engine)"""

    lxml_elements: bool = False
    """Opt-in: decode element values (and :meth:`to_xml`) as lxml elements.

    False (the default) gives ``xml.etree.ElementTree`` elements, which pymasep's own
    ``from_xml()`` methods read fastest. Set it on the class
    (``Message.lxml_elements = True``) for every message the application decodes, or
    on one instance before calling :meth:`from_bytes`.
    """

    def __init__(
        self, msg_type: str, param_dict: dict[str, Any] | None, src_sub_app_id: Any
    ) -> None:
        self.msg_type = msg_type
        """Type of the message. See MESSAGE_TYPE_*"""
        self.params = param_dict
        """Parameter of the message."""
        self.src_sub_app_id = src_sub_app_id
        """Id of the sub application (interface or engine) source of the message."""

    def to_bytes(self) -> bytes:
        """Transform the message to bytes (its XML, UTF-8, without declaration).

        Returns:
            The message as bytes.

        Raises:
            UnsupportedValueError: A param of a type the XML cannot carry.
            EncodeError: A string XML 1.0 cannot carry, a missing ``msg_type``, or a
                ``msg_type`` or ``src_sub_app_id`` longer than 1,024 characters
                (``pymasep.comm.core.message.MAX_ENVELOPE_VALUE``).
        """
        if type(self.msg_type) is not str:
            raise EncodeError(f"msg_type must be a str, not {type(self.msg_type).__name__}")
        head = f'<Message msg_type="{_envelope_value(self.msg_type, "msg_type")}"'
        source = self.src_sub_app_id
        if source is not None:
            if not isinstance(source, str):
                raise UnsupportedValueError(
                    f"src_sub_app_id must be a str or None, not {type(source).__name__}"
                )
            head = f'{head} src_sub_app="{_envelope_value(source, "src_sub_app_id")}"'
        params = self.params
        if params is not None and not isinstance(params, dict):
            raise UnsupportedValueError(
                f"params must be a dict or None, not {type(params).__name__}"
            )
        if params is None:
            return f"{head} />".encode()
        parts = [f"{head}>"]
        try:
            encode_value(params, parts.append)
        except RecursionError:
            raise EncodeError("params are nested too deeply") from None
        parts.append("</Message>")
        return "".join(parts).encode()

    def from_bytes(self, b: bytes) -> None:
        """Transform bytes to a message, in this instance.

        Args:
            b: Bytes string representing XML.

        Raises:
            DecodeError: The bytes are not a valid message (malformed XML, a DOCTYPE,
                missing attributes, malformed values, an unregistered class), or its
                start tag breaks the envelope's limits: an attribute value longer than
                1,024 characters, and the others that the protocol reference lists
                (``pymasep.comm.core.message.MAX_ENVELOPE_VALUE`` and its neighbours).
                A value longer than 10,240 bytes as written, like every other limit of
                the start tag, is refused before the bytes are parsed.
        """
        if type(b) is not bytes:
            b = b.encode("utf-8") if isinstance(b, str) else bytes(b)
        short = _check_envelope(b)  # also: no DOCTYPE before the root element
        self._read(parse_xml(b, lxml_elements=self.lxml_elements, prolog_checked=True), short)

    def to_xml(self) -> ElementTree.Element:
        """Transform the Message to XML.

        Returns:
            The XML of the message, as a new ``xml.etree.ElementTree`` tree (an lxml
            one if :attr:`lxml_elements` is set). Changing it changes neither the
            message nor the elements it holds.
        """
        result: ElementTree.Element = parse_xml(self.to_bytes(), lxml_elements=self.lxml_elements)
        return result

    def from_xml(self, xml_node: Any) -> None:
        """Transform an XML to a Message. The instance must be created before.

        Args:
            xml_node: The XML node containing the Message: an ``xml.etree.ElementTree``
                element or an lxml one. The element values of the message are read
                from it, not copied, when it is of the kind :attr:`lxml_elements`
                asks for; otherwise they are converted.

        Raises:
            DecodeError: The XML is not a valid message.
        """
        if isinstance(xml_node, ElementTree.Element):
            if self.lxml_elements:
                xml_node = parse_xml(ElementTree.tostring(xml_node), lxml_elements=True)
        elif isinstance(xml_node, etree._Element):
            if not self.lxml_elements:
                xml_node = parse_xml(etree.tostring(xml_node, with_tail=False))
        else:
            raise DecodeError(f"from_xml() takes an XML element, not {type(xml_node).__name__}")
        self._read(xml_node)

    def _read(self, root: Any, short: bool = False) -> None:
        """Read the message from its element (``short``: its values are known to be
        within :data:`MAX_ENVELOPE_VALUE`)."""
        msg_type = root.get("msg_type")
        if msg_type is None:
            raise DecodeError(f"<{root.tag}> has no msg_type attribute: not a message")
        if not short and max(map(len, root.attrib.values())) > MAX_ENVELOPE_VALUE:
            raise DecodeError(
                f"an attribute of <{root.tag}> is longer than {MAX_ENVELOPE_VALUE} characters"
            )
        children = list(root)
        if len(children) > 1 or (children and type(children[0].tag) is not str):
            children = [child for child in children if isinstance(child.tag, str)]  # comments
        if len(children) > 1:
            raise DecodeError(f"a message holds {len(children)} params elements, not 1")
        params: dict[str, Any] | None = None
        if children:
            if children[0].tag != "dict":
                raise DecodeError(f"params must be a <dict>, not <{children[0].tag}>")
            try:
                params = decode_value(children[0])
            except RecursionError:
                raise DecodeError("params are nested too deeply") from None
        self.msg_type = msg_type
        self.src_sub_app_id = root.get("src_sub_app")
        self.params = params

    def __eq__(self, other: object) -> bool:
        """Check if two messages are equals (elements compare by their XML).

        Returns:
            True if two messages are equals.
        """
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.msg_type == other.msg_type
            and self.src_sub_app_id == other.src_sub_app_id
            and _same(self.params, other.params)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __str__(self) -> str:
        """Transform the message to string containing the XML version of the message.

        Returns:
            A string representing the XML version of the message.
        """
        return self.to_bytes().decode("utf-8")

    def __repr__(self) -> str:
        return (
            f"Message(msg_type={self.msg_type!r}, params={self.params!r}, "
            f"src_sub_app_id={self.src_sub_app_id!r})"
        )
