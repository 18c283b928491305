"""Pytest fixtures over real components: docker-registry (plain / TLS+htpasswd / token), a token server, a fault proxy.

Session-scoped processes are per xdist worker (each worker has its own ``tmp_path_factory``).  Tests must not
change shared state they do not own: call ``registry.token_server.reset()`` before asserting on token counters, and
use ``registry_factory`` for a registry you restart, reconfigure or fill with many artifacts.
Missing binaries fail (not skip) with the ``apt-get install`` line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.aws import MotoServer
from tests.fixtures.browser import Browser, start_browser
from tests.fixtures.certs import Certs, make_certs, make_wrong_ca
from tests.fixtures.console import ConsoleProcess, start_console
from tests.fixtures.faultproxy import FaultProxy
from tests.fixtures.registry import SCRUBBED_ENV, Mode, Registry, start_registry, stop_registry
from tests.fixtures.serve import ServeProcess, start_serve
from tests.fixtures.tools import Skopeo, require_binaries

RegistryFactory = Callable[..., Registry]
FaultProxyFactory = Callable[[Registry], FaultProxy]
ServeFactory = Callable[..., ServeProcess]

# CA bundles and proxies of the outer environment (the registry processes are started without them too)
_LEAKY_ENV = (*SCRUBBED_ENV, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "REGISTRY_AUTH_FILE")


def _require(*names: str) -> None:
    try:
        require_binaries(*names)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """CA bundles and proxies from the outer environment must not leak into tests."""
    for name in _LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``DOCKER_CONFIG`` -> an empty directory (write ``config.json`` there to test credential lookup)."""
    path = tmp_path / "docker-config"
    path.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Test CA + server cert (SANs localhost, 127.0.0.1) shared by all TLS registries and token servers."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def wrong_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unrelated CA certificate (PEM path): verifying a test registry with it must fail."""
    return make_wrong_ca(tmp_path_factory.mktemp("wrong-ca"))


def _session_registry(
    tmp_path_factory: pytest.TempPathFactory, certs: Certs, mode: Mode, **kwargs: Any
) -> Iterator[Registry]:
    _require("docker-registry")
    registry = start_registry(tmp_path_factory.mktemp(f"registry-{mode}"), mode, certs, **kwargs)
    try:
        yield registry
    finally:
        stop_registry(registry)


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Registry]:
    """http://127.0.0.1:PORT, no auth."""
    yield from _session_registry(tmp_path_factory, certs, "plain")


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Registry]:
    """https with the test CA + htpasswd Basic auth (alice = full user, reader)."""
    yield from _session_registry(tmp_path_factory, certs, "htpasswd")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Registry]:
    """https + token auth; JWTs carry ``kid``.  The token server is ``token_registry.token_server``."""
    yield from _session_registry(tmp_path_factory, certs, "token")


@pytest.fixture(scope="session")
def token_registry_x5c(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Registry]:
    """https + token auth; JWTs carry ``x5c`` (the signing certificate)."""
    yield from _session_registry(tmp_path_factory, certs, "token-x5c")


@pytest.fixture
def registry_factory(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[RegistryFactory]:
    """``registry_factory(mode="plain"|"tls"|"htpasswd"|"token"|"token-x5c", **start_registry_kwargs)``.

    Keyword arguments go to ``start_registry`` (``tls=``, ``users=``, ``token_options={"lifetime": 1, ...}``,
    ``notifications=``, ``env=``...).  Every registry (and token server it created) is stopped at teardown.
    """
    _require("docker-registry")
    started: list[Registry] = []

    def factory(mode: Mode = "plain", **kwargs: Any) -> Registry:
        registry = start_registry(tmp_path_factory.mktemp(f"extra-{mode}"), mode, certs, **kwargs)
        started.append(registry)
        return registry

    yield factory
    for registry in reversed(started):
        stop_registry(registry)


@pytest.fixture
def fault_proxy_factory() -> Iterator[FaultProxyFactory]:
    """``fault_proxy_factory(registry)`` -> a started ``FaultProxy`` in front of a plain-http registry."""
    proxies: list[FaultProxy] = []

    def factory(registry: Registry) -> FaultProxy:
        if registry.scheme != "http":
            raise ValueError("the fault proxy works on plain http registries only")
        proxy = FaultProxy("127.0.0.1", registry.port).start()
        proxies.append(proxy)
        return proxy

    yield factory
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def fault_proxy(plain_registry: Registry, fault_proxy_factory: FaultProxyFactory) -> FaultProxy:
    """A fresh ``FaultProxy`` in front of ``plain_registry`` (``fault_proxy.url`` is the registry URL to use)."""
    return fault_proxy_factory(plain_registry)


@pytest.fixture(scope="session")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    """``skopeo("copy", ...)`` with an accept-anything policy and an empty auth file."""
    _require("skopeo")
    return Skopeo(tmp_path_factory.mktemp("skopeo"))


@pytest.fixture
def serve_factory() -> Iterator[ServeFactory]:
    """``serve_factory(source_args, data_dir, extra_args=..., env=..., tls=True, workers=1, ...)`` -> a healthy
    ``ServeProcess`` (see ``tests/fixtures/serve.py: start_serve``); every process is stopped at teardown."""
    started: list[ServeProcess] = []

    def factory(source_args: list[str], data_dir: Path, **kwargs: Any) -> ServeProcess:
        process = start_serve(source_args, data_dir, **kwargs)
        started.append(process)
        return process

    yield factory
    for process in reversed(started):
        process.stop()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the page tests save their screenshots: ``$SPECMAN_TEST_ARTIFACTS/screenshots`` or a pytest temp dir."""
    root = os.environ.get("SPECMAN_TEST_ARTIFACTS")
    path = Path(root) / "screenshots" if root else tmp_path_factory.getbasetemp() / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, screenshots: Path) -> Iterator[Browser]:
    """A headless Chromium (``tests/fixtures/browser.py``) with a fresh profile, for one test module."""
    _require("chromium", "chromedriver")
    started = start_browser(tmp_path_factory.mktemp("chromium-profile"), screenshots)
    try:
        yield started
    finally:
        started.quit()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    """A real ``specman console`` over plain HTTP with the test admin password, shared by a test module (modules
    that need other options define their own ``console``)."""
    server = start_console(tmp_path_factory.mktemp("console") / "data", tls=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token(console: ConsoleProcess) -> str:
    """A session token of the admin on ``console``."""
    return console.login()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto in server mode on 127.0.0.1 (STS, ECR, IMDS); any key is accepted.  Use with ``aws_env(tmp, moto.url)``."""
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto that checks access keys (``INITIAL_NO_AUTH_ACTION_COUNT=0``): unknown keys get 403."""
    server = MotoServer(tmp_path_factory.mktemp("moto-strict"), strict=True).start()
    yield server
    server.stop()
