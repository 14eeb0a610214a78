"""The contenders: how each is configured and started. sidestep runs with a minimal and a realistic config,
each interpreted and, when `tools/compile.py` can build it here, compiled by mypyc;
LiteLLM runs from its own venv (`bench/.venvs/litellm`, made by `python -m bench.run --install-litellm`)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.nginx import start_nginx_proxy
from bench.procs import Proc, start, wait_http

__all__ = [
    "LITELLM_VENV",
    "Contender",
    "build_compiled",
    "litellm_binary",
    "sidestep_config",
    "start_litellm",
    "start_nginx",
    "start_sidestep",
]

LITELLM_VENV = Path(__file__).parent / ".venvs" / "litellm"
VIRTUAL_KEY = "sk-bench-7f3a9c2e4b8d1f6a0c5e9b3d7a2f4c8e"  # what every load generator sends as its bearer key


@dataclass(slots=True)
class Contender:
    name: str
    port: int
    proc: Proc
    model: str  # what the client names in `model`
    stream_model: str = ""  # the same for the streaming upstream
    stream_path: str = "/v1/chat/completions"
    sim_model: str = ""  # prefix for a model served by the simulator ("" → the bare model name)


def sidestep_config(
    kind: str,
    port: int,
    upstream: int,
    workdir: Path,
    sim: int = 0,
    *,
    nginx_sse: bool = False,
    stem: str = "",
    cache: bool = False,
) -> Path:
    """`minimal`: one provider, a one-target route. `realistic`: three weighted keys, a fallback route of
    two providers with retries, timeouts and a time-to-first-token limit, capability limits declared (so
    requests are checked against them), breakers on, an access log and a request log written, Prometheus
    metrics counted, and governance on: every request carries a virtual key whose key, team and customer
    each have rate limits and a budget (set high enough never to refuse), priced from reported usage.
    Streams come from nginx's static SSE (`/s/`) when the simulator is elsewhere or `nginx_sse` says so.
    `cache`: the exact cache on too, in memory, with its defaults (per virtual key)."""
    base = f"http://127.0.0.1:{upstream}"
    stream = f"{base}/s/v1" if nginx_sse or (sim and sim != upstream) else f"{base}/v1"  # nginx serves SSE under /s/
    extra = f"""  stream: {{type: openai, base_url: "{stream}", api_key: bench-key}}
  sim: {{type: openai, base_url: "http://127.0.0.1:{sim or upstream}/v1", api_key: bench-key}}
"""
    if kind == "minimal":
        text = f"""
server: {{port: {port}}}
providers:
  up: {{type: openai, base_url: "{base}/v1", api_key: bench-key}}
{extra}routes:
  chat: [up/gpt-4o-mini]
  chat-stream: [stream/gpt-4o-mini]
"""
    else:
        log = workdir / f"requests-{stem or kind}.jsonl"
        text = f"""
server: {{port: {port}, access_log: true, request_log: "{log}", metrics: true, sse_keepalive: 15}}
governance:
  pricing: {{gpt-4o-mini: {{input: 0.15, output: 0.6}}, llama-3.3-70b: {{input: 0.59, output: 0.79}}}}
  customers: {{bench-co: {{budget_usd: 1000000, budget_period: monthly}}}}
  teams: {{bench-team: {{customer: bench-co, rpm: 100000000, tpm: 100000000000}}}}
  keys:
    bench:
      key: {VIRTUAL_KEY}
      team: bench-team
      models: [chat, chat-stream, "sim/*"]
      rpm: 100000000
      budget_usd: 1000000
resilience:
  breaker: {{failures: 5, error_rate: 0.5, min_requests: 20, window: 30, cooldown: 10}}
providers:
  up:
    type: openai
    base_url: "{base}/v1"
    keys: [{{value: key-a, weight: 2}}, {{value: key-b, weight: 1}}, {{value: key-c, weight: 1}}]
    timeouts: {{connect: 2, headers: 30, idle: 30}}
  backup:
    type: groq
    base_url: "{base}/v1"
    api_key: bench-backup
    lacks: {{"*": [vision]}}
{extra}routes:
  chat:
    fallback: [up/gpt-4o-mini, backup/llama-3.3-70b]
    retry: {{attempts: 2, backoff: 0.05, max_backoff: 1}}
    timeouts: {{first_token: 10, total: 60}}
    deadline: 90
  chat-stream: [stream/gpt-4o-mini, backup/llama-3.3-70b]
"""
    if cache:
        text += "cache: {}\n"
    path = workdir / f"sidestep-{stem or kind}.yaml"
    path.write_text(text)
    return path


def start_sidestep(
    kind: str,
    port: int,
    upstream: int,
    workdir: Path,
    cpus: list[int] | None,
    sim: int = 0,
    compiled: Path | None = None,
    cache: bool = False,
) -> Contender:
    """`compiled`: a tree built by `tools/compile.py --into` (its `src` goes first on PYTHONPATH); `cache`:
    the cache on (`sidestep_config`)."""
    label = f"{kind}, cache on" if cache else kind
    name = f"sidestep ({label}, compiled)" if compiled is not None else f"sidestep ({label})"
    stem = (f"{kind}-cache" if cache else kind) + ("-compiled" if compiled is not None else "")
    config = sidestep_config(kind, port, upstream, workdir, sim, stem=stem, cache=cache)
    binary = str(Path(sys.executable).parent / "sidestep")
    argv = [binary, "--log-level", "warning", "serve", "--config", str(config)]
    env = {"PYTHONPATH": str(compiled / "src")} if compiled is not None else None
    proc = start(argv, name, cpus=cpus, log=workdir / f"sidestep-{stem}.log", env=env)
    wait_http(port, "/health", proc=proc)
    return Contender(name, port, proc, "chat", "chat-stream", sim_model="sim/")


def build_compiled(into: Path) -> Path | None:
    """sidestep's request path compiled by mypyc into `into` (`tools/compile.py --into`); None, with the
    reason on stderr, when it cannot be built here (no C compiler, no mypyc)."""
    tool = Path(__file__).resolve().parent.parent / "tools" / "compile.py"
    done = subprocess.run([sys.executable, str(tool), "--into", str(into)], capture_output=True, text=True)
    if done.returncode != 0:
        print(
            f"bench: the compiled build failed, measuring the interpreted one only\n{done.stderr[-2000:]}",
            file=sys.stderr,
        )
        return None
    return into


def start_nginx(port: int, upstream: int, workdir: Path, cpus: list[int] | None) -> Contender:
    proc = start_nginx_proxy(workdir, port, upstream, cpus)
    return Contender("nginx proxy", port, proc, "gpt-4o-mini", "gpt-4o-mini", "/s/v1/chat/completions")


def litellm_binary() -> Path | None:
    binary = LITELLM_VENV / "bin" / "litellm"
    return binary if binary.exists() else None


def start_litellm(port: int, upstream: int, workdir: Path, cpus: list[int] | None) -> Contender | None:
    binary = litellm_binary()
    if binary is None:
        return None
    config = workdir / "litellm.yaml"
    config.write_text(
        f"""
model_list:
  - model_name: chat
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:{upstream}/v1", api_key: bench-key}}
litellm_settings: {{telemetry: false, drop_params: true}}
general_settings: {{master_key: "{VIRTUAL_KEY}"}}
"""
    )
    argv = [str(binary), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    offline = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", "NO_DOCS": "True"}
    proc = start(argv, "litellm", cpus=cpus, log=workdir / "litellm.log", env=offline)
    wait_http(port, "/health/liveliness", timeout=120, proc=proc)
    return Contender("LiteLLM proxy", port, proc, "chat")
