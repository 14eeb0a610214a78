"""Structured log events in logfmt (`event=breaker_open target=openai/gpt-4o key=openai#0`), on stdlib
logging so users keep their handlers. Values never include secrets: callers pass key labels only."""

from __future__ import annotations

import logging

__all__ = ["event"]


def event(logger: logging.Logger, level: int, name: str, **fields: object) -> None:
    if not logger.isEnabledFor(level):
        return
    parts = [f"event={name}"]
    for key, value in fields.items():
        text = str(value)
        if " " in text or '"' in text or not text:
            text = '"' + text.replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    logger.log(level, " ".join(parts))
