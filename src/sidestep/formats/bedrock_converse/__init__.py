"""AWS Bedrock's Converse wire format: a client format (boto3's `bedrock-runtime` pointed at the gateway) and a
provider format (the Bedrock adapter).

- `format`: the `BEDROCK_CONVERSE` object — parsing and checking a client's body, Bedrock's errors (the
  `x-amzn-errortype` header botocore reads), in-stream exceptions, and the entry to everything below;
- `convert`: requests and answers ↔ the canonical model (`sidestep.core.model`), both ways;
- `eventstream`: ConverseStream's AWS event-stream frames, written (one encoder, the simulator's too) and read
  (with botocore's decoder).
"""

from sidestep.formats.bedrock_converse.convert import POLICY_STOPS, read_response, write_request
from sidestep.formats.bedrock_converse.eventstream import StreamReader, StreamWriter, frame
from sidestep.formats.bedrock_converse.format import BEDROCK_CONVERSE, BedrockConverse

__all__ = [
    "BEDROCK_CONVERSE",
    "POLICY_STOPS",
    "BedrockConverse",
    "StreamReader",
    "StreamWriter",
    "frame",
    "read_response",
    "write_request",
]
