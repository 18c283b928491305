"""The console's operations, independent of HTTP: SCAR configuration, pack registries, jobs and cloud data.

``Console`` ties the storage, the secret box, the authenticator and the job runner together.  Its methods are
blocking (database, network) and are called from a thread by the HTTP layer; they take validated values or a
``Fields`` body and return JSON-ready dicts.  Passwords are sealed before they reach the storage and are never part
of a returned dict, except in ``spectro_source`` — the answer only the service token may obtain.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from specman.console.auth import Authenticator
from specman.console.awsform import aws_fields, aws_json, secret_context
from specman.console.bodies import Fields, invalid
from specman.console.cafile import pem_problem
from specman.console.crypto import SecretBox
from specman.console.errors import ApiError
from specman.console.jobs import JOBS, JobRunner, ScarSource
from specman.console.registries import SPECTRO_REPOSITORY, RegistryTarget, check_registry, parse_endpoint
from specman.console.storage import ConflictError, JobRun, RegistryRecord, ScarRecord, Storage, Validation
from specman.errors import UsageError
from specman.oci.providers import AwsSettings
from specman.signature.keys import load_public_key
from specman.signature.policy import PolicyFieldError, PolicySpec

_POLICY_FIELDS: Final = ("verify", "verifyKeys", "verifyTags")


def _policy_fields(body: Fields) -> PolicySpec:
    """The signature policy fields of a registry body (``verify``, ``verifyKeys`` PEM texts, ``verifyTags``)."""
    value = {f: body.value[f] for f in _POLICY_FIELDS if f in body}
    try:
        return PolicySpec.from_json(value)
    except PolicyFieldError as exc:
        raise invalid(exc.field, str(exc)) from None


def _stored_policy(record: RegistryRecord) -> PolicySpec:
    try:
        return PolicySpec.from_json(json.loads(record.verify_policy)) if record.verify_policy else PolicySpec()
    except (ValueError, UsageError):
        return PolicySpec()  # written by this code only; a damaged value reads as no policy


def _policy_json(record: RegistryRecord) -> dict[str, Any]:
    spec = _stored_policy(record)
    fingerprints = [load_public_key(pem.encode(), "key").fingerprint for pem in spec.keys]
    return {**spec.to_json(), "verifyKeyFingerprints": fingerprints}


__all__ = ["Console", "rfc3339"]

_SCAR_CONTEXT: Final = "scar:password"
MAX_RUNS_SHOWN: Final = 20


def rfc3339(when: float | None) -> str | None:
    return None if when is None else datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _registry_context(uid: str) -> str:
    return f"registry:{uid}:password"


def _scar_endpoint(value: str) -> str:
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise invalid("endpoint", "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("endpoint", "must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise invalid("endpoint", "must not carry credentials (use username and password)")
    if parts.query or parts.fragment or any(c in value for c in " \t\r\n") or port == 0:
        raise invalid("endpoint", "must not have a query, fragment, whitespace or port 0")
    return value.strip().rstrip("/")


def _ca_cert(body: Fields) -> str:
    text = body.string("caCert", max_length=256 * 1024)
    problem = pem_problem(text)
    if problem:
        raise invalid("caCert", problem)
    return text


def _not_found(what: str) -> ApiError:
    return ApiError(404, "NotFound", f"{what} not found")


class Console:
    def __init__(self, storage: Storage, box: SecretBox, auth: Authenticator) -> None:
        self.storage = storage
        self.box = box
        self.auth = auth
        self.jobs = JobRunner(storage, self.scar_source)

    # -- SCAR -----------------------------------------------------------------------------------------------
    def put_scar(self, body: Fields) -> None:
        endpoint = _scar_endpoint(body.string("endpoint", required=True, max_length=2048))
        username = body.string("username")
        password = body.string("password")
        ca_cert = _ca_cert(body)
        insecure = body.boolean("insecureSkipVerify")
        if "password" in body or not username:
            sealed = self.box.seal(password, _SCAR_CONTEXT) if password else None
        else:  # omitted (a form leaving it unchanged): keep the stored one
            old = self.storage.scar()
            sealed = old.password if old is not None else None
        self.storage.put_scar(ScarRecord(endpoint, username, sealed, ca_cert, insecure, time.time()))

    def get_scar(self) -> dict[str, Any]:
        record = self.storage.scar()
        if record is None:
            raise ApiError(404, "NotFound", "the SCAR endpoint is not configured")
        return {
            "endpoint": record.endpoint,
            "username": record.username,
            "passwordSet": record.password is not None,
            "caCert": record.ca_cert,
            "insecureSkipVerify": record.insecure,
            "updatedAt": rfc3339(record.updated_at),
        }

    def scar_source(self) -> ScarSource | None:
        record = self.storage.scar()
        if record is None:
            return None
        password = self.box.open(record.password, _SCAR_CONTEXT) if record.password else ""
        return ScarSource(record.endpoint, record.username, password, record.ca_cert, record.insecure)

    # -- registries -----------------------------------------------------------------------------------------
    @staticmethod
    def _validation_json(v: Validation | None) -> dict[str, Any] | None:
        return None if v is None else {"ok": v.ok, "validatedAt": rfc3339(v.validated_at), "checks": v.checks}

    def _registry_json(self, r: RegistryRecord, validation: Validation | None = None) -> dict[str, Any]:
        return {
            "uid": r.uid,
            "name": r.name,
            "endpoint": r.endpoint,
            "username": r.username,
            "passwordSet": r.password is not None,
            "caCert": r.ca_cert,
            "insecureSkipVerify": r.insecure,
            "containsSpectroManifests": r.contains_spectro_manifests,
            **_policy_json(r),
            **aws_json(
                r.auth_type, AwsSettings(r.aws_access_key_id, "", r.aws_role_arn, r.aws_external_id), bool(r.aws_secret)
            ),
            "createdAt": rfc3339(r.created_at),
            "updatedAt": rfc3339(r.updated_at),
            "lastValidation": self._validation_json(validation),
        }

    def _registry_fields(self, body: Fields) -> RegistryTarget:
        endpoint = body.string("endpoint", required=True, max_length=512)
        try:
            parse_endpoint(endpoint)
        except ValueError as exc:
            raise invalid("endpoint", str(exc)) from None
        aws = aws_fields(body)
        return RegistryTarget(
            auth_type=aws.auth_type,
            aws=aws.settings if aws.auth_type == "ecr" else None,
            endpoint=endpoint.strip().rstrip("/"),
            username=body.string("username", max_length=512),
            password=body.string("password"),
            ca_cert=_ca_cert(body),
            insecure=body.boolean("insecureSkipVerify"),
            contains_spectro_manifests=body.boolean("containsSpectroManifests"),
            verify=_policy_fields(body),
        )

    @staticmethod
    def _name(body: Fields) -> str:
        name = body.string("name", required=True, max_length=128).strip()
        if not name or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise invalid("name", "must be a non-empty single line")
        return name

    def _record(
        self, uid: str, name: str, t: RegistryTarget, created: float, sealed: bytes | None, aws_sealed: bytes | None
    ) -> RegistryRecord:
        aws = t.aws or AwsSettings()
        return RegistryRecord(
            auth_type=t.auth_type,
            aws_access_key_id=aws.access_key_id,
            aws_secret=aws_sealed if t.auth_type == "ecr" else None,
            aws_role_arn=aws.role_arn,
            aws_external_id=aws.external_id,
            uid=uid,
            name=name,
            endpoint=t.endpoint,
            username=t.username,
            password=sealed,
            ca_cert=t.ca_cert,
            insecure=t.insecure,
            contains_spectro_manifests=t.contains_spectro_manifests,
            created_at=created,
            updated_at=time.time(),
            verify_policy=json.dumps(t.verify.to_json()) if t.verify.mode != "off" or t.verify.keys else "",
        )

    @staticmethod
    def _conflict(exc: ConflictError) -> ApiError:
        return ApiError(409, "Conflict", str(exc), field=exc.field or None)

    def create_registry(self, body: Fields) -> dict[str, Any]:
        name = self._name(body)
        target = self._registry_fields(body)
        uid = uuid.uuid4().hex
        sealed = self.box.seal(target.password, _registry_context(uid)) if target.password else None
        record = self._record(uid, name, target, time.time(), sealed, self._seal_aws(uid, target))
        try:
            self.storage.insert_registry(record)
        except ConflictError as exc:
            raise self._conflict(exc) from None
        return self._registry_json(record)

    def list_registries(self) -> dict[str, Any]:
        validations = self.storage.validations()
        return {"items": [self._registry_json(r, validations.get(r.uid)) for r in self.storage.registries()]}

    def _existing(self, uid: str) -> RegistryRecord:
        record = self.storage.registry(uid) if len(uid) <= 64 else None
        if record is None:
            raise _not_found(f"registry {uid[:64]!r}")
        return record

    def get_registry(self, uid: str) -> dict[str, Any]:
        return self._registry_json(self._existing(uid), self.storage.validations().get(uid))

    def update_registry(self, uid: str, body: Fields) -> dict[str, Any]:
        old = self._existing(uid)
        name = self._name(body)
        target = self._registry_fields(body)
        if not any(f in body for f in _POLICY_FIELDS):
            target = replace(target, verify=self._target(old).verify)  # omitted: keep the stored policy
        if "password" in body:
            sealed = self.box.seal(target.password, _registry_context(uid)) if target.password else None
        else:
            sealed = old.password  # omitted: keep the stored password
        aws_sealed = self._seal_aws(uid, target) if "awsSecretAccessKey" in body else old.aws_secret
        record = self._record(uid, name, target, old.created_at, sealed, aws_sealed)
        try:
            if not self.storage.update_registry(record):
                raise _not_found(f"registry {uid!r}")
        except ConflictError as exc:
            raise self._conflict(exc) from None
        validation = self.storage.validations().get(uid)
        if validation is not None and self._target(old) != self._target(record):
            self.storage.clear_validation(uid)  # it was a validation of other values
            validation = None
        return self._registry_json(record, validation)

    def _seal_aws(self, uid: str, target: RegistryTarget) -> bytes | None:
        secret = target.aws.secret_access_key if target.aws is not None else ""
        return self.box.seal(secret, secret_context(uid)) if secret else None

    def delete_registry(self, uid: str) -> None:
        if len(uid) > 64 or not self.storage.delete_registry(uid):
            raise _not_found(f"registry {uid[:64]!r}")

    @staticmethod
    def _checks(target: RegistryTarget) -> dict[str, Any]:
        checks = check_registry(target)
        return {
            "ok": all(c.ok for c in checks),
            "checks": [{"name": c.name, "ok": c.ok, "message": c.message} for c in checks],
        }

    def validate_body(self, body: Fields) -> dict[str, Any]:
        """Validate the values in ``body``; with ``uid`` and no ``password``, the stored password of that registry
        is used (an edit form leaves the password empty when it is unchanged)."""
        target = self._registry_fields(body)
        uid = body.string("uid", max_length=64)
        if uid and "password" not in body:
            target = replace(target, password=self._target(self._existing(uid)).password)
        if uid and target.aws is not None and "awsSecretAccessKey" not in body:
            stored = self._target(self._existing(uid)).aws or AwsSettings()
            target = replace(target, aws=replace(target.aws, secret_access_key=stored.secret_access_key))
        return self._checks(target)

    def _target(self, record: RegistryRecord) -> RegistryTarget:
        password = self.box.open(record.password, _registry_context(record.uid)) if record.password else ""
        secret = self.box.open(record.aws_secret, secret_context(record.uid)) if record.aws_secret else ""
        aws = AwsSettings(record.aws_access_key_id, secret, record.aws_role_arn, record.aws_external_id)
        return RegistryTarget(
            record.endpoint,
            record.username,
            password,
            record.ca_cert,
            record.insecure,
            record.contains_spectro_manifests,
            _stored_policy(record),
            record.auth_type,
            aws if record.auth_type == "ecr" else None,
        )

    def validate_stored(self, uid: str) -> dict[str, Any]:
        """Validate the stored values and keep the result as the registry's ``lastValidation``."""
        result = self._checks(self._target(self._existing(uid)))
        self.storage.record_validation(uid, Validation(result["ok"], result["checks"], time.time()))
        return result

    def spectro_source(self) -> dict[str, Any]:
        """The "Contains Spectro Manifests" registry with its password: for the service token only."""
        record = self.storage.spectro_registry()
        if record is None:
            raise ApiError(404, "NotFound", "no registry is marked containsSpectroManifests")
        target = self._target(record)
        host, plain = parse_endpoint(record.endpoint)
        return {
            "uid": record.uid,
            "name": record.name,
            "endpoint": record.endpoint,
            "registry": host,
            "plainHttp": plain,
            "repository": SPECTRO_REPOSITORY,
            "username": target.username,
            "password": target.password,
            "caCert": target.ca_cert,
            "insecureSkipVerify": target.insecure,
            **target.verify.to_json(),
            **aws_json(record.auth_type, target.aws, bool(record.aws_secret)),
            "awsSecretAccessKey": target.aws.secret_access_key if target.aws else "",
            "updatedAt": rfc3339(record.updated_at),
        }

    # -- jobs and cloud data --------------------------------------------------------------------------------
    def known_job(self, job: str) -> str:
        if job not in JOBS:
            raise ApiError(404, "NotFound", f"unknown job {job[:100]!r} (known: {', '.join(JOBS)})")
        return job

    def run_job(self, job: str) -> None:
        self.jobs.trigger(self.known_job(job))

    @staticmethod
    def _run_json(run: JobRun) -> dict[str, Any]:
        return {
            "id": run.id,
            "state": run.state,
            "queuedAt": rfc3339(run.queued_at),
            "startedAt": rfc3339(run.started_at),
            "endedAt": rfc3339(run.ended_at),
            "items": run.items,
            "error": run.error,
        }

    def job(self, job: str) -> dict[str, Any]:
        runs = self.storage.runs(self.known_job(job), MAX_RUNS_SHOWN)
        return {"name": job, "kind": JOBS[job], "runs": [self._run_json(r) for r in runs]}

    def list_jobs(self) -> dict[str, Any]:
        out = []
        for name, kind in JOBS.items():
            runs = self.storage.runs(name, 1)
            out.append({"name": name, "kind": kind, "lastRun": self._run_json(runs[0]) if runs else None})
        return {"items": out}

    def clouds(self) -> dict[str, Any]:
        return {
            "items": [
                {
                    "cloud": cloud,
                    "instanceTypes": counts.get("instanceTypes", 0),
                    "storageTypes": counts.get("storageTypes", 0),
                }
                for cloud, counts in self.storage.clouds().items()
            ]
        }

    def cloud_data(self, cloud: str, kind: str) -> dict[str, Any]:
        found = self.storage.cloud_data(kind, cloud) if len(cloud) <= 64 else None
        if found is None:
            raise _not_found(f"{kind} of cloud {cloud[:64]!r}")
        items, ingested = found
        return {"cloud": cloud, "kind": kind, "ingestedAt": rfc3339(ingested), "items": items}
