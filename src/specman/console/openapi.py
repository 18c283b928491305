"""The OpenAPI 3.0 document of the console, served at ``/openapi.json``.

Hand-written as a Python dict (no generator: the API is small and its shapes are fixed by the product's
documentation); the schemathesis test in ``tests/test_console_openapi.py`` checks that the server's answers match it.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from specman import __version__
from specman.console.bodies import MAX_BODY
from specman.console.jobs import JOBS

__all__ = ["openapi_document"]

_STR: Final = {"type": "string"}
_BOOL: Final = {"type": "boolean"}
_TIME: Final = {"type": "string", "format": "date-time"}
_NULL_TIME: Final = {"type": "string", "format": "date-time", "nullable": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def _all(props: dict[str, Any]) -> dict[str, Any]:
    """An object whose properties are all required."""
    return _obj(list(props), props)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses if s in _ERROR_TEXT}


def _body(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema_name)}}}


_SECURED: Final[list[dict[str, list[str]]]] = [{"cookie": []}, {"header": []}]
_UID: Final = {"name": "uid", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
_JOB: Final = {"name": "job", "in": "path", "required": True, "schema": {"type": "string", "enum": list(JOBS)}}
_CLOUD: Final = {"name": "cloud", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}


def _op(summary: str, responses: dict[str, Any], *, secured: bool = True, **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    op["security"] = _SECURED if secured else []
    if secured:
        responses.update(_errors(401))
    return op


_POLICY_PROPS: Final[dict[str, Any]] = {
    "verify": {
        "type": "string",
        "enum": ["off", "audit", "required"],
        "description": "Signature policy serve --console follows (omitted on PUT keeps the stored policy).",
    },
    "verifyKeys": {"type": "array", "maxItems": 16, "items": {"type": "string", "description": "PEM public key"}},
    "verifyTags": {"type": "array", "items": {"type": "string", "description": "tag glob"}},
}
_AWS_PROPS: Final[dict[str, Any]] = {
    "authType": {
        "type": "string",
        "enum": ["basic", "ecr"],
        "description": "basic: username and password; ecr: the password comes from AWS ECR GetAuthorizationToken.",
    },
    "awsAccessKeyId": {"type": "string", "description": "ecr: an IAM access key id (with awsSecretAccessKey)."},
    "awsRoleArn": {"type": "string", "description": "ecr: a role to assume with STS (Palette's STS method)."},
    "awsExternalId": {"type": "string", "description": "ecr: the external ID the role's trust policy requires."},
}


def _schemas() -> dict[str, Any]:
    registry_props = {
        "name": {"type": "string", "minLength": 1, "maxLength": 128},
        "endpoint": {
            "type": "string",
            "pattern": r"^(https?://)?[A-Za-z0-9][A-Za-z0-9.-]*(:[1-9][0-9]{0,3})?/?$",
            "description": "https://HOST[:PORT], http://HOST[:PORT] or HOST[:PORT]",
        },
        "username": _STR,
        "password": {"type": "string", "description": "Write-only; omitted on PUT keeps the stored one."},
        "caCert": {"type": "string", "description": "PEM CA certificates to trust"},
        "insecureSkipVerify": _BOOL,
        "containsSpectroManifests": {"type": "boolean", "description": "At most one registry (409 otherwise)."},
        **_POLICY_PROPS,
        **_AWS_PROPS,
        "awsSecretAccessKey": {"type": "string", "description": "Write-only; omitted on PUT keeps the stored one."},
    }
    run = _obj(
        ["id", "state", "queuedAt", "startedAt", "endedAt", "items", "error"],
        {
            "id": {"type": "integer"},
            "state": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
            "queuedAt": _TIME,
            "startedAt": _NULL_TIME,
            "endedAt": _NULL_TIME,
            "items": {"type": "integer", "nullable": True},
            "error": {"type": "string", "nullable": True},
        },
    )
    job_props = {"name": {"type": "string", "enum": list(JOBS)}, "kind": _STR}
    return {
        "Error": _obj(["code", "message"], {"code": _STR, "message": _STR, "field": _STR}),
        "Login": _obj(["username", "password"], {"username": _STR, "password": _STR}),
        "LoginResult": _obj(["Authorization", "expiresAt"], {"Authorization": _STR, "expiresAt": _TIME}),
        "ScarConfigInput": _obj(
            ["endpoint"],
            {
                "endpoint": {
                    "type": "string",
                    "pattern": r"^https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[1-9][0-9]{0,3})?(/.*)?$",
                },
                "username": _STR,
                "password": {
                    "type": "string",
                    "description": "Write-only; omitted keeps the stored one while a username is set, empty clears it.",
                },
                "caCert": _STR,
                "insecureSkipVerify": _BOOL,
            },
        ),
        "ScarConfig": _obj(
            ["endpoint", "username", "passwordSet", "caCert", "insecureSkipVerify", "updatedAt"],
            {
                "endpoint": _STR,
                "username": _STR,
                "passwordSet": _BOOL,
                "caCert": _STR,
                "insecureSkipVerify": _BOOL,
                "updatedAt": _TIME,
            },
        ),
        "RegistryInput": _obj(["name", "endpoint"], registry_props),
        "ValidateInput": _obj(
            ["endpoint"],
            {
                **registry_props,
                "uid": {
                    "type": "string",
                    "maxLength": 64,
                    "description": "A stored registry whose password is used when password is omitted (edit forms).",
                },
            },
        ),
        "Registry": _all(
            {
                "uid": _STR,
                **{k: v for k, v in registry_props.items() if k not in ("password", "awsSecretAccessKey")},
                "passwordSet": _BOOL,
                "verifyKeyFingerprints": {"type": "array", "items": _STR, "description": "sha256 of each key's SPKI"},
                "awsSecretAccessKeySet": _BOOL,
                "createdAt": _TIME,
                "updatedAt": _TIME,
                "lastValidation": {
                    "allOf": [_ref("Validation")],
                    "nullable": True,
                    "description": "The last POST .../{uid}/validate of the stored values (null after they changed).",
                },
            },
        ),
        "Registries": _obj(["items"], {"items": {"type": "array", "items": _ref("Registry")}}),
        "Validation": _obj(
            ["ok", "checks"],
            {
                "ok": _BOOL,
                "validatedAt": {**_TIME, "description": "Only in a registry's lastValidation"},
                "checks": {
                    "type": "array",
                    "items": _obj(
                        ["name", "ok", "message"],
                        {
                            "name": {
                                "type": "string",
                                "enum": ["endpoint", "reachable", "tls", "credentials", "repository", "signatures"],
                            },
                            "ok": _BOOL,
                            "message": _STR,
                        },
                    ),
                },
            },
        ),
        "JobRun": run,
        "Job": _obj(["name", "kind", "runs"], {**job_props, "runs": {"type": "array", "items": _ref("JobRun")}}),
        "Jobs": _obj(
            ["items"],
            {
                "items": {
                    "type": "array",
                    "items": _obj(
                        ["name", "kind", "lastRun"],
                        {**job_props, "lastRun": {**_ref("JobRun"), "nullable": True}},
                    ),
                }
            },
        ),
        "Clouds": _obj(
            ["items"],
            {
                "items": {
                    "type": "array",
                    "items": _obj(
                        ["cloud", "instanceTypes", "storageTypes"],
                        {"cloud": _STR, "instanceTypes": {"type": "integer"}, "storageTypes": {"type": "integer"}},
                    ),
                }
            },
        ),
        "CloudData": _obj(
            ["cloud", "kind", "ingestedAt", "items"],
            {
                "cloud": _STR,
                "kind": {"type": "string", "enum": ["instanceTypes", "storageTypes"]},
                "ingestedAt": _TIME,
                "items": {"type": "array", "items": {"type": "object"}},
            },
        ),
        "SpectroSource": _all(
            {
                "uid": _STR,
                "name": _STR,
                "endpoint": _STR,
                "registry": _STR,
                "plainHttp": _BOOL,
                "repository": _STR,
                "username": _STR,
                "password": _STR,
                "caCert": _STR,
                "insecureSkipVerify": _BOOL,
                **_POLICY_PROPS,
                **_AWS_PROPS,
                "awsSecretAccessKey": _STR,
                "awsSecretAccessKeySet": _BOOL,
                "updatedAt": _TIME,
            },
        ),
    }


def _paths() -> dict[str, Any]:
    """The operations; every state change (and the job run's GET) may also answer 403 to another origin."""
    paths = _operations()
    for path, item in paths.items():
        for method, op in item.items():
            if method in ("post", "put", "delete") or (method == "get" and path.endswith("/run")):
                op["responses"].update(_errors(403))
    return paths


def _operations() -> dict[str, Any]:
    no_content = {"204": {"description": "Done"}}
    return {
        "/healthz": {"get": _op("Liveness", {"200": _json({"type": "object"}, "Alive")}, secured=False)},
        "/v1/auth/syslogin": {
            "post": _op(
                "Log in (setCookie=true also sets the Authorization cookie)",
                {"200": _json(_ref("LoginResult"), "Session token"), **_errors(400, 401, 413, 422, 429)},
                secured=False,
                parameters=[{"name": "setCookie", "in": "query", "required": False, "schema": _BOOL}],
                requestBody=_body("Login"),
            )
        },
        "/v1/auth/logout": {"post": _op("Revoke the session token", dict(no_content))},
        "/v1/system/config/scar": {
            "get": _op(
                "The SCAR endpoint (never the password)", {"200": _json(_ref("ScarConfig"), "SCAR"), **_errors(404)}
            ),
            "put": _op(
                "Set the SCAR endpoint the jobs read",
                {**no_content, **_errors(400, 413, 422)},
                requestBody=_body("ScarConfigInput"),
            ),
        },
        "/v1/registries/oci": {
            "get": _op("Pack registries", {"200": _json(_ref("Registries"), "Registries")}),
            "post": _op(
                "Add a pack registry",
                {"201": _json(_ref("Registry"), "Created"), **_errors(400, 409, 413, 422)},
                requestBody=_body("RegistryInput"),
            ),
        },
        "/v1/registries/oci/validate": {
            "post": _op(
                "Check a registry for real (reachable, TLS, credentials, repository)",
                {"200": _json(_ref("Validation"), "Checks"), **_errors(400, 413, 422)},
                requestBody=_body("ValidateInput"),
            )
        },
        "/v1/registries/oci/{uid}": {
            "parameters": [_UID],
            "get": _op("One registry", {"200": _json(_ref("Registry"), "Registry"), **_errors(404)}),
            "put": _op(
                "Replace a registry (password omitted: kept)",
                {"200": _json(_ref("Registry"), "Updated"), **_errors(400, 404, 409, 413, 422)},
                requestBody=_body("RegistryInput"),
            ),
            "delete": _op("Remove a registry", {**no_content, **_errors(404)}),
        },
        "/v1/registries/oci/{uid}/validate": {
            "parameters": [_UID],
            "post": _op(
                "Check a stored registry and keep the result as its lastValidation",
                {"200": _json(_ref("Validation"), "Checks"), **_errors(404, 413)},
            ),
        },
        "/v1/jobs/internal": {"get": _op("Jobs and their last run", {"200": _json(_ref("Jobs"), "Jobs")})},
        "/v1/jobs/internal/{job}": {
            "parameters": [_JOB],
            "get": _op("The last runs of a job", {"200": _json(_ref("Job"), "Job"), **_errors(404)}),
        },
        "/v1/jobs/internal/{job}/run": {
            "parameters": [_JOB],
            "get": _op("Start a run (as the documentation's script does)", {**no_content, **_errors(404)}),
            "post": _op("Start a run", {**no_content, **_errors(404, 413)}),
        },
        "/v1/clouds": {"get": _op("Clouds with ingested data", {"200": _json(_ref("Clouds"), "Clouds")})},
        "/v1/clouds/{cloud}/instanceTypes": {
            "parameters": [_CLOUD],
            "get": _op("Ingested instance types", {"200": _json(_ref("CloudData"), "Data"), **_errors(404)}),
        },
        "/v1/clouds/{cloud}/storageTypes": {
            "parameters": [_CLOUD],
            "get": _op("Ingested storage types", {"200": _json(_ref("CloudData"), "Data"), **_errors(404)}),
        },
        "/v1/system/specman/source": {
            "get": {
                "summary": "The 'Contains Spectro Manifests' registry with its credentials (service token only)",
                "security": [{"serviceToken": []}],
                "responses": {"200": _json(_ref("SpectroSource"), "Source"), **_errors(401, 404)},
            }
        },
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": _ref("Error")}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "specman console system API",
            "version": __version__,
            "description": f"Every error body is {{code, message}}; request bodies are limited to {MAX_BODY} bytes.",
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": {f"E{s}": {"description": d, **error} for s, d in _ERROR_TEXT.items()},
            "securitySchemes": {
                "cookie": {"type": "apiKey", "in": "cookie", "name": "Authorization"},
                "header": {"type": "apiKey", "in": "header", "name": "Authorization"},
                "serviceToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }


_ERROR_TEXT: Final = {
    400: "Malformed request (not JSON)",
    401: "No valid token",
    403: "Cross-origin request refused (its Origin is not the console's own)",
    404: "Not found",
    409: "Conflict",
    413: "Body over 1 MiB",
    422: "Invalid field",
    429: "Too many failed logins",
}
