"""``specman serve --verify required`` as a process, against the real docker-registry, looked at in Chromium.

One signed version is served; an unsigned push over it is refused and the signed digest stays served; a cosign
``.sig`` tag never turns the sync red; ``/_specman/status`` says who signed what and why a version was refused;
``/metrics`` counts ``specman_verification_total{result}``; the status page shows it all.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from specman.oci import RegistryOptions, open_repository, parse_reference, push_artifact
from specman.signature.cosign import sign_legacy
from specman.signature.discovery import signature_tag
from specman.signature.keys import generate_key
from tests.fixtures.browser import Browser
from tests.fixtures.registry import Registry
from tests.fixtures.serve import ServeProcess


def _status(server: ServeProcess) -> dict[str, Any]:
    with httpx.Client(base_url=server.base, trust_env=False, timeout=10) as client:
        body: dict[str, Any] = client.get("/_specman/status").json()
    return body


def _until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _tree(tmp_path: Path, text: str) -> Path:
    root = tmp_path / f"tree-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    (root / "index.json").write_text(text)
    return root


def test_serve_required_policy_end_to_end(
    browser: Browser,
    plain_registry: Registry,
    serve_factory: Callable[..., ServeProcess],
    tmp_path: Path,
) -> None:
    name = f"sigserve/{uuid.uuid4().hex[:10]}"
    repo = open_repository(parse_reference(f"{plain_registry.host}/{name}"), RegistryOptions(plain_http=True))
    key = generate_key()
    (tmp_path / "trusted.pub.txt").write_bytes(key.public.pem())
    good = push_artifact(repo, _tree(tmp_path, '{"v": "good"}'), "1.0.0").digest
    sign_legacy(repo, good, repo.display, key)
    server = serve_factory(
        [f"{plain_registry.host}/{name}", "--plain-http"],
        tmp_path / "data",
        tls=False,
        extra_args=["--interval", "1s", "--verify", "required", "--verify-key", str(tmp_path / "trusted.pub.txt")],
    )
    _until(lambda: _status(server).get("tags") == {"1.0.0": good})
    status = _status(server)
    assert status["sync"]["state"] == "ok"  # the .sig tag beside the version is not a failing version
    signed = status["signatures"]["1.0.0"]
    assert signed["verification"]["result"] == "verified"
    assert signed["verification"]["signer"] == key.public.fingerprint
    assert signed["verification"]["format"] == "cosign"
    assert signed["verification"]["verified_at"].endswith("Z")
    assert [a["tag"] for a in signed["attached"]] == [signature_tag(good)]
    assert status["verify"]["mode"] == "required"

    bad = push_artifact(repo, _tree(tmp_path, '{"v": "unsigned"}'), "1.0.0").digest
    _until(lambda: _status(server)["signatures"]["1.0.0"]["verification"]["digest"] == bad)
    status = _status(server)
    assert status["tags"] == {"1.0.0": good}  # the signed digest stays served
    assert status["sync"]["state"] == "failing"
    assert "no signature found" in status["sync"]["failed_tags"]["1.0.0"]
    with httpx.Client(base_url=server.base, trust_env=False, timeout=10) as client:
        assert client.get("/index.json").json() == {"v": "good"}
        metrics = client.get("/metrics").text
    assert 'specman_verification_total{result="verified"} 1.0' in metrics
    assert 'specman_verification_total{result="unsigned"} 1.0' in metrics

    with httpx.Client(base_url=server.base, trust_env=False, timeout=10) as client:
        page = client.get("/_specman/")
    assert page.status_code == 200, server.log_file.read_text()[-3000:]
    browser.get(f"{server.base}/_specman/")
    assert browser.text("#verify-mode") == "required"
    row = browser.finds("#tags tbody tr")[0].text
    assert "verified" in row and "cosign" in row and "signature attached" in row
    refused = browser.text("#refused")
    assert "unsigned" in refused and "no signature found" in refused
    browser.shot("serve-status-signatures")
    assert browser.errors() == []
    repo.close()
