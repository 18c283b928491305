"""Instant sync: registry notifications → ``POST /_specman/notify`` → the sync loop; status, metrics, rotation.

The end-to-end test is the issue's "done when": the real ``docker-registry`` with token auth sends its own
notification envelopes over verified HTTPS to a real ``specman serve`` (two workers), which syncs the pushed tag.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from specman.errors import SyncError
from specman.oci import LayoutRepository, RegistryOptions, RemoteRepository, open_repository, parse_reference
from specman.runtime.tls import DEFAULT_SANS, ensure_certificates
from specman.server.notify import MAX_BODY, NotificationError, Notifier, TagEvent, parse_notification
from specman.store import Store
from specman.sync import SyncResult, TagFilter
from specman.sync.status import SyncStatus
from specman.sync.trigger import Trigger
from tests.conftest import RegistryFactory, ServeFactory
from tests.fixtures.registry import Registry, free_port
from tests.fixtures.serve import poll
from tests.test_sync import FAST_RETRY, push_tree, sync

REPO = "spectro-packs/spectro-manifests/manifest"
TOKEN = "notify-Token-42"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _event(action: str = "push", repository: str = REPO, tag: str | None = "1.0.0", media: str = MANIFEST) -> dict:
    target: dict[str, object] = {"mediaType": media, "repository": repository, "digest": "sha256:" + "a" * 64}
    if tag is not None:
        target["tag"] = tag
    return {"id": "x", "action": action, "target": target, "request": {"method": "PUT"}}


def _harbor(kind: str = "PUSH_ARTIFACT", tags: tuple[str, ...] = ("2.0.0",), full: str = REPO) -> dict:
    resources = [{"digest": "sha256:" + "b" * 64, "tag": t, "resource_url": f"harbor.local/{full}:{t}"} for t in tags]
    return {
        "type": kind,
        "occur_at": 1700000000,
        "operator": "admin",
        "event_data": {"resources": resources, "repository": {"name": "manifest", "repo_full_name": full}},
    }


# -- payloads ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"events": [_event()]}, [TagEvent(REPO, "1.0.0", "push")]),
        ({"events": [_event(tag=None), _event(media="application/octet-stream", tag="x")]}, []),  # blob, digest push
        ({"events": [_event("pull"), _event("delete", tag="0.0.0")]}, [TagEvent(REPO, "0.0.0", "delete")]),
        ({"events": []}, []),
        (_harbor(), [TagEvent(REPO, "2.0.0", "push")]),
        (_harbor("DELETE_ARTIFACT", ("a", "b")), [TagEvent(REPO, "a", "delete"), TagEvent(REPO, "b", "delete")]),
        (_harbor("SCANNING_COMPLETED"), []),
        (
            {"specversion": "1.0", "type": "harbor.artifact.pushed", "data": _harbor()["event_data"]},
            [TagEvent(REPO, "2.0.0", "push")],
        ),
    ],
)
def test_payloads_understood(body: dict, expected: list[TagEvent]) -> None:
    assert parse_notification(json.dumps(body).encode()) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"hello": 1}', "not a registry notification"),
        (b'{"events": {"a": 1}}', "'events' must be a list"),
        (b'{"events": [7]}', "events[0] must be a JSON object"),
        (b'{"events": [{"target": "x"}]}', "events[0].target must be a JSON object"),
        (b'{"type": "PUSH_ARTIFACT", "event_data": []}', "event_data must be a JSON object"),
        (b'{"type": "PUSH_ARTIFACT", "event_data": {"repository": {}}}', "repo_full_name"),
    ],
)
def test_malformed_payloads_rejected(data: bytes, message: str) -> None:
    with pytest.raises(NotificationError, match=re.escape(message)):
        parse_notification(data)


# -- the endpoint (in process) ----------------------------------------------------------------------------


def _endpoint(tmp_path: Path, **kw: object) -> tuple[_Client, list[list[tuple[str, str]]]]:
    forwarded: list[list[tuple[str, str]]] = []

    def forward(events: list[tuple[str, str]]) -> bool:
        forwarded.append(events)
        return True

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    kw.setdefault("token_file", str(token_file))
    notifier = Notifier(forward, repository=REPO, **kw)  # type: ignore[arg-type]
    app = Starlette(routes=[Route("/_specman/notify", notifier.handle, methods=["POST"])])
    return _Client(app), forwarded


class _Client:
    """POSTs to an ASGI app in process (httpx's ASGI transport is async only)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def post(self, url: str, **kw: object) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://t") as client:
                return await client.post(url, **kw)  # type: ignore[arg-type]

        return anyio.run(send)


def test_endpoint_answers(tmp_path: Path) -> None:
    client, forwarded = _endpoint(tmp_path)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    ok = client.post("/_specman/notify", json={"events": [_event(tag="3.0.0"), _event(tag=None)]}, headers=bearer)
    assert ok.status_code == 202 and ok.json()["tags"] == ["3.0.0"]
    harbor = client.post("/_specman/notify", json=_harbor(), headers={"Authorization": TOKEN})  # Harbor: bare token
    assert harbor.status_code == 202
    assert forwarded == [[("3.0.0", "push")], [("2.0.0", "push")]]

    cases: list[tuple[dict[str, str], bytes, int, str]] = [
        ({}, b"{}", 401, "UNAUTHORIZED"),
        ({"Authorization": "Bearer wrong"}, b"{}", 401, "UNAUTHORIZED"),
        ({"Authorization": f"Basic {TOKEN}"}, b"{}", 401, "UNAUTHORIZED"),
        (bearer, b"{not json", 400, "BAD_NOTIFICATION"),
        (bearer, b'{"events": 1}', 400, "BAD_NOTIFICATION"),
        (bearer, b" " * (MAX_BODY + 1), 413, "TOO_LARGE"),
    ]
    for headers, body, status, code in cases:
        response = client.post("/_specman/notify", content=body, headers=headers)
        assert (response.status_code, response.json()["code"]) == (status, code), headers
    other = client.post("/_specman/notify", json={"events": [_event(repository="other/repo")]}, headers=bearer)
    assert other.status_code == 200 and other.json()["triggered"] is False
    assert len(forwarded) == 2  # nothing but a 202 forwards anything


def test_endpoint_disabled_and_rotated_token(tmp_path: Path) -> None:
    client, forwarded = _endpoint(tmp_path, token_file=None)
    response = client.post("/_specman/notify", json={"events": [_event()]}, headers={"Authorization": "Bearer x"})
    assert response.status_code == 403 and "--notify-token-file" in response.json()["message"]

    client, forwarded = _endpoint(tmp_path)
    (tmp_path / "token").write_text("rotated-Token-7\n")  # a Secret rotated under a running service
    old = client.post("/_specman/notify", json={"events": [_event()]}, headers={"Authorization": f"Bearer {TOKEN}"})
    new = client.post(
        "/_specman/notify", json={"events": [_event()]}, headers={"Authorization": "Bearer rotated-Token-7"}
    )
    assert (old.status_code, new.status_code) == (401, 202) and forwarded == [[("1.0.0", "push")]]


# -- the trigger: wake now, and again while the registry does not list a pushed tag yet ---------------------


def _listed(*tags: str) -> SyncResult:
    now = datetime.now(UTC)
    return SyncResult("r", now, now, 0.0, tags, tags, (), tags, {}, (), 1, dict.fromkeys(tags, "d"), 0)


def test_trigger_wakes_until_the_pushed_tag_is_listed() -> None:
    wake, clock = threading.Event(), [100.0]
    trigger = Trigger(wake, TagFilter(("4.*",)), patience=5.0, first_retry=0.01, clock=lambda: clock[0])
    trigger.notified([("0.0.0", "push")])  # not selected by the filter: no sync
    assert not wake.is_set() and trigger.pending == []

    trigger.notified([("4.6.0", "push"), ("4.5.0", "delete")])
    assert wake.is_set() and trigger.pending == ["4.6.0"]
    wake.clear()
    trigger.after_sync(_listed("4.5.13"), None)  # the registry had not linked the tag yet
    assert wake.wait(5) and trigger.pending == ["4.6.0"]
    wake.clear()
    trigger.after_sync(None, SyncError("down", reason="ListTagsFailed", retryable=True))
    assert not wake.wait(0.2)  # after an error the loop's backoff decides
    trigger.after_sync(_listed("4.5.13", "4.6.0"), None)
    assert trigger.pending == [] and not wake.wait(0.2)

    trigger.notified([("4.7.0", "push")])
    clock[0] += 6  # past patience: given up, left for the next interval
    trigger.after_sync(_listed("4.5.13"), None)
    assert trigger.pending == []


# -- sync state -------------------------------------------------------------------------------------------


def test_sync_status_records_outcomes(tmp_path: Path) -> None:
    status = SyncStatus(source="r")
    assert status.state == "pending"
    status.record(None, SyncError("registry down", reason="ListTagsFailed", retryable=True))
    status.record(None, SyncError("registry down", reason="ListTagsFailed", retryable=True))
    assert (status.state, status.consecutive_failures, status.last_error_reason) == ("failing", 2, "ListTagsFailed")
    with Store(tmp_path / "d", durable=False) as store:
        result: SyncResult = sync(_LayoutLess(), store)  # nothing to list: an ok, empty reconcile
    status.record(result, None)
    assert (status.state, status.consecutive_failures, status.last_error) == ("ok", 0, None)
    assert status.last_success == status.last_finished is not None


class _LayoutLess:
    """A repository with no tags (the smallest source a reconcile accepts)."""

    display = "empty"

    def tags(self, *, page_size: int | None = None) -> list[str]:
        return []


# -- credentials rotation ---------------------------------------------------------------------------------


def test_password_file_read_again_after_refusal(tls_registry: Registry, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("not-the-password\n")
    options = RegistryOptions(username=tls_registry.username, password_file=password_file)
    repo = open_repository(
        parse_reference(f"{tls_registry.host}/rotate/me"),
        RegistryOptions(
            username=tls_registry.username, password=tls_registry.password, ca_file=str(tls_registry.ca_file)
        ),
    )
    push_tree(repo, "1.0.0", {"a.txt": "a"}, tmp_path)
    rotating = open_repository(
        parse_reference(f"{tls_registry.host}/rotate/me"),
        RegistryOptions(
            username=options.username, password_file=password_file, ca_file=str(tls_registry.ca_file), retry=FAST_RETRY
        ),
    )
    assert isinstance(rotating, RemoteRepository)
    with Store(tmp_path / "data", durable=False) as store:
        with pytest.raises(SyncError, match="unauthorized"):
            sync(rotating, store)
        password_file.write_text(f"{tls_registry.password}\n")  # the Secret is updated; same process, same client
        assert sync(rotating, store).digests.keys() == {"1.0.0"}


# -- end to end: docker-registry (token auth) → notifications over HTTPS → specman serve --------------------


def test_push_is_served_after_notification(
    registry_factory: RegistryFactory, serve_factory: ServeFactory, certs: object, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    tls = ensure_certificates(data / "tls", DEFAULT_SANS)  # serve reuses it; the registry must trust it first
    port = free_port()
    registry = registry_factory(
        "token",
        notifications=[
            {
                "name": "specman",
                "url": f"https://127.0.0.1:{port}/_specman/notify",
                "headers": {"Authorization": [f"Bearer {TOKEN}"]},
                "timeout": "2s",
                "threshold": 3,
                "backoff": "1s",
            }
        ],
        env={"SSL_CERT_FILE": str(tls.ca_cert)},
    )
    assert registry.ca_file is not None and registry.username and registry.password
    options = RegistryOptions(username=registry.username, password=registry.password, ca_file=str(registry.ca_file))
    repo = open_repository(parse_reference(f"{registry.host}/{REPO}"), options)
    for tag in ("4.5.13", "4.5.15"):
        push_tree(repo, tag, {"shared.json": tag, f"{tag}/version.json": tag}, tmp_path)
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "password").write_text(registry.password)
    args = [f"{registry.host}/{REPO}", "-u", registry.username, "--password-file", str(tmp_path / "password")]
    args += ["--ca-file", str(registry.ca_file)]
    server = serve_factory(
        args,
        data,
        port=port,
        workers=2,
        extra_args=["--interval", "1h", "--notify-token-file", str(tmp_path / "token")],
    )
    with server.client() as client:
        assert poll(lambda: client.get("/_specman/readyz").status_code == 200)
        assert client.get("/shared.json").text == "4.5.15"  # merged: the later version wins
        runs_before = client.get("/_specman/status").json()["sync"]["runs"]

        push_tree(repo, "0.0.0", {"0.0.0/new.json": "pushed now"}, tmp_path)  # the interval is 1 h: only a notify
        assert poll(lambda: client.get("/0.0.0/new.json").status_code == 200), server.log_tail()
        assert client.get("/0.0.0/new.json").text == "pushed now"
        assert client.get("/4.5.13/version.json").text == "4.5.13"

        status = client.get("/_specman/status").json()
        assert set(status["tags"]) == {"0.0.0", "4.5.13", "4.5.15"}
        assert status["sync"]["state"] == "ok" and status["sync"]["runs"] > runs_before
        assert status["source"] == f"{registry.host}/{REPO}"
        metrics = client.get("/_specman/metrics").text
        assert re.search(r'^specman_sync_runs_total\{result="success"\} [1-9]', metrics, re.M)
        assert re.search(r'^specman_http_requests_total\{method="POST",status="202"\} [1-9]', metrics, re.M)
        assert re.search(r"^specman_published_tags 3\.0$", metrics, re.M)
        assert re.search(r"^specman_sync_last_success_timestamp_seconds [1-9]", metrics, re.M)

    # the sync that served 0.0.0 may have been woken by the registry's retried delivery of the earlier pushes'
    # events (queued while serve was not up yet): the notification of 0.0.0 itself can come after it
    assert server.wait_log('msg="Notification received, syncing now" tags=0.0.0', timeout=30), server.log_tail()
    log = server.log_text()
    for line in (
        "Syncing with OCI repo",
        "tags[",
        "Downloading 0.0.0",
        "listing dir ",
        "filename: manifests.tgz, isDir: false",
        "Persisting 0.0.0",
    ):
        assert line in log, line
    assert registry.password not in log and TOKEN not in log


def test_bad_notifications_trigger_nothing(serve_factory: ServeFactory, tmp_path: Path) -> None:
    """Only the test sends notifications here (an OCI layout source): every run of the loop is accounted for."""
    layout = tmp_path / "layout"
    push_tree(LayoutRepository(layout, create=True), "1.0.0", {"a.txt": "a"}, tmp_path)
    (tmp_path / "token").write_text(TOKEN)
    server = serve_factory(
        [str(layout), "--oci-layout"],
        tmp_path / "data",
        extra_args=["--interval", "1h", "--notify-token-file", str(tmp_path / "token")],
    )
    notify, bearer = "/_specman/notify", {"Authorization": f"Bearer {TOKEN}"}
    with server.client() as client:
        assert poll(lambda: (client.get("/_specman/status").json()["sync"] or {}).get("runs") == 1)
        answers = [
            client.post(notify, json={"events": [_event()]}).status_code,
            client.post(notify, json={"events": [_event()]}, headers={"Authorization": "Bearer nope"}).status_code,
            client.post(notify, content=b"{", headers=bearer).status_code,
            client.post(notify, json={"events": [_event(tag=None)]}, headers=bearer).status_code,
            client.post(notify, content=b"x" * (MAX_BODY + 10), headers=bearer).status_code,
            client.get(notify).status_code,
        ]
        assert answers == [401, 401, 400, 200, 413, 405]
        time.sleep(0.5)  # a wrongly triggered sync would start at once
        assert client.get("/_specman/status").json()["sync"]["runs"] == 1
        assert client.post(notify, json={"events": [_event()]}, headers=bearer).status_code == 202
        assert poll(lambda: client.get("/_specman/status").json()["sync"]["runs"] >= 2)
