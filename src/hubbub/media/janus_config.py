"""The configuration hubbub runs Janus with: the gateway, the VideoRoom plugin and the
WebSocket transport, every other plugin, transport, event handler and logger off.

:func:`write_config` writes the three ``.jcfg`` files into a folder; Janus is then
started with ``janus -F FOLDER -C FOLDER/janus.jcfg``. The tests and the benchmark make
one for each Janus they start; ``deploy/janus/`` holds the same files for a server
(:data:`DEPLOYED`), with placeholders for the secrets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PLUGINS_FOLDER = "/usr/lib/x86_64-linux-gnu/janus/plugins"
TRANSPORTS_FOLDER = "/usr/lib/x86_64-linux-gnu/janus/transports"
EVENTS_FOLDER = "/usr/lib/x86_64-linux-gnu/janus/events"
LOGGERS_FOLDER = "/usr/lib/x86_64-linux-gnu/janus/loggers"

OTHER_PLUGINS = (
    "audiobridge",
    "duktape",
    "echotest",
    "lua",
    "nosip",
    "recordplay",
    "sip",
    "streaming",
    "textroom",
    "videocall",
    "voicemail",
)
# The http transport is disabled as a library, not by its own switches: loaded with
# both its APIs off it crashes Janus 1.1.2.
OTHER_TRANSPORTS = ("http", "mqtt", "nanomsg", "pfunix", "rabbitmq")
EVENT_HANDLERS = ("gelfevh", "mqttevh", "nanomsgevh", "rabbitmqevh", "sampleevh", "wsevh")
LOGGERS = ("jsonlog",)


@dataclass(frozen=True, slots=True)
class JanusConfig:
    """What changes from one Janus to another."""

    ws_port: int
    api_secret: str
    admin_key: str
    ws_ip: str = "127.0.0.1"
    """Where the WebSocket API listens: loopback or a private network, never the world."""
    rtp_port_range: tuple[int, int] = (20000, 40000)
    ice_enforce_list: str | None = None
    """Interfaces (or address prefixes) Janus gathers ICE candidates on; all but
    loopback when left out."""
    nat_1_1_mapping: str | None = None
    """The public address of a Janus behind a 1:1 NAT (a cloud VM's floating IP)."""
    debug_level: int = 3
    plugins_folder: str = PLUGINS_FOLDER
    transports_folder: str = TRANSPORTS_FOLDER


def _string(value: str) -> str:
    # jcfg strings take JSON's escapes.
    return json.dumps(value)


def _disabled(names: tuple[str, ...]) -> str:
    return _string(",".join(f"libjanus_{name}.so" for name in names))


def gateway_config(config: JanusConfig, folder: str) -> str:
    lines = [
        "general: {",
        f"    configs_folder = {_string(folder)}",
        f"    plugins_folder = {_string(config.plugins_folder)}",
        f"    transports_folder = {_string(config.transports_folder)}",
        f"    events_folder = {_string(EVENTS_FOLDER)}",
        f"    loggers_folder = {_string(LOGGERS_FOLDER)}",
        f"    debug_level = {config.debug_level}",
        f"    api_secret = {_string(config.api_secret)}",
        "    session_timeout = 60",
        "    reclaim_session_timeout = 0",
        "    hide_dependencies = true",
        "    token_auth = false",
        "}",
        "media: {",
        f'    rtp_port_range = "{config.rtp_port_range[0]}-{config.rtp_port_range[1]}"',
        "}",
        "nat: {",
        "    nice_debug = false",
        "    ignore_mdns = true",
        "    full_trickle = false",
    ]
    if config.ice_enforce_list:
        lines.append(f"    ice_enforce_list = {_string(config.ice_enforce_list)}")
    if config.nat_1_1_mapping:
        lines.append(f"    nat_1_1_mapping = {_string(config.nat_1_1_mapping)}")
    lines += [
        "}",
        "plugins: {",
        f"    disable = {_disabled(OTHER_PLUGINS)}",
        "}",
        "transports: {",
        f"    disable = {_disabled(OTHER_TRANSPORTS)}",
        "}",
        "loggers: {",
        f"    disable = {_disabled(LOGGERS)}",
        "}",
        "events: {",
        "    broadcast = false",
        f"    disable = {_disabled(EVENT_HANDLERS)}",
        "}",
        "",
    ]
    return "\n".join(lines)


def videoroom_config(config: JanusConfig) -> str:
    # No rooms here: hubbub creates each room (with its own secret) when it needs it.
    return "\n".join(
        [
            "general: {",
            f"    admin_key = {_string(config.admin_key)}",
            "    lock_rtp_forward = true",
            "    string_ids = true",
            "}",
            "",
        ]
    )


def websockets_config(config: JanusConfig) -> str:
    return "\n".join(
        [
            "general: {",
            '    json = "plain"',
            "    ws = true",
            f"    ws_port = {config.ws_port}",
            f"    ws_ip = {_string(config.ws_ip)}",
            "    wss = false",
            "}",
            "admin: {",
            "    admin_ws = false",
            "    admin_wss = false",
            "}",
            "",
        ]
    )


def write_config(folder: Path, config: JanusConfig, installed_in: str | None = None) -> Path:
    """Write the configuration into ``folder`` (which Janus reads it from, or
    ``installed_in`` where the files go once installed); returns the gateway's file."""
    folder.mkdir(parents=True, exist_ok=True)
    gateway = folder / "janus.jcfg"
    gateway.write_text(gateway_config(config, installed_in or str(folder)))
    (folder / "janus.plugin.videoroom.jcfg").write_text(videoroom_config(config))
    (folder / "janus.transport.websockets.jcfg").write_text(websockets_config(config))
    return gateway


DEPLOYED = JanusConfig(
    ws_port=8188,
    api_secret="REPLACE-WITH-THE-JANUS-API-SECRET",
    admin_key="REPLACE-WITH-THE-JANUS-ADMIN-KEY",
    ws_ip="127.0.0.1",
    rtp_port_range=(20000, 40000),
)
"""What ``deploy/janus/`` holds (``tests/unit/test_deploy_files.py`` keeps them equal)."""
DEPLOYED_FOLDER = "/etc/hubbub/janus"
