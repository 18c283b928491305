"""Blob uploads to a remote registry, streamed from disk with constant memory.

The order is the one ORAS and docker use: ``HEAD`` (skip when the registry has it) → cross-repository
``POST ?mount=&from=`` when a source repository is known (201 = done, 202 = fall back to an upload) →
``POST /blobs/uploads/`` → one monolithic streamed ``PUT <location>?digest=``.  Blobs larger than
``CHUNKED_THRESHOLD``, registries that ask for chunks (``OCI-Chunk-Min-Length``), and registries that refuse
a monolithic body (413) get ``PATCH`` chunks with ``Content-Range`` and a closing ``PUT ?digest=``.

Bodies are re-iterable objects that re-open the file, so the auth flow can resend a request when needed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from specman.errors import DigestMismatchError, ProtocolError, RegistryError
from specman.oci.blob import Progress
from specman.oci.manifest import Descriptor

if TYPE_CHECKING:
    from specman.oci.client import RemoteRepository

__all__ = ["CHUNKED_THRESHOLD", "CHUNK_SIZE", "FileBody", "upload_blob", "upload_file_streaming"]

CHUNKED_THRESHOLD = 2 * 1024**3
CHUNK_SIZE = 64 * 1024**2
_READ_SIZE = 1 << 20


class FileBody:
    """A re-iterable request body: bytes ``[start, start+length)`` of a file or a bytes object."""

    def __init__(
        self,
        source: Path | bytes,
        start: int = 0,
        length: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.source = source
        self.start = start
        total = len(source) if isinstance(source, bytes) else source.stat().st_size
        self.length = total - start if length is None else length
        self.progress = progress

    def __iter__(self) -> Iterator[bytes]:
        if isinstance(self.source, bytes):
            view = memoryview(self.source)[self.start : self.start + self.length]
            for i in range(0, len(view), _READ_SIZE):
                chunk = bytes(view[i : i + _READ_SIZE])
                if self.progress:
                    self.progress(len(chunk))
                yield chunk
            return
        remaining = self.length
        with open(self.source, "rb") as fh:
            fh.seek(self.start)
            while remaining > 0:
                chunk = fh.read(min(_READ_SIZE, remaining))
                if not chunk:
                    raise ProtocolError(f"{self.source} shrank while being uploaded")
                remaining -= len(chunk)
                if self.progress:
                    self.progress(len(chunk))
                yield chunk


class _HashingBody:
    """A re-iterable body that hashes what it yields; a resend starts the hash afresh."""

    def __init__(self, body: FileBody) -> None:
        self.body = body
        self.hash = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        self.hash = hashlib.sha256()
        for chunk in self.body:
            self.hash.update(chunk)
            yield chunk


def _with_digest(location: str, digest: str) -> str:
    url = httpx.URL(location)
    return str(url.copy_merge_params({"digest": digest}))


def _location(repo: RemoteRepository, response: httpx.Response, what: str) -> str:
    location = response.headers.get("Location")
    if not location:
        raise ProtocolError(f"{what}: registry answered {response.status_code} without a Location header")
    return str(response.url.join(location))


def upload_blob(
    repo: RemoteRepository,
    desc: Descriptor,
    source: Path | bytes,
    *,
    progress: Progress | None = None,
    mount_from: str | None = None,
) -> bool:
    """Upload ``source`` as ``desc``; returns False when the registry already had it (or mounted it)."""
    client = repo.client
    what = f"{repo.display}: upload {desc.digest[:19]}"
    if repo.blob_exists(desc):
        if progress:
            progress(desc.size)
        return False
    uploads = f"/v2/{repo.name}/blobs/uploads/"
    if mount_from and mount_from != repo.name:
        response = client.request(
            "POST",
            uploads,
            what=what,
            ok=(201, 202),
            params={"mount": desc.digest, "from": mount_from},
            retry=True,
        )
        if response.status_code == 201:
            if progress:
                progress(desc.size)
            return False
    else:
        response = client.request("POST", uploads, what=what, ok=(202,), retry=True)
    location = _location(repo, response, what)
    min_chunk = response.headers.get("OCI-Chunk-Min-Length", "")
    chunked = desc.size > CHUNKED_THRESHOLD or (min_chunk.isdigit() and int(min_chunk) > 0)
    if not chunked:
        try:
            _monolithic(repo, location, desc, source, progress, what)
            return True
        except RegistryError as exc:
            if exc.status != 413:
                raise
        response = client.request("POST", uploads, what=what, ok=(202,), retry=True)
        location = _location(repo, response, what)
    chunk = max(CHUNK_SIZE, int(min_chunk) if min_chunk.isdigit() else 0)
    _chunked(repo, location, desc, source, chunk, progress, what)
    return True


def _monolithic(
    repo: RemoteRepository,
    location: str,
    desc: Descriptor,
    source: Path | bytes,
    progress: Progress | None,
    what: str,
) -> None:
    body = FileBody(source, progress=progress)
    if body.length != desc.size:
        raise ProtocolError(f"{what}: source has {body.length} bytes, descriptor says {desc.size}")
    repo.client.request(
        "PUT",
        _with_digest(location, desc.digest),
        what=what,
        ok=(201, 204),
        content=body,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)},
        retry=False,
    )


def _chunked(
    repo: RemoteRepository,
    location: str,
    desc: Descriptor,
    source: Path | bytes,
    chunk: int,
    progress: Progress | None,
    what: str,
) -> None:
    offset = 0
    while offset < desc.size:
        length = min(chunk, desc.size - offset)
        body = FileBody(source, offset, length, progress)
        response = repo.client.request(
            "PATCH",
            location,
            what=what,
            ok=(202, 204),
            content=body,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(length),
                "Content-Range": f"{offset}-{offset + length - 1}",
            },
            retry=False,
        )
        location = _location(repo, response, what)
        offset += length
    _commit(repo, location, desc.digest, what)


def _commit(repo: RemoteRepository, location: str, digest: str, what: str) -> None:
    """Close an upload session with ``PUT <location>?digest=``; the registry checks the digest."""
    response = repo.client.request(
        "PUT", _with_digest(location, digest), what=what, ok=(201, 204), headers={"Content-Length": "0"}, retry=False
    )
    echoed = response.headers.get("Docker-Content-Digest")
    if echoed and echoed != digest:
        raise DigestMismatchError(digest, echoed, f"blob uploaded to {repo.display}")


def upload_file_streaming(
    repo: RemoteRepository,
    path: Path,
    media_type: str,
    *,
    annotations: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> Descriptor:
    """Upload a file in one pass, hashing while sending, as ``docker push`` does: ``POST``, one streamed
    ``PATCH`` with the whole file, then ``PUT ?digest=`` (the registry checks the digest).  Reading the file
    once instead of twice (hash, then send) is what keeps pushing a large file as fast as ``curl``; the price
    is that an identical blob is sent again (the registry stores it once)."""
    what = f"{repo.display}: upload {path.name}"
    body = _HashingBody(FileBody(path, progress=progress))
    size = body.body.length
    response = repo.client.request("POST", f"/v2/{repo.name}/blobs/uploads/", what=what, ok=(202,), retry=True)
    location = _location(repo, response, what)
    response = repo.client.request(
        "PATCH",
        location,
        what=what,
        ok=(202, 204),
        content=body,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        retry=False,
    )
    desc = Descriptor(media_type, "sha256:" + body.hash.hexdigest(), size, annotations or {})
    uploaded = response.headers.get("Range", "")
    if uploaded and uploaded != f"0-{size - 1}":
        raise ProtocolError(f"{what}: the registry kept bytes {uploaded} of {size}")
    _commit(repo, _location(repo, response, what), desc.digest, what)
    return desc
