"""Settings from the environment and a TOML file, for code that cannot pass them (no sockets).

pymasep's engine and interfaces build their :class:`~pymasep.comm.server.Server` and
:class:`~pymasep.comm.client.Client` themselves, with the seed's arguments only; every
other option is read here, highest precedence first:

1. an argument passed in code;
2. an environment variable ``PYMASEP_COMM_<NAME>`` (both sides read it);
3. the TOML file that ``PYMASEP_COMM_CONFIG`` names: the table of the side's id
   (``[server."ID"]``, ``[client."ID"]``), then the side's table (``[server]``,
   ``[client]``);
4. the default.

Secrets are given as paths, never as values (``authkey_file``, ``authkeys_file``,
``keyfile``): a key file that others may read is refused, as ssh does. Anything that is
not understood (an unknown name, a wrong type, a missing file) raises
:class:`~pymasep.comm.core.exceptions.ConfigurationError`, naming where it was read (the
variable, or the file and its line) and the option.

:data:`OPTIONS` is the one table of options. ``docs/configuration.md`` is generated from
it (:func:`markdown_table`), and ``python -m pymasep.comm.core config`` shows the
effective settings and where each comes from (:meth:`Settings.describe`).

Adding an option is one :class:`Option` in :data:`OPTIONS`, for a keyword parameter of
the same name that ``Server.__init__`` and/or ``Client.__init__`` take (``sides``) with
the same default; :func:`configurable` passes it when the caller did not. Then a sample
value in the tests' ``SAMPLES`` (``tests/test_settings.py``: the precedence tests run
over every option), and ``python integration_tests/test_configuration_docs.py`` to
rewrite the documentation's table. Options that build one parameter together (the TLS
files) share its name as ``argument`` and have a builder in :data:`BUILDERS`.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
import math
import os
import re
import ssl
import stat
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar, get_args

from .connection import DEFAULT_SEND_LIMITS, DEFAULT_STALL_TIMEOUT, SendLimits, SendPolicy
from .discovery import DEFAULT_GROUP, DEFAULT_PORT
from .exceptions import ConfigurationError
from .linger import DEFAULT_LINGER
from .resume import DEFAULT_RESUME_WINDOW
from .wire import DEFAULT_MAX_FRAME_SIZE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (Python 3.10: tomli, a dependency of core there)
    import tomli as tomllib

__all__ = [
    "BUILDERS",
    "CONFIG_VARIABLE",
    "OPTIONS",
    "PREFIX",
    "Option",
    "Setting",
    "Settings",
    "Side",
    "Source",
    "configurable",
    "Kind",
    "markdown_table",
    "read_key",
    "resolve",
]

Side = Literal["server", "client"]
SIDES: tuple[Side, ...] = ("server", "client")

PREFIX = "PYMASEP_COMM_"
"""What every variable of pymasep-comm starts with."""

CONFIG_VARIABLE = PREFIX + "CONFIG"
"""The variable that names the TOML file (unset or empty: no file)."""

OTHER_VARIABLES: Mapping[str, str] = {
    CONFIG_VARIABLE: "the TOML file of settings",
    PREFIX + "REQUIRE_NETNS": "the test suites: fail, not skip, without network namespaces",
    PREFIX + "REQUIRE_BROWSER": "the watch tests: fail, not skip, without Chromium",
}
"""Variables of pymasep-comm that are not options: known, so never "unknown"."""

_logger = logging.getLogger("pymasep.comm.settings")


# --- kinds of values ----------------------------------------------------------------


class Kind:
    """How an option's value is read: from a variable's text, or a TOML value.

    Subclasses raise ValueError, with what was wanted, on a value they cannot take;
    ``base`` is the folder a relative path is relative to.
    """

    text = ""
    """What the documentation calls this kind of value."""

    def from_text(self, text: str, base: Path) -> object:
        """The value of a variable's ``text`` (by default, read as a TOML string)."""
        return self.from_toml(text, base)

    def from_toml(self, value: object, base: Path) -> object:
        """The value of a TOML ``value``, checked."""
        raise NotImplementedError

    def show(self, value: object) -> str:
        """The value as the file would hold it."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return f'"{value}"'
        return repr(value) if value is not None else "none"


class _Integer(Kind):
    def __init__(self, minimum: int, maximum: int | None = None, text: str = "") -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.text = text or f"integer, at least {minimum}"

    def from_text(self, text: str, base: Path) -> object:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"must be an integer, not {text!r}") from None
        return self.from_toml(value, base)

    def from_toml(self, value: object, base: Path) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, not {value!r}")
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            raise ValueError(f"must be {self.text.removeprefix('integer, ')}, not {value}")
        return value


class _Seconds(Kind):
    def __init__(self, *, optional: bool = False, positive: bool = False) -> None:
        self.optional = optional
        self.positive = positive
        self.text = "seconds" + (' or "none"' if optional else "")

    def from_text(self, text: str, base: Path) -> object:
        if self.optional and text.strip().lower() == "none":
            return None
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"must be {self._wanted()}, not {text!r}") from None
        return self.from_toml(value, base)

    def _wanted(self) -> str:
        sign = "positive" if self.positive else "non-negative"
        return f"a {sign} number of seconds" + (' or "none"' if self.optional else "")

    def from_toml(self, value: object, base: Path) -> object:
        if self.optional and isinstance(value, str) and value.lower() == "none":
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be {self._wanted()}, not {value!r}")
        number = float(value)
        if not math.isfinite(number) or number < 0 or (self.positive and number == 0):
            raise ValueError(f"must be {self._wanted()}, not {value!r}")
        return number


class _Text(Kind):
    def __init__(self, text: str = "text", check: Callable[[str], str] | None = None) -> None:
        self.text = text
        self.check = check

    def from_toml(self, value: object, base: Path) -> object:
        if not isinstance(value, str) or not value:
            raise ValueError(f"must be {self.text} (a non-empty string), not {value!r}")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ValueError(problem)
        return value


class _Choice(Kind):
    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.text = " | ".join(f'"{choice}"' for choice in choices)

    def from_toml(self, value: object, base: Path) -> object:
        if value not in self.choices:
            raise ValueError(f"must be one of {self.text}, not {value!r}")
        return value


class _Flag(Kind):
    text = "true | false"
    _WORDS: Mapping[str, bool] = {
        **dict.fromkeys(("1", "true", "yes", "on"), True),
        **dict.fromkeys(("0", "false", "no", "off"), False),
    }

    def from_text(self, text: str, base: Path) -> object:
        try:
            return self._WORDS[text.strip().lower()]
        except KeyError:
            raise ValueError(
                f"must be true or false (1, yes, on; 0, no, off), not {text!r}"
            ) from None

    def from_toml(self, value: object, base: Path) -> object:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}")
        return value


class _FilePath(Kind):
    """A path: relative to the TOML file's folder when read there, else to the current
    folder. Whether the file exists is checked when it is read."""

    text = "path"

    def from_toml(self, value: object, base: Path) -> object:
        if not isinstance(value, str) or not value:
            raise ValueError(f"must be a path (a non-empty string), not {value!r}")
        return base / Path(value).expanduser()

    def show(self, value: object) -> str:
        return "none" if value is None else f'"{value}"'


class _LogLevel(Kind):
    text = '"DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL", or an integer'

    def from_text(self, text: str, base: Path) -> object:
        text = text.strip()
        return self.from_toml(int(text) if text.isdigit() else text, base)

    def from_toml(self, value: object, base: Path) -> object:
        if isinstance(value, str) and isinstance(logging.getLevelName(value.upper()), int):
            return value.upper()
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ValueError(f"must be {self.text}, not {value!r}")

    def show(self, value: object) -> str:
        return f'"{logging.getLevelName(value)}"' if isinstance(value, int) else super().show(value)


def _multicast_group(value: str) -> str:
    import ipaddress

    try:
        if ipaddress.IPv4Address(value).is_multicast:
            return ""
    except ValueError:
        pass
    return f"must be an IPv4 multicast address, not {value!r}"


def _ipv4_address(value: str) -> str:
    import ipaddress

    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return f"must be a local IPv4 address, not {value!r}"
    return ""


# --- the table of options -----------------------------------------------------------

BOTH: frozenset[Side] = frozenset(SIDES)
SERVER: frozenset[Side] = frozenset(("server",))
CLIENT: frozenset[Side] = frozenset(("client",))


@dataclass(frozen=True)
class Option:
    """One setting: its name, how its value is read, its default, and what it feeds.

    Attributes:
        name: The key in the TOML file; the variable is ``PYMASEP_COMM_`` and the name
            in capitals.
        kind: How a value is read and checked.
        default: The value when nothing sets it (None: the constructor's own).
        sides: Which of ``"server"`` and ``"client"`` take it.
        argument: The constructor parameter it feeds. Options that share one (the
            files of TLS, the send limits) are built into it together
            (:data:`BUILDERS`); an option alone on its parameter is passed as it is.
        help: What it does, for the documentation (Markdown).
        secret: The value is the path of a secret (a key): the file must be readable
            by its owner only, and only the path is ever shown.
        default_text: How the documentation shows the default, when not the value.
    """

    name: str
    kind: Kind = field(repr=False)
    default: object
    sides: frozenset[Side]
    argument: str
    help: str = field(repr=False)
    secret: bool = False
    default_text: str = ""

    @property
    def variable(self) -> str:
        """The environment variable that sets it."""
        return PREFIX + self.name.upper()

    def show_default(self) -> str:
        """The default as the documentation shows it."""
        return self.default_text or self.kind.show(self.default)


_SIZE = _Integer(1, text="integer, at least 1 (bytes)")
_BYTES = _Integer(0, text="integer, at least 0 (bytes)")
_MIB = 1024 * 1024

OPTIONS: tuple[Option, ...] = (
    # Keys and TLS (docs/security.md).
    Option(
        "authkey_file", _FilePath(), None, BOTH, "authkey",
        "The shared key, in hexadecimal, in a file only its owner may read. The server "
        "requires it from every interface; an interface proves it holds it (its own "
        "key, with `authkeys_file` on the server).",
        secret=True, default_text="none (no key)",
    ),
    Option(
        "authkeys_file", _FilePath(), None, SERVER, "authkey",
        "Per-interface keys: a file of lines `ID PATH` (the interface's id, then its "
        "key file), or a `.toml` file of `\"ID\" = \"PATH\"`. Each interface connects "
        "only under the id whose key it holds.",
        default_text="none",
    ),
    Option(
        "certfile", _FilePath(), None, BOTH, "ssl_context",
        "A certificate chain (PEM): the server's (turns TLS on), or the interface's, "
        "for a server that requires client certificates.",
        default_text="none (no TLS)",
    ),
    Option(
        "keyfile", _FilePath(), None, BOTH, "ssl_context",
        "The private key of `certfile` (PEM), in a file only its owner may read; by "
        "default it is in `certfile`.",
        secret=True, default_text="none",
    ),
    Option(
        "cafile", _FilePath(), None, BOTH, "ssl_context",
        "Certificate authorities (PEM): those an interface trusts (turns TLS on), or "
        "those whose client certificates the server requires.",
        default_text="none (the system's, on an interface)",
    ),
    Option(
        "tls", _Flag(), False, CLIENT, "ssl_context",
        "Speak TLS, trusting the system's certificate authorities (`cafile` or "
        "`certfile` turn it on too).",
    ),
    Option(
        "server_hostname", _Text("a host name"), None, CLIENT, "server_hostname",
        "The name the server's certificate must carry.",
        default_text="the host connected to",
    ),
    # Limits.
    Option(
        "handshake_timeout", _Seconds(positive=True), 5.0, SERVER, "handshake_timeout",
        "Seconds a new connection has to complete its handshakes (TLS and hello).",
    ),
    Option(
        "max_pending_handshakes", _Integer(1), 256, SERVER, "max_pending_handshakes",
        "Connections that may be in their handshake at once; past it the oldest is "
        "dropped.",
    ),
    Option(
        "max_frame_size", _SIZE, DEFAULT_MAX_FRAME_SIZE, BOTH, "max_frame_size",
        "Largest frame accepted from the peer, in bytes.",
    ),
    Option(
        "send_policy", _Choice(*get_args(SendPolicy)), DEFAULT_SEND_LIMITS.policy,
        BOTH, "send_limits",
        "What happens to a peer that reads too slowly (`SendLimits.policy`).",
    ),
    Option(
        "send_hard_limit", _BYTES, DEFAULT_SEND_LIMITS.hard_limit, BOTH, "send_limits",
        "Bytes that may wait for a peer (`SendLimits.hard_limit`).",
        default_text=f"{DEFAULT_SEND_LIMITS.hard_limit // _MIB} MiB",
    ),
    Option(
        "send_soft_limit", _BYTES, DEFAULT_SEND_LIMITS.soft_limit, BOTH, "send_limits",
        "Bytes that may wait for `send_soft_seconds` at most; 0 turns it off "
        "(`SendLimits.soft_limit`).",
        default_text=f"{DEFAULT_SEND_LIMITS.soft_limit // _MIB} MiB",
    ),
    Option(
        "send_soft_seconds", _Seconds(), DEFAULT_SEND_LIMITS.soft_seconds, BOTH, "send_limits",
        "See `send_soft_limit` (`SendLimits.soft_seconds`).",
    ),
    Option(
        "send_block_timeout", _Seconds(optional=True), DEFAULT_SEND_LIMITS.block_timeout,
        BOTH, "send_limits",
        'Seconds a sender waits at most with `send_policy = "block"`; "none": no '
        "limit (`SendLimits.block_timeout`).",
    ),
    Option(
        "send_drain_timeout", _Seconds(positive=True), DEFAULT_SEND_LIMITS.drain_timeout,
        BOTH, "send_limits",
        'Seconds a peer may take no byte while a sender waits, with `send_policy = "wait"`, '
        "before it is cut (`SendLimits.drain_timeout`).",
    ),
    Option(
        "stall_timeout", _Seconds(optional=True), DEFAULT_STALL_TIMEOUT, BOTH, "stall_timeout",
        'Seconds the peer may stay silent in the middle of a frame; "none" never cuts it.',
    ),
    Option(
        "resume_window", _Seconds(), DEFAULT_RESUME_WINDOW, BOTH, "resume_window",
        "Seconds within which a connection that broke without a bye resumes, nothing "
        "lost; 0 never resumes.",
    ),
    Option(
        "linger", _Seconds(), None, BOTH, "linger",
        "Seconds to deliver queued frames and close at interpreter exit.",
        default_text=f"{DEFAULT_LINGER} (`linger.DEFAULT_LINGER`)",
    ),
    # Wire and discovery.
    Option(
        "wire", _Choice("v1", "legacy", "auto"), "v1", CLIENT, "wire",
        'The wire spoken: "legacy" to a pymasep 0.2 engine, "auto" as discovery says.',
    ),
    Option(
        "name", _Text("a name"), None, SERVER, "name",
        "A name that discovery shows beside the server's id.",
        default_text="none",
    ),
    Option(
        "discovery_group", _Text("a multicast group", _multicast_group), DEFAULT_GROUP, BOTH,
        "discovery_group", "Multicast group of discovery queries.",
    ),
    Option(
        "discovery_port", _Integer(1, 65535, "integer, from 1 to 65535"), DEFAULT_PORT, BOTH,
        "discovery_port", "UDP port of discovery queries.",
    ),
    Option(
        "discovery_interface", _Text("an IPv4 address", _ipv4_address), None, BOTH,
        "discovery_interface",
        "Local IPv4 address of the network interface discovery uses (by default the "
        "server answers on every one, an interface queries where the system routes).",
        default_text="none",
    ),
    Option(
        "log_level", _LogLevel(), "WARNING", BOTH, "log_level",
        "Level of the server's or client's logger.",
    ),
    # Recording (docs/recording.md).
    Option(
        "record", _FilePath(), None, BOTH, "record",
        "Record every frame and connection event: a directory, where each server and "
        "client writes a file named by its id and start time, or a `.jsonl` / "
        "`.jsonl.gz` file.",
        default_text="none (no recording)",
    ),
)  # fmt: skip
"""Every option, in the order the documentation and ``config`` show them."""

_BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}
_BY_VARIABLE: Mapping[str, Option] = {option.variable: option for option in OPTIONS}


# --- where a value comes from -------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a setting's value comes from.

    Attributes:
        kind: ``"argument"``, ``"variable"``, ``"file"`` or ``"default"``.
        where: The variable's name, or ``path:line`` of the file (``""`` otherwise).
        table: The file's table the value is in (``[server]``, ``[client."ID"]``).
    """

    kind: Literal["argument", "variable", "file", "default"]
    where: str = ""
    table: str = ""

    def __str__(self) -> str:
        return self.where or self.kind

    def origin(self) -> str:
        """Where, and in which table of the file: ``/lab/comm.toml:3 [server]``."""
        return f"{self} {self.table}" if self.table else str(self)


ARGUMENT = Source("argument")
DEFAULT = Source("default")


@dataclass(frozen=True)
class Setting:
    """An option's effective value and its source.

    Attributes:
        option: The option.
        value: Its value (for an argument that feeds several options, the argument).
        source: Where it comes from.
    """

    option: Option
    value: object
    source: Source

    def shown(self) -> str:
        """The value as ``config`` prints it: a secret as its path only."""
        if self.source.kind == "argument":
            return "(given in code)"
        if self.source.kind == "default" and self.option.default_text:
            return self.option.default_text
        return self.option.kind.show(self.value)


def _fail(detail: str, option: str = "", source: object = "") -> ConfigurationError:
    return ConfigurationError(detail, option=option, source=str(source))


def _suggest(name: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]}?" if close else ""


# --- the TOML file -------------------------------------------------------------------

_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_KEY_LINE = re.compile(rf"^\s*({_DOTTED})\s*=(.*)$")
_HEADER_LINE = re.compile(rf"^\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?$")


def _key_path(dotted: str) -> tuple[str, ...]:
    """The parts of a TOML key, as tomllib reads them (quotes and escapes resolved); ()
    for text that only looks like a key (inside a string this scan did not see)."""
    path: list[str] = []
    try:
        node: Any = tomllib.loads(f"{dotted} = 0")
    except tomllib.TOMLDecodeError:
        return ()
    while isinstance(node, dict):
        (key, node), *_ = node.items()
        path.append(key)
    return tuple(path)


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line (from 1) of every table header and key of a TOML document, by its path.

    tomllib gives no positions: the lines are found here, reading table headers and
    ``key =`` lines, and skipping the inside of multi-line strings.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    quote = ""  # the delimiter of the multi-line string being read, if any
    for number, line in enumerate(text.splitlines(), start=1):
        if quote:
            if line.count(quote) % 2:
                quote = ""
            continue
        header = _HEADER_LINE.match(line)
        if header and _key_path(header[1]):
            table = _key_path(header[1])
            lines.setdefault(table, number)
            continue
        key = _KEY_LINE.match(line)
        if key and _key_path(key[1]):
            lines.setdefault(table + _key_path(key[1]), number)
            for delimiter in ('"""', "'''"):
                if key[2].count(delimiter) % 2:
                    quote = delimiter
    return lines


@dataclass(frozen=True)
class _Document:
    """The TOML file: its tables, and the line of each key."""

    path: Path
    data: Mapping[str, Any]
    lines: Mapping[tuple[str, ...], int]

    def source(self, path: tuple[str, ...]) -> Source:
        for end in range(len(path), 0, -1):  # an inline table: the line of its parent
            line = self.lines.get(path[:end])
            if line is not None:
                break
        else:
            line = None
        where = f"{self.path}:{line}" if line else str(self.path)
        return Source("file", where, _table_name(path[:-1]))


def _table_name(path: tuple[str, ...]) -> str:
    if not path:
        return "(top level)"
    side, *rest = path
    return f'[{side}."{rest[0]}"]' if rest else f"[{side}]"


def _load_document(path: Path) -> _Document:
    source = f"{CONFIG_VARIABLE}={path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(f"no such file: {path}", source=source) from None
    except (OSError, UnicodeDecodeError) as error:
        raise _fail(f"cannot read {path}: {error}", source=source) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _fail(f"not valid TOML: {error}", source=path) from None
    return _Document(path, data, _key_lines(text))


def _check_document(document: _Document) -> None:
    """Fail on anything in the file that no option reads."""
    for key, value in document.data.items():
        if key not in SIDES:
            raise _fail(
                f"unknown table {key!r}: the file has [server] and [client] tables"
                + _suggest(key, SIDES),
                source=document.source((key,)),
            )
        if not isinstance(value, dict):
            raise _fail(f"{key} must be a table ([{key}])", source=document.source((key,)))
        for name, item in value.items():
            if isinstance(item, dict):
                for inner, inner_value in item.items():
                    _check_key(document, (key, name, inner), inner_value)
            else:
                _check_key(document, (key, name), item)


def _check_key(document: _Document, path: tuple[str, ...], value: object) -> None:
    side, name = path[0], path[-1]
    source = document.source(path)
    option = _BY_NAME.get(name)
    if option is None:
        if isinstance(value, dict):
            raise _fail("a table too deep: ids' tables hold options only", name, source)
        wanted = [o.name for o in OPTIONS if side in o.sides]
        raise _fail("unknown option" + _suggest(name, wanted), name, source)
    if side not in option.sides:
        (other,) = option.sides
        raise _fail(f"a {other} option, in a {side} table: put it in [{other}]", name, source)
    _parse_toml(option, value, document.path.parent, source)


def _parse_toml(option: Option, value: object, base: Path, source: Source) -> object:
    try:
        return option.kind.from_toml(value, base)
    except ValueError as error:
        raise _fail(str(error), option.name, source) from None


# --- resolution ----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The effective settings of one side, each with its source.

    Attributes:
        side: ``"server"`` or ``"client"``.
        ident: The id whose table of the file applies (None: the side's table only).
        config: The TOML file read (None without ``PYMASEP_COMM_CONFIG``).
        values: Each option of the side, by name, in the order of :data:`OPTIONS`.
        other_side: Variables set for options of the other side only (not used here).
    """

    side: Side
    ident: str | None
    config: Path | None
    values: Mapping[str, Setting]
    other_side: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> object:
        """The value of the option ``name``."""
        return self.values[name].value

    def __iter__(self) -> Iterator[Setting]:
        """Each setting, in the order of :data:`OPTIONS`."""
        return iter(self.values.values())

    def arguments(self) -> dict[str, Any]:
        """The constructor arguments that the environment or the file set.

        An argument that only defaults feed is left out (the constructor's default
        applies), and so is one passed in code. Files are read here: a key, a
        certificate.

        Raises:
            ConfigurationError: A file is missing, unreadable, too open, or not what
                its option says.
        """
        groups: dict[str, list[Setting]] = {}
        for setting in self.values.values():
            groups.setdefault(setting.option.argument, []).append(setting)
        built: dict[str, Any] = {}
        for argument, settings in groups.items():
            sources = {setting.source.kind for setting in settings}
            if "argument" in sources or sources == {"default"}:
                continue
            builder = BUILDERS.get(argument)
            if builder is None:
                (setting,) = settings
                built[argument] = setting.value
            else:
                built[argument] = builder(self.side, {s.option.name: s for s in settings})
        return built

    def describe(self) -> str:
        """What ``python -m pymasep.comm.core config`` prints: each option, its value
        (a secret as its path only) and where it comes from."""
        who = f'{self.side} "{self.ident}"' if self.ident else f"{self.side} (any id)"
        file = f"{CONFIG_VARIABLE}={self.config}" if self.config else f"{CONFIG_VARIABLE} unset"
        rows = [("option", "value", "from")]
        for setting in self:
            rows.append((setting.option.name, setting.shown(), setting.source.origin()))
        widths = [max(len(row[column]) for row in rows) for column in range(2)]
        lines = [f"# {who}; {file}"]
        lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows]
        for variable in self.other_side:
            lines.append(f"# {variable} is set: a {_other(self.side)} option, not used here")
        return "\n".join(lines)


def _other(side: Side) -> Side:
    return "client" if side == "server" else "server"


def resolve(
    side: Side,
    ident: str | None = None,
    *,
    arguments: Collection[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the settings of one side, from the environment and the TOML file.

    Args:
        side: ``"server"`` or ``"client"``.
        ident: The server's or client's id: its table of the file applies
            (``[server."ID"]``), before the side's table.
        arguments: The constructor parameters passed in code: the options that feed
            them are not read (the argument wins).
        environ: The environment (default ``os.environ``).

    Returns:
        The settings, each with its source.

    Raises:
        ConfigurationError: An unknown variable or key (with the closest valid name), a
            value of the wrong type, or a file that is missing or not valid TOML.
    """
    environ = os.environ if environ is None else environ
    for variable in sorted(environ):
        if (
            variable.startswith(PREFIX)
            and variable not in _BY_VARIABLE
            and variable not in OTHER_VARIABLES
        ):
            known = [*_BY_VARIABLE, *OTHER_VARIABLES]
            raise _fail("unknown variable" + _suggest(variable, known), source=variable)
    config = environ.get(CONFIG_VARIABLE, "")
    document = None
    if config:
        document = _load_document(Path(config).expanduser().absolute())
        _check_document(document)
    cwd = Path.cwd()
    values: dict[str, Setting] = {}
    for option in OPTIONS:
        if side not in option.sides:
            continue
        if option.argument in arguments:
            values[option.name] = Setting(option, None, ARGUMENT)
            continue
        text = environ.get(option.variable)
        if text is not None:
            try:
                value = option.kind.from_text(text, cwd)
            except ValueError as error:
                raise _fail(str(error), option.name, option.variable) from None
            values[option.name] = Setting(option, value, Source("variable", option.variable))
            continue
        values[option.name] = _from_document(document, side, ident, option)
    other = tuple(o.variable for o in OPTIONS if side not in o.sides and o.variable in environ)
    return Settings(side, ident, None if document is None else document.path, values, other)


def _from_document(
    document: _Document | None, side: Side, ident: str | None, option: Option
) -> Setting:
    if document is not None:
        table = document.data.get(side, {})
        paths = [(side, ident, option.name)] if ident is not None else []
        for path in [*paths, (side, option.name)]:
            node: Any = table
            for key in path[1:]:
                node = node.get(key) if isinstance(node, dict) else None
            if node is not None and not isinstance(node, dict):
                source = document.source(tuple(str(key) for key in path))
                value = _parse_toml(option, node, document.path.parent, source)
                return Setting(option, value, source)
    return Setting(option, option.default, DEFAULT)


# --- files: keys and certificates ------------------------------------------------------


def _existing(path: Path, option: str, source: object) -> Path:
    if not path.is_file():
        why = "not a file" if path.exists() else "no such file"
        raise _fail(f"{why}: {path}", option, source)
    return path


def _read_text(path: Path, option: str, source: object) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _fail(f"{path} is not text (UTF-8)", option, source) from None
    except OSError as error:
        raise _fail(f"cannot read {path}: {error.strerror or error}", option, source) from None


def _check_private(path: Path, option: str, source: object) -> None:
    """Refuse a secret that others may read or change (as ssh refuses a private key)."""
    if os.name != "posix":  # pragma: no cover (no POSIX modes to check)
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise _fail(
            f"permissions {mode:04o} for {path} are too open: a key file must be "
            f"readable by its owner only (chmod 600 {path})",
            option,
            source,
        )


def read_key(path: Path, option: str = "authkey_file", source: object = "") -> bytes:
    """Read a key file: the key in hexadecimal, readable by its owner only.

    Args:
        path: The file.
        option: The option that names it (for the error).
        source: Where the option was set (for the error).

    Returns:
        The key.

    Raises:
        ConfigurationError: The file is missing, others may read it, or it does not
            hold a key in hexadecimal.
    """
    _existing(path, option, source)
    _check_private(path, option, source)
    try:
        key = bytes.fromhex(_read_text(path, option, source).strip())
    except ValueError:
        key = b""
    if not key:
        raise _fail(
            f"{path} must hold a key in hexadecimal (make one with: python -c "
            '"import secrets; print(secrets.token_hex(32))" > KEYFILE)',
            option,
            source,
        )
    return key


def _read_keys_file(path: Path, source: object) -> dict[str, bytes]:
    """A server's per-interface keys: ``ID PATH`` lines, or a TOML table of them."""
    _existing(path, "authkeys_file", source)
    entries: list[tuple[str, str, str]] = []  # id, path, where
    if path.suffix == ".toml":
        document = _load_document(path)
        for ident, value in document.data.items():
            where = document.source((ident,)).where
            if not isinstance(value, str) or not value:
                raise _fail(f"the key file of {ident!r} must be a path, not {value!r}",
                            "authkeys_file", where)  # fmt: skip
            entries.append((ident, value, where))
    else:
        seen: dict[str, str] = {}
        text = _read_text(path, "authkeys_file", source)
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{path}:{number}"
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            ident, _, file = line.partition(" ")
            if not file.strip():
                raise _fail("a line must hold an id, then its key file", "authkeys_file", where)
            if ident in seen:
                raise _fail(f"{ident!r} again (first at {seen[ident]})", "authkeys_file", where)
            seen[ident] = where
            entries.append((ident, file.strip(), where))
    keys = {}
    for ident, file, where in entries:
        keys[ident] = read_key(path.parent / Path(file).expanduser(), "authkeys_file", where)
    if not keys:
        raise _fail(f"{path} names no interface", "authkeys_file", source)
    return keys


def _build_authkey(side: Side, settings: Mapping[str, Setting]) -> object:
    shared = settings["authkey_file"]
    per_interface = settings.get("authkeys_file")
    if per_interface is not None and per_interface.value is not None:
        if shared.value is not None:
            raise _fail(
                f"authkey_file ({shared.source}) and authkeys_file ({per_interface.source}) "
                "are both set: one key for every interface, or one per interface",
                "authkeys_file",
                per_interface.source,
            )
        assert isinstance(per_interface.value, Path)
        return _read_keys_file(per_interface.value, per_interface.source)
    if shared.value is None:
        return None
    assert isinstance(shared.value, Path)
    return read_key(shared.value, "authkey_file", shared.source)


def _build_ssl_context(side: Side, settings: Mapping[str, Setting]) -> ssl.SSLContext | None:
    certfile, keyfile, cafile = (settings[name] for name in ("certfile", "keyfile", "cafile"))
    tls = settings.get("tls")
    if keyfile.value is not None and certfile.value is None:
        raise _fail("a keyfile without a certfile", "keyfile", keyfile.source)
    if side == "server":
        if certfile.value is None:
            if cafile.value is not None:
                raise _fail("a server needs a certfile for TLS", "cafile", cafile.source)
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    else:
        if certfile.value is None and cafile.value is None and not (tls and tls.value):
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if cafile.value is not None:
        assert isinstance(cafile.value, Path)
        _existing(cafile.value, "cafile", cafile.source)
        try:
            context.load_verify_locations(cafile=cafile.value)
        except ssl.SSLError as error:
            raise _fail(f"not PEM certificates: {cafile.value} ({error})", "cafile",
                        cafile.source) from None  # fmt: skip
        except OSError as error:
            what = f"cannot read {cafile.value}: {error.strerror or error}"
            raise _fail(what, "cafile", cafile.source) from None
        if side == "server":  # certificates from these authorities are required
            context.verify_mode = ssl.CERT_REQUIRED
    if certfile.value is not None:
        assert isinstance(certfile.value, Path)
        _existing(certfile.value, "certfile", certfile.source)
        if keyfile.value is None:  # the private key is in the certificate's file
            _check_private(certfile.value, "certfile", certfile.source)
        else:
            assert isinstance(keyfile.value, Path)
            _existing(keyfile.value, "keyfile", keyfile.source)
            _check_private(keyfile.value, "keyfile", keyfile.source)
        try:
            context.load_cert_chain(certfile.value, keyfile.value)
        except ssl.SSLError as error:
            names = "certfile" if keyfile.value is None else "certfile and keyfile"
            raise _fail(
                f"{names} do not hold a certificate and its private key (PEM): {error}",
                "certfile",
                certfile.source,
            ) from None
        except OSError as error:
            what = f"cannot read {error.filename or certfile.value}: {error.strerror or error}"
            raise _fail(what, "certfile", certfile.source) from None
    return context


def _build_send_limits(side: Side, settings: Mapping[str, Setting]) -> SendLimits:
    def value(name: str) -> Any:
        return settings[name].value

    return SendLimits(
        policy=value("send_policy"),
        hard_limit=value("send_hard_limit"),
        soft_limit=value("send_soft_limit"),
        soft_seconds=value("send_soft_seconds"),
        block_timeout=value("send_block_timeout"),
        drain_timeout=value("send_drain_timeout"),
    )


BUILDERS: Mapping[str, Callable[[Side, Mapping[str, Setting]], object]] = {
    "authkey": _build_authkey,
    "ssl_context": _build_ssl_context,
    "send_limits": _build_send_limits,
}
"""How the options that share a constructor parameter are built into its value."""


# --- the constructors ----------------------------------------------------------------

_P = ParamSpec("_P")
_T = TypeVar("_T")


def configurable(side: Side) -> Callable[[Callable[_P, None]], Callable[_P, None]]:
    """Decorate the ``__init__`` of a server or client: the parameters that its caller
    did not pass are taken from the environment and the TOML file (:func:`resolve`),
    before the constructor runs as written.

    Args:
        side: ``"server"`` or ``"client"``.
    """

    def decorate(init: Callable[_P, None]) -> Callable[_P, None]:
        signature = inspect.signature(init)

        @functools.wraps(init)
        def configured(*args: _P.args, **kwargs: _P.kwargs) -> None:
            passed = signature.bind(*args, **kwargs).arguments
            settings = resolve(side, passed.get("ident"), arguments=passed)
            found = settings.arguments()
            init(*args, **{**kwargs, **found})
            if found:
                described = ", ".join(
                    f"{s.option.name}={s.shown()} ({s.source.origin()})"
                    for s in settings
                    if s.source.kind in ("variable", "file")
                )
                # On the new object's own logger (its id on each record, its level).
                logger = getattr(args[0], "logger", _logger)
                logger.info("settings of the environment and the file: %s", described)

        return configured

    return decorate


# --- the documentation ---------------------------------------------------------------


def markdown_table() -> str:
    """The table of every option that ``docs/configuration.md`` holds."""
    rows = [
        "| option (file key) | variable | side | value | default | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for option in OPTIONS:
        side = "both" if option.sides == BOTH else next(iter(option.sides))
        secret = " Secret: a path only." if option.secret else ""
        cells = (
            f"`{option.name}`",
            f"`{option.variable}`",
            side,
            option.kind.text,
            option.show_default(),
            option.help + secret,
        )
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)
