"""deploy/: the systemd unit and the Dockerfile run commands and flags that exist.

Their ``hubbub serve`` flags are put through ``hubbub config`` (which parses and
checks them as ``serve`` does), with the environment they would run with.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from hubbub import cli, settings

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
SCRIPT = next(iter(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]))


def example_environment() -> dict[str, str]:
    lines = (DEPLOY / "hubbub.env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def check_serve_flags(
    argv: list[str], environ: dict[str, str], monkeypatch, capsys
) -> dict[str, str]:
    """``hubbub serve ARGS`` as ``hubbub config ARGS``: the settings it shows."""
    assert argv[0] == "serve", argv
    for name in [name for name in os.environ if name.startswith("HUBBUB_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    try:
        assert cli.main(["config", *argv[1:]]) == 0
    except SystemExit:  # a refused flag or value
        pytest.fail(f"hubbub config refused {argv[1:]}: {capsys.readouterr().err}")
    shown = dict(line.split(" = ", 1) for line in capsys.readouterr().out.splitlines())
    loaded = settings.load(cli._build_parser().parse_args(["config", *argv[1:]]))
    assert loaded.exposure_problem() is None
    return shown


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "hubbub.service").read_text())
    return parser


def test_the_systemd_unit_runs_the_installed_command_with_flags_that_exist(
    monkeypatch, capsys
) -> None:
    service = unit()["Service"]
    command, *argv = shlex.split(service["ExecStart"])
    assert command == f"/opt/hubbub/venv/bin/{SCRIPT}"
    shown = check_serve_flags(argv, example_environment(), monkeypatch, capsys)
    assert shown["host"] == "0.0.0.0"
    assert shown["auth"] == "token"
    assert shown["token_secret"] == "********"
    # the data dir is the one systemd makes and hands to the service user
    assert shown["data_dir"] == f"/var/lib/{service['StateDirectory']}"
    assert service["WorkingDirectory"] == shown["data_dir"]
    assert service["KillSignal"] == "SIGTERM"
    assert service["EnvironmentFile"] == "/etc/hubbub/hubbub.env"


def dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_the_dockerfile_installs_the_wheel_and_runs_flags_that_exist(monkeypatch, capsys) -> None:
    instructions = dockerfile()
    of = lambda keyword: [rest for kind, rest in instructions if kind == keyword]  # noqa: E731
    # what it copies from the build context is there
    for copy in of("COPY"):
        if copy.startswith("--from"):
            continue
        *sources, _ = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), source
    runs = " ".join(of("RUN"))
    assert "pip wheel" in runs
    assert "python -m venv /opt/hubbub/venv" in runs
    assert "/opt/hubbub/venv/bin/pip install" in runs
    python = re.match(r"python:(\d+)\.(\d+)", of("FROM")[-1])
    assert python is not None
    assert (int(python[1]), int(python[2])) >= (3, 11)

    [entrypoint] = [json.loads(rest) for rest in of("ENTRYPOINT")]
    assert entrypoint == [f"/opt/hubbub/venv/bin/{SCRIPT}"]
    [argv] = [json.loads(rest) for rest in of("CMD")]
    environ = {"HUBBUB_TOKEN_SECRET": "x" * 32}  # given with docker run -e
    shown = check_serve_flags(argv, environ, monkeypatch, capsys)
    assert shown["host"] == "0.0.0.0"
    assert shown["auth"] == "token"
    assert of("EXPOSE") == [shown["port"]]
    assert of("VOLUME") == [shown["data_dir"]]
    assert "/healthz" in of("HEALTHCHECK")[0]
    assert of("USER") == ["hubbub"]


def test_the_deploy_guide_points_at_the_files() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for name in ("hubbub.service", "Dockerfile", "hubbub.env.example"):
        assert f"deploy/{name}" in guide


def test_the_janus_config_is_what_hubbub_generates(tmp_path: Path) -> None:
    from hubbub.media.janus_config import DEPLOYED, DEPLOYED_FOLDER, write_config

    write_config(tmp_path, DEPLOYED, DEPLOYED_FOLDER)
    for made in sorted(tmp_path.iterdir()):
        assert (DEPLOY / "janus" / made.name).read_text() == made.read_text(), made.name
    assert sorted(p.name for p in (DEPLOY / "janus").iterdir()) == sorted(
        p.name for p in tmp_path.iterdir()
    )


def test_the_janus_unit_runs_janus_unprivileged_on_hubbubs_config() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "janus.service").read_text())
    service = parser["Service"]
    assert service["DynamicUser"] == "yes"
    assert "User" not in service
    assert service["ExecStart"].startswith("/usr/bin/janus -F ${CREDENTIALS_DIRECTORY} -C ")
    text = (DEPLOY / "janus" / "janus.transport.websockets.jcfg").read_text()
    assert 'ws_ip = "127.0.0.1"' in text
    assert "admin_ws = false" in text
