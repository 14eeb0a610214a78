"""The request path makes no runtime-protocol `isinstance` check: on Python 3.11 one costs ~7 µs (as much as a
fifth of a whole proxied request), and one slipped in per request once (`ReadsNeeds`, +90k instructions per
realistic request). Optional format abilities on the usual path are read as attributes or found once, when a
route or a relay is built (a client format's conversing side, `Converses`, comes with its endpoint row). Counted
here for a plain chat and a stream, in every client format a gateway with governance, capability limits and both
logs serves, and for a relayed-only API's request, over real HTTP."""

from __future__ import annotations

from typing import Any, Protocol

import httpx
import pytest

from sidestep.testing import running_gateway, running_simulators

_META = type(Protocol)  # typing's protocol metaclass: every runtime-checkable protocol's isinstance goes through it


@pytest.fixture
def protocol_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    checks: list[str] = []
    original = _META.__instancecheck__

    def counted(cls: Any, instance: Any) -> bool:
        checks.append(cls.__name__)
        return bool(original(cls, instance))

    monkeypatch.setattr(_META, "__instancecheck__", counted)
    return checks


REQUESTS = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
    "/v1/messages": {"max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"input": "hi"},
}
# Relayed-only APIs (`formats.passthrough`): their routes know they do not converse, nobody asks per request.
RELAYED = {"/v1/rerank": {"query": "q", "documents": ["a", "b"]}}
# Paths that name their model: their route is built per request, the client format picked by the query (`alt`).
GEMINI = [
    "/v1beta/models/chat:generateContent",
    "/v1beta/models/chat:streamGenerateContent?alt=sse",
    "/v1beta/models/chat:streamGenerateContent",  # Google's streamed JSON array
]
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


async def test_plain_requests_and_streams_make_no_runtime_protocol_check(
    protocol_checks: list[str], tmp_path: Any
) -> None:
    async with running_simulators("sim") as sims:
        config = {
            "server": {"access_log": str(tmp_path / "access.log"), "request_log": str(tmp_path / "requests.log")},
            "governance": {"keys": {"app": {"key": "sk-app", "rpm": 1000, "budget_usd": 100}}},
            "providers": {
                "up": {
                    "type": "vllm",
                    "base_url": f"http://127.0.0.1:{sims['sim'].port}/v1",
                    "api_key": "k",
                    "lacks": {"*": ["vision"]},
                }
            },
            "routes": {"chat": ["up/gpt-sim"]},
        }
        headers = {"authorization": "Bearer sk-app", "anthropic-version": "2023-06-01"}
        async with running_gateway(config) as gw, httpx.AsyncClient(timeout=20) as http:
            for path, body in REQUESTS.items():  # warm-up: whatever is found once is found here
                for stream in (False, True):
                    answer = await http.post(
                        gw.url + path, json={**body, "model": "chat", "stream": stream}, headers=headers
                    )
                    assert answer.status_code == 200, answer.text
            for path, body in RELAYED.items():
                answer = await http.post(gw.url + path, json={**body, "model": "chat"}, headers=headers)
                assert answer.status_code == 200, answer.text
            for path in GEMINI:
                answer = await http.post(gw.url + path, json=GEMINI_BODY, headers=headers)
                assert answer.status_code == 200, answer.text
            protocol_checks.clear()
            for path, body in REQUESTS.items():
                for stream in (False, True):
                    answer = await http.post(
                        gw.url + path, json={**body, "model": "chat", "stream": stream}, headers=headers
                    )
                    assert answer.status_code == 200, answer.text
            for path, body in RELAYED.items():
                answer = await http.post(gw.url + path, json={**body, "model": "chat"}, headers=headers)
                assert answer.status_code == 200, answer.text
                assert "results" in answer.json()  # the upstream's answer, relayed as it came
            for path in GEMINI:
                answer = await http.post(gw.url + path, json=GEMINI_BODY, headers=headers)
                assert answer.status_code == 200, answer.text
    assert protocol_checks == []
