"""Reading and writing signature material in a repository: capped blobs, referrers (API or fallback tag).

Referrers of a manifest are listed as the distribution spec says ("Listing Referrers"): ``GET
/v2/<name>/referrers/<digest>`` answers an image index (pages linked with ``Link: <…>; rel="next"``); a ``404``
means the registry has no such API (docker-registry 2.8, GHCR, Docker Hub), and then the index tagged
``sha256-<hex>`` (the "Referrers Tag Schema") holds them; a ``404`` there too means none.  A reply that is not an
image index (some registries answer garbage or HTML with 200) is treated like a missing API, and said so once.
``ReferrersSupport`` remembers per repository whether the API exists, so later look-ups go straight to the tag —
and, when the caller knows the tag list, skip the request entirely if the fallback tag is not listed.

Writing: a referrer manifest is pushed by digest; if the registry did not answer ``OCI-Subject`` (no API), the
fallback index is updated by read-modify-write (racy by nature, as the spec says).  An OCI image layout has no
API: only the fallback tag is used.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Final

from specman.errors import ContentError, NotFoundError, RegistryError, SignatureError, SpecmanError
from specman.oci import Repository
from specman.oci.client import RemoteRepository, _next_link
from specman.oci.manifest import OCI_INDEX, Descriptor, Manifest, parse_manifest, sha256_digest
from specman.signature.discovery import fallback_tag

__all__ = [
    "MAX_LAYERS",
    "MAX_PAYLOAD",
    "ReferrersSupport",
    "list_referrers",
    "push_referrer",
    "read_blob",
]

log = logging.getLogger("specman.signature")

#: A signature payload or bundle is a few KiB; cosign allows 128 MiB, specman refuses more than this.
MAX_PAYLOAD: Final = 1024 * 1024
#: cosign refuses ``.sig`` manifests with more than 1000 layers (signatures).
MAX_LAYERS: Final = 1000
_MAX_PAGES: Final = 20


def read_blob(repo: Repository, desc: Descriptor, what: str, cap: int = MAX_PAYLOAD) -> bytes:
    """The bytes of a small blob, checked against its descriptor's size and digest; SignatureError if too big."""
    if desc.size > cap:
        raise SignatureError(f"{what} is {desc.size} bytes, more than the {cap} allowed", reason="TooLarge")
    with repo.open_blob(desc) as reader:
        data = reader.read(cap + 1)
        reader.verify()
    return data


@dataclass
class ReferrersSupport:
    """Whether each repository (by display name) answers the referrers API; None = not known yet."""

    api: dict[str, bool] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, repo: Repository) -> bool | None:
        with self._lock:
            return self.api.get(repo.display)

    def set(self, repo: Repository, value: bool) -> None:
        with self._lock:
            if self.api.get(repo.display) is None and not value:
                log.info("No referrers API: using the fallback tags", extra={"fields": {"repository": repo.display}})
            self.api[repo.display] = value


def _api_page(repo: RemoteRepository, url: str) -> tuple[list[Descriptor], str | None] | None:
    """One page of the referrers API, or None when the registry has no (usable) API."""
    try:
        response = repo.client.request("GET", url, what=f"{repo.display}: referrers", headers={"Accept": OCI_INDEX})
    except NotFoundError:
        return None
    try:
        raw = response.content
        if len(raw) > 4 * 1024 * 1024:
            raise ContentError("referrers index larger than 4 MiB")
        index = parse_manifest(raw, OCI_INDEX, where=f"{repo.display} referrers")
        if not index.is_index:
            raise ContentError("the referrers reply is not an image index")
    except ContentError as exc:
        log.warning("Unusable referrers API reply", extra={"fields": {"repository": repo.display, "error": str(exc)}})
        return None
    return list(index.manifests), _next_link(response)


def _from_api(repo: RemoteRepository, digest: str) -> list[Descriptor] | None:
    found: list[Descriptor] = []
    url: str | None = f"/v2/{repo.name}/referrers/{digest}"
    for _ in range(_MAX_PAGES):
        if url is None:
            return found
        page = _api_page(repo, url)
        if page is None:
            return found or None
        found += page[0]
        url = page[1]
    return found


def _from_tag(repo: Repository, digest: str) -> list[Descriptor]:
    try:
        index = repo.fetch_manifest(fallback_tag(digest))
    except NotFoundError:
        return []
    except ContentError as exc:
        raise SignatureError(f"referrers tag {fallback_tag(digest)}: {exc}", reason="BadReferrers") from exc
    if not index.is_index:
        raise SignatureError(f"referrers tag {fallback_tag(digest)} is not an image index", reason="BadReferrers")
    return list(index.manifests)


def list_referrers(
    repo: Repository,
    digest: str,
    support: ReferrersSupport,
    *,
    listed: Collection[str] | None = None,
    artifact_types: Collection[str] | None = None,
) -> list[Descriptor]:
    """The referrers of ``digest`` (filtered by ``artifact_types`` when given).

    ``listed`` (the repository's tags, when the caller has them) lets the fallback path skip the request when the
    fallback tag does not exist.  Registry errors other than 404 propagate (the caller reports them per version).
    """
    found: list[Descriptor] | None = None
    if isinstance(repo, RemoteRepository) and support.get(repo) is not False:
        found = _from_api(repo, digest)
        support.set(repo, found is not None)
    if found is None:
        if listed is not None and fallback_tag(digest) not in listed:
            return []
        found = _from_tag(repo, digest)
    if artifact_types is None:
        return found
    return [d for d in found if (d.artifact_type or "") in artifact_types]


def _push_by_digest(repo: Repository, data: bytes, media_type: str) -> bool:
    """Push a manifest by digest; True if the registry confirmed it indexes the subject (``OCI-Subject``)."""
    digest = sha256_digest(data)
    if not isinstance(repo, RemoteRepository):
        repo.push_manifest(digest, data, media_type)
        return False
    response = repo.client.request(
        "PUT",
        f"/v2/{repo.name}/manifests/{digest}",
        what=f"{repo.display}: push referrer",
        ok=(200, 201, 202),
        content=data,
        headers={"Content-Type": media_type},
    )
    return bool(response.headers.get("OCI-Subject"))


def push_referrer(repo: Repository, manifest: bytes, media_type: str, subject: str) -> str:
    """Push a referrer manifest of ``subject`` and make it findable; its digest."""
    parsed = parse_manifest(manifest, media_type, where="referrer")
    if _push_by_digest(repo, manifest, media_type):
        return parsed.digest
    tag = fallback_tag(subject)
    entries: list[dict[str, Any]] = []
    try:
        current: Manifest | None = repo.fetch_manifest(tag)
    except NotFoundError:
        current = None
    if current is not None:
        if not current.is_index:
            raise SignatureError(f"{repo.display}:{tag} exists and is not an image index", reason="BadReferrers")
        entries = [d.to_json() for d in current.manifests if d.digest != parsed.digest]
    entry = Descriptor(media_type, parsed.digest, len(manifest), dict(parsed.annotations), parsed.artifact_type)
    if entry.artifact_type is None and parsed.config is not None:
        entry = Descriptor(media_type, parsed.digest, len(manifest), dict(parsed.annotations), parsed.config.media_type)
    entries.append(entry.to_json())
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, separators=(",", ":"))
    try:
        repo.push_manifest(tag, index.encode(), OCI_INDEX)
    except (RegistryError, SpecmanError) as exc:
        raise SignatureError(f"{repo.display}: updating the referrers tag {tag} failed: {exc}") from exc
    return parsed.digest
