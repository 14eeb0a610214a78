"""Anthropic's Messages wire format: a client format (`/v1/messages`) and a provider format.

- `format`: the `ANTHROPIC_MESSAGES` object — parsing a client's body, errors, the end-of-stream rule
  (`message_stop`), where a stream's usage is, and the entry to everything below;
- `convert`: requests and answers ↔ the canonical model (`sidestep.core.model`);
- `stream`: stream events ↔ canonical events (Anthropic's exact event sequence out).
"""

from sidestep.formats.anthropic_messages.format import ANTHROPIC_MESSAGES, AnthropicMessages

__all__ = ["ANTHROPIC_MESSAGES", "AnthropicMessages"]
