"""Where a cluster's Redis is: the one server of a ``redis://`` (``rediss://``,
``unix://``) URL, or the master that Redis Sentinel names for a
``redis+sentinel://`` URL (:mod:`hubbub.broker.sentinel_url`), asked again at every
connect so that a node follows a failover.

The sentinels are asked in turn; the first that names a master it does not take for
down wins (redis-py's :meth:`~redis.asyncio.sentinel.Sentinel.discover_master`), and
a node checks that the server it reached is a master indeed (``ROLE``) before it uses
it.
"""

from __future__ import annotations

from urllib.parse import quote

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from hubbub.broker.sentinel_url import SENTINEL_SCHEME, SentinelTarget, parse_sentinel_url

CONNECT_TIMEOUT = 2.0
"""Seconds to connect to Redis or to a sentinel."""
REPLY_TIMEOUT = 5.0
"""Seconds redis-py waits for a reply."""


class RedisTarget:
    """The Redis a node uses: :meth:`master_url` for its own connections (asked
    again at each connect), :attr:`client` for redis-py's."""

    def __init__(self, url: str) -> None:
        self.given = url
        self.sentinel: SentinelTarget | None = None
        self._sentinel: Sentinel | None = None
        if url.startswith(SENTINEL_SCHEME):
            target = self.sentinel = parse_sentinel_url(url)
            sentinel_options: dict[str, object] = {
                "socket_connect_timeout": CONNECT_TIMEOUT,
                "socket_timeout": REPLY_TIMEOUT,
            }
            if target.sentinel_password:
                sentinel_options["password"] = target.sentinel_password
            if target.sentinel_username:
                sentinel_options["username"] = target.sentinel_username
            self._sentinel = Sentinel(
                target.sentinels,
                sentinel_kwargs=sentinel_options,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=REPLY_TIMEOUT,
                username=target.username,
                password=target.password,
                db=target.db,
            )
            # Each new connection asks the sentinels where the master is now, and one
            # that finds a replica (the old master, back after a failover) is dropped.
            self.client: aioredis.Redis = self._sentinel.master_for(target.master)
        else:
            self.client = aioredis.Redis.from_url(
                url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=REPLY_TIMEOUT
            )

    async def master_url(self) -> str:
        """The URL of the server to connect to now."""
        target = self.sentinel
        if target is None or self._sentinel is None:
            return self.given
        host, port = await self._sentinel.discover_master(target.master)
        userinfo = ""
        if target.password is not None:
            userinfo = f"{quote(target.username or '', safe='')}:{quote(target.password, safe='')}@"
        elif target.username:
            userinfo = f"{quote(target.username, safe='')}@"
        address = f"[{host}]" if ":" in host else host
        return f"redis://{userinfo}{address}:{port}/{target.db}"
