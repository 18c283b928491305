"""``serve``'s URL space and answers beyond what nginx has: the reserved ``/_specman/`` prefix and the probe aliases,
index pages (and ``--no-index-pages``), listings, content types, and trees holding ``_specman``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from specman.oci import LayoutRepository, push_artifact
from specman.server.app import create_app
from specman.server.files import content_type
from specman.store._merge import build_merged_tree
from tests.test_server import _sync

Answer = tuple[int, dict[str, str], bytes]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("serve-http")
    tree = work / "tree"
    for rel, text in {
        "healthz": "tree healthz\n",
        "metrics/a.txt": "tree metrics\n",
        "site/index.html": "<p>index</p>\n",
        "site/other.txt": "other\n",
        "plain/a.txt": "a\n",
        "plain/.dot": "dot\n",
    }.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    layout = LayoutRepository(work / "layout", create=True)
    push_artifact(layout, tree, "1.0.0")
    data = work / "data"
    _sync(work / "layout", data)
    smuggled = data / "current" / "tree" / "_specman"  # as if a tree held it: never served
    smuggled.mkdir()
    (smuggled / "status").write_text('{"fake": true}')
    return data


def _get(app_kw: dict[str, object], data: Path, *requests: tuple[str, dict[str, str]]) -> list[Answer]:
    async def run() -> list[Answer]:
        transport = httpx.ASGITransport(app=create_app(data, **app_kw))  # type: ignore[arg-type]
        answers: list[Answer] = []
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for path, headers in requests:
                reply = await client.get(path, headers=headers)
                answers.append((reply.status_code, dict(reply.headers), reply.content))
        return answers

    return anyio.run(run)


def test_reserved_prefix_and_probe_aliases(data_dir: Path) -> None:
    paths = ["/healthz", "/metrics", "/readyz", "/_specman/healthz", "/_specman/readyz", "/_specman/status"]
    paths += ["/_specman/nothing", "/_specman/versions/1.0.0", "/_specman/versions/1.0.0/healthz", "/_specman/x"]
    answers = dict(zip(paths, _get({}, data_dir, *((p, {}) for p in paths)), strict=True))
    assert answers["/healthz"][2] == b"tree healthz\n"  # the tree's content wins over the alias
    assert answers["/metrics"][0] == 301 and answers["/metrics"][1]["location"] == "/metrics/"
    assert answers["/readyz"][0] == 200 and answers["/readyz"][2].startswith(b"ready")  # no such entry: the probe
    assert answers["/_specman/healthz"][2] == b"ok\n"
    assert answers["/_specman/readyz"][0] == 200
    assert "fake" not in json.loads(answers["/_specman/status"][2])  # specman's, not the tree's _specman/status
    assert answers["/_specman/nothing"][0] == 404 and answers["/_specman/x"][0] == 404
    redirect = answers["/_specman/versions/1.0.0"]
    assert redirect[0] == 301 and redirect[1]["location"] == "/_specman/versions/1.0.0/"  # as nginx, for the links
    assert answers["/_specman/versions/1.0.0/healthz"][2] == b"tree healthz\n"


def test_basic_auth_covers_tree_content_at_probe_names(data_dir: Path) -> None:
    requests: list[tuple[str, dict[str, str]]] = [
        ("/healthz", {}),
        ("/readyz", {}),
        ("/_specman/healthz", {}),
        ("/_specman/metrics", {}),
    ]
    answers = _get({"basic_auth": ("u", "p")}, data_dir, *requests)
    assert [a[0] for a in answers] == [401, 200, 200, 404]  # the tree's healthz needs credentials; probes do not


def test_index_pages_and_listings(data_dir: Path) -> None:
    requests = [("/site/", {}), ("/site", {}), ("/plain/", {}), ("/plain/", {"Accept": "application/json"})]
    page, redirect, listing, as_json = _get({}, data_dir, *requests)
    assert page[0] == 200 and page[2] == b"<p>index</p>\n" and page[1]["content-type"].startswith("text/html")
    assert redirect[0] == 301 and redirect[1]["location"] == "/site/"
    assert b'href="a.txt"' in listing[2] and b'href=".dot"' in listing[2] and b'href="../"' in listing[2]
    etag = listing[1]["etag"]
    entries = json.loads(as_json[2])
    assert [(e["name"], e["href"], e["type"]) for e in entries] == [
        (".dot", ".dot", "file"),
        ("a.txt", "a.txt", "file"),
    ]
    again, other = _get({}, data_dir, ("/plain/", {"If-None-Match": etag}), ("/plain/", {"If-Match": '"x"'}))
    assert again[0] == 304 and other[0] == 412  # listings have a strong ETag of their bytes
    (negotiated,) = _get({}, data_dir, ("/site/", {"Accept": "application/json, text/html;q=0.9"}))
    assert [e["name"] for e in json.loads(negotiated[2])] == ["index.html", "other.txt"]  # JSON preferred: listed
    (always,) = _get({"index_pages": False}, data_dir, ("/site/", {}))
    assert always[0] == 200 and b'href="index.html"' in always[2] and b'href="other.txt"' in always[2]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("manifests.tgz", "application/gzip"),
        ("x.tar.gz", "application/gzip"),
        ("x.json.gz", "application/gzip"),
        ("x.tar.xz", "application/x-xz"),
        ("x.tar", "application/x-tar"),
        ("x.json", "application/json; charset=utf-8"),
        ("x.yaml", "application/yaml; charset=utf-8"),
        ("x.bin", "application/octet-stream"),
        ("no-extension", "application/octet-stream"),
    ],
)
def test_content_types(name: str, kind: str) -> None:
    assert content_type(name) == kind


def test_merge_leaves_out_a_reserved_root_entry(tmp_path: Path) -> None:
    first, second, target = tmp_path / "a", tmp_path / "b", tmp_path / "view"
    (first / "_specman").mkdir(parents=True)
    (first / "_specman" / "status").write_text("x")
    (first / "keep.txt").write_text("kept")
    (second / "sub" / "_specman").mkdir(parents=True)  # only the root name is reserved
    target.mkdir()
    merged = build_merged_tree([("1.0.0", str(first)), ("2.0.0", str(second))], str(target))
    assert sorted(os.listdir(target)) == ["keep.txt", "sub"]
    assert (target / "sub" / "_specman").is_dir()
    assert [(c.path, c.kind, c.loser) for c in merged.conflicts] == [("_specman", "reserved", "1.0.0")]


def test_push_refuses_a_tree_holding_specman(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "_specman").mkdir(parents=True)
    (tree / "a.json").write_text("{}")
    layout = tmp_path / "layout"
    proc = subprocess.run(
        [sys.executable, "-m", "specman", "push", str(tree), f"{layout}:1.0.0", "--oci-layout"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "'_specman' at its root" in lines[0] and "/_specman/" in lines[0], proc.stderr
    assert not (layout / "index.json").exists() or "1.0.0" not in (layout / "index.json").read_text()
