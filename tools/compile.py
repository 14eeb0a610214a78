"""Compile sidestep's request path with mypyc: the same, fully typed source, built as C extensions.

    .venv/bin/python tools/compile.py               # in place: the .so files shadow the .py files in src/
    .venv/bin/python tools/compile.py --into DIR    # a compiled copy of src/ in DIR/src (tests, benchmarks)
    .venv/bin/python tools/compile.py --clean       # back to pure Python

Nothing changes in behaviour; `make check` runs the whole test suite against a compiled copy as well. What
stays interpreted: modules that define msgspec structs (msgspec reads a struct's annotations when its class
is created, which compiled modules do not keep), modules with async generators (mypyc cannot compile them),
the error classes (subclasses override class attributes), and everything off the request path (config
loading — the config model is compiled —, the CLI, the simulator, the drill, the other providers'
adapters, whose shared base is subclassed by interpreted classes). Needs a C compiler and the
Python headers; mypyc comes with mypy (a development dependency).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = (  # relative to src/sidestep
    "app.py",
    "batch.py",
    "headers.py",
    "forward.py",
    "usage_tap.py",
    "translate.py",
    "server/heads.py",
    "server/protocol.py",
    "server/types.py",
    "server/access_log.py",
    "server/metrics.py",
    "transport/client.py",
    "transport/connection.py",
    "routing/executor.py",
    "routing/plan.py",
    "routing/breaker.py",
    "routing/cooldown.py",
    "routing/served.py",
    "dialects/body.py",
    "dialects/openai.py",
    "dialects/sse.py",
    "dialects/openai_chat.py",
    "dialects/anthropic.py",
    "dialects/anthropic_messages.py",
    "routing/retry.py",
    "routing/strategies.py",
    "config/model.py",
    "transport/types.py",
    "transport/proxy.py",
    "log.py",
    "providers/openai_compat.py",
    "providers/azure_entra.py",  # it subclasses the OpenAI-compatible adapter: compiled classes need compiled heirs
    "plugins/base.py",
    "outcome.py",
    "plugins/request_log.py",
    "plugins/pricing.py",
    "plugins/governance/plugin.py",
    "plugins/governance/decide.py",
    "plugins/governance/limits.py",
)


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
    argv = [str(mypyc), *(f"sidestep/{module}" for module in MODULES)]
    done = subprocess.run(argv, cwd=src, capture_output=True, text=True)
    shutil.rmtree(src / "build", ignore_errors=True)  # mypyc's C sources and objects
    if done.returncode != 0:
        print(done.stdout[-4000:] + done.stderr[-4000:], file=sys.stderr)
        return done.returncode
    print(f"compiled {len(MODULES)} modules in {src}")
    return 0


def clean(src: Path) -> int:
    found = [*src.glob("*__mypyc*.so"), *(src / "sidestep").rglob("*.so")]
    for path in found:
        path.unlink()
    shutil.rmtree(src / "build", ignore_errors=True)
    return len(found)


if __name__ == "__main__":
    raise SystemExit(main())
