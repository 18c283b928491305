"""Case 8 — ``wrk`` against ``serve`` while a sync swaps versions every few seconds.

The registry's tag ``1.0.0`` is moved between two versions (A and B, every path in both with different bytes)
every ``swap`` seconds while ``wrk`` requests those paths; a Lua ``response`` hook checks every body against the
set of complete bodies A and B have.  Held when: no socket error, no non-2xx answer, no body outside A and B,
and the view really changed several times during the run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from tests.fixtures.oci import push_manifest, registry_client
from tests.fixtures.registry import Registry
from tests.fixtures.serve import start_serve
from tests.reliability.conftest import Results, Scale, scales
from tests.test_serve_process import _files, _paths, _push, _source

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _lua(paths: list[str], bodies: list[bytes]) -> str:
    def quoted(text: str) -> str:
        assert "]==]" not in text
        return f"[==[{text}]==]"

    lines = ["paths = {" + ", ".join(quoted("/" + p) for p in paths) + "}", "allowed = {}"]
    lines += [f"allowed[ {quoted(body.decode())} ] = true" for body in bodies]
    lines.append(
        """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) good = 0; bad = 0; nonok = 0; sample = ""; i = 0; statuses = "" end
function request() i = i + 1; return wrk.format("GET", paths[(i % #paths) + 1]) end
function response(status, headers, body)
  if status ~= 200 then
    nonok = nonok + 1
    if #statuses < 200 then statuses = statuses .. " " .. status .. ":" .. string.sub(body or "", 1, 40) end
  elseif allowed[body] then good = good + 1
  else bad = bad + 1; sample = string.sub(body, 1, 60) end
end
function done(summary, latency, requests)
  local g, b, n = 0, 0, 0
  for _, t in ipairs(threads) do g = g + t:get("good"); b = b + t:get("bad"); n = n + t:get("nonok") end
  io.write(string.format("RESULT good=%d bad=%d nonok=%d\\n", g, b, n))
  for _, t in ipairs(threads) do io.write("NONOK" .. t:get("statuses") .. "\\n") end
end
"""
    )
    return "\n".join(lines)


def _manifest(registry: Registry, name: str, digest: str) -> bytes:
    with registry_client(registry) as client:
        response = client.get(f"/v2/{name}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
        assert response.status_code == 200, response.text
        return response.content


@pytest.mark.timeout(900)
@pytest.mark.parametrize("scale", scales(Scale("short", 1, seconds=8, size=2), Scale("long", 1, seconds=60, size=3)))
def test_wrk_during_version_swaps(plain_registry: Registry, tmp_path: Path, results: Results, scale: Scale) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed: apt-get install wrk", pytrace=False)
    result = results("8. load: wrk during version swaps", scale.name)
    name = f"load/{uuid.uuid4().hex[:10]}"
    paths = _paths("d", 40)
    files_a, files_b = _files("A", paths), _files("B", paths)
    digest_b = _push(plain_registry, name, "1.0.0", files_b, tmp_path)
    digest_a = _push(plain_registry, name, "1.0.0", files_a, tmp_path)
    manifests = [_manifest(plain_registry, name, d) for d in (digest_a, digest_b)]
    script = tmp_path / "check.lua"
    script.write_text(_lua(paths, [*files_a.values(), *files_b.values()]))
    server = start_serve(_source(plain_registry, name), tmp_path / "data", extra_args=["--interval", "1s"], workers=2)
    # answering /healthz is not serving: on a loaded machine the first sync ends after the workers answer, and
    # every request before that is a correct 404 (nothing published yet); the trial is about swaps, not start-up
    assert server.wait_log("published generation", timeout=120), server.log_tail()
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        with registry_client(plain_registry) as client:
            while not stop.wait(scale.size):
                push_manifest(client, name, "1.0.0", manifests[(swaps + 1) % 2], OCI_MANIFEST)
                swaps += 1

    try:
        thread = threading.Thread(target=swapper, daemon=True)
        thread.start()
        wrk = subprocess.run(
            ["wrk", "-t2", "-c32", f"-d{scale.seconds:.0f}s", "--timeout", "10s", "-s", str(script), server.base],
            capture_output=True,
            text=True,
            timeout=scale.seconds + 120,
            check=False,
        )
        stop.set()
        thread.join(30)
        published = server.log_text().count("published generation")
    finally:
        stop.set()
        server.stop()
    out = wrk.stdout
    counts = dict(re.findall(r"(good|bad|nonok)=(\d+)", out))
    socket_errors = re.search(r"Socket errors: (.*)", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    good, bad, nonok = (int(counts.get(k, -1)) for k in ("good", "bad", "nonok"))
    result.trial(
        wrk.returncode == 0 and bad == 0 and nonok == 0 and socket_errors is None and good > 0 and published >= 3,
        f"wrk rc {wrk.returncode}: good {good}, bad {bad}, non-2xx {nonok}, "
        f"{socket_errors.group(1) if socket_errors else 'no socket errors'}, {published} generations; "
        f"{' '.join(re.findall(r'NONOK(.*)', out))[:400]} "
        f"{wrk.stderr[-200:]}",
    )
    result.figures = {
        "duration": f"{scale.seconds:.0f} s",
        "requests": f"{good + max(bad, 0) + max(nonok, 0):,}",
        "req/s": rate.group(1) if rate else "?",
        "version swaps published": published - 1,
        "failed requests": max(bad, 0) + max(nonok, 0),
        "socket errors": socket_errors.group(1) if socket_errors else 0,
    }
    result.check()
