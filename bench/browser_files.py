"""A file sent between two Chromium pages with hubbub.js, peer to peer: how fast, and
whether it arrives whole.

    python -m bench.browser_files                 # 100 MB
    python -m bench.browser_files --megabytes 20 --runs 3

Starts ``hubbub serve`` on a free loopback port and two pages (two renderer
processes, as two people would be) with Debian's Chromium, the flags of the browser
tests. The sender makes a file of random bytes in its page; the receiver accepts it,
and hubbub.js hashes both sides (SHA-256) as the bytes flow. The time is from the
offer being accepted to the receiver's verified Blob; it includes the hashing, which
runs in JavaScript on both sides at the same time as the transfer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import Page, async_playwright
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

_LISTENING = re.compile(rb"event=listening url=(\S+)")

LOAD_LIBRARY = """async (url) => {
  window.hubbub = await import(url + "/hubbub.js");
}"""

RECEIVE = """async (url) => {
  const room = await hubbub.join(url, { room: "bench-files", userId: "receiver" });
  window.received = new Promise((resolve) => room.on("file-offer", ({ transfer }) => {
    const started = performance.now();
    transfer.accept().then(
      (blob) => resolve({ ok: true, size: blob.size, sha256: transfer.sha256,
                          seconds: (performance.now() - started) / 1000 }),
      (error) => resolve({ ok: false, error: String(error) }));
  }));
}"""

SEND = """async ([url, size]) => {
  const room = await hubbub.join(url, { room: "bench-files", userId: "sender" });
  const data = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(data.subarray(at, Math.min(size, at + 65536)));
  }
  const digest = await crypto.subtle.digest("SHA-256", data);
  const hex = (b) => b.toString(16).padStart(2, "0");
  const expected = Array.from(new Uint8Array(digest), hex).join("");
  while (!room.participants.has("receiver")) await new Promise((r) => setTimeout(r, 50));
  const transfer = room.sendFile("receiver", new Blob([data]), { name: "bench.bin" });
  let progressEvents = 0;
  transfer.on("progress", () => progressEvents++);
  await transfer.done;
  return { expected, sent: transfer.sha256, progressEvents };
}"""


@asynccontextmanager
async def hubbub_server() -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hubbub", "serve", "--port", "0",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        while True:
            line = await asyncio.wait_for(process.stderr.readline(), 20)
            if not line:
                raise RuntimeError("hubbub serve exited before listening")
            match = _LISTENING.search(line)
            if match:
                break
        drain = asyncio.create_task(_drain(process.stderr))
        yield match.group(1).decode()
        drain.cancel()
    finally:
        process.kill()
        await process.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def _page(browser: Any, url: str) -> Page:
    page = await browser.new_page()
    await page.goto(url + "/healthz")  # any page of the hub's origin, to import from
    await page.evaluate(LOAD_LIBRARY, url)
    return page


async def transfer_once(megabytes: float) -> dict[str, Any]:
    size = int(megabytes * 1024 * 1024)
    async with hubbub_server() as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            receiver = await _page(browser, url)
            sender = await _page(browser, url)
            await receiver.evaluate(RECEIVE, url)
            sent = await sender.evaluate(SEND, [url, size])
            received = await receiver.evaluate("window.received")
        finally:
            await browser.close()
    ok = bool(received["ok"]) and received["sha256"] == sent["expected"] == sent["sent"]
    seconds = received.get("seconds") or float("nan")
    return {
        "megabytes": megabytes,
        "bytes": size,
        "ok": ok,
        "size_matches": received.get("size") == size,
        "seconds": round(seconds, 2),
        "megabytes_per_second": round(megabytes / seconds, 1),
        "progress_events_sender": sent["progressEvents"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.browser_files", description=__doc__)
    parser.add_argument("--megabytes", type=float, default=100.0, help="file size (MiB)")
    parser.add_argument("--runs", type=int, default=1, help="transfers, each with fresh pages")
    args = parser.parse_args(argv)
    # Generous, but bounded: a stuck transfer fails the run instead of hanging it.
    limit = 60 + 5 * args.megabytes
    results = [
        asyncio.run(asyncio.wait_for(transfer_once(args.megabytes), limit))
        for _ in range(args.runs)
    ]
    for result in results:
        print(json.dumps(result))
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    return 0 if all(r["ok"] and r["size_matches"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
