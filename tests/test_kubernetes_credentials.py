"""Registry credentials as mounted Secret files (issue 7): rotated, deleted and re-created without a restart.

One real ``specman serve`` runs as overlays/single's container (its env and volumes from the rendered manifests,
the Secret ``spectro-manifest-registry-secrets`` projected by the kubelet's atomic writer: ``username`` and
``password`` are symlinks into ``..data``, which an update swaps in one rename), against a real htpasswd
registry whose accounts change under it (distribution 2.8 reads its htpasswd file at start: a restart on the same
port and storage). The registry's account ``pusher`` pushes; specman reads with ``robot-*`` accounts only.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from specman.oci import RegistryOptions, open_repository, parse_reference, push_artifact
from tests.conftest import RegistryFactory, ServeFactory
from tests.fixtures.archives import Entry, make_tar
from tests.fixtures.kube import Obj, PodSandbox, docs_patches, one, render, render_patched
from tests.fixtures.registry import Registry, write_htpasswd
from tests.fixtures.serve import ServeProcess, poll

REPO = "spectro-packs/spectro-manifests/manifest"
SECRET = "spectro-manifest-registry-secrets"
PUSHER = ("pusher", "pusher-pw")
WAIT = 60.0


@pytest.fixture(scope="module")
def single() -> list[Obj]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is missing: apt-get install -y kubernetes-client", pytrace=False)
    return render("overlays/single")


def _accounts(registry: Registry, **users: str) -> None:
    """The registry knows exactly ``pusher`` and ``users`` from now on."""
    write_htpasswd(registry.log_file.parent / "htpasswd", {PUSHER[0]: PUSHER[1], **users})
    registry.restart()


def _push(registry: Registry, tag: str, tmp_path: Path) -> str:
    archive = tmp_path / f"push-{tag}" / "manifests.tgz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(make_tar([Entry(f"./{tag}/version.json", data=tag.encode())]))
    options = RegistryOptions(username=PUSHER[0], password=PUSHER[1], plain_http=True)
    repo = open_repository(parse_reference(f"{registry.host}/{REPO}"), options)
    try:
        return str(push_artifact(repo, archive, tag).digest)
    finally:
        repo.close()


def _status(server: ServeProcess) -> dict[str, Any]:
    with server.client() as client:
        result: dict[str, Any] = client.get("/_specman/status").json()
    return result


def _wait_tags(server: ServeProcess, tags: set[str]) -> None:
    assert poll(lambda: set(_status(server)["tags"]) == tags, WAIT), server.log_tail()


def _wait_error(server: ServeProcess, needle: str) -> None:
    def failing() -> bool:
        sync = _status(server)["sync"] or {}
        return sync.get("state") == "failing" and needle in (sync.get("last_error") or "")

    assert poll(failing, WAIT), f"no sync error with {needle!r}:\n{server.log_tail()}"


def _pod(single: list[Obj], registry: Registry, root: Path, secret: Mapping[str, str] | None) -> PodSandbox:
    objects = copy.deepcopy(single)
    config = one(objects, "ConfigMap", "specman-config")["data"]
    config.update({"source": f"{registry.host}/{REPO}", "interval": "1s", "plain-http": "true"})
    secrets = {SECRET: dict(secret)} if secret is not None else {}
    return PodSandbox(objects, one(objects, "StatefulSet", "specman"), "specman", root, secrets)


def _start(serve_factory: ServeFactory, pod: PodSandbox) -> ServeProcess:
    env = pod.env()
    return serve_factory([], Path(env["SPECMAN_DATA_DIR"]), env=env, workers=int(env["SPECMAN_WORKERS"]))


def test_credentials_rotate_and_the_secret_can_be_deleted_and_recreated(
    single: list[Obj], registry_factory: RegistryFactory, serve_factory: ServeFactory, tmp_path: Path
) -> None:
    registry = registry_factory("htpasswd", tls=False, users={PUSHER[0]: PUSHER[1], "robot-a": "pw-a"})
    _push(registry, "1.0.0", tmp_path)
    pod = _pod(single, registry, tmp_path / "specman-0", {"username": "robot-a", "password": "pw-a"})
    server = _start(serve_factory, pod)
    _wait_tags(server, {"1.0.0"})

    # a new account: the registry admin adds it, the operator updates the Secret, the old account is revoked
    _accounts(registry, **{"robot-a": "pw-a", "robot-b": "pw-b"})
    pod.update_secret(SECRET, {"username": "robot-b", "password": "pw-b"})
    _accounts(registry, **{"robot-b": "pw-b"})
    _push(registry, "2.0.0", tmp_path)
    _wait_tags(server, {"1.0.0", "2.0.0"})  # robot-a refused → both files read again → robot-b

    # the migration's step: the Secret is deleted (the optional volume empties); syncs go on with the account in
    # use while the registry accepts it, then fail once it is revoked, and the last view stays served and ready
    pod.update_secret(SECRET, None)
    assert not (pod.mounts["/etc/specman/registry"] / "password").exists()
    _push(registry, "3.0.0", tmp_path)
    _wait_tags(server, {"1.0.0", "2.0.0", "3.0.0"})
    _accounts(registry, **{"robot-c": "pw-c"})
    _push(registry, "4.0.0", tmp_path)
    _wait_error(server, "cannot read the username file")
    with server.client() as client:
        assert client.get("/_specman/readyz").status_code == 200
        assert client.get("/3.0.0/version.json").text == "3.0.0"

    # a pod (re)starting while the Secret is missing starts and serves its volume's last view
    pid = server.pid
    server.stop()
    server = _start(serve_factory, pod)
    assert server.pid != pid
    with server.client() as client:
        assert poll(lambda: client.get("/_specman/readyz").status_code == 200, WAIT)
    _wait_error(server, "cannot read the username file")
    assert "does not exist (yet)" in server.log_text()

    # the Secret is created again with the new registry account: picked up by the running process
    pod.update_secret(SECRET, {"username": "robot-c", "password": "pw-c"})
    _wait_tags(server, {"1.0.0", "2.0.0", "3.0.0", "4.0.0"})
    for secret in ("pw-a", "pw-b", "pw-c"):
        assert secret not in server.log_text()


def test_a_dockerconfigjson_secret_as_docker_config(
    registry_factory: RegistryFactory, serve_factory: ServeFactory, tmp_path: Path
) -> None:
    """docs/kubernetes.md's patch: a ``kubernetes.io/dockerconfigjson`` Secret mounted as ``$DOCKER_CONFIG`` instead
    of the username/password files; ``config.json`` is read at each credential lookup, so its rotation applies."""
    (patch,) = [p for p in docs_patches() if "DOCKER_CONFIG" in p]
    objects = render_patched("overlays/single", patch, tmp_path / "kustomization")
    for obj in objects:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    sts = one(objects, "StatefulSet", "specman")
    secret = next(
        v["secret"]["secretName"] for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "docker-config"
    )
    registry = registry_factory("htpasswd", tls=False, users={PUSHER[0]: PUSHER[1], "robot-a": "pw-a"})
    _push(registry, "1.0.0", tmp_path)

    def dockerconfigjson(user: str, password: str) -> dict[str, str]:
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {".dockerconfigjson": json.dumps({"auths": {registry.host: {"auth": auth}}})}

    pod = _pod(objects, registry, tmp_path / "specman-0", None)
    pod.update_secret(secret, dockerconfigjson("robot-a", "pw-a"))
    env = pod.env()
    assert "SPECMAN_USERNAME_FILE" not in env and "SPECMAN_PASSWORD_FILE" not in env
    assert (Path(env["DOCKER_CONFIG"]) / "config.json").is_file()
    server = _start(serve_factory, pod)
    _wait_tags(server, {"1.0.0"})

    _accounts(registry, **{"robot-a": "pw-a", "robot-b": "pw-b"})
    pod.update_secret(secret, dockerconfigjson("robot-b", "pw-b"))
    _accounts(registry, **{"robot-b": "pw-b"})
    _push(registry, "2.0.0", tmp_path)
    _wait_tags(server, {"1.0.0", "2.0.0"})
