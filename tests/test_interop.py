"""Interop with independent clients: oras-py (both directions) and skopeo (copy across registries and to a layout)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import uuid
from pathlib import Path

import oras.client
import pytest

from specman.oci import (
    LayoutRepository,
    RegistryOptions,
    RetryPolicy,
    open_repository,
    parse_reference,
    pull_artifact,
    push_artifact,
)
from specman.samples import bundled_manifests, tree_digest
from tests.fixtures.registry import Registry
from tests.fixtures.tools import Skopeo

RETRY = RetryPolicy(attempts=3, wait_initial=0.05, wait_max=0.2, wait_jitter=0.05)


def _name() -> str:
    return f"spectro-packs/spectro-manifests/{uuid.uuid4().hex[:8]}"


def test_specman_push_oras_py_pull(plain_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = bundled_manifests()
    ref = parse_reference(f"{plain_registry.host}/{_name()}:0.0.0")
    repo = open_repository(ref, RegistryOptions(plain_http=True, retry=RETRY))
    pushed = push_artifact(repo, source, "0.0.0")

    client = oras.client.OrasClient(hostname=plain_registry.host, insecure=True)
    out = tmp_path / "oras-out"
    monkeypatch.chdir(tmp_path)
    files = client.pull(target=str(ref), outdir=str(out))
    assert [Path(f).name for f in files] == ["manifests.tgz"]
    data = (out / "manifests.tgz").read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == pushed.layer.digest
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    assert names == set(tree_digest(source))


def test_oras_py_push_specman_pull(plain_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = bundled_manifests()
    monkeypatch.chdir(tmp_path)
    with tarfile.open("manifests.tgz", "w:gz") as tar:  # like `tar -czvf manifests.tgz .` in the SCAR root
        tar.add(source, arcname=".")
    ref = f"{plain_registry.host}/{_name()}:0.0.0"
    client = oras.client.OrasClient(hostname=plain_registry.host, insecure=True)
    client.push(target=ref, files=["manifests.tgz"])

    repo = open_repository(parse_reference(ref), RegistryOptions(plain_http=True, retry=RETRY))
    manifest = repo.fetch_manifest("0.0.0")
    assert manifest.created is None  # oras-py's variant: no created annotation
    pull_artifact(repo, "0.0.0", tmp_path / "out")
    assert tree_digest(tmp_path / "out") == tree_digest(source)


def test_skopeo_round_trip_is_byte_identical(
    plain_registry: Registry, token_registry: Registry, skopeo: Skopeo, tmp_path: Path
) -> None:
    name = _name()
    source = bundled_manifests()
    repo = open_repository(
        parse_reference(f"{plain_registry.host}/{name}"), RegistryOptions(plain_http=True, retry=RETRY)
    )
    pushed = push_artifact(repo, source, "4.5.13")
    original = repo.fetch_manifest("4.5.13").raw

    creds = f"alice:{token_registry.users['alice']}"
    skopeo(
        "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
        "--dest-cert-dir", str(token_registry.cert_dir), "--dest-creds", creds,
        f"docker://{plain_registry.host}/{name}:4.5.13", f"docker://{token_registry.host}/{name}:4.5.13",
    )  # fmt: skip
    back = f"{name}-back"
    skopeo(
        "copy", "--all", "--preserve-digests", "--src-cert-dir", str(token_registry.cert_dir), "--src-creds", creds,
        "--dest-tls-verify=false",
        f"docker://{token_registry.host}/{name}:4.5.13", f"docker://{plain_registry.host}/{back}:4.5.13",
    )  # fmt: skip

    token_opts = RegistryOptions(
        username="alice", password=token_registry.users["alice"], ca_file=str(token_registry.ca_file), retry=RETRY
    )
    remote = open_repository(parse_reference(f"{token_registry.host}/{name}"), token_opts)
    assert remote.fetch_manifest("4.5.13").raw == original
    returned = open_repository(parse_reference(f"{plain_registry.host}/{back}"), RegistryOptions(plain_http=True))
    assert returned.resolve("4.5.13").digest == pushed.digest
    assert returned.fetch_manifest("4.5.13").raw == original
    pull_artifact(remote, "4.5.13", tmp_path / "out")
    assert tree_digest(tmp_path / "out") == tree_digest(source)


def test_skopeo_to_oci_layout_then_specman_pull(plain_registry: Registry, skopeo: Skopeo, tmp_path: Path) -> None:
    name = _name()
    source = bundled_manifests()
    repo = open_repository(parse_reference(f"{plain_registry.host}/{name}"), RegistryOptions(plain_http=True))
    pushed = push_artifact(repo, source, "1.0")
    layout_dir = tmp_path / "layout"
    skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{plain_registry.host}/{name}:1.0",
        f"oci:{layout_dir}:1.0",
    )
    layout = LayoutRepository(layout_dir)
    assert list(layout.tags()) == ["1.0"]
    assert pull_artifact(layout, "1.0", tmp_path / "out").digest == pushed.digest
    assert tree_digest(tmp_path / "out") == tree_digest(source)


def test_specman_layout_is_readable_by_skopeo(plain_registry: Registry, skopeo: Skopeo, tmp_path: Path) -> None:
    layout_dir = tmp_path / "layout"
    layout = LayoutRepository(layout_dir, create=True)
    pushed = push_artifact(layout, bundled_manifests(), "0.0.0")
    index = json.loads((layout_dir / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "0.0.0"
    name = _name()
    skopeo(
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"oci:{layout_dir}:0.0.0",
        f"docker://{plain_registry.host}/{name}:0.0.0",
    )
    remote = open_repository(parse_reference(f"{plain_registry.host}/{name}"), RegistryOptions(plain_http=True))
    assert remote.resolve("0.0.0").digest == pushed.digest
    assert os.path.exists(layout_dir / "oci-layout")
