"""One contract for every media server: the in-memory twin does what Janus does."""

from __future__ import annotations

import pytest

from hubbub.media import MediaRefused, MediaUnavailable
from tests.media.conftest import Backend


async def test_a_room_is_made_once_and_removed(backend: Backend) -> None:
    server = backend.server
    await server.create_room("team", publishers=4)
    await server.create_room("team", publishers=4)
    assert await server.feeds("team") == []
    await server.destroy_room("team")
    await server.destroy_room("team")
    with pytest.raises(MediaRefused):
        await server.feeds("team")


async def test_a_room_is_removed_by_its_id_and_secret(backend: Backend) -> None:
    # As a node does with the room of a node that died: it never made it itself.
    server = backend.server
    await server.create_room("team", publishers=4, room_id="team~left", secret="its-secret")
    await server.remove_room("team~left", "its-secret")
    await server.remove_room("team~left", "its-secret")  # gone already: nothing
    with pytest.raises(MediaRefused):
        await server.feeds("team")


async def test_publishing_needs_the_room(backend: Backend) -> None:
    with pytest.raises(MediaRefused):
        await backend.server.publish("nowhere", "s1/publisher", "alice", await backend.offer())


async def test_a_published_feed_is_answered_and_listed(backend: Backend) -> None:
    server = backend.server
    await server.create_room("team", publishers=4)
    offer = await backend.offer()
    answer = await server.publish("team", "s1/publisher", "alice", offer)
    assert answer.type == "answer"
    await backend.connect(offer, answer)
    await backend.publish("team", "s2/publisher", "bob", video=False)
    feeds = {feed.feed: feed for feed in await server.feeds("team")}
    assert set(feeds) == {"alice", "bob"}
    assert (feeds["alice"].audio, feeds["alice"].video) == (True, True)
    assert (feeds["bob"].audio, feeds["bob"].video) == (True, False)
    assert server.load() >= 2


async def test_publishing_the_same_feed_again_replaces_it(backend: Backend) -> None:
    server = backend.server
    await server.create_room("team", publishers=4)
    await backend.publish("team", "s1/publisher", "alice")
    await backend.publish("team", "s9/publisher", "alice")
    assert [feed.feed for feed in await server.feeds("team")] == ["alice"]


async def test_a_subscriber_is_offered_the_feeds_it_asks_for(backend: Backend) -> None:
    server = backend.server
    await server.create_room("team", publishers=4)
    await backend.publish("team", "s1/publisher", "alice")
    await backend.publish("team", "s2/publisher", "bob", video=False)
    offer = await server.subscribe("team", "s3/sub", ["alice"])
    assert offer.jsep.type == "offer"
    assert sorted((s.feed, s.kind) for s in offer.streams if s.active) == [
        ("alice", "audio"),
        ("alice", "video"),
    ]
    await server.answer("team", "s3/sub", await backend.answer(offer.jsep))
    grown = await server.subscribe("team", "s3/sub", ["bob"])
    assert sorted((s.feed, s.kind) for s in grown.streams if s.active) == [
        ("alice", "audio"),
        ("alice", "video"),
        ("bob", "audio"),
    ]
    await server.answer("team", "s3/sub", await backend.answer(grown.jsep))
    await server.select_layer("team", "s3/sub", "alice", 0, None)


async def test_a_subscriber_cannot_take_a_feed_that_is_not_published(backend: Backend) -> None:
    server = backend.server
    await server.create_room("team", publishers=4)
    await server.create_room("other", publishers=4)
    await backend.publish("other", "s1/publisher", "mallory")
    with pytest.raises(MediaRefused):
        await server.subscribe("team", "s3/sub", ["mallory"])


async def test_unsubscribing_offers_the_streams_without_the_feed(backend: Backend) -> None:
    server = backend.server
    await server.create_room("team", publishers=4)
    await backend.publish("team", "s1/publisher", "alice")
    await backend.publish("team", "s2/publisher", "bob")
    offer = await server.subscribe("team", "s3/sub", ["alice", "bob"])
    await server.answer("team", "s3/sub", await backend.answer(offer.jsep))
    fewer = await server.unsubscribe("team", "s3/sub", ["bob"])
    assert {s.feed for s in fewer.streams if s.active} == {"alice"}
    await server.answer("team", "s3/sub", await backend.answer(fewer.jsep))


async def test_a_feed_that_stops_renegotiates_its_subscribers(backend: Backend) -> None:
    server, events = backend.server, backend.events
    await server.create_room("team", publishers=4)
    await backend.publish("team", "s1/publisher", "alice")
    await backend.publish("team", "s2/publisher", "bob")
    offer = await server.subscribe("team", "s3/sub", ["alice", "bob"])
    await server.answer("team", "s3/sub", await backend.answer(offer.jsep))
    await server.hang_up("team", "s1/publisher")
    await events.until(lambda: bool(events.offers))
    room, handle, renegotiated = events.offers[-1]
    assert (room, handle) == ("team", "s3/sub")
    assert {s.feed for s in renegotiated.streams if s.active} == {"bob"}
    assert [feed.feed for feed in await server.feeds("team")] == ["bob"]


async def test_a_kicked_member_loses_its_feed_and_its_connections(backend: Backend) -> None:
    server = backend.server
    await server.create_room("team", publishers=4)
    await backend.publish("team", "s1/publisher", "alice")
    await backend.publish("team", "s2/publisher", "bob")
    offer = await server.subscribe("team", "s1/sub", ["bob"])
    await server.answer("team", "s1/sub", await backend.answer(offer.jsep))
    await server.kick("team", "alice", ["s1/publisher", "s1/sub"])
    assert [feed.feed for feed in await server.feeds("team")] == ["bob"]
    with pytest.raises(MediaRefused):
        await server.answer("team", "s1/sub", await backend.answer(offer.jsep))


async def test_trickled_candidates_need_a_connection(backend: Backend) -> None:
    server = backend.server
    await server.create_room("team", publishers=4)
    with pytest.raises(MediaRefused):
        await server.trickle("team", "s1/publisher", None)
    await backend.publish("team", "s1/publisher", "alice")
    await server.trickle("team", "s1/publisher", None)


async def test_a_server_that_goes_is_told_and_comes_back_empty(backend: Backend) -> None:
    server, events = backend.server, backend.events
    await server.create_room("team", publishers=4)
    await backend.publish("team", "s1/publisher", "alice")
    await backend.crash()
    assert events.losses == 1
    assert not server.up
    with pytest.raises(MediaUnavailable):
        await server.create_room("team", publishers=4)
    await backend.restore()
    assert server.up
    assert server.stats().lost == 1
    await server.create_room("team", publishers=4)
    assert await server.feeds("team") == []
