"""``--broker redis+sentinel://...``: the URL of a cluster whose Redis is run by
Redis Sentinel, parsed and checked without a network; the failover itself is
tests/cluster/test_sentinel.py."""

from __future__ import annotations

import pytest

from hubbub.broker.redis.target import RedisTarget
from hubbub.broker.sentinel_url import SentinelTarget, TargetError, parse_sentinel_url
from hubbub.settings import ServerSettings, SettingsError, masked_url


def test_every_part_of_a_sentinel_url() -> None:
    url = "redis+sentinel://app:p%40ss@10.0.0.7,10.0.0.8:26380,[2001:db8::9]:5000/hub/3"
    assert parse_sentinel_url(url + "?sentinel_password=s3") == SentinelTarget(
        sentinels=(("10.0.0.7", 26379), ("10.0.0.8", 26380), ("2001:db8::9", 5000)),
        master="hub",
        db=3,
        username="app",
        password="p@ss",
        sentinel_password="s3",
    )
    bare = parse_sentinel_url("redis+sentinel://sentinel.internal/hubbub")
    assert bare.sentinels == (("sentinel.internal", 26379),)
    assert (bare.db, bare.username, bare.password) == (0, None, None)
    assert parse_sentinel_url("redis+sentinel://:secret@h/m").password == "secret"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://10.0.0.7:26379", "names the master"),
        ("redis+sentinel://10.0.0.7/m/1/2", "names the master"),
        ("redis+sentinel:///hubbub", "one sentinel or more"),
        ("redis+sentinel://a,,b/hubbub", "one sentinel or more"),
        ("redis+sentinel://a:port/hubbub", "not a port"),
        ("redis+sentinel://a:70000/hubbub", "not a port"),
        ("redis+sentinel://[::1/hubbub", "not a sentinel address"),
        ("redis+sentinel://a/hubbub/zero", "database is a number"),
        ("redis+sentinel://a/hubbub?password=x", "unknown Sentinel URL option 'password'"),
    ],
)
def test_a_bad_sentinel_url_says_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(TargetError, match=says):
        parse_sentinel_url(url)
    with pytest.raises(SettingsError, match="broker: .*" + says):
        ServerSettings(broker=url)


def test_the_settings_take_a_sentinel_url() -> None:
    url = "redis+sentinel://10.0.0.7,10.0.0.8/hubbub"
    assert ServerSettings(broker=url).broker == url
    with pytest.raises(SettingsError, match="redis\\+sentinel://"):
        ServerSettings(broker="sentinel://10.0.0.7/hubbub")


async def test_a_plain_target_is_its_url_and_is_logged_without_its_password() -> None:
    plain = RedisTarget("redis://:hunter2@10.0.0.5:6379/0")
    assert await plain.master_url() == "redis://:hunter2@10.0.0.5:6379/0"
    assert plain.sentinel is None
    assert masked_url(plain.given) == "redis://:********@10.0.0.5:6379/0"
    watched = RedisTarget("redis+sentinel://:hunter2@10.0.0.7,10.0.0.8:26380/hubbub/1")
    assert watched.sentinel == parse_sentinel_url(watched.given)
    await plain.client.aclose()
    await watched.client.aclose()
