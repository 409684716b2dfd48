"""The games' launch script: what a pymasep user writes to start an engine or an interface.

    python launch.py engine duel --port 60123
    python launch.py interface duel --host 127.0.0.1 --port 60123
    python launch.py interface duel             # finds the engine by discovery

It writes the app's configuration (config/app.yaml) into the working directory, builds a
pymasep ``App`` and runs it. With pymasep-comm, the engine's launch script registers the
game classes that interfaces name in their DEFINE message (``register_type``); pymasep
0.2's own communication needs no such line.

On stdout: ``engine ready <id>`` / ``interface ready <id>`` once the App is built, a line
per observation the interface gets, and, once the app has ended, ``done``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mygames import GAMES
from omegaconf import OmegaConf

from pymasep.app import App


def register_games() -> None:
    """Let the engine decode the game classes that a DEFINE message carries."""
    try:
        from pymasep.comm.core import register_type
    except ImportError:  # pymasep 0.2's own communication imports any class it is named
        return
    for game_class, _ in GAMES.values():
        register_type(game_class)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["engine", "interface"])
    parser.add_argument("game", choices=sorted(GAMES))
    parser.add_argument("--host", help="the engine's host (the interface searches without it)")
    parser.add_argument("--port", type=int, default=60123, help="the engine's port")
    parser.add_argument("--slow", type=float, default=0.0, help="seconds per interface frame")
    parser.add_argument("--id", help="the interface's id (pymasep draws a random one)")
    parser.add_argument("--log-level", default="WARNING", help="pymasep's own log level")
    parser.add_argument(
        "--change-policy-at-step", type=int, default=None, metavar="K",
        help="from step K the interface's agent plays otherwise (the replay tests)",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], dest="settings", metavar="KEY=VALUE",
        help="a configuration value, as game.target=30",
    )  # fmt: skip
    args = parser.parse_args()

    config = OmegaConf.merge(
        {
            "engine": {"server": {"port": args.port}},
            "interface": {"skip_observations": False, "resolution": [160, 90]},
            "logger": {"level": args.log_level},
            "game": {"max_nb_players": 1},
        },
        OmegaConf.from_dotlist(args.settings),
    )
    Path("config").mkdir(exist_ok=True)
    OmegaConf.save(config, "config/app.yaml")

    _, interface_class = GAMES[args.game]
    if args.role == "engine":
        register_games()
        # The engine's communication logs (its settings, a connection that ends or is
        # refused) on stderr, from its construction on.
        comm = logging.getLogger("pymasep.comm")
        comm.addHandler(logging.StreamHandler(sys.stderr))
        app = App(interface_class, root_path=".", launch=App.LAUNCH_SERVER_STANDALONE)
        print(f"engine ready {app.engine.id}", flush=True)
    else:
        interface_class.slow = args.slow
        interface_class.controller_class.change_at = args.change_policy_at_step
        interface_class.fixed_id = args.id
        host, port = (args.host, args.port) if args.host else (None, None)
        app = App(
            interface_class,
            root_path=".",
            launch=App.LAUNCH_INTERFACE,
            remote_engine_host=host,
            remote_engine_port=port,
        )
        print(f"interface ready {app.interface.id}", flush=True)
    app.run()
    print("done", flush=True)


if __name__ == "__main__":
    main()
