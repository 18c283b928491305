"""``POST /_specman/notify``: registry webhooks that make the service sync at once instead of at its next interval.

Two payloads are understood:

* the CNCF distribution notification envelope (``docker-registry``'s ``notifications`` endpoints,
  ``Content-Type: application/vnd.docker.distribution.events.v1+json``): ``{"events": [...]}``; only events whose
  ``target`` is a manifest with a ``tag`` (``action`` ``push`` or ``delete``) name a version — the registry also
  sends one event per blob, which is ignored;
* Harbor webhooks: the default payload ``{"type": "PUSH_ARTIFACT", "event_data": {"resources": [{"tag": ...}],
  "repository": {"repo_full_name": ...}}}`` (also ``DELETE_ARTIFACT``) and the CloudEvents one
  (``{"specversion": ..., "type": "harbor.artifact.pushed", "data": {...}}``).

The request must carry the shared secret (``--notify-token-file`` / ``SPECMAN_NOTIFY_TOKEN``) as
``Authorization: Bearer <token>`` — or, as Harbor's "Auth Header" field sends it, the bare token; compared in
constant time.  Answers: 202 with the tags when a sync was triggered; 200 when the payload named nothing this
service follows (another repository, blob events); 400 for a body that is not such a payload; 401 without the
token; 403 when notifications are not enabled; 413 for a body over 1 MiB.  Nothing but a 202 triggers a sync.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["MAX_BODY", "NotificationError", "Notifier", "TagEvent", "parse_notification"]

MAX_BODY: Final = 1024 * 1024
_HARBOR_TYPES: Final = {
    "PUSH_ARTIFACT": "push",
    "DELETE_ARTIFACT": "delete",
    "harbor.artifact.pushed": "push",
    "harbor.artifact.deleted": "delete",
}
_MANIFEST_TYPES: Final = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


class NotificationError(ValueError):
    """The body is not a notification specman understands (answered with 400 and this message)."""


@dataclass(frozen=True)
class TagEvent:
    repository: str
    tag: str
    action: str  # push or delete


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NotificationError(f"{what} must be a JSON object")
    return value


def _distribution_events(body: dict[str, Any]) -> list[TagEvent]:
    events = body["events"]
    if not isinstance(events, list):
        raise NotificationError("'events' must be a list")
    found = []
    for index, raw in enumerate(events):
        event = _obj(raw, f"events[{index}]")
        target = _obj(event.get("target", {}), f"events[{index}].target")
        repository, tag = target.get("repository"), target.get("tag")
        media_type = str(target.get("mediaType", ""))
        action = event.get("action")
        if not isinstance(repository, str) or not isinstance(tag, str) or not tag:
            continue  # blob events and pushes by digest name no version
        if media_type and media_type not in _MANIFEST_TYPES:
            continue
        if action in ("push", "delete"):
            found.append(TagEvent(repository, tag, action))
    return found


def _harbor_events(body: dict[str, Any]) -> list[TagEvent]:
    action = _HARBOR_TYPES.get(str(body.get("type")))
    if action is None:
        return []  # scans, quotas, replication...: nothing to sync
    data = _obj(body.get("event_data", body.get("data")), "event_data")
    repo = _obj(data.get("repository", {}), "event_data.repository")
    name = repo.get("repo_full_name") or (
        f"{repo['namespace']}/{repo['name']}" if repo.get("namespace") and repo.get("name") else None
    )
    resources = data.get("resources", [])
    if not isinstance(name, str) or not isinstance(resources, list):
        raise NotificationError("a Harbor event needs repository.repo_full_name and a resources list")
    tags = [_obj(r, "event_data.resources[]").get("tag") for r in resources]
    return [TagEvent(name, tag, action) for tag in tags if isinstance(tag, str) and tag]


def parse_notification(data: bytes) -> list[TagEvent]:
    """The tag events in a distribution envelope or a Harbor webhook body; ``NotificationError`` otherwise."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise NotificationError("the body is not JSON") from None
    body = _obj(body, "the body")
    if "events" in body:
        return _distribution_events(body)
    if "type" in body and ("event_data" in body or "data" in body):
        return _harbor_events(body)
    raise NotificationError("not a registry notification (expected a distribution envelope or a Harbor webhook)")


class _Token:
    """The shared secret: from a file (re-read when it changes, so a rotated Secret applies) or the environment."""

    def __init__(self, path: str | None, env: str | None) -> None:
        self.path = Path(path) if path else None
        self.env = env
        self._stamp: tuple[int, int] | None = None
        self._value = b""

    def value(self) -> bytes:
        if self.path is None:
            return os.environ.get(self.env or "", "").strip().encode()
        try:
            st = self.path.stat()
            if (st.st_mtime_ns, st.st_size) != self._stamp:
                self._value = self.path.read_bytes().strip()
                self._stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            return b""  # unreadable now: refuse rather than accept
        return self._value

    def accepts(self, header: str | None) -> bool:
        expected = self.value()
        if not expected or not header:
            return False
        given = header.strip()
        if given[:7].lower() == "bearer ":
            given = given[7:].strip()
        return hmac.compare_digest(given.encode(), expected)


def _answer(status: int, body: dict[str, Any]) -> Response:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _error(status: int, code: str, message: str) -> Response:
    """An error as every specman API answers one: ``{"code", "message"}``."""
    return _answer(status, {"code": code, "message": message})


class Notifier:
    """The endpoint: checks the token and the payload, then ``forward([(tag, action), ...])`` (to the sync loop)."""

    def __init__(
        self,
        forward: Callable[[list[tuple[str, str]]], bool],
        *,
        repository: str | None,
        token_file: str | None = None,
        token_env: str | None = None,
    ) -> None:
        self.forward = forward
        self.repository = repository
        self.enabled = bool(token_file or token_env)
        self.token = _Token(token_file, token_env)

    async def handle(self, request: Request) -> Response:
        if not self.enabled:
            return _error(403, "FORBIDDEN", "notifications are not enabled (start serve with --notify-token-file)")
        if not self.token.accepts(request.headers.get("authorization")):
            return _error(401, "UNAUTHORIZED", "a valid 'Authorization: Bearer <token>' header is required")
        too_large = _error(413, "TOO_LARGE", f"the body is larger than {MAX_BODY} bytes")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return too_large
        data = b""
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_BODY:
                return too_large
        try:
            events = parse_notification(data)
        except NotificationError as exc:
            return _error(400, "BAD_NOTIFICATION", str(exc))
        ours = [(e.tag, e.action) for e in events if self.repository is None or e.repository == self.repository]
        if not ours:
            return _answer(200, {"triggered": False, "events": len(events), "reason": "no tag of this repository"})
        queued = self.forward(ours)
        return _answer(202, {"triggered": True, "tags": sorted({tag for tag, _ in ours}), "queued": queued})
