"""Structured log events in logfmt (`event=breaker_open target=openai/gpt-4o key=openai#0`), on stdlib
logging so users keep their handlers. Values never include secrets: callers pass key labels only.

Values often carry what a client or an upstream wrote (model names, error messages): every control or
line-breaking character is escaped, so that no value can end the line and forge another one."""

from __future__ import annotations

import logging
import re

__all__ = ["event", "safe"]

# C0 and C1 controls, DEL, Unicode line and paragraph separators (what splitlines() breaks on), quote, backslash.
_UNSAFE = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029"\\\\]')
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT.get(char) or f"\\u{ord(char):04x}"


def safe(text: str) -> str:
    """`text` with control and line-breaking characters escaped: one line, whatever it held."""
    return _UNSAFE.sub(_escape, text)


def event(logger: logging.Logger, level: int, name: str, **fields: object) -> None:
    if not logger.isEnabledFor(level):
        return
    parts = [f"event={name}"]
    for key, value in fields.items():
        text = str(value)
        if _UNSAFE.search(text) is not None:
            text = '"' + safe(text) + '"'
        elif " " in text or not text:
            text = '"' + text + '"'
        parts.append(f"{key}={text}")
    logger.log(level, " ".join(parts))
