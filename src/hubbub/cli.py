"""The ``hubbub`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import fields

from hubbub import __version__
from hubbub.core import Limits


def _limit_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hubbub", description="A self-hosted real-time communication server."
    )
    parser.add_argument("--version", action="version", version=f"hubbub {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Serve WebSockets, the web app and the HTTP API on one port.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="least severe log lines shown",
    )
    limits = serve.add_argument_group("limits")
    for limit in fields(Limits):
        kind = float if limit.type in (float, "float") else int
        limits.add_argument(
            _limit_flag(limit.name),
            dest=limit.name,
            type=kind,
            default=limit.default,
            metavar=kind.__name__.upper(),
            help=f"{limit.metadata['help']} (default: %(default)s)",
        )
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help()
        return 2
    from hubbub.server import ServerSettings, serve

    try:
        limits = Limits(**{limit.name: getattr(args, limit.name) for limit in fields(Limits)})
    except ValueError as exc:
        parser.error(str(exc))
    _configure_logging(args.log_level)
    serve(ServerSettings(host=args.host, port=args.port, limits=limits))
    return 0
