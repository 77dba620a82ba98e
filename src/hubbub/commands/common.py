"""What every client command shares: where the server is, who we are, clear errors."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from hubbub.client import (
    Client,
    ConnectError,
    HubbubClientError,
    JoinRefused,
    WaitingForUserId,
)

DEFAULT_URL = "http://127.0.0.1:8080"


class CommandError(Exception):
    """A failure to tell the user in one line (no traceback)."""


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--room", required=True, help="the room to join")
    parser.add_argument(
        "--url",
        default=os.environ.get("HUBBUB_URL", DEFAULT_URL),
        help="the server: ws://, wss://, http:// or https:// (env HUBBUB_URL; "
        f"default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("HUBBUB_TOKEN"),
        help="an access token, on servers that require one (env HUBBUB_TOKEN)",
    )
    parser.add_argument(
        "--user",
        default=None,
        help="the user id to join as, on servers in open mode (default: one the server "
        "picks); with a token, the token says who you are",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")


def make_client(args: argparse.Namespace, **options: Any) -> Client:
    """The command's client; what it waits for is said on stderr."""
    client = Client(args.url, args.room, user=args.user, token=args.token, **options)
    prog = f"hubbub {args.command_name}"

    def say_waits(event: object) -> None:
        if isinstance(event, WaitingForUserId):
            print(
                f"{prog}: the user id {event.user_id!r} is still held for a session that "
                "lost its connection (an earlier run of this command?); joining again "
                f"in {event.seconds:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    client.add_listener(say_waits)
    return client


def run_command(
    args: argparse.Namespace, main: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
) -> int:
    """Run ``main(args)`` on an event loop; turn known failures into one line on
    stderr and an exit code, and SIGINT / SIGTERM into a clean stop."""
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    prog = f"hubbub {args.command_name}"
    try:
        import uvloop

        runner: Callable[[Awaitable[int]], int] = uvloop.run  # type: ignore[assignment]
    except ImportError:  # pragma: no cover - uvloop is there but on Windows
        runner = asyncio.run  # type: ignore[assignment]
    try:
        return runner(_stoppable(main(args)))
    except KeyboardInterrupt:
        return 130
    except JoinRefused as exc:
        print(f"{prog}: error: the server refused to let us in: {exc}", file=sys.stderr)
    except ConnectError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
    except (CommandError, HubbubClientError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(
            f"{prog}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
            file=sys.stderr,
        )
    return 1


async def _stoppable(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main``; on SIGINT or SIGTERM cancel it so that its cleanup runs."""
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 130


def need_peer_extra() -> None:
    try:
        import aiortc  # noqa: F401
    except ImportError:
        raise CommandError(
            f"this command needs hubbub's WebRTC peers (aiortc): {peer_install_command()}"
        ) from None


def peer_install_command() -> str:
    """How to install the ``peer`` extra into the Python that runs this command: from
    the clone it runs from (``make serve`` installs the server alone), or from PyPI."""
    root = Path(__file__).resolve().parents[3]
    python = shlex.quote(sys.executable)
    if (root / "pyproject.toml").is_file() and (root / "src" / "hubbub").is_dir():
        return f"{python} -m pip install -e {shlex.quote(str(root) + '[peer]')}"
    return f"{python} -m pip install 'hubbub[peer]'"
