"""The Bedrock Converse format as one object, `BEDROCK_CONVERSE`: a provider format (the Bedrock adapter speaks
it) and a client format (boto3's `bedrock-runtime` client pointed at the gateway: `/model/{modelId}/converse` and
`/converse-stream`; InvokeModel's `/invoke` and `/invoke-with-response-stream` are `invoke.BEDROCK_INVOKE`'s).

What a client sent is checked by Converse's own rules before routing (`check_request`); errors are Bedrock's:
a `{"message": …}` body and an `x-amzn-errortype` header naming the exception botocore raises
(`ValidationException` for a 400, `ThrottlingException` for a 429 …: `error_headers`). Streams are AWS
event-stream frames (`eventstream`), not SSE: the format is `FramedStreams`, so its streams carry no comments
and are always re-framed event by event. What Converse shares with InvokeModel as a client format (the frames'
media type, errors, the output limit) is `BedrockClient`; `BedrockConverse` adds the canonical model.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidestep.core.format import Reader
from sidestep.core.model import ChatRequest, ChatResponse, Usage
from sidestep.errors import BadRequest, NotFound, SidestepError, UpstreamError
from sidestep.formats.bedrock_converse import convert
from sidestep.formats.bedrock_converse.eventstream import EXCEPTIONS, StreamReader, StreamWriter, exception_frame
from sidestep.formats.body import decode_body, field, limit_of, output_limit
from sidestep.formats.request import ParsedRequest

__all__ = ["BEDROCK_CONVERSE", "ERROR_TYPES", "BedrockClient", "BedrockConverse", "check_request", "error_payload"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
# Status → the exception botocore raises for it (the header's value; its `:…` suffix is AWS's habit).
ERROR_TYPES = {
    400: "ValidationException",
    401: "AccessDeniedException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    405: "ValidationException",
    408: "ModelTimeoutException",
    413: "ValidationException",
    422: "ValidationException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    431: "ValidationException",
    500: "InternalServerException",
    502: "ServiceUnavailableException",
    503: "ServiceUnavailableException",
    504: "ModelTimeoutException",
}
_OPERATIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream")
_ROLES = ("user", "assistant")


class BedrockClient:
    """What boto3's `bedrock-runtime` APIs share as client formats (Converse's and InvokeModel's): AWS
    event-stream frames (`FramedStreams`), Bedrock's errors and in-stream exceptions, the output limit. A
    `formats.base.ClientFormat` without the canonical model: `BedrockConverse` adds it, `invoke.BedrockInvoke`
    (the model's own bodies, relayed) has none."""

    stream_media_type = "application/vnd.amazon.eventstream"  # `FramedStreams`

    def end_user(self, body: dict[str, Any]) -> str | None:
        return None

    def output_limit(self, body: dict[str, Any]) -> int | None:
        """Converse's `inferenceConfig.maxTokens`; an InvokeModel body (the model's own, which has no
        `inferenceConfig`) is read for `max_tokens`, as Anthropic's and Mistral's models on Bedrock name it."""
        if "inferenceConfig" not in body:
            return output_limit(body, "max_tokens")
        config = field(body, "inferenceConfig")
        return limit_of(config.get("maxTokens")) if isinstance(config, dict) else None

    def stream_error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return exception_frame(EXCEPTIONS.get(code, "modelStreamErrorException"), message)

    # -- errors --------------------------------------------------------------------------------------------

    def error_body(self, exc: SidestepError) -> bytes:
        return error_payload(exc.message)

    def error_headers(self, status: int) -> list[tuple[str, str]]:
        """`NamesErrors`: the header botocore reads an error's code from."""
        kind = ERROR_TYPES.get(status, "InternalServerException" if status >= 500 else "ValidationException")
        return [("x-amzn-errortype", f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/")]

    def upstream_error_body(self, error: UpstreamError) -> bytes:
        """A Bedrock error body (`{"message": …}`) passes through; any other shape is rewrapped."""
        try:
            data = _decode(error.body) if error.body else None
        except msgspec.DecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str) and "error" not in data:
            return error.body
        return error_payload(error.message)

    def server_error_body(self, status: int, message: str) -> bytes:
        return error_payload(message)

    def refuse_path(self, path: str, method: str) -> SidestepError | None:
        """`RefusesPaths`: an operation under `/model/{modelId}/` that is not served, named as such."""
        operation = path.rpartition("/")[2][:64]
        served = ", ".join(_OPERATIONS)
        return NotFound(f"Unknown operation {operation!r} under /model/{{modelId}}/; served: {served}.")


class BedrockConverse(BedrockClient):
    """`/model/{modelId}/converse` and `/converse-stream` (AWS event-stream frames): a client format and a
    provider format."""

    name = "bedrock"

    # -- what a client sent ------------------------------------------------------------------------------

    def parse_body(self, raw: bytes, operation: str) -> ParsedRequest:
        """The model is the path's (the gateway sets it), and so is whether it streams."""
        body = decode_body(raw)
        check_request(body)
        return ParsedRequest(body, [], False)

    def include_usage(self, body: dict[str, Any]) -> bool:
        return True  # ConverseStream always ends with its usage (`metadata`)

    def asking_usage(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return None

    # -- the canonical model -----------------------------------------------------------------------------

    def read_request(self, body: dict[str, Any]) -> ChatRequest:
        return convert.read_request(body)

    def write_request(self, request: ChatRequest) -> dict[str, Any]:
        return convert.write_request(request)

    def read_response(self, raw: bytes) -> ChatResponse:
        return convert.read_response(raw)

    def write_response(self, response: ChatResponse) -> bytes:
        return convert.write_response(response)

    # -- streams -----------------------------------------------------------------------------------------

    def stream_reader(self) -> Reader:
        return StreamReader()

    def stream_writer(self, model: str, include_usage: bool) -> StreamWriter:
        return StreamWriter()

    def stream_complete(self, tail: bytes) -> bool:
        """A Bedrock stream is never relayed as bytes (`FramedStreams`: the reader's `metadata` ends it); were
        it, its last frame is `metadata`, whose payload ends with its metrics."""
        return b"latencyMs" in tail

    def stream_usage(self, data: dict[str, Any]) -> tuple[Usage | None, bool]:
        usage = data.get("usage")
        return (convert.read_usage(usage) if isinstance(usage, dict) else None), False


def error_payload(message: str) -> bytes:
    return _encode({"message": message})


# -- Converse's own rules, checked before routing -------------------------------------------------------------


def check_request(body: dict[str, Any]) -> None:
    """Raise a 400 (`ValidationException`) for a body Bedrock would refuse, naming the field."""
    messages = field(body, "messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: at least one message is required (a non-empty array).", param="messages")
    for index, message in enumerate(messages):
        _check_message(message, index)
    system = field(body, "system")
    if system is not None and not (isinstance(system, list) and all(isinstance(b, dict) for b in system)):
        raise BadRequest("system: must be an array of content blocks.", param="system")
    _check_config(field(body, "inferenceConfig"))
    _check_tools(field(body, "toolConfig"))
    extra = field(body, "additionalModelRequestFields")
    if extra is not None and not isinstance(extra, dict):
        raise BadRequest("additionalModelRequestFields: must be an object.", param="additionalModelRequestFields")


def _check_message(message: Any, index: int) -> None:
    where = f"messages.{index}"
    if not isinstance(message, dict) or message.get("role") not in _ROLES:
        raise BadRequest(f"{where}.role: must be one of user, assistant.", param=where)
    content = message.get("content")
    if not isinstance(content, list) or not content:
        raise BadRequest(f"{where}.content: must be a non-empty array of content blocks.", param=where)
    for at, block in enumerate(content):
        if not isinstance(block, dict) or not block:
            raise BadRequest(f"{where}.content.{at}: must be a content block (an object).", param=where)
        if "text" in block and not isinstance(block["text"], str):
            raise BadRequest(f"{where}.content.{at}.text: must be a string.", param=where)
        for name in ("toolUse", "toolResult", "image", "reasoningContent"):
            if name in block and not isinstance(block[name], dict):
                raise BadRequest(f"{where}.content.{at}.{name}: must be an object.", param=where)


def _check_config(config: Any) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise BadRequest("inferenceConfig: must be an object.", param="inferenceConfig")
    limit = config.get("maxTokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BadRequest("inferenceConfig.maxTokens: must be an integer >= 1.", param="inferenceConfig.maxTokens")
    for name in ("temperature", "topP"):
        value = config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise BadRequest(f"inferenceConfig.{name}: must be a number >= 0.", param=f"inferenceConfig.{name}")
    stops = config.get("stopSequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise BadRequest("inferenceConfig.stopSequences: must be an array of strings.", param="inferenceConfig")


def _check_tools(config: Any) -> None:
    if config is None:
        return
    tools = config.get("tools") if isinstance(config, dict) else None
    if not isinstance(tools, list) or not tools:
        raise BadRequest("toolConfig.tools: must be a non-empty array of tools.", param="toolConfig")
    for index, tool in enumerate(tools):
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        name = spec.get("name") if isinstance(spec, dict) else None
        schema = spec.get("inputSchema") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not name or not isinstance(schema, dict):
            raise BadRequest(
                f"toolConfig.tools.{index}.toolSpec: must have a name and an inputSchema.", param="toolConfig"
            )
    choice = config.get("toolChoice")
    if choice is not None and not isinstance(choice, dict):
        raise BadRequest("toolConfig.toolChoice: must be an object.", param="toolConfig")


BEDROCK_CONVERSE = BedrockConverse()
