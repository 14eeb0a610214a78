"""Relaying an upstream stream to the client (SSE, or a framed format's frames), and what happens when it breaks.

Before the first content event, failover is invisible (the executor holds the stream back). After content has
started, a failure either ends the stream with an error event in the client's format (`mid_stream: fail`, the
default) or asks the next targets to continue from the text already sent (`mid_stream: continue`). One module per
concept:

- `job` — what the relays of one stream share: the request, the targets not yet used, the callables that judge
  an ended stream and resume it elsewhere (the relays never see the executor), the outcome, and the one
  end-of-stream rule (the format's: `stream_complete`); a stream's head and keep-alive interval, which a framed
  format (`formats.base.FramedStreams`: Bedrock's AWS event stream) changes.
- `forward` — same format, no continuation: bytes through as they arrive (compiled; the common case).
- `frames` — a framed stream relayed frame by frame as it came (`formats.base.RelaysFrames`: Bedrock's
  InvokeModelWithResponseStream): whole frames only, its usage and end read from them (compiled).
- `translated` — formats differ, or the stream may be continued: each piece translated as it arrives; `relay`
  picks among the three.
- `continuation` — carrying a broken stream on with the remaining targets.
- `keepalive` — `: keep-alive` comments while no target has answered yet, then the relay.

Modules with async generators (`translated`, `keepalive`) stay interpreted; the others are compiled.
"""

from sidestep.relay.forward import Forward, relay_after_prelude
from sidestep.relay.job import (
    Judge,
    Resume,
    StreamJob,
    StreamOutcome,
    forwarding,
    stream_headers,
)
from sidestep.relay.keepalive import wait_with_keepalive
from sidestep.relay.translated import relay

__all__ = [
    "Forward",
    "Judge",
    "Resume",
    "StreamJob",
    "StreamOutcome",
    "forwarding",
    "relay",
    "relay_after_prelude",
    "stream_headers",
    "wait_with_keepalive",
]
