"""Token endpoints as the simulator speaks them, so OAuth-authorised adapters are tested over real HTTP:
Google's (`POST /token`, the JWT-bearer grant a service account makes) and Microsoft Entra ID's
(`POST /{tenant}/oauth2/v2.0/token`, the client-credentials grant). Tokens are opaque strings shaped like
the real ones (`ya29.…`, `eyJ…`); a Vertex AI path accepts any `ya29.` bearer."""

from __future__ import annotations

import base64
import urllib.parse

import msgspec

__all__ = ["google_token", "is_token_path", "microsoft_token"]

_encode = msgspec.json.Encoder().encode
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"


def is_token_path(path: str) -> bool:
    return path == "/token" or path.endswith("/oauth2/v2.0/token")


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("latin-1")).items()}


def google_token(body: bytes, serial: int, lifetime: int) -> tuple[int, bytes]:
    """A service account's grant: `assertion` must be a JWT (header.claims.signature) naming a scope."""
    form = _form(body)
    if form.get("grant_type") != JWT_BEARER:
        return 400, _encode({"error": "unsupported_grant_type", "error_description": "Invalid grant_type."})
    parts = form.get("assertion", "").split(".")
    try:
        claims = msgspec.json.decode(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (IndexError, ValueError, msgspec.DecodeError):
        return 400, _encode({"error": "invalid_grant", "error_description": "Invalid JWT."})
    if len(parts) != 3 or not isinstance(claims, dict) or "scope" not in claims or "iss" not in claims:
        return 400, _encode({"error": "invalid_grant", "error_description": "Invalid JWT: missing claims."})
    token = f"ya29.sim-{serial}-{claims['iss'].split('@')[0]}"
    return 200, _encode({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})


def microsoft_token(body: bytes, serial: int, lifetime: int, secrets: frozenset[str] | None) -> tuple[int, bytes]:
    """The client-credentials grant; with `secrets` (entries `client_id:client_secret`) the pair is checked."""
    form = _form(body)
    if form.get("grant_type") != "client_credentials" or form.get("scope") != ENTRA_SCOPE:
        return 400, _encode({"error": "invalid_request", "error_description": "AADSTS900144: bad grant or scope."})
    if secrets is not None and f"{form.get('client_id')}:{form.get('client_secret')}" not in secrets:
        return 401, _encode({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."})
    token = f"eyJ0eXAiOiJKV1Qi.sim-{serial}"
    return 200, _encode(
        {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}
    )
