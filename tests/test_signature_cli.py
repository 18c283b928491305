"""``specman keygen``, ``sign``, ``push --sign-key``, ``pull --verify-key`` and ``sync --verify`` as an operator runs
them, against the real docker-registry, with keys made by openssl; signatures checked with ``openssl dgst``."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from specman.signature.discovery import signature_tag
from tests.fixtures.registry import Registry
from tests.test_cli import one_line_error, run


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def ec_key(tmp_path: Path, name: str = "k", curve: str = "prime256v1") -> tuple[Path, Path]:
    """A key as the issue's operator makes it: ``openssl ecparam -genkey`` (EC PARAMETERS + EC PRIVATE KEY)."""
    key, pub = tmp_path / f"{name}-private.txt", tmp_path / f"{name}-public.txt"
    openssl("ecparam", "-genkey", "-name", curve, "-out", key)
    openssl("ec", "-in", key, "-pubout", "-out", pub)
    return key, pub


def tree(tmp_path: Path, text: str) -> Path:
    root = tmp_path / f"tree-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    (root / "a.json").write_text(text)
    (root / "unique").write_text(uuid.uuid4().hex)
    return root


def ref(registry: Registry) -> str:
    return f"{registry.host}/sigcli/{uuid.uuid4().hex[:10]}"


def test_sign_and_verify_with_openssl_keys(plain_registry: Registry, tmp_path: Path) -> None:
    key, pub = ec_key(tmp_path)
    repo = ref(plain_registry)
    pushed = run("push", str(tree(tmp_path, "1")), f"{repo}:1.0.0", "--plain-http")
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.strip()
    signed = run("sign", f"{repo}:1.0.0", "--key", str(key), "--plain-http")
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.strip() == digest
    tags = run("tags", repo, "--plain-http").stdout.split()
    assert signature_tag(digest) in tags

    # openssl verifies the payload blob with the signature from the layer annotation
    manifest = json.loads(run_curl(plain_registry, repo, f"manifests/{signature_tag(digest)}"))
    layer = manifest["layers"][0]
    (tmp_path / "payload").write_bytes(run_curl(plain_registry, repo, f"blobs/{layer['digest']}", raw=True))
    sig = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    (tmp_path / "sig").write_bytes(sig)
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", pub, "-signature", tmp_path / "sig", tmp_path / "payload"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "Verified OK"

    pulled = run("pull", f"{repo}:1.0.0", str(tmp_path / "out"), "--plain-http", "--verify-key", str(pub))
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "out" / "a.json").read_text() == "1"


def run_curl(registry: Registry, repo: str, path: str, *, raw: bool = False) -> bytes:
    import httpx

    name = repo.split("/", 1)[1]
    accept = "application/vnd.oci.image.manifest.v1+json"
    response = httpx.get(f"{registry.url}/v2/{name}/{path}", headers={"Accept": accept}, follow_redirects=True)
    response.raise_for_status()
    return response.content


def test_pull_refuses_unsigned_and_wrong_key(plain_registry: Registry, tmp_path: Path) -> None:
    _, pub = ec_key(tmp_path, "trusted")
    other, _ = ec_key(tmp_path, "other", "secp384r1")
    repo = ref(plain_registry)
    assert run("push", str(tree(tmp_path, "1")), f"{repo}:1.0.0", "--plain-http").returncode == 0
    unsigned = run("pull", f"{repo}:1.0.0", str(tmp_path / "o1"), "--plain-http", "--verify-key", str(pub))
    assert unsigned.returncode == 1
    assert "no signature found" in one_line_error(unsigned)
    assert not (tmp_path / "o1").exists()
    assert run("sign", f"{repo}:1.0.0", "--key", str(other), "--plain-http").returncode == 0
    wrong = run("pull", f"{repo}:1.0.0", str(tmp_path / "o2"), "--plain-http", "--verify-key", str(pub))
    assert wrong.returncode == 1
    assert "does not verify with any trusted key" in one_line_error(wrong)


def test_keygen_encrypted_key_and_push_sign_key(plain_registry: Registry, tmp_path: Path) -> None:
    prefix = tmp_path / "mykey"
    env = {"SPECMAN_SIGN_PASSWORD": "s3cret-" + uuid.uuid4().hex[:6]}
    made = run("keygen", "--output-prefix", str(prefix), env=env)
    assert made.returncode == 0, made.stderr
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "mykey.key").read_bytes()
    assert (tmp_path / "mykey.key").stat().st_mode & 0o077 == 0
    again = run("keygen", "--output-prefix", str(prefix), env=env)
    assert again.returncode == 2 and "exists" in one_line_error(again)

    repo = ref(plain_registry)
    src = str(tree(tmp_path, "signed"))
    wrong = run("push", src, f"{repo}:1.0.0", "--plain-http", "--sign-key", str(prefix) + ".key",
                env={"SPECMAN_SIGN_PASSWORD": "nope"})  # fmt: skip
    assert wrong.returncode == 2 and "wrong passphrase" in one_line_error(wrong)
    pw_file = tmp_path / "pw"
    pw_file.write_text(env["SPECMAN_SIGN_PASSWORD"] + "\n")
    pushed = run(
        "push", src, f"{repo}:1.0.0", "--plain-http", "--sign-key", str(prefix) + ".key",
        "--key-password-file", str(pw_file),
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    data = tmp_path / "data"
    synced = run(
        "sync", repo, "--data-dir", str(data), "--once", "--plain-http",
        "--verify", "required", "--verify-key", str(prefix) + ".pub",
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    assert pushed.stdout.strip() in synced.stdout
    assert "Verified 1.0.0" in synced.stderr


def test_openssl_pkcs8_encrypted_rsa_and_ed25519_keys(plain_registry: Registry, tmp_path: Path) -> None:
    repo = ref(plain_registry)
    assert run("push", str(tree(tmp_path, "1")), f"{repo}:1.0.0", "--plain-http").returncode == 0
    password = "pw-" + uuid.uuid4().hex[:6]
    rsa, rsa_pub = tmp_path / "rsa-private.txt", tmp_path / "rsa-public.txt"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-aes256", "-pass",
            f"pass:{password}", "-out", rsa)  # fmt: skip
    openssl("pkey", "-in", rsa, "-passin", f"pass:{password}", "-pubout", "-out", rsa_pub)
    ed, ed_pub = tmp_path / "ed-private.txt", tmp_path / "ed-public.txt"
    openssl("genpkey", "-algorithm", "ED25519", "-out", ed)
    openssl("pkey", "-in", ed, "-pubout", "-out", ed_pub)
    assert run("sign", f"{repo}:1.0.0", "--key", str(rsa), "--plain-http",
               env={"SPECMAN_SIGN_PASSWORD": password}).returncode == 0  # fmt: skip
    assert run("sign", f"{repo}:1.0.0", "--key", str(ed), "--plain-http", "--bundle").returncode == 0
    for pub in (rsa_pub, ed_pub):
        pulled = run("pull", f"{repo}:1.0.0", str(tmp_path / pub.stem), "--plain-http", "--verify-key", str(pub))
        assert pulled.returncode == 0, pulled.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not a key", "no PEM public key"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "malformed PEM public key"),
    ],
)
def test_bad_key_files_are_usage_errors(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    proc = run("sync", "127.0.0.1:1/x", "--data-dir", str(tmp_path / "d"), "--once", "--verify", "required",
               "--verify-key", str(bad))  # fmt: skip
    assert proc.returncode == 2
    assert message in one_line_error(proc)
    proc = run("sync", "127.0.0.1:1/x", "--data-dir", str(tmp_path / "d"), "--once", "--verify", "required")
    assert proc.returncode == 2 and "--verify-key" in one_line_error(proc)


@pytest.mark.parametrize("command", ["sign", "keygen", "sync", "serve", "pull", "push", "migrate"])
def test_signature_options_in_help(command: str) -> None:
    proc = run(command, "--help")
    assert proc.returncode == 0, proc.stderr
    wanted = {
        "sign": "--bundle",
        "keygen": "--output-prefix",
        "sync": "--verify-key",
        "serve": "--verify-notation-policy",
        "pull": "--verify-key",
        "push": "--sign-key",
        "migrate": "--sign-key",
    }[command]
    assert wanted in proc.stdout
