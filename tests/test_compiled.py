"""The mypyc build (`tools/compile.py`, `make test-compiled`): what it compiles, and that the compiled suite
really runs compiled code."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compile_tool", ROOT / "tools" / "compile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODULES: tuple[str, ...] = _tool().MODULES


def _dotted(module: str) -> str:
    return "sidestep." + module.removesuffix(".py").replace("/", ".")


@pytest.mark.parametrize("module", MODULES)
def test_compiled_modules_hold_nothing_mypyc_or_msgspec_cannot_take(module: str) -> None:
    """Caught here in a second rather than by a failed compile or a compiled suite that breaks at import."""
    tree = ast.parse((ROOT / "src" / "sidestep" / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(base) for base in node.bases]
            assert not any("Struct" in base for base in bases), f"{module}: msgspec struct {node.name}"
        if isinstance(node, ast.AsyncFunctionDef):
            inner = [n for n in ast.walk(node) if isinstance(n, ast.Yield | ast.YieldFrom)]
            assert not inner, f"{module}: async generator {node.name}"


def test_the_compiled_suite_runs_compiled_code() -> None:
    if os.environ.get("SIDESTEP_EXPECT_COMPILED") != "1":
        pytest.skip("pure Python run (make test-compiled sets SIDESTEP_EXPECT_COMPILED)")
    interpreted = [m for m in MODULES if not str(importlib.import_module(_dotted(m)).__file__).endswith(".so")]
    assert not interpreted, f"expected compiled, imported from source: {interpreted}"
