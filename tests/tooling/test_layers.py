"""The import contracts in pyproject.toml hold: the layers, no cycles inside a package, formats that do not
know the HTTP server, the executor driven by the app alone (`make lint` runs the same check)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    linter = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(linter), "--no-cache", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 kept, 0 broken" in done.stdout


def test_the_loader_and_the_adapters_import_in_either_order() -> None:
    """The loader imports the adapters it checks at the top; the model they read must not pull it back in."""
    for first in ("sidestep.providers.registry", "sidestep.config.load", "sidestep.config.model"):
        code = f"import {first}, sidestep.config.load, sidestep.providers.registry"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
