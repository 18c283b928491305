"""Registry credential providers: a registry password made from a cloud's own identity instead of a stored secret.

A cloud registry (AWS ECR) does not take a long-lived password: its password is a short-lived token that the cloud's
API issues to whoever holds cloud credentials (the pod's service account, the node's instance role...).  A provider
turns those ambient credentials into registry ``Credentials`` for a host, caches them, asks again before they
expire, and once more when the registry refuses them.  ``RegistryAuth`` consults it through two callables (lookup
and ``refused``), so the auth flow stays the same for every registry.

The interface is ``CredentialProvider`` (``credentials(host)``, ``refused(host, creds)``); ``choose_provider``
picks one for a host from ``--provider`` (``auto``, ``generic``, ``aws``): ``auto`` recognises ECR host names.
One module per cloud (``aws.py``); Google Artifact Registry or Azure Container Registry would each be one more
module with a host pattern and a class implementing the interface, plus one entry in ``PROVIDERS`` below
(see docs/ARCHITECTURE.md).  A provider module imports its cloud SDK only when it is first used, so commands that
never reach a cloud registry do not pay its start-up time.
"""

from __future__ import annotations

from typing import Final, Protocol

from specman.oci.credentials import Credentials
from specman.oci.providers.aws import AwsProvider, AwsSettings, EcrHost, parse_ecr_host

__all__ = [
    "PROVIDERS",
    "AwsProvider",
    "AwsSettings",
    "CredentialProvider",
    "EcrHost",
    "detect_provider",
    "make_provider",
    "parse_ecr_host",
]

PROVIDERS: Final = ("auto", "generic", "aws")  # --provider values; generic: flags, environment, docker config


class CredentialProvider(Protocol):
    """Registry credentials obtained from a cloud identity.  Implementations are thread-safe and raise
    ``specman.errors.ProviderError`` (one line naming the cloud, never a secret) when they cannot."""

    name: str

    def credentials(self, host: str) -> Credentials:
        """The credentials for ``host`` (``host[:port]``), from the cache while they are fresh."""
        ...

    def refused(self, host: str, credentials: Credentials) -> None:
        """The registry refused ``credentials`` (401/403): the next ``credentials(host)`` asks the cloud again
        (unless another thread already did)."""
        ...


def detect_provider(host: str) -> str | None:
    """The provider ``--provider auto`` uses for ``host``: ``"aws"`` for an ECR host name, else None."""
    return "aws" if parse_ecr_host(host) is not None else None


def make_provider(name: str, *, aws: AwsSettings | None = None) -> CredentialProvider:
    """The provider called ``name`` (one of ``PROVIDERS`` except ``auto``/``generic``); its SDK is imported now."""
    if name == "aws":
        return AwsProvider(aws)
    raise ValueError(f"unknown credential provider {name!r}")
