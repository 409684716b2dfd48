"""Server options from the environment and the TOML file (pymasep.comm.core.settings), for
code that builds its Server with the seed's arguments only, as pymasep's engine does."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from engines import MakeServer

from pymasep.comm.core import (
    ConfigurationError,
    ConnectionRejectedError,
    SendLimits,
    SocketHandler,
)
from pymasep.comm.core.testing.peers import LOOPBACK, RawClient, wait_registered
from pymasep.comm.server import Server

pytestmark = pytest.mark.usefixtures("no_thread_left_behind")

KEY = bytes(range(32))


def test_variables_set_what_the_code_does_not_pass(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYMASEP_COMM_STALL_TIMEOUT", "none")
    monkeypatch.setenv("PYMASEP_COMM_HANDSHAKE_TIMEOUT", "2")
    monkeypatch.setenv("PYMASEP_COMM_SEND_POLICY", "raise")
    monkeypatch.setenv("PYMASEP_COMM_LOG_LEVEL", "debug")
    server = make_server(handshake_timeout=7.0)
    assert server.stall_timeout is None
    assert server.handshake_timeout == 7.0  # the argument wins
    assert server.send_limits == SendLimits(policy="raise")
    assert server.logger.level == logging.DEBUG


def test_a_shared_key_from_the_config_file(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "engine.key").write_text(KEY.hex())
    (tmp_path / "engine.key").chmod(0o600)
    (tmp_path / "comm.toml").write_text('[server]\nauthkey_file = "engine.key"\n')
    monkeypatch.setenv("PYMASEP_COMM_CONFIG", str(tmp_path / "comm.toml"))
    server = make_server()
    assert server.requires == ("key",)
    client = RawClient(server.port, "p1", authkey=KEY)
    wait_registered(server, "p1")
    client.sock.close()
    with pytest.raises(ConnectionRejectedError):
        RawClient(server.port, "p2", authkey=b"another key")


def test_per_interface_keys_from_a_keys_file(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, key in (("p1", KEY), ("p2", KEY[::-1])):
        (tmp_path / f"{name}.key").write_text(key.hex())
        (tmp_path / f"{name}.key").chmod(0o600)
    (tmp_path / "interfaces").write_text("p1 p1.key\np2 p2.key\n")
    monkeypatch.setenv("PYMASEP_COMM_AUTHKEYS_FILE", str(tmp_path / "interfaces"))
    server = make_server()
    client = RawClient(server.port, "p2", authkey=KEY[::-1])
    wait_registered(server, "p2")
    client.sock.close()
    with pytest.raises(ConnectionRejectedError):  # p1's key, under p2's id
        RawClient(server.port, "p2", authkey=KEY)


def test_a_wrong_setting_fails_the_construction_before_anything_is_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probe = socket.create_server((LOOPBACK, 0))
    port = probe.getsockname()[1]
    probe.close()
    monkeypatch.setenv("PYMASEP_COMM_STALL_TIMOUT", "5")
    with pytest.raises(ConfigurationError, match="did you mean PYMASEP_COMM_STALL_TIMEOUT"):
        Server("engine", 2, SocketHandler, (), LOOPBACK, port)
    socket.create_server((LOOPBACK, port)).close()  # the port is free
