"""specman on Kubernetes (issue 7): the kustomize base and overlays, the Dockerfile, and replicas that converge.

No cluster runs here, so what can be checked for real is checked: ``kubectl kustomize`` renders
``deploy/kubernetes/base`` and every overlay, every rendered object validates against the Kubernetes OpenAPI
schemas shipped with ``kubernetes-validate`` (offline, strict: unknown fields fail), and the contract of the issue
holds (names, namespace, ports, volume size, probes, the credentials Secret, the security context, replicas).

Replica consistency runs three real ``specman serve`` processes exactly as the StatefulSet's container runs them:
its args and its env, read from the rendered manifests (ConfigMap and Secret references resolved, mount paths
mapped to temp dirs, the Secret's files written where the volume would put them), one real registry (htpasswd over
plain http: the username from the env, the password from the mounted file). The only changes: the source is the
local registry with ``SPECMAN_PLAIN_HTTP=1``, ``--listen`` is a free 127.0.0.1 port, and the interval is 1 s
instead of 30 s so the test does not wait for it. Waits are bounded polls; nothing asserts on time.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from specman.oci import RegistryOptions, open_repository, parse_reference, push_artifact
from tests.conftest import RegistryFactory, ServeFactory
from tests.fixtures.archives import Entry, make_tar
from tests.fixtures.certs import Certs
from tests.fixtures.kube import KUBE, ROOT, Obj, PodSandbox, env_entries, one, render
from tests.fixtures.kube import container as container_of
from tests.fixtures.registry import Registry
from tests.fixtures.serve import ServeProcess

OVERLAYS = {"single": 1, "tls": 1, "ha": 3}
TARGETS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]
# the oldest and the newest Kubernetes whose schemas kubernetes-validate ships
K8S_VERSIONS = ["1.25", kubernetes_validate.latest_version()]
NAMESPACE = "hubble-system"
REGISTRY_SECRET = "spectro-manifest-registry-secrets"
REPO = "spectro-packs/spectro-manifests/manifest"
WAIT = 60.0
ROBOT_PASSWORD = "s3cret-robot"  # the registry password in the Secret: never in a log

# -- rendering -------------------------------------------------------------------------------------------------


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is missing: apt-get install -y kubernetes-client", pytrace=False)
    return kubectl


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Obj]]:
    kubectl = _kubectl()
    return {target: render(target, kubectl) for target in TARGETS}


# -- the manifests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_validates_against_the_kubernetes_schemas(rendered: dict[str, list[Obj]], target: str) -> None:
    objects = rendered[target]
    assert objects
    for obj in objects:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{target}: {obj['kind']}/{obj['metadata']['name']} (Kubernetes {version}): {exc}")
        assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']}"


def test_the_kustomizations_use_only_features_of_old_kustomize() -> None:
    """kubectl 1.20 (Debian's kubernetes-client) embeds kustomize v2.0.3: no components, labels, replacements,
    or patches with targets, and a directory (another kustomization) only under ``bases``, never ``resources``
    (checked by hand with Debian's kubectl 1.20: "'../../base' must be a file")."""
    allowed = {
        "apiVersion",
        "kind",
        "bases",
        "resources",
        "namespace",
        "commonLabels",
        "commonAnnotations",
        "configMapGenerator",
        "generatorOptions",
        "secretGenerator",
        "patchesStrategicMerge",
        "images",
    }
    files = sorted(KUBE.rglob("kustomization.yaml"))
    assert len(files) == 1 + len(OVERLAYS)
    for path in files:
        kustomization = yaml.safe_load(path.read_text())
        fields = set(kustomization)
        assert fields <= allowed, f"{path.relative_to(ROOT)}: {sorted(fields - allowed)}"
        for resource in kustomization.get("resources", []):
            assert (path.parent / resource).is_file(), f"{path.relative_to(ROOT)}: {resource} belongs under bases"
        for base in kustomization.get("bases", []):
            assert (path.parent / base / "kustomization.yaml").is_file(), f"{path.relative_to(ROOT)}: {base}"


def test_old_kubectl_renders_the_same_objects(rendered: dict[str, list[Obj]]) -> None:
    """Debian's kubectl 1.20 (kustomize v2.0.3), where one is unpacked (``apt-get download kubernetes-client``,
    ``dpkg -x`` into /tmp/k120/x, or ``SPECMAN_OLD_KUBECTL``), renders every target as the current kubectl does."""
    old = os.environ.get("SPECMAN_OLD_KUBECTL", "/tmp/k120/x/usr/bin/kubectl")
    if not os.access(old, os.X_OK):
        pytest.skip(f"no old kubectl at {old}")

    def key(obj: Obj) -> tuple[str, str]:
        return obj["kind"], obj["metadata"]["name"]

    for target in TARGETS:
        assert sorted(render(target, old), key=key) == sorted(rendered[target], key=key), target


@pytest.mark.parametrize(("overlay", "replicas"), OVERLAYS.items())
def test_the_statefulset_contract(rendered: dict[str, list[Obj]], overlay: str, replicas: int) -> None:
    objects = rendered[f"overlays/{overlay}"]
    sts = one(objects, "StatefulSet", "specman")
    spec = sts["spec"]
    assert spec["replicas"] == replicas
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["enableServiceLinks"] is False  # no SPECMAN_*_PORT variables from Services
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"

    container = container_of(sts, "specman")
    assert container["args"][0] == "serve"
    assert container["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    for probe, path in (
        ("startupProbe", "/_specman/healthz"),
        ("livenessProbe", "/_specman/healthz"),
        ("readinessProbe", "/_specman/readyz"),
    ):
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"], get["scheme"]) == (path, "https", "HTTPS"), probe
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 10001
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    resources = container["resources"]
    for key in ("cpu", "memory"):
        assert key in resources["requests"]
        assert key in resources["limits"]
    assert _mebibytes(resources["limits"]["memory"]) >= 2 * 210  # benchmarks: peak Σ RSS of main + 2 workers

    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["/var/lib/specman"] == "data"
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/etc/specman/registry"]]["secret"]["secretName"] == REGISTRY_SECRET
    assert "subPath" not in str(container["volumeMounts"])  # a subPath mount would never see a rotated Secret

    env = env_entries(container)
    # source and interval: files of the ConfigMap volume, read before every sync (no restart on a change); a
    # stable name (no hash suffix), or an edit would roll the pods instead of reaching the mounted files
    config = one(objects, "ConfigMap", "specman-config")
    assert volumes[mounts[env["SPECMAN_CONFIG_DIR"]["value"]]]["configMap"] == {"name": "specman-config"}
    assert config["data"]["source"].endswith("/" + REPO)
    assert config["data"]["interval"] == "30s"
    assert "SPECMAN_SOURCE" not in env
    assert "SPECMAN_INTERVAL" not in env
    assert env["SPECMAN_DATA_DIR"]["value"] == "/var/lib/specman"
    assert env["SPECMAN_PASSWORD_FILE"]["value"] == "/etc/specman/registry/password"
    assert env["SPECMAN_USERNAME_FILE"]["value"] == "/etc/specman/registry/username"
    registry_volume = volumes[mounts["/etc/specman/registry"]]["secret"]
    assert {item["key"] for item in registry_volume["items"]} == {"username", "password"}
    assert registry_volume["optional"] is True  # a pod restarting while the Secret is deleted still serves
    assert env["TMPDIR"]["value"] == "/tmp"
    assert "SPECMAN_PASSWORD" not in env  # the password stays in the file
    assert "SPECMAN_USERNAME" not in env  # so does the username: both are re-read after a refusal
    if overlay == "single":
        assert "SPECMAN_TLS_CERT" not in env  # the generated private CA
    else:
        assert env["SPECMAN_TLS_CERT"]["value"] == "/etc/specman/tls/tls.crt"
        assert env["SPECMAN_TLS_KEY"]["value"] == "/etc/specman/tls/tls.key"
        tls = volumes[mounts["/etc/specman/tls"]]["secret"]
        assert tls["secretName"] == "specman-tls"
        assert {item["key"] for item in tls["items"]} == {"tls.crt", "tls.key"}

    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in claim["spec"]


def _mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


def test_services_pdb_console_and_network_policy(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["overlays/single"]
    sts = one(objects, "StatefulSet", "specman")
    labels = sts["spec"]["template"]["metadata"]["labels"]

    service = one(objects, "Service", "specman-service")
    assert service["spec"]["ports"] == [{"name": "https", "port": 8443, "targetPort": "https", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= labels.items()
    headless = one(objects, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"

    pdb = one(objects, "PodDisruptionBudget", "specman")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    console = one(objects, "Deployment", "specman-console")
    assert console["spec"]["replicas"] == 1
    assert console["spec"]["strategy"]["type"] == "Recreate"
    container = container_of(console, "console")
    assert container["args"][0] == "console"
    assert container["ports"][0]["containerPort"] == 8444
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = env_entries(container)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in console["spec"]["template"]["spec"]["volumes"]}
    data = volumes[mounts[env["SPECMAN_DATA_DIR"]["value"]]]
    claim = one(objects, "PersistentVolumeClaim", data["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    secrets = volumes[mounts["/etc/specman-console"]]["secret"]
    assert {item["path"] for item in secrets["items"]} == {"admin-password", "service-token"}
    assert env["SPECMAN_ADMIN_PASSWORD_FILE"]["value"] == "/etc/specman-console/admin-password"
    assert env["SPECMAN_SERVICE_TOKEN_FILE"]["value"] == "/etc/specman-console/service-token"
    console_service = one(objects, "Service", "specman-console")
    assert console_service["spec"]["ports"][0]["port"] == 8444

    policy = one(objects, "NetworkPolicy", "specman")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [8443]
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert 53 in egress_ports
    console_policy = one(objects, "NetworkPolicy", "specman-console")
    assert [p["port"] for rule in console_policy["spec"]["ingress"] for p in rule["ports"]] == [8444]


# -- the Dockerfile ----------------------------------------------------------------------------------------------


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, args.strip()))
    return stages


def _dockerfile_args() -> dict[str, str]:
    """The defaults of the Dockerfile's ``ARG``s (a later default may name an earlier ARG)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    args: dict[str, str] = {}
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), value)
    return args


def test_the_dockerfile_contract() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "multi-stage"
    (builder,) = [stage for stage in stages if stage[0][1].endswith(" AS builder")]
    final = stages[-1]
    assert any(i == "RUN" and "uv sync --locked" in a and "--no-dev" in a for i, a in builder)
    # the venv moves between stages unchanged: by default both stages use the same Python image
    defaults = _dockerfile_args()
    assert builder[0][1].split()[0] == "${BUILDER_IMAGE}"
    assert final[0][1] == "${PYTHON_IMAGE}"
    assert defaults["BUILDER_IMAGE"] == defaults["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"
    final_text = "\n".join(f"{i} {a}" for i, a in final)
    for tool in ("uv ", "pip install", "apt-get install", "gcc", "build-essential", "curl", "wget"):
        assert tool not in final_text, f"{tool!r} in the final stage"
    assert not [a for i, a in final if i == "COPY" and "--from" not in a and not a.startswith("deploy/docker/")]
    users = [a for i, a in final if i == "USER"]
    assert users
    assert users[-1].split(":")[0] == "10001"
    assert [a for i, a in final if i == "ENTRYPOINT"] == ['["specman"]']
    assert [a for i, a in final if i == "CMD"][-1].startswith('["serve"')
    (healthcheck,) = [a for i, a in final if i == "HEALTHCHECK"]
    assert "python" in healthcheck
    assert "/readyz" in (ROOT / "deploy/docker/healthcheck.py").read_text()
    labels = " ".join(a for i, a in final if i == "LABEL")
    for label in ("version", "revision", "source", "created"):
        assert f"org.opencontainers.image.{label}=" in labels
    # everything COPY takes from the context is let through by .dockerignore
    allowed = [
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    ]
    for stage in stages:
        for instruction, args in stage:
            if instruction != "COPY" or "--from" in args:
                continue
            for source in shlex.split(args)[:-1]:
                source = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], source).rstrip("/")
                # a directory with something let through counts (deploy/docker: the default, empty wheelhouse)
                assert any(source == a or source.startswith(a + "/") or a.startswith(source + "/") for a in allowed), (
                    f"{source} is ignored"
                )
                assert (ROOT / source).exists(), source


# -- replicas as the StatefulSet runs them ---------------------------------------------------------------------


def _push(registry: Registry, tag: str, files: Mapping[str, bytes], work: Path) -> str:
    archive = work / f"push-{uuid.uuid4().hex[:8]}" / "manifests.tgz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(make_tar(Entry(f"./{path}", data=data) for path, data in sorted(files.items())))
    options = RegistryOptions(username=registry.username, password=registry.password, plain_http=True)
    repo = open_repository(parse_reference(f"{registry.host}/{REPO}"), options)
    try:
        return str(push_artifact(repo, archive, tag).digest)
    finally:
        repo.close()


def _status(replica: ServeProcess) -> Obj:
    with replica.client() as client:
        response = client.get("/_specman/status")
    assert response.status_code == 200, response.text
    result: Obj = response.json()
    return result


def _wait_for(what: str, check: Callable[[], bool], replicas: list[ServeProcess]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        for replica in replicas:
            assert replica.running, f"a replica exited:\n{replica.log_tail()}"
        if time.monotonic() > deadline:
            logs = "\n\n".join(r.log_tail(15) for r in replicas)
            pytest.fail(f"replicas did not converge on {what} within {WAIT} s:\n{logs}")
        time.sleep(0.1)


def _converged(replicas: list[ServeProcess], digests: Mapping[str, str]) -> Callable[[], bool]:
    def check() -> bool:
        return all(_status(r)["tags"] == digests for r in replicas)

    return check


def _same_bytes_everywhere(replicas: list[ServeProcess], paths: list[str]) -> dict[str, bytes]:
    served: dict[str, bytes] = {}
    for path in paths:
        answers = []
        for replica in replicas:
            with replica.client() as client:
                response = client.get(path)
            assert response.status_code == 200, (replica.base, path, response.status_code)
            answers.append((response.content, response.headers["etag"], response.headers["content-type"]))
        assert len(set(answers)) == 1, f"{path}: replicas differ: {[(len(b), e, t) for b, e, t in answers]}"
        served[path] = answers[0][0]
        etag = answers[0][1]
        for replica in replicas:  # each replica's ETag is valid on the others (a client moving between pods)
            with replica.client() as client:
                assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    return served


@pytest.fixture
def replicas(
    rendered: dict[str, list[Obj]],
    registry_factory: RegistryFactory,
    serve_factory: ServeFactory,
    certs: Certs,
    tmp_path: Path,
) -> tuple[Registry, list[ServeProcess]]:
    """overlays/ha's three replicas: one certificate (the Secret specman-tls) for all, each its own data dir."""
    objects = copy.deepcopy(rendered["overlays/ha"])
    sts = one(objects, "StatefulSet", "specman")
    assert sts["spec"]["replicas"] == 3
    container = container_of(sts, "specman")
    assert container["args"] == ["serve"]  # everything else comes from the environment

    registry = registry_factory("htpasswd", tls=False, users={"robot": ROBOT_PASSWORD})
    # the operator's ConfigMap: the local registry over plain http, a short interval so the test need not wait
    config = one(objects, "ConfigMap", "specman-config")["data"]
    config.update({"source": f"{registry.host}/{REPO}", "interval": "1s", "plain-http": "true"})
    secrets = {
        REGISTRY_SECRET: {"username": "robot", "password": ROBOT_PASSWORD},
        "specman-tls": {"tls.crt": certs.server_cert.read_text(), "tls.key": certs.server_key.read_text()},
    }
    started: list[ServeProcess] = []
    for index in range(sts["spec"]["replicas"]):
        sandbox = PodSandbox(objects, sts, "specman", tmp_path / f"specman-{index}", secrets, f"specman-{index}")
        env = sandbox.env()
        assert Path(env["SPECMAN_USERNAME_FILE"]).read_text() == "robot"
        assert f"specman-{index}.specman-headless.hubble-system.svc" in env["SPECMAN_TLS_SAN"].split()
        assert Path(env["SPECMAN_PASSWORD_FILE"]).read_text() == ROBOT_PASSWORD
        assert Path(env["SPECMAN_TLS_CERT"]).is_file()
        assert (Path(env["SPECMAN_CONFIG_DIR"]) / "source").read_text() == config["source"]
        process = serve_factory(
            container["args"][1:],
            Path(env["SPECMAN_DATA_DIR"]),
            env=env,
            workers=int(env["SPECMAN_WORKERS"]),
            ca=certs.ca_cert,
            wait=False,
        )
        started.append(process)
    for process in started:
        process.wait_healthy(WAIT)
    return registry, started


def test_three_replicas_converge_on_the_registry(
    replicas: tuple[Registry, list[ServeProcess]], certs: Certs, wrong_ca: Path, tmp_path: Path
) -> None:
    registry, servers = replicas
    first = {
        "cloud-types/index.json": b'{"schemaVersion": 1, "clouds": []}\n',
        "packs/a.json": b'{"name": "a", "version": 1}\n',
        "packs/shared.json": b"from 4.5.13\n" * 100,
    }
    second = {"packs/b.json": b'{"name": "b"}\n', "packs/shared.json": b"from 4.5.15\n" * 90}
    digests = {
        "4.5.13": _push(registry, "4.5.13", first, tmp_path),
        "4.5.15": _push(registry, "4.5.15", second, tmp_path),
    }
    _wait_for("4.5.13 + 4.5.15", _converged(servers, digests), servers)
    paths = ["/cloud-types/index.json", "/packs/a.json", "/packs/b.json", "/packs/shared.json"]
    served = _same_bytes_everywhere(servers, paths)
    assert served["/packs/shared.json"] == second["packs/shared.json"]  # the later version wins everywhere
    for replica in servers:
        with replica.client() as client:
            assert client.get("/_specman/readyz").status_code == 200
        # with --config-dir the status names the directory, not the repository it holds (reported in issue 7)
        assert _status(replica)["source"] == f"config-dir:{replica.data_dir.parent / 'config'}"

    third = {"packs/shared.json": b"from 0.0.0\n", "packs/c.json": b'{"name": "c"}\n'}
    digests["0.0.0"] = _push(registry, "0.0.0", third, tmp_path)
    # 4.5.16 moves past 4.5.15: a new tag whose files win the merge
    fourth = {"packs/shared.json": b"from 4.5.16\n" * 3, "packs/a.json": b'{"name": "a", "version": 2}\n'}
    digests["4.5.16"] = _push(registry, "4.5.16", fourth, tmp_path)
    _wait_for("a new tag", _converged(servers, digests), servers)
    served = _same_bytes_everywhere(servers, [*paths, "/packs/c.json", "/_specman/versions/0.0.0/packs/shared.json"])
    assert served["/packs/shared.json"] == fourth["packs/shared.json"]
    assert served["/packs/a.json"] == fourth["packs/a.json"]
    assert served["/_specman/versions/0.0.0/packs/shared.json"] == third["packs/shared.json"]
    for replica in servers:  # no secret in any log
        assert ROBOT_PASSWORD not in replica.log_text()
    _check_image_healthcheck(servers, certs, wrong_ca, tmp_path)


def _check_image_healthcheck(servers: list[ServeProcess], certs: Certs, wrong_ca: Path, tmp_path: Path) -> None:
    """deploy/docker/healthcheck.py (the Dockerfile's HEALTHCHECK: /readyz) with a replica's SPECMAN_* variables."""
    replica = servers[0]
    script = ROOT / "deploy/docker/healthcheck.py"
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPECMAN_")}
    env = {**base, "SPECMAN_DATA_DIR": str(replica.data_dir), "SPECMAN_LISTEN": f"0.0.0.0:{replica.port}"}

    def healthcheck(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script)], env={**env, **extra}, capture_output=True, text=True, timeout=60, check=False
        )

    # the operator's certificate (overlays/tls, overlays/ha): the server answers
    ok = healthcheck(SPECMAN_TLS_CERT=str(certs.server_cert))
    assert ok.returncode == 0, ok.stderr
    # the generated CA (overlays/single): verified against DATA/tls/ca.crt as localhost; another CA fails
    for ca, code in ((certs.ca_cert, 0), (wrong_ca, 1)):
        data = tmp_path / f"healthcheck-{code}"
        (data / "tls").mkdir(parents=True)
        shutil.copy(ca, data / "tls" / "ca.crt")
        result = healthcheck(SPECMAN_DATA_DIR=str(data))
        assert result.returncode == code, result.stderr
    assert "certificate" in result.stderr.lower()
    replica.stop()
    down = healthcheck(SPECMAN_TLS_CERT=str(certs.server_cert))
    assert down.returncode == 1
