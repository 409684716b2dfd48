"""Settings from the environment and a TOML file (pymasep.comm.core.settings): the
precedence option by option, every error with its source, and what the files build
(keys, TLS contexts). No socket: TLS handshakes run over memory BIOs."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pymasep.comm.core import SendLimits
from pymasep.comm.core.__main__ import main
from pymasep.comm.core.exceptions import ConfigurationError
from pymasep.comm.core.settings import OPTIONS, Option, Side, markdown_table, read_key, resolve

pytestmark = pytest.mark.disable_socket  # sans-I/O: a socket fails the test

KEY = bytes(range(32))

# For each option: a value as the file writes it, as a variable writes it, and what both
# read as (a path: relative to the file's folder, or to the current one). Every option
# has one here (a test checks it), and none is its default.
SAMPLES: dict[str, tuple[str, str, Callable[[Path], object]]] = {
    "authkey_file": ('"a.key"', "a.key", lambda base: base / "a.key"),
    "authkeys_file": ('"keys.txt"', "keys.txt", lambda base: base / "keys.txt"),
    "certfile": ('"c.pem"', "c.pem", lambda base: base / "c.pem"),
    "keyfile": ('"k.pem"', "k.pem", lambda base: base / "k.pem"),
    "cafile": ('"ca.pem"', "ca.pem", lambda base: base / "ca.pem"),
    "tls": ("true", "yes", lambda base: True),
    "server_hostname": ('"engine.lab"', "engine.lab", lambda base: "engine.lab"),
    "handshake_timeout": ("2.5", "2.5", lambda base: 2.5),
    "max_pending_handshakes": ("12", "12", lambda base: 12),
    "max_frame_size": ("1_000_000", "1000000", lambda base: 1_000_000),
    "send_policy": ('"block"', "block", lambda base: "block"),
    "send_hard_limit": ("1024", "1024", lambda base: 1024),
    "send_soft_limit": ("0", "0", lambda base: 0),
    "send_soft_seconds": ("3", "3", lambda base: 3.0),
    "send_block_timeout": ('"none"', "None", lambda base: None),
    "send_drain_timeout": ("0.25", "0.25", lambda base: 0.25),
    "stall_timeout": ('"none"', "none", lambda base: None),
    "resume_window": ("0", "0", lambda base: 0.0),
    "linger": ("0.5", "0.5", lambda base: 0.5),
    "wire": ('"legacy"', "legacy", lambda base: "legacy"),
    "name": ('"lab engine"', "lab engine", lambda base: "lab engine"),
    "discovery_group": ('"239.1.2.3"', "239.1.2.3", lambda base: "239.1.2.3"),
    "discovery_port": ("10001", "10001", lambda base: 10001),
    "discovery_interface": ('"127.0.0.1"', "127.0.0.1", lambda base: "127.0.0.1"),
    "log_level": ('"debug"', "DEBUG", lambda base: "DEBUG"),
    "record": ('"records"', "records", lambda base: base / "records"),
}

PER_SIDE = [(option, side) for option in OPTIONS for side in sorted(option.sides)]


def _id(value: object) -> str:
    return value.name if isinstance(value, Option) else str(value)


def write_config(folder: Path, text: str) -> Path:
    path = folder / "comm.toml"
    path.write_text(text)
    return path


def write_key(path: Path, key: bytes = KEY, mode: int = 0o600) -> Path:
    path.write_text(key.hex() + "\n")
    path.chmod(mode)
    return path


def test_every_option_has_a_sample_that_is_not_its_default() -> None:
    assert set(SAMPLES) == {option.name for option in OPTIONS}
    for option in OPTIONS:
        assert SAMPLES[option.name][2](Path("/")) != option.default, option.name


# --- precedence, option by option -----------------------------------------------------


@pytest.mark.parametrize(("option", "side"), PER_SIDE, ids=_id)
def test_nothing_set_is_the_default(option: Option, side: Side) -> None:
    setting = resolve(side, "x", environ={}).values[option.name]
    assert (setting.value, setting.source.kind) == (option.default, "default")


@pytest.mark.parametrize(("option", "side"), PER_SIDE, ids=_id)
def test_the_side_table_sets_it_and_says_its_line(
    option: Option, side: Side, tmp_path: Path
) -> None:
    toml, _, expected = SAMPLES[option.name]
    config = write_config(tmp_path, f"# a lab\n\n[{side}]\n{option.name} = {toml}\n")
    setting = resolve(side, "x", environ={"PYMASEP_COMM_CONFIG": str(config)}).values[option.name]
    assert setting.value == expected(tmp_path)
    assert (str(setting.source), setting.source.table) == (f"{config}:4", f"[{side}]")


@pytest.mark.parametrize(("option", "side"), PER_SIDE, ids=_id)
def test_the_id_table_comes_before_the_side_table_and_only_for_that_id(
    option: Option, side: Side, tmp_path: Path
) -> None:
    toml, _, expected = SAMPLES[option.name]
    config = write_config(
        tmp_path,
        f'[{side}."player 1"]\n{option.name} = {toml}\n[{side}]\n{option.name} = {toml}\n',
    )
    environ = {"PYMASEP_COMM_CONFIG": str(config)}
    mine = resolve(side, "player 1", environ=environ).values[option.name]
    assert (str(mine.source), mine.source.table) == (f"{config}:2", f'[{side}."player 1"]')
    assert mine.value == expected(tmp_path)
    other = resolve(side, "player 2", environ=environ).values[option.name]
    assert str(other.source) == f"{config}:4"


@pytest.mark.parametrize(("option", "side"), PER_SIDE, ids=_id)
def test_the_variable_comes_before_the_file(option: Option, side: Side, tmp_path: Path) -> None:
    toml, text, expected = SAMPLES[option.name]
    config = write_config(tmp_path, f'[{side}."x"]\n{option.name} = {toml}\n')
    environ = {"PYMASEP_COMM_CONFIG": str(config), option.variable: text}
    setting = resolve(side, "x", environ=environ).values[option.name]
    assert (setting.source.kind, str(setting.source)) == ("variable", option.variable)
    # A path in a variable is relative to the current folder, not to the file's.
    assert setting.value == expected(Path.cwd())


@pytest.mark.parametrize(("option", "side"), PER_SIDE, ids=_id)
def test_an_argument_comes_before_the_variable(option: Option, side: Side) -> None:
    _, text, _ = SAMPLES[option.name]
    settings = resolve(side, "x", arguments={option.argument}, environ={option.variable: text})
    assert settings.values[option.name].source.kind == "argument"
    assert option.argument not in settings.arguments()


def test_what_defaults_alone_feed_is_left_to_the_constructor() -> None:
    assert resolve("server", "x", environ={}).arguments() == {}
    assert resolve("client", "x", environ={}).arguments() == {}


def test_the_send_limits_are_built_from_their_options_and_the_defaults() -> None:
    environ = {"PYMASEP_COMM_SEND_POLICY": "raise", "PYMASEP_COMM_SEND_HARD_LIMIT": "4096"}
    built = resolve("client", "x", environ=environ).arguments()
    assert built == {"send_limits": SendLimits(policy="raise", hard_limit=4096)}


def test_a_variable_of_the_other_side_is_no_error_and_is_shown() -> None:
    environ = {"PYMASEP_COMM_HANDSHAKE_TIMEOUT": "1", "PYMASEP_COMM_WIRE": "legacy"}
    settings = resolve("client", "x", environ=environ)
    assert "handshake_timeout" not in settings.values
    assert settings.other_side == ("PYMASEP_COMM_HANDSHAKE_TIMEOUT",)
    assert "PYMASEP_COMM_HANDSHAKE_TIMEOUT is set: a server option" in settings.describe()


# --- errors: each names its source and option -------------------------------------------


def error(side: Side = "server", ident: str | None = "x", **environ: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as raised:
        resolve(side, ident, environ=environ).arguments()
    return raised.value


def file_error(tmp_path: Path, text: str, side: Side = "server") -> ConfigurationError:
    return error(side, PYMASEP_COMM_CONFIG=str(write_config(tmp_path, text)))


def test_an_unknown_variable_suggests_the_closest_name() -> None:
    raised = error(PYMASEP_COMM_STALL_TIMOUT="5")
    assert raised.source == "PYMASEP_COMM_STALL_TIMOUT"
    assert str(raised) == (
        "PYMASEP_COMM_STALL_TIMOUT: unknown variable; did you mean PYMASEP_COMM_STALL_TIMEOUT?"
    )


def test_variables_of_pymasep_comm_that_are_not_options_are_known() -> None:
    resolve("server", environ={"PYMASEP_COMM_REQUIRE_NETNS": "1", "PYMASEP_COMM_CONFIG": ""})


def test_an_unknown_key_names_the_file_its_line_and_the_closest_name(tmp_path: Path) -> None:
    raised = file_error(tmp_path, '[client]\nwire = "v1"\n\n[server]\nstall_timout = 5\n')
    assert (raised.source, raised.option) == (f"{tmp_path / 'comm.toml'}:5", "stall_timout")
    assert raised.detail == "unknown option; did you mean stall_timeout?"


def test_an_unknown_key_in_an_id_table_of_the_other_side_is_found_too(tmp_path: Path) -> None:
    raised = file_error(tmp_path, '[client."player-1"]\nauthkey_fil = "k"\n', side="server")
    assert raised.source == f"{tmp_path / 'comm.toml'}:2"
    assert raised.detail == "unknown option; did you mean authkey_file?"


def test_an_unknown_table_is_refused(tmp_path: Path) -> None:
    raised = file_error(tmp_path, "[severs]\nlinger = 1\n")
    assert raised.source == f"{tmp_path / 'comm.toml'}:1"
    assert "unknown table 'severs'" in raised.detail and "did you mean server?" in raised.detail


def test_an_option_in_the_table_of_the_side_that_does_not_take_it(tmp_path: Path) -> None:
    raised = file_error(tmp_path, "[client]\nhandshake_timeout = 1\n")
    assert (raised.source, raised.option) == (f"{tmp_path / 'comm.toml'}:2", "handshake_timeout")
    assert raised.detail == "a server option, in a client table: put it in [server]"


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        ('stall_timeout = "soon"', 'must be a non-negative number of seconds or "none"'),
        ("max_frame_size = 0", "must be at least 1 (bytes), not 0"),
        ("max_frame_size = true", "must be an integer, not True"),
        ('send_policy = "drop"', 'must be one of "wait" | "disconnect" | "block" | "raise"'),
        ('discovery_group = "10.0.0.1"', "must be an IPv4 multicast address"),
        ("discovery_port = 70000", "must be from 1 to 65535, not 70000"),
        ("authkey_file = 5", "must be a path"),
    ],
)
def test_a_wrong_type_in_the_file_names_its_line(tmp_path: Path, line: str, detail: str) -> None:
    raised = file_error(tmp_path, f"[server]\n\n{line}\n")
    assert raised.source == f"{tmp_path / 'comm.toml'}:3"
    assert raised.option == line.split()[0]
    assert raised.detail.startswith(detail)


def test_a_wrong_type_in_a_variable_names_the_variable() -> None:
    raised = error(PYMASEP_COMM_HANDSHAKE_TIMEOUT="-1")
    assert (raised.source, raised.option) == ("PYMASEP_COMM_HANDSHAKE_TIMEOUT", "handshake_timeout")
    assert raised.detail == "must be a positive number of seconds, not -1.0"


def test_a_missing_config_file(tmp_path: Path) -> None:
    raised = error(PYMASEP_COMM_CONFIG=str(tmp_path / "nope.toml"))
    assert raised.source == f"PYMASEP_COMM_CONFIG={tmp_path / 'nope.toml'}"
    assert raised.detail == f"no such file: {tmp_path / 'nope.toml'}"


def test_a_file_that_is_not_toml(tmp_path: Path) -> None:
    raised = file_error(tmp_path, "[server]\nlinger = \n")
    assert raised.source == str(tmp_path / "comm.toml")
    assert raised.detail.startswith("not valid TOML: ") and "line 2" in raised.detail


def test_a_missing_key_file_names_the_option_and_where_it_was_set(tmp_path: Path) -> None:
    raised = file_error(tmp_path, '[server]\nauthkey_file = "keys/engine.key"\n')
    assert (raised.source, raised.option) == (f"{tmp_path / 'comm.toml'}:2", "authkey_file")
    assert raised.detail == f"no such file: {tmp_path / 'keys' / 'engine.key'}"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_may_read_is_refused_as_ssh_does(tmp_path: Path, mode: int) -> None:
    key = write_key(tmp_path / "engine.key", mode=mode)
    raised = error(PYMASEP_COMM_AUTHKEY_FILE=str(key))
    assert (raised.source, raised.option) == ("PYMASEP_COMM_AUTHKEY_FILE", "authkey_file")
    assert raised.detail == (
        f"permissions {mode:04o} for {key} are too open: a key file must be readable by "
        f"its owner only (chmod 600 {key})"
    )


@pytest.mark.parametrize("content", ["", "not hex\n", "0g"])
def test_a_key_file_must_hold_a_key_in_hexadecimal(tmp_path: Path, content: str) -> None:
    key = tmp_path / "engine.key"
    key.write_text(content)
    key.chmod(0o600)
    with pytest.raises(ConfigurationError, match="must hold a key in hexadecimal"):
        read_key(key)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_key_file_this_user_cannot_read(tmp_path: Path) -> None:
    key = write_key(tmp_path / "engine.key", mode=0o000)
    raised = error("client", PYMASEP_COMM_AUTHKEY_FILE=str(key))
    assert raised.detail == f"cannot read {key}: Permission denied"


def test_a_keys_file_that_is_not_text(tmp_path: Path) -> None:
    keys = tmp_path / "interfaces.txt"
    keys.write_bytes(b"player-1 \xff\xfe.key\n")
    raised = error(PYMASEP_COMM_AUTHKEYS_FILE=str(keys))
    assert (raised.source, raised.detail) == (
        "PYMASEP_COMM_AUTHKEYS_FILE",
        f"{keys} is not text (UTF-8)",
    )


def test_a_key_file_read_back(tmp_path: Path) -> None:
    key = write_key(tmp_path / "engine.key", mode=0o400)
    built = resolve("client", "x", environ={"PYMASEP_COMM_AUTHKEY_FILE": str(key)}).arguments()
    assert built == {"authkey": KEY}


def test_one_key_for_all_and_one_per_interface_are_not_both_set(tmp_path: Path) -> None:
    raised = file_error(tmp_path, '[server]\nauthkey_file = "a"\nauthkeys_file = "b"\n')
    assert raised.option == "authkeys_file" and "are both set" in raised.detail


# --- per-interface keys ------------------------------------------------------------------


@pytest.mark.parametrize("form", ["lines", "toml"])
def test_per_interface_keys_from_a_keys_file(tmp_path: Path, form: str) -> None:
    (tmp_path / "keys").mkdir()
    write_key(tmp_path / "keys" / "p1.key", b"one")
    write_key(tmp_path / "keys" / "p2.key", b"two")
    if form == "lines":
        keys = tmp_path / "interfaces.txt"
        keys.write_text("# id, then key file\nplayer-1 keys/p1.key\n\nplayer-2   keys/p2.key\n")
    else:
        keys = tmp_path / "interfaces.toml"
        keys.write_text('"player-1" = "keys/p1.key"\n"player-2" = "keys/p2.key"\n')
    config = write_config(tmp_path, f'[server]\nauthkeys_file = "{keys.name}"\n')
    built = resolve("server", "engine", environ={"PYMASEP_COMM_CONFIG": str(config)}).arguments()
    assert built == {"authkey": {"player-1": b"one", "player-2": b"two"}}


@pytest.mark.parametrize(
    ("lines", "line", "detail"),
    [
        ("player-1 keys/p1.key\nplayer-2\n", 2, "a line must hold an id, then its key file"),
        ("player-1 keys/p1.key\nplayer-1 keys/p1.key\n", 2, "'player-1' again (first at "),
        ("\nplayer-1 keys/nope.key\n", 2, "no such file: "),
        ("player-1 keys/open.key\n", 1, "permissions 0644 for "),
    ],
)
def test_a_wrong_keys_file_names_its_line(
    tmp_path: Path, lines: str, line: int, detail: str
) -> None:
    (tmp_path / "keys").mkdir()
    write_key(tmp_path / "keys" / "p1.key")
    write_key(tmp_path / "keys" / "open.key", mode=0o644)
    keys = tmp_path / "interfaces.txt"
    keys.write_text(lines)
    raised = error(PYMASEP_COMM_AUTHKEYS_FILE=str(keys))
    assert (raised.source, raised.option) == (f"{keys}:{line}", "authkeys_file")
    assert raised.detail.startswith(detail)


# --- TLS from files, with the standard library's defaults per side ----------------------


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA, a certificate for the engine and one for an interface, as PEM files."""
    import trustme

    ca = trustme.CA()
    files = {"ca": tmp_path / "ca.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    for name, host in (("engine", "engine.lab"), ("player", "player-1")):
        issued = ca.issue_cert(host)
        files[name] = tmp_path / f"{name}.pem"
        files[f"{name}-key"] = tmp_path / f"{name}.key.pem"
        for blob in issued.cert_chain_pems:
            blob.write_to_path(str(files[name]), append=True)
        issued.private_key_pem.write_to_path(str(files[f"{name}-key"]))
        files[f"{name}-key"].chmod(0o600)
    return files


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> None:
    """A TLS handshake between the two contexts, in memory."""
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    ends = {
        "client": client.wrap_bio(client_in, client_out, server_hostname=hostname),
        "server": server.wrap_bio(server_in, server_out, server_side=True),
    }
    done: set[str] = set()
    for _ in range(10):
        for name, end in ends.items():
            if name not in done:
                try:
                    end.do_handshake()
                    done.add(name)
                except ssl.SSLWantReadError:
                    pass
            server_in.write(client_out.read())
            client_in.write(server_out.read())
        if len(done) == 2:
            return
    raise AssertionError(f"no handshake: only {done} done")


def contexts(
    tmp_path: Path, pki: dict[str, Path], *, client_certificates: bool = False
) -> tuple[Any, Any]:
    """The SSL contexts that the engine and the interface player-1 take from a file: the
    engine's certificate, the interfaces trusting the CA; with ``client_certificates``,
    the engine asks for a certificate the CA signed, and player-1 has one."""
    engine = f'certfile = "{pki["engine"]}"\nkeyfile = "{pki["engine-key"]}"\n'
    player = f'certfile = "{pki["player"]}"\nkeyfile = "{pki["player-key"]}"\n'
    trust = f'cafile = "{pki["ca"]}"\n'
    text = f"[server]\n{engine}{trust if client_certificates else ''}[client]\n{trust}"
    if client_certificates:
        text += f'[client."player-1"]\n{player}'
    environ = {"PYMASEP_COMM_CONFIG": str(write_config(tmp_path, text))}
    server = resolve("server", "engine", environ=environ).arguments().get("ssl_context")
    client = resolve("client", "player-1", environ=environ).arguments().get("ssl_context")
    return server, client


def test_tls_from_files_with_the_defaults_of_each_side(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    server, client = contexts(tmp_path, pki)
    assert isinstance(server, ssl.SSLContext) and isinstance(client, ssl.SSLContext)
    assert server.verify_mode is ssl.CERT_NONE  # no client certificates asked
    assert client.verify_mode is ssl.CERT_REQUIRED and client.check_hostname
    handshake(server, client, "engine.lab")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, client, "elsewhere.lab")


def test_client_certificates_are_required_when_the_server_has_a_cafile(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    server, client = contexts(tmp_path, pki, client_certificates=True)
    assert server.verify_mode is ssl.CERT_REQUIRED
    handshake(server, client, "engine.lab")
    without = ssl.create_default_context(cafile=str(pki["ca"]))
    with pytest.raises(ssl.SSLError):
        handshake(server, without, "engine.lab")


def test_tls_on_an_interface_with_the_systems_authorities() -> None:
    client = resolve("client", "x", environ={"PYMASEP_COMM_TLS": "1"}).arguments()["ssl_context"]
    assert client.verify_mode is ssl.CERT_REQUIRED and client.check_hostname


@pytest.mark.parametrize(
    ("text", "option", "detail"),
    [
        ('[server]\nkeyfile = "{engine-key}"\n', "keyfile", "a keyfile without a certfile"),
        ('[server]\ncafile = "{ca}"\n', "cafile", "a server needs a certfile for TLS"),
        ('[server]\ncertfile = "{ca}"\nkeyfile = "{engine-key}"\n', "certfile", "certfile and"),
        ('[client]\ncafile = "{engine-key}"\n', "cafile", "not PEM certificates"),
        ('[server]\ncertfile = "{engine}"\nkeyfile = "{open}"\n', "keyfile", "permissions 0644"),
        ('[server]\n\ncertfile = "{open}"\n', "certfile", "permissions 0644"),
    ],
)
def test_wrong_tls_files_are_refused_at_once(
    tmp_path: Path, pki: dict[str, Path], text: str, option: str, detail: str
) -> None:
    opened = tmp_path / "open.pem"
    opened.write_bytes(pki["engine-key"].read_bytes() + pki["engine"].read_bytes())
    opened.chmod(0o644)
    names = {key.replace("-", "_"): value for key, value in {**pki, "open": opened}.items()}
    side: Side = "client" if text.startswith("[client]") else "server"
    source = text.replace("{engine-key}", "{engine_key}").format(**names)
    raised = file_error(tmp_path, source, side=side)
    assert raised.option == option and raised.detail.startswith(detail)
    assert raised.source.startswith(f"{tmp_path / 'comm.toml'}:")


# --- the lines of a TOML file ----------------------------------------------------------


def test_lines_are_found_through_quoted_dotted_and_multiline_keys(tmp_path: Path) -> None:
    text = (
        '[client."engine.lab" ]  # a dot inside quotes\n'
        'name_of_nothing = """\n'
        "linger = 1\n"
        '"""\n'
        "[ server ]\n"
        "linger = 2\n"
        "'linger ' = 3\n"
    )
    raised = file_error(tmp_path, text)  # name_of_nothing: the first unknown key
    assert raised.source == f"{tmp_path / 'comm.toml'}:2"
    raised = file_error(tmp_path, text.replace("name_of_nothing", "name"), side="client")
    assert raised.option == "name"  # a server option, in the client's table
    raised = file_error(tmp_path, text.replace("name_of_nothing", "server_hostname"))
    assert (raised.source, raised.option) == (f"{tmp_path / 'comm.toml'}:7", "linger ")


def test_a_dotted_key_at_the_top_level_has_its_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, '\nserver.linger = 4\nclient = { wire = "auto" }\n')
    environ = {"PYMASEP_COMM_CONFIG": str(config)}
    assert str(resolve("server", environ=environ).values["linger"].source) == f"{config}:2"
    assert str(resolve("client", environ=environ).values["wire"].source) == f"{config}:3"


# --- what config shows ------------------------------------------------------------------


def test_config_shows_each_value_and_its_source_and_a_secret_as_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = write_key(tmp_path / "player.key", b"very secret")
    config = write_config(
        tmp_path, f'[client]\nstall_timeout = 3\n[client."p1"]\nauthkey_file = "{key}"\n'
    )
    monkeypatch.setenv("PYMASEP_COMM_CONFIG", str(config))
    monkeypatch.setenv("PYMASEP_COMM_LINGER", "1")
    assert main(["config", "--client", "p1"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split(maxsplit=1)[1] for line in out.splitlines()[2:]}
    assert lines["authkey_file"] == f'"{key}"  {config}:4 [client."p1"]'
    assert lines["stall_timeout"].split() == ["3.0", f"{config}:2", "[client]"]
    assert lines["linger"].split() == ["1.0", "PYMASEP_COMM_LINGER"]
    assert lines["wire"].split() == ['"v1"', "default"]
    assert out.splitlines()[0] == f'# client "p1"; PYMASEP_COMM_CONFIG={config}'
    assert b"very secret".hex() not in out


def test_config_without_an_id_shows_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "# server (any id)" in out and "# client (any id)" in out


def test_config_reports_an_error_with_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYMASEP_COMM_AUTHKEY_FILE", str(tmp_path / "gone.key"))
    assert main(["config", "--server", "engine"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "python -m pymasep.comm.core config: PYMASEP_COMM_AUTHKEY_FILE: authkey_file: "
        f"no such file: {tmp_path / 'gone.key'}\n"
    )


def test_the_documentation_table_has_a_row_per_option() -> None:
    rows = markdown_table().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [option.name for option in OPTIONS]
    assert all(f"`{option.variable}`" in markdown_table() for option in OPTIONS)
