"""Acceptance in a cluster: the seed's ConferenceClient in three Chromium pages, each
page on a different node of one Redis, completes the mesh call and chats."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from tests.browser.test_seed_conference_client import (
    CHAT_SHOWN,
    VIDEO_PLAYING,
    _advances,
    _current_time,
    _open_client,
    page_server,
)
from tests.cluster.nodes import cluster

pytestmark = pytest.mark.browser


async def test_three_seed_clients_on_three_nodes_call_and_chat(
    browser: Browser, redis_url: str, tmp_path: Path
) -> None:
    users = ["alice", "bob", "carol"]
    async with cluster(3, redis_url, tmp_path) as nodes, AsyncExitStack() as stack:
        page_urls = [await stack.enter_async_context(page_server(node.url)) for node in nodes]
        pages: dict[str, Page] = {}
        for user, page_url in zip(users, page_urls, strict=True):
            pages[user] = await _open_client(browser, page_url, "cluster-call", user)
            await pages[user].wait_for_function(
                "window.client && window.client.ws.readyState === 1"
            )
            await asyncio.sleep(0.3)

        for user, page in pages.items():
            others = [u for u in users if u != user]
            await page.wait_for_function(VIDEO_PLAYING, arg=others, timeout=45_000)
            before = {peer: await _current_time(page, peer) for peer in others}
            for peer in others:
                await _advances(page, user, peer, before[peer])

        await pages["carol"].evaluate("window.client.sendChat('hello from node 3')")
        for user in ("alice", "bob"):
            await pages[user].wait_for_function(
                CHAT_SHOWN, arg=["carol", "hello from node 3"], timeout=10_000
            )

        await pages["alice"].close()
        for user in ("bob", "carol"):
            await pages[user].wait_for_function(
                "!window.client.peers.has('alice') && window.client.peers.size === 1",
                timeout=10_000,
            )
