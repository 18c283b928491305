"""``--config-dir``: a mounted ConfigMap's ``source`` and ``interval``, followed without a restart."""

from __future__ import annotations

from pathlib import Path

from specman.oci import RegistryOptions, open_repository, parse_reference
from tests.conftest import ServeFactory
from tests.fixtures.registry import Registry
from tests.fixtures.serve import poll
from tests.test_cli import one_line_error, run
from tests.test_sync import push_tree


def _fill(registry: Registry, name: str, marker: str, work: Path) -> str:
    repo = open_repository(parse_reference(f"{registry.host}/{name}"), RegistryOptions(plain_http=True))
    try:
        push_tree(repo, "1.0.0", {"where.txt": marker}, work)
    finally:
        repo.close()
    return f"{registry.host}/{name}"


def _set(directory: Path, name: str, value: str) -> None:
    """As Kubernetes updates a ConfigMap volume: write a new file, then swap it in atomically."""
    tmp = directory / f".{name}.tmp"
    tmp.write_text(value + "\n")
    tmp.replace(directory / name)


def test_config_dir_is_followed_without_a_restart(
    plain_registry: Registry, serve_factory: ServeFactory, tmp_path: Path
) -> None:
    first = _fill(plain_registry, "cfg/first", "first", tmp_path)
    second = _fill(plain_registry, "cfg/second", "second", tmp_path)
    config = tmp_path / "config"
    config.mkdir()
    _set(config, "source", first)
    _set(config, "interval", "300ms")
    server = serve_factory(
        ["--config-dir", str(config), "--plain-http"], tmp_path / "data", extra_args=["--interval", "1h"]
    )
    with server.client() as client:
        assert poll(lambda: client.get("/where.txt").text == "first"), server.log_tail()
        _set(config, "source", second)  # the interval from the file (300 ms), not --interval 1h, brings it in
        assert poll(lambda: client.get("/where.txt").text == "second"), server.log_tail()
        assert client.get("/_specman/status").json()["sync"]["source"] == second

        runs = client.get("/_specman/status").json()["sync"]["runs"]
        _set(config, "source", "Not A Reference::")  # a bad edit: logged, ignored, the last good source stays
        _set(config, "interval", "soon")
        assert poll(lambda: client.get("/_specman/status").json()["sync"]["runs"] >= runs + 3)
        assert client.get("/where.txt").text == "second"
        assert client.get("/_specman/status").json()["sync"]["state"] == "ok"
    log = server.log_text()
    assert log.count('msg="Source from the config dir"') == 2
    assert log.count('msg="Ignoring source from the config dir"') == 1  # once per bad value, not every sync
    assert log.count('msg="Ignoring interval from the config dir"') == 1


def test_config_dir_usage(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    args = ["sync", "--config-dir", str(config), "--data-dir", str(tmp_path / "d"), "--once"]
    token = tmp_path / "token"
    token.write_text("t")
    proc = run(*args, "--console", "https://c:8444", "--console-token-file", str(token))
    assert proc.returncode == 2 and "--config-dir and --console" in one_line_error(proc)
    proc = run(*args)  # no source file and no REPO: the sync fails with the reason, exit 1
    assert proc.returncode == 1 and "is missing and no REPO was given" in proc.stderr
