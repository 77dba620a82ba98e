"""The ``hubbub`` command."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hubbub import __version__, logs, settings
from hubbub.auth import Grant, KeyConfigError, TokenError, mint_token
from hubbub.auth.tokens import HMAC_ALGORITHM, load_private_key, parse_grants


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

    token = commands.add_parser(
        "token",
        help="print an access token (to try token mode out)",
        description="Mint an access token and print it. It is signed with the token "
        "secret (--token-secret, HUBBUB_TOKEN_SECRET or the config file), or with "
        "--private-key for a server that checks tokens with the matching public key.",
    )
    token.add_argument("--user", required=True, help="the user id (the token's sub)")
    token.add_argument(
        "--room",
        action="append",
        required=True,
        help="a room it may join, or a prefix ending in '*' (repeatable)",
    )
    token.add_argument(
        "--ttl", default="1h", type=_duration, help="how long it is valid: 90s, 30m, 1h, 2d"
    )
    token.add_argument(
        "--grant",
        action="append",
        metavar="{" + ",".join(grant.value for grant in Grant) + "}",
        help="what it allows (repeatable; default: join, chat, signal, screen)",
    )
    token.add_argument("--name", help="a display name shown to the others")
    token.add_argument(
        "--private-key", type=Path, metavar="FILE", help="PEM Ed25519 or P-256 private key"
    )
    token.add_argument("--token-secret", help="shared secret (HS256)")
    token.add_argument("--config", metavar="FILE", help="TOML file of settings")

    from hubbub.commands import add_client_commands

    add_client_commands(commands)
    return parser


_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> int:
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 1h, 2d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _print_token(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        grants = parse_grants(args.grant) if args.grant else None
    except TokenError as exc:
        parser.exit(2, f"hubbub token: error: {exc.message}\n")
    key: Any
    if args.private_key is not None:
        try:
            algorithm, key = load_private_key(args.private_key)
        except KeyConfigError as exc:
            parser.exit(2, f"hubbub token: error: {exc}\n")
    else:
        given = {"config": args.config}
        if args.token_secret is not None:
            given["token_secret"] = args.token_secret
        try:
            key = settings.load(given).token_secret
        except settings.SettingsError as exc:
            parser.exit(2, f"hubbub token: error: {exc}\n")
        if not key:
            parser.exit(
                2,
                "hubbub token: error: no key to sign with: give --token-secret (or "
                "HUBBUB_TOKEN_SECRET, or token_secret in --config), or --private-key\n",
            )
        algorithm = HMAC_ALGORITHM
    token, _ = mint_token(
        key,
        user_id=args.user,
        rooms=args.room,
        ttl=args.ttl,
        grants=grants,
        name=args.name,
        algorithm=algorithm,
    )
    print(token)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "run", None) is not None:  # a client command: chat, send, ...
        return int(args.run(args))
    command = args.command
    del args.command
    if command == "token":
        return _print_token(parser, args)
    try:
        loaded = settings.load(args)
    except settings.SettingsError as exc:
        parser.exit(2, f"hubbub {command}: error: {exc}\n")
    if command == "config":
        for name, value in settings.effective(loaded):
            print(f"{name} = {value}")
        return 0
    from hubbub.server import serve

    problem = loaded.exposure_problem()
    if problem is not None:
        parser.exit(2, f"hubbub serve: error: {problem}\n")
    logs.configure(loaded.log_level, loaded.log_format, settings.secret_values(loaded))
    try:
        serve(loaded)
    except settings.SettingsError as exc:
        parser.exit(2, f"hubbub serve: error: {exc}\n")
    return 0
