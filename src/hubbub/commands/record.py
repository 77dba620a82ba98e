"""``hubbub record``: a bot that joins a room and records one member's audio and video."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from hubbub.commands.common import (
    CommandError,
    add_connection_arguments,
    make_client,
    need_peer_extra,
    run_command,
)

CONTAINERS = (".mp4", ".mkv", ".webm")
"""What ``--out`` may end with: the container is chosen by the extension."""

TRACK_GATHER = 3.0
"""Seconds to wait, after the first track, for the member's other track before the
recording starts (a file's streams are fixed when it starts)."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "record",
        help="record a member's audio and video to a file",
        description="Join --room as a bot and record the audio and video of --member into "
        "--out (the container follows the extension: .mp4, .mkv, .webm). Stops when the "
        "member leaves, after --duration seconds, or on Ctrl-C. On servers with tokens, "
        "a token with the 'hidden' grant keeps the bot out of the others' member lists.",
    )
    parser.add_argument(
        "--member", dest="target", required=True, help="the user id of the member to record"
    )
    parser.add_argument("--out", required=True, type=Path, help="the file to write")
    parser.add_argument("--duration", type=float, default=None, help="seconds to record")
    parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the member")
    add_connection_arguments(parser)
    parser.set_defaults(command_name="record", run=lambda args: run_command(args, record))


async def record(args: argparse.Namespace) -> int:
    need_peer_extra()
    from aiortc import MediaStreamTrack

    from hubbub.client import UserLeft
    from hubbub.peer import JOIN_FIELDS, Mesh, Recording, SfuMedia

    if args.user is None and args.token is None:  # with a token, it says who we are
        args.user = "recorder-" + secrets.token_hex(3)
    target: str = args.target
    if not args.out.parent.exists():
        raise CommandError(f"no such directory: {args.out.parent}")
    if args.out.suffix.lower() not in CONTAINERS:
        raise CommandError(
            f"{args.out.name}: the file's extension names its container: " + ", ".join(CONTAINERS)
        )
    recording = Recording(args.out)
    tracks: dict[str, MediaStreamTrack] = {}
    first_track = asyncio.Event()
    both_tracks = asyncio.Event()
    ended = asyncio.Event()

    def on_track(user_id: str, track: MediaStreamTrack) -> None:
        if user_id != target or track.kind in tracks:
            return
        tracks[track.kind] = track
        first_track.set()
        if len(tracks) == 2:
            both_tracks.set()
        track.on("ended", ended.set)

    # In a room in SFU mode the member's feed comes from the media server (one
    # connection for it alone); in a mesh, from a peer connection to the member.
    client = make_client(args, events=False, join_fields=JOIN_FIELDS)
    sfu = SfuMedia(client, subscribe={target}, on_track=on_track)
    left = asyncio.Event()

    def on_event(event: object) -> None:
        if isinstance(event, UserLeft) and event.user_id == target:
            left.set()

    client.add_listener(on_event)
    async with client, sfu, contextlib.AsyncExitStack() as stack:
        if sfu.mode != "sfu":
            await stack.enter_async_context(
                Mesh(
                    client,
                    receive_media=True,
                    on_track=lambda peer, track: on_track(peer.user_id, track),
                )
            )
        try:
            async with asyncio.timeout(args.wait):
                await first_track.wait()
        except TimeoutError:
            raise CommandError(f"{target} sent no audio or video within {args.wait:g} s") from None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TRACK_GATHER):
                await both_tracks.wait()
        for track in tracks.values():
            await recording.add(track)
        await recording.start()
        if not recording.kinds:
            await recording.stop()
            raise CommandError(
                f"{target}'s video sent no frame within {recording.first_frame_timeout:g} s"
            )
        started = time.monotonic()
        kinds = ", ".join(sorted(recording.kinds))
        print(f"recording {target} ({kinds}) to {args.out}", flush=True)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.duration):
                    await _first(ended.wait(), left.wait())
        finally:
            await recording.stop()
            seconds = time.monotonic() - started
            print(f"recorded {seconds:.1f} s of {target} to {args.out}", flush=True)
    return 0


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
