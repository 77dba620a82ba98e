"""The ``redis+sentinel://`` URL of a cluster whose Redis is run by Redis Sentinel,
parsed (no I/O here: the settings check it, :mod:`hubbub.broker.redis.target` uses it).

::

    redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB][?OPTIONS]

``HOST:PORT`` are the sentinels (port 26379 by default), ``MASTER`` the name they
monitor, ``USER``/``PASSWORD`` those of the master (and its replicas), ``DB`` its
database (0). Options: ``sentinel_password`` and ``sentinel_username``, if the
sentinels ask for their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

SENTINEL_SCHEME = "redis+sentinel://"
DEFAULT_SENTINEL_PORT = 26379
_OPTIONS = ("sentinel_password", "sentinel_username")


class TargetError(ValueError):
    """A broker URL that names no Redis."""


@dataclass(frozen=True)
class SentinelTarget:
    """A ``redis+sentinel://`` URL, parsed."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Parse a ``redis+sentinel://`` URL; :class:`TargetError` says what is wrong."""
    if not url.startswith(SENTINEL_SCHEME):
        raise TargetError(f"a Sentinel URL starts with {SENTINEL_SCHEME}")
    rest = url[len(SENTINEL_SCHEME) :]
    rest, _, query = rest.partition("?")
    where, _, path = rest.partition("/")
    userinfo, at, hosts = where.rpartition("@")
    if not at:
        hosts = where
    username = password = None
    if userinfo:
        name, colon, secret = userinfo.partition(":")
        username = unquote(name) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(part) for part in hosts.split(","))
    parts = [part for part in path.split("/") if part]
    if not parts or len(parts) > 2:
        raise TargetError("a Sentinel URL names the master after the sentinels: .../MASTER[/DB]")
    master = unquote(parts[0])
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise TargetError(f"the database is a number, not {parts[1]!r}")
        db = int(parts[1])
    options: dict[str, str] = {}
    for key, values in parse_qs(query, keep_blank_values=True, strict_parsing=False).items():
        if key not in _OPTIONS:
            raise TargetError(f"unknown Sentinel URL option {key!r} (known: {', '.join(_OPTIONS)})")
        options[key] = values[-1]
    return SentinelTarget(
        sentinels=sentinels,
        master=master,
        db=db,
        username=username,
        password=password,
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
    )


def _host_port(part: str) -> tuple[str, int]:
    if not part:
        raise TargetError("a Sentinel URL lists one sentinel or more: HOST[:PORT],...")
    if part.startswith("["):  # [IPv6]:port
        host, bracket, port = part[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise TargetError(f"not a sentinel address: {part!r}")
        port = port[1:]
    else:
        host, _, port = part.partition(":")
    if not host:
        raise TargetError(f"not a sentinel address: {part!r}")
    if not port:
        return host, DEFAULT_SENTINEL_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TargetError(f"not a port: {port!r}")
    return host, int(port)
