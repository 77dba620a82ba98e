"""Settings: flags over environment over config file over defaults; bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubbub import settings
from hubbub.cli import _build_parser
from hubbub.settings import ServerSettings, SettingsError


def parse(*argv: str) -> dict:
    args = vars(_build_parser().parse_args(["serve", *argv]))
    del args["command"]
    return args


def test_defaults() -> None:
    loaded = settings.load(parse(), environ={})
    assert loaded.host == "127.0.0.1"
    assert loaded.port == 8080
    assert loaded.limits.max_frame_bytes == 65536


def test_flag_beats_env_beats_file(tmp_path: Path) -> None:
    config = tmp_path / "hubbub.toml"
    config.write_text('port = 1111\nhost = "0.0.0.0"\nmax_chat_length = 10\nmessage_rate = 7\n')
    environ = {"HUBBUB_PORT": "2222", "HUBBUB_MAX_CHAT_LENGTH": "20"}
    loaded = settings.load(parse("--config", str(config), "--port", "3333"), environ=environ)
    assert loaded.port == 3333  # flag
    assert loaded.limits.max_chat_length == 20  # env over file
    assert loaded.host == "0.0.0.0"  # file over default
    assert loaded.limits.message_rate == 7.0
    loaded = settings.load(parse(), environ={**environ, "HUBBUB_CONFIG": str(config)})
    assert loaded.port == 2222


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [
        (["--port", "http"], {}, "port: 'http' is not a whole number"),
        (["--port", "70000"], {}, "port: 70000 is not a port number"),
        ([], {"HUBBUB_MAX_FRAME_BYTES": "-1"}, "max_frame_bytes must be positive"),
        ([], {"HUBBUB_MESSAGE_RATE": "fast"}, "message_rate: 'fast' is not a number"),
        (["--log-level", "loud"], {}, "log_level: 'loud' is not one of"),
    ],
)
def test_bad_values_name_the_setting(argv: list[str], environ: dict, named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        settings.load(parse(*argv), environ=environ)


def test_bad_config_files(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("prot = 80\n")
    with pytest.raises(SettingsError, match="unknown setting 'prot'"):
        settings.load(parse("--config", str(unknown)), environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        settings.load(parse("--config", str(broken)), environ={})
    with pytest.raises(SettingsError, match="cannot read"):
        settings.load(parse("--config", str(tmp_path / "absent.toml")), environ={})
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text("port = 1.5\n")
    with pytest.raises(SettingsError, match=r"port: 1\.5 is not a whole number"):
        settings.load(parse("--config", str(wrong_type)), environ={})


def test_every_setting_has_help_and_shows_in_effective() -> None:
    shown = dict(settings.effective(settings.ServerSettings()))
    for option in settings.OPTIONS:
        assert option.help, option.name
        assert option.name in shown


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"frontend": ["peerjs", "socket.io"]}, "frontend"),
        ({"peerjs_key": ["a/b"]}, "peerjs_key"),
        ({"peerjs_key": [""]}, "peerjs_key"),
        ({"peerjs_expire_timeout": 0}, "peerjs_expire_timeout"),
        ({"tracker_interval": -1}, "tracker_interval"),
    ],
)
def test_front_end_settings_are_checked(changes: dict[str, object], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        ServerSettings(**changes)  # type: ignore[arg-type]
