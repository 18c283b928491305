"""The AWS part of a pack registry (Palette's "OCI Authentication Type: ECR"): its fields in the API, checked.

``authType`` is ``basic`` (username and password) or ``ecr`` (the password comes from AWS ECR's
GetAuthorizationToken).  For ``ecr``: ``awsAccessKeyId`` + ``awsSecretAccessKey`` (Palette's "Credentials"), and/or
``awsRoleArn`` (+ ``awsExternalId``) assumed with STS (Palette's "STS"); with neither, the AWS identity of the
process using the registry (IRSA, EKS Pod Identity).  The secret is write-only: answers carry
``awsSecretAccessKeySet``; omitted on an update, the stored one is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from specman.console.bodies import Fields, invalid
from specman.oci.providers import AwsSettings

__all__ = ["AUTH_TYPES", "AwsFields", "aws_fields", "aws_json", "secret_context"]

AUTH_TYPES: Final = ("basic", "ecr")
_ROLE_ARN: Final = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_ACCESS_KEY: Final = re.compile(r"^[A-Z0-9]{16,128}$")
_EXTERNAL_ID: Final = re.compile(r"^[\w+=,.@:/-]{2,1224}$")


def secret_context(uid: str) -> str:
    """The associated data sealing a registry's AWS secret access key (``console/crypto.py``)."""
    return f"registry:{uid}:aws-secret-access-key"


@dataclass(frozen=True)
class AwsFields:
    auth_type: str
    settings: AwsSettings
    secret_given: bool  # awsSecretAccessKey was in the body (an update without it keeps the stored one)


def aws_fields(body: Fields) -> AwsFields:
    """``authType`` and the AWS fields of a registry body; 422 naming the field for anything wrong."""
    auth_type = body.string("authType", default="basic")
    if auth_type not in AUTH_TYPES:
        raise invalid("authType", f"must be one of {', '.join(AUTH_TYPES)}")
    key = body.string("awsAccessKeyId", max_length=128).strip()
    secret = body.string("awsSecretAccessKey", max_length=1024)
    role = body.string("awsRoleArn", max_length=2048).strip()
    external = body.string("awsExternalId", max_length=1224).strip()
    if auth_type == "basic":
        for name in ("awsAccessKeyId", "awsSecretAccessKey", "awsRoleArn", "awsExternalId"):
            if body.string(name, max_length=2048):
                raise invalid(name, "is only used with authType ecr")
        return AwsFields(auth_type, AwsSettings(), False)
    if body.string("username", max_length=512) or body.string("password"):
        field = "username" if body.string("username", max_length=512) else "password"
        raise invalid(field, "is not used with authType ecr: the password comes from AWS")
    if key and not _ACCESS_KEY.match(key):
        raise invalid("awsAccessKeyId", "is not an AWS access key id (16 or more capital letters and digits)")
    if secret and not key:
        raise invalid("awsAccessKeyId", "is required with awsSecretAccessKey")
    if role and not _ROLE_ARN.match(role):
        raise invalid("awsRoleArn", "is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    if external and not role:
        raise invalid("awsRoleArn", "is required with awsExternalId")
    if external and not _EXTERNAL_ID.match(external):
        raise invalid("awsExternalId", "must be 2 to 1224 letters, digits or +=,.@:/-")
    settings = AwsSettings(access_key_id=key, secret_access_key=secret, role_arn=role, external_id=external)
    return AwsFields(auth_type, settings, "awsSecretAccessKey" in body)


def aws_json(auth_type: str, settings: AwsSettings | None, secret_set: bool) -> dict[str, Any]:
    """The AWS part of a registry as answers show it (never the secret)."""
    s = settings or AwsSettings()
    return {
        "authType": auth_type,
        "awsAccessKeyId": s.access_key_id,
        "awsSecretAccessKeySet": secret_set,
        "awsRoleArn": s.role_arn,
        "awsExternalId": s.external_id,
    }
