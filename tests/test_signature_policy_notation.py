"""Notation signatures as a form of the verify policy, in the real docker-registry: notation's own e2e layout
(Notation 1.0.0: subject, old-form signature manifest, JWS, the referrers fallback index it wrote) pushed as it is,
found through the fallback tag (docker-registry has no referrers API) and verified against notation's trust policy."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from specman.oci import Repository
from specman.oci.manifest import OCI_INDEX, OCI_MANIFEST, Descriptor, sha256_digest
from specman.signature.discovery import fallback_tag
from specman.signature.notation import load_notation_policy
from specman.signature.notation_form import notation_verifier
from specman.signature.policy import Mode, Verifier, VerifyPolicy
from specman.store import Store
from specman.sync import reconcile_once
from tests.fixtures.registry import Registry
from tests.test_sync import remote

VECTORS = Path(__file__).parent / "vectors" / "notation"
LAYOUT = json.loads((Path(__file__).parent / "fixtures" / "signature" / "notation_e2e_layout.json").read_text())
SUBJECT = (VECTORS / "e2e-subject-manifest.json").read_bytes()
SIGNATURE = (VECTORS / "e2e-signature-manifest.json").read_bytes()
ENVELOPE = (VECTORS / "e2e-valid-signature.jws.json").read_bytes()


def _push_layout(repo: Repository) -> str:
    for data, media_type in (
        (base64.b64decode(LAYOUT["config_base64"]), "application/vnd.notation.config"),
        (base64.b64decode(LAYOUT["layer_base64"]), "application/vnd.oci.image.layer.v1.tar"),
        (ENVELOPE, "application/jose+json"),
        (b"{}", "application/vnd.oci.empty.v1+json"),
    ):
        repo.push_blob(Descriptor(media_type, sha256_digest(data), len(data)), data)
    digest = repo.push_manifest("v1", SUBJECT, OCI_MANIFEST)
    repo.push_manifest(sha256_digest(SIGNATURE), SIGNATURE, OCI_MANIFEST)
    repo.push_manifest(fallback_tag(digest), base64.b64decode(LAYOUT["referrers_index_base64"]), OCI_INDEX)
    return digest


def _policy(tmp_path: Path, file: str = "trustpolicy.json") -> VerifyPolicy:
    certificates = json.loads((VECTORS / "certificates.json").read_text())
    store = tmp_path / "truststore" / "x509" / "ca" / "e2e"
    store.mkdir(parents=True)
    (store / "e2e.crt").write_text(certificates["e2e"]["pem"])
    trust = load_notation_policy(VECTORS / "trustpolicy" / file, tmp_path / "truststore")
    return VerifyPolicy(Mode.REQUIRED, (), (), (("notation", notation_verifier(trust)),))


def test_notation_signature_verifies_through_the_fallback_tag(plain_registry: Registry, tmp_path: Path) -> None:
    repo = remote(plain_registry)
    digest = _push_layout(repo)
    assert digest == sha256_digest(SUBJECT)
    verifier = Verifier(_policy(tmp_path))
    verification, _ = verifier.verify(repo, digest, listed=set(repo.tags()))
    assert verification.ok, verification
    assert verification.verified is not None
    assert verification.verified.format == "notation"
    assert "CN=e2e" in verification.verified.signer
    assert verifier.support.api == {repo.display: False}


def test_notation_policy_in_a_sync_and_its_failures(plain_registry: Registry, tmp_path: Path) -> None:
    repo = remote(plain_registry)
    _push_layout(repo)
    with Store(tmp_path / "data", durable=False) as store:
        result = reconcile_once(repo, store, verifier=Verifier(_policy(tmp_path)))
    assert result.verifications["v1"]["format"] == "notation"
    assert result.attached  # the fallback index tag is an attachment, never a version
    # notation's e2e trust policy with an identity the e2e certificate does not have: refused with notation's reason
    with Store(tmp_path / "data2", durable=False) as store:
        refused = reconcile_once(
            repo,
            store,
            verifier=Verifier(_policy(tmp_path / "x", "invalid_trusted_identity_trustpolicy.json")),
        )
    assert refused.digests == {}
    assert refused.verifications["v1"]["reason"] == "NotationAuthenticity", refused.verifications


@pytest.mark.parametrize("mode", ["audit", "required"])
def test_unsigned_version_with_only_a_notation_policy(plain_registry: Registry, tmp_path: Path, mode: str) -> None:
    from tests.test_sync import push_tree

    repo = remote(plain_registry)
    push_tree(repo, "1.0.0", {"a.json": "1"}, tmp_path)
    policy = _policy(tmp_path)
    with Store(tmp_path / "data", durable=False) as store:
        result = reconcile_once(repo, store, verifier=Verifier(VerifyPolicy(Mode(mode), (), (), policy.extra)))
    assert result.verifications["1.0.0"]["result"] == "unsigned"
    assert bool(result.digests) == (mode == "audit")
