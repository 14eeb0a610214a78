"""Google's error shape, `{"error": {"code": 400, "message": "…", "status": "INVALID_ARGUMENT"}}`: the status
is the google.rpc code's name for the HTTP status, as the Gemini API and google-genai's `APIError` have it."""

from __future__ import annotations

from typing import Any

__all__ = ["STATUS_NAMES", "error_object", "is_google_error"]

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    431: "INVALID_ARGUMENT",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_object(status: int, message: str) -> dict[str, Any]:
    name = STATUS_NAMES.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": message, "status": name}}


def is_google_error(data: Any) -> bool:
    """Whether a decoded body is already in Google's shape (OpenAI's `{"error": …}` has no int code and status)."""
    error = data.get("error") if isinstance(data, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("code"), int)
        and isinstance(error.get("status"), str)
        and isinstance(error.get("message"), str)
    )
