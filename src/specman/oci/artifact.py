"""ORAS artifacts: push a directory (as ``manifests.tgz``) or a file, pull one back into a directory.

``push_artifact`` packs a directory deterministically into a temp ``manifests.tgz`` (or takes a file as
it is), uploads config and layer, then the manifest in the exact ORAS CLI v1.0.0 shape.  ``pull_artifact``
resolves the reference, follows a single-entry index, and streams each layer from the registry straight
into the safe extractor: bytes are hashed as they arrive and the extracted tree is moved into place only
after the digest matched.  With ``extract=False`` layers are saved under their title, like ``oras pull``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from specman.archive import (
    RESERVED_ROOT_NAME,
    ExtractLimits,
    ExtractResult,
    ObjectSink,
    extract_archive,
    extract_into,
    pack_to_file,
    reserved_entry,
)
from specman.errors import (
    ArchiveError,
    ContentError,
    CorruptArchiveError,
    NotAnArchiveError,
    NotFoundError,
    UsageError,
)
from specman.oci.blob import Progress, download_to
from specman.oci.manifest import (
    ANNOTATION_TITLE,
    EMPTY_CONFIG,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    ORAS_CONFIG,
    Descriptor,
    Manifest,
    build_oras_manifest,
    sha256_digest,
)
from specman.oci.repository import Repository

__all__ = [
    "PullResult",
    "PushResult",
    "extract_layer_into",
    "pull_artifact",
    "push_artifact",
    "reject_container_image",
    "resolve_image_manifest",
]

ARCHIVE_NAME = "manifests.tgz"
StartProgress = Callable[[str, int], Progress]


@dataclass(frozen=True)
class PushResult:
    digest: str
    manifest: bytes
    layer: Descriptor
    uploaded: bool
    files: int | None = None
    reused: bool = False  # the reference already named this very content: nothing was pushed


@dataclass(frozen=True)
class PullResult:
    digest: str
    manifest: Manifest
    files: int
    bytes: int


def _noop(_n: int) -> None:
    return None


def push_artifact(
    repo: Repository,
    source: Path,
    reference: str,
    *,
    mtime: int = 0,
    created: datetime | None = None,
    start_progress: StartProgress | None = None,
    tmp_dir: Path | None = None,
    reuse: bool = False,
) -> PushResult:
    """Push ``source`` (a directory, packed as ``manifests.tgz``, or a file pushed as is) to ``reference``.

    With ``reuse``, a directory whose archive is the single layer of what ``reference`` names already is not
    pushed again (its manifest differs only by the creation time): the existing digest is returned."""
    start = start_progress or (lambda _label, _total: _noop)
    if not source.exists():
        raise UsageError(f"source {source} does not exist")
    if not (source.is_dir() or source.is_file()):
        raise UsageError(f"source {source} is neither a directory nor a regular file")
    reserved = reserved_entry(source) if source.is_dir() else None
    if reserved is not None:
        raise ArchiveError(
            f"{reserved}: a tree cannot hold {RESERVED_ROOT_NAME!r} at its root: specman serve keeps "
            f"/{RESERVED_ROOT_NAME}/ for itself (rename or move it)"
        )
    config = Descriptor(ORAS_CONFIG, sha256_digest(EMPTY_CONFIG), len(EMPTY_CONFIG))
    with tempfile.TemporaryDirectory(prefix="specman-push-", dir=tmp_dir) as work:
        repo.push_blob(config, EMPTY_CONFIG)
        files: int | None = None
        if source.is_dir():  # the digest is known from packing: skip the upload when the registry has the blob
            archive = Path(work) / ARCHIVE_NAME
            packed = pack_to_file(source, archive, mtime=mtime)
            files = packed.files
            layer = Descriptor(OCI_LAYER_TAR, packed.digest, packed.size, {ANNOTATION_TITLE: ARCHIVE_NAME})
            existing = _existing_artifact(repo, reference, layer) if reuse else None
            if existing is not None:
                return PushResult(existing.digest, existing.raw, layer, False, files, reused=True)
            uploaded = repo.push_blob(layer, archive, progress=start(f"push {ARCHIVE_NAME}", layer.size))
        else:  # one pass over the file: hashed while it is sent
            progress = start(f"push {source.name}", source.stat().st_size)
            layer = repo.push_file(
                source, OCI_LAYER_TAR, annotations={ANNOTATION_TITLE: source.name}, progress=progress
            )
            uploaded = True
        manifest = build_oras_manifest([layer], config=config, created=created)
        digest = repo.push_manifest(reference, manifest, OCI_MANIFEST)
    return PushResult(digest, manifest, layer, uploaded, files)


def _existing_artifact(repo: Repository, reference: str, layer: Descriptor) -> Manifest | None:
    """What ``reference`` names, when it is an artifact of exactly ``layer`` (else, or when absent, None)."""
    try:
        manifest = resolve_image_manifest(repo, reference)
    except (NotFoundError, ContentError):
        return None
    if len(manifest.layers) == 1 and manifest.layers[0].digest == layer.digest and repo.blob_exists(layer):
        return manifest
    return None


def resolve_image_manifest(repo: Repository, reference: str) -> Manifest:
    """Fetch the manifest of ``reference``; an index with exactly one manifest is followed."""
    manifest = repo.fetch_manifest(reference)
    if manifest.is_index:
        if len(manifest.manifests) != 1:
            raise ContentError(
                f"{repo.display}:{reference} is an index of {len(manifest.manifests)} manifests; "
                "specman expects an artifact (a single image manifest)"
            )
        manifest = repo.fetch_manifest(manifest.manifests[0].digest)
        if manifest.is_index:
            raise ContentError(f"{repo.display}:{reference}: nested indexes are not supported")
    return manifest


#: Configs of container images: their layers are root filesystems, never a tree of manifests to serve.
IMAGE_CONFIG_MEDIA_TYPES = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)


def reject_container_image(manifest: Manifest, what: str) -> None:
    """ContentError when ``manifest`` is a container image (pushed to the manifests repository by mistake)."""
    if manifest.config is not None and manifest.config.media_type in IMAGE_CONFIG_MEDIA_TYPES:
        raise ContentError(
            f"{what} is a container image (config media type {manifest.config.media_type}), not a manifests artifact"
        )


def _safe_title(desc: Descriptor, index: int) -> str:
    title = desc.title or f"layer-{index}-{desc.digest.removeprefix('sha256:')[:12]}"
    if "/" in title or title in (".", "..") or "\x00" in title or title.startswith("."):
        raise ContentError(f"layer title {title!r} is not a plain file name")
    return title


def extract_layer_into(
    repo: Repository,
    layer: Descriptor,
    directory: Path,
    *,
    limits: ExtractLimits | None = None,
    progress: Progress | None = None,
    objects: ObjectSink | None = None,
) -> ExtractResult:
    """Stream ``layer`` into the existing empty ``directory``, hashing while extracting; returns only once the
    digest matched.  A corrupt stream whose bytes do not match their digest is reported as the mismatch.
    ``objects``: the store's object pool, where file contents are kept once (``archive.extract_into``)."""
    with repo.open_blob(layer, progress=progress) as reader:
        try:
            result = extract_into(reader, directory, limits or ExtractLimits(), objects=objects)
        except CorruptArchiveError:
            reader.verify()
            raise
        reader.verify()
    return result


def pull_artifact(
    repo: Repository,
    reference: str,
    dest: Path,
    *,
    extract: bool = True,
    replace: bool = False,
    limits: ExtractLimits | None = None,
    start_progress: StartProgress | None = None,
) -> PullResult:
    """Pull ``reference`` into ``dest``; nothing appears at ``dest`` unless every digest matched."""
    start = start_progress or (lambda _label, _total: _noop)
    manifest = resolve_image_manifest(repo, reference)
    if not manifest.layers:
        raise ContentError(f"{repo.display}:{reference} has no layers")
    if extract:
        reject_container_image(manifest, f"{repo.display}:{reference}")
        if len(manifest.layers) != 1:
            raise ContentError(
                f"{repo.display}:{reference} has {len(manifest.layers)} layers; specman extracts artifacts with one "
                "archive layer",
                hint="use --no-extract to save the layers as files",
            )
        layer = manifest.layers[0]
        label = layer.title or layer.digest[:19]
        with repo.open_blob(layer, progress=start(f"pull {label}", layer.size)) as reader:
            try:
                result = extract_archive(
                    reader, dest, limits=limits or ExtractLimits(), replace=replace, before_publish=reader.verify
                )
            except CorruptArchiveError as exc:
                # A corrupt stream is most often corrupt bytes: when the digest does not match, say that.
                reader.verify()
                hint = "use --no-extract to save it as a file" if isinstance(exc, NotAnArchiveError) else None
                raise type(exc)(f"{repo.display}:{reference}: layer {label}: {exc}", hint=hint) from exc
        return PullResult(manifest.digest, manifest, result.files, result.bytes)
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    for i, layer in enumerate(manifest.layers):
        name = _safe_title(layer, i)
        download_to(repo.open_blob(layer, progress=start(f"pull {name}", layer.size)), dest / name)
        total += layer.size
        os.chmod(dest / name, 0o644)
    return PullResult(manifest.digest, manifest, len(manifest.layers), total)
