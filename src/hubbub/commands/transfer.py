"""``hubbub send`` and ``hubbub receive``: files peer to peer, with progress bars,
resumed after a broken connection, verified by SHA-256."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from hubbub.commands.common import (
    CommandError,
    add_connection_arguments,
    make_client,
    need_peer_extra,
    run_command,
)
from hubbub.commands.progress import ProgressBar, human_bytes


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser(
        "send",
        help="send a file to a member of a room, peer to peer",
        description="Send FILE to the member --to of --room over WebRTC. Waits for them "
        "to be there and to accept it (saying so on stderr); when the connection breaks, "
        "resumes where the receiver stopped.",
    )
    send.add_argument("file", metavar="FILE", type=Path)
    send.add_argument("--to", required=True, help="the user id of the receiver")
    send.add_argument(
        "--wait", type=float, default=300.0, help="seconds to wait for the receiver (300)"
    )
    send.add_argument(
        "--attempts", type=int, default=10, help="tries before giving up on a broken transfer"
    )
    add_connection_arguments(send)
    send.set_defaults(command_name="send", run=lambda args: run_command(args, send_file))

    receive = commands.add_parser(
        "receive",
        help="receive files sent to you in a room, peer to peer",
        description="Take the files members of --room send, into --out. Runs until "
        "interrupted, or until --count files have arrived.",
    )
    receive.add_argument("--out", required=True, type=Path, help="the directory for the files")
    receive.add_argument("--count", type=int, default=None, help="exit after this many files")
    receive.add_argument(
        "--max-size", type=int, default=None, help="refuse files larger than this many bytes"
    )
    add_connection_arguments(receive)
    receive.set_defaults(command_name="receive", run=lambda args: run_command(args, receive_files))


async def send_file(args: argparse.Namespace) -> int:
    need_peer_extra()
    from hubbub.peer import Mesh

    path: Path = args.file
    if not os.path.isfile(path):  # noqa: ASYNC240 - once, before any I/O
        raise CommandError(f"no such file: {path}")
    size = os.path.getsize(path)  # noqa: ASYNC240
    bar = ProgressBar(path.name, size)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def offered() -> None:
        say(f"offered {path.name} to {args.to}; waiting for them to accept it")

    async with make_client(args, events=False) as client, Mesh(client) as mesh:
        for attempt in range(1, args.attempts + 1):
            waiting = mesh.peers.get(args.to)
            if args.to not in client.participants:
                say(f"waiting for {args.to} to join {args.room} (up to {args.wait:g} s)")
            elif waiting is None or not waiting.connected:
                say(f"{args.to} is here; connecting to them")
            try:
                peer = await mesh.wait_for_peer(args.to, timeout=args.wait)
            except TimeoutError:
                raise CommandError(
                    f"{args.to} did not show up in {args.room} within {args.wait:g} s"
                ) from None
            result = await peer.send_file(
                path, progress=lambda done, _total: bar.update(done), offered=offered
            )
            bar.finish()
            if result.ok:
                resumed = f" (resumed at {human_bytes(result.offset)})" if result.offset else ""
                print(
                    f"sent {path.name} to {args.to}: {human_bytes(size)}, "
                    f"sha256 {result.sha256}{resumed}"
                )
                return 0
            if result.reason and result.reason.startswith("refused"):
                raise CommandError(f"{args.to} {result.reason}")
            print(
                f"transfer broke ({result.reason}); attempt {attempt} of {args.attempts}, "
                "resuming when the connection is back",
                file=sys.stderr,
            )
            await asyncio.sleep(1.0)
    raise CommandError(f"gave up after {args.attempts} attempts")


async def receive_files(args: argparse.Namespace) -> int:
    need_peer_extra()
    from hubbub.peer import FileInbox, FileOffer, Mesh

    bars: dict[str, ProgressBar] = {}

    def progress(offer: FileOffer, done: int) -> None:
        bar = bars.get(offer.transfer_id)
        if bar is None:
            bar = bars[offer.transfer_id] = ProgressBar(offer.name, offer.size)
        bar.update(done)

    inbox = FileInbox(args.out, max_size=args.max_size, progress=progress)
    received = 0
    async with make_client(args, events=False) as client, Mesh(client, files=inbox):
        print(f"receiving in {args.room} as {client.user_id} into {args.out}", flush=True)
        while args.count is None or received < args.count:
            result = await inbox.next_result()
            for bar in bars.values():
                bar.finish()
            bars.clear()
            if result.ok:
                received += 1
                resumed = f", resumed at {human_bytes(result.offset)}" if result.offset else ""
                print(
                    f"received {result.path} from {result.from_user}: "
                    f"{human_bytes(result.size)}, sha256 verified{resumed}",
                    flush=True,
                )
            else:
                print(
                    f"transfer of {result.name} from {result.from_user} broke: {result.reason}",
                    file=sys.stderr,
                    flush=True,
                )
    return 0
