"""Packs hubbub.js as an npm package: ``npm pack`` of a folder that holds the library
as the server serves it (``hubbub.js``, ``protocol.js``, ``hubbub/``), the
``package.json`` and ``README.md`` of ``js/``, and TypeScript declarations made from
the library's JSDoc by ``tsc``. The library itself has no build step: the package
adds only the ``.d.ts`` files.

Run from the repository root: ``python scripts/npm_package.py [OUT]`` (default
``build/npm``) prints the tarball's path. It needs Node and npm, and TypeScript in
``js/node_modules`` (``npm ci --prefix js``; ``make npm-package`` does both).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "hubbub" / "web" / "static"
JS = ROOT / "js"
TSC = JS / "node_modules" / ".bin" / "tsc"

LIBRARY = ["hubbub.js", "protocol.js", "hubbub"]
"""What of the static files is the library (the web app and the admin page are not)."""

DECLARATIONS = [
    "--allowJs",
    "--declaration",
    "--emitDeclarationOnly",
    "--target", "es2022",
    "--module", "es2022",
    "--moduleResolution", "bundler",
    "--lib", "es2022,dom",
    "--skipLibCheck",
]  # fmt: skip


def version() -> str:
    text = (ROOT / "src" / "hubbub" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise RuntimeError("no __version__ in src/hubbub/__init__.py")
    return match.group(1)


def run(command: list[str], cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def build(out: Path, tsc: Path = TSC) -> Path:
    """Assemble the package under ``out/package`` and pack it into ``out``; the tarball."""
    if not tsc.exists():
        raise RuntimeError(f"no TypeScript at {tsc}: run npm ci --prefix js")
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed")
    package = out / "package"
    shutil.rmtree(package, ignore_errors=True)
    package.mkdir(parents=True)
    for name in LIBRARY:
        source = STATIC / name
        if source.is_dir():
            shutil.copytree(source, package / name)
        else:
            shutil.copy2(source, package / name)
    manifest = json.loads((JS / "package.json").read_text())
    manifest["version"] = version()
    manifest.pop("devDependencies", None)
    (package / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.copy2(JS / "README.md", package / "README.md")
    run([str(tsc), *DECLARATIONS, "hubbub.js", "protocol.js"], cwd=package)
    name = run([npm, "pack", "--pack-destination", str(out.resolve()), "--silent"], cwd=package)
    return out / name.strip().splitlines()[-1]


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "npm"))
