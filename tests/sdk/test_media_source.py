"""MediaSource: what each peer connection of a mesh is given to send."""

from __future__ import annotations

import asyncio

import numpy as np

from hubbub.peer import MediaSource


async def test_each_subscription_gets_frames_of_its_own_with_the_same_picture() -> None:
    # aiortc encodes each connection's frames on a thread pool: two encoders given
    # one frame object at once crashed the process (a mesh of three sending video).
    source = MediaSource.test_pattern()
    try:
        [first], [second] = source.tracks(["video"]), source.tracks(["video"])
        a, b = await asyncio.gather(first.recv(), second.recv())
        assert a is not b
        assert (a.pts, a.time_base, a.format.name) == (b.pts, b.time_base, b.format.name)
        assert np.array_equal(a.to_ndarray(), b.to_ndarray())
        [first], [second] = source.tracks(["audio"]), source.tracks(["audio"])
        a, b = await asyncio.gather(first.recv(), second.recv())
        assert a is not b
        assert (a.pts, a.sample_rate, a.layout.name) == (b.pts, b.sample_rate, b.layout.name)
        assert np.array_equal(a.to_ndarray(), b.to_ndarray())
    finally:
        source.stop()
