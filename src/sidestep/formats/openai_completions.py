"""OpenAI's legacy completions (`POST /v1/completions`) as one object, `OPENAI_COMPLETIONS`: a client format,
and the format an OpenAI-compatible provider speaks for that operation (its adapter's `formats`).

It is a same-format pass-through: the body goes upstream with only the model rewritten, the answer and the
stream (`text_completion` chunks ending with `data: [DONE]`) come back byte for byte. Only providers that
still serve the API take it (a catalog row's `completions`); every other target is ineligible, so nothing is
translated in practice. The conversions to and from the canonical model exist all the same — a prompt is one
user turn, an answer its text — because the stream reader finds a stream's first content and the usage and
text relayed (what a cut stream is charged), and a kept stream is read back into the answer it amounts to.

Errors are OpenAI's error shape (the chat format's renderers), as the SDK reads them.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from sidestep.core.model import ChatRequest, ChatResponse, Event, Message, TextPart, Usage
from sidestep.errors import BadRequest, SidestepError, UpstreamError
from sidestep.formats.body import decode_body, field, output_limit
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_chat.convert import FINISH_IN, read_usage, usage_out
from sidestep.formats.openai_chat.stream import error_event
from sidestep.formats.request import ParsedRequest, models_of
from sidestep.formats.sse import SSESplitter, sse_data

__all__ = ["OPENAI_COMPLETIONS", "OpenAICompletions"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_PROMPT_RULE = "'prompt' must be a string, an array of strings, an array of tokens or an array of token arrays."
# Fields with a home in the canonical model; the rest ride in `extras` (and back out in `write_request`).
_KNOWN = {"model", "prompt", "max_tokens", "temperature", "top_p", "stop", "stream", "stream_options", "user"}


class OpenAICompletions:
    """`POST /v1/completions`: a client format, and a provider format for that operation."""

    name = "openai-completions"

    # -- what a client sent ------------------------------------------------------------------------------

    def parse_body(self, raw: bytes, operation: str) -> ParsedRequest:
        """The model, `stream` and the prompt's shape; `n`, `echo`, `suffix`, `logprobs` … go upstream as sent."""
        body = decode_body(raw)
        models = models_of(body)
        if "messages" in body:
            raise BadRequest(
                "'messages' is a Chat Completions field; /v1/completions takes 'prompt' (use /v1/chat/completions"
                " for messages).",
                param="messages",
            )
        if "prompt" not in body:
            raise BadRequest("'prompt' is required: " + _PROMPT_RULE[9:], param="prompt")
        _check_prompt(field(body, "prompt"))
        stream = field(body, "stream", False)
        if not isinstance(stream, bool):
            raise BadRequest("'stream' must be a boolean.", param="stream")
        return ParsedRequest(body, models, stream)

    def include_usage(self, body: dict[str, Any]) -> bool:
        return OPENAI_CHAT.include_usage(body)

    def asking_usage(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """As chat: the stream reports usage only when `stream_options.include_usage` asks for it."""
        return OPENAI_CHAT.asking_usage(body)

    def end_user(self, body: dict[str, Any]) -> str | None:
        return OPENAI_CHAT.end_user(body)

    def output_limit(self, body: dict[str, Any]) -> int | None:
        return output_limit(body, "max_tokens")

    # -- the canonical model -----------------------------------------------------------------------------

    def read_request(self, body: dict[str, Any]) -> ChatRequest:
        """One prompt as one user turn; several prompts, or tokens, have no canonical form (a 400)."""
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest("Only a single text prompt can be served by another API.", param="prompt")
        stop = body.get("stop")
        options = body.get("stream_options")
        return ChatRequest(
            model=str(body.get("model") or ""),
            messages=[Message(role="user", parts=[TextPart(text=prompt)])],
            max_tokens=_int(body.get("max_tokens")),
            temperature=_number(body.get("temperature")),
            top_p=_number(body.get("top_p")),
            stop=[stop] if isinstance(stop, str) else [s for s in stop or () if isinstance(s, str)],
            stream=body.get("stream") is True,
            include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
            user=body.get("user") if isinstance(body.get("user"), str) else None,
            extras={k: v for k, v in body.items() if k not in _KNOWN},
        )

    def write_request(self, request: ChatRequest) -> dict[str, Any]:
        """The conversation as one prompt: the system text, then each turn's text, blank lines between."""
        texts = [p.text for p in request.system] + [m.text for m in request.messages if m.text]
        body: dict[str, Any] = {"model": request.model, "prompt": "\n\n".join(texts)}
        limits = {"max_tokens": request.max_tokens, "temperature": request.temperature, "top_p": request.top_p}
        body.update({name: value for name, value in limits.items() if value is not None})
        if request.stop:
            body["stop"] = request.stop
        if request.user:
            body["user"] = request.user
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def read_response(self, raw: bytes) -> ChatResponse:
        data = _decode(raw)
        choices = data.get("choices") or [{}]
        first = choices[0] if isinstance(choices[0], dict) else {}
        return ChatResponse(
            id=str(data.get("id") or ""),
            model=str(data.get("model") or ""),
            parts=[TextPart(text=str(first.get("text") or ""))],
            finish=FINISH_IN.get(str(first.get("finish_reason")), "stop"),
            usage=read_usage(data.get("usage")),
            created=int(data.get("created") or 0),
        )

    def write_response(self, response: ChatResponse) -> bytes:
        text = "".join(p.text for p in response.parts if isinstance(p, TextPart))
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": _finish(response.finish)}
        return _encode(
            {
                "id": _completion_id(response.id),
                "object": "text_completion",
                "created": response.created or int(time.time()),
                "model": response.model,
                "choices": [choice],
                "usage": usage_out(response.usage),
            }
        )

    def continued(self, body: dict[str, Any], partial: str) -> dict[str, Any] | None:
        """A completion goes on from where it stopped by being asked to complete the prompt plus what was
        already sent (`mid_stream: continue`); several prompts, token prompts or `echo` cannot (None)."""
        prompt = field(body, "prompt")
        if not isinstance(prompt, str) or field(body, "echo") is True or field(body, "n", 1) != 1:
            return None
        return {**body, "prompt": prompt + partial}

    # -- streams -----------------------------------------------------------------------------------------

    def stream_reader(self) -> StreamReader:
        return StreamReader()

    def stream_writer(self, model: str, include_usage: bool) -> StreamWriter:
        return StreamWriter(model, include_usage)

    def stream_complete(self, tail: bytes) -> bool:
        return b"[DONE]" in tail

    def stream_usage(self, data: dict[str, Any]) -> tuple[Usage | None, bool]:
        """The last chunk's usage; a chunk with no choices carries nothing else (the gateway may drop it)."""
        return OPENAI_CHAT.stream_usage(data)

    def stream_error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return error_event(message, "server_error", code)

    # -- errors: OpenAI's shape --------------------------------------------------------------------------

    def error_body(self, exc: SidestepError) -> bytes:
        return OPENAI_CHAT.error_body(exc)

    def upstream_error_body(self, error: UpstreamError) -> bytes:
        return OPENAI_CHAT.upstream_error_body(error)

    def server_error_body(self, status: int, message: str) -> bytes:
        return OPENAI_CHAT.server_error_body(status, message)


class StreamReader:
    """`text_completion` chunks in, canonical events out: every choice's text (`n` > 1 included), the finish,
    the usage chunk, an in-stream error, and `[DONE]`."""

    def __init__(self) -> None:
        self._splitter = SSESplitter()
        self._started = False

    def feed(self, piece: bytes) -> list[Event]:
        events: list[Event] = []
        for data in self._splitter.feed(piece):
            if data == b"[DONE]":
                events.append(Event(kind="end"))
                continue
            chunk = _decode(data)
            if not isinstance(chunk, dict):
                continue
            error = chunk.get("error")
            if error:
                error = error if isinstance(error, dict) else {"message": str(error)}
                events.append(Event(kind="error", text=str(error.get("message", "")), error_type=error.get("type")))
                continue
            if not self._started:
                self._started = True
                events.append(Event(kind="start", id=str(chunk.get("id", "")), model=str(chunk.get("model", ""))))
            choices = chunk.get("choices")
            for choice in choices if isinstance(choices, list) else ():
                if not isinstance(choice, dict):
                    continue
                text = choice.get("text")
                if isinstance(text, str) and text:
                    events.append(Event(kind="text", text=text))
                if choice.get("finish_reason"):
                    events.append(Event(kind="finish", finish=FINISH_IN.get(str(choice["finish_reason"]), "stop")))
            if isinstance(chunk.get("usage"), dict):
                events.append(Event(kind="usage", usage=read_usage(chunk["usage"])))
        return events


class StreamWriter:
    """Canonical events in, `text_completion` chunks out (text only: completions have no tool calls)."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = "cmpl-sidestep"
        self._created = int(time.time())
        self._started = False
        self._ended = False

    def write(self, event: Event) -> bytes:
        kind = event.kind
        if kind == "start" and not self._started:  # a mid-stream switch keeps the client's stream id
            self._started = True
            self._id = _completion_id(event.id) if event.id else self._id
            self._model = event.model or self._model
        elif kind == "text" and event.text:
            return self._chunk([{"text": event.text, "index": 0, "logprobs": None, "finish_reason": None}])
        elif kind == "finish" and event.finish is not None:
            finish = _finish(event.finish)
            return self._chunk([{"text": "", "index": 0, "logprobs": None, "finish_reason": finish}])
        elif kind == "usage" and event.usage is not None and self._include_usage:
            return self._chunk([], usage_out(event.usage))
        elif kind == "error":
            return self.error(event.text, event.error_type or "server_error")
        elif kind == "end" and not self._ended:
            self._ended = True
            return b"data: [DONE]\n\n"
        return b""

    def error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return error_event(message, "server_error", code)

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        payload: dict[str, Any] = {
            "id": self._id,
            "object": "text_completion",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
        if usage is not None:
            payload["usage"] = usage
        return sse_data(_encode(payload))


def _check_prompt(prompt: Any) -> None:
    """A string, or a non-empty array of strings, of token ids, or of non-empty token-id arrays."""
    if isinstance(prompt, str):
        return
    if not isinstance(prompt, list) or not prompt:
        raise BadRequest(_PROMPT_RULE, param="prompt")
    if all(isinstance(item, str) for item in prompt) or all(_is_token(item) for item in prompt):
        return
    if all(isinstance(item, list) and item and all(_is_token(t) for t in item) for item in prompt):
        return
    raise BadRequest(_PROMPT_RULE, param="prompt")


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _finish(finish: str) -> str:
    """Completions finish with `stop`, `length` or `content_filter`."""
    return finish if finish in ("length", "content_filter") else "stop"


def _completion_id(ident: str) -> str:
    return ident if ident.startswith("cmpl") else f"cmpl-{ident}"


OPENAI_COMPLETIONS = OpenAICompletions()
