"""The mypyc build (`tools/compile.py`, `make test-compiled`): what it compiles, and that the compiled suite
really runs compiled code."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
from fnmatch import fnmatchcase
from pathlib import Path
from types import ModuleType

import pytest

from sidestep.serve import compiled_build, stale_extensions

ROOT = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compile_tool", ROOT / "tools" / "compile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODULES: tuple[str, ...] = _tool().MODULES
PACKAGE = ROOT / "src" / "sidestep"


def _dotted(module: str) -> str:
    return "sidestep." + module.removesuffix(".py").replace("/", ".")


@pytest.mark.parametrize("module", MODULES)
def test_compiled_modules_hold_nothing_mypyc_or_msgspec_cannot_take(module: str) -> None:
    """Caught here in a second rather than by a failed compile or a compiled suite that breaks at import."""
    assert _untakeable(module) == [], f"{module} is compiled but holds {_untakeable(module)}"


def _untakeable(module: str) -> list[str]:
    """The msgspec structs and async generators `module` defines (mypyc and msgspec cannot take them)."""
    found = []
    for node in ast.walk(ast.parse((PACKAGE / module).read_text())):
        if isinstance(node, ast.ClassDef) and any("Struct" in ast.unparse(base) for base in node.bases):
            found.append(f"msgspec struct {node.name}")
        if isinstance(node, ast.AsyncFunctionDef) and any(
            isinstance(n, ast.Yield | ast.YieldFrom) for n in ast.walk(node)
        ):
            found.append(f"async generator {node.name}")
    return found


def test_the_module_list_is_every_module_but_the_exclusions_and_each_exclusion_says_why() -> None:
    tool = _tool()
    every = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py"))
    assert list(MODULES) == [module for module in every if tool.excluded_by(module) is None]
    for reason, patterns in tool.INTERPRETED.items():
        assert len(reason.split()) >= 3, f"say why {patterns} stay interpreted"
        for pattern in patterns:  # no stale entry: each still keeps a module out
            assert any(tool.excluded_by(m) == reason and fnmatchcase(m, pattern) for m in every), pattern
    # The request path is compiled: the server, the app, routing, the upstream client, the OpenAI formats.
    for module in ("app.py", "server/protocol.py", "routing/executor.py", "transport/client.py", "relay/forward.py"):
        assert module in MODULES
    for module in (
        "formats/openai_chat/format.py",
        "formats/openai_chat/stream.py",
        "providers/openai_compat.py",
        "plugins/governance/plugin.py",
    ):
        assert module in MODULES


def test_a_new_module_is_compiled_unless_excluded(tmp_path: Path) -> None:
    tool = _tool()
    package = tmp_path / "sidestep"
    for module in ("app.py", "routing/new_strategy.py", "sim/app.py", "__init__.py", "routing/__init__.py"):
        (package / module).parent.mkdir(parents=True, exist_ok=True)
        (package / module).write_text("")
    assert tool.derived_modules(package) == ("app.py", "routing/new_strategy.py")


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


def test_a_copy_built_outside_the_repository_gets_the_repositorys_mypy_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`compile.py --into /tmp/...` runs mypyc in a directory with no pyproject.toml above it: mypyc must be
    told where the settings are, or it builds under mypy's defaults (`bench.instructions --compiled` failed so)."""
    from mypy.main import process_options

    (tmp_path / "sidestep").mkdir()
    (tmp_path / "sidestep" / "app.py").write_text("")
    monkeypatch.chdir(tmp_path)
    _, found = process_options(["sidestep/app.py"])
    assert not found.warn_unreachable and not found.disallow_untyped_defs  # nothing found from here
    _, told = process_options(_tool().mypyc_args(("app.py",)))
    assert told.warn_unreachable and told.disallow_untyped_defs  # pyproject.toml's [tool.mypy]: strict
    assert told.config_file == str(ROOT / "pyproject.toml")
