from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from sidestep.outcome import Exchange
from sidestep.testing import RunningSim, openai_client, running_simulators
from sidestep.transport.client import HttpClient
from sidestep.transport.types import UpstreamRequest, UpstreamResponse

Sdk = Callable[[str], Any]


@pytest.fixture
async def sims() -> AsyncIterator[dict[str, RunningSim]]:
    async with running_simulators("primary", "backup", "third") as running:
        yield running


@pytest.fixture
async def sdk() -> AsyncIterator[Sdk]:
    """Make official OpenAI SDK clients pointed at a gateway; every one is closed after the test."""
    clients: list[Any] = []

    def make(base_url: str) -> Any:
        client = openai_client(base_url)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def claude() -> AsyncIterator[Callable[[str], Any]]:
    """Make official Anthropic SDK clients pointed at a gateway (base URL without /v1); closed after the test."""
    import anthropic

    clients: list[Any] = []

    def make(url: str) -> Any:
        client = anthropic.AsyncAnthropic(base_url=url, api_key="client-key", max_retries=0, timeout=20)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def pytest_report_header() -> str:
    import sidestep.app

    kind = "compiled (mypyc)" if str(sidestep.app.__file__).endswith(".so") else "pure Python"
    return f"sidestep: {kind}, from {Path(str(sidestep.app.__file__)).parent}"


class AttemptLog:
    """An observer that keeps every attempt of every finished exchange: (provider, status, reason)."""

    wants_usage = False

    def __init__(self) -> None:
        self.seen: list[tuple[str, int | None, str]] = []

    def observe(self, exchange: Exchange) -> None:
        self.seen += [(attempt.provider, attempt.status, attempt.reason) for attempt in exchange.attempts]


class PlainResponse:
    """An upstream response with what `UpstreamResponse` asks and nothing more (no `Pipes`, no `Budgeted`)."""

    __slots__ = ("_inner", "pieces", "status")

    def __init__(self, inner: UpstreamResponse) -> None:
        self._inner = inner
        self.status = inner.status
        self.pieces = 0  # body pieces read

    @property
    def headers(self) -> dict[str, str]:
        return self._inner.headers

    async def next_chunk(self) -> bytes | None:
        piece = await self._inner.next_chunk()
        self.pieces += piece is not None
        return piece

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> PlainResponse:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class PlainTransport:
    """The real HTTP client behind a transport whose responses have no optional capability: what a third-party
    transport gets. `running_gateway(config, wrap=PlainTransport)`."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self.responses: list[PlainResponse] = []

    async def send(self, request: UpstreamRequest) -> PlainResponse:
        response = PlainResponse(await self.client.send(request))
        self.responses.append(response)
        return response

    async def aclose(self) -> None:
        await self.client.aclose()
