"""Config loading: valid files build the right model; every mistake names file, key path and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidestep.config.load import config_from_env, load_config, parse_config
from sidestep.config.model import FallbackNode, LoadBalanceNode, TargetNode
from sidestep.errors import ConfigError

GOOD = """
server: {port: 9999, request_timeout: 30}
providers:
  openai:
    api_key: env:OPENAI_KEY
    models: [gpt-4o-mini]
  backup:
    type: groq
    base_url: http://127.0.0.1:1/v1/
    keys:
      - {value: k1, weight: 3}
      - {value: env:GROQ_B, weight: 1, models: [llama]}
  local: {type: ollama}
routes:
  smart:
    - openai/gpt-4o-mini
    - loadbalance:
        - {target: backup/llama, weight: 2}
        - local/qwen
  simple: {target: openai/gpt-4o}
"""
ENV = {"OPENAI_KEY": "sk-test-1", "GROQ_B": "gsk-2"}


def test_valid_config_builds_the_model(tmp_path: Path) -> None:
    path = tmp_path / "sidestep.yaml"
    path.write_text(GOOD)
    config = load_config(path, env=ENV)
    assert config.server.port == 9999
    assert config.server.request_timeout == 30.0
    backup = config.providers["backup"]
    assert backup.type == "groq"
    assert backup.base_url == "http://127.0.0.1:1/v1"
    assert [k.weight for k in backup.keys] == [3.0, 1.0]
    assert backup.keys[1].models == frozenset({"llama"})
    assert backup.keys[1].secret is not None and backup.keys[1].secret.reveal() == "gsk-2"
    assert config.providers["local"].base_url == "http://localhost:11434/v1"
    smart = config.routes["smart"]
    assert isinstance(smart, FallbackNode)
    assert smart.children[0] == TargetNode("openai", "gpt-4o-mini")
    group = smart.children[1]
    assert isinstance(group, LoadBalanceNode)
    assert group.children == (TargetNode("backup", "llama", 2.0), TargetNode("local", "qwen"))
    assert config.routes["simple"] == TargetNode("openai", "gpt-4o")


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    config = parse_config({"providers": {"openai": {"api_key": "sk-very-secret"}}}, env={})
    assert "sk-very-secret" not in repr(config)


@pytest.mark.parametrize(
    ("data", "path", "reason"),
    [
        ({"providers": {"openai": {"api_key": "env:MISSING"}}}, "providers.openai.api_key", "MISSING is not set"),
        ({"providers": {"gorq": {"api_key": "x"}}}, "providers.gorq", "unknown provider type 'gorq'"),
        ({"providers": {"openai": {"api_key": "x", "bse_url": "y"}}}, "providers.openai.bse_url", "unknown key"),
        ({"providers": {"openai": {"api_key": "x", "base_url": "ftp://x"}}}, "providers.openai.base_url", "http://"),
        ({"providers": {"openai": {}}}, "providers.openai", "no API key"),
        (
            {"providers": {"openai": {"keys": [{"value": "a", "weight": -1}]}}},
            "providers.openai.keys[0].weight",
            "positive",
        ),
        ({"providers": {"openai": {"keys": []}}}, "providers.openai.keys", "at least one key"),
        ({"server": {"port": "80"}}, "server.port", "integer"),
        ({"server": {"port": 70000}}, "server.port", "between 0 and 65535"),
        ({"routes": {"r": ["nope/model"]}}, "routes.r[0]", "unknown provider 'nope'"),
        ({"routes": {"r": ["no-slash"]}, "providers": {"openai": {"api_key": "x"}}}, "routes.r[0]", "provider/model"),
        ({"routes": {"r": {"fallback": []}}}, "routes.r.fallback", "at least one target"),
        ({"routes": {"r": {"fallback": ["a/b"], "target": "a/b"}}}, "routes.r", "exactly one of"),
        ({"routes": {"openai": "openai/x"}, "providers": {"openai": {"api_key": "x"}}}, "routes.openai", "clashes"),
        ({"extra": 1}, "extra", "unknown key"),
        ({"providers": {"azure": {"api_key": "x"}}}, "providers.azure.base_url", "no default base_url"),
        (
            {
                "routes": {"r": {"target": "o/m", "mid_stream": "retry"}},
                "providers": {"o": {"type": "openai", "api_key": "x"}},
            },
            "routes.r.mid_stream",
            "'fail' or 'continue'",
        ),
        (
            {
                "routes": {"r": {"loadbalance": ["o/m"], "strategy": "fastest"}},
                "providers": {"o": {"type": "openai", "api_key": "x"}},
            },
            "routes.r.strategy",
            "unknown strategy",
        ),
        (
            {
                "routes": {"r": {"target": "o/m", "strategy": "round_robin"}},
                "providers": {"o": {"type": "openai", "api_key": "x"}},
            },
            "routes.r.strategy",
            "only a `loadbalance`",
        ),
        (
            {
                "routes": {"r": {"target": "o/m", "retry": {"on": [200]}}},
                "providers": {"o": {"type": "openai", "api_key": "x"}},
            },
            "routes.r.retry.on[0]",
            "between 400 and 599",
        ),
        (
            {"routes": {"r": {"target": "o/m", "hedge": {}}}, "providers": {"o": {"type": "openai", "api_key": "x"}}},
            "routes.r.hedge",
            "needs `delay`",
        ),
        (
            {"providers": {"openai": {"api_key": "x", "timeouts": {"read": 1, "idle": 2}}}},
            "providers.openai.timeouts",
            "another name",
        ),
        ({"server": {"sse_keepalive": -1}}, "server.sse_keepalive", ">= 0"),
    ],
)
def test_config_errors_name_the_key_path(data: object, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="my.yaml", env={})
    message = str(info.value)
    assert message.startswith(f"my.yaml: {path}: "), message
    assert reason in message


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("providers:\n  openai: {api_key: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML: line \d+, column \d+"):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "absent.yaml")


def test_env_only_config_registers_providers_from_their_variables() -> None:
    config = config_from_env({"OPENAI_API_KEY": "sk-1", "GROQ_API_KEY": "g-1", "OLLAMA_BASE_URL": "http://h:1/v1"})
    assert set(config.providers) == {"openai", "groq", "ollama"}
    assert config.providers["ollama"].base_url == "http://h:1/v1"
    key = config.providers["openai"].keys[0]
    assert key.secret is not None and key.secret.reveal() == "sk-1"
    assert config_from_env({}).providers == {}
    azure = {"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com"}
    assert config_from_env(azure).providers == {}  # an endpoint without a key cannot be used: not registered
    assert set(config_from_env({**azure, "AZURE_OPENAI_API_KEY": "k"}).providers) == {"azure"}


def test_fallbacks_on_is_validated() -> None:
    base = {"providers": {"p": {"type": "openai", "api_key": "k"}}}
    good = parse_config({**base, "routes": {"r": {"target": "p/m", "fallbacks_on": {"context_window": ["p/big"]}}}})
    assert good.routes["r"].policy.fallbacks_for("context_window") == ("p/big",)
    assert good.routes["r"].policy.fallbacks_for(None) == ()
    bad = {**base, "routes": {"r": {"target": "p/m", "fallbacks_on": {"context": ["p/big"]}}}}
    expected = r"routes.r.fallbacks_on.context: unknown key — did you mean 'context_window'\? \(allowed: content_policy"
    with pytest.raises(ConfigError, match=expected):
        parse_config(bad)


def test_serves_names_relayed_operations_of_openai_compatible_servers() -> None:
    config = parse_config(
        {"providers": {"tei": {"type": "vllm", "base_url": "http://tei:80/v1", "serves": ["rerank"]}}}
    )
    assert config.providers["tei"].serves == frozenset({"rerank"})
    assert parse_config({"providers": {"openai": {"api_key": "k"}}}).providers["openai"].serves is None
    with pytest.raises(ConfigError, match=r"providers\.o\.serves: unknown operation 'reranks' — did you mean 'rerank'"):
        parse_config({"providers": {"o": {"type": "openai", "api_key": "k", "serves": ["reranks"]}}})
    with pytest.raises(ConfigError, match="only OpenAI-compatible providers take it"):
        parse_config({"providers": {"cohere": {"api_key": "k", "serves": ["rerank"]}}})
    with pytest.raises(ConfigError, match=r"providers\.o\.serves"):
        parse_config({"providers": {"o": {"type": "openai", "api_key": "k", "serves": "rerank\r\n"}}})
    with pytest.raises(ConfigError, match=r"pricing\.x: a price needs `input`"):
        parse_config({"governance": {"pricing": {"x": {"output": 1}}}})
    with pytest.raises(ConfigError, match=r"pricing\.x\.per_unit"):
        parse_config({"governance": {"pricing": {"x": {"per_unit": -1}}}})
    priced = parse_config({"governance": {"pricing": {"x": {"per_unit": 0.04}}}}).governance.pricing["x"]
    assert (priced.input, priced.output, priced.per_unit) == (0.0, 0.0, 0.04)
