"""The one exception tree of specman.

Every error a user can meet is a ``SpecmanError``; its ``str()`` is one clear line that names the cause and
never contains a secret.  Third-party errors (httpx, tarfile, zlib, OS errors) are mapped onto this tree at
the boundary where they enter (see ``specman.oci.http.map_transport_errors``), so callers catch only these::

    SpecmanError
    ├── UsageError              bad argument, option or reference (CLI exit 2)
    ├── TransportError          connection refused/reset, TLS failure, timeout
    ├── RegistryError           the registry answered with an error (carries status, code, message)
    │   ├── AuthenticationError     401 UNAUTHORIZED: credentials missing or wrong
    │   ├── AuthorizationError      403 DENIED / insufficient scope after a fresh token
    │   ├── NotFoundError           404 NAME_UNKNOWN, MANIFEST_UNKNOWN, BLOB_UNKNOWN, TAG unknown
    │   ├── RateLimitedError        429 TOOMANYREQUESTS (after the retries ran out)
    │   └── ProtocolError           the reply is not what the distribution spec says (HTML, bad JSON)
    ├── ContentError            content is not acceptable (bad manifest, unknown media type, wrong size)
    │   └── DigestMismatchError     bytes do not hash to the digest they were addressed by
    ├── ArchiveError            a layer archive cannot be extracted safely
    │   ├── UnsafeMemberError       a member would escape or harm the destination (names member + reason)
    │   ├── LimitExceededError      too many bytes or files (bomb protection)
    │   └── CorruptArchiveError     truncated or malformed stream, unknown compression
    ├── CredentialsError        docker config / credential helper problems
    │   └── ProviderError           a cloud provider (AWS) could not give a registry password (carries retryable)
    ├── StoreError              the data directory: in use by another specman, disk full, damaged state
    ├── ConsoleError            the console's system API refused a request or answered nonsense (carries status)
    ├── MigrationError          ``migrate`` stopped: a preflight check, the parity proof or the jobs did not hold
    └── SyncError               a reconcile could not run (carries reason and whether a retry can fix it)

The CLI maps ``UsageError`` to exit 2 and every other ``SpecmanError`` to exit 1.
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "AuthenticationError",
    "AuthorizationError",
    "ConsoleError",
    "ContentError",
    "CorruptArchiveError",
    "CredentialsError",
    "DigestMismatchError",
    "LimitExceededError",
    "MigrationError",
    "NotFoundError",
    "ProtocolError",
    "ProviderError",
    "RateLimitedError",
    "RegistryError",
    "SpecmanError",
    "StoreError",
    "SyncError",
    "TransportError",
    "UnsafeMemberError",
    "UsageError",
]


class SpecmanError(Exception):
    """Base of every error specman reports to a user."""


class UsageError(SpecmanError):
    """An argument, option or reference is malformed."""


class TransportError(SpecmanError):
    """The network or TLS layer failed before the registry could answer."""


class RegistryError(SpecmanError):
    """The registry answered with an error.

    ``code`` is the distribution error code (``UNAUTHORIZED``, ``MANIFEST_UNKNOWN``...) when the registry
    sent one, ``status`` the HTTP status.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AuthenticationError(RegistryError):
    """401: no or wrong credentials."""


class AuthorizationError(RegistryError):
    """403, or a scope the credentials do not grant."""


class NotFoundError(RegistryError):
    """404: repository, manifest, tag or blob unknown."""


class RateLimitedError(RegistryError):
    """429 that outlasted the retries."""


class ProtocolError(RegistryError):
    """The registry's reply does not follow the distribution spec."""


class ContentError(SpecmanError):
    """Content (manifest, index, layer) is not acceptable."""


class DigestMismatchError(ContentError):
    """Bytes do not hash to the digest they were addressed by."""

    def __init__(self, expected: str, actual: str, what: str = "content") -> None:
        super().__init__(f"digest mismatch for {what}: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class ArchiveError(SpecmanError):
    """An archive cannot be extracted safely; the destination is left untouched."""


class UnsafeMemberError(ArchiveError):
    """A member would escape or harm the destination."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"unsafe archive member {member!r}: {reason}")
        self.member = member
        self.reason = reason


class LimitExceededError(ArchiveError):
    """The archive exceeds the configured size or file-count limit."""


class CorruptArchiveError(ArchiveError):
    """The archive stream is truncated, malformed or in an unknown compression."""


class CredentialsError(SpecmanError):
    """Docker config or a credential helper failed."""


class ProviderError(CredentialsError):
    """A cloud credential provider (``--provider aws``) could not produce a registry password: no cloud
    credentials, credentials the cloud refused, a region it cannot tell, its API unreachable.  The message names
    the cloud and never a secret; ``retryable`` says whether trying again later can fix it (API unreachable,
    throttled: yes; no or refused credentials: no — a sync still retries, and recovers once they work)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ConsoleError(SpecmanError):
    """The console's system API answered with an error (``status``) or something that is not its API."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MigrationError(SpecmanError):
    """``specman migrate`` stopped; the message says at which step and what was left (or put back) as it was."""


class StoreError(SpecmanError):
    """The data directory cannot be used: locked by another process, disk full, or damaged state."""


class SyncError(SpecmanError):
    """A reconcile of the data directory against its source failed as a whole; nothing was published.

    ``reason`` is a short CamelCase cause for status and metrics (``ListTagsFailed``, ``PublishFailed``...),
    ``retryable`` says whether trying again later can fix it (registry down: yes; wrong password: no).
    ``result`` is what the reconcile did before it failed (a ``specman.sync.SyncResult``: when it started,
    how long it ran), set by the reconcile that raises it.
    """

    def __init__(self, message: str, *, reason: str, retryable: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable
        self.result: object | None = None
