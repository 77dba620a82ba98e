"""The Python SDK in rooms in SFU mode, through a real Janus: a bot presenter, viewers
that take its feed (one connection per feed), a broadcast of one presenter to twenty
viewers who cost the presenter nothing, and ``hubbub record`` of a member."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc import MediaStreamTrack

from hubbub.client import Client
from hubbub.peer import JOIN_FIELDS, MediaSource, SfuMedia
from hubbub.server import ServerSettings
from tests.conftest import ServerFactory
from tests.janus import JanusLab, janus_lab, needs_janus
from tests.sdk.test_commands import assert_recording_has_moving_video, finish, hubbub
from tests.tokens import SECRET, token

pytestmark = needs_janus()

WAIT = 30.0


@pytest.fixture
async def lab() -> AsyncIterator[JanusLab]:
    async with janus_lab() as running:
        yield running


def sfu_settings(lab: JanusLab, **changes: object) -> ServerSettings:
    return ServerSettings(
        janus_url=[lab.url],
        janus_api_secret=lab.api_secret,
        janus_admin_key=lab.admin_key,
        media_mode="sfu",
        **changes,  # type: ignore[arg-type]
    )


class FrameCounter:
    """Counts the video frames each viewer decodes, by the member they come from."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}
        self.changed = asyncio.Event()

    def on_track(self, viewer: str):  # type: ignore[no-untyped-def]
        async def consume(user_id: str, track: MediaStreamTrack) -> None:
            if track.kind != "video":
                return
            key = f"{viewer}<-{user_id}"
            with contextlib.suppress(Exception):
                while True:
                    await track.recv()
                    self.frames[key] = self.frames.get(key, 0) + 1
                    self.changed.set()

        return consume

    async def until(self, keys: list[str], frames: int = 5) -> None:
        async with asyncio.timeout(WAIT):
            while not all(self.frames.get(key, 0) >= frames for key in keys):
                self.changed.clear()
                await self.changed.wait()


async def test_a_bot_presents_and_a_bot_watches(lab: JanusLab, start_hub: ServerFactory) -> None:
    url = await start_hub(sfu_settings(lab))
    media = MediaSource.test_pattern()
    counter = FrameCounter()
    presenter = Client(url, "stage", user="presenter", join_fields=JOIN_FIELDS, events=False)
    viewer = Client(url, "stage", user="viewer", join_fields=JOIN_FIELDS, events=False)
    async with (
        SfuMedia(presenter, media=media, subscribe=False) as presenting,
        presenter,
        SfuMedia(viewer, on_track=counter.on_track("viewer")) as watching,
        viewer,
    ):
        assert presenting.mode == "sfu"
        await presenting.wait_published(WAIT)
        await counter.until(["viewer<-presenter"])
        assert list(watching.subscribers) == ["presenter"]
    media.stop()


async def test_a_broadcast_of_one_presenter_to_twenty_viewers(
    lab: JanusLab, start_hub: ServerFactory
) -> None:
    """Viewers' tokens lack the publish grant; the presenter uploads one stream."""
    url = await start_hub(sfu_settings(lab, auth="token", token_secret=SECRET))
    media = MediaSource.test_pattern(audio=False, width=160, height=120)
    counter = FrameCounter()
    names = [f"viewer{n}" for n in range(20)]
    viewer_grants = ["join", "chat", "signal"]
    async with contextlib.AsyncExitStack() as stack:
        presenter = Client(
            url, "townhall", token=token("presenter"), join_fields=JOIN_FIELDS, events=False
        )
        presenting = await stack.enter_async_context(
            SfuMedia(presenter, media=media, subscribe=False)
        )
        await stack.enter_async_context(presenter)
        await presenting.wait_published(WAIT)
        viewers = []
        for name in names:
            client = Client(
                url,
                "townhall",
                token=token(name, grants=viewer_grants),
                join_fields=JOIN_FIELDS,
                events=False,
            )
            viewers.append(
                await stack.enter_async_context(SfuMedia(client, on_track=counter.on_track(name)))
            )
            await stack.enter_async_context(client)
        await counter.until([f"{name}<-presenter" for name in names], frames=3)
        # Each viewer takes the one feed there is, and publishes nothing.
        assert all(list(v.subscribers) == ["presenter"] and v.publisher is None for v in viewers)
        assert list(presenting.feeds) == ["presenter"]
        # The presenter sends one stream, whatever the audience.
        assert presenting.publisher is not None
        senders = presenting.publisher.getSenders()
        assert [sender.track.kind for sender in senders if sender.track] == ["video"]
    media.stop()


async def test_hubbub_record_records_a_member_in_an_sfu_room(
    lab: JanusLab, start_hub: ServerFactory, tmp_path: Path
) -> None:
    url = await start_hub(sfu_settings(lab))
    out = tmp_path / "rec.mkv"
    media = MediaSource.test_pattern()
    cam = Client(url, "rec", user="cam", join_fields=JOIN_FIELDS, events=False)
    async with SfuMedia(cam, media=media, subscribe=False) as presenting, cam:
        await presenting.wait_published(WAIT)
        async with hubbub(
            "record", "--url", url, "--room", "rec", "--member", "cam",
            "--out", str(out), "--duration", "6",
        ) as bot:  # fmt: skip
            stdout, stderr = await finish(bot)
            assert bot.returncode == 0, stderr
            assert "recording cam (audio, video)" in stdout
    media.stop()
    assert_recording_has_moving_video(out, audio=True)
