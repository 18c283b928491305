"""schemathesis (its CLI) against a real ``specman console`` process, from the ``/openapi.json`` it serves.

Bounded and deterministic (``--max-examples 30 --generation-deterministic``), every default check but two: no 5xx,
status codes, content types, headers and bodies conform to the document, negative data is rejected, unsupported
methods answer 405 with ``Allow``.  Left out, and why:

* ``positive_data_acceptance``: the document cannot express every rule (a parsable URL, PEM certificates), so
  schema-valid input may rightly get 422;
* ``ignored_auth`` with generated credentials: the token is given as a header (``-H``); security parameters are
  not generated (the console's own tests check 401 for missing and bad tokens on every endpoint);
* operations that reach the network or change the session on generated input (``/validate``, job ``/run`` against a
  generated SCAR endpoint, ``/logout`` of the test's own token): tested by hand against local servers only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.console import ConsoleProcess, clean_env

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_api_conforms_to_its_openapi_document(console: ConsoleProcess, tmp_path: Path) -> None:
    assert SCHEMATHESIS.exists(), "uv sync (schemathesis is a dev dependency)"
    token = console.login()
    args = [
        str(SCHEMATHESIS),
        "run",
        f"{console.base}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        "30",
        "--generation-deterministic",
        "--generation-with-security-parameters",
        "false",
        "--exclude-path-regex",
        "/(validate|run|logout)$",
        "--exclude-checks",
        "positive_data_acceptance,ignored_auth",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=clean_env(), check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
    assert "Traceback" not in console.log()
    with console.client(token) as c:  # the generated requests changed nothing they should not have
        assert c.get("/v1/jobs/internal").status_code == 200
