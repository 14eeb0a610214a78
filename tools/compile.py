"""Compile sidestep's request path with mypyc: the same, fully typed source, built as C extensions.

    .venv/bin/python tools/compile.py               # in place: the .so files shadow the .py files in src/
    .venv/bin/python tools/compile.py --into DIR    # a compiled copy of src/ in DIR/src (tests, benchmarks)
    .venv/bin/python tools/compile.py --clean       # back to pure Python

Nothing changes in behaviour; `make check` runs the whole test suite against a compiled copy as well. Every
module is compiled except those `INTERPRETED` names, each group with its reason (msgspec structs, async
generators, the error classes, and what is off the request path); tests/tooling/test_compiled.py checks the list.
Needs a C compiler and the Python headers; mypyc comes with mypy (a development dependency).
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_COMMANDS = "the commands: start-up, shutdown and the CLI, off the request path"
_STRUCTS = "msgspec structs: msgspec reads a struct's annotations when its class is created, compiled modules keep none"
_NATIVE = (
    "the native providers (Anthropic, Gemini, Vertex, Bedrock, Cohere): adapters, their shared base and their wire"
    " formats, off the benchmarked OpenAI-compatible path; the base is subclassed by interpreted classes"
)

# What stays interpreted, and why (globs relative to src/sidestep); every other module is compiled.
INTERPRETED: dict[str, tuple[str, ...]] = {
    "package faces: they only hand names on": ("__init__.py", "*/__init__.py"),
    _COMMANDS: ("__main__.py", "cli/*", "demo.py", "drill/*", "loop.py", "serve.py", "supervise.py"),
    "config loading, once at start-up (the model it builds is compiled)": (
        "config/load.py",
        "config/fields.py",
        "config/governance.py",
        "config/cache.py",
        "config/mcp.py",
    ),
    "the simulator and the test helpers, not the gateway": ("sim/*", "testing.py", "transport/fake.py"),
    _STRUCTS: (
        "core/model.py",
        "records.py",
        "formats/openai_chat/wire.py",
        "formats/openai_responses/wire.py",
        "providers/anthropic.py",
    ),
    "async generators, which mypyc cannot compile (the translated stream and the keep-alive relays)": (
        "relay/translated.py",
        "relay/keepalive.py",
    ),
    "the error classes: subclasses override class attributes, which compiled classes do not allow": ("errors.py",),
    _NATIVE: (
        "providers/base.py",
        "providers/bedrock.py",
        "providers/cohere.py",
        "providers/gemini.py",
        "providers/vertex.py",
        "formats/bedrock_converse/*",
        "formats/cohere_v2.py",
        "formats/gemini/*",
    ),
    "once per process or per hour: provider types as data, adapters built at start-up, token refresh": (
        "providers/catalog.py",
        "providers/registry.py",
        "providers/tokens.py",
    ),
    "off the request path: the spend store's own thread, token estimates for budgets and usage-less streams": (
        "plugins/governance/store.py",
        "plugins/estimate.py",
    ),
    "Protocols only (routing's provider seam, what a format is): nothing runs in them": (
        "routing/provider.py",
        "core/format.py",
        "formats/base.py",
    ),
    "the cache's optional backends, imported only when configured: Redis calls, numpy and usearch do the work": (
        "plugins/cache/redis_store.py",
        "plugins/cache/redis_vectors.py",
        "plugins/cache/semantic.py",
        "plugins/cache/ann.py",
    ),
    "the MCP gateway: drives the optional mcp SDK (anyio, pydantic); on the LLM path only its pre hook (a header)": (
        "plugins/mcp/*",
    ),
    "plugins found and built at start-up and reload: capability protocols checked with isinstance, the registry": (
        "plugins/capabilities.py",
        "plugins/registry.py",
    ),
}


def excluded_by(module: str) -> str | None:
    """The reason `module` (relative to src/sidestep) stays interpreted, or None when it is compiled."""
    for reason, patterns in INTERPRETED.items():
        if any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns):
            return reason
    return None


def derived_modules(package: Path) -> tuple[str, ...]:
    """Every module under `package` that no INTERPRETED pattern keeps out, relative to it."""
    every = sorted(str(path.relative_to(package)) for path in package.rglob("*.py"))
    return tuple(module for module in every if excluded_by(module) is None)


MODULES = derived_modules(ROOT / "src" / "sidestep")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/compile.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--into", type=Path, help="compile a copy of src/ into DIR/src instead of in place")
    parser.add_argument("--clean", action="store_true", help="remove the compiled extensions from src/")
    args = parser.parse_args(argv)
    if args.clean:
        print(f"removed {clean(ROOT / 'src')} compiled files from src/")
        return 0
    src = ROOT / "src"
    if args.into is not None:
        src = args.into.resolve() / "src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.so", "build"))
    else:
        clean(src)
    return compile_in(src)


def compile_in(src: Path) -> int:
    """mypyc over MODULES in `src` (the extensions land next to their sources); its log on failure."""
    mypyc = Path(sys.executable).parent / "mypyc"
    if not mypyc.exists():
        print("tools/compile.py: mypyc not found next to this Python (pip install mypy)", file=sys.stderr)
        return 2
    done = subprocess.run([str(mypyc), *mypyc_args(MODULES)], cwd=src, capture_output=True, text=True)
    shutil.rmtree(src / "build", ignore_errors=True)  # mypyc's C sources and objects
    if done.returncode != 0:
        print(done.stdout[-4000:] + done.stderr[-4000:], file=sys.stderr)
        return done.returncode
    print(f"compiled {len(MODULES)} modules in {src}")
    return 0


def mypyc_args(modules: tuple[str, ...]) -> list[str]:
    """mypyc's arguments: the repository's mypy settings, named by path — mypy looks for its config only in
    the working directory and its parents up to a repository root, and a copy built outside the repository
    (`--into /tmp/...`, as `bench.instructions --compiled` does) has none above it — then the modules."""
    return [f"--config-file={ROOT / 'pyproject.toml'}", *(f"sidestep/{module}" for module in modules)]


def clean(src: Path) -> int:
    found = [*src.glob("*__mypyc*.so"), *(src / "sidestep").rglob("*.so")]
    for path in found:
        path.unlink()
    shutil.rmtree(src / "build", ignore_errors=True)
    return len(found)


if __name__ == "__main__":
    raise SystemExit(main())
