"""Turn measured numbers into the results page: tables, ratios to the baselines of the same run, and a
verdict per target (PASS / MISS with by how much)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["render", "update_docs", "verdicts"]

START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
SUMMARY_START, SUMMARY_END = "<!-- bench:summary:start -->", "<!-- bench:summary:end -->"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def _added(results: dict[str, Any], name: str, rate: str, pct: str) -> float | None:
    lat = results["latency"].get(rate, {})
    if name not in lat or "direct" not in lat:
        return None
    return float(lat[name][pct] - lat["direct"][pct])


def verdicts(r: dict[str, Any]) -> list[tuple[str, str, float | None, float, str]]:
    """(target, measured, ratio or value, limit, PASS/MISS) for each target in the issue: the interpreted
    build's, then the compiled build's where the run measured one."""
    sat = r["saturation"]
    rows: list[tuple[str, str, float | None, float, str]] = []

    def add(target: str, measured: str, value: float | None, limit: float, higher_is_better: bool = False) -> None:
        ok = value is not None and (value >= limit if higher_is_better else value <= limit)
        rows.append((target, measured, value, limit, "—" if value is None else ("PASS" if ok else "MISS")))

    _cpu_verdicts(r, "", add)
    mini = sat.get("sidestep (minimal)", {})
    lite = sat.get("LiteLLM proxy", {}).get("rps")
    add(
        "RPS ≥ 100× LiteLLM", f"{_fmt(mini.get('rps'), 0)} vs {_fmt(lite, 0)}", _ratio(mini.get("rps"), lite), 100, True
    )
    _latency_verdicts(r, "", add)
    chunk = r.get("chunks", {}).get("sidestep (minimal)", {})
    first = chunk.get("first_event_ms_of_200ms_stream")
    add("no SSE buffering (first event of a 200 ms stream) ≤ 50 ms", f"{_fmt(first)} ms", first, 50)
    add("RSS per worker ≤ 100 MB", f"{_fmt(r.get('rss_mb'))} MB", r.get("rss_mb"), 100)
    imports = r.get("import", {}).get("import sidestep")
    add("import sidestep ≤ 300 ms", f"{_fmt(imports and imports * 1000)} ms", imports and imports * 1000, 300)
    cold = r.get("cold_start")
    add("ready to serve ≤ 1 s", f"{_fmt(cold and cold * 1000, 0)} ms", cold and cold * 1000, 1000)
    if "sidestep (minimal, compiled)" in sat:
        _cpu_verdicts(r, ", compiled", add)
        _latency_verdicts(r, ", compiled", add)
    return rows


def _cpu_verdicts(r: dict[str, Any], build: str, add: Callable[..., None]) -> None:
    """CPU per request and throughput, for one build ("" or ", compiled")."""
    sat = r["saturation"]
    nginx = sat.get("nginx proxy", {}).get("cpu_us")
    mini, real = sat.get(f"sidestep (minimal{build})", {}), sat.get(f"sidestep (realistic{build})", {})
    tag = " (compiled)" if build else ""
    add(f"CPU/req, minimal ≤ 2× nginx{tag}", f"{_fmt(mini.get('cpu_us'))} µs", _x_nginx(mini, nginx), 2.0)
    add(f"CPU/req, realistic ≤ 3× nginx{tag}", f"{_fmt(real.get('cpu_us'))} µs", _x_nginx(real, nginx), 3.0)
    add(f"RPS, realistic ≥ 10,000 on one core{tag}", f"{_fmt(real.get('rps'), 0)}", real.get("rps"), 10_000, True)


def _latency_verdicts(r: dict[str, Any], build: str, add: Callable[..., None]) -> None:
    """Added latency, stream TTFB and per-chunk cost, for one build."""
    tag = " (compiled)" if build else ""
    for pct, limit in (("p50", 2.5), ("p99", 3.0)):
        ours = _added(r, f"sidestep (minimal{build})", "1000", pct)
        theirs = _added(r, "nginx proxy", "1000", pct)
        measured = f"{_fmt(ours)} vs {_fmt(theirs)} µs"
        add(f"added {pct} at 1,000 RPS ≤ {limit}× nginx's{tag}", measured, _ratio(ours, theirs), limit)
    ttfb = r.get("ttfb", {})
    ours_t = _minus(ttfb.get(f"sidestep (minimal{build})", {}).get("p50"), ttfb.get("direct", {}).get("p50"))
    theirs_t = _minus(ttfb.get("nginx proxy", {}).get("p50"), ttfb.get("direct", {}).get("p50"))
    measured = f"{_fmt(ours_t)} vs {_fmt(theirs_t)} µs"
    add(f"stream added TTFB ≤ 3× nginx's{tag}", measured, _ratio(ours_t, theirs_t), 3.0)
    chunk = r.get("chunks", {}).get(f"sidestep (minimal{build})", {}).get("cpu_us_per_chunk")
    add(f"CPU per relayed chunk ≤ 10 µs{tag}", f"{_fmt(chunk)} µs", chunk, 10)


def _x_nginx(s: dict[str, Any], nginx: float | None) -> float | None:
    """The median of per-round ratios when the run has them; else the ratio of medians."""
    return s["x_nginx"] if "x_nginx" in s else _ratio(s.get("cpu_us"), nginx)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def render(r: dict[str, Any]) -> str:
    """The results page: saturation, latency, streaming, verdicts, start-up."""
    head = [
        f"Run: {r['when']} · {r['machine']} · mode: {r['mode']} · {r['repeats']} repeat(s) of "
        f"{r['seconds']} s per saturation figure.",
        "",
    ]
    sections = [
        head,
        _saturation(r),
        _latency(r),
        _streaming(r),
        cache_section(r),
        _instructions(r),
        _verdicts(r),
        _startup(r),
    ]
    return "\n".join(line for section in sections for line in section)


def _saturation(r: dict[str, Any]) -> list[str]:
    lines = [
        "| contender | max RPS (median, spread) | CPU µs / request (median, spread) | × nginx CPU (spread) |",
        "|---|---|---|---|",
    ]
    nginx = r["saturation"].get("nginx proxy", {}).get("cpu_us")
    for name, s in r["saturation"].items():
        lines.append(
            f"| {name} | {_fmt(s['rps'], 0)} ({_fmt(s['rps_spread'][0], 0)}–{_fmt(s['rps_spread'][1], 0)}) | "
            f"{_fmt(s['cpu_us'])} ({_fmt(s['cpu_spread'][0])}–{_fmt(s['cpu_spread'][1])}) | "
            f"{_fmt(_x_nginx(s, nginx), 2)}{_spread(s.get('x_nginx_spread'))} |"
        )
    return lines


def cache_section(r: dict[str, Any]) -> list[str]:
    """The cache's cost against the proxied request (the realistic config, the cache off), same run."""
    c = r.get("cache")
    if not c:
        return []
    lines = [
        "",
        "The cache (realistic config with `cache: {}`), sequential requests on one connection:",
        "",
        "| request | CPU µs / request | × proxied CPU | p50 µs | p99 µs | errors |",
        "|---|---|---|---|---|---|",
    ]
    proxied = c["proxied"]["cpu_us"]
    for name in ("proxied", "miss", "hit"):
        row = c[name]
        ratio = row["cpu_us"] / proxied if proxied else float("nan")
        lines.append(
            f"| {name} | {_fmt(row['cpu_us'])} | {_fmt(ratio, 2)} | {_fmt(row['p50'])} | {_fmt(row['p99'])} | "
            f"{row['errors']} |"
        )
    lines += ["", f"A miss adds {_fmt(c['miss_added_p50_us'])} µs at p50 over the proxied request."]
    return lines


def _spread(pair: list[float] | None) -> str:
    return f" ({pair[0]:.2f}–{pair[1]:.2f})" if pair else ""


def _latency(r: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "Added latency (µs) over direct-to-upstream, open loop at a fixed rate:",
        "",
        "| rate (RPS) | contender | p50 | p99 | p99.9 | errors |",
        "|---|---|---|---|---|---|",
    ]
    for rate, per in r["latency"].items():
        for name, lat in per.items():
            if name == "direct":
                values = [lat["p50"], lat["p99"], lat["p99.9"]]
                lines.append(
                    f"| {rate} | direct (absolute) | {' | '.join(_fmt(v) for v in values)} | {lat['errors']} |"
                )
                continue
            added = [_added(r, name, rate, p) for p in ("p50", "p99", "p99.9")]
            lines.append(f"| {rate} | {name} | {' | '.join(_fmt(a) for a in added)} | {lat['errors']} |")
    maxima = r.get("latency_max_rps")
    if maxima:
        found = ", ".join(f"{name} {_fmt(rps, 0)}" for name, rps in maxima.items())
        lines += ["", f"The last rate is 80 % of the slower config's max RPS in that phase's own layout ({found})."]
    return lines


def _streaming(r: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "Streaming: time to first byte (µs, sequential) and relay cost:",
        "",
        "| contender | TTFB p50 | TTFB p99 | CPU µs / chunk | first event of a 200 ms stream (ms) |",
        "|---|---|---|---|---|",
    ]
    for name, t in r.get("ttfb", {}).items():
        c = r.get("chunks", {}).get(name, {})
        lines.append(
            f"| {name} | {_fmt(t['p50'])} | {_fmt(t['p99'])} | {_fmt(c.get('cpu_us_per_chunk'), 2)} | "
            f"{_fmt(c.get('first_event_ms_of_200ms_stream'))} |"
        )
    return lines


def _instructions(r: dict[str, Any]) -> list[str]:
    counts = r.get("instructions")
    if not counts:
        return []
    lines = [
        "",
        "Instructions per request (callgrind, user space; the same for the same code on any VM of this kind):",
        "",
        "| config | chat | stream (8 chunks) |",
        "|---|---|---|",
    ]
    for config, per in counts.items():
        lines.append(f"| sidestep ({config}) | {_fmt(per.get('chat'), 0)} | {_fmt(per.get('stream'), 0)} |")
    for config, per in r.get("instructions_compiled", {}).items():
        lines.append(f"| sidestep ({config}, compiled) | {_fmt(per.get('chat'), 0)} | {_fmt(per.get('stream'), 0)} |")
    return lines


def _verdicts(r: dict[str, Any]) -> list[str]:
    lines = ["", "| target | measured | ratio / value | limit | verdict |", "|---|---|---|---|---|"]
    for target, measured, value, limit, verdict in verdicts(r):
        lines.append(f"| {target} | {measured} | {_fmt(value, 2)} | {_fmt(limit, 1)} | {verdict} |")
    return lines


def _startup(r: dict[str, Any]) -> list[str]:
    imports = ", ".join(f"`{k}` {v * 1000:.0f} ms" for k, v in r.get("import", {}).items())
    cold = _fmt((r.get("cold_start") or 0) * 1000, 0)
    rss = _fmt(r.get("rss_mb"))
    return ["", f"Start-up: {imports}; cold start to first answer {cold} ms; sidestep RSS after the run {rss} MB."]


def summary(r: dict[str, Any]) -> str:
    sat = r["saturation"]
    mini, real, nginx = (sat.get(k, {}) for k in ("sidestep (minimal)", "sidestep (realistic)", "nginx proxy"))
    lite = sat.get("LiteLLM proxy", {}).get("rps")
    text = (
        f"One sidestep process on one core: **{_fmt(mini.get('rps'), 0)} RPS** minimal, "
        f"**{_fmt(real.get('rps'), 0)} RPS** with the realistic config; "
        f"{_fmt(mini.get('cpu_us'))} µs CPU per request = {_fmt(_x_nginx(mini, nginx.get('cpu_us')), 1)}× "
        f"an nginx reverse proxy in the same run"
    )
    if lite:
        text += f"; {_fmt(_ratio(mini.get('rps'), lite), 0)}× LiteLLM's proxy ({_fmt(lite, 0)} RPS)"
    fast = sat.get("sidestep (minimal, compiled)")
    if fast:
        real_c = sat.get("sidestep (realistic, compiled)", {})
        text += (
            f". Compiled with mypyc (`make compile`): **{_fmt(fast.get('rps'), 0)} RPS** minimal, "
            f"**{_fmt(real_c.get('rps'), 0)} RPS** realistic, {_fmt(fast.get('cpu_us'))} µs = "
            f"{_fmt(_x_nginx(fast, nginx.get('cpu_us')), 1)}× nginx"
        )
    return text + f" ({r['when']}, `make bench`; details in [docs/benchmarks.md](docs/benchmarks.md))."


def update_docs(r: dict[str, Any], root: Path) -> None:
    _replace(root / "docs" / "benchmarks.md", START, END, render(r))
    _replace(root / "README.md", SUMMARY_START, SUMMARY_END, summary(r))


def _replace(path: Path, start: str, end: str, body: str) -> None:
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise RuntimeError(f"{path} has no {start} … {end} markers")
    path.write_text(pattern.sub(lambda _: f"{start}\n{body}\n{end}", text))
