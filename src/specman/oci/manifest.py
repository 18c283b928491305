"""Media types, descriptors and manifests: parsing what registries return, building what ORAS writes.

Parsing is strict where it protects the user (digests, sizes, media types, JSON shape) and lenient where real
tools differ (ORAS CLI v1.0.0 compact JSON with a ``created`` annotation, oras-py's spaced JSON with
``annotations: {}``, skopeo copies, ORAS >= 1.1 ``artifactType`` and empty configs, docker v2 manifests).
``build_oras_manifest`` produces byte-for-byte the shape ORAS CLI v1.0.0 pushes, so both tools read each
other's artifacts.  No I/O here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from specman.errors import ContentError, UsageError
from specman.oci.reference import parse_digest

__all__ = [
    "ANNOTATION_CREATED",
    "ANNOTATION_REF_NAME",
    "ANNOTATION_TITLE",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "EMPTY_CONFIG",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_ACCEPT",
    "MANIFEST_MEDIA_TYPES",
    "MAX_MANIFEST_SIZE",
    "OCI_INDEX",
    "OCI_LAYER_TAR",
    "OCI_MANIFEST",
    "ORAS_CONFIG",
    "Descriptor",
    "Manifest",
    "build_oras_manifest",
    "parse_manifest",
    "sha256_digest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ORAS_CONFIG = "application/vnd.unknown.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_ACCEPT = ", ".join((*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES))
#: Like containerd, refuse manifests larger than 4 MiB instead of reading unbounded replies.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
#: The two bytes ``{}`` ORAS uses as config blob.
EMPTY_CONFIG = b"{}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    @property
    def title(self) -> str | None:
        return self.annotations.get(ANNOTATION_TITLE)

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Descriptor:
        if not isinstance(obj, dict):
            raise ContentError(f"{where}: descriptor is not a JSON object")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise ContentError(f"{where}: descriptor has no mediaType")
        if not isinstance(digest, str):
            raise ContentError(f"{where}: descriptor has no digest")
        try:
            parse_digest(digest)
        except UsageError as exc:
            raise ContentError(f"{where}: {exc}") from None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ContentError(f"{where}: descriptor size {size!r} is not a non-negative integer")
        annotations = obj.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ContentError(f"{where}: annotations must map strings to strings")
        artifact_type = obj.get("artifactType")
        return cls(
            media_type,
            digest,
            size,
            dict(annotations),
            artifact_type if isinstance(artifact_type, str) else None,
        )

    def to_json(self) -> dict[str, Any]:
        """Go-struct field order, as ORAS and the OCI spec types marshal it."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


@dataclass(frozen=True)
class Manifest:
    """A parsed image manifest or index together with its exact bytes and digest."""

    media_type: str
    digest: str
    raw: bytes
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    subject: Descriptor | None = None  # OCI 1.1: the manifest this one refers to (a signature, an SBOM...)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    @property
    def created(self) -> str | None:
        return self.annotations.get(ANNOTATION_CREATED)


def parse_manifest(raw: bytes, media_type: str | None = None, *, where: str = "manifest") -> Manifest:
    """Parse and validate manifest bytes; ``media_type`` is the Content-Type the registry sent, if any."""
    if len(raw) > MAX_MANIFEST_SIZE:
        raise ContentError(f"{where} is {len(raw)} bytes, larger than the {MAX_MANIFEST_SIZE} bytes allowed")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        snippet = raw[:40].decode("utf-8", "replace").replace("\n", " ")
        raise ContentError(
            f"{where} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}): {snippet!r}"
        ) from None
    if not isinstance(obj, dict):
        raise ContentError(f"{where} is not a JSON object")
    declared = obj.get("mediaType")
    header_type = (media_type or "").split(";")[0].strip() or None
    if header_type in ("application/json", "text/plain", "application/octet-stream"):
        header_type = None  # layouts and some proxies do not know the real type
    kind = declared or header_type or ("index" if "manifests" in obj else OCI_MANIFEST)
    if kind == "index":
        kind = OCI_INDEX
    if declared and header_type and declared != header_type:
        raise ContentError(f"{where}: registry says {header_type} but the manifest declares {declared}")
    if obj.get("schemaVersion") != 2:
        raise ContentError(f"{where}: unsupported schemaVersion {obj.get('schemaVersion')!r} (need 2)")
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ContentError(f"{where}: annotations must be an object")
    artifact_type = obj.get("artifactType") if isinstance(obj.get("artifactType"), str) else None
    digest = sha256_digest(raw)
    subject = Descriptor.from_json(obj["subject"], f"{where} subject") if obj.get("subject") is not None else None
    if kind in INDEX_MEDIA_TYPES:
        entries = obj.get("manifests")
        if not isinstance(entries, list):
            raise ContentError(f"{where}: index has no manifests list")
        manifests = tuple(Descriptor.from_json(m, f"{where} manifests[{i}]") for i, m in enumerate(entries))
        return Manifest(
            kind,
            digest,
            raw,
            manifests=manifests,
            annotations=annotations,
            artifact_type=artifact_type,
            subject=subject,
        )
    if kind not in MANIFEST_MEDIA_TYPES:
        raise ContentError(f"{where}: unsupported media type {kind!r}")
    layers_json = obj.get("layers")
    if not isinstance(layers_json, list):
        raise ContentError(f"{where}: manifest has no layers list")
    config = Descriptor.from_json(obj.get("config"), f"{where} config")
    layers = tuple(Descriptor.from_json(d, f"{where} layers[{i}]") for i, d in enumerate(layers_json))
    return Manifest(
        kind, digest, raw, config, layers, annotations=annotations, artifact_type=artifact_type, subject=subject
    )


def build_oras_manifest(
    layers: list[Descriptor],
    *,
    config: Descriptor | None = None,
    created: datetime | None = None,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """The manifest ORAS CLI v1.0.0 pushes, as compact JSON in Go field order.

    ``config`` defaults to the 2-byte ``{}`` blob typed ``application/vnd.unknown.config.v1+json``; the
    manifest carries ``org.opencontainers.image.created`` (RFC 3339, UTC, seconds) like ``oras push``.
    """
    config = config or Descriptor(ORAS_CONFIG, sha256_digest(EMPTY_CONFIG), len(EMPTY_CONFIG))
    stamp = (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    merged = {ANNOTATION_CREATED: stamp, **(annotations or {})}
    obj: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
        "annotations": merged,
    }
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
