"""One settings model: every option is a CLI flag, an environment variable and a
key in a TOML config file.

A setting named ``max_frame_bytes`` is ``--max-frame-bytes`` on the command line,
``HUBBUB_MAX_FRAME_BYTES`` in the environment and ``max_frame_bytes`` in the file
given with ``--config`` (or ``HUBBUB_CONFIG``). The command line wins over the
environment, which wins over the file, which wins over the default. A value that
does not fit is refused at start-up with the setting's name and the reason.

To add a setting, add a field to :class:`ServerSettings` (or to
:class:`~hubbub.core.Limits` for a bound on clients) with :func:`setting`.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from hubbub.auth.turn import uri_host
from hubbub.broker.sentinel_url import SENTINEL_SCHEME, TargetError, parse_sentinel_url
from hubbub.core import Limits

ENV_PREFIX = "HUBBUB_"

WEBHOOK_EVENTS = (
    "room.started",
    "room.finished",
    "participant.joined",
    "participant.left",
    "chat.message",
    "call.ringing",
    "call.accepted",
    "call.ended",
)
"""Every event a webhook can carry (docs/operations.md#webhooks)."""

DEFAULT_WEBHOOK_EVENTS = [event for event in WEBHOOK_EVENTS if event != "chat.message"]
"""All but chat messages, which a backend asks for by name: there are as many as
there are messages."""

DEFAULT_DATA_DIR = Path("hubbub-data")

DEFAULT_STUN_PORT = 3478
"""The STUN port (RFC 8489 section 18.6)."""

FRONTENDS = ("peerjs", "y-webrtc", "tracker")
"""The other libraries' protocols a server can speak (docs/compat.md)."""


class SettingsError(ValueError):
    """A setting's value is refused; the message names the setting and why."""


def setting(
    default: Any,
    help: str,
    *,
    secret: bool = False,
    url: bool = False,
    choices: Sequence[str] | None = None,
) -> Any:
    """Declare a setting: its default, what it means, and whether to mask it: all of
    it (``secret``), or with ``url`` the password a URL may carry, and only that."""
    metadata = {"help": help, "secret": secret, "url": url, "choices": tuple(choices or ())}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ServerSettings:
    host: str = setting("127.0.0.1", "Address to listen on.")
    port: int = setting(8080, "Port to listen on (0: any free port).")
    log_level: str = setting(
        "info", "Least severe log lines shown.", choices=("debug", "info", "warning", "error")
    )
    log_format: str = setting(
        "text",
        "Log lines as text (for a terminal) or JSON (for machines).",
        choices=("text", "json"),
    )
    api_key: str | None = setting(
        None,
        "Server API key for the HTTP API, sent by a backend as 'Authorization: Bearer KEY'. "
        "Without one, the endpoints that need it answer 403.",
        secret=True,
    )
    metrics_key: str | None = setting(
        None,
        "Key Prometheus sends to scrape /metrics ('Authorization: Bearer KEY'), so that "
        "the scraper need not hold the API key. /metrics also takes the API key; with "
        "neither set it answers 403.",
        secret=True,
    )
    auth: str = setting(
        "open",
        "Who may join: 'open', anyone under a user id it picks (for a machine of one's "
        "own); 'token', only clients with an access token signed by the application "
        "(see docs/security.md).",
        choices=("open", "token"),
    )
    allow_open_on_network: bool = setting(
        False,
        "Serve in open mode on an address other than loopback. Without it, hubbub serve "
        "refuses: in open mode anyone who reaches the port can join any room.",
    )
    token_secret: str | None = setting(
        None,
        "Shared secret (at least 32 bytes) that access tokens are signed with (HS256).",
        secret=True,
    )
    token_public_key: Path | None = setting(
        None,
        "PEM file of the public key that access tokens are signed for: Ed25519 (EdDSA) "
        "or P-256 (ES256).",
    )
    token_endpoint: str | None = setting(
        None,
        "URL of the application's backend that the web app at / asks for an access "
        'token (GET, with the page\'s cookies, ?room=NAME; answers {"token": ...}), so '
        "a site can put the web app behind its own sign-in (token mode; see "
        "docs/security.md#the-web-app-in-token-mode). An absolute http(s) URL or a path "
        "on this server's origin.",
    )
    allowed_origin: list[str] = setting(
        [],
        "Origin a browser page may connect from (https://app.example.com); a WebSocket "
        "handshake with any other Origin is answered 403. None given: any origin.",
    )
    trusted_proxy: list[str] = setting(
        [],
        "Address of a reverse proxy in front of hubbub; for connections from it, the "
        "client's address is taken from X-Forwarded-For (for the per-address limits).",
    )
    tls_cert: Path | None = setting(
        None, "PEM certificate chain: serve https:// and wss:// directly (with tls_key)."
    )
    tls_key: Path | None = setting(None, "PEM private key of tls_cert.")
    stun_uri: list[str] = setting(
        [],
        "STUN server handed to clients in iceServers (stun:stun.example.com:3478), "
        "instead of the built-in one.",
    )
    stun_port: int = setting(
        DEFAULT_STUN_PORT,
        "UDP port of the built-in STUN server (binding requests, RFC 8489), on --host; "
        "it is handed to clients in iceServers when no stun_uri is given (0: off).",
    )
    public_host: str | None = setting(
        None,
        "Host name or address clients reach this server by, for the built-in STUN "
        "server's URI in iceServers (stun:HOST:PORT). Default: the host each client "
        "connected to (its Host header).",
    )
    turn_uri: list[str] = setting(
        [],
        "TURN server handed to clients in iceServers with per-user credentials "
        "(turn:turn.example.com:3478?transport=udp, turns:turn.example.com:5349).",
    )
    turn_secret: str | None = setting(
        None,
        "Secret shared with the TURN server (coturn's static-auth-secret) that TURN "
        "credentials are made with.",
        secret=True,
    )
    turn_ttl: int = setting(
        3600,
        "Seconds a TURN credential is valid; fresh ones are sent when three quarters "
        "of that have passed.",
    )
    janus_url: list[str] = setting(
        [],
        "WebSocket API of a Janus (ws://127.0.0.1:8188) that carries the calls of rooms in "
        "SFU mode; several for several instances (each room on one, chosen by load). "
        "See docs/sfu.md.",
    )
    janus_api_secret: str | None = setting(
        None, "Janus's api_secret (janus.jcfg), sent with every request.", secret=True
    )
    janus_admin_key: str | None = setting(
        None,
        "The VideoRoom plugin's admin_key (janus.plugin.videoroom.jcfg): hubbub creates "
        "the rooms, nobody else can.",
        secret=True,
    )
    media_mode: str = setting(
        "auto",
        "How rooms' calls go: mesh (peer to peer), sfu (through Janus), or auto (a mesh "
        "until more than mesh_max_participants members send, then Janus, back at 2). "
        "Without --janus-url every room is a mesh. A backend can set a room's own.",
        choices=("auto", "mesh", "sfu"),
    )
    mesh_max_participants: int = setting(
        4, "In auto mode, senders a call may have and stay peer to peer."
    )
    webhook_url: list[str] = setting(
        [],
        "URL of an application's backend that events are POSTed to (JSON, signed with "
        "webhook_secret; see docs/operations.md#webhooks).",
    )
    webhook_secret: str | None = setting(
        None,
        "Secret (at least 16 characters) the webhooks are signed with: HMAC-SHA256 in "
        "the Hubbub-Signature header.",
        secret=True,
    )
    webhook_event: list[str] = setting(
        DEFAULT_WEBHOOK_EVENTS,
        "Event the webhooks carry: " + ", ".join(WEBHOOK_EVENTS) + ".",
    )
    webhook_queue_size: int = setting(
        10_000,
        "Events waiting per webhook URL; beyond it new ones are dropped (and counted).",
    )
    webhook_timeout: float = setting(5.0, "Seconds one webhook request may take.")
    webhook_attempts: int = setting(
        5, "Attempts at delivering one event before it is given up (1: no retries)."
    )
    webhook_backoff: float = setting(
        1.0, "Seconds before the first retry of a webhook; doubled after each failure."
    )
    webhook_backoff_max: float = setting(60.0, "Seconds between webhook retries at most.")
    data_dir: Path = setting(
        DEFAULT_DATA_DIR,
        "Folder for the SQLite database (hubbub.db), created if missing. Not used with "
        "--database-url.",
    )
    database_url: str | None = setting(
        None,
        "PostgreSQL database to store history and notifications in "
        "(postgresql://user:password@host/name) instead of SQLite under --data-dir.",
        url=True,
    )
    history_on_join: int = setting(
        50, "Chat messages sent in room-joined: the room's last ones (0: none)."
    )
    offline_on_join: int = setting(
        50,
        "Offline members (who chatted in the room and are not in it) listed in "
        "room-joined, most recently seen first (0: none).",
    )
    retention_messages: int | None = setting(
        None, "Chat messages kept per room; older ones are deleted (default: all kept)."
    )
    retention_seconds: float | None = setting(
        None, "Seconds chat messages are kept; older ones are deleted (default: forever)."
    )
    notification_read_retention: float = setting(
        30 * 24 * 3600.0,
        "Seconds a read notification is kept after it was read (default: 30 days; "
        "unread ones are never deleted for their age).",
    )
    max_notifications_per_user: int = setting(
        1000,
        "Notifications kept per user; past it the oldest read ones are deleted first, "
        "then the oldest unread ones.",
    )
    retention_interval: float = setting(60.0, "Seconds between two passes of the retention task.")
    store_batch_max: int = setting(
        1000, "Most chat messages written in one transaction (group commit)."
    )
    store_batch_delay: float = setting(
        0.001,
        "Seconds a batch of chat messages waits to fill before it is written (0: write at "
        "once; batches still form while the previous one is being written).",
    )
    store_max_pending: int = setting(
        50_000,
        "Chat messages waiting to be written, over which new ones are refused with "
        "store-unavailable.",
    )
    reconnect_spread: float = setting(
        5.0,
        "Seconds over which the clients of a server shutting down are told to come back "
        "(each gets its own random delay in reconnect), so they do not all return at once.",
    )
    broker: str = setting(
        "memory",
        "How messages reach the members of a room: memory (this process alone) or a "
        "Redis URL (redis://host:6379/0) that joins this server to a cluster of nodes; "
        "redis+sentinel://host1:26379,host2:26379/MASTER for the master that Redis "
        "Sentinel names, followed through failovers.",
        url=True,
    )
    cluster_heartbeat: float = setting(
        1.0, "Seconds between two refreshes of this node's alive key in Redis (cluster)."
    )
    cluster_node_timeout: float = setting(
        5.0,
        "Seconds a node's alive key lives without a refresh: a node silent that long is "
        "taken as dead and its members are announced as gone (cluster).",
    )
    broker_max_pending: int = setting(
        100_000,
        "Operations waiting to be sent to Redis or for its reply, over which more are "
        "dropped (counted in the metrics) (cluster).",
    )
    chat_gap_timeout: float = setting(
        1.0,
        "Seconds a room's chat waits for the chat before it (stored by another node, on "
        "its way through Redis) before the missing chat is read from the store (cluster).",
    )
    chat_gap_max_held: int = setting(
        1000,
        "Messages a room holds behind a gap in its chat, past which the gap is read from "
        "the store at once (cluster).",
    )
    frontend: list[str] = setting(
        [],
        "Another library's signaling protocol to serve on this port too: peerjs (PeerJS "
        "at /peerjs), y-webrtc (at /y-webrtc), tracker (WebTorrent tracker at /announce). "
        "See docs/compat.md.",
    )
    peerjs_key: list[str] = setting(
        ["peerjs"], "PeerJS key (application) served; a client with another is refused."
    )
    peerjs_discovery: bool = setting(
        False, "Answer GET /peerjs/KEY/peers with the ids of the key's connected peers."
    )
    peerjs_alive_timeout: float = setting(
        60.0,
        "Seconds a PeerJS client may send nothing (it sends a heartbeat every 5 s) before "
        "its connection is closed.",
    )
    peerjs_expire_timeout: float = setting(
        5.0,
        "Seconds a message for a PeerJS peer that is not connected is kept for it; then "
        "its sender gets EXPIRE (peer-unavailable).",
    )
    tracker_interval: int = setting(
        120, "Seconds a tracker client is told to wait between two announces."
    )
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        for name in ("port", "stun_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise SettingsError(
                    f"{name}: {getattr(self, name)} is not a port number (0 to 65535)"
                )
        if self.public_host is not None and uri_host(self.public_host) is None:
            raise SettingsError(f"public_host: {self.public_host!r} is not a host name or address")
        if self.auth == "token" and not (self.token_secret or self.token_public_key):
            raise SettingsError(
                "auth: token mode needs token_secret or token_public_key to check tokens with"
            )
        if self.token_endpoint is not None:
            if self.auth != "token":
                raise SettingsError(
                    "token_endpoint: the web app asks for tokens in token mode only"
                )
            if not self.token_endpoint.startswith(("https://", "http://", "/")):
                raise SettingsError(
                    f"token_endpoint: {self.token_endpoint!r} is neither an http(s):// URL "
                    "nor a path starting with /"
                )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("tls_cert and tls_key go together: give both or neither")
        if self.turn_uri and not self.turn_secret:
            raise SettingsError("turn_uri: TURN credentials need turn_secret")
        if self.media_mode == "sfu" and not self.janus_url:
            raise SettingsError("media_mode: sfu needs a media server (--janus-url)")
        if self.mesh_max_participants < 1:
            raise SettingsError(
                f"mesh_max_participants must be positive, got {self.mesh_max_participants}"
            )
        for url in self.janus_url:
            if not url.startswith(("ws://", "wss://")):
                raise SettingsError(f"janus_url: {url!r} is not a ws:// or wss:// URL")
        if self.turn_ttl <= 0:
            raise SettingsError(f"turn_ttl must be positive, got {self.turn_ttl}")
        self._check_webhooks()
        for origin in self.allowed_origin:
            if origin != origin.rstrip("/") or "://" not in origin:
                raise SettingsError(
                    f"allowed_origin: {origin!r} is not an origin (scheme://host[:port])"
                )
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise SettingsError("database_url: only postgresql:// URLs are supported")
        if self.broker.startswith(SENTINEL_SCHEME):
            try:
                parse_sentinel_url(self.broker)
            except TargetError as error:
                raise SettingsError(f"broker: {error}") from None
        elif self.broker != "memory" and not self.broker.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise SettingsError(
                "broker: memory, or a redis://, rediss://, unix:// or redis+sentinel:// URL"
            )
        if self.cluster_node_timeout <= 2 * self.cluster_heartbeat:
            raise SettingsError(
                "cluster_node_timeout must be more than twice cluster_heartbeat, or live "
                "nodes would be taken as dead"
            )
        for name in self.frontend:
            if name not in FRONTENDS:
                raise SettingsError(f"frontend: {name!r} is none of " + ", ".join(FRONTENDS))
        for key in self.peerjs_key:
            if not key or not key.isprintable() or "/" in key:
                raise SettingsError(f"peerjs_key: {key!r} is not a usable key")
        for name in ("peerjs_alive_timeout", "peerjs_expire_timeout", "tracker_interval"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("history_on_join", "offline_on_join", "store_batch_delay", "reconnect_spread"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative")
        for name in (
            "retention_messages",
            "retention_seconds",
            "retention_interval",
            "notification_read_retention",
            "max_notifications_per_user",
            "store_batch_max",
            "store_max_pending",
            "cluster_heartbeat",
            "broker_max_pending",
            "chat_gap_timeout",
            "chat_gap_max_held",
        ):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SettingsError(f"{name} must be positive, got {value!r}")

    def _check_webhooks(self) -> None:
        for url in self.webhook_url:
            if not url.startswith(("http://", "https://")):
                raise SettingsError(f"webhook_url: {url!r} is not an http:// or https:// URL")
        if self.webhook_url and len(self.webhook_secret or "") < 16:
            raise SettingsError(
                "webhook_secret: webhooks are signed; give a secret of at least 16 characters"
            )
        for event in self.webhook_event:
            if event not in WEBHOOK_EVENTS:
                raise SettingsError(
                    f"webhook_event: {event!r} is not one of {', '.join(WEBHOOK_EVENTS)}"
                )
        for name in ("webhook_queue_size", "webhook_attempts"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("webhook_timeout", "webhook_backoff", "webhook_backoff_max"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def is_loopback(self) -> bool:
        """Whether the server listens on this machine only."""
        return is_loopback_host(self.host)

    def exposure_problem(self) -> str | None:
        """Why the server must not listen as configured, or None."""
        if self.auth == "open" and not self.is_loopback and not self.allow_open_on_network:
            return (
                f"refusing to serve on {self.host} in open mode: anyone who reaches it could "
                "join any room under any name. Use --auth token with --token-secret or "
                "--token-public-key, or listen on 127.0.0.1, or pass "
                "--allow-open-on-network if that is what you want."
            )
        return None


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Option:
    """One setting as the outside world sees it."""

    name: str
    type: type
    default: Any
    help: str
    secret: bool
    url: bool
    choices: tuple[str, ...]
    in_limits: bool

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _options_of(cls: type, in_limits: bool) -> list[Option]:
    hints = get_type_hints(cls)
    options = []
    for item in fields(cls):
        if item.name == "limits":
            continue
        options.append(
            Option(
                name=item.name,
                type=hints[item.name],
                default=_default_of(item),
                help=str(item.metadata.get("help", "")),
                secret=bool(item.metadata.get("secret", False)),
                url=bool(item.metadata.get("url", False)),
                choices=tuple(item.metadata.get("choices", ())),
                in_limits=in_limits,
            )
        )
    return options


def _default_of(item: Field[Any]) -> Any:
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    raise TypeError(f"setting {item.name} has no default")  # pragma: no cover


OPTIONS: tuple[Option, ...] = (
    *_options_of(ServerSettings, in_limits=False),
    *_options_of(Limits, in_limits=True),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per setting; unset flags stay out of the namespace."""
    parser.add_argument(
        "--config", metavar="FILE", help="TOML file of settings (env: HUBBUB_CONFIG)"
    )
    limits = parser.add_argument_group("limits (see docs/protocol.md#limits)")
    for option in OPTIONS:
        group = limits if option.in_limits else parser
        shown_default = "none" if option.default in (None, []) else option.default
        help_text = f"{option.help} (default: {shown_default}; env: {option.env})"
        if option.type is bool:
            group.add_argument(
                option.flag,
                dest=option.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        elif get_origin(option.type) is list:
            group.add_argument(
                option.flag,
                dest=option.name,
                action="append",
                default=argparse.SUPPRESS,
                metavar="VALUE",
                help=help_text + " (repeatable)",
            )
        else:
            group.add_argument(
                option.flag,
                dest=option.name,
                default=argparse.SUPPRESS,
                metavar=_metavar(option),
                help=help_text,
            )


def _metavar(option: Option) -> str:
    if option.choices:
        return "{" + ",".join(option.choices) + "}"
    base = _base_type(option.type)
    return {int: "INT", float: "SECONDS" if "seconds" in option.help.lower() else "NUMBER"}.get(
        base, "TEXT"
    )


def _base_type(kind: Any) -> Any:
    """``int`` of ``int``, ``str`` of ``str | None`` and of ``list[str]``."""
    args = [arg for arg in get_args(kind) if arg is not type(None)]
    if get_origin(kind) is list or args:
        return args[0]
    return kind


def load(
    cli: Mapping[str, Any] | argparse.Namespace,
    environ: Mapping[str, str] | None = None,
) -> ServerSettings:
    """Settings from the command line, the environment and the config file."""
    given = dict(vars(cli)) if isinstance(cli, argparse.Namespace) else dict(cli)
    environ = os.environ if environ is None else environ
    config_path = given.pop("config", None) or environ.get(ENV_PREFIX + "CONFIG")
    values: dict[str, Any] = {}
    if config_path:
        values.update(_read_config(Path(config_path)))
    for option in OPTIONS:
        if option.env in environ:
            values[option.name] = _convert(option, environ[option.env], source="env")
    for name, raw in given.items():
        if name in OPTIONS_BY_NAME:
            values[name] = _convert(OPTIONS_BY_NAME[name], raw, source="flag")
    return build(values)


def build(values: Mapping[str, Any]) -> ServerSettings:
    """Settings from converted values by name; anything left out keeps its default."""
    server: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for name, value in values.items():
        option = OPTIONS_BY_NAME[name]
        if option.choices and value not in option.choices:
            raise SettingsError(f"{name}: {value!r} is not one of {', '.join(option.choices)}")
        (limits if option.in_limits else server)[name] = value
    try:
        return ServerSettings(**server, limits=Limits(**limits))
    except SettingsError:
        raise
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SettingsError(f"config: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config: {path} is not valid TOML: {exc}") from None
    values = {}
    for name, raw in data.items():
        option = OPTIONS_BY_NAME.get(name)
        if option is None:
            raise SettingsError(f"config: {path} has an unknown setting {name!r}")
        values[name] = _convert(option, raw, source="config")
    return values


def _convert(option: Option, raw: Any, source: str) -> Any:
    """Turn a flag, env or TOML value into the setting's type, or say why not."""
    kind = option.type
    base = _base_type(kind)
    name = option.name
    try:
        if get_origin(kind) is list:
            if isinstance(raw, str):
                items = [item.strip() for item in raw.split(",") if item.strip()]
            elif isinstance(raw, list):
                items = raw
            else:
                raise ValueError("expected a list")
            return [_scalar(base, item) for item in items]
        if raw is None or (source == "env" and raw == "" and type(None) in get_args(kind)):
            return None
        return _scalar(base, raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}: {raw!r} is not {_describe(base)}") from None


def _scalar(base: Any, raw: Any) -> Any:
    if base is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if base is int:
        if isinstance(raw, (bool, float)):
            raise ValueError("expected a whole number")
        return int(raw)
    if base is float:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        return float(raw)
    if base is Path:
        return Path(raw)
    if not isinstance(raw, str):
        raise TypeError("expected text")
    return raw


def _describe(base: Any) -> str:
    return {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        Path: "a path",
    }.get(base, "text")


MASK = "********"


def url_password(url: str) -> str | None:
    """The password in a URL's ``user:password@``, or None."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def masked_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` masked."""
    password = url_password(url)
    return url.replace(f":{password}@", f":{MASK}@", 1) if password else url


def effective(settings: ServerSettings) -> list[tuple[str, str]]:
    """Every setting and its value as shown to an operator: secrets masked, and of a
    URL only its password."""
    shown = []
    for option in OPTIONS:
        source = settings.limits if option.in_limits else settings
        value = getattr(source, option.name)
        if option.secret and value:
            text = MASK
        elif option.url and isinstance(value, str):
            text = masked_url(value)
        elif value is None:
            text = "(none)"
        elif isinstance(value, list):
            text = ", ".join(str(item) for item in value) or "(none)"
        else:
            text = str(value)
        shown.append((option.name, text))
    return shown


def secret_values(settings: ServerSettings) -> list[str]:
    """The values of every secret setting, and the passwords in URL settings, for the
    log redactor."""
    values: list[str] = []
    for option in OPTIONS:
        if option.url:
            value = getattr(settings, option.name)
            password = url_password(value) if isinstance(value, str) else None
            if password:
                values.append(password)
        elif option.secret:
            value = getattr(settings.limits if option.in_limits else settings, option.name)
            if isinstance(value, list):
                values.extend(str(item) for item in value)
            elif value:
                values.append(str(value))
    return values


def with_limits(settings: ServerSettings, **limits: Any) -> ServerSettings:
    """A copy with some limits changed (for tests and embedding)."""
    return replace(settings, limits=replace(settings.limits, **limits))
