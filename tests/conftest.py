from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sidestep.outcome import Exchange
from sidestep.testing import RunningSim, openai_client, running_simulators

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
