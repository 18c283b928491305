"""OCI distribution: references, auth, the registry client, the layout backend and ORAS artifacts.

Owns everything between specman and a registry (remote over HTTP, or an OCI image layout on disk).  It must
not know about the store, the sync loop or the server: it hands verified bytes to its callers.
"""

from specman.oci.artifact import (
    PullResult,
    PushResult,
    extract_layer_into,
    pull_artifact,
    push_artifact,
    reject_container_image,
    resolve_image_manifest,
)
from specman.oci.auth import RegistryAuth
from specman.oci.blob import BlobReader
from specman.oci.client import RegistryClient, RemoteRepository
from specman.oci.credentials import Credentials, DockerConfig
from specman.oci.http import RetryPolicy, TLSOptions
from specman.oci.layout import LayoutRepository
from specman.oci.manifest import Descriptor, Manifest, build_oras_manifest, parse_manifest
from specman.oci.reference import Reference, parse_digest, parse_reference, parse_repository
from specman.oci.repository import RegistryOptions, Repository, Target, open_repository, open_target

__all__ = [
    "BlobReader",
    "Credentials",
    "Descriptor",
    "DockerConfig",
    "LayoutRepository",
    "Manifest",
    "PullResult",
    "PushResult",
    "Reference",
    "RegistryAuth",
    "RegistryClient",
    "RegistryOptions",
    "RemoteRepository",
    "Repository",
    "RetryPolicy",
    "TLSOptions",
    "Target",
    "build_oras_manifest",
    "extract_layer_into",
    "open_repository",
    "open_target",
    "parse_digest",
    "parse_manifest",
    "parse_reference",
    "parse_repository",
    "pull_artifact",
    "push_artifact",
    "reject_container_image",
    "resolve_image_manifest",
]
