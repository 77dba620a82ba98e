"""The hubbub configuration in docs/deploy.md is one hubbub takes as it is."""

from __future__ import annotations

from pathlib import Path

from hubbub import settings

DEPLOY = (Path(__file__).parents[2] / "docs" / "deploy.md").read_text()


def test_the_documented_hubbub_config_loads(tmp_path: Path) -> None:
    config = DEPLOY.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "hubbub.toml"
    path.write_text(config)
    loaded = settings.load({"config": str(path)}, environ={})
    assert loaded.auth == "token"
    assert loaded.trusted_proxy == ["127.0.0.1"]
    assert len(loaded.turn_uri) == 3
    assert loaded.exposure_problem() is None


def test_the_documented_cluster_config_loads(tmp_path: Path) -> None:
    blocks = [block.split("```", 1)[0] for block in DEPLOY.split("```toml\n")[1:]]
    node = blocks[0]
    cluster = next(block for block in blocks if block.startswith("broker = "))
    merged = "\n".join(
        line for line in node.splitlines() if not line.startswith(("host ", "trusted_proxy "))
    )
    path = tmp_path / "hubbub.toml"
    path.write_text(merged + "\n" + cluster)
    loaded = settings.load({"config": str(path)}, environ={})
    assert loaded.broker.startswith("redis://")
    assert loaded.database_url is not None
    assert loaded.cluster_node_timeout > 2 * loaded.cluster_heartbeat
    assert loaded.exposure_problem() is None
