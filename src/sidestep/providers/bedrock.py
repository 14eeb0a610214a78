"""The adapter for AWS Bedrock's Converse API (`/model/{id}/converse` and `/converse-stream`), reached from
every client format through the canonical model; a Bedrock client's (boto3's) body is passed through as it
came, and so is its InvokeModel (`/model/{id}/invoke` and `/invoke-with-response-stream`, which no other provider
serves), served in `BEDROCK_INVOKE` so that its answers and frames reach the client untranslated.

Credentials, per key (so weighted rotation across AWS accounts works like any other provider's keys):
`ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]` is signed with SigV4 (botocore: `sidestep[bedrock]`);
any other key value is a Bedrock API key, sent as `Authorization: Bearer`. With no key configured, the
`access_key_id` / `secret_access_key` / `session_token` settings, then `AWS_ACCESS_KEY_ID` /
`AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, are used. The region comes from the `region` setting,
`AWS_REGION` or `AWS_DEFAULT_REGION`; model ids may be inference profiles or ARNs (URL-encoded in the path).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.core.format import Wire
from sidestep.core.model import Usage
from sidestep.errors import ConfigError, UpstreamError
from sidestep.formats.base import Converses
from sidestep.formats.bedrock_converse import BEDROCK_CONVERSE, BEDROCK_INVOKE
from sidestep.formats.bedrock_converse import convert as wire
from sidestep.formats.translate import to_canonical
from sidestep.providers.base import NativeAdapter, classify_http_error, not_relayed
from sidestep.providers.catalog import ProviderSpec
from sidestep.transport.types import UpstreamRequest

__all__ = ["BedrockProvider"]

# Bedrock's error types (x-amzn-errortype) that are never the caller's fault.
_RETRYABLE_TYPES = ("ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException")
_CONTEXT_PHRASES = (b"input is too long", b"too many input tokens", b"prompt is too long", b"context length")


class BedrockProvider(NativeAdapter):
    format = BEDROCK_CONVERSE
    operations = frozenset({*NativeAdapter.operations, "invoke"})  # InvokeModel: Bedrock clients, passed through
    formats: Mapping[str, Wire] = MappingProxyType({"invoke": BEDROCK_INVOKE})  # the model's own answers

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        super().__init__(config, spec)
        env = os.environ
        self.region = config.setting("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        base = config.base_url
        if base == spec.base_url:  # not overridden: the regional endpoint
            base = f"https://bedrock-runtime.{self.region}.amazonaws.com"
        self._base = base
        self._fallback = self._default_credentials(config, env)
        if self._needs_signing():
            try:
                import botocore  # noqa: F401 - checked here so a missing extra is a config error, not a 500
            except ImportError:
                reason = "the bedrock provider signs requests with botocore: pip install 'sidestep[bedrock]'"
                raise ConfigError(reason, path=f"providers.{config.name}.type") from None

    def build(
        self, operation: str, model: str, body: dict[str, Any], key: KeyConfig, source: Converses | None
    ) -> UpstreamRequest:
        if source is None and operation != "invoke":
            raise not_relayed(self.name, operation)
        # A boto3 client: its body goes as it came, the gateway's fields taken out — Converse's, or InvokeModel's,
        # the model's own (relayed-only, `BEDROCK_INVOKE`: no conversing side, `source` None).
        if source is None or source is BEDROCK_CONVERSE:
            stream = body.get("stream") is True
            payload = self._encode({k: v for k, v in body.items() if k not in wire.GATEWAY_FIELDS})
        else:
            request = to_canonical(source, body)
            stream, payload = request.stream, self._encode(self.format.write_request(request))
        if operation == "invoke":
            action = "invoke-with-response-stream" if stream else "invoke"
        else:
            action = "converse-stream" if stream else "converse"
        url = f"{self._base}/model/{quote(model, safe='')}/{action}"
        headers = [("content-type", "application/json"), ("accept-encoding", "identity"), *self.config.headers]
        if stream:
            headers.append(("accept", "application/vnd.amazon.eventstream"))
        secret = key.secret.reveal() if key.secret is not None else self._fallback
        if secret:
            headers += self._auth(url, headers, payload, secret)
        return UpstreamRequest("POST", url, headers, payload, self._timeouts)

    def _auth(self, url: str, headers: list[tuple[str, str]], payload: bytes, secret: str) -> list[tuple[str, str]]:
        parts = secret.split(":")
        if len(parts) < 2:
            return [("authorization", f"Bearer {secret}")]
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        signed = AWSRequest(method="POST", url=url, data=payload, headers=dict(headers))
        credentials = Credentials(parts[0], parts[1], parts[2] if len(parts) > 2 else None)
        SigV4Auth(credentials, "bedrock", self.region).add_auth(signed)
        have = {name.lower() for name, _ in headers}
        return [(name.lower(), str(value)) for name, value in signed.headers.items() if name.lower() not in have]

    def inspect(self, operation: str, body: bytes) -> Usage:
        if operation == "invoke":  # the model's own answer: only checked to be JSON (its usage is in headers)
            return wire.invoked_usage(self._object(body, operation, ""))
        data = self._object(body, operation, "output")
        stop = data.get("stopReason")
        if stop in wire.POLICY_STOPS:
            message = f"{self.name} refused the request: {stop}"
            raise UpstreamError(message, status=400, body=body, retryable=False, kind="content_policy")
        return self.format.read_response(body).usage

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        error = classify_http_error(status, headers, body, provider=self.name)
        kind = headers.get("x-amzn-errortype", "")
        if not error.retryable and (status == 424 or kind.startswith(_RETRYABLE_TYPES)):
            error.retryable = True  # ModelErrorException (424) and throttling are the provider's trouble
            error.kind = None
        elif status == 400 and error.kind is None and any(p in body[:2000].lower() for p in _CONTEXT_PHRASES):
            error.kind = "context_window"
        return error

    def _needs_signing(self) -> bool:
        keys = [k.secret.reveal() for k in self.config.keys if k.secret is not None]
        return any(":" in k for k in [*keys, self._fallback or ""])

    @staticmethod
    def _default_credentials(config: ProviderConfig, env: Mapping[str, str]) -> str | None:
        """`AKID:SECRET[:TOKEN]` from the settings or the AWS environment, used when a key is unset."""
        access = config.setting("access_key_id") or env.get("AWS_ACCESS_KEY_ID")
        secret = config.secret_setting("secret_access_key")
        secret_text = secret.reveal() if secret is not None else env.get("AWS_SECRET_ACCESS_KEY")
        if not access or not secret_text:
            return None
        token = config.secret_setting("session_token")
        token_text = token.reveal() if token is not None else env.get("AWS_SESSION_TOKEN")
        return f"{access}:{secret_text}" + (f":{token_text}" if token_text else "")
