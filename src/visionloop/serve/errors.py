"""HTTP errors: user errors with a status code; rendered as `{"error", "message", "hint"}`, never a traceback."""

from __future__ import annotations

from visionloop.core.errors import ImageError, NotFoundError, VisionLoopError


class HTTPError(VisionLoopError):
    status = 400
    headers: dict[str, str] = {}


class BadRequest(HTTPError):
    status = 400


class Unauthorized(HTTPError):
    status = 401
    headers = {"WWW-Authenticate": "ApiKey"}


class Forbidden(HTTPError):
    status = 403


class NotFound(HTTPError):
    status = 404


class Unprocessable(HTTPError):
    """A parameter out of range or of the wrong type."""

    status = 422


class PayloadTooLarge(HTTPError):
    status = 413


class UnsupportedMedia(HTTPError):
    status = 415


class BadImage(ImageError):
    """A corrupt or truncated image (400)."""


class RetryLater(HTTPError):
    """429 or 503 with Retry-After."""

    def __init__(self, message: str, *, status: int, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.headers = {"Retry-After": str(max(1, int(retry_after + 0.999)))}


def status_of(e: VisionLoopError) -> int:
    if isinstance(e, HTTPError):
        return e.status
    if isinstance(getattr(e, "status", None), int):  # the web UI's errors carry their own (CSRF: 403)
        return int(e.status)  # type: ignore[attr-defined]
    if isinstance(e, NotFoundError):
        return 404
    return 400


def body(e: VisionLoopError) -> dict[str, str | None]:
    out = {"error": type(e).__name__, "message": e.message}
    if e.path:
        out["where"] = e.path + (f" ({e.where})" if e.where else "")
    elif e.where:
        out["where"] = e.where
    if e.hint:
        out["hint"] = e.hint
    return out
