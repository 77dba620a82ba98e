"""Media for Python peers: what to send (a file, or a generated test pattern and
tone) and what to do with what arrives (record it to a file, or hand frames to a
callback).

A :class:`MediaSource` is shared by every peer of a mesh through aiortc's
``MediaRelay``, so each peer connection gets every frame (one reader of the file
or generator, one subscription per peer). The relay hands every subscriber the
same frame object, and aiortc encodes on a thread pool: each subscription gets a
copy of each frame, as two encoders reading and stamping one frame at once crash
the process (a mesh of three or more that sends video).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer, MediaRecorder, MediaRelay
from aiortc.mediastreams import MediaStreamError

log = logging.getLogger("hubbub.peer")

AUDIO_SAMPLE_RATE = 48000
AUDIO_PTIME = 0.02
"""Seconds of audio per generated frame (20 ms, as WebRTC packetises it)."""
VIDEO_CLOCK_RATE = 90000


class _Paced:
    """Timestamps on a fixed clock, sleeping so that frames leave in real time."""

    def __init__(self, period: float, clock_rate: int) -> None:
        self._period = period
        self._clock_rate = clock_rate
        self._start: float | None = None
        self._index = 0

    async def next(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._index += 1
            wait = self._start + self._index * self._period - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return round(self._index * self._period * self._clock_rate)


class TestPatternTrack(MediaStreamTrack):
    """Video: colour bars with a bright block that moves across, ``fps`` frames a
    second. Every frame differs from the last, and none is blank."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.width, self.height = width, height
        self._pace = _Paced(1 / fps, VIDEO_CLOCK_RATE)
        bars = np.array(
            [[235, 235, 235], [235, 235, 16], [16, 235, 235], [16, 235, 16],
             [235, 16, 235], [235, 16, 16], [16, 16, 235], [32, 32, 32]],
            dtype=np.uint8,
        )  # fmt: skip
        columns = np.arange(width) * len(bars) // width
        self._background = np.repeat(bars[columns][np.newaxis, :, :], height, axis=0)
        self._frames = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._pace.next()
        image = self._background.copy()
        size = max(8, self.height // 4)
        x = (self._frames * 4) % max(1, self.width - size)
        y = (self.height - size) // 2
        image[y : y + size, x : x + size] = 255
        self._frames += 1
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        return frame


class ToneTrack(MediaStreamTrack):
    """Audio: a sine tone of ``frequency`` Hz, mono, 48 kHz, in 20 ms frames."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, volume: float = 0.3) -> None:
        super().__init__()
        self.frequency = frequency
        self.volume = volume
        self._pace = _Paced(AUDIO_PTIME, AUDIO_SAMPLE_RATE)
        self._samples = round(AUDIO_SAMPLE_RATE * AUDIO_PTIME)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._pace.next()
        t = (pts + np.arange(self._samples)) / AUDIO_SAMPLE_RATE
        wave = self.volume * np.sin(2 * math.pi * self.frequency * t)
        samples = (wave * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = AUDIO_SAMPLE_RATE
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, AUDIO_SAMPLE_RATE)
        return frame


class MediaSource:
    """The audio and video a mesh sends to every peer.

    Make one with :meth:`test_pattern` or :meth:`from_file`, or from tracks of your
    own. Each peer gets its own subscription to the same tracks.
    """

    def __init__(
        self,
        audio: MediaStreamTrack | None = None,
        video: MediaStreamTrack | None = None,
        *,
        player: MediaPlayer | None = None,
    ) -> None:
        self.audio = audio
        self.video = video
        self._player = player
        self._relay = MediaRelay()

    @classmethod
    def test_pattern(
        cls, *, audio: bool = True, video: bool = True, width: int = 320, height: int = 240
    ) -> MediaSource:
        """A generated test pattern (moving colour bars) and a 440 Hz tone."""
        return cls(
            audio=ToneTrack() if audio else None,
            video=TestPatternTrack(width, height) if video else None,
        )

    @classmethod
    def from_file(cls, path: str | Path, *, loop: bool = False, **options: Any) -> MediaSource:
        """The audio and video of a media file (any format FFmpeg reads), played in
        real time through aiortc's ``MediaPlayer``."""
        player = MediaPlayer(str(path), loop=loop, **options)
        return cls(audio=player.audio, video=player.video, player=player)

    def tracks(self, kinds: Collection[str] | None = None) -> list[MediaStreamTrack]:
        """A fresh subscription to each track (of ``kinds``, or all), for one more
        peer connection: frames of its own, shared with no other subscription."""
        return [
            _OwnFrames(self._relay.subscribe(track, buffered=False))
            for track in (self.audio, self.video)
            if track is not None and (kinds is None or track.kind in kinds)
        ]

    def stop(self) -> None:
        for track in (self.audio, self.video):
            if track is not None:
                track.stop()


class _OwnFrames(MediaStreamTrack):
    """A relay's subscription that hands out a copy of each frame."""

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source

    async def recv(self) -> Any:
        return copy_frame(await self._source.recv())

    def stop(self) -> None:
        super().stop()
        self._source.stop()


def copy_frame(frame: Any) -> Any:
    """A new ``av`` frame with ``frame``'s picture or samples and timing."""
    copy: av.VideoFrame | av.AudioFrame
    if isinstance(frame, av.VideoFrame):
        try:
            copy = av.VideoFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name)
        except ValueError:  # a pixel format ndarrays do not carry: a new frame anyway
            copy = frame.reformat(format="yuv420p" if frame.format.name != "yuv420p" else "rgb24")
    elif isinstance(frame, av.AudioFrame):
        audio = av.AudioFrame.from_ndarray(
            frame.to_ndarray(), format=frame.format.name, layout=frame.layout.name
        )
        audio.sample_rate = frame.sample_rate
        copy = audio
    else:
        return frame
    copy.pts = frame.pts
    copy.time_base = frame.time_base
    return copy


FrameCallback = Callable[[str, Any], Awaitable[None] | None]
"""Called with the track's kind ("audio" or "video") and each ``av`` frame."""


async def consume_frames(track: MediaStreamTrack, callback: FrameCallback) -> None:
    """Read ``track`` until it ends, handing each frame to ``callback``."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        result = callback(track.kind, frame)
        if result is not None:
            await result


class Recording:
    """Records the tracks of one peer to a file with aiortc's ``MediaRecorder``
    (the container follows the file's extension: ``.mp4``, ``.mkv``, ``.webm``...).

    Add every track, then :meth:`start`; a file's streams are fixed when it starts, so
    a track added later is refused. Call :meth:`stop` to finish the file; a recording
    is not started again.

    A video stream's size is the size of its first frame. Video often starts later
    than audio (the decoder waits for a key frame), so :meth:`start` waits up to
    ``first_frame_timeout`` seconds for the video track's first frame before anything
    is written; a video track that sends none by then is left out of the file
    (:attr:`kinds` says what is recorded).
    """

    def __init__(
        self, path: str | Path, *, format: str | None = None, first_frame_timeout: float = 10.0
    ) -> None:
        self.path = Path(path)
        self.first_frame_timeout = first_frame_timeout
        self._recorder = MediaRecorder(str(self.path), format=format)
        self._tracks: dict[str, MediaStreamTrack] = {}
        self._state: Literal["new", "started", "stopped"] = "new"
        self._lock = asyncio.Lock()

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds of the tracks added, or once started, of those recorded."""
        return frozenset(self._tracks)

    async def add(self, track: MediaStreamTrack) -> None:
        """Record ``track`` (one track of each kind; a second one is ignored)."""
        async with self._lock:
            if self._state != "new":
                raise RuntimeError("the recording has started: its streams are fixed")
            self._tracks.setdefault(track.kind, track)

    async def start(self) -> None:
        async with self._lock:
            if self._state != "new":
                return
            self._state = "started"
            video = self._tracks.pop("video", None)
            if video is not None:
                first = await _first_frame(video, self.first_frame_timeout)
                if first is not None:
                    # The video goes first: its task sets the stream's size before
                    # the audio's first packet makes the container write its header.
                    primed = _FrameAhead(video, first)
                    self._tracks = {"video": primed, **self._tracks}
                else:
                    log.warning(
                        "no video frame within %g s: recording without video",
                        self.first_frame_timeout,
                    )
            for track in self._tracks.values():
                self._recorder.addTrack(track)
            await self._recorder.start()

    async def stop(self) -> None:
        async with self._lock:
            if self._state == "started":
                self._state = "stopped"
                with contextlib.suppress(Exception):
                    await self._recorder.stop()


async def _first_frame(track: MediaStreamTrack, timeout: float) -> av.frame.Frame | None:
    try:
        async with asyncio.timeout(timeout):
            frame = await track.recv()
    except (TimeoutError, MediaStreamError):
        return None
    assert isinstance(frame, av.frame.Frame)
    return frame


class _FrameAhead(MediaStreamTrack):
    """``track``'s frames, after one already taken from it."""

    def __init__(self, track: MediaStreamTrack, first: av.frame.Frame) -> None:
        super().__init__()
        self.kind = track.kind
        self._track = track
        self._first: av.frame.Frame | None = first

    async def recv(self) -> av.frame.Frame:
        first, self._first = self._first, None
        if first is not None:
            return first
        frame = await self._track.recv()
        assert isinstance(frame, av.frame.Frame)
        return frame
