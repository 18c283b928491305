"""An OCI image layout on disk, behind the same interface as a remote repository.

Layout (image-spec ``image-layout.md``): ``oci-layout`` (``{"imageLayoutVersion": "1.0.0"}``), ``index.json``
whose ``manifests`` carry tags as ``org.opencontainers.image.ref.name`` annotations, and content-addressed
blobs in ``blobs/sha256/<hex>``.  This is specman's embedded default registry and what ``oras --oci-layout``
and ``skopeo copy ... oci:DIR:TAG`` read and write.

Writes are crash-safe: blobs are written to a temp file in ``blobs/sha256/`` while hashing and renamed only
when the digest matches; ``index.json`` is replaced atomically under an exclusive ``flock``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from specman.errors import ContentError, DigestMismatchError, NotFoundError, StoreError, UsageError
from specman.files import atomic_write
from specman.oci.blob import BlobReader, Progress
from specman.oci.manifest import ANNOTATION_REF_NAME, OCI_INDEX, Descriptor, Manifest, parse_manifest
from specman.oci.reference import parse_digest
from specman.oci.upload import FileBody

__all__ = ["LayoutRepository", "parse_layout_reference"]

_LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}


def parse_layout_reference(value: str) -> tuple[Path, str | None, str | None]:
    """``PATH[:TAG|@DIGEST]`` (as ``oras --oci-layout``) → (path, tag, digest)."""
    if not value:
        raise UsageError("empty OCI layout reference")
    digest = None
    if "@" in value:
        value, _, digest_text = value.rpartition("@")
        digest = parse_digest(digest_text)
    tag = None
    head, sep, tail = value.rpartition(":")
    if sep and "/" not in tail and head:
        value, tag = head, tail
        if not tag:
            raise UsageError(f"empty tag in OCI layout reference {value!r}")
    return Path(value), tag, digest


class LayoutRepository:
    """One OCI image layout directory, used as a repository."""

    def __init__(self, root: Path, *, create: bool = False) -> None:
        self.root = root
        self.name = str(root)
        self.display = f"oci-layout:{root}"
        marker = root / "oci-layout"
        if not marker.exists():
            if not create:
                raise NotFoundError(
                    f"{root} is not an OCI image layout (no oci-layout file)", status=404, code="NAME_UNKNOWN"
                )
            (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            atomic_write(marker, json.dumps(_LAYOUT_VERSION).encode())
            if not (root / "index.json").exists():
                self._write_index([])
        else:
            try:
                version = json.loads(marker.read_text()).get("imageLayoutVersion")
            except (OSError, ValueError, AttributeError):
                raise ContentError(f"{marker} is not valid JSON") from None
            if version != "1.0.0":
                raise ContentError(f"{marker}: unsupported imageLayoutVersion {version!r}")

    def close(self) -> None:
        pass

    def check_push(self) -> None:
        """Whether blobs and the index can be written here."""
        for path in (self.root / "blobs" / "sha256", self.root):
            if not os.access(path, os.W_OK | os.X_OK):
                raise StoreError(f"{self.display}: {path} is not writable")

    # -- helpers -----------------------------------------------------------------------------------------
    def _blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / parse_digest(digest).removeprefix("sha256:")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read_index(self) -> list[dict[str, Any]]:
        path = self.root / "index.json"
        try:
            obj = json.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            raise ContentError(f"{path} is not valid JSON") from None
        manifests = obj.get("manifests") if isinstance(obj, dict) else None
        if not isinstance(manifests, list):
            raise ContentError(f"{path} has no manifests list")
        return [m for m in manifests if isinstance(m, dict)]

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        atomic_write(self.root / "index.json", json.dumps(index, separators=(",", ":")).encode())

    def _entry(self, reference: str) -> Descriptor:
        for i, entry in enumerate(self._read_index()):
            annotations = entry.get("annotations") or {}
            if annotations.get(ANNOTATION_REF_NAME) == reference or entry.get("digest") == reference:
                return Descriptor.from_json(entry, f"{self.root}/index.json manifests[{i}]")
        raise NotFoundError(
            f"{self.display}: {reference}: not found (MANIFEST_UNKNOWN)", status=404, code="MANIFEST_UNKNOWN"
        )

    # -- Repository interface -----------------------------------------------------------------------------
    def tags(self, *, page_size: int | None = None) -> Iterator[str]:
        names = {(m.get("annotations") or {}).get(ANNOTATION_REF_NAME) for m in self._read_index()}
        yield from sorted(n for n in names if isinstance(n, str) and n)

    def resolve(self, reference: str) -> Descriptor:
        if reference.startswith("sha256:"):
            path = self._blob_path(reference)
            if path.exists():
                try:
                    return self._entry(reference)
                except NotFoundError:
                    return self.fetch_manifest(reference).descriptor
        return self._entry(reference)

    def fetch_manifest(self, reference: str) -> Manifest:
        desc = self._entry(reference) if not reference.startswith("sha256:") else None
        digest = desc.digest if desc else reference
        path = self._blob_path(digest)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(
                f"{self.display}@{digest}: manifest blob missing (MANIFEST_UNKNOWN)",
                status=404,
                code="MANIFEST_UNKNOWN",
            ) from None
        actual = "sha256:" + hashlib.sha256(raw).hexdigest()
        if actual != digest:
            raise DigestMismatchError(digest, actual, f"manifest {self.display}@{digest}")
        return parse_manifest(raw, desc.media_type if desc else None, where=f"manifest {self.display}:{reference}")

    def push_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.push_blob(Descriptor(media_type, digest, len(data)), data)
        entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        with self._locked():
            manifests = self._read_index()
            if reference.startswith("sha256:"):
                if not any(m.get("digest") == digest for m in manifests):
                    manifests.append(entry)
            else:
                entry["annotations"] = {ANNOTATION_REF_NAME: reference}
                manifests = [m for m in manifests if (m.get("annotations") or {}).get(ANNOTATION_REF_NAME) != reference]
                manifests.append(entry)
            self._write_index(manifests)
        return digest

    def delete_manifest(self, digest: str) -> None:
        with self._locked():
            manifests = self._read_index()
            kept = [m for m in manifests if m.get("digest") != digest]
            if len(kept) == len(manifests):
                raise NotFoundError(f"{self.display}@{digest}: not found", status=404, code="MANIFEST_UNKNOWN")
            self._write_index(kept)

    def blob_exists(self, desc: Descriptor) -> bool:
        try:
            return self._blob_path(desc.digest).stat().st_size == desc.size
        except FileNotFoundError:
            return False

    def open_blob(self, desc: Descriptor, *, progress: Progress | None = None) -> BlobReader:
        path = self._blob_path(desc.digest)
        what = f"blob {desc.digest[:19]} of {self.display}"

        def source(offset: int) -> tuple[Iterator[bytes], int, Any]:
            try:
                fh = open(path, "rb")  # noqa: SIM115 - closed by the reader through the returned closer
            except FileNotFoundError:
                raise NotFoundError(f"{what}: not found (BLOB_UNKNOWN)", status=404, code="BLOB_UNKNOWN") from None
            fh.seek(offset)
            return iter(lambda: fh.read(1 << 20), b""), offset, fh.close

        return BlobReader(desc, source, progress=progress, what=what)

    def push_file(
        self,
        path: Path,
        media_type: str,
        *,
        annotations: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> Descriptor:
        """Copy a file into the layout, hashing while copying; returns its descriptor."""
        digest, size = self._store(FileBody(path, progress=progress), None)
        return Descriptor(media_type, digest, size, annotations or {})

    def push_blob(
        self,
        desc: Descriptor,
        source: Path | bytes,
        *,
        progress: Progress | None = None,
        mount_from: str | None = None,
    ) -> bool:
        if self.blob_exists(desc):
            if progress:
                progress(desc.size)
            return False
        self._store(FileBody(source, progress=progress), desc)
        return True

    def _store(self, chunks: FileBody, expected: Descriptor | None) -> tuple[str, int]:
        """Write ``chunks`` to ``blobs/sha256/`` through a temp file, hashing them; rename to their digest
        (refused when it differs from ``expected``)."""
        blobs = self.root / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload.", dir=blobs)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            actual = "sha256:" + digest.hexdigest()
            if expected is not None and (actual != expected.digest or size != expected.size):
                raise DigestMismatchError(expected.digest, actual, f"blob written to {self.display}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, self._blob_path(actual))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return actual, size
