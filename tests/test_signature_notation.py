"""Notation verification against envelopes and certificate chains made at test time (fixtures/notation_signer).

Each case bends one rule of the specification (envelope, certificate requirements, trust, time, policy) and checks the
one-line reason and the ``check`` it is filed under; the level table of trust-store-trust-policy.md is checked cell
by cell. Pure library tests: no network, no processes.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from specman.signature.notation import (
    MAX_ENVELOPE_BYTES,
    NotationError,
    NotationPolicy,
    NotationResult,
    load_notation_policy,
    verify_notation_signature,
)
from tests.fixtures.notation_signer import (
    NOW,
    Pki,
    envelope_parts,
    make_certificate,
    make_key,
    make_pki,
    notation_headers,
    sign_envelope,
    subject_name,
    target_payload,
    write_trust_store,
)

SUBJECT = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}'
DIGEST = "sha256:" + hashlib.sha256(SUBJECT).hexdigest()
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REPOSITORY = "registry.example:5000/spectro-packs/spectro-manifests/manifest"
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki("ES256")


def make_policy(
    directory: Path,
    trusted: Sequence[x509.Certificate],
    *,
    level: str = "strict",
    override: dict[str, str] | None = None,
    identities: Sequence[str] = ("*",),
    scopes: Sequence[str] = ("*",),
    store_type: str = "ca",
) -> NotationPolicy:
    write_trust_store(directory / "truststore", store_type, "test", trusted)
    verification: dict[str, Any] = {"level": level}
    if override:
        verification["override"] = override
    statement: dict[str, Any] = {"name": "test", "registryScopes": list(scopes), "signatureVerification": verification}
    if level != "skip":
        statement |= {"trustStores": [f"{store_type}:test"], "trustedIdentities": list(identities)}
    (directory / "trustpolicy.json").write_text(json.dumps({"version": "1.0", "trustPolicies": [statement]}))
    return load_notation_policy(directory / "trustpolicy.json", directory / "truststore")


def verify(envelope: bytes, policy: NotationPolicy, **overrides: Any) -> NotationResult:
    arguments: dict[str, Any] = {
        "media_type": "application/jose+json",
        "subject_digest": DIGEST,
        "subject_size": len(SUBJECT),
        "subject_media_type": MANIFEST,
        "reference": f"{REPOSITORY}@{DIGEST}",
        "policy": policy,
        "now": NOW,
    }
    arguments.update(overrides)
    return verify_notation_signature(envelope, **arguments)


def signed(chain_owner: Pki, payload: bytes | None = None, **header_options: Any) -> bytes:
    header = notation_headers(chain_owner.alg, **header_options)
    return sign_envelope(
        chain_owner.leaf_key, chain_owner.chain, payload or target_payload(DIGEST, len(SUBJECT)), header
    )


def rejected(envelope: bytes, policy: NotationPolicy, check: str, **overrides: Any) -> str:
    with pytest.raises(NotationError) as caught:
        verify(envelope, policy, **overrides)
    assert caught.value.check == check, str(caught.value)
    assert "\n" not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "PS256"])
def test_valid_signature_verifies_for_each_algorithm(tmp_path: Path, alg: str) -> None:
    chain = make_pki(alg)
    result = verify(signed(chain), make_policy(tmp_path, [chain.root]))
    assert (result.level, result.skipped, result.authentic, result.warnings) == ("strict", False, True, ())
    assert result.signer_subject == chain.leaf.subject.rfc4514_string()
    assert result.signer_fingerprint == chain.leaf.fingerprint(hashes.SHA256()).hex()
    assert result.signing_scheme == "notary.x509"
    assert result.signing_time == (NOW - dt.timedelta(hours=1)).replace(microsecond=0)
    assert result.signing_agent == "specman-tests"


def test_trust_anchor_may_be_the_intermediate(tmp_path: Path, pki: Pki) -> None:
    assert verify(signed(pki), make_policy(tmp_path, [pki.intermediate])).authentic


def test_tag_and_plain_references_select_the_repository_scope(tmp_path: Path, pki: Pki) -> None:
    policy = make_policy(tmp_path, [pki.root], scopes=[REPOSITORY])
    for reference in (f"{REPOSITORY}@{DIGEST}", f"{REPOSITORY}:4.5.13", REPOSITORY):
        assert verify(signed(pki), policy, reference=reference).policy_name == "test"


# --- integrity: always enforced ----------------------------------------------------------------------------------


def test_tampered_payload_fails_integrity(tmp_path: Path, pki: Pki) -> None:
    parts = envelope_parts(pki.leaf_key, pki.chain, target_payload(DIGEST, 1), notation_headers("ES256"))
    parts["payload"] = base64.urlsafe_b64encode(target_payload(DIGEST, len(SUBJECT))).rstrip(b"=").decode()
    message = rejected(json.dumps(parts).encode(), make_policy(tmp_path, [pki.root], level="audit"), "integrity")
    assert "does not verify" in message


def test_tampered_protected_header_fails_integrity(tmp_path: Path, pki: Pki) -> None:
    parts = envelope_parts(pki.leaf_key, pki.chain, target_payload(DIGEST, len(SUBJECT)), notation_headers("ES256"))
    header = notation_headers("ES256", signing_time=NOW - 2 * DAY)
    parts["protected"] = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    rejected(json.dumps(parts).encode(), make_policy(tmp_path, [pki.root]), "integrity")


def test_signature_by_another_key_fails_integrity(tmp_path: Path, pki: Pki) -> None:
    envelope = sign_envelope(
        make_key("ES256"), pki.chain, target_payload(DIGEST, len(SUBJECT)), notation_headers("ES256")
    )
    rejected(envelope, make_policy(tmp_path, [pki.root], level="audit"), "integrity")


@pytest.mark.parametrize(
    ("digest", "size", "media_type"),
    [
        ("sha256:" + "0" * 64, len(SUBJECT), MANIFEST),
        (DIGEST, len(SUBJECT) + 1, MANIFEST),
        (DIGEST, len(SUBJECT), "application/vnd.oci.image.index.v1+json"),
    ],
)
def test_payload_naming_another_artifact_fails(
    tmp_path: Path, pki: Pki, digest: str, size: int, media_type: str
) -> None:
    envelope = signed(pki, payload=target_payload(digest, size, media_type))
    message = rejected(envelope, make_policy(tmp_path, [pki.root], level="audit"), "integrity")
    assert f"the signature is for {digest}" in message
    assert f"not for {DIGEST}" in message


def test_algorithm_must_match_the_leaf_key(tmp_path: Path, pki: Pki) -> None:
    header = notation_headers("ES384")
    envelope = sign_envelope(pki.leaf_key, pki.chain, target_payload(DIGEST, len(SUBJECT)), header, sign_alg="ES256")
    assert "needs ES256" in rejected(envelope, make_policy(tmp_path, [pki.root]), "integrity")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ca": True, "basic_constraints": True}, "cA=true"),
        (
            {"key_usage": x509.KeyUsage(False, True, False, False, False, False, False, False, False)},
            "digitalSignature",
        ),
        ({"key_usage": x509.KeyUsage(True, False, True, False, False, False, False, False, False)}, "keyEncipherment"),
        ({"ekus": [ExtendedKeyUsageOID.SERVER_AUTH]}, "serverAuth"),
        ({"ekus": [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]}, "anyExtendedKeyUsage"),
    ],
)
def test_leaf_certificate_requirements(tmp_path: Path, change: dict[str, Any], reason: str) -> None:
    chain = make_pki("ES256", **change)
    assert reason in rejected(signed(chain), make_policy(tmp_path, [chain.root], level="audit"), "integrity")


def test_weak_rsa_key_is_refused(tmp_path: Path) -> None:
    chain = make_pki("PS256", leaf_key=make_key("RSA1024"))
    assert "RSA 2048" in rejected(signed(chain), make_policy(tmp_path, [chain.root]), "integrity")


def test_ca_without_critical_basic_constraints_is_refused(tmp_path: Path, pki: Pki) -> None:
    name = subject_name("Loose Intermediate")
    loose = make_certificate(
        name, pki.intermediate_key, pki.root.subject, pki.root_key, ca=True, basic_constraints=False
    )
    leaf = make_certificate(subject_name("signer"), pki.leaf_key, name, pki.intermediate_key, ca=False)
    header = notation_headers("ES256")
    envelope = sign_envelope(pki.leaf_key, [leaf, loose, pki.root], target_payload(DIGEST, len(SUBJECT)), header)
    assert "basicConstraints" in rejected(envelope, make_policy(tmp_path, [pki.root]), "integrity")


@pytest.mark.parametrize("order", ["missing-root", "out-of-order", "unrelated-extra"])
def test_chain_must_run_from_leaf_to_self_signed_root(tmp_path: Path, pki: Pki, order: str) -> None:
    other = make_pki("ES256")
    chain = {
        "missing-root": [pki.leaf, pki.intermediate],
        "out-of-order": [pki.leaf, pki.root, pki.intermediate],
        "unrelated-extra": [pki.leaf, pki.intermediate, other.intermediate, pki.root],
    }[order]
    envelope = sign_envelope(pki.leaf_key, chain, target_payload(DIGEST, len(SUBJECT)), notation_headers("ES256"))
    rejected(envelope, make_policy(tmp_path, [pki.root], level="audit"), "integrity")


def test_sha1_signed_certificate_is_refused(tmp_path: Path) -> None:
    # cryptography refuses to sign with SHA-1, so openssl makes this one (key and certificate stay in tmp_path).
    key_file, cert_file = tmp_path / "sha1.key", tmp_path / "sha1.cert"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key_file], check=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-new",
            "-key",
            key_file,
            "-sha1",
            "-subj",
            "/C=US/ST=WA/O=Notary/CN=sha1",
            "-days",
            "10",
            "-addext",
            "keyUsage=critical,digitalSignature",
            "-out",
            cert_file,
        ],
        check=True,
        capture_output=True,
    )
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    envelope = sign_envelope(key, [certificate], target_payload(DIGEST, len(SUBJECT)), notation_headers("ES256"))
    message = rejected(envelope, make_policy(tmp_path, [certificate]), "integrity", now=dt.datetime.now(dt.UTC))
    assert "SHA1" in message


# --- malformed envelopes ----------------------------------------------------------------------------------------


def _mutated(pki: Pki, mutate: Callable[[dict[str, Any]], None]) -> bytes:
    parts = envelope_parts(pki.leaf_key, pki.chain, target_payload(DIGEST, len(SUBJECT)), notation_headers("ES256"))
    mutate(parts)
    return json.dumps(parts).encode()


def _protected(pki: Pki, change: Callable[[dict[str, Any]], None]) -> bytes:
    header = notation_headers("ES256", expiry=NOW + DAY)
    change(header)
    return sign_envelope(pki.leaf_key, pki.chain, target_payload(DIGEST, len(SUBJECT)), header, sign_alg="ES256")


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("not JSON", lambda p: b"{not json", "not valid JSON"),
        ("not an object", lambda p: b"[]", "not a JSON object"),
        ("general JWS", lambda p: _mutated(p, lambda e: e.update(signatures=[])), "exactly payload"),
        ("padded base64", lambda p: _mutated(p, lambda e: e.update(payload=e["payload"] + "=")), "base64url"),
        ("std base64", lambda p: _mutated(p, lambda e: e.update(signature=e["signature"] + "+/")), "base64url"),
        ("bad x5c", lambda p: _mutated(p, lambda e: e["header"].update(x5c=["%%%"])), "standard base64"),
        ("x5c not DER", lambda p: _mutated(p, lambda e: e["header"].update(x5c=["AAAA"])), "not a DER"),
        ("crit in header", lambda p: _mutated(p, lambda e: e["header"].update(alg="ES256")), "both protected"),
        ("no crit", lambda p: _protected(p, lambda h: h.pop("crit")), '"crit"'),
        ("expiry not crit", lambda p: _protected(p, lambda h: h["crit"].remove("io.cncf.notary.expiry")), "crit"),
        ("crit absent", lambda p: _protected(p, lambda h: h["crit"].append("io.x")), "not present"),
        (
            "unknown crit",
            lambda p: _protected(p, lambda h: h.update({"io.x": 1, "crit": [*h["crit"], "io.x"]})),
            "unknown",
        ),
        (
            "plugin",
            lambda p: _protected(
                p,
                lambda h: h.update(
                    {
                        "io.cncf.notary.verificationPlugin": "x",
                        "crit": [*h["crit"], "io.cncf.notary.verificationPlugin"],
                    }
                ),
            ),
            "plugin",
        ),
        (
            "bad time",
            lambda p: _protected(p, lambda h: h.update({"io.cncf.notary.signingTime": "2026-06-01"})),
            "RFC 3339",
        ),
        (
            "month 13",
            lambda p: _protected(p, lambda h: h.update({"io.cncf.notary.signingTime": "2026-13-01T00:00:00Z"})),
            "not a valid time",
        ),
        ("no time", lambda p: _protected(p, lambda h: h.pop("io.cncf.notary.signingTime")), "signing time is missing"),
        (
            "expiry first",
            lambda p: _protected(p, lambda h: h.update({"io.cncf.notary.expiry": "2000-01-01T00:00:00Z"})),
            "not after",
        ),
        (
            "scheme",
            lambda p: _protected(p, lambda h: h.update({"io.cncf.notary.signingScheme": "x"})),
            "signing scheme",
        ),
        ("cty", lambda p: _protected(p, lambda h: h.update(cty="application/json")), "content type"),
        ("alg none", lambda p: _protected(p, lambda h: h.update(alg="none")), "unsupported JWS alg"),
        ("alg HS256", lambda p: _protected(p, lambda h: h.update(alg="HS256")), "unsupported JWS alg"),
    ],
)
def test_malformed_envelopes_are_refused_with_one_line(
    tmp_path: Path, pki: Pki, name: str, make: Callable[[Pki], bytes], reason: str
) -> None:
    with pytest.raises(NotationError) as caught:
        verify(make(pki), make_policy(tmp_path, [pki.root], level="audit"))
    assert caught.value.check in ("envelope", "integrity"), name
    assert reason in str(caught.value), name
    assert "\n" not in str(caught.value)


def test_duplicate_protected_members_are_refused(tmp_path: Path, pki: Pki) -> None:
    parts = envelope_parts(pki.leaf_key, pki.chain, target_payload(DIGEST, len(SUBJECT)), notation_headers("ES256"))
    raw = base64.urlsafe_b64decode(parts["protected"] + "==").decode()
    parts["protected"] = base64.urlsafe_b64encode(
        raw.replace('{"alg": "ES256"', '{"alg": "ES256", "alg": "none"').encode()
    )
    parts["protected"] = parts["protected"].rstrip(b"=").decode()
    assert "duplicate" in rejected(json.dumps(parts).encode(), make_policy(tmp_path, [pki.root]), "envelope")


def test_oversized_envelope_is_refused_before_parsing(tmp_path: Path, pki: Pki) -> None:
    envelope = b" " * (MAX_ENVELOPE_BYTES + 1)
    assert "more than" in rejected(envelope, make_policy(tmp_path, [pki.root]), "envelope")


@pytest.mark.parametrize("media_type", ["application/cose", "application/json"])
def test_other_envelope_media_types_are_refused(tmp_path: Path, pki: Pki, media_type: str) -> None:
    rejected(signed(pki), make_policy(tmp_path, [pki.root]), "envelope", media_type=media_type)


# --- the verification levels table ------------------------------------------------------------------------------

SPEC_TABLE = {  # trust-store-trust-policy.md, "Signature Verification details"
    "strict": {
        "authenticity": "enforce",
        "authenticTimestamp": "enforce",
        "expiry": "enforce",
        "revocation": "enforce",
    },
    "permissive": {"authenticity": "enforce", "authenticTimestamp": "log", "expiry": "log", "revocation": "log"},
    "audit": {"authenticity": "log", "authenticTimestamp": "log", "expiry": "log", "revocation": "log"},
}


def _failing(check: str) -> tuple[bytes, list[x509.Certificate]]:
    """An envelope failing exactly ``check``, and the certificates to trust."""
    if check == "authenticity":
        chain = make_pki("ES256")
        return signed(chain), [make_pki("ES256").root]
    if check == "authenticTimestamp":
        chain = make_pki("ES256", not_before=NOW - 10 * DAY, not_after=NOW - DAY)
        return signed(chain, signing_time=NOW - 2 * DAY), [chain.root]
    if check == "expiry":
        chain = make_pki("ES256")
        return signed(chain, signing_time=NOW - 2 * DAY, expiry=NOW - DAY), [chain.root]
    crl = x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier("http://crl.invalid/ca.crl")], None, None, None)]
    )
    chain = make_pki("ES256", extensions=[crl])
    return signed(chain), [chain.root]


@pytest.mark.parametrize("level", list(SPEC_TABLE))
@pytest.mark.parametrize("check", ["authenticity", "authenticTimestamp", "expiry", "revocation"])
def test_each_level_enforces_or_logs_as_the_specification_table_says(tmp_path: Path, level: str, check: str) -> None:
    envelope, trusted = _failing(check)
    policy = make_policy(tmp_path, trusted, level=level)
    if SPEC_TABLE[level][check] == "enforce":
        assert rejected(envelope, policy, check).startswith(f"{check}: ")
        return
    result = verify(envelope, policy)
    assert [warning.split(":")[0] for warning in result.warnings] == [check]
    assert result.authentic is (check != "authenticity")
    assert result.level == level


def test_skip_level_verifies_nothing(tmp_path: Path) -> None:
    policy = make_policy(tmp_path, [], level="skip")
    result = verify(b"not even JSON", policy)
    assert (result.skipped, result.level, result.signer_subject, result.authentic) == (True, "skip", None, False)


def test_override_turns_an_enforced_check_into_a_logged_one(tmp_path: Path) -> None:
    envelope, trusted = _failing("expiry")
    result = verify(envelope, make_policy(tmp_path, trusted, override={"expiry": "log"}))
    assert result.overridden
    assert result.warnings[0].startswith("expiry: the signature expired at")


def test_revocation_override_skip_ignores_crl_urls(tmp_path: Path) -> None:
    envelope, trusted = _failing("revocation")
    result = verify(envelope, make_policy(tmp_path, trusted, override={"revocation": "skip"}))
    assert result.warnings == ()


# --- time ----------------------------------------------------------------------------------------------------


def test_expired_certificate_fails_under_strict(tmp_path: Path) -> None:
    envelope, trusted = _failing("authenticTimestamp")
    assert "expired at" in rejected(envelope, make_policy(tmp_path, trusted), "authenticTimestamp")


def test_not_yet_valid_certificate_fails(tmp_path: Path) -> None:
    chain = make_pki("ES256", not_before=NOW + DAY, not_after=NOW + 10 * DAY)
    message = rejected(
        signed(chain, signing_time=NOW + 2 * DAY), make_policy(tmp_path, [chain.root]), "authenticTimestamp"
    )
    assert "is not valid before" in message


def test_signing_time_outside_the_certificate_validity_fails(tmp_path: Path) -> None:
    chain = make_pki("ES256", not_before=NOW - 5 * DAY, not_after=NOW + 5 * DAY)
    message = rejected(
        signed(chain, signing_time=NOW - 30 * DAY), make_policy(tmp_path, [chain.root]), "authenticTimestamp"
    )
    assert "the signing time is" in message


def test_signature_still_inside_its_expiry_passes(tmp_path: Path, pki: Pki) -> None:
    result = verify(signed(pki, expiry=NOW + DAY), make_policy(tmp_path, [pki.root]))
    assert result.expiry == NOW + DAY


def test_expired_signature_fails_from_its_expiry_instant(tmp_path: Path, pki: Pki) -> None:
    policy = make_policy(tmp_path, [pki.root])
    envelope = signed(pki, expiry=NOW)
    assert "expired at" in rejected(envelope, policy, "expiry")
    assert verify(envelope, policy, now=NOW - dt.timedelta(seconds=1)).warnings == ()


def test_signing_authority_uses_the_authentic_signing_time(tmp_path: Path) -> None:
    chain = make_pki("ES256", not_before=NOW - 10 * DAY, not_after=NOW - DAY)
    scheme = "notary.x509.signingAuthority"
    policy = make_policy(tmp_path, [chain.root], store_type="signingAuthority")
    result = verify(signed(chain, signing_time=NOW - 2 * DAY, scheme=scheme), policy)
    assert (result.signing_scheme, result.authentic) == (scheme, True)
    message = rejected(signed(chain, signing_time=NOW - 20 * DAY, scheme=scheme), policy, "authenticTimestamp")
    assert "the authentic signing time" in message


def test_signing_authority_needs_a_signing_authority_store(tmp_path: Path, pki: Pki) -> None:
    envelope = signed(pki, scheme="notary.x509.signingAuthority")
    assert "no signingAuthority trust store" in rejected(envelope, make_policy(tmp_path, [pki.root]), "authenticity")


def test_naive_now_is_a_programming_error(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(signed(pki), make_policy(tmp_path, [pki.root]), now=dt.datetime(2026, 1, 1))


# --- trust and identities -------------------------------------------------------------------------------------


def test_untrusted_root_fails_authenticity(tmp_path: Path, pki: Pki) -> None:
    message = rejected(signed(pki), make_policy(tmp_path, [make_pki("ES256").root]), "authenticity")
    assert "leads to no certificate of ca:test" in message


@pytest.mark.parametrize(
    "identity",
    [
        "x509.subject: C=US, ST=WA, O=Notary",
        "x509.subject: CN=release signer,O=Notary,L=Seattle,ST=WA,C=US",
        "x509.subject: C=US, S=WA, O=Notary, CN=release signer",
    ],
)
def test_matching_trusted_identity_passes(tmp_path: Path, pki: Pki, identity: str) -> None:
    assert verify(signed(pki), make_policy(tmp_path, [pki.root], identities=[identity])).authentic


@pytest.mark.parametrize(
    "identity",
    [
        "x509.subject: C=US, ST=WA, O=Other",
        "x509.subject: C=US, ST=WA, O=Notary, CN=someone else",
        "x509.subject: C=US, ST=WA, O=Notary, OU=team",
    ],
)
def test_identity_mismatch_fails_authenticity(tmp_path: Path, pki: Pki, identity: str) -> None:
    message = rejected(signed(pki), make_policy(tmp_path, [pki.root], identities=[identity]), "authenticity")
    assert "matches no trusted identity" in message


def test_identity_with_escaped_comma_matches(tmp_path: Path) -> None:
    chain = make_pki("ES256", subject=subject_name("signer", organization="Acme, Inc."))
    identity = r"x509.subject: C=US, ST=WA, O=Acme\, Inc."
    assert verify(signed(chain), make_policy(tmp_path, [chain.root], identities=[identity])).authentic


def test_identity_mismatch_is_logged_under_audit(tmp_path: Path, pki: Pki) -> None:
    policy = make_policy(tmp_path, [pki.root], level="audit", identities=["x509.subject: C=US, ST=WA, O=Other"])
    result = verify(signed(pki), policy)
    assert not result.authentic
    assert result.warnings[0].startswith("authenticity: signer")


def test_registry_scope_mismatch_has_no_applicable_policy(tmp_path: Path, pki: Pki) -> None:
    policy = make_policy(tmp_path, [pki.root], scopes=[REPOSITORY])
    other = "registry.example:5000/spectro-packs/other"
    message = rejected(signed(pki), policy, "policy", reference=f"{other}@{DIGEST}")
    assert message == f"no notation trust policy statement applies to {other}"


def test_malformed_reference_is_refused(tmp_path: Path, pki: Pki) -> None:
    rejected(signed(pki), make_policy(tmp_path, [pki.root]), "policy", reference="https://example.com/x")


# --- robustness: every corruption is a NotationError, never a crash -------------------------------------------------


def test_byte_flips_anywhere_give_a_notation_error(tmp_path: Path, pki: Pki) -> None:
    policy = make_policy(tmp_path, [pki.root], level="audit")
    original = signed(pki)
    for position in range(0, len(original), 3):
        corrupted = bytearray(original)
        corrupted[position] ^= 0x41
        with contextlib.suppress(NotationError):  # anything else fails the test
            verify(bytes(corrupted), policy)


@pytest.mark.parametrize("value", [None, 0, -1, 1.5, True, "", "x", [], [1], {}, {"a": 1}])
def test_wrong_json_types_anywhere_give_a_notation_error(tmp_path: Path, pki: Pki, value: Any) -> None:
    policy = make_policy(tmp_path, [pki.root], level="audit")
    header = notation_headers("ES256", expiry=NOW + DAY)
    for key in [*header, "io.cncf.notary.authenticSigningTime"]:
        changed = dict(header) | {key: value}
        with pytest.raises(NotationError):
            verify(sign_envelope(pki.leaf_key, pki.chain, target_payload(DIGEST, 1), changed, sign_alg="ES256"), policy)
    for key in ("payload", "protected", "header", "signature"):
        parts = envelope_parts(pki.leaf_key, pki.chain, target_payload(DIGEST, len(SUBJECT)), header)
        with pytest.raises(NotationError):
            verify(json.dumps(parts | {key: value}).encode(), policy)
    for key in ("x5c", "io.cncf.notary.timestampSignature"):
        parts = envelope_parts(pki.leaf_key, pki.chain, target_payload(DIGEST, len(SUBJECT)), header)
        parts["header"][key] = value
        with contextlib.suppress(NotationError):
            verify(json.dumps(parts).encode(), policy)
    for field_name in ("mediaType", "digest", "size"):
        target = {"mediaType": MANIFEST, "digest": DIGEST, "size": len(SUBJECT)} | {field_name: value}
        payload = json.dumps({"targetArtifact": target}).encode()
        with pytest.raises(NotationError):
            verify(sign_envelope(pki.leaf_key, pki.chain, payload, header), policy)


def test_errors_carry_kind_and_operator_hints(tmp_path: Path) -> None:
    envelope, trusted = _failing("revocation")
    with pytest.raises(NotationError) as caught:
        verify(envelope, make_policy(tmp_path, trusted))
    assert (caught.value.kind, caught.value.retryable) == ("NotationError", False)
    assert caught.value.hint is not None
    assert '"revocation": "log"' in caught.value.hint
    with pytest.raises(NotationError) as caught:
        verify(envelope, make_policy(tmp_path / "cose", trusted), media_type="application/cose")
    assert "--signature-format jws" in caught.value.render()
    assert "--" not in str(caught.value)
