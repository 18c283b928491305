"""``specman serve`` as the StatefulSet's container runs it (issue 7): the pod's UID/GID, no capabilities, no new
privileges, everything read-only but the data volume and the ``tmp`` emptyDir — and it syncs and serves.

The command is the image's (``ENTRYPOINT ["specman"]`` + the container's ``args``), the environment exactly the
image's ``ENV`` plus the container's ``env`` (ConfigMap and Secret references resolved, mount paths mapped to
local directories; ``PATH`` names this venv instead of ``/opt/specman``, ``HOME`` is the image user's home, the
data volume), with one change: ``SPECMAN_LISTEN`` is a free 127.0.0.1 port. Volumes as the kubelet makes them:
the data volume group-owned by ``fsGroup`` (setgid, group-writable), the emptyDir mode 0777, Secret files 0440
group ``fsGroup``. The registry is a real htpasswd one; the server certificate is the one specman generates on
its volume (overlays/single). Tests run as root: ``tests/fixtures/sandbox.py`` builds the sandbox (a private mount
namespace, ``setpriv``); without the rights it skips, saying why.
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from specman.oci import RegistryOptions, open_repository, parse_reference, push_artifact
from tests.conftest import RegistryFactory
from tests.fixtures.archives import Entry, make_tar
from tests.fixtures.kube import Obj, PodSandbox, image_env, one, render
from tests.fixtures.registry import Registry, free_port
from tests.fixtures.sandbox import Plan, available, sandbox_command
from tests.fixtures.serve import ServeProcess, _launch, poll

REPO = "spectro-packs/spectro-manifests/manifest"
SECRET = "spectro-manifest-registry-secrets"
WAIT = 60.0


@pytest.fixture
def pod_root() -> Iterator[Path]:
    """A directory the pod's UID can traverse (pytest's own temp dirs are 0700 root)."""
    root = Path(tempfile.mkdtemp(prefix="specman-nonroot-"))
    os.chmod(root, 0o755)  # noqa: S103 - the pod UID must traverse it
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _push(registry: Registry, tag: str, files: dict[str, bytes], work: Path) -> None:
    archive = work / f"push-{tag}" / "manifests.tgz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(make_tar(Entry(f"./{path}", data=data) for path, data in sorted(files.items())))
    repo = open_repository(
        parse_reference(f"{registry.host}/{REPO}"),
        RegistryOptions(username=registry.username, password=registry.password, plain_http=True),
    )
    try:
        push_artifact(repo, archive, tag)
    finally:
        repo.close()


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _mount_options(pid: int) -> dict[str, set[str]]:
    options = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        options[fields[4]] = set(fields[5].split(","))
    return options


def test_serve_runs_as_the_pods_user_on_a_read_only_filesystem(
    registry_factory: RegistryFactory, pod_root: Path, tmp_path: Path
) -> None:
    reason = available()
    if reason is not None:
        pytest.skip(reason)
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is missing: apt-get install -y kubernetes-client", pytrace=False)
    objects: list[Obj] = copy.deepcopy(render("overlays/single"))
    sts = one(objects, "StatefulSet", "specman")
    pod_security = sts["spec"]["template"]["spec"]["securityContext"]
    uid, gid, fs_group = pod_security["runAsUser"], pod_security["runAsGroup"], pod_security["fsGroup"]
    assert uid != 0

    registry = registry_factory("htpasswd", tls=False, users={"robot": "robot-pw"})
    _push(registry, "4.5.13", {"packs/a.json": b'{"a": 1}\n', "shared.json": b"4.5.13\n"}, tmp_path)
    config = one(objects, "ConfigMap", "specman-config")["data"]
    config.update({"source": f"{registry.host}/{REPO}", "interval": "1s", "plain-http": "true"})
    secrets = {SECRET: {"username": "robot", "password": "robot-pw"}}
    pod = PodSandbox(objects, sts, "specman", pod_root / "specman-0", secrets, gid=fs_group)
    data, tmp = pod.mounts["/var/lib/specman"], pod.mounts["/tmp"]
    os.chown(data, 0, fs_group)
    os.chmod(data, 0o2770)  # noqa: S103 - fsGroup: group-owned, setgid, group-writable
    os.chmod(tmp, 0o777)  # noqa: S103 - an emptyDir

    port = free_port()
    env = {**image_env(), **pod.env(), "SPECMAN_LISTEN": f"127.0.0.1:{port}"}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    env["HOME"] = str(data)  # the image user's home directory
    container = sts["spec"]["template"]["spec"]["containers"][0]
    argv = [str(Path(sys.executable).parent / "specman"), *container["args"]]  # ENTRYPOINT + args
    plan = Plan(argv, env, uid, gid, writable=[str(data), str(tmp)], reveal=_reveal(), stub_root=str(pod_root))
    server: ServeProcess = _launch(sandbox_command(plan), data, port, True, None, None)
    try:
        server.wait_healthy(WAIT)
        with server.client() as client:  # verified against the CA specman generated on its volume
            assert poll(lambda: client.get("/_specman/readyz").status_code == 200, WAIT), server.log_tail()
            assert client.get("/packs/a.json").content == b'{"a": 1}\n'
            _push(registry, "4.5.15", {"shared.json": b"4.5.15\n"}, tmp_path)
            assert poll(lambda: client.get("/shared.json").content == b"4.5.15\n", WAIT), server.log_tail()
            assert set(client.get("/_specman/status").json()["tags"]) == {"4.5.13", "4.5.15"}

        workers = _children(server.pid)
        assert len(workers) == int(env["SPECMAN_WORKERS"])
        for pid in (server.pid, *workers):
            status = _proc_status(pid)
            assert status["Uid"].split() == [str(uid)] * 4, status["Uid"]
            assert status["Gid"].split() == [str(gid)] * 4, status["Gid"]
            assert status["Groups"] == ""
            assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0
            assert status["NoNewPrivs"] == "1"
            mounts = _mount_options(pid)
            writable = {str(data.resolve()), str(tmp.resolve())}
            assert all("rw" in mounts[point] for point in writable)
            assert "ro" in mounts["/"]
            for point, options in mounts.items():  # everything else read-only but the kernel's and the runtime's
                if point not in writable and not point.startswith(("/proc", "/sys", "/dev")):
                    assert "ro" in options, point
        assert (data / "tls" / "ca.crt").stat().st_uid == uid
        assert any(tmp.iterdir()), "the run directory goes under TMPDIR (the emptyDir)"
    finally:
        code = server.stop()
    assert code == 0, server.log_tail()
    log = server.log_text()
    for problem in ("Read-only file system", "Permission denied", "Traceback"):
        assert problem not in log, server.log_tail()
    assert not list(tmp.iterdir()), "the run directory is removed at exit"


def _reveal() -> dict[str, list[str]]:
    """Directories on the way to this Python that the pod's UID cannot traverse (pyenv's under 0700 /root)."""
    reveal: dict[str, list[str]] = {}
    for path in (Path(sys.executable).resolve(), Path(__file__).resolve()):
        for parent in reversed(path.parents):
            if parent != parent.parent and not os.stat(parent).st_mode & 0o001:
                child = path.relative_to(parent).parts[0]
                if child not in reveal.setdefault(str(parent), []):
                    reveal[str(parent)].append(child)
                break
    return reveal
