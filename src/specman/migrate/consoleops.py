"""What ``migrate`` asks of the console, through its system API only (the calls the documentation's operator makes).

* ``register_registry``: the OCI registry holding the manifests, added or updated with "Contains Spectro
  Manifests", then validated by the console itself (its own checks, from where it runs);
* ``ScarConfig`` / ``switch_scar`` / ``restore_scar``: the SCAR endpoint read before, set to specman, put back;
* ``run_job``: one of the two sync jobs triggered and followed until its run ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

from specman.console.client import ConsoleClient
from specman.console.registries import parse_endpoint
from specman.errors import ConsoleError, SpecmanError

__all__ = [
    "JOBS",
    "JobResult",
    "Registration",
    "ScarConfig",
    "precheck_registry",
    "register_registry",
    "registry_body",
    "restore_scar",
    "run_job",
    "switch_scar",
]

JOBS: Final = ("syncCloudInstanceTypesData", "syncCloudStorageTypesData")
SCAR_PATH: Final = "/v1/system/config/scar"
REGISTRIES_PATH: Final = "/v1/registries/oci"


@dataclass(frozen=True)
class ScarConfig:
    """The SCAR configuration as the console shows it (the password only as "set")."""

    endpoint: str
    username: str = ""
    password_set: bool = False
    ca_cert: str = ""
    insecure: bool = False

    @classmethod
    def read(cls, console: ConsoleClient) -> ScarConfig | None:
        try:
            body = console.get_json(SCAR_PATH)
        except ConsoleError as exc:
            if exc.status == 404:
                return None  # never configured
            raise
        endpoint = body.get("endpoint")
        if not isinstance(endpoint, str):
            raise ConsoleError(f"console: GET {SCAR_PATH}: no endpoint in the answer")
        return cls(
            endpoint,
            str(body.get("username") or ""),
            body.get("passwordSet") is True,
            str(body.get("caCert") or ""),
            body.get("insecureSkipVerify") is True,
        )


def switch_scar(console: ConsoleClient, endpoint: str, ca_pem: str, username: str = "", password: str = "") -> None:
    """Point the SCAR at specman, with its CA to verify it and the credentials of its Basic auth if it has any
    (the documentation's setup has none: specman serves read-only content)."""
    body = {"endpoint": endpoint, "username": username, "password": password, "caCert": ca_pem}
    console.request("PUT", SCAR_PATH, body={**body, "insecureSkipVerify": False})


def restore_scar(console: ConsoleClient, previous: ScarConfig, password: str) -> None:
    console.request(
        "PUT",
        SCAR_PATH,
        body={
            "endpoint": previous.endpoint,
            "username": previous.username,
            "password": password,
            "caCert": previous.ca_cert,
            "insecureSkipVerify": previous.insecure,
        },
    )


@dataclass(frozen=True)
class Registration:
    uid: str
    name: str
    created: bool
    unflagged: list[str] = field(default_factory=list)  # registries that carried the flag before
    checks: list[dict[str, Any]] = field(default_factory=list)


def _same_endpoint(a: str, b: str) -> bool:
    try:
        return parse_endpoint(a) == parse_endpoint(b)
    except ValueError:
        return False


def _free_name(wanted: str, taken: set[str]) -> str:
    name, n = wanted, 2
    while name in taken:
        name, n = f"{wanted}-{n}", n + 1
    return name


def registry_body(
    endpoint: str, username: str, password: str | None, ca_pem: str, insecure: bool, *, auth_type: str = "basic"
) -> dict[str, Any]:
    """The console's pack registry for ``--to``; ``auth_type`` ``ecr``: the password comes from AWS (the
    console's and specman's own AWS identity), so no username or password is stored."""
    if auth_type == "ecr":
        username, password = "", None
    body: dict[str, Any] = {
        "endpoint": endpoint,
        "username": username,
        "caCert": ca_pem,
        "insecureSkipVerify": insecure,
        "containsSpectroManifests": True,
    }
    if password is not None:
        body["password"] = password
    if auth_type != "basic":
        body["authType"] = auth_type
    return body


def precheck_registry(console: ConsoleClient, body: dict[str, Any]) -> None:
    """The console's own checks of the registry values (reachable, TLS, credentials) before anything is changed;
    the repository itself may not exist yet."""
    check = {**body, "containsSpectroManifests": False}
    if "password" not in check:  # none given: the console checks with the one it stores for this endpoint
        items = console.get_json(REGISTRIES_PATH).get("items") or []
        known = next((r for r in items if _same_endpoint(str(r.get("endpoint", "")), str(body["endpoint"]))), None)
        if known is not None:
            check["uid"] = known["uid"]
    result = console.request("POST", f"{REGISTRIES_PATH}/validate", body=check)
    _require_ok(result, str(body["endpoint"]))


def _require_ok(result: Any, endpoint: str) -> list[dict[str, Any]]:
    checks = list(result.get("checks") or []) if isinstance(result, dict) else []
    if not (isinstance(result, dict) and result.get("ok") is True):
        failed = [f"{c.get('name')}: {c.get('message')}" for c in checks if not c.get("ok")]
        raise SpecmanError(f"the console could not validate registry {endpoint}: {'; '.join(failed) or 'no checks'}")
    return checks


def register_registry(
    console: ConsoleClient,
    body: dict[str, Any],
    *,
    name: str = "spectro-manifests",
) -> Registration:
    """Add (or update, matched by endpoint) the registry with "Contains Spectro Manifests"; move the flag from
    another registry that had it; have the console validate it.  ``SpecmanError`` naming the failed checks."""
    endpoint = str(body["endpoint"])
    items = console.get_json(REGISTRIES_PATH).get("items") or []
    mine = next((r for r in items if _same_endpoint(str(r.get("endpoint", "")), endpoint)), None)
    unflagged = []
    for other in items:
        if other is not mine and other.get("containsSpectroManifests") is True:
            kept: dict[str, Any] = {k: other.get(k) or "" for k in ("name", "endpoint", "username", "caCert")}
            kept |= {"insecureSkipVerify": other.get("insecureSkipVerify") is True, "containsSpectroManifests": False}
            console.request("PUT", f"{REGISTRIES_PATH}/{other['uid']}", body=kept)
            unflagged.append(str(other.get("name")))
    body = dict(body)
    if mine is not None:
        uid, created = str(mine["uid"]), False
        body["name"] = mine.get("name") or name
        console.request("PUT", f"{REGISTRIES_PATH}/{uid}", body=body)
    else:
        body["name"] = _free_name(name, {str(r.get("name")) for r in items})
        body.setdefault("password", "")
        answer = console.request("POST", REGISTRIES_PATH, body=body)
        uid, created = str(answer["uid"]), True
    checks = _require_ok(console.request("POST", f"{REGISTRIES_PATH}/{uid}/validate", body={}), endpoint)
    return Registration(uid, str(body["name"]), created, unflagged, checks)


@dataclass(frozen=True)
class JobResult:
    name: str
    state: str
    seconds: float
    items: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "succeeded"


def run_job(console: ConsoleClient, job: str, timeout: float, *, poll: float = 0.25) -> JobResult:
    """Trigger ``job`` and follow it: the first run that had not started when it was triggered, until it ends."""
    path = f"/v1/jobs/internal/{job}"
    runs = console.get_json(path).get("runs") or []
    baseline = max((int(r["id"]) for r in runs if r.get("state") != "queued"), default=0)
    started = time.monotonic()
    console.request("POST", path + "/run")
    while True:
        runs = console.get_json(path).get("runs") or []
        mine = min((r for r in runs if int(r["id"]) > baseline), key=lambda r: int(r["id"]), default=None)
        if mine is not None and mine.get("state") in ("succeeded", "failed"):
            return JobResult(job, str(mine["state"]), time.monotonic() - started, mine.get("items"), mine.get("error"))
        if time.monotonic() - started > timeout:
            state = mine.get("state") if mine else "not started"
            return JobResult(job, "timeout", time.monotonic() - started, None, f"still {state} after {timeout:.0f} s")
        time.sleep(poll)
