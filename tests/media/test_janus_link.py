"""hubbub's connection to a Janus that goes silent (the network between them cut, no
connection closed or refused) is noticed within seconds, as a killed Janus is."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.media.janus import JanusMediaServer
from tests.janus import janus_lab, janus_missing_reason
from tests.media.conftest import Recorder

pytestmark = pytest.mark.skipif(
    janus_missing_reason() is not None, reason=janus_missing_reason() or ""
)


async def test_a_cut_link_to_janus_is_noticed_within_five_seconds_and_mended() -> None:
    async with janus_lab() as lab:
        events = Recorder()
        janus = JanusMediaServer(lab.url, api_secret=lab.api_secret, admin_key=lab.admin_key)
        janus.attach(events)
        await janus.start()
        try:
            assert janus.up, lab.log[-2000:]
            await janus.create_room("cut", publishers=4)
            loop = asyncio.get_running_loop()
            lab.cut()
            started = loop.time()
            await events.until(lambda: events.losses > 0)
            assert loop.time() - started < 5.0
            assert not janus.up
            lab.cut(False)
            await events.until(lambda: events.restorations > 0)
            assert janus.up
        finally:
            await janus.close()
