"""The container image (issue 18), built by ``scripts/build-image`` and run with podman on this machine.

Marked ``image`` (deselected by default; ``scripts/test-all`` runs them in a step of their own, ``pytest -m image``).
The image is built once per run (cached layers make a rebuild of an unchanged tree take seconds). Containers run as
the kustomize base's StatefulSet asks (non-root 10001, read-only root, no capabilities, no privilege escalation: the
flags are derived from the rendered manifest, not written here), on the host's network with every port on
127.0.0.1, against a real ``docker-registry`` on the host's loopback. Names are unique per test.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from specman.oci import RegistryOptions, open_repository, parse_reference, push_artifact
from tests.conftest import RegistryFactory
from tests.fixtures.archives import Entry, make_tar
from tests.fixtures.kube import ROOT, Obj, env_entries, one, render
from tests.fixtures.kube import container as container_of
from tests.fixtures.podman import Podman, build_image
from tests.fixtures.registry import Registry, free_port
from tests.fixtures.serve import poll
from tests.fixtures.tools import Skopeo

pytestmark = pytest.mark.image

REPO = "spectro-packs/spectro-manifests/manifest"
UID = 10001
WAIT = 90.0
FILES = {"packs/a.json": b'{"a": 1}\n', "index.json": b'{"packs": ["a"]}\n'}


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    return Podman(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_image(tmp_path_factory.mktemp("build-image") / "build.log")


@pytest.fixture(scope="module")
def statefulset() -> Obj:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is missing: apt-get install -y kubernetes-client", pytrace=False)
    return one(render("base", kubectl), "StatefulSet", "specman")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """The data volume: a host directory owned by the pod's user (the test reads the generated CA from it)."""
    path = tmp_path / "data"
    path.mkdir()
    os.chown(path, UID, UID)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _push(registry: Registry, tag: str, files: dict[str, bytes], work: Path) -> None:
    archive = work / f"push-{uuid.uuid4().hex[:8]}" / "manifests.tgz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(make_tar(Entry(f"./{path}", data=data) for path, data in sorted(files.items())))
    options = RegistryOptions(username=registry.username, password=registry.password, plain_http=True)
    repo = open_repository(parse_reference(f"{registry.host}/{REPO}"), options)
    try:
        push_artifact(repo, archive, tag)
    finally:
        repo.close()


def _security_args(statefulset: Obj) -> list[str]:
    """``podman run`` flags for the StatefulSet container's securityContext (and the pod's), as a kubelet applies it."""
    pod = statefulset["spec"]["template"]["spec"]
    context = {**pod.get("securityContext", {}), **container_of(statefulset, "specman")["securityContext"]}
    assert context["runAsNonRoot"] is True
    args = ["--user", f"{context['runAsUser']}:{context['runAsGroup']}"]
    if context.get("readOnlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]  # only the declared volumes are writable
    if context.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    args += [f"--cap-drop={cap}" for cap in context.get("capabilities", {}).get("drop", [])]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"  # podman's default profile
    assert not context.get("privileged")
    return args


def _get(port: int, ca: Path, path: str) -> httpx.Response | None:
    if not ca.exists():
        return None
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=5) as client:
            return client.get(f"https://localhost:{port}{path}")
    except httpx.HTTPError:
        return None


def _ready(port: int, ca: Path) -> bool:
    response = _get(port, ca, "/readyz")
    return response is not None and response.status_code == 200


def _served(port: int, ca: Path) -> dict[str, tuple[bytes, str]]:
    served = {}
    for path in FILES:
        response = _get(port, ca, f"/{path}")
        assert response is not None
        assert response.status_code == 200, (path, response.status_code)
        served[path] = (response.content, response.headers["etag"])
    return served


def _logs(podman: Podman, name: str) -> str:
    return podman("logs", "--tail", "40", name, check=False).stderr[-3000:]


# -- the image itself ------------------------------------------------------------------------------------------------


def test_the_image_metadata_and_contents(podman: Podman, image: str) -> None:
    info = podman.inspect("image", "inspect", image)
    config = info["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["specman"]
    assert config["Cmd"] == ["serve"]
    assert "healthcheck.py" in " ".join(info["Healthcheck"]["Test"])  # kept: built with --format docker
    labels = config["Labels"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert labels["org.opencontainers.image.revision"].startswith(head.stdout.strip())
    assert labels["org.opencontainers.image.source"]
    datetime.fromisoformat(labels["org.opencontainers.image.created"])
    # inside: specman runs; no compiler, no uv, no pip, no package manager caches; every library is found
    script = r"""
        set -u
        specman --version
        for tool in uv uvx pip pip3 gcc cc c++ ld as strip make apt apt-get; do
            command -v "$tool" && echo "FOUND $tool"
        done
        for dir in /var/lib/apt/lists /var/cache/apt /var/cache/debconf /root/.cache /tmp /wheels /dist /src; do
            [ -n "$(ls -A "$dir" 2>/dev/null)" ] && echo "NOT EMPTY $dir"
        done
        find / -xdev \( -name '*.deb' -o -name '*.whl' -o -name 'pkgcache.bin' \) -print | sed 's/^/FOUND /'
        find /opt/specman /usr/lib/python3* -name '*.so*' -type f | while read -r lib; do
            ldd "$lib" | grep -q 'not found' && echo "MISSING LIBRARY for $lib"
        done
        python3 -c 'import ssl, sqlite3, zstandard, granian._granian, isal, aiohttp, frozenlist._frozenlist'
        python3 -c 'import cryptography.hazmat.bindings._rust, argon2'
        echo done
    """
    proc = podman("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c", script)
    lines = proc.stdout.splitlines()
    assert version in lines[0]
    assert lines[-1] == "done", proc.stdout + proc.stderr
    assert not [line for line in lines if line.startswith(("FOUND", "NOT EMPTY", "MISSING"))], proc.stdout


# -- serve in the container ----------------------------------------------------------------------------------------


def test_serve_in_the_container_syncs_serves_https_and_keeps_its_view_after_kill_9(
    podman: Podman,
    image: str,
    statefulset: Obj,
    registry_factory: RegistryFactory,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    registry = registry_factory("plain")
    port = free_port()
    name = f"specman-image-{uuid.uuid4().hex[:10]}"
    ca = data_dir / "tls" / "ca.crt"
    env = {
        "SPECMAN_SOURCE": f"{registry.host}/{REPO}",
        "SPECMAN_PLAIN_HTTP": "1",
        "SPECMAN_LISTEN": f"127.0.0.1:{port}",
        "SPECMAN_INTERVAL": "1s",
    }
    run = ["run", "-d", "--name", name, "--network", "host", *_security_args(statefulset)]
    run += ["--tmpfs", "/tmp:rw,mode=1777,size=256m", "-v", f"{data_dir}:/var/lib/specman"]  # the pod's volumes
    run += [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    podman(*run, image)
    try:
        # listening but nothing published (the repository has no tag yet): alive, not ready -> the check fails
        assert poll(lambda: _get(port, ca, "/healthz") is not None, WAIT), _logs(podman, name)
        assert not _ready(port, ca)
        assert podman("healthcheck", "run", name, check=False).returncode == 1
        _push(registry, "1.0.0", FILES, tmp_path)
        assert poll(lambda: _ready(port, ca), WAIT), _logs(podman, name)
        before = _served(port, ca)
        assert {path: body for path, (body, _) in before.items()} == FILES
        assert podman("healthcheck", "run", name, check=False).returncode == 0, _logs(podman, name)
        # the kubelet's constraints hold inside: the pod's user, no capabilities, no new privileges, read-only root
        out = podman("exec", name, "sh", "-c", "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/1/status").stdout.split()
        assert out == [str(UID), "CapEff:", "0000000000000000", "NoNewPrivs:", "1"]
        assert "Read-only file system" in podman("exec", name, "touch", "/opt/specman/x", check=False).stderr
        # kill -9 of the container's main process, the registry gone: the restart serves the volume's last view
        pid = podman.state(name)["Pid"]
        os.kill(pid, signal.SIGKILL)
        assert poll(lambda: podman.state(name)["Status"] == "exited", WAIT)
        assert podman.state(name)["ExitCode"] == 137
        registry.stop()
        podman("start", name)
        assert poll(lambda: _ready(port, ca), WAIT), _logs(podman, name)
        assert _served(port, ca) == before
        assert podman("healthcheck", "run", name, check=False).returncode == 0, _logs(podman, name)
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


# -- the kustomize base's pod template under `podman kube play` ----------------------------------------------------


def _pod_for_kube_play(
    statefulset: Obj, image: str, name: str, config: str, port: int, volumes: dict[str, Path]
) -> Obj:
    """The StatefulSet's pod template as a Pod (``kube play`` runs no StatefulSet), changed only where podman 4.3 or
    this host need it: the image, host networking (the registry and the probe port on the host's loopback: no
    ``ports``, probes by port number), ``$(VAR)`` references expanded as the kubelet does (4.3 passes them
    verbatim),
    SPECMAN_LISTEN on a free 127.0.0.1 port, the ConfigMap's unique name, hostPath volumes for the claim template,
    the emptyDir and the credentials Secret (4.3 mounts Secret data still base64-encoded: podman #16625), and no
    optional Secret variable (4.3 fails on ``secretKeyRef``: podman #16269)."""
    template = copy.deepcopy(statefulset["spec"]["template"])
    spec = template["spec"]
    spec["hostNetwork"] = True
    spec.pop("affinity", None)
    (container,) = spec["containers"]
    container["image"] = image
    container["imagePullPolicy"] = "Never"
    # host networking takes no port mappings (podman: "PortMappings can only be used with Bridge or slirp4netns");
    # the probes name the port by number instead of by its name
    container.pop("ports")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        container[probe]["httpGet"]["port"] = port
    env, known = [], {}
    for entry in container["env"]:
        if entry["name"] == "SPECMAN_NOTIFY_TOKEN":
            continue
        if entry["name"] == "SPECMAN_LISTEN":
            entry = {"name": "SPECMAN_LISTEN", "value": f"127.0.0.1:{port}"}
        if entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            known[entry["name"]] = "specman-0"  # the StatefulSet's first pod
        if "value" in entry:  # the kubelet expands $(VAR) of earlier variables; podman 4.3 does not
            entry["value"] = re.sub(r"\$\((\w+)\)", lambda m: known.get(m.group(1), m.group(0)), entry["value"])
            known[entry["name"]] = entry["value"]
        ref = entry.get("valueFrom", {}).get("configMapKeyRef")
        if ref is not None:
            ref["name"] = config
        env.append(entry)
    container["env"] = env
    hostpaths = {"data": volumes["data"], "tmp": volumes["tmp"], "registry-credentials": volumes["credentials"]}
    spec["volumes"] = [{"name": v, "hostPath": {"path": str(p), "type": "Directory"}} for v, p in hostpaths.items()] + [
        {**v, "configMap": {**v["configMap"], "name": config}} for v in spec["volumes"] if "configMap" in v
    ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **template["metadata"]}, "spec": spec}


def test_the_kustomize_pod_template_runs_with_kube_play(
    podman: Podman,
    image: str,
    statefulset: Obj,
    registry_factory: RegistryFactory,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    registry = registry_factory("htpasswd", tls=False, users={"robot": "robot-pw"})
    _push(registry, "1.0.0", FILES, tmp_path)
    rendered = render("base", shutil.which("kubectl") or "kubectl")
    suffix = uuid.uuid4().hex[:10]
    name, config = f"specman-play-{suffix}", f"specman-config-{suffix}"
    configmap: dict[str, Any] = copy.deepcopy(one(rendered, "ConfigMap", "specman-config"))
    configmap["metadata"] = {"name": config}
    configmap["data"].update(source=f"{registry.host}/{REPO}", interval="1s", **{"plain-http": "true"})
    tmp_dir, credentials = tmp_path / "tmp", tmp_path / "credentials"
    tmp_dir.mkdir(mode=0o1777)
    os.chmod(tmp_dir, 0o1777)  # noqa: S103 - an emptyDir's mode
    credentials.mkdir()
    for key, value in (("username", "robot"), ("password", "robot-pw")):  # the Secret's files: 0440, group fsGroup
        (credentials / key).write_text(value)
        os.chown(credentials / key, 0, UID)
        os.chmod(credentials / key, 0o440)
    port = free_port()
    pod = _pod_for_kube_play(
        statefulset, image, name, config, port, {"data": data_dir, "tmp": tmp_dir, "credentials": credentials}
    )
    assert env_entries(container_of(statefulset, "specman"))["SPECMAN_LISTEN"]  # the variable replaced above exists
    play = tmp_path / "play.yaml"
    play.write_text(yaml.safe_dump_all([configmap, pod]))
    ca = data_dir / "tls" / "ca.crt"
    try:
        podman("kube", "play", "--replace", str(play), timeout=180)
        assert poll(lambda: _ready(port, ca), WAIT), _logs(podman, f"{name}-specman")
        assert {path: body for path, (body, _) in _served(port, ca).items()} == FILES
        host_config = podman.inspect("container", "inspect", f"{name}-specman")["HostConfig"]
        assert host_config["ReadonlyRootfs"] is True
        assert "no-new-privileges" in host_config["SecurityOpt"]
        out = podman("exec", f"{name}-specman", "sh", "-c", "id -u; grep -E '^CapEff' /proc/1/status").stdout.split()
        assert out == [str(UID), "CapEff:", "0000000000000000"]
    finally:
        podman("kube", "down", str(play), check=False, timeout=120)
        podman("volume", "rm", "-f", config, check=False)


# -- into an air-gapped registry (docs/kubernetes.md) ----------------------------------------------------------------


def test_the_image_moves_into_a_registry_with_skopeo(
    podman: Podman, image: str, skopeo: Skopeo, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """The documented ways into Harbor, against a real registry: ``skopeo copy`` from ``containers-storage:`` (a
    Docker v2s2 manifest: the HEALTHCHECK kept) and from the archives ``podman save`` writes; the copies keep the
    labels, and the pulled image runs."""
    registry = registry_factory("plain")
    target = f"{registry.host}/specman/specman"
    revision = podman.inspect("image", "inspect", image)["Config"]["Labels"]["org.opencontainers.image.revision"]
    skopeo("copy", "--dest-tls-verify=false", f"containers-storage:{image}", f"docker://{target}:store")
    for fmt in ("docker-archive", "oci-archive"):
        archive = tmp_path / f"specman.{fmt}.tar"
        podman("save", "--format", fmt, "-o", str(archive), image, timeout=300)
        skopeo("copy", "--dest-tls-verify=false", f"{fmt}:{archive}", f"docker://{target}:{fmt}")
    for tag, healthcheck in (("store", True), ("docker-archive", True), ("oci-archive", False)):
        inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{target}:{tag}").stdout)
        assert inspected["Labels"]["org.opencontainers.image.revision"] == revision
        config = json.loads(
            skopeo("inspect", "--config", "--raw", "--tls-verify=false", f"docker://{target}:{tag}").stdout
        )
        assert ("Healthcheck" in config["config"]) == healthcheck, tag  # the OCI config has no healthcheck field
    pulled = f"{target}:store"
    podman("pull", "--tls-verify=false", pulled, timeout=300)
    try:
        out = podman("run", "--rm", "--network", "none", "--no-healthcheck", pulled, "--version").stdout
        assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] in out
    finally:
        podman("rmi", pulled, check=False)
