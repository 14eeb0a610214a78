"""Agent mode for stream requests: the stream starts while the model thinks, shows each tool step, and carries
the model's words as they arrive.

Each model turn is a stream of its own through the gateway's routing (`StreamsRequests`, failover included until
its first content), read into canonical events whatever the provider speaks, and written by the client's format:
- text (and thinking) is relayed as it arrives, from every turn — what the model says before it asks for a tool
  is part of its answer, as in any agent UI; the final turn's words stream token by token;
- the model's calls of MCP tools are run by the gateway (`agent._run`: the caller's allow-list, rate limits,
  fallbacks, breakers) and never written as tool calls: a client SDK would take them for calls it must run.
  Each step is shown as a note between events instead, by the rule every relay follows
  (`formats.base.stream_comment`): an SSE comment — `: sidestep-mcp calling files__add` before the call and
  `: sidestep-mcp files__add ok 3.2 ms` (or `tool error`) after it — for OpenAI and Anthropic clients, which
  skip comments, so nothing mistakes a step for content or a call to act on, while anyone reading the raw stream
  (curl, a proxy log) sees the agent work; what the format sends in its place for the clients that choke on
  comments (`Comments`: a blank line for google-genai on `alt=sse`, whitespace in Gemini's JSON array); nothing
  in Bedrock's event-stream frames. The request log has every step as an attempt. Names only: the arguments the
  model chose stay out of the stream (and of logs unless `mcp.log_arguments`).
- a turn that asks for a tool of the client's own ends the stream with that call, for the client to run;
- then the finish, the usage summed over every turn (when the client's format reports it) and the end.

The stream's head is the client's (`formats.base.stream_headers`: SSE, or a framed format's media type) and a
framed stream's opening bytes go out with it (`stream_opening`: the array's `[`). The head waits for the first
piece (or `keepalive` seconds, then keep-alives in the same form as the step notes every `keepalive` until there
is one; Bedrock's frames have none, so their head waits for the first piece), so a request that fails before
anything was said — no target for the first turn, the step limit — is an ordinary error status in the client's
format; a failure after that ends the stream with the format's in-stream error event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from sidestep.core.format import Writer
from sidestep.core.model import ChatRequest, Event, Message, TextPart, ToolCall, Usage
from sidestep.errors import Attempt, SidestepError, UpstreamError
from sidestep.formats.base import Comments, Converses, stream_comment, stream_headers, stream_media_type, stream_opening
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.outcome import Exchange
from sidestep.plugins.capabilities import SideStream
from sidestep.plugins.mcp.agent import AgentStopped, add_usage, agent_request, run_tool, served_by
from sidestep.plugins.mcp.front import Front
from sidestep.routing.served import Served
from sidestep.server.types import StreamingResponse
from sidestep.transport.body import chunks

__all__ = ["stream_agent"]

log = logging.getLogger("sidestep.mcp")

_QUEUED = 64  # pieces written ahead of a slow client before the loop waits for it


async def stream_agent(
    exchange: Exchange,
    client: Converses,
    front: Front,
    stream: SideStream,
    max_steps: int,
    timeout: float,
    keepalive: float,
    clock: Callable[[], float] = time.monotonic,
) -> StreamingResponse:
    """Start the loop; answer once it has said something (or failed, or `keepalive` passed)."""
    media = stream_media_type(client)  # None: SSE; else a framed stream (Gemini's JSON array, Bedrock's frames)
    if media is not None and not isinstance(client, Comments):
        keepalive = 0.0  # nothing a framed stream could carry: the head waits for the first piece
    run = _Run(exchange, client, front, stream, media, clock)
    task = asyncio.get_running_loop().create_task(run.loop(max_steps, timeout))
    said = asyncio.ensure_future(run.said.wait())
    try:
        await asyncio.wait({task, said}, timeout=keepalive or None, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the client left before the head
        task.cancel()
        raise
    finally:
        said.cancel()
    if task.done() and not run.said.is_set() and run.failure is not None:
        raise run.failure  # nothing went out yet: the error status, as without a stream
    opening = stream_opening(client) if media is not None else b""  # the array's `[`, with the head
    return StreamingResponse(200, run.body(task, keepalive), stream_headers(media), opening)


class _Run:
    def __init__(
        self,
        exchange: Exchange,
        client: Converses,
        front: Front,
        stream: SideStream,
        media: str | None,
        clock: Callable[[], float],
    ) -> None:
        self.exchange, self.front, self.stream, self.clock = exchange, front, stream, clock
        self.client, self.media = client, media
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUED)
        self.said = asyncio.Event()  # a first piece is queued
        self.failure: SidestepError | None = None
        self.writer: Writer | None = None
        self.steps: list[Attempt] = []
        self.usage = Usage()
        exchange.provider, exchange.attempts, exchange.usage = "agent", self.steps, self.usage

    async def loop(self, max_steps: int, timeout: float) -> None:
        request = agent_request(self.exchange, self.client, True)
        try:
            async with asyncio.timeout(timeout):
                for _ in range(max_steps):
                    calls = await self._turn(request)
                    if calls is None:
                        return
                    for call in calls:
                        await self._put(self._note(f"sidestep-mcp calling {call.name}"))
                        request.messages.append(await run_tool(self.front, self.exchange.principal, call, self.steps))
                        step = self.steps[-1]
                        shown = f"sidestep-mcp {call.name} {step.reason} {step.duration_ms:.1f} ms"
                        await self._put(self._note(shown))
            raise AgentStopped(f"agent mode: no final answer after {max_steps} model turns")
        except TimeoutError:
            self._fail(AgentStopped(f"agent mode: no final answer within {timeout:g} s"))
        except SidestepError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug: the client gets an error event, not a stream cut without a word
            log.exception("agent mode failed for %s", self.exchange.request_id)
            self._fail(SidestepError(f"agent mode failed: {type(exc).__name__}"))
        finally:
            self.exchange.usage = self.usage
            await self.queue.put(None)

    def _note(self, text: str) -> bytes:
        """A step or a keep-alive as the client's stream carries notes (`formats.base.stream_comment`)."""
        return stream_comment(self.client, self.media, text)

    def _fail(self, exc: SidestepError) -> None:
        self.failure = exc
        self.exchange.error = exc.message

    async def _turn(self, request: ChatRequest) -> list[ToolCall] | None:
        """One model turn, its words relayed as they come; the MCP calls to run next, or None (it answered)."""
        started = self.clock()
        try:
            served = await self.stream("chat", OPENAI_CHAT.write_request(request))
        except SidestepError as exc:
            self.steps.append(Attempt("agent", request.model, exc.status, exc.message, _ms(started, self.clock())))
            raise
        turn = _Turn()
        try:
            async for event in _events(served):
                await self._event(event, turn, request)
            if turn.finish is None:
                raise UpstreamError("the model's stream ended before it was complete")
        except UpstreamError as exc:
            failed = Attempt("agent", turn.model or request.model, None, exc.message, _ms(started, self.clock()))
            self.steps.append(failed)
            raise
        finally:
            await served.aclose()
        self.usage = add_usage(self.usage, turn.usage)
        calls = [turn.calls[i] for i in sorted(turn.calls)]
        ours = bool(calls) and all(served_by(self.front, call) for call in calls)
        reason = f"asked for {len(calls)} tool call(s)" if calls else "answered"
        self.steps.append(Attempt("agent", turn.model or request.model, 200, reason, _ms(started, self.clock())))
        self.exchange.model = turn.model or request.model
        if ours:
            parts = [TextPart(text="".join(turn.text))] if turn.text else []
            request.messages.append(Message(role="assistant", parts=list(parts), tool_calls=calls))
            return calls
        await self._finish(turn, calls)
        return None

    async def _event(self, event: Event, turn: _Turn, request: ChatRequest) -> None:
        kind = event.kind
        if kind == "start":
            turn.model = event.model or request.model
            if self.writer is None:
                self.writer = self.client.stream_writer(turn.model, self.client.include_usage(self.exchange.body))
                await self._put(self.writer.write(event))
        elif kind in ("text", "thinking"):
            turn.text.append(event.text if kind == "text" else "")
            await self._put(self._write(event, request.model))
        elif kind == "tool_start":
            turn.calls[event.index] = ToolCall(id=event.id, name=event.name, arguments="")
        elif kind == "tool_args" and event.index in turn.calls:
            call = turn.calls[event.index]
            call.arguments += event.text
        elif kind == "finish":
            turn.finish = event
        elif kind == "usage" and event.usage is not None:
            turn.usage = event.usage
        elif kind == "error":
            raise UpstreamError(f"the model's stream failed: {event.text}")

    def _write(self, event: Event, model: str) -> bytes:
        if self.writer is None:  # a stream without its start event: begin it here
            self.writer = self.client.stream_writer(model, self.client.include_usage(self.exchange.body))
            return self.writer.write(Event(kind="start", model=model)) + self.writer.write(event)
        return self.writer.write(event)

    async def _finish(self, turn: _Turn, calls: list[ToolCall]) -> None:
        """The last turn's end: the client's own tool calls, the finish, the summed usage, the end."""
        out: list[Event] = []
        for index, call in enumerate(calls):
            out.append(Event(kind="tool_start", index=index, id=call.id, name=call.name))
            out.append(Event(kind="tool_args", index=index, text=call.arguments))
        assert turn.finish is not None  # `_turn` refused a stream without one
        out += [turn.finish, Event(kind="usage", usage=self.usage), Event(kind="end")]
        await self._put(b"".join(self._write(event, turn.model) for event in out))

    async def _put(self, piece: bytes) -> None:
        if piece:
            await self.queue.put(piece)
            self.said.set()

    async def body(self, task: asyncio.Task[None], keepalive: float) -> AsyncIterator[bytes]:
        """What the loop says, `: keep-alive` while it is quiet, and its failure as the format's error event."""
        try:
            while True:
                try:
                    piece = await asyncio.wait_for(self.queue.get(), keepalive or None)
                except TimeoutError:
                    yield self._note("keep-alive")
                    continue
                if piece is None:
                    break
                yield piece
            if self.failure is not None:
                code = self.failure.code or "agent_failed"
                if self.writer is not None:
                    yield self.writer.error(self.failure.message, code)
                else:
                    yield self.client.stream_error(self.failure.message, code=code)
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class _Turn:
    __slots__ = ("calls", "finish", "model", "text", "usage")

    def __init__(self) -> None:
        self.model = ""
        self.text: list[str] = []
        self.calls: dict[int, ToolCall] = {}
        self.finish: Event | None = None
        self.usage = Usage()


async def _events(served: Served) -> AsyncIterator[Event]:
    """A served stream's canonical events as they arrive: what was held while its first content was awaited,
    then the rest."""
    reader = served.format.stream_reader()
    for piece in served.held:
        for event in reader.feed(piece):
            yield event
    if served.finished or not served.unread:
        return
    async for piece in chunks(served.response):
        for event in reader.feed(piece):
            yield event


def _ms(began: float, now: float) -> float:
    return round((now - began) * 1000, 3)
