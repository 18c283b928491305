"""Interop: signatures, certificates and trust policies made by notation itself (``tests/vectors/notation/README.md``).

The outcome expected of each trust policy file is the one notation's own e2e suite asserts
(notaryproject/notation@2a558558 ``test/e2e/suite/trustpolicy/*.go``, ``suite/command/policy.go``); the outcome of
each envelope is the one notation-go's tests assert for it. ``now`` is pinned so that no vector expires under us.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from specman.signature.notation import (
    SIGNATURE_ARTIFACT_TYPE,
    NotationError,
    NotationPolicy,
    NotationResult,
    load_notation_policy,
    verify_notation_signature,
)

VECTORS = Path(__file__).parent / "vectors" / "notation"
CERTIFICATES = json.loads((VECTORS / "certificates.json").read_text())
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
E2E_SUBJECT = (VECTORS / "e2e-subject-manifest.json").read_bytes()
E2E_DIGEST = "sha256:" + hashlib.sha256(E2E_SUBJECT).hexdigest()
E2E_REPOSITORY = "localhost:5000/test-repo"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MOCK_DIGEST = "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e"  # internal/mock/mockfs.go


def envelope(name: str) -> bytes:
    return (VECTORS / f"{name}.jws.json").read_bytes()


def pem(name: str) -> bytes:
    """A certificate of ``certificates.json``, or ``x5c:ENVELOPE``: the leaf an envelope carries (self-signed ones)."""
    if not name.startswith("x5c:"):
        return str(CERTIFICATES[name]["pem"]).encode()
    leaf = json.loads(envelope(name[4:]))["header"]["x5c"][0]
    return x509.load_der_x509_certificate(base64.b64decode(leaf)).public_bytes(serialization.Encoding.PEM)


def store(root: Path, spec: str, *certificates: str) -> None:
    store_type, name = spec.split(":")
    directory = root / "x509" / store_type / name
    directory.mkdir(parents=True, exist_ok=True)
    for index, certificate in enumerate(certificates):
        (directory / f"{index}.crt").write_bytes(pem(certificate))


def policy(tmp_path: Path, file: str, stores: Mapping[str, tuple[str, ...]] | None = None) -> NotationPolicy:
    root = tmp_path / "truststore"
    for spec, certificates in (stores if stores is not None else {"ca:e2e": ("e2e",)}).items():
        store(root, spec, *certificates)
    root.mkdir(exist_ok=True)
    return load_notation_policy(VECTORS / "trustpolicy" / file, root)


def verify_e2e(name: str, trust: NotationPolicy, *, repository: str = E2E_REPOSITORY) -> NotationResult:
    return verify_notation_signature(
        envelope(name),
        media_type="application/jose+json",
        subject_digest=E2E_DIGEST,
        subject_size=len(E2E_SUBJECT),
        subject_media_type=MANIFEST,
        reference=f"{repository}@{E2E_DIGEST}",
        policy=trust,
        now=NOW,
    )


def verify_mock(name: str, trust: NotationPolicy, **overrides: Any) -> NotationResult:
    arguments: dict[str, Any] = {
        "media_type": "application/jose+json",
        "subject_digest": MOCK_DIGEST,
        "subject_size": 528,
        "subject_media_type": DOCKER_MANIFEST,
        "reference": f"localhost:5000/net-monitor@{MOCK_DIGEST}",
        "policy": trust,
        "now": NOW,
    }
    arguments.update(overrides)
    return verify_notation_signature(envelope(name), **arguments)


# --- notation e2e: the full OCI layout made by notation v1.0.0 ----------------------------------------------------


def test_e2e_signature_manifest_points_at_the_subject_and_envelope() -> None:
    manifest = json.loads((VECTORS / "e2e-signature-manifest.json").read_bytes())
    assert manifest["config"]["mediaType"] == SIGNATURE_ARTIFACT_TYPE
    assert manifest["subject"] == {"mediaType": MANIFEST, "digest": E2E_DIGEST, "size": len(E2E_SUBJECT)}
    layer = manifest["layers"][0]
    data = envelope("e2e-valid-signature")
    assert layer["mediaType"] == "application/jose+json"
    assert (layer["digest"], layer["size"]) == ("sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def test_e2e_valid_signature_verifies_under_notations_default_policy(tmp_path: Path) -> None:
    result = verify_e2e("e2e-valid-signature", policy(tmp_path, "trustpolicy.json"))
    manifest = json.loads((VECTORS / "e2e-signature-manifest.json").read_bytes())
    thumbprints = json.loads(manifest["annotations"]["io.cncf.notary.x509chain.thumbprint#S256"])
    assert result.signer_fingerprint == thumbprints[0]
    assert result.signer_subject == "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"
    assert result.signing_time == dt.datetime(2023, 6, 27, 5, 30, 33, tzinfo=dt.UTC)
    assert (result.level, result.authentic, result.warnings, result.signing_agent) == (
        "strict",
        True,
        (),
        "Notation/1.0.0",
    )


def test_e2e_trust_store_certificate_is_the_signers(tmp_path: Path) -> None:
    assert pem("x5c:e2e-valid-signature") == pem("e2e")


@pytest.mark.parametrize(
    "file",
    [
        "valid_trusted_identity_trustpolicy.json",
        "multiple_trusted_identity_trustpolicy.json",
        "any_registry_scope_trust_policy.json",
        "registry_scope_trustpolicy.json",
        "permissive_trustpolicy.json",
        "audit_trustpolicy.json",
        "override_strict_trustpolicy.json",
    ],
)
def test_e2e_valid_signature_passes_notations_passing_policies(tmp_path: Path, file: str) -> None:
    result = verify_e2e("e2e-valid-signature", policy(tmp_path, file))
    assert (result.authentic, result.warnings) == (True, ())


def test_multiple_trust_stores(tmp_path: Path) -> None:
    stores = {"ca:e2e": ("e2e",), "ca:e2e-new": ("new_e2e",)}
    assert verify_e2e(
        "e2e-valid-signature", policy(tmp_path, "multiple_trust_store_trustpolicy.json", stores)
    ).authentic


def test_invalid_trusted_identity_fails_authenticity(tmp_path: Path) -> None:
    with pytest.raises(NotationError) as caught:
        verify_e2e("e2e-valid-signature", policy(tmp_path, "invalid_trusted_identity_trustpolicy.json"))
    assert caught.value.check == "authenticity"
    assert "matches no trusted identity" in str(caught.value)


def test_registry_scope_of_another_repository_does_not_apply(tmp_path: Path) -> None:
    with pytest.raises(NotationError) as caught:
        verify_e2e("e2e-valid-signature", policy(tmp_path, "invalid_registry_scope_trustpolicy.json"))
    assert caught.value.check == "policy"
    assert str(caught.value) == "no notation trust policy statement applies to localhost:5000/test-repo"


def test_multi_statements_pick_the_exact_scope_before_the_global_one(tmp_path: Path) -> None:
    trust = policy(tmp_path, "multi_statements_with_wildcard_registry_scope_trustpolicy.json")
    assert verify_e2e("e2e-valid-signature", trust, repository="localhost:5000/test-repo9").policy_name == "e2e"
    assert verify_e2e("e2e-valid-signature", trust, repository="localhost:5000/other").policy_name == "e2e2"


def test_skip_policy_skips(tmp_path: Path) -> None:
    result = verify_e2e("e2e-with-expired-cert", policy(tmp_path, "skip_trustpolicy.json", {}))
    assert (result.skipped, result.level) == (True, "skip")


@pytest.mark.parametrize(
    ("file", "outcome"),
    [("trustpolicy.json", "enforce"), ("permissive_trustpolicy.json", "log"), ("audit_trustpolicy.json", "log")],
)
def test_e2e_expired_signature_by_level(tmp_path: Path, file: str, outcome: str) -> None:
    trust = policy(tmp_path, file)
    if outcome == "enforce":
        with pytest.raises(NotationError, match=r"^expiry: the signature expired at 2023-06-27T05:21:21Z$"):
            verify_e2e("e2e-expired-signature", trust)
        return
    assert verify_e2e("e2e-expired-signature", trust).warnings == (
        "expiry: the signature expired at 2023-06-27T05:21:21Z",
    )


@pytest.mark.parametrize(
    ("file", "outcome"),
    [("trustpolicy.json", "enforce"), ("permissive_trustpolicy.json", "log"), ("audit_trustpolicy.json", "log")],
)
def test_e2e_expired_certificate_by_level(tmp_path: Path, file: str, outcome: str) -> None:
    trust = policy(tmp_path, file, {"ca:e2e": ("expired_e2e",)})
    if outcome == "enforce":
        with pytest.raises(NotationError, match=r"^authenticTimestamp: certificate .* expired at 2023-06-27T06:10:00Z"):
            verify_e2e("e2e-with-expired-cert", trust)
        return
    (warning,) = verify_e2e("e2e-with-expired-cert", trust).warnings
    assert warning.startswith("authenticTimestamp: certificate 'C=AU,ST=Some-State,O=Internet Widgits Pty Ltd'")


def test_e2e_signature_from_an_untrusted_root(tmp_path: Path) -> None:
    with pytest.raises(NotationError, match=r"^authenticity: ") as caught:
        verify_e2e("e2e-with-expired-cert", policy(tmp_path, "trustpolicy.json"))
    assert caught.value.check == "authenticity"
    result = verify_e2e("e2e-with-expired-cert", policy(tmp_path / "audit", "audit_trustpolicy.json"))
    assert not result.authentic
    assert [warning.split(":")[0] for warning in result.warnings] == ["authenticity", "authenticTimestamp"]


def test_override_strict_logs_every_failure(tmp_path: Path) -> None:
    result = verify_e2e("e2e-with-expired-cert", policy(tmp_path, "override_strict_trustpolicy.json"))
    assert (result.level, result.overridden, result.authentic) == ("strict", True, False)
    assert [warning.split(":")[0] for warning in result.warnings] == ["authenticity", "authenticTimestamp"]


def test_timestamp_policy_needs_a_countersignature(tmp_path: Path) -> None:
    trust = policy(tmp_path, "timestamp_trustpolicy.json", {"ca:e2e": ("e2e",), "tsa:e2e": ("e2e",)})
    with pytest.raises(NotationError, match="no timestamp countersignature was found") as caught:
        verify_e2e("e2e-valid-signature", trust)
    assert caught.value.check == "authenticTimestamp"


def test_tampered_e2e_envelope_fails_integrity(tmp_path: Path) -> None:
    document = json.loads(envelope("e2e-valid-signature"))
    payload = json.loads(base64.urlsafe_b64decode(document["payload"] + "=="))
    payload["targetArtifact"]["size"] += 1
    document["payload"] = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(NotationError, match="does not verify") as caught:
        verify_notation_signature(
            json.dumps(document).encode(),
            media_type="application/jose+json",
            subject_digest=E2E_DIGEST,
            subject_size=len(E2E_SUBJECT) + 1,
            subject_media_type=MANIFEST,
            reference=f"{E2E_REPOSITORY}@{E2E_DIGEST}",
            policy=policy(tmp_path, "audit_trustpolicy.json"),
            now=NOW,
        )
    assert caught.value.check == "integrity"


def test_e2e_signature_for_another_manifest_fails(tmp_path: Path) -> None:
    other = "sha256:" + hashlib.sha256(b"other").hexdigest()
    with pytest.raises(NotationError, match=f"not for {other}") as caught:
        verify_notation_signature(
            envelope("e2e-valid-signature"),
            media_type="application/jose+json",
            subject_digest=other,
            subject_size=len(E2E_SUBJECT),
            subject_media_type=MANIFEST,
            reference=f"{E2E_REPOSITORY}@{other}",
            policy=policy(tmp_path, "trustpolicy.json"),
            now=NOW,
        )
    assert caught.value.check == "integrity"


# --- notation's trust policy files that notation refuses ------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        ("invalid_format_trustpolicy.json", "is not valid JSON"),
        ("empty_registry_scope_trustpolicy.json", "registryScopes must name at least one"),
        ("malformed_registry_scope_trustpolicy.json", "is not a fully qualified repository"),
        ("overlapped_registry_scope_trustpolicy.json", "'localhost:5000/test-repo6' is in several statements"),
        ("wildcard_plus_other_registry_scope_trustpolicy.json", "'*' cannot be combined with other scopes"),
        ("multi_statements_with_the_same_registry_scope_trustpolicy.json", "is in several statements"),
        ("multi_statements_with_multi_wildcard_registry_scope_trustpolicy.json", "'*' is in several statements"),
        ("multi_statements_with_the_same_name_trustpolicy.json", "two statements named 'e2e'"),
        ("unset_trust_store_trustpolicy.json", "trustStores and trustedIdentities are both required"),
        ("malformed_trust_store_trustpolicy.json", "trust store name '' must match"),
        ("wildcard_trust_store_trustpolicy.json", "trust store '*' is not TYPE:NAME"),
        ("unset_trusted_identity_trustpolicy.json", "trustStores and trustedIdentities are both required"),
        ("malformed_trusted_identity_trustpolicy.json", "has no 'type:' prefix"),
        ("empty_trusted_identity_trustpolicy.json", "a trusted identity is empty"),
        ("overlapped_trusted_identity_trustpolicy.json", "overlap"),
        ("wildcard_plus_other_trusted_identity_trustpolicy.json", "'*' cannot be combined with other identities"),
        ("missing_organization_trusted_identity_trustpolicy.json", "must contain C, ST (or S) and O"),
        ("missing_state_trusted_identity_trustpolicy.json", "must contain C, ST (or S) and O"),
        ("missing_country_trusted_identity_trustpolicy.json", "must contain C, ST (or S) and O"),
        ("override_integrity_for_permissive_trustpolicy.json", "integrity cannot be overridden"),
    ],
)
def test_policies_notation_refuses_are_refused(tmp_path: Path, file: str, reason: str) -> None:
    with pytest.raises(NotationError) as caught:
        policy(tmp_path, file)
    assert caught.value.check == "policy"
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_trust_store_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(NotationError, match="trust store ca:invalid_store does not exist") as caught:
        policy(tmp_path, "invalid_trust_store_trustpolicy.json")
    assert caught.value.check == "truststore"


# --- notation-go's envelopes -----------------------------------------------------------------------------------


def test_notation_go_jws_signature_over_its_oci_layout_manifest(tmp_path: Path) -> None:
    subject = (VECTORS / "notation-go-subject-manifest.json").read_bytes()
    digest = "sha256:" + hashlib.sha256(subject).hexdigest()
    result = verify_notation_signature(
        envelope("notation-go-jws_signature"),
        media_type="application/jose+json",
        subject_digest=digest,
        subject_size=len(subject),
        subject_media_type=MANIFEST,
        reference=f"localhost:5000/alpine@{digest}",
        policy=policy(tmp_path, "trustpolicy.json", {"ca:e2e": ("x5c:notation-go-jws_signature",)}),
        now=NOW,
    )
    assert result.signer_subject == "CN=alpine,O=Notary,L=Seattle,ST=WA,C=US"
    assert result.signing_time == dt.datetime(2023, 3, 14, 8, 10, 2, tzinfo=dt.UTC)


def test_notation_go_chain_to_notation_test_root(tmp_path: Path) -> None:
    stores = {"ca:e2e": ("NotationTestRoot",), "signingAuthority:e2e": ("NotationTestRoot",)}
    Path(tmp_path / "tp.json").write_text(
        json.dumps(
            {
                "version": "1.0",
                "trustPolicies": [
                    {
                        "name": "mock",
                        "registryScopes": ["*"],
                        "signatureVerification": {"level": "strict"},
                        "trustStores": ["ca:e2e", "signingAuthority:e2e"],
                        "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Notary, CN=Notation Test Root"],
                    }
                ],
            }
        )
    )
    for spec, certificates in stores.items():
        store(tmp_path / "truststore", spec, *certificates)
    trust = load_notation_policy(tmp_path / "tp.json", tmp_path / "truststore")
    ca = verify_mock("notation-go-mock-ca_valid", trust)
    assert (ca.signing_scheme, ca.expiry) == ("notary.x509", dt.datetime(2120, 11, 9, 7, tzinfo=dt.UTC))
    sa = verify_mock("notation-go-mock-sa_valid", trust)
    assert (sa.signing_scheme, sa.authentic) == ("notary.x509.signingAuthority", True)
    for name in ("notation-go-mock-ca_expired", "notation-go-mock-sa_expired"):
        with pytest.raises(NotationError, match=r"^expiry: the signature expired at 2022-07-29T23:59:00Z$"):
            verify_mock(name, trust)


def test_notation_go_broken_envelopes(tmp_path: Path) -> None:
    trust = policy(tmp_path, "trustpolicy.json", {"ca:e2e": ("NotationTestRoot",)})
    with pytest.raises(NotationError, match="payload is not unpadded base64url") as caught:
        verify_mock("notation-go-mock-ca_invalid", trust)
    assert caught.value.check == "envelope"
    with pytest.raises(NotationError, match="requires verification plugin 'plugin-name'"):
        verify_mock("notation-go-mock-ca_plugin", trust)


def _self_trust(tmp_path: Path, name: str, file: str = "trustpolicy.json", tsa: bool = False) -> NotationPolicy:
    stores: dict[str, tuple[str, ...]] = {"ca:e2e": (f"x5c:{name}",)}
    if tsa:
        stores["tsa:e2e"] = (f"x5c:{name}",)
    return policy(tmp_path, file, stores)


def _verify_timestamp_vector(name: str, trust: NotationPolicy) -> NotationResult:
    digest = "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda"
    return verify_mock(name, trust, subject_digest=digest)


def test_notation_go_timestamp_vectors(tmp_path: Path) -> None:
    plain = _verify_timestamp_vector(
        "notation-go-withoutTimestamp", _self_trust(tmp_path / "a", "notation-go-withoutTimestamp")
    )
    assert plain.warnings == ()
    with pytest.raises(NotationError, match="is not valid before 2099-09-18") as caught:
        _verify_timestamp_vector(
            "notation-go-timestampBeforeNotBefore", _self_trust(tmp_path / "b", "notation-go-timestampBeforeNotBefore")
        )
    assert caught.value.check == "authenticTimestamp"
    stamped = "notation-go-jwsWithTimestamp"
    assert _verify_timestamp_vector(stamped, _self_trust(tmp_path / "c", stamped)).warnings == ()
    trust = _self_trust(tmp_path / "d", stamped, "timestamp_trustpolicy.json", tsa=True)
    with pytest.raises(NotationError, match="RFC 3161 timestamp check, which specman does not perform"):
        _verify_timestamp_vector(stamped, trust)
