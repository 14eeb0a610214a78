"""How the simulator reads a request's path and credentials: which OpenAI-style operation a path asks for (Azure
deployments included), the model and method of a Gemini path, the bearer token."""

from __future__ import annotations

import urllib.parse

__all__ = ["bearer", "gemini_target", "operation_of"]


def operation_of(path: str) -> tuple[str | None, str | None]:
    """An OpenAI-style path -> (operation, Azure deployment); (None, None) for a path the simulator does not serve."""
    if path in ("/chat/completions", "/v1/chat/completions"):
        return "chat", None
    if path in ("/embeddings", "/v1/embeddings"):
        return "embeddings", None
    if path in ("/completions", "/v1/completions"):
        return "completions", None
    if path in ("/responses", "/v1/responses", "/openai/v1/responses"):
        return "responses", None
    if path.startswith("/openai/deployments/"):
        deployment, _, rest = path[len("/openai/deployments/") :].partition("/")
        operations = {"chat/completions": "chat", "embeddings": "embeddings", "completions": "completions"}
        return operations.get(rest), deployment or None
    return None, None


def gemini_target(path: str) -> tuple[str, str]:
    """`/v1beta/models/{model}:{method}` -> (model, method); the model may carry an `@fault` suffix."""
    tail = path.split("/models/", 1)[1]
    model, _, method = urllib.parse.unquote(tail).rpartition(":")
    return model, method


def bearer(headers: dict[str, str]) -> str:
    """The token of an `Authorization: Bearer …` header, or ""."""
    value = headers.get("authorization", "")
    return value[7:] if value.lower().startswith("bearer ") else ""
