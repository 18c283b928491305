"""Case 7 — who gets into the console and behind serve's Basic auth.

* every protected console endpoint with no token, a malformed one, an expired one, a revoked one (logged out), a
  token of another console (another deployment's admin), the service token where a session is needed and a session
  where the service token is needed: always 401/403, never the endpoint's answer;
* a brute-force burst of concurrent wrong logins: no more password checks are answered than the lock-out threshold
  allows, the right password is refused while locked, other clients' logins are not locked;
* ``serve --basic-auth-file``: wrong passwords that share a long prefix with the right one, or differ in length,
  take the same time as any other wrong password (medians over many requests, in-process and over the network).
"""

from __future__ import annotations

import base64
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from specman.console.auth import LOCK_THRESHOLD
from specman.server.guards import BasicAuth
from tests.conftest import ServeFactory
from tests.fixtures.console import ADMIN_PASSWORD, ConsoleProcess, start_console
from tests.reliability.conftest import Result, Results, Scale, scales
from tests.test_console_api import PROTECTED
from tests.test_serve_process import _files, _paths, _write_tree

SERVICE_TOKEN = "service-token-for-the-auth-case"
SERVICE_ONLY = {("GET", "/v1/system/specman/source")}


@pytest.fixture(scope="module")
def consoles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsoleProcess, ConsoleProcess]]:
    """The console under test (session tokens live 2 s) and another one (another deployment)."""
    work = tmp_path_factory.mktemp("auth")
    token_file = work / "service-token"
    token_file.write_text(SERVICE_TOKEN + "\n")
    main = start_console(work / "main", "--service-token-file", str(token_file), "--token-ttl", "2s", tls=False)
    other = start_console(work / "other", tls=False)
    try:
        yield main, other
    finally:
        main.stop()
        other.stop()


@pytest.mark.parametrize("scale", scales(Scale("short", 1), Scale("long", 5)))
def test_console_token_matrix(consoles: tuple[ConsoleProcess, ConsoleProcess], results: Results, scale: Scale) -> None:
    result = results("7a. auth: console endpoints × bad credentials", scale.name)
    for _ in range(scale.trials):
        _token_matrix(consoles, result)
    result.check()


def _token_matrix(consoles: tuple[ConsoleProcess, ConsoleProcess], result: Result) -> None:
    main, other = consoles
    expired = main.login()
    revoked = main.login()
    with main.client(revoked) as c:
        assert c.post("/v1/auth/logout").status_code == 204
    foreign = other.login()
    time.sleep(2.5)  # `expired` is past its 2 s lifetime now
    issued: list[tuple[float, str]] = []

    def fresh() -> str:
        """A session token well within its 2 s lifetime (on a loaded machine the matrix outlasts one token)."""
        if not issued or time.monotonic() - issued[-1][0] > 1.0:
            issued.append((time.monotonic(), main.login()))
        return issued[-1][1]

    credentials: dict[str, Callable[[], dict[str, str]]] = {
        "none": lambda: {},
        "malformed": lambda: {"Authorization": "Bearer \x7f" + "A" * 40},
        "overlong": lambda: {"Authorization": "Bearer " + "A" * 100_000},
        "expired": lambda: {"Authorization": f"Bearer {expired}"},
        "revoked": lambda: {"Cookie": f"Authorization={revoked}"},
        "other console's token": lambda: {"Authorization": f"Bearer {foreign}"},
        "service token for a session": lambda: {"Authorization": f"Bearer {SERVICE_TOKEN}"},
        "session for the service": lambda: {"Authorization": f"Bearer {fresh()}"},
        "token as Basic password": lambda: {
            "Authorization": "Basic " + base64.b64encode(f"admin:{fresh()}".encode()).decode()
        },
    }
    with main.client() as c:
        for method, path in PROTECTED:
            for name, headers in credentials.items():
                if name == "session for the service" and (method, path) not in SERVICE_ONLY:
                    continue
                if name == "service token for a session" and (method, path) in SERVICE_ONLY:
                    continue
                try:
                    r = c.request(method, path, headers=headers(), json={})
                    # a header the HTTP layer itself refuses (400/431) never reaches the endpoint either
                    refused = (401, 403) if name not in ("malformed", "overlong") else (400, 401, 403, 431)
                    ok, why = r.status_code in refused, f"{method} {path} with {name}: {r.status_code} {r.text[:80]}"
                except httpx.HTTPError as exc:  # an overlong header may be refused at the connection level
                    ok, why = name == "overlong", f"{method} {path} with {name}: {exc!r}"
                result.trial(ok, why)
        # the good token still opens what it should (the matrix did not pass because everything is closed)
        assert c.get("/v1/registries/oci", headers={"Authorization": f"Bearer {fresh()}"}).status_code == 200
        service = c.get("/v1/system/specman/source", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"})
        assert service.status_code in (200, 404), service.text
    result.figures = {"endpoints": len(PROTECTED), "credential kinds": len(credentials), "answers": "401/403 only"}


@pytest.mark.parametrize("scale", scales(Scale("short", 1, size=60), Scale("long", 3, size=400)))
def test_login_brute_force_burst(
    consoles: tuple[ConsoleProcess, ConsoleProcess], results: Results, scale: Scale, tmp_path: Path
) -> None:
    result = results("7b. auth: login brute-force burst", scale.name)
    statuses: list[int] = []
    for trial in range(scale.trials):
        # a console of its own per trial: the lock-out of one trial would decide the next one
        console = start_console(tmp_path / f"burst-{trial}", tls=False)
        try:
            body = {"username": "admin", "password": "wrong"}

            def attempt(i: int, body: dict[str, str] = body, console: ConsoleProcess = console) -> int:
                with console.client() as c:
                    return c.post("/v1/auth/syslogin", json={**body, "password": f"wrong-{i}"}).status_code

            with ThreadPoolExecutor(32) as pool:
                codes = list(pool.map(attempt, range(scale.size)))
            statuses += codes
            checked = codes.count(401)  # wrong passwords that were really checked
            with console.client() as c:
                right = c.post("/v1/auth/syslogin", json={"username": "admin", "password": ADMIN_PASSWORD})
            held = checked < LOCK_THRESHOLD and set(codes) <= {401, 429} and right.status_code == 429
            result.trial(held, f"{checked} wrong passwords checked of {len(codes)}, right one -> {right.status_code}")
        finally:
            console.stop()
    result.figures = {
        "burst": f"{scale.size} concurrent wrong logins",
        "answered 401": statuses.count(401),
        "answered 429": statuses.count(429),
        "threshold": LOCK_THRESHOLD,
    }
    result.check()


def _timings(check: object, headers: list[str], rounds: int) -> list[float]:
    """Median time of ``check(header)`` per header, interleaved over ``rounds`` rounds."""
    samples: list[list[float]] = [[] for _ in headers]
    for _ in range(rounds):
        for i, header in enumerate(headers):
            start = time.perf_counter_ns()
            check(header)  # type: ignore[operator]
            samples[i].append(time.perf_counter_ns() - start)
    return [statistics.median(s) for s in samples]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("scale", scales(Scale("short", 1, size=2000), Scale("long", 5, size=20000)))
def test_basic_auth_constant_time(serve_factory: ServeFactory, tmp_path: Path, results: Results, scale: Scale) -> None:
    result = results("7c. auth: serve Basic auth timing", scale.name)
    secret = "S3cret-" + "x" * 57  # 64 characters
    # pairs of wrong passwords of one length: one shares all it can with the secret, the other nothing; only the
    # attacker's own input length may change the time (base64 decoding), never how much of the secret matches
    pairs = {
        length: ((secret * 3)[:length][:-1] + "#" if length else "", "Q" * length)
        for length in (1, 32, 63, 64, 65, 128)
    }
    guard = BasicAuth(lambda *a: None, ("reader", secret))  # type: ignore[arg-type,return-value]
    worst = 0.0
    for _ in range(scale.trials):
        for length, (close, far) in pairs.items():
            medians = _timings(guard._allowed, [_basic("reader", close), _basic("reader", far)], scale.size)
            spread = abs(medians[0] - medians[1]) / min(medians)
            worst = max(worst, spread)
            result.trial(spread < 0.25, f"length {length}: in-process medians (ns) {medians}")
    # over the network: the same wrong passwords against a running serve
    files = _files("T", _paths("t", 3))
    tree = _write_tree(tmp_path / "tree", files)
    layout = tmp_path / "layout"
    from specman.oci import LayoutRepository, push_artifact

    push_artifact(LayoutRepository(layout, create=True), tree, "1.0.0")
    auth_file = tmp_path / "basic-auth"
    auth_file.write_text(f"reader:{secret}\n")
    server = serve_factory(
        [str(layout), "--oci-layout"], tmp_path / "data", extra_args=["--basic-auth-file", str(auth_file)], tls=False
    )
    path = "/" + next(iter(files))
    with server.client() as client:
        assert client.get(path, headers={"Authorization": _basic("reader", secret)}).status_code == 200

        def remote(header: str) -> None:
            assert client.get(path, headers={"Authorization": header}).status_code == 401

        close, far = pairs[64]
        net = _timings(remote, [_basic("reader", close), _basic("reader", far)], max(100, scale.size // 10))
    net_spread = abs(net[0] - net[1]) / min(net)
    result.trial(net_spread < 0.25, f"network medians (µs) {[round(m / 1000) for m in net]}")
    result.figures = {
        "in-process spread of medians": f"{worst:.0%}",
        "network spread of medians": f"{net_spread:.0%}",
        "lengths": len(pairs),
    }
    result.check()
