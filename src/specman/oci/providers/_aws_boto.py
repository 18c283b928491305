"""The botocore side of the AWS provider: a session (the credential chain, or the console's keys and role), an
ECR client, and the mapping of botocore's exceptions onto ``ProviderError`` (one line naming AWS, never a secret).

Imported only by ``AwsProvider()``: botocore's import costs ~0.2 s, which commands that never reach ECR do not pay.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.session

from specman.errors import ProviderError

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from specman.oci.providers.aws import AwsSettings

__all__ = ["ecr_client", "make_session", "mapped"]

_CHAIN: Final = (
    "environment, shared config and credentials files, web identity (IRSA), "
    "container credentials (EKS Pod Identity) and instance metadata"
)
# Throttling, 5xx and connection failures: retried by botocore itself (standard mode), then reported.
_CONFIG: Final = botocore.config.Config(
    retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=15, user_agent_extra="specman"
)
_RETRYABLE_CODES: Final = frozenset(
    {"ThrottlingException", "ServerException", "ServiceUnavailable", "InternalFailure", "RequestExpired"}
)


class _FixedProvider(botocore.credentials.CredentialProvider):
    """Credentials given by the console (keys, or a role assumed with STS) put first in botocore's chain."""

    METHOD = "specman-console"
    CANONICAL_NAME = "customSpecmanConsole"

    def __init__(self, credentials: botocore.credentials.Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self._credentials


def make_session(settings: AwsSettings, region: str) -> botocore.session.Session:
    """A botocore session: the standard credential chain, or ``settings``' keys and/or role (assumed with STS in
    ``region``, refreshed by botocore before it expires).  ``AWS_REGION`` (which EKS sets, and the other SDKs read)
    counts as the default region when ``AWS_DEFAULT_REGION`` and the profile give none."""
    session = botocore.session.Session()
    if not session.get_config_variable("region") and os.environ.get("AWS_REGION"):
        session.set_config_variable("region", os.environ["AWS_REGION"])
    source: botocore.credentials.Credentials | None = None
    if settings.access_key_id or settings.secret_access_key:
        if not (settings.access_key_id and settings.secret_access_key):
            raise ProviderError("AWS: an access key id needs its secret access key (and the other way round)")
        source = botocore.credentials.Credentials(
            settings.access_key_id, settings.secret_access_key, method="specman-console"
        )
    if settings.role_arn:
        base = source
        if base is None:
            base = botocore.session.Session().get_credentials()
            if base is None:
                raise ProviderError(f"AWS: no credentials to assume role {settings.role_arn} with (looked in {_CHAIN})")
        extra: dict[str, Any] = {"RoleSessionName": "specman"}
        if settings.external_id:
            extra["ExternalId"] = settings.external_id
        sts_region = region or session.get_config_variable("region") or "us-east-1"

        def sts_client(service: str, **kwargs: Any) -> BaseClient:
            kwargs["region_name"] = kwargs.get("region_name") or sts_region
            return session.create_client(service, **kwargs)

        fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
            client_creator=sts_client, source_credentials=base, role_arn=settings.role_arn, extra_args=extra
        )
        source = botocore.credentials.DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
    if source is not None:
        resolver = session.get_component("credential_provider")
        resolver.insert_before("env", _FixedProvider(source))
    return session


def ecr_client(session: botocore.session.Session, region: str, fips: bool, dualstack: bool) -> BaseClient:
    """An ECR API client for ``region`` (FIPS / dual-stack endpoints as the registry host name asks; botocore
    applies ``AWS_ENDPOINT_URL_ECR`` / ``AWS_ENDPOINT_URL`` over them)."""
    config = _CONFIG.merge(botocore.config.Config(use_fips_endpoint=fips, use_dualstack_endpoint=dualstack))
    return session.create_client("ecr", region_name=region, config=config)


def _client_error(exc: botocore.exceptions.ClientError, what: str, settings: AwsSettings) -> ProviderError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "error")
    message = " ".join(str(error.get("Message") or "").split())[:300]
    operation = exc.operation_name or "the call"
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if operation == "AssumeRole":
        text = f"AWS: STS AssumeRole of {settings.role_arn} was refused: {code}"
    elif operation == "AssumeRoleWithWebIdentity":
        text = f"AWS: the web identity (IRSA) role could not be assumed: {code}"
    else:
        text = f"AWS: {what} was refused ({settings.source}): {code}"
    retryable = code in _RETRYABLE_CODES or status >= 500
    return ProviderError(f"{text}{': ' + message if message else ''}", retryable=retryable)


@contextlib.contextmanager
def mapped(what: str, host: str, settings: AwsSettings) -> Iterator[None]:
    """Map botocore failures inside the block onto ``ProviderError`` (one line, naming AWS and ``what``)."""
    for_host = f" for registry {host}" if host else ""
    try:
        yield
    except botocore.exceptions.NoCredentialsError:
        raise ProviderError(f"AWS: no credentials found{for_host} (looked in {_CHAIN})") from None
    except botocore.exceptions.NoRegionError:
        raise ProviderError(f"AWS: no region{for_host}: set AWS_REGION or AWS_DEFAULT_REGION") from None
    except botocore.exceptions.ClientError as exc:
        raise _client_error(exc, what, settings) from None
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError) as exc:
        raise ProviderError(f"AWS: {what}: cannot connect: {exc}", retryable=True) from None
    except (botocore.exceptions.ReadTimeoutError, botocore.exceptions.HTTPClientError) as exc:
        raise ProviderError(f"AWS: {what}: {exc}", retryable=True) from None
    except botocore.exceptions.CredentialRetrievalError as exc:
        raise ProviderError(f"AWS: could not get credentials{for_host}: {exc}", retryable=True) from None
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        # PartialCredentialsError, InvalidConfigError (a token file without a role ARN), ProfileNotFound, a
        # container credentials URL botocore refuses (ValueError)...: configuration, retrying will not help
        raise ProviderError(f"AWS: {what}: {exc}") from None
