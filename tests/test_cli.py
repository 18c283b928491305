"""The ``specman`` command line as a user runs it: real processes, real registries, exit codes 0/1/2."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from specman.samples import bundled_manifests, tree_digest
from tests.fixtures.registry import Registry

COMMANDS = ["push", "pull", "extract", "tags", "login", "logout", "quickstart", "sync", "migrate"]


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "specman", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``Error:`` line (status lines such as "Packing ..." may precede it); no traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, proc.stderr
    assert proc.stderr.rstrip().endswith(lines[0])
    assert "Traceback" not in proc.stderr
    return lines[0]


def name() -> str:
    return f"cli/{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_everywhere(command: str | None) -> None:
    proc = run(*([command] if command else []), "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tags", "Local:5000/UPPER"], "lowercase"),
        (["pull", "localhost:5000/a@sha256:abc", "/tmp/x"], "64 lowercase hex"),
        (["push", ".", "localhost:5000/a:bad tag"], "white space"),
        (["tags", "--bogus", "x"], "No such option"),
        (["pull"], "Missing argument"),
        (["extract", "--max-size", "lots", "a", "b"], "not a size"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    proc = run(*args)
    assert proc.returncode == 2, proc
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_push_pull_tags_plain(plain_registry: Registry, tmp_path: Path) -> None:
    ref = f"{plain_registry.host}/{name()}"
    push = run("push", str(bundled_manifests()), f"{ref}:0.0.0", "--plain-http")
    assert push.returncode == 0, push.stderr
    digest = push.stdout.strip()
    assert digest.startswith("sha256:") and len(digest) == 71
    pull = run("pull", f"{ref}:0.0.0", str(tmp_path / "out"), "--plain-http")
    assert pull.returncode == 0, pull.stderr
    assert pull.stdout.strip() == digest
    assert tree_digest(tmp_path / "out") == tree_digest(bundled_manifests())
    tags = run("tags", ref, env={"SPECMAN_PLAIN_HTTP": "1"})
    assert tags.returncode == 0, tags.stderr
    assert tags.stdout.split() == ["0.0.0"]
    again = run("pull", f"{ref}:0.0.0", str(tmp_path / "out"), "--plain-http")
    assert again.returncode == 1
    assert "not empty" in one_line_error(again)
    forced = run("pull", f"{ref}:0.0.0", str(tmp_path / "out"), "--plain-http", "--force")
    assert forced.returncode == 0, forced.stderr


def test_wrong_password_exit_1_secret_nowhere(tls_registry: Registry, tmp_path: Path) -> None:
    secret = "Sup3r-Wrong-Secret"
    proc = run(
        "push", str(bundled_manifests()), f"{tls_registry.host}/{name()}:1", "-u", "alice", "--password-stdin",
        "--ca-file", str(tls_registry.ca_file), stdin=secret + "\n",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "unauthorized" in one_line_error(proc)
    assert secret not in proc.stdout + proc.stderr


def test_login_push_logout(tls_registry: Registry, docker_config: Path) -> None:
    ca = str(tls_registry.ca_file)
    login = run(
        "login",
        tls_registry.host,
        "-u",
        "alice",
        "--password-stdin",
        "--ca-file",
        ca,
        stdin=f"{tls_registry.password}\n",
    )
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stderr
    assert tls_registry.password is not None and tls_registry.password not in login.stdout + login.stderr
    config = docker_config / "config.json"
    assert config.stat().st_mode & 0o777 == 0o600
    assert tls_registry.host in json.loads(config.read_text())["auths"]
    push = run("push", str(bundled_manifests()), f"{tls_registry.host}/{name()}:1", "--ca-file", ca)
    assert push.returncode == 0, push.stderr
    bad = run("login", tls_registry.host, "-u", "alice", "--password-stdin", "--ca-file", ca, stdin="nope\n")
    assert bad.returncode == 1 and "unauthorized" in one_line_error(bad)
    logout = run("logout", tls_registry.host)
    assert logout.returncode == 0
    assert tls_registry.host not in json.loads(config.read_text())["auths"]
    denied = run("push", str(bundled_manifests()), f"{tls_registry.host}/{name()}:1", "--ca-file", ca)
    assert denied.returncode == 1 and "unauthorized" in one_line_error(denied)


def test_oci_layout_commands(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    push = run("push", str(bundled_manifests()), f"{layout}:4.5.15", "--oci-layout")
    assert push.returncode == 0, push.stderr
    assert run("tags", str(layout), "--oci-layout").stdout.split() == ["4.5.15"]
    pull = run("pull", f"{layout}:4.5.15", str(tmp_path / "out"), "--oci-layout")
    assert pull.returncode == 0, pull.stderr
    assert tree_digest(tmp_path / "out") == tree_digest(bundled_manifests())
    missing = run("pull", f"{layout}:9.9.9", str(tmp_path / "none"), "--oci-layout")
    assert missing.returncode == 1 and "not found" in one_line_error(missing)
    assert not (tmp_path / "none").exists()


def test_non_archive_layer(plain_registry: Registry, tmp_path: Path) -> None:
    note = tmp_path / "notes.txt"
    note.write_text("just text, not a tarball\n")
    ref = f"{plain_registry.host}/{name()}:1"
    assert run("push", str(note), ref, "--plain-http").returncode == 0
    proc = run("pull", ref, str(tmp_path / "out"), "--plain-http")
    assert proc.returncode == 1
    assert "tar" in one_line_error(proc)
    assert not (tmp_path / "out").exists()
    raw = run("pull", ref, str(tmp_path / "raw"), "--plain-http", "--no-extract")
    assert raw.returncode == 0, raw.stderr
    assert (tmp_path / "raw" / "notes.txt").read_text() == note.read_text()


def test_extract_hostile_and_good(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tgz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    proc = run("extract", str(evil), str(tmp_path / "dest"))
    assert proc.returncode == 1
    assert "../escaped.txt" in one_line_error(proc)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "dest").exists()
    good = tmp_path / "good.tgz"
    with tarfile.open(good, "w:gz") as tar:
        tar.add(bundled_manifests(), arcname=".")
    ok = run("extract", str(good), str(tmp_path / "dest"))
    assert ok.returncode == 0, ok.stderr
    assert tree_digest(tmp_path / "dest") == tree_digest(bundled_manifests())


def test_registry_down_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run("tags", f"127.0.0.1:{port}/a/b", "--plain-http")
    assert proc.returncode == 1
    assert "cannot connect" in one_line_error(proc)


def test_quickstart(tmp_path: Path) -> None:
    """The README's first command: console + serve + the whole migration of the bundled samples, on loopback."""
    work = tmp_path / "qs"
    proc = run("quickstart", "--work-dir", str(work), "--listen", "127.0.0.1:0", "--console-listen", "127.0.0.1:0")
    assert proc.returncode == 0, proc.stderr
    assert "Parity proof: 105 files, " in proc.stderr
    assert "identical over HTTPS" in proc.stderr
    assert "Migration complete:" in proc.stderr
    assert "syncCloudInstanceTypesData: succeeded" in proc.stderr
    assert "syncCloudStorageTypesData: succeeded" in proc.stderr
    for line in ("Syncing with OCI repo", "tags[0.0.0]", "Downloading 0.0.0", "Persisting 0.0.0", "Sync finished"):
        assert f'level=info msg="{line}' in proc.stderr, line
    assert (work / "serve" / "tls" / "ca.crt").is_file()  # --work-dir is kept
    secret = (work / "secrets" / "console-admin-password").read_text().strip()
    assert (work / "secrets" / "console-admin-password").stat().st_mode & 0o077 == 0
    assert secret not in proc.stderr + proc.stdout  # the generated password is never shown
    assert proc.stdout.strip().startswith("sha256:")
