"""Client options from the environment and the TOML file (pymasep.comm.core.settings), for
code that builds its Client with the seed's arguments only, as pymasep's interface does."""

from __future__ import annotations

import inspect
import logging
import os
import queue
import socket
import ssl
import threading
from pathlib import Path

import pytest

from pymasep.comm.client import Client
from pymasep.comm.core import ConfigurationError, Frame, SocketHandlerQueue, Wire, encode_frame
from pymasep.comm.core.handshake import ServerHandshake
from pymasep.comm.core.settings import OPTIONS, Option
from pymasep.comm.core.testing.peers import LOOPBACK

pytestmark = pytest.mark.usefixtures("no_thread_left_behind")

KEY = bytes(range(32))
PARAMETERS = inspect.signature(Client.__init__).parameters


@pytest.fixture(autouse=True)
def no_settings_of_the_developer(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("PYMASEP_COMM_"):
            monkeypatch.delenv(variable)


def make_client(port: int = 1, **options: object) -> Client:
    return Client("p1", SocketHandlerQueue, (queue.Queue(),), LOOPBACK, port, **options)  # type: ignore[arg-type]


def test_every_option_beyond_the_seeds_arguments_has_a_setting() -> None:
    # The seed's arguments come before the bare *; every keyword-only one is settable.
    added = {p.name for p in PARAMETERS.values() if p.kind is p.KEYWORD_ONLY}
    settable = {o.argument for o in OPTIONS if "client" in o.sides}
    assert added - settable == set()


@pytest.mark.parametrize(
    "option", [o for o in OPTIONS if "client" in o.sides], ids=lambda option: option.name
)
def test_every_client_option_feeds_a_parameter_with_the_same_default(option: Option) -> None:
    parameter = PARAMETERS[option.argument]
    if option.argument == "log_level":
        assert logging.getLevelName(str(option.default)) == parameter.default
    elif option.argument == option.name:
        assert option.default == parameter.default


def test_variables_set_what_the_code_does_not_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMASEP_COMM_WIRE", "legacy")
    monkeypatch.setenv("PYMASEP_COMM_MAX_FRAME_SIZE", "4096")
    monkeypatch.setenv("PYMASEP_COMM_LINGER", "0")
    with make_client(max_frame_size=1024) as client:
        assert client.wire is Wire.LEGACY
        assert client.max_frame_size == 1024  # the argument wins
        assert client.linger == 0.0


def test_tls_and_a_key_from_one_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("engine.lab").configure_cert(server_context)
    (tmp_path / "p1.key").write_text(KEY.hex())
    (tmp_path / "p1.key").chmod(0o600)
    (tmp_path / "comm.toml").write_text(
        '[client]\ncafile = "ca.pem"\nserver_hostname = "engine.lab"\n'
        '[client."p1"]\nauthkey_file = "p1.key"\n'
    )
    monkeypatch.setenv("PYMASEP_COMM_CONFIG", str(tmp_path / "comm.toml"))

    with socket.create_server((LOOPBACK, 0)) as listener:

        def serve() -> None:
            conn, _ = listener.accept()
            with server_context.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(10)
                handshake = ServerHandshake("engine", authkey=KEY)
                while not handshake.receive_data(tls.recv(65536)):
                    tls.sendall(handshake.data_to_send())
                tls.sendall(handshake.accept_bytes() + encode_frame(Frame(b"welcome")))
                tls.recv(65536)  # the client's bye

        thread = threading.Thread(target=serve)
        thread.start()
        inbox: queue.Queue[bytes] = queue.Queue()
        client = Client("p1", SocketHandlerQueue, (inbox,), LOOPBACK, listener.getsockname()[1])
        client.connect(timeout=5)
        assert isinstance(client.socket, ssl.SSLSocket)
        assert inbox.get(timeout=5) == b"welcome"
        client.close()
        thread.join(5)


def test_a_key_file_others_may_read_fails_the_construction(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "p1.key").write_text(KEY.hex())
    (tmp_path / "p1.key").chmod(0o644)
    (tmp_path / "comm.toml").write_text('[client."p1"]\n\nauthkey_file = "p1.key"\n')
    monkeypatch.setenv("PYMASEP_COMM_CONFIG", str(tmp_path / "comm.toml"))
    with pytest.raises(ConfigurationError) as raised:
        make_client()
    assert raised.value.source == f"{tmp_path / 'comm.toml'}:3"
    assert raised.value.option == "authkey_file"
    assert raised.value.detail.startswith("permissions 0644 for ")
