"""hubbub.js as an npm package: ``npm pack`` gives a tarball an app installs, an ES
module with TypeScript declarations made from the library's JSDoc, which a small
TypeScript app compiles against (strict), and which refuse what the API refuses.

TypeScript comes from the npm registry into ``js/node_modules`` (``npm ci`` from
``js/package-lock.json``, again only when the lock file changed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import hubbub

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "js"
EXAMPLE = Path(__file__).parent / "npm_example"
TSC = JS / "node_modules" / ".bin" / "tsc"
STRICT = [
    "--strict", "--noEmit", "--target", "es2022", "--module", "nodenext",
    "--moduleResolution", "nodenext", "--lib", "es2022,dom",
]  # fmt: skip


def npm() -> str:
    found = shutil.which("npm")
    if found is None:
        pytest.fail("npm is not installed (scripts/system-deps.sh installs Node and npm)")
    return found


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def typescript() -> Path:
    """``npm ci`` in js/ unless what is installed came from this lock file."""
    lock = JS / "package-lock.json"
    stamp = JS / "node_modules" / ".hubbub-lock"
    if not (stamp.exists() and TSC.exists() and stamp.read_bytes() == lock.read_bytes()):
        result = run([npm(), "ci", "--no-audit", "--no-fund", "--loglevel=error"], JS)
        assert result.returncode == 0, result.stderr
        stamp.write_bytes(lock.read_bytes())
    return TSC


@pytest.fixture(scope="module")
def tarball(typescript: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("npm")
    result = run([sys.executable, str(ROOT / "scripts" / "npm_package.py"), str(out)], ROOT)
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


@pytest.fixture(scope="module")
def app(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An app that installed the tarball (no registry needed: it has no dependency)."""
    folder = tmp_path_factory.mktemp("app")
    (folder / "package.json").write_text('{"name": "app", "private": true, "type": "module"}')
    result = run(
        [npm(), "install", "--offline", "--no-audit", "--no-fund", "--loglevel=error",
         str(tarball)],
        folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("example.ts", "wrong.ts"):
        shutil.copy2(EXAMPLE / name, folder / name)
    return folder


def test_the_tarball_holds_the_library_its_declarations_and_no_more(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
        manifest = json.load(archive.extractfile("package/package.json"))  # type: ignore[arg-type]
    static = ROOT / "src" / "hubbub" / "web" / "static"
    modules = ["hubbub.js", "protocol.js"] + [
        f"hubbub/{path.name}" for path in sorted((static / "hubbub").glob("*.js"))
    ]
    for module in modules:
        assert f"package/{module}" in names, module
        assert f"package/{module[:-3]}.d.ts" in names, module
    assert not any("app" in name or "admin" in name or "index.html" in name for name in names)
    assert manifest["version"] == hubbub.__version__
    assert manifest["type"] == "module"
    assert manifest["exports"]["."] == {"types": "./hubbub.d.ts", "default": "./hubbub.js"}
    assert "devDependencies" not in manifest
    assert "dependencies" not in manifest


def test_a_typescript_app_compiles_against_the_declarations(app: Path, typescript: Path) -> None:
    result = run([str(typescript), *STRICT, "example.ts"], app)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_declarations_refuse_what_the_api_refuses(app: Path, typescript: Path) -> None:
    result = run([str(typescript), *STRICT, "wrong.ts"], app)
    errors = [line for line in result.stdout.splitlines() if ": error TS" in line]
    # one error for each wrong line, and none elsewhere
    assert [line.split("(")[1].split(",")[0] for line in errors] == ["5", "6", "8"], result.stdout


def test_the_package_is_an_es_module_node_can_import(app: Path) -> None:
    node = shutil.which("node")
    assert node is not None
    result = run(
        [node, "--input-type=module", "-e",
         "const m = await import('hubbub'); console.log(Object.keys(m).sort().join(' '));"],
        app,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == sorted(
        ["AppChannel", "DEFAULTS", "Emitter", "FINAL_CLOSE_CODES", "FileTransfer",
         "HubbubError", "Participant", "Room", "Sha256", "VERSION", "join", "reconnectDelay"]
    )  # fmt: skip
