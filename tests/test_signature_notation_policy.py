"""Notation trust policy documents, trusted identities and the trust store directory (pure library tests)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from specman.signature.notation import load_notation_policy
from specman.signature.notation_identity import parse_distinguished_name
from specman.signature.notation_policy import Action, NotationError, parse_trust_policy, repository_of
from specman.signature.notation_truststore import MAX_CERTIFICATE_FILE_BYTES, load_trust_store
from tests.fixtures.notation_signer import Pki, make_pki

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki("ES256")


def statement(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "s",
        "registryScopes": ["*"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:test"],
        "trustedIdentities": ["*"],
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def document(*statements: dict[str, Any]) -> bytes:
    return json.dumps({"version": "1.0", "trustPolicies": list(statements)}).encode()


# --- distinguished names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "C=US, ST=WA, O=wabbit-networks.io, OU=org1",
            {"C": "US", "ST": "WA", "O": "wabbit-networks.io", "OU": "org1"},
        ),
        (" CN=e2e,O=Notary,L=Seattle,ST=WA,C=US", {"CN": "e2e", "O": "Notary", "L": "Seattle", "ST": "WA", "C": "US"}),
        ("c=US; s=WA; o=Notary", {"C": "US", "ST": "WA", "O": "Notary"}),
        (r"C=US,ST=WA,O=Acme\, Inc.", {"C": "US", "ST": "WA", "O": "Acme, Inc."}),
        (r"C=US,ST=WA,O=a\;b\\c\+d", {"C": "US", "ST": "WA", "O": r"a;b\c+d"}),
        (r"C=US,ST=WA,O=Caf\C3\A9", {"C": "US", "ST": "WA", "O": "Café"}),
        (r"C=US,ST=WA,O=\ padded\ ", {"C": "US", "ST": "WA", "O": " padded "}),
        ("C=US,ST=WA,O=a=b,E=x@example.com", {"C": "US", "ST": "WA", "O": "a=b", "E": "x@example.com"}),
    ],
)
def test_distinguished_names_parse_as_notation_reads_them(text: str, expected: dict[str, str]) -> None:
    assert parse_distinguished_name(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("C=US+ST=WA,O=x", "multi-valued"),
        ("C=US,ST=WA,O=#0403", "hex-encoded"),
        ("C=US,ST=WA,O=x,O=y", "appears twice"),
        ("C=US,O=x", "must contain C, ST (or S) and O"),
        ("C=US,ST=WA,O=x\\", "lone backslash"),
        ("C=US,,ST=WA,O=x", "has no '='"),
        ("C=US,ST=,O=x", "needs a type and a value"),
        ("", "has no '='"),
    ],
)
def test_bad_distinguished_names_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_distinguished_name(text)


# --- registry scopes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "repository"),
    [
        ("localhost:5000/test-repo@sha256:" + "a" * 64, "localhost:5000/test-repo"),
        ("registry.example.com/a/b/c:4.5.13", "registry.example.com/a/b/c"),
        ("registry.example.com:443/a/b", "registry.example.com:443/a/b"),
        ("127.0.0.1:5000/spectro-packs/manifest:0.0.0@sha256:" + "b" * 64, "127.0.0.1:5000/spectro-packs/manifest"),
    ],
)
def test_repository_of_reference(reference: str, repository: str) -> None:
    assert repository_of(reference) == repository


@pytest.mark.parametrize("reference", ["alpine", "Registry.example.com/UPPER", "https://x.example/a", "x.example/a/*"])
def test_repository_of_refuses_what_is_not_fully_qualified(reference: str) -> None:
    with pytest.raises(NotationError) as caught:
        repository_of(reference)
    assert caught.value.check == "policy"


# --- policy documents --------------------------------------------------------------------------------------------


def test_levels_and_overrides() -> None:
    policy = parse_trust_policy(
        document(
            statement(name="a", registryScopes=["r.example/a"], signatureVerification={"level": "audit"}),
            statement(
                name="b",
                registryScopes=["r.example/b"],
                signatureVerification={"level": "strict", "override": {"revocation": "skip", "expiry": "log"}},
            ),
            statement(name="c", signatureVerification={"level": "skip"}, trustStores=None, trustedIdentities=None),
        ),
        "policy.json",
    )
    audit, custom, skip = policy.statements
    assert dict(audit.actions) == {
        "integrity": Action.ENFORCE,
        "authenticity": Action.LOG,
        "authenticTimestamp": Action.LOG,
        "expiry": Action.LOG,
        "revocation": Action.LOG,
    }
    assert (custom.action("revocation"), custom.action("expiry"), custom.action("authenticity")) == (
        Action.SKIP,
        Action.LOG,
        Action.ENFORCE,
    )
    assert skip.action("integrity") is Action.SKIP
    assert policy.select("r.example/b:tag") is custom
    assert policy.select("r.example/elsewhere@sha256:" + "0" * 64) is skip  # a global skip is accepted, as notation-go


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"signatureVerification": {"level": "paranoid"}}, "level must be one of"),
        ({"signatureVerification": None}, "signatureVerification is missing"),
        ({"signatureVerification": {"level": "strict", "override": {"expiry": "skip"}}}, "cannot be skipped"),
        ({"signatureVerification": {"level": "strict", "override": {"speed": "log"}}}, "unknown validation"),
        ({"signatureVerification": {"level": "strict", "override": {"expiry": "maybe"}}}, "enforce, log or skip"),
        ({"signatureVerification": {"level": "skip", "override": {"expiry": "log"}}}, "cannot be customised"),
        ({"signatureVerification": {"level": "strict", "verifyTimestamp": "never"}}, "verifyTimestamp"),
        ({"signatureVerification": {"level": "skip"}}, "takes no trustStores"),
        ({"trustStores": ["ca:test", "x509:test"]}, "unknown type 'x509'"),
        ({"trustStores": "ca:test"}, "must be a list of strings"),
        ({"trustedIdentities": ["x509.subject: C=US, ST=WA"]}, "must contain C, ST (or S) and O"),
        ({"registryScopes": ["r.example/a:tag"]}, "not a fully qualified repository"),
        ({"name": ""}, "has no name"),
    ],
)
def test_invalid_statements(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(NotationError) as caught:
        parse_trust_policy(document(statement(**changes)), "policy.json")
    assert (caught.value.check, reason in str(caught.value)) == ("policy", True), str(caught.value)
    assert str(caught.value).startswith("trust policy policy.json")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"version": "2.0", "trustPolicies": []}', "version '2.0'"),
        (b'{"version": "1.0", "trustPolicies": []}', "no trustPolicies"),
        (b"[]", "not a JSON object"),
        (b"\xff\xfe", "not valid JSON"),
        (b" " * (2 * 1024 * 1024), "larger than"),
    ],
)
def test_invalid_documents(data: bytes, reason: str) -> None:
    with pytest.raises(NotationError, match=None) as caught:
        parse_trust_policy(data, "policy.json")
    assert reason in str(caught.value)


def test_other_identity_types_are_ignored_but_x509_needed_to_match() -> None:
    policy = parse_trust_policy(document(statement(trustedIdentities=["plugin.x: whatever"])), "p")
    assert policy.statements[0].identities == ()
    assert not policy.statements[0].any_identity


# --- trust store directory ----------------------------------------------------------------------------------------


def _store_dir(root: Path, store_type: str = "ca", name: str = "test") -> Path:
    directory = root / "x509" / store_type / name
    directory.mkdir(parents=True)
    return directory


def test_pem_bundle_der_file_symlink_and_hidden_entries(tmp_path: Path, pki: Pki) -> None:
    directory = _store_dir(tmp_path)
    (directory / "bundle.pem").write_bytes(pki.root.public_bytes(PEM) + pki.intermediate.public_bytes(PEM))
    (tmp_path / "elsewhere.cer").write_bytes(pki.root.public_bytes(DER))
    (directory / "root.cer").symlink_to(tmp_path / "elsewhere.cer")
    (directory / "..2026_06_01").mkdir()  # Kubernetes volume internals are skipped
    (directory / "..data").symlink_to(directory / "..2026_06_01")
    store = load_trust_store(tmp_path, [("ca", "test")])
    assert store.certificates("ca", ["test", "test"]) == (pki.root, pki.intermediate, pki.root)
    assert store.certificates("signingAuthority", ["test"]) == ()


def test_notation_config_directory_is_accepted(tmp_path: Path, pki: Pki) -> None:
    (_store_dir(tmp_path / "truststore") / "root.crt").write_bytes(pki.root.public_bytes(PEM))
    (tmp_path / "trustpolicy.json").write_bytes(document(statement(name="plain")))
    (tmp_path / "trustpolicy.oci.json").write_bytes(document(statement(name="oci")))
    policy = load_notation_policy(tmp_path, tmp_path)
    assert policy.document.statements[0].name == "oci"
    assert policy.trust_store.root == tmp_path / "truststore"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("missing", "does not exist"),
        ("empty", "holds no certificates"),
        ("subdir", "is a directory"),
        ("garbage", "is not a PEM or DER X.509 certificate"),
        ("leaf", "neither a CA nor a self-signed certificate"),
        ("huge", f"larger than {MAX_CERTIFICATE_FILE_BYTES} bytes"),
        ("tsa-intermediate", "is not a self-signed root"),
    ],
)
def test_bad_trust_stores_are_refused_at_load(tmp_path: Path, pki: Pki, setup: str, reason: str) -> None:
    store_type = "tsa" if setup.startswith("tsa") else "ca"
    if setup != "missing":
        directory = _store_dir(tmp_path, store_type)
        files = {
            "subdir": None,
            "garbage": b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
            "leaf": pki.leaf.public_bytes(PEM),
            "huge": b"0" * (MAX_CERTIFICATE_FILE_BYTES + 1),
            "tsa-intermediate": pki.intermediate.public_bytes(PEM),
        }
        if setup == "subdir":
            (directory / "nested").mkdir()
        elif setup in files:
            (directory / "cert.pem").write_bytes(files[setup] or b"")
    with pytest.raises(NotationError) as caught:
        load_trust_store(tmp_path, [(store_type, "test")])
    assert caught.value.check == "truststore"
    assert reason in str(caught.value)


def test_unreadable_policy_file(tmp_path: Path) -> None:
    with pytest.raises(NotationError, match="cannot read trust policy") as caught:
        load_notation_policy(tmp_path / "absent.json", tmp_path)
    assert caught.value.check == "policy"
