"""Shared by the simulator's native-dialect tests: requests built by hand, responses read back."""

from __future__ import annotations

from typing import Any

import msgspec
import pydantic
from anthropic.types import (
    Message,
    MessageParam,
    RawMessageStreamEvent,
    TextBlock,
    ToolParam,
    ToolUseBlock,
)

from sidestep.plugins.governance import Governance
from sidestep.server.types import Request, Response, StreamingResponse
from sidestep.sim import Simulator

__all__ = [
    "ANTHROPIC",
    "CONTENTS",
    "GEMINI",
    "HELLO",
    "STREAM_EVENT",
    "WEATHER",
    "ask",
    "claude",
    "collect",
    "decode",
    "gemini",
    "gemini_chunks",
    "post",
    "sim",
    "sse",
    "text",
    "tool_use",
]

ANTHROPIC = {"anthropic-version": "2023-06-01", "x-api-key": "key"}
GEMINI = {"x-goog-api-key": "key"}
HELLO: list[MessageParam] = [{"role": "user", "content": "hello simulator"}]
CONTENTS = [{"role": "user", "parts": [{"text": "hello simulator"}]}]
WEATHER: ToolParam = {
    "name": "weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}},
}
STREAM_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)


MSG = [{"role": "user", "content": "Tell me about failover"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def text(message: Message, index: int = 0) -> str:
    block = message.content[index]
    assert isinstance(block, TextBlock)
    return block.text


def tool_use(message: Message, index: int = 0) -> ToolUseBlock:
    block = message.content[index]
    assert isinstance(block, ToolUseBlock)
    return block


def post(path: str, body: dict[str, Any], headers: dict[str, str], query: str = "") -> Request:
    return Request("POST", path, query, dict(headers), msgspec.json.encode(body))


def claude(body: dict[str, Any], headers: dict[str, str] | None = None) -> Request:
    """An Anthropic request: defaults overridden by `body` (a None value removes the field)."""
    merged = {"model": "claude-sim", "max_tokens": 256, "messages": HELLO, **body}
    return post("/v1/messages", {k: v for k, v in merged.items() if v is not None}, {**ANTHROPIC, **(headers or {})})


def gemini(body: dict[str, Any], model: str = "gemini-sim", *, stream: bool = False, query: str = "") -> Request:
    method = "streamGenerateContent" if stream else "generateContent"
    path = f"/v1beta/models/{model}:{method}"
    return post(path, {"contents": CONTENTS, **body}, GEMINI, query or ("alt=sse" if stream else ""))


async def collect(response: Response | StreamingResponse) -> bytes:
    if isinstance(response, Response):
        return response.body
    return b"".join([piece async for piece in response.body])


def sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Anthropic's named events: (event name, data)."""
    frames = [frame.split("\n") for frame in raw.decode().split("\n\n") if frame]
    return [
        (lines[0].removeprefix("event: "), msgspec.json.decode(lines[1].removeprefix("data: "))) for lines in frames
    ]


def gemini_chunks(raw: bytes) -> list[dict[str, Any]]:
    assert raw.endswith(b"\r\n\r\n")
    return [msgspec.json.decode(frame.removeprefix(b"data: ")) for frame in raw.split(b"\r\n\r\n") if frame]


def decode(response: Response | StreamingResponse) -> Any:
    assert isinstance(response, Response)
    return msgspec.json.decode(response.body)


def sim() -> Simulator:
    return Simulator(name="native", api_keys=["key"])


async def ask(simulator: Simulator, body: dict[str, Any], headers: dict[str, str] | None = None) -> Message:
    """One non-streaming Anthropic call, validated as the SDK's `Message`."""
    return Message.model_validate(decode(await simulator.handle(claude(body, headers))))


async def stream_with_both_sdks(
    openai_sdk: Any, anthropic_sdk: Any, messages: list[Any]
) -> tuple[list[Any], list[str], Any]:
    """One streamed answer through each official SDK: OpenAI's chunks (with usage), Anthropic's event
    types and its final message."""
    stream = await openai_sdk.chat.completions.create(
        model="chat", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    async with anthropic_sdk.messages.stream(model="chat", max_tokens=100, messages=messages) as events:
        kinds = [event.type async for event in events]
        final = await events.get_final_message()
    return chunks, kinds, final


def spent_by(gw: Any, scope: str) -> float:
    """What a key, team or customer (`key:alice`) has spent in its current budget period."""
    governance = gw.gateway.plugin("governance")
    assert isinstance(governance, Governance)
    return next(spent for ident, _, spent, _ in governance.budgets() if ident == scope)
