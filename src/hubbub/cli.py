"""The ``hubbub`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hubbub import __version__, logs, settings


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hubbub", description="A self-hosted real-time communication server."
    )
    parser.add_argument("--version", action="version", version=f"hubbub {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Serve WebSockets, the web app and the HTTP API on one port. Every "
        "option can also be set in the environment or a TOML file (--config); the "
        "command line wins over the environment, which wins over the file.",
    )
    settings.add_arguments(serve)

    config = commands.add_parser(
        "config",
        help="print the effective settings (secrets masked)",
        description="Print every setting as `hubbub serve` would use it, secrets masked.",
    )
    settings.add_arguments(config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    command = args.command
    del args.command
    try:
        loaded = settings.load(args)
    except settings.SettingsError as exc:
        parser.exit(2, f"hubbub {command}: error: {exc}\n")
    if command == "config":
        for name, value in settings.effective(loaded):
            print(f"{name} = {value}")
        return 0
    from hubbub.server import serve

    logs.configure(loaded.log_level, loaded.log_format, settings.secret_values(loaded))
    serve(loaded)
    return 0
