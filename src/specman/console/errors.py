"""``ApiError``: an HTTP error answer of the console, always sent as JSON ``{"code": "...", "message": "..."}``.

``code`` is a stable CamelCase word a client can branch on (``Unauthorized``, ``InvalidJson``, ``ValidationFailed``,
``NotFound``, ``Conflict``, ``PayloadTooLarge``, ``TooManyRequests``...); ``message`` is one line for humans and never
contains a secret.  ``field`` names the offending request field, when there is one.
"""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out
