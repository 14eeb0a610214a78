"""AWS Bedrock's Converse wire format: a client format (boto3's `bedrock-runtime` pointed at the gateway) and a
provider format (the Bedrock adapter).

- `format`: the `BEDROCK_CONVERSE` object — parsing and checking a client's body, Bedrock's errors (the
  `x-amzn-errortype` header botocore reads), in-stream exceptions, and the entry to everything below;
- `convert`: requests and answers ↔ the canonical model (`sidestep.core.model`), both ways;
- `eventstream`: ConverseStream's AWS event-stream frames, written (one encoder, the simulator's too) and read
  (with botocore's decoder);
- `invoke`: the `BEDROCK_INVOKE` object — InvokeModel and InvokeModelWithResponseStream, the model's own body
  passed through, its stream relayed frame by frame (`InvokeFrames` cuts and reads it).
"""

from sidestep.formats.bedrock_converse.convert import POLICY_STOPS, read_response, write_request
from sidestep.formats.bedrock_converse.eventstream import StreamReader, StreamWriter, frame
from sidestep.formats.bedrock_converse.format import BEDROCK_CONVERSE, BedrockClient, BedrockConverse
from sidestep.formats.bedrock_converse.invoke import BEDROCK_INVOKE, BedrockInvoke, InvokeFrames

__all__ = [
    "BEDROCK_CONVERSE",
    "BEDROCK_INVOKE",
    "POLICY_STOPS",
    "BedrockClient",
    "BedrockConverse",
    "BedrockInvoke",
    "InvokeFrames",
    "StreamReader",
    "StreamWriter",
    "frame",
    "read_response",
    "write_request",
]
