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
    │       └── NotAnArchiveError       no tar archive at all (in any supported compression)
    ├── CredentialsError        docker config / credential helper problems
    │   └── CredentialsNotFoundError    a credential helper has none for the host
    ├── StoreError              the data directory: in use by another specman, disk full, damaged state
    ├── ConsoleError            the console's system API refused a request or answered nonsense (carries status)
    ├── MigrationError          ``migrate`` stopped: a preflight check, the parity proof or the jobs did not hold
    └── SyncError               a reconcile could not run (carries reason and whether a retry can fix it)

Every error carries its meaning as attributes, decided where it is raised, so that no catcher ever has to read
its message text:

* ``kind``: a stable name (the metric label ``kind``, the status ``reason``, the log field ``reason``); renaming a
  class changes nothing an operator sees.  By default the class's own ``kind``; a raiser may name a finer one.
* ``retryable``: whether trying again later can fix it (registry down, throttled, 5xx, disk full: yes; wrong
  password, bad content: no).  One rule per class, refined by the raiser where it knows more (a ``RegistryError``
  is retryable for 5xx statuses).
* ``hint``: optional advice for the operator in the words of the command line (``use --ca-file or --insecure``).
  Only the CLI renders it (``render()``); API answers, console checks and log lines use ``str(error)``, which
  never names a command-line flag.

The CLI maps ``UsageError`` to exit 2 and every other ``SpecmanError`` to exit 1.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ArchiveError",
    "AuthenticationError",
    "AuthorizationError",
    "ConsoleError",
    "ContentError",
    "CorruptArchiveError",
    "CredentialsError",
    "CredentialsNotFoundError",
    "DigestMismatchError",
    "LimitExceededError",
    "MigrationError",
    "NotAnArchiveError",
    "NotFoundError",
    "ProtocolError",
    "RateLimitedError",
    "RegistryError",
    "SpecmanError",
    "StoreError",
    "SyncError",
    "TransportCause",
    "TransportError",
    "UnsafeMemberError",
    "UsageError",
]


class SpecmanError(Exception):
    """Base of every error specman reports to a user (see the module docstring for the attributes)."""

    kind: str = "SpecmanError"
    retryable: bool = False
    hint: str | None = None

    def __init__(
        self, message: str, *, kind: str | None = None, retryable: bool | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        if retryable is not None:
            self.retryable = retryable
        if hint is not None:
            self.hint = hint

    def render(self) -> str:
        """The line the CLI prints: the message, and the operator hint when there is one."""
        return f"{self} ({self.hint})" if self.hint else str(self)


class UsageError(SpecmanError):
    """An argument, option or reference is malformed."""

    kind = "UsageError"


TransportCause = Literal["timeout", "lowspeed", "tls", "plain-http", "refused", "reset", "broken", "other"]


class TransportError(SpecmanError):
    """The network or TLS layer failed before the server could answer; ``cause`` says how (``tls``: the
    certificate or handshake, ``timeout``/``lowspeed``: too slow, ``refused``...)."""

    kind = "TransportError"
    retryable = True

    def __init__(self, message: str, *, cause: TransportCause = "other", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.cause: TransportCause = cause


class RegistryError(SpecmanError):
    """The registry answered with an error.

    ``code`` is the distribution error code (``UNAUTHORIZED``, ``MANIFEST_UNKNOWN``...) when the registry
    sent one, ``status`` the HTTP status.  Retryable when the registry failed on its side (5xx).
    """

    kind = "RegistryError"

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint, retryable=True if (status or 0) >= 500 else None)
        self.status = status
        self.code = code


class AuthenticationError(RegistryError):
    """401: no or wrong credentials."""

    kind = "AuthenticationError"


class AuthorizationError(RegistryError):
    """403, or a scope the credentials do not grant."""

    kind = "AuthorizationError"


class NotFoundError(RegistryError):
    """404: repository, manifest, tag or blob unknown."""

    kind = "NotFoundError"


class RateLimitedError(RegistryError):
    """429 that outlasted the retries."""

    kind = "RateLimitedError"
    retryable = True


class ProtocolError(RegistryError):
    """The registry's reply does not follow the distribution spec."""

    kind = "ProtocolError"


class ContentError(SpecmanError):
    """Content (manifest, index, layer) is not acceptable."""

    kind = "ContentError"


class DigestMismatchError(ContentError):
    """Bytes do not hash to the digest they were addressed by."""

    kind = "DigestMismatchError"

    def __init__(self, expected: str, actual: str, what: str = "content") -> None:
        super().__init__(f"digest mismatch for {what}: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class ArchiveError(SpecmanError):
    """An archive cannot be extracted safely; the destination is left untouched."""

    kind = "ArchiveError"


class UnsafeMemberError(ArchiveError):
    """A member would escape or harm the destination."""

    kind = "UnsafeMemberError"

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"unsafe archive member {member!r}: {reason}")
        self.member = member
        self.reason = reason


class LimitExceededError(ArchiveError):
    """The archive exceeds the configured size or file-count limit."""

    kind = "LimitExceededError"


class CorruptArchiveError(ArchiveError):
    """The archive stream is truncated, malformed or in an unknown compression."""

    kind = "CorruptArchiveError"


class NotAnArchiveError(CorruptArchiveError):
    """The stream is no tar archive at all (in any supported compression): a file pushed as is, for example."""

    kind = "CorruptArchiveError"  # the same label as before this class existed


class CredentialsError(SpecmanError):
    """Docker config or a credential helper failed."""

    kind = "CredentialsError"


class CredentialsNotFoundError(CredentialsError):
    """A credential helper holds no credentials for the host (its protocol's "credentials not found")."""


class ConsoleError(SpecmanError):
    """The console's system API answered with an error (``status``) or something that is not its API.
    Retryable when the console failed on its side (5xx)."""

    kind = "ConsoleError"

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, retryable=True if (status or 0) >= 500 else None)
        self.status = status


class MigrationError(SpecmanError):
    """``specman migrate`` stopped; the message says at which step and what was left (or put back) as it was."""

    kind = "MigrationError"


class StoreError(SpecmanError):
    """The data directory cannot be used: locked by another process, disk full, or damaged state.  Retryable:
    space is freed and locks are released."""

    kind = "StoreError"
    retryable = True


class SyncError(SpecmanError):
    """A reconcile of the data directory against its source failed as a whole; nothing was published.

    ``kind`` (also ``reason``) is a short CamelCase cause for status and metrics (``ListTagsFailed``,
    ``PublishFailed``...), ``retryable`` whether trying again later can fix it (registry down: yes; wrong
    password: no) — taken from the error that caused it.  ``result`` is what the reconcile did before it failed
    (a ``specman.sync.SyncResult``: when it started, how long it ran), set by the reconcile that raises it.
    """

    kind = "SyncError"

    def __init__(self, message: str, *, reason: str, retryable: bool, hint: str | None = None) -> None:
        super().__init__(message, kind=reason, retryable=retryable, hint=hint)
        self.result: object | None = None

    @property
    def reason(self) -> str:
        return self.kind
