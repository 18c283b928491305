"""References and digests parse exactly as docker/oras parse them; bad ones fail with one clear line."""

from __future__ import annotations

import pytest

from specman.errors import UsageError
from specman.oci.layout import parse_layout_reference
from specman.oci.reference import Reference, parse_digest, parse_reference, parse_repository

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:5000/a/b:1.0", Reference("localhost:5000", "a/b", "1.0")),
        ("localhost/a", Reference("localhost", "a", "latest")),
        (
            "127.0.0.1:5000/spectro-packs/spectro-manifests/manifest:0.0.0",
            Reference("127.0.0.1:5000", "spectro-packs/spectro-manifests/manifest", "0.0.0"),
        ),
        ("registry.example.com/x/y", Reference("registry.example.com", "x/y", "latest")),
        ("ubuntu", Reference("docker.io", "library/ubuntu", "latest")),
        ("user/app:v1", Reference("docker.io", "user/app", "v1")),
        (f"host:5000/a@sha256:{HEX}", Reference("host:5000", "a", None, f"sha256:{HEX}")),
        (f"host:5000/a:t@sha256:{HEX}", Reference("host:5000", "a", "t", f"sha256:{HEX}")),
        ("[::1]:5000/a:t", Reference("[::1]:5000", "a", "t")),
        ("h.io/a__b/c-d.e_f:T_1.2-rc", Reference("h.io", "a__b/c-d.e_f", "T_1.2-rc")),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_round_trip_and_helpers() -> None:
    ref = parse_reference("localhost:5000/a/b:1.0")
    assert str(ref) == "localhost:5000/a/b:1.0"
    assert ref.reference == "1.0"
    assert ref.with_tag("2.0").reference == "2.0"
    assert parse_reference("docker.io/library/x").api_host == "registry-1.docker.io"
    assert parse_repository("localhost:5000/a/b") == Reference("localhost:5000", "a/b")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Host:5000/UPPER", "lowercase"),
        ("localhost:5000/a:", "invalid tag"),
        ("localhost:5000/a:-bad", "invalid tag"),
        ("localhost:5000/a//b", "invalid repository name"),
        ("localhost:5000/", "empty"),
        ("localhost:99999/a", "invalid port"),
        ("localhost:5000/a@sha256:abc", "64 lowercase hex"),
        (f"localhost:5000/a@md5:{HEX}", "unsupported digest algorithm"),
        ("localhost:5000/a b", "white space"),
        ("a" * 300, "longer than"),
    ],
)
def test_bad_references(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_reference(text)
    assert "\n" not in str(info.value)


def test_repository_must_not_have_tag() -> None:
    with pytest.raises(UsageError, match="without tag"):
        parse_repository("localhost:5000/a:1")


@pytest.mark.parametrize(
    "bad", ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha512:" + "a" * 128, "a" * 64, "sha256:" + "g" * 64]
)
def test_bad_digests(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_digest(bad)


def test_layout_references(tmp_path: object) -> None:
    assert parse_layout_reference("/tmp/lay:1.0")[1:] == ("1.0", None)
    assert parse_layout_reference("/tmp/lay")[1:] == (None, None)
    assert parse_layout_reference(f"rel/dir@sha256:{HEX}")[1:] == (None, f"sha256:{HEX}")
    assert str(parse_layout_reference("/tmp/a:b/lay")[0]) == "/tmp/a:b/lay"
