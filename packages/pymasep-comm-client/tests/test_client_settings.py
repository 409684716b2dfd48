"""Client options from the environment and the TOML file (pymasep.comm.core.settings), for
code that builds its Client with the seed's arguments only, as pymasep's interface does."""

from __future__ import annotations

import queue
import socket
import ssl
from pathlib import Path

import pytest

from pymasep.comm.client import Client
from pymasep.comm.core import ConfigurationError, Frame, SocketHandlerQueue, Wire
from pymasep.comm.core.handshake import ServerHandshake
from pymasep.comm.core.testing.peers import LOOPBACK, serve_one_client

pytestmark = pytest.mark.usefixtures("no_thread_left_behind")

KEY = bytes(range(32))


def make_client(port: int = 1, **options: object) -> Client:
    return Client("p1", SocketHandlerQueue, (queue.Queue(),), LOOPBACK, port, **options)  # type: ignore[arg-type]


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
        served = serve_one_client(
            listener,
            ServerHandshake("engine", authkey=KEY),
            Frame(b"welcome"),
            ssl_context=server_context,
        )
        inbox: queue.Queue[bytes] = queue.Queue()
        client = Client("p1", SocketHandlerQueue, (inbox,), LOOPBACK, listener.getsockname()[1])
        client.connect(timeout=5)
        assert isinstance(client.socket, ssl.SSLSocket)
        assert inbox.get(timeout=5) == b"welcome"
        client.close()
        served(5)


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
