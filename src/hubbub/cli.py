"""The ``hubbub`` command."""

from __future__ import annotations

import argparse
import errno
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hubbub import __version__, logs, settings
from hubbub.auth import Grant, KeyConfigError, TokenError, VerificationKeys, mint_token
from hubbub.auth.grants import PARTICIPANT_GRANTS
from hubbub.auth.tokens import HMAC_ALGORITHM, MAX_TOKEN_TTL, load_private_key, parse_grants


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
        help="print an access token or an invite link (to try token mode out)",
        description="Mint an access token and print it, or with --link an invite link "
        "to the web app that carries it. It is signed with the token secret "
        "(--token-secret, HUBBUB_TOKEN_SECRET or the config file), or with --private-key "
        "for a server that checks tokens with the matching public key.",
    )
    token.add_argument("--user", required=True, help="the user id (the token's sub)")
    token.add_argument(
        "--room",
        action="append",
        required=True,
        help="a room it may join, or a prefix ending in '*' (repeatable)",
    )
    token.add_argument(
        "--ttl",
        default="1h",
        type=_duration,
        help="how long it is valid: 90s, 30m, 1h, 2d (a bare number is seconds); "
        f"at most {MAX_TOKEN_TTL // 86400}d (default: 1h)",
    )
    default_grants = ", ".join(sorted(PARTICIPANT_GRANTS))
    token.add_argument(
        "--grant",
        action="append",
        default=[],
        metavar="{" + ",".join(grant.value for grant in Grant) + "}",
        help=f"a grant added to the default ones ({default_grants}); repeatable",
    )
    token.add_argument(
        "--no-default-grants",
        action="store_true",
        help=f"start from no grant rather than from {default_grants}: the token "
        "allows only what --grant names",
    )
    token.add_argument("--name", help="a display name shown to the others")
    token.add_argument(
        "--link",
        metavar="URL",
        help="print an invite link to the web app at URL (https://meet.example.com/) "
        "with the token after '#', which browsers never send to a server",
    )
    token.add_argument(
        "--private-key", type=Path, metavar="FILE", help="PEM Ed25519 or P-256 private key"
    )
    token.add_argument("--token-secret", help="shared secret (HS256), at least 32 bytes")
    token.add_argument("--config", metavar="FILE", help="TOML file of settings")

    from hubbub.commands import add_client_commands

    add_client_commands(commands)
    return parser


_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> int:
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 90 (seconds), 90s, 30m, 1h, 2d"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_TOKEN_TTL:
        raise argparse.ArgumentTypeError(
            f"{text!r} is longer than hubbub mints tokens for ({MAX_TOKEN_TTL // 86400}d): "
            "a token cannot be revoked, keep it short"
        )
    return seconds


def invite_link(app_url: str, rooms: Sequence[str], token: str) -> str:
    """The web app at ``app_url`` with the room in the query (when the token names
    one room, not a prefix) and the token in the fragment, which a browser keeps to
    itself: it reaches no server and no log."""
    parts = urlsplit(app_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--link: {app_url!r} is not an http:// or https:// URL")
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "room"]
    if len(rooms) == 1 and not rooms[0].endswith("*"):
        query.append(("room", rooms[0]))
    path = parts.path or "/"
    return urlunsplit(
        (parts.scheme, parts.netloc, path, urlencode(query), urlencode({"token": token}))
    )


def _print_token(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    def refuse(message: str) -> NoReturn:
        parser.exit(2, f"hubbub token: error: {message}\n")

    try:
        grants = parse_grants(args.grant)
    except TokenError as exc:
        refuse(exc.message)
    if not args.no_default_grants:
        grants |= PARTICIPANT_GRANTS
    if args.link is not None:
        try:
            invite_link(args.link, args.room, "")
        except ValueError as exc:
            refuse(str(exc))
    key: Any
    if args.private_key is not None:
        try:
            algorithm, key = load_private_key(args.private_key)
        except KeyConfigError as exc:
            refuse(str(exc))
    else:
        given = {"config": args.config}
        if args.token_secret is not None:
            given["token_secret"] = args.token_secret
        try:
            key = settings.load(given).token_secret
        except settings.SettingsError as exc:
            refuse(str(exc))
        if not key:
            refuse(
                "no key to sign with: give --token-secret (or HUBBUB_TOKEN_SECRET, or "
                "token_secret in --config), or --private-key"
            )
        try:  # a secret the server would refuse makes tokens nobody can use
            VerificationKeys.load(key, None)
        except KeyConfigError as exc:
            refuse(str(exc))
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
    print(token if args.link is None else invite_link(args.link, args.room, token))
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
    except OSError as exc:
        parser.exit(1, f"hubbub serve: error: {listen_problem(loaded, exc)}\n")
    return 0


def listen_problem(loaded: settings.ServerSettings, exc: OSError) -> str:
    """What stopped the server from listening, in words (and what to do about it)."""
    where = f"{loaded.host}:{loaded.port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {loaded.port} on {loaded.host} is taken (by another hubbub, or another "
            f"server); choose another with --port {loaded.port + 1} (or HUBBUB_PORT, or "
            "port in --config), or stop what listens there"
        )
    if exc.errno == errno.EACCES:
        return (
            f"not allowed to listen on {where}: ports below 1024 need privileges; "
            "choose another with --port, or serve behind a reverse proxy (docs/deploy.md)"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{loaded.host} is not an address of this machine; choose one with --host"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {loaded.host!r}: not a known host name or address (--host)"
    return f"cannot listen on {where}: {exc.strerror or exc}"
