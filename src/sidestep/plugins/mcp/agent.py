"""Agent mode: the gateway runs the model's MCP tool calls itself and loops until the model answers.

On for the routes and virtual keys `mcp.agent` lists, for chat requests. The request, with its MCP tools already
added (`sidestep.plugins.mcp.chat`), is read into the canonical model by the client's format and sent through the
gateway's own routing, failover included (`SendsRequests`: OpenAI's format on that seam). While the model's answer
asks only for MCP tools, each call is run through the catalogue (`Front.call_tool`: the caller's allow-list, rate
limits, fallback servers, breakers), its result appended as a tool message and the model asked again — at most
`max_steps` model turns within `timeout` seconds. The final answer goes back in the client's format; an answer
that asks for a tool the gateway does not serve (the client's own) goes back as it is, for the client to run. A
stream request is `sidestep.plugins.mcp.agent_stream`'s (when the gateway streams side requests): its stream
starts at once, shows the tool steps and relays the model's words as they come; without that seam it gets the
final answer as its format's whole stream of events, written once the loop is over. A tool's failure goes to the
model as an error result.

Every step is an attempt in the request's outcome record (the request log lists them): `agent` for a model turn,
`mcp:<server>` for a tool call; the usage is the sum of the turns'.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec
from mcp.shared.exceptions import MCPError

from sidestep.core.model import ChatRequest, ChatResponse, Message, TextPart, ToolCall, ToolResultPart, Usage
from sidestep.errors import Attempt, SidestepError
from sidestep.formats.base import Converses
from sidestep.formats.body import materialize
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.outcome import Exchange
from sidestep.plugins.cache.replay import replayed_type, written_stream
from sidestep.plugins.capabilities import SideRequest
from sidestep.plugins.mcp.front import Front
from sidestep.server.types import Response

__all__ = ["AgentStopped", "add_usage", "agent_request", "run_agent", "run_tool", "served_by"]

_JSON = ("content-type", "application/json")


class AgentStopped(SidestepError):
    """The loop reached its step or time limit without a final answer."""

    status = 504
    type = "timeout"
    code = "agent_limit"


async def run_agent(
    exchange: Exchange,
    client: Converses,
    front: Front,
    send: SideRequest,
    max_steps: int,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> Response:
    request = agent_request(exchange, client, False)
    steps: list[Attempt] = []
    usage = Usage()
    try:
        async with asyncio.timeout(timeout):
            for _ in range(max_steps):
                answer = await _turn(request, send, steps, clock)
                usage = add_usage(usage, answer.usage)
                if not answer.tool_calls or not all(served_by(front, call) for call in answer.tool_calls):
                    exchange.model = answer.model
                    return _final(exchange, client, answer, len(steps))
                request.messages.append(
                    Message(role="assistant", parts=list(_texts(answer)), tool_calls=answer.tool_calls)
                )
                for call in answer.tool_calls:
                    request.messages.append(await run_tool(front, exchange.principal, call, steps, clock))
        raise AgentStopped(f"agent mode: no final answer after {max_steps} model turns")
    except TimeoutError:
        raise AgentStopped(f"agent mode: no final answer within {timeout:g} s") from None
    finally:
        exchange.attempts, exchange.provider, exchange.usage = steps, "agent", usage


def agent_request(exchange: Exchange, client: Converses, stream: bool) -> ChatRequest:
    """The request as the canonical model has it, with its route as the model when its body names none (Gemini
    and Bedrock name the model in the path)."""
    request = client.read_request(materialize(exchange.body))
    request.stream = stream
    if not request.model and exchange.models:
        request.model = exchange.models[0]
    return request


async def _turn(request: ChatRequest, send: SideRequest, steps: list[Attempt], clock: Callable[[], float]) -> Any:
    started = clock()
    try:
        raw = await send("chat", OPENAI_CHAT.write_request(request))
    except SidestepError as exc:
        steps.append(Attempt("agent", request.model, exc.status, exc.message, (clock() - started) * 1000))
        raise
    answer = OPENAI_CHAT.read_response(raw)
    reason = f"asked for {len(answer.tool_calls)} tool call(s)" if answer.tool_calls else "answered"
    steps.append(Attempt("agent", answer.model or request.model, 200, reason, (clock() - started) * 1000))
    return answer


async def run_tool(
    front: Front, caller: Any, call: ToolCall, steps: list[Attempt], clock: Callable[[], float] = time.monotonic
) -> Message:
    """One tool call's result as a tool message; a failure is an error result the model reads."""
    started = clock()
    server = call.name.partition(front.sep)[0]
    try:
        arguments = msgspec.json.decode(call.arguments or "{}")
        if not isinstance(arguments, dict):
            raise ValueError("the arguments are not a JSON object")
        result = await front.call_tool(caller, call.name, arguments, None)
        text = "\n".join(getattr(item, "text", None) or item.model_dump_json() for item in result.content)
        failed, status = bool(result.is_error), 200
    except (MCPError, ValueError, msgspec.DecodeError) as exc:
        text, failed, status = f"the tool call failed: {exc}", True, 400
    reason = "tool error" if failed else "ok"
    steps.append(Attempt(f"mcp:{server}", call.name, status, reason, (clock() - started) * 1000))
    return Message(
        role="tool", parts=[ToolResultPart(tool_call_id=call.id, content=[TextPart(text=text)], is_error=failed)]
    )


def _final(exchange: Exchange, client: Converses, answer: ChatResponse, steps: int) -> Response:
    """The final answer in the client's format: whole, or for a stream request as its whole stream (SSE, or the
    format's own framing: Gemini's JSON array)."""
    counted = ("x-sidestep-mcp-steps", str(steps))
    if not exchange.stream:
        return Response(200, client.write_response(answer), [_JSON, counted])
    body = written_stream(client, answer, client.include_usage(exchange.body))
    return Response(200, body, [replayed_type(client), ("cache-control", "no-cache"), counted])


def served_by(front: Front, call: ToolCall) -> bool:
    """Whether `call` names a tool of the catalogue's servers (else it is the client's own)."""
    server, sep, tool = call.name.partition(front.sep)
    return bool(sep and tool) and server in front.upstreams


def _texts(answer: ChatResponse) -> list[TextPart]:
    return [part for part in answer.parts if isinstance(part, TextPart)]


def add_usage(total: Usage, more: Usage) -> Usage:
    return Usage(
        input=total.input + more.input,
        output=total.output + more.output,
        cached=total.cached + more.cached,
        cache_write=total.cache_write + more.cache_write,
        reasoning=total.reasoning + more.reasoning,
    )
