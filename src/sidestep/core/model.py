"""The canonical chat model: what every client format and every provider wire format maps to and from.

Same-format traffic never builds these (the fast path forwards bytes); they exist for cross-format pairs
such as an Anthropic-SDK client served by an OpenAI-compatible provider. Fields a format has and the
canonical model does not are kept in `extras` so a round trip through the same format loses nothing.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "Event",
    "ImagePart",
    "Message",
    "Part",
    "TextPart",
    "ThinkingPart",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "ToolResultPart",
    "Usage",
    "merge_usage",
]

Role = Literal["user", "assistant", "tool"]
Finish = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class TextPart(msgspec.Struct, tag="text", kw_only=True):
    text: str


class ImagePart(msgspec.Struct, tag="image", kw_only=True):
    """An image by URL, or inline as base64 `data` with its `media_type`."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None

    @property
    def data_url(self) -> str:
        return self.url if self.url is not None else f"data:{self.media_type};base64,{self.data}"


class ThinkingPart(msgspec.Struct, tag="thinking", kw_only=True):
    text: str
    signature: str | None = None  # Anthropic's opaque signature; needed to send the block back


class ToolResultPart(msgspec.Struct, tag="tool_result", kw_only=True):
    tool_call_id: str
    content: list[TextPart | ImagePart]
    is_error: bool = False


Part = TextPart | ImagePart | ThinkingPart | ToolResultPart


class ToolCall(msgspec.Struct, kw_only=True):
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it


class Message(msgspec.Struct, kw_only=True):
    role: Role
    parts: list[Part] = msgspec.field(default_factory=list)
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


class Tool(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolChoice(msgspec.Struct, kw_only=True):
    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None  # mode "tool": this one
    parallel: bool | None = None


class ChatRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[Message]
    system: list[TextPart] = msgspec.field(default_factory=list)
    tools: list[Tool] = msgspec.field(default_factory=list)
    tool_choice: ToolChoice | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = msgspec.field(default_factory=list)
    stream: bool = False
    include_usage: bool = False  # OpenAI stream_options.include_usage
    json_mode: Literal["object", "schema"] | None = None
    json_schema: dict[str, Any] | None = None  # {"name", "schema", "strict"} for json_mode "schema"
    thinking_budget: int | None = None  # reasoning tokens asked for; None: the provider's default
    reasoning_effort: str | None = None
    user: str | None = None
    extras: dict[str, Any] = msgspec.field(default_factory=dict)  # client-format fields with no canonical home

    @property
    def needs(self) -> frozenset[str]:
        """Capabilities a target must have to serve this request."""
        found = set()
        if self.tools:
            found.add("tools")
        if self.json_mode == "schema":
            found.add("json_schema")
        if any(isinstance(p, ImagePart) for m in self.messages for p in m.parts):
            found.add("vision")
        return frozenset(found)


class Usage(msgspec.Struct, kw_only=True):
    input: int = 0
    output: int = 0
    cached: int = 0  # input tokens read from the provider's prompt cache
    cache_write: int = 0
    reasoning: int = 0  # output tokens spent thinking
    units: float = 0.0  # billed units of a relayed-only API: images, rerank search units, audio seconds


def merge_usage(old: Usage | None, new: Usage) -> Usage:
    """Streams report usage in parts (Anthropic: input at the start, output at the end): keep the most of each."""
    if old is None:
        return new
    return Usage(
        input=max(old.input, new.input),
        output=max(old.output, new.output),
        cached=max(old.cached, new.cached),
        cache_write=max(old.cache_write, new.cache_write),
        reasoning=max(old.reasoning, new.reasoning),
        units=max(old.units, new.units),
    )


class ChatResponse(msgspec.Struct, kw_only=True):
    id: str
    model: str
    parts: list[TextPart | ThinkingPart] = msgspec.field(default_factory=list)
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    finish: Finish = "stop"
    stop_sequence: str | None = None
    usage: Usage = msgspec.field(default_factory=Usage)
    created: int = 0


class Event(msgspec.Struct, kw_only=True):
    """One step of a streamed answer.

    kind: `start` (id, model), `text` (text), `thinking` (text, or signature), `tool_start` (index, id,
    name), `tool_args` (index, text: a JSON fragment), `finish` (finish, stop_sequence), `usage` (usage),
    `error` (text: message, error_type), `end` (the stream is complete).
    """

    kind: Literal["start", "text", "thinking", "tool_start", "tool_args", "finish", "usage", "error", "end"]
    text: str = ""
    index: int = 0
    id: str = ""
    name: str = ""
    model: str = ""
    signature: str | None = None
    finish: Finish | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None
    error_type: str | None = None

    @property
    def is_content(self) -> bool:
        """True for what a client would see as the answer (text, thinking, a tool call, the finish)."""
        return self.kind in ("text", "thinking", "tool_start", "tool_args", "finish")
