"""/metrics over real HTTP, read by Prometheus' own parser, as clients connect and chat."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hubbub import __version__
from hubbub.server import ServerSettings
from tests.integration.test_limits import _masked_frame, _raw_websocket, _read_close_code
from tests.process import hubbub_serve
from tests.wsclient import Client

API_KEY = "metrics-test-api-key"
METRICS_KEY = "metrics-test-scrape-key"


class Scrape:
    """One scrape: samples by (name, labels)."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def __call__(self, name: str, **labels: str) -> float:
        """The value of one series; a series the scrape does not have is an error (a
        renamed metric must not read as 0)."""
        key = (name, frozenset(labels.items()))
        if key not in self.samples:
            others = sorted(str(dict(series)) for n, series in self.samples if n == name)
            raise MissingSeries(f"no {name} {labels} in the scrape; {name} has {others}")
        return self.samples[key]

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples


class MissingSeries(AssertionError):
    pass


async def scrape(url: str, key: str = METRICS_KEY) -> Scrape:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url + "/metrics", headers={"Authorization": f"Bearer {key}"}) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return Scrape(await response.text())


async def scrape_until(url: str, condition: Callable[[Scrape], bool]) -> Scrape:
    """Scrape until ``condition`` holds (what a disconnect changes comes a moment later)."""
    missing: MissingSeries | None = None
    for _ in range(200):
        now = await scrape(url)
        try:
            if condition(now):
                return now
        except MissingSeries as exc:  # not yet: a labelled series comes with its first count
            missing = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"the metrics never showed it ({missing})")


def settings() -> ServerSettings:
    return ServerSettings(api_key=API_KEY, metrics_key=METRICS_KEY)


async def test_metrics_need_the_metrics_key_or_the_api_key(start_hub) -> None:
    url = await start_hub(settings())
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/metrics") as response:
            assert response.status == 401
            error = (await response.json())["error"]
            assert error["code"] == "unauthorized"
            assert "the metrics key or the API key" in error["message"]
        async with http.get(
            url + "/metrics", headers={"Authorization": "Bearer wrong"}
        ) as response:
            assert response.status == 401
    assert (await scrape(url, API_KEY))("hubbub_info", version=__version__)
    assert (await scrape(url, METRICS_KEY))("hubbub_connections") == 0


async def test_without_any_key_metrics_are_off(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(hub_url + "/metrics") as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "metrics-disabled"


async def test_counts_follow_clients_as_they_connect_join_and_chat(start_hub) -> None:
    url = await start_hub(settings())
    before = await scrape(url)
    assert before("hubbub_connections") == 0
    assert before("hubbub_rooms") == 0
    assert before.types["hubbub_messages_received"] == "counter"
    assert before.types["hubbub_store_write_seconds"] == "histogram"
    # One process, in-memory broker: no lag, and no cluster to report on.
    assert before.types["hubbub_broker_lag_seconds"] == "gauge"
    assert before("hubbub_broker_lag_seconds") == 0
    cluster_only = {"hubbub_cluster_connected", "hubbub_broker_sent", "hubbub_broker_pending"}
    assert not cluster_only & set(before.types)

    a = await Client.connect(url)
    b = await Client.connect(url)
    c = await Client.connect(url)
    try:
        await a.join("alpha", "a")
        await b.join("alpha", "b")
        await c.join("beta", "c")
        await a.expect("user-joined")
        now = await scrape(url)
        assert now("hubbub_connections") == 3
        assert now("hubbub_connections_opened_total") == 3
        assert now("hubbub_rooms") == 2
        assert now("hubbub_participants") == 3
        assert now("hubbub_messages_received_total", type="join-room") == 3
        assert now("hubbub_messages_sent_total", type="room-joined") == 3
        assert now("hubbub_messages_sent_total", type="user-joined") == 1

        for i in range(5):
            await a.send({"type": "chat", "message": f"hello {i}"})
        for _ in range(5):
            await b.expect("chat")
        await c.send("{not json")
        await c.expect_error("bad-json")
        await c.send({"type": "signal", "targetUserId": "nobody", "signal": {}})
        await c.expect_error("no-such-peer")
        now = await scrape(url)
        assert now("hubbub_messages_received_total", type="chat") == 5
        # a room message counts once per recipient: b alone heard a's chat
        assert now("hubbub_messages_sent_total", type="chat") == 5
        assert now("hubbub_messages_received_total", type="signal") == 1
        assert now("hubbub_errors_total", code="bad-json") == 1
        assert now("hubbub_errors_total", code="no-such-peer") == 1
        assert now("hubbub_errors_total", code="room-full") == 0
        # the five chats were committed in at least one timed batch
        assert now("hubbub_store_write_seconds_count") >= 1
        assert now("hubbub_store_write_seconds_sum") > 0
    finally:
        await a.close()
        await b.close()

    now = await scrape_until(url, lambda now: now("hubbub_connections") == 1)
    assert now("hubbub_rooms") == 1
    assert now("hubbub_participants") == 1
    assert now("hubbub_messages_sent_total", type="user-left") == 1
    assert now("process_resident_memory_bytes") > 0
    await c.close()


async def test_slow_consumer_disconnects_are_counted(start_hub) -> None:
    url = await start_hub(
        settings(),
        max_send_queue_bytes=64 * 1024,
        message_rate=10_000,
        message_burst=10_000,
    )
    reader, writer = await _raw_websocket(url, receive_buffer=4096)
    writer.write(_masked_frame(0x1, b'{"type":"join-room","room":"r","userId":"slow"}'))
    await writer.drain()
    async with await Client.connect(url) as sender:
        await sender.join("r", "sender")
        chunk = "x" * 8000
        for i in range(600):  # 4.8 MB: far more than the socket buffers hold
            await sender.send({"type": "chat", "message": f"{i}:{chunk}"})
        async with asyncio.timeout(60):  # generous, for a busy machine
            while (await sender.recv())["type"] != "user-left":
                pass
        now = await scrape(url)
        assert now("hubbub_slow_consumer_disconnects_total") == 1
        assert now("hubbub_closes_total", code="4008") == 1
    assert await _read_close_code(reader) == 4008
    writer.close()


async def test_refused_handshakes_are_counted_by_status(start_hub) -> None:
    url = await start_hub(settings(), max_connections_per_ip=1)
    async with await Client.connect(url):
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
                await http.ws_connect(url + "/")
            assert refusal.value.status == 429
        now = await scrape(url)
    assert now("hubbub_handshakes_refused_total", status="429") == 1


async def test_dropped_messages_are_counted(start_hub) -> None:
    # no token comes back during the test: the burst, then drops
    url = await start_hub(settings(), message_rate=1 / 3600, message_burst=2)
    async with await Client.connect(url) as a:
        for i in range(5):
            await a.send({"type": "ping", "ref": i})
        assert [(await a.recv())["type"] for _ in range(3)] == ["pong", "pong", "error"]
        now = await scrape_until(url, lambda now: now("hubbub_rate_limited_total") >= 3)
    assert now("hubbub_rate_limited_total") == 3
    assert now("hubbub_errors_total", code="rate-limited") == 1  # one refusal for the run


async def test_a_blocked_event_loop_shows_as_lag(start_hub) -> None:
    # The server runs in this process, on this loop: blocking it here blocks the server.
    # Its timer fires at least once a second; the one due during the block runs late.
    url = await start_hub(settings())
    before = await scrape(url)
    assert before.types["hubbub_event_loop_lag_seconds"] == "gauge"
    time.sleep(1.5)  # noqa: ASYNC251 - the point: nothing else runs meanwhile
    await scrape_until(url, lambda now: now("hubbub_event_loop_lag_seconds") >= 0.5)
    await scrape_until(url, lambda now: now("hubbub_event_loop_lag_seconds") < 0.5)


JOINS = 200


async def test_the_garbage_collector_is_tuned_in_hubbub_serve_and_its_work_shown() -> None:
    # The real command (the tuning is done at its start, not by the in-process
    # servers of the other tests): what it made at start is frozen out of the
    # collections, and joins no longer collect the young generation every 700
    # allocations.
    async with hubbub_serve("--metrics-key", METRICS_KEY) as (url, _):
        async with asyncio.timeout(30):
            before = await scrape(url)
            clients = [await Client.connect(url) for _ in range(JOINS)]
            for i, client in enumerate(clients):
                await client.send({"type": "join-room", "room": "gc", "userId": f"u{i}"})
            for client in clients:
                while (await client.recv())["type"] != "room-joined":
                    pass
            after = await scrape(url)
            for client in clients:
                await client.close()
    assert before.types["python_gc_collections"] == "counter"  # the parser drops _total
    assert before("python_gc_objects_frozen") > 10_000  # the modules, the app
    collections = [
        after("python_gc_collections_total", generation=g)
        - before("python_gc_collections_total", generation=g)
        for g in "012"
    ]
    # At the interpreter's default threshold these joins collect the young
    # generation about once every 30 (6 times here); with the tuning, at most once.
    assert collections[0] <= 1, collections
