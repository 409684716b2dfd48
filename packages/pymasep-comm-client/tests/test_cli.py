"""Tests of the command line: ``python -m pymasep.comm.client discover``.

Runs that send a query happen in a network namespace of the test's own (see ``netns.py``
in core's ``tests/support``).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakeserver import pymasep_02_server, responding, v1_server

from pymasep.comm.client.__main__ import main
from pymasep.comm.core.recorder import Recorder
from pymasep.comm.core.testing.netns import child_main, requires_netns, run_isolated

HERE = __file__


def _main(*argv: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
    return {"status": status, "out": out.getvalue(), "err": err.getvalue()}


# --- scenarios (run in a namespace) -----------------------------------------------------


def scenario_servers() -> dict[str, Any]:
    servers = (
        v1_server("engine-1", 5000, name="My game"),
        v1_server("e2", 5001, wires=("v1",), requires=("key", "tls")),
        pymasep_02_server(6000),
    )
    with responding(*servers):
        return {
            "all": _main("discover", "--timeout", "0.3"),
            "one": _main("discover", "--timeout", "0.3", "--id", "e2"),
            "missing": _main("discover", "--timeout", "0.2", "--id", "nope"),
        }


def scenario_nobody() -> dict[str, Any]:
    return _main("discover", "--timeout", "0.2")


def scenario_settings() -> dict[str, Any]:
    """The port of an interface's settings; the group of the command line wins."""
    os.environ["PYMASEP_COMM_DISCOVERY_PORT"] = "10123"
    os.environ["PYMASEP_COMM_DISCOVERY_GROUP"] = "239.9.9.9"
    return _main("discover", "--timeout", "0.2", "--group", "239.1.1.1")


def scenario_foreign_interface() -> dict[str, Any]:
    return _main("discover", "--timeout", "0.2", "--interface", "10.9.9.9")


def scenario_module() -> dict[str, Any]:
    """Run ``python -m pymasep.comm.client`` (in the child's namespace), found and not."""

    def run(*argv: str) -> dict[str, Any]:
        process = subprocess.run(
            [sys.executable, "-m", "pymasep.comm.client", *argv],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return {"status": process.returncode, "out": process.stdout, "err": process.stderr}

    with responding(v1_server("engine", 5000)):
        return {
            "found": run("discover", "--timeout", "0.3"),
            "missing": run("discover", "--timeout", "0.2", "--id", "x"),
        }


# --- tests that need no socket ---------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["discover", "--timeout", "soon"],
        ["discover", "--timeout", "-1"],
        ["discover", "--group", "10.0.0.1"],
        ["discover", "--port", "70000"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    result = _main(*argv)
    assert result["status"] == 2
    assert result["out"] == ""
    assert "usage:" in result["err"]


def test_a_wrong_setting_is_a_usage_error_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYMASEP_COMM_DISCOVERY_GROUP", "10.0.0.1")
    result = _main("discover", "--timeout", "0.2")
    assert result["status"] == 2
    assert (
        "PYMASEP_COMM_DISCOVERY_GROUP: discovery_group: must be an IPv4 multicast address"
        in result["err"]
    )


def test_help_exits_0() -> None:
    result = _main("discover", "--help")
    assert result["status"] == 0
    for option in ("--timeout", "--group", "--port", "--interface", "--id"):
        assert option in result["out"]


# --- tests in a namespace holding only lo ----------------------------------------------


@requires_netns
def test_lists_servers_in_a_table() -> None:
    result = run_isolated(HERE, "scenario_servers")
    every = result["all"]
    assert every["status"] == 0
    assert every["err"] == ""
    lines = every["out"].splitlines()
    assert lines[0].split() == ["ID", "ADDRESS", "WIRE", "REQUIRES", "NAME"]
    rows = sorted(lines[1:])
    assert len(rows) == 3
    assert rows[0].split() == ["-", "127.0.0.1:6000", "legacy", "-", "-"]
    assert rows[1].split() == ["e2", "127.0.0.1:5001", "v1", "key,tls", "-"]
    assert rows[2].split() == ["engine-1", "127.0.0.1:5000", "v1", "-", "My", "game"]
    # Columns line up: every address starts where the header's does.
    column = lines[0].index("ADDRESS")
    assert all(line[column:].startswith("127.0.0.1:") for line in lines[1:])

    one = result["one"]
    assert one["status"] == 0
    assert one["out"].splitlines()[1].split() == ["e2", "127.0.0.1:5001", "v1", "key,tls", "-"]

    missing = result["missing"]
    assert missing["status"] == 1
    assert missing["out"] == ""
    assert "no server 'nope'" in missing["err"]
    # The servers that did answer, in the same table.
    listed = missing["err"].split("These servers answered:\n", 1)[1].splitlines()
    assert listed[0].split() == ["ID", "ADDRESS", "WIRE", "REQUIRES", "NAME"]
    assert sorted(row.split()[0] for row in listed[1:]) == ["-", "e2", "engine-1"]


@requires_netns
def test_exit_1_with_advice_when_nobody_answers() -> None:
    result = run_isolated(HERE, "scenario_nobody")
    assert result["status"] == 1
    assert result["out"] == ""
    assert "no pymasep server answered on 224.3.29.71:10000 within 0.2 s" in result["err"]
    assert "firewall" in result["err"]
    assert "(--interface)" in result["err"] and "interface=" not in result["err"]


@requires_netns
def test_discovery_settings_fill_what_the_command_line_leaves_out() -> None:
    result = run_isolated(HERE, "scenario_settings")
    assert result["status"] == 1
    assert "no pymasep server answered on 239.1.1.1:10123 within 0.2 s" in result["err"]


@requires_netns
def test_an_interface_address_not_on_this_machine_is_named_so() -> None:
    result = run_isolated(HERE, "scenario_foreign_interface")
    assert result["status"] == 1
    assert "cannot query from 10.9.9.9: it is not an address of this machine" in result["err"]
    assert "--interface" in result["err"] and "interface=" not in result["err"]


@requires_netns
def test_exit_1_when_multicast_has_no_route() -> None:
    result = run_isolated(HERE, "scenario_nobody", multicast_route=False)
    assert result["status"] == 1
    assert "cannot send the discovery query" in result["err"]
    assert "(--interface)" in result["err"]


@requires_netns
def test_python_dash_m_entry_point() -> None:
    result = run_isolated(HERE, "scenario_module")
    found, missing = result["found"], result["missing"]
    assert found["status"] == 0, found["err"]
    assert "engine" in found["out"]
    assert "127.0.0.1:5000" in found["out"]
    assert missing["status"] == 1
    assert missing["err"].startswith("pymasep-comm discover: no server 'x'")


if __name__ == "__main__":
    child_main(globals())


def test_replay_takes_the_server_as_host_and_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "p1.jsonl"), "--server", "localhost"]) == 2
    assert "--server takes HOST:PORT" in capsys.readouterr().err


def test_replay_refuses_an_engine_s_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Recorder(tmp_path / "engine.jsonl", "server", "engine").close()
    assert main(["replay", str(tmp_path / "engine.jsonl"), "--server", "127.0.0.1:1"]) == 2
    assert "recorded by an engine" in capsys.readouterr().err
