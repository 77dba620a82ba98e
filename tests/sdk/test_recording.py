"""hubbub.peer.Recording on its own: tracks made in the process, no network."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import pytest
from aiortc import MediaStreamTrack

from hubbub.peer import Recording, ToneTrack
from hubbub.peer import TestPatternTrack as PatternTrack  # not a test class
from tests.sdk.test_commands import assert_recording_has_moving_video


class LateVideo(MediaStreamTrack):
    """A test pattern whose first frame comes ``delay`` seconds late, as a browser's
    video often does: its decoder waits for a key frame while audio already flows."""

    kind = "video"

    def __init__(self, delay: float) -> None:
        super().__init__()
        self._pattern = PatternTrack()
        self._delay: float | None = delay

    async def recv(self) -> av.VideoFrame:
        if self._delay is not None:
            await asyncio.sleep(self._delay)
            self._delay = None
        return await self._pattern.recv()


async def test_video_that_starts_after_the_audio_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "late.mkv"
    recording = Recording(out)
    await recording.add(ToneTrack())
    await recording.add(LateVideo(delay=1.0))
    await recording.start()
    await asyncio.sleep(3.0)
    await recording.stop()
    assert recording.kinds == {"audio", "video"}
    assert_recording_has_moving_video(out, audio=True)


async def test_video_that_never_starts_is_left_out(tmp_path: Path) -> None:
    out = tmp_path / "audio-only.mkv"
    recording = Recording(out, first_frame_timeout=0.5)
    await recording.add(ToneTrack())
    await recording.add(LateVideo(delay=60.0))
    await recording.start()
    await asyncio.sleep(1.0)
    await recording.stop()
    assert recording.kinds == {"audio"}
    with av.open(str(out)) as container:
        assert [stream.type for stream in container.streams] == ["audio"]
        assert sum(1 for _ in container.decode(audio=0)) > 10


async def test_a_track_added_after_the_start_is_refused(tmp_path: Path) -> None:
    recording = Recording(tmp_path / "fixed.mkv")
    await recording.add(ToneTrack())
    await recording.start()
    with pytest.raises(RuntimeError, match="started"):
        await recording.add(PatternTrack())
    await recording.stop()
