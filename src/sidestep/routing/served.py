"""What a successful attempt hands back to the gateway, and how a stream's first content is awaited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from sidestep.config.model import KeyConfig, NodePolicy, TargetNode
from sidestep.dialects.openai import has_content
from sidestep.dialects.sse import SSESplitter
from sidestep.errors import Attempt, UpstreamConnectionError, UpstreamError
from sidestep.transport.types import UpstreamResponse

__all__ = ["Served", "prefetch"]

_decode = msgspec.json.Decoder().decode


@dataclass(slots=True)
class Served:
    target: TargetNode
    key: KeyConfig
    response: UpstreamResponse
    attempts: list[Attempt]
    policy: NodePolicy
    fallback_index: int = 0  # position of the serving target in the plan
    retries: int = 0  # tries of the serving target before the one that served
    body: bytes = b""
    held: list[bytes] = field(default_factory=list)  # stream bytes read while waiting for content
    rest: AsyncIterator[bytes] | None = None  # the remainder of the stream
    finished: bool = False  # the stream ended ([DONE]) while held
    on_close: Callable[[], None] | None = None  # bookkeeping when the response is done with
    usage: Any = None  # token usage read from a non-stream answer, when the provider reports it

    async def aclose(self) -> None:
        await self.response.aclose()
        if self.on_close is not None:
            callback, self.on_close = self.on_close, None
            callback()


async def prefetch(served: Served) -> None:
    """Read the stream until its first content event; raise if it fails or ends before any content."""
    rest = served.response.aiter_bytes()
    splitter = SSESplitter()
    label = served.target.label
    async for piece in rest:
        served.held.append(piece)
        for data in splitter.feed(piece):
            if data == b"[DONE]":
                served.finished = True
                return
            try:
                chunk = _decode(data)
            except msgspec.DecodeError as exc:
                raise UpstreamError(f"malformed stream event from {label}", status=502) from exc
            if isinstance(chunk, dict) and chunk.get("error"):
                raise UpstreamError(f"{label} sent an error event: {_message(chunk)}", status=502)
            if isinstance(chunk, dict) and has_content(chunk):
                served.rest = rest
                return
    raise UpstreamConnectionError(f"{label} ended the stream before any content")


def _message(chunk: dict[str, Any]) -> str:
    error = chunk.get("error")
    if isinstance(error, dict):
        return str(error.get("message", ""))[:200]
    return str(error)[:200]
