"""The remote registry client (distribution API v2) and the ``Repository`` it exposes.

``RegistryClient`` owns one ``httpx.Client`` (connection pool, TLS, ``RegistryAuth``) for one registry host;
``client.repository(name)`` gives a ``RemoteRepository`` implementing ``specman.oci.repository.Repository``:
tags (paginated with ``n``/``last`` and ``Link``), manifests (GET/HEAD/PUT with the right ``Accept``, digest
checked), blobs (HEAD; GET streamed through a verifying, resuming ``BlobReader``; uploads in
``specman.oci.upload``).  Every request goes through ``specman.oci.http.send`` (retries, error mapping).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from specman.errors import (
    AuthenticationError,
    ContentError,
    DigestMismatchError,
    NotFoundError,
    ProtocolError,
    SpecmanError,
)
from specman.oci.auth import RegistryAuth
from specman.oci.blob import BlobReader, Progress
from specman.oci.credentials import Credentials
from specman.oci.http import (
    RetryPolicy,
    TLSOptions,
    make_client,
    map_transport_errors,
    raise_for_registry_error,
    send,
)
from specman.oci.manifest import MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, Descriptor, Manifest, parse_manifest
from specman.oci.reference import parse_digest

__all__ = ["RegistryClient", "RemoteRepository"]


class RegistryClient:
    """A connection to one registry (``host[:port]``)."""

    def __init__(
        self,
        host: str,
        *,
        tls: TLSOptions | None = None,
        credentials: Credentials | None = None,
        auth: RegistryAuth | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = host
        self.tls = tls or TLSOptions()
        self.auth = auth or RegistryAuth(credentials)
        self.retry = retry or RetryPolicy()
        self.base_url = f"{'http' if self.tls.plain_http else 'https'}://{host}"
        self.http = make_client(self.tls, auth=self.auth, timeout=timeout)
        if transport is not None:  # the seam for faults a real registry cannot produce
            self.http._transport = transport

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        what: str,
        stream: bool = False,
        ok: tuple[int, ...] = (200,),
        retry: bool | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request (relative URLs are resolved against the registry) and map errors; a status not
        in ``ok`` raises the matching ``RegistryError`` naming ``what``."""
        target = httpx.URL(self.base_url).join(url) if isinstance(url, str) else url
        params = kwargs.pop("params", None)
        if params:  # merge: httpx's params= would replace the query a Location or Link URL carries
            target = target.copy_merge_params(params)
        request = self.http.build_request(method, target, **kwargs)
        response = send(self.http, request, stream=stream, policy=self.retry, retry=retry)
        if response.status_code not in ok:
            try:
                refused = response.status_code in (401, 403)
                if refused and self.auth.credentials(self.host) is None:
                    raise AuthenticationError(
                        f"{what}: unauthorized: {self.host} requires credentials and none were given",
                        status=response.status_code,
                        code="UNAUTHORIZED",
                        hint="use specman login, or -u with --password-stdin",
                    )
                raise_for_registry_error(response, what)
                raise ProtocolError(f"{what}: unexpected HTTP {response.status_code}", status=response.status_code)
            finally:
                response.close()
                if refused:
                    self.auth.forget_credentials(self.host)  # looked up again next time: a rotated password
        return response

    def ping(self) -> None:
        """``GET /v2/``: the registry speaks the distribution API and accepts our credentials."""
        response = self.request("GET", "/v2/", what=f"{self.host}: ping", ok=(200,))
        if response.headers.get("content-type", "").startswith("text/html"):
            raise ProtocolError(f"{self.host}: /v2/ returned an HTML page, not a registry API")

    def repository(self, name: str) -> RemoteRepository:
        return RemoteRepository(self, name)


def _next_link(response: httpx.Response) -> str | None:
    for part in response.headers.get_list("Link", split_commas=True):
        url, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return url.strip().strip("<>")
    return None


class RemoteRepository:
    """One repository on a remote registry."""

    def __init__(self, client: RegistryClient, name: str) -> None:
        self.client = client
        self.name = name
        self.display = f"{client.host}/{name}"

    def close(self) -> None:
        self.client.close()

    # -- tags ---------------------------------------------------------------------------------------------
    def tags(self, *, page_size: int | None = None) -> Iterator[str]:
        url: str | None = f"/v2/{self.name}/tags/list"
        params: dict[str, str | int] = {"n": page_size} if page_size else {}
        seen = 0
        while url:
            response = self.client.request("GET", url, what=f"{self.display}: list tags", params=params)
            params = {}
            try:
                body = response.json()
            except ValueError:
                raise ProtocolError(f"{self.display}: list tags: reply is not JSON") from None
            tags = body.get("tags") if isinstance(body, dict) else None
            if tags is None:
                tags = []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ProtocolError(f"{self.display}: list tags: 'tags' is not a list of strings")
            yield from tags
            seen += len(tags)
            url = _next_link(response)
            if url and not tags:
                raise ProtocolError(f"{self.display}: list tags: empty page with a next link")
            if seen > 1_000_000:
                raise ProtocolError(f"{self.display}: list tags: more than a million tags")

    # -- manifests ----------------------------------------------------------------------------------------
    def resolve(self, reference: str) -> Descriptor:
        """HEAD the manifest: its descriptor (media type, digest, size) without downloading it."""
        response = self.client.request(
            "HEAD",
            f"/v2/{self.name}/manifests/{reference}",
            what=f"{self.display}:{reference}",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        digest = response.headers.get("Docker-Content-Digest")
        size = response.headers.get("Content-Length")
        media_type = response.headers.get("Content-Type", "").split(";")[0]
        if not digest or not size or not size.isdigit():  # some registries omit them on HEAD
            manifest = self.fetch_manifest(reference)
            return manifest.descriptor
        try:
            parse_digest(digest)
        except Exception:
            raise ProtocolError(f"{self.display}:{reference}: invalid Docker-Content-Digest {digest!r}") from None
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatchError(reference, digest, f"manifest {self.display}@{reference}")
        return Descriptor(media_type, digest, int(size))

    def fetch_manifest(self, reference: str) -> Manifest:
        what = f"{self.display}{'@' if reference.startswith('sha256:') else ':'}{reference}"
        response = self.client.request(
            "GET",
            f"/v2/{self.name}/manifests/{reference}",
            what=what,
            stream=True,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        try:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > MAX_MANIFEST_SIZE:
                raise ContentError(f"{what}: manifest of {declared} bytes exceeds {MAX_MANIFEST_SIZE}")
            raw = bytearray()
            with map_transport_errors(self.client.host):
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) > MAX_MANIFEST_SIZE:
                        raise ContentError(f"{what}: manifest exceeds {MAX_MANIFEST_SIZE} bytes")
        finally:
            response.close()
        data = bytes(raw)
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and actual != reference:
            raise DigestMismatchError(reference, actual, f"manifest {what}")
        header = response.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != actual:
            raise DigestMismatchError(header, actual, f"manifest {what}")
        return parse_manifest(data, response.headers.get("Content-Type"), where=f"manifest {what}")

    def push_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        what = f"{self.display}: push manifest {reference}"
        response = self.client.request(
            "PUT",
            f"/v2/{self.name}/manifests/{reference}",
            what=what,
            ok=(200, 201, 202),
            content=data,
            headers={"Content-Type": media_type},
        )
        echoed = response.headers.get("Docker-Content-Digest")
        if echoed and echoed != digest:
            raise DigestMismatchError(digest, echoed, f"manifest pushed to {self.display}")
        return digest

    def delete_manifest(self, digest: str) -> None:
        self.client.request(
            "DELETE",
            f"/v2/{self.name}/manifests/{parse_digest(digest)}",
            what=f"{self.display}: delete {digest}",
            ok=(202, 200),
        )

    # -- blobs ----------------------------------------------------------------------------------------------
    def blob_exists(self, desc: Descriptor) -> bool:
        try:
            response = self.client.request(
                "HEAD", f"/v2/{self.name}/blobs/{desc.digest}", what=f"{self.display}: blob {desc.digest}"
            )
        except NotFoundError:
            return False
        size = response.headers.get("Content-Length")
        return not (size and size.isdigit() and int(size) != desc.size)

    def open_blob(self, desc: Descriptor, *, progress: Progress | None = None) -> BlobReader:
        path = f"/v2/{self.name}/blobs/{desc.digest}"
        what = f"blob {desc.digest[:19]} of {self.display}"
        host = self.client.host

        def source(offset: int) -> tuple[Iterator[bytes], int, Any]:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            response = self.client.request("GET", path, what=what, stream=True, ok=(200, 206), headers=headers)
            start = 0
            if response.status_code == 206:
                content_range = response.headers.get("Content-Range", "")
                try:
                    start = int(content_range.split()[1].split("-")[0])
                except (IndexError, ValueError):
                    response.close()
                    raise ProtocolError(f"{what}: 206 without a valid Content-Range") from None

            def chunks() -> Iterator[bytes]:
                with map_transport_errors(host):
                    yield from response.iter_raw()  # as received: no re-chunking copies

            return chunks(), start, response.close

        return BlobReader(desc, source, progress=progress, what=what)

    def push_blob(
        self,
        desc: Descriptor,
        source: Path | bytes,
        *,
        progress: Progress | None = None,
        mount_from: str | None = None,
    ) -> bool:
        from specman.oci.upload import upload_blob

        return upload_blob(self, desc, source, progress=progress, mount_from=mount_from)

    def check_push(self) -> None:
        """Whether this client may push here, without pushing: start a blob upload and cancel it (as
        ``docker push`` would start, with a push-scoped token).  Raises the registry's refusal."""
        what = f"{self.display}: push check"
        response = self.client.request("POST", f"/v2/{self.name}/blobs/uploads/", what=what, ok=(202,), retry=True)
        location = response.headers.get("Location")
        if location:
            # cancel it; a registry that cannot is fine: it expires unfinished uploads
            with contextlib.suppress(SpecmanError):
                self.client.request("DELETE", str(response.url.join(location)), what=what, ok=(204, 404, 405))

    def push_file(
        self,
        path: Path,
        media_type: str,
        *,
        annotations: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> Descriptor:
        """Upload a file whose digest is not known yet, hashing while sending; returns its descriptor."""
        from specman.oci.upload import upload_file_streaming

        return upload_file_streaming(self, path, media_type, annotations=annotations, progress=progress)
