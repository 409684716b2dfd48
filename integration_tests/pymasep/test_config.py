"""pymasep's own engine and interface, unmodified, get keys and TLS from one settings file.

pymasep builds its Server and Client with the seed's arguments only: everything else
reaches them through pymasep-comm's settings (PYMASEP_COMM_CONFIG, PYMASEP_COMM_*
variables; docs/configuration.md). Each game runs as test_games.py plays them: two
processes, in a network namespace of the test's own.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from test_games import GAMES, PLAY, assert_no_traceback, observations

from pymasep.comm.core.testing.netns import requires_netns, run_in_namespace

pytestmark = requires_netns

GAME = "duel"


def play(python: str, case: str, workdir: Path, config: Path, *options: str) -> dict[str, Any]:
    settings, _ = GAMES[GAME]
    command = [sys.executable, str(PLAY), python, GAME, case, str(workdir / "run")]
    command += [f"--set={s}" for s in settings] + [f"--config={config}", *options]
    return run_in_namespace(*command, timeout=300)  # type: ignore[no-any-return]


def write_key(path: Path, byte: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bytes([byte] * 32).hex() + "\n")
    path.chmod(0o600)  # wider is refused, as ssh does
    return path


def test_a_shared_key_and_tls_from_one_config_file(python: str, tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    issued = ca.issue_cert("engine.lab")
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "engine.pem"))
    issued.private_key_pem.write_to_path(str(tmp_path / "engine.key.pem"))
    (tmp_path / "engine.key.pem").chmod(0o600)
    write_key(tmp_path / "lab.key", 7)
    config = tmp_path / "comm.toml"
    config.write_text(
        "# One file for the lab: the engine's side and the interfaces'.\n"
        "[server]\n"
        'authkey_file = "lab.key"\n'
        'certfile = "engine.pem"\n'
        'keyfile = "engine.key.pem"\n'
        'log_level = "INFO"\n'
        "\n"
        "[client]\n"
        'authkey_file = "lab.key"\n'
        'cafile = "ca.pem"\n'
        'server_hostname = "engine.lab"\n'
    )
    result = play(python, "normal", tmp_path, config)
    assert result["interface"]["returncode"] == 0, result["interface"]
    assert result["engine"]["returncode"] == 0, result["engine"]
    _, expected = GAMES[GAME]
    assert observations(result["interface"]) == expected
    assert_no_traceback(result, "engine", "interface")
    # The engine's server took the key and the certificate from the file.
    settings = next(line for line in result["engine"]["stderr"] if "certfile=" in line)
    assert f'authkey_file="{tmp_path / "lab.key"}" ({config}:3 [server])' in settings
    assert f'certfile="{tmp_path / "engine.pem"}" ({config}:4 [server])' in settings


@pytest.fixture
def per_interface(tmp_path: Path) -> Path:
    """Per-interface keys: the engine's keys file, each interface's own key."""
    write_key(tmp_path / "keys" / "player-1.key", 1)
    write_key(tmp_path / "keys" / "player-2.key", 2)
    (tmp_path / "interfaces.txt").write_text(
        "# id, then the key file of that interface\n"
        "player-1 keys/player-1.key\n"
        "player-2 keys/player-2.key\n"
    )
    config = tmp_path / "comm.toml"
    config.write_text(
        '[server]\nauthkeys_file = "interfaces.txt"\n\n'
        '[client."player-1"]\nauthkey_file = "keys/player-1.key"\n'
    )
    return config


def test_per_interface_keys_from_one_config_file(
    python: str, tmp_path: Path, per_interface: Path
) -> None:
    result = play(python, "normal", tmp_path, per_interface, "--interface-id=player-1")
    assert result["interface"]["returncode"] == 0, result["interface"]
    assert result["engine"]["returncode"] == 0, result["engine"]
    assert result["interface_id"] == "player-1"
    _, expected = GAMES[GAME]
    assert observations(result["interface"]) == expected
    assert_no_traceback(result, "engine", "interface")


def test_an_interface_with_a_wrong_key_is_refused_and_both_sides_say_why(
    python: str, tmp_path: Path, per_interface: Path
) -> None:
    # player-1 with player-2's key: the variable comes before the file's table.
    wrong = f"PYMASEP_COMM_AUTHKEY_FILE={tmp_path / 'keys' / 'player-2.key'}"
    result = play(
        python, "refused", tmp_path, per_interface,
        "--interface-id=player-1", f"--interface-env={wrong}",
    )  # fmt: skip
    interface = "\n".join(result["interface"]["stderr"])
    assert result["interface"]["returncode"] not in (0, None), interface
    assert "authentication failed" in interface
    assert re.search(
        r"refusing \('127\.0\.0\.1', \d+\): authentication failed", result["engine_refused"]
    )
    assert result["sent"] == 0
