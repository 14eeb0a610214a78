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

from sidestep.serve import compiled_build, stale_extensions

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
    interpreted = [m for m in MODULES if not _is_compiled(m)]
    assert not interpreted, f"expected compiled, imported from source: {interpreted}"


def test_the_server_says_which_build_runs() -> None:
    expected = "compiled" if _is_compiled("app.py") else "interpreted"
    assert compiled_build() == expected
    if os.environ.get("SIDESTEP_EXPECT_COMPILED") == "1":
        assert expected == "compiled"


def test_a_compiled_module_older_than_its_source_is_found(tmp_path: Path) -> None:
    package = tmp_path / "sidestep"
    (package / "server").mkdir(parents=True)
    for name in ("app", "server/protocol"):
        (package / f"{name}.py").write_text("")
        (package / f"{name}.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (package / "plain.py").write_text("")  # never compiled: not stale
    assert stale_extensions(package) == []
    source = package / "server" / "protocol.py"
    later = source.stat().st_mtime + 60
    os.utime(source, (later, later))  # edited after it was built
    assert stale_extensions(package) == ["server/protocol.cpython-311-x86_64-linux-gnu.so"]


def _is_compiled(module: str) -> bool:
    return str(importlib.import_module(_dotted(module)).__file__).endswith(".so")


def test_the_tool_cleans_what_it_built_and_reports_a_failed_build(tmp_path: Path) -> None:
    tool = _tool()
    src = tmp_path / "src"
    (src / "sidestep" / "server").mkdir(parents=True)
    built = [src / "abc__mypyc.cpython-311-x86_64-linux-gnu.so", src / "sidestep" / "server" / "heads.cpython-311.so"]
    for path in built:
        path.write_bytes(b"")
    (src / "sidestep" / "server" / "heads.py").write_text("")
    (src / "build").mkdir()
    assert tool.clean(src) == 2
    assert not any(path.exists() for path in built) and not (src / "build").exists()
    assert (src / "sidestep" / "server" / "heads.py").exists()  # sources untouched
    assert tool.compile_in(src) != 0  # its modules are missing here: mypyc fails, and the tool says so
