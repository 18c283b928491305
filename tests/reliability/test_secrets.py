"""Case 6 — secrets: run the commands and services with known passwords and tokens, then search for them.

Every secret is distinct and known: the registry password (and its ``user:password`` Basic form), a wrong
password tried once, the console admin password, the SCAR and pack registry passwords stored in the console,
the console's service token and a session token, serve's Basic auth password and notify token — and ``migrate``
is run with all of them at once.  Searched: every command's stdout and stderr, the services' logs,
``/proc/*/cmdline`` of every process (sampled while the services run and after every command), every file of
the data dirs (the console database and its WAL included) and of the pulled tree.  Allowed: the docker
``config.json`` that ``login`` writes, as docker does.

The registry password and the console admin password are made for this test alone: the suite's shared fixture
passwords also appear, legitimately, on the command lines of other tests' tools (skopeo ``--dest-creds``, curl
in the documentation's script) running at the same time on the other xdist worker.
"""

from __future__ import annotations

import base64
import os
import secrets as random_secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RegistryFactory, ServeFactory
from tests.fixtures.console import EXAMPLES, start_console
from tests.fixtures.registry import Registry
from tests.reliability.conftest import Results, Scale, scales
from tests.test_cli import run
from tests.test_serve_process import _files, _paths, _write_tree

WRONG = "Wr0ng-Passw0rd-tried-once"
SCAR_PASSWORD = "Scar-Secret-pw-for-the-scan"
PACK_PASSWORD = "Pack-Registry-pw-for-the-scan"
SERVICE_TOKEN = "Service-Token-for-the-scan-0042"
NOTIFY_TOKEN = "Notify-Token-for-the-scan-0043"
BASIC_PASSWORD = "Basic-Auth-pw-for-the-scan"


def _cmdlines() -> str:
    """Every process's command line, now."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return "\n".join(found)


def _files_under(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


@pytest.mark.timeout(900)
@pytest.mark.parametrize("scale", scales(Scale("short", 1), Scale("long", 3)))
def test_secrets_appear_nowhere(
    registry_factory: RegistryFactory,
    serve_factory: ServeFactory,
    docker_config: Path,
    tmp_path: Path,
    results: Results,
    scale: Scale,
) -> None:
    result = results("6. secrets in outputs, logs, cmdlines, data dirs, database", scale.name)
    unique = random_secrets.token_hex(8)
    tls_registry: Registry = registry_factory("htpasswd", users={"alice": f"Registry-pw-{unique}"})
    admin_password = f"Admin-pw-{unique}"
    assert tls_registry.username and tls_registry.password
    user, password = tls_registry.username, tls_registry.password
    secrets = {
        "registry password": password,
        "registry Basic credentials": base64.b64encode(f"{user}:{password}".encode()).decode(),
        "wrong password": WRONG,
        "console admin password": admin_password,
        "SCAR password": SCAR_PASSWORD,
        "pack registry password": PACK_PASSWORD,
        "service token": SERVICE_TOKEN,
        "notify token": NOTIFY_TOKEN,
        "serve Basic auth password": BASIC_PASSWORD,
    }
    texts: dict[str, str] = {}  # where -> text searched
    ca = ["--ca-file", str(tls_registry.ca_file)]
    outside = tmp_path / "secret-files"  # the mounted Secrets: read by specman, never searched
    outside.mkdir()
    (outside / "password").write_text(password + "\n")
    (outside / "basic").write_text(f"reader:{BASIC_PASSWORD}\n")
    (outside / "notify").write_text(NOTIFY_TOKEN + "\n")
    (outside / "service").write_text(SERVICE_TOKEN + "\n")

    for trial in range(scale.trials):
        repo = f"{tls_registry.host}/spectro-packs/spectro-manifests/manifest"  # migrate pushes there too
        tree = _write_tree(tmp_path / f"tree-{trial}", _files("S", _paths("s", 10)))
        commands = {
            "login": (["login", tls_registry.host, "-u", user, "--password-stdin", *ca], password + "\n"),
            "login (wrong password)": (["login", tls_registry.host, "-u", user, "--password-stdin", *ca], WRONG),
            "push": (["push", str(tree), f"{repo}:1.0.0", *ca], None),
            "tags": (["tags", repo, *ca], None),
            "pull": (["pull", f"{repo}:1.0.0", str(tmp_path / f"pulled-{trial}"), *ca], None),
            "sync": (
                [
                    "sync",
                    repo,
                    "--data-dir",
                    str(tmp_path / f"sync-{trial}"),
                    "--once",
                    "-u",
                    user,
                    "--password-stdin",
                    *ca,
                ],
                password,
            ),
            "tags (wrong password)": (["tags", repo, "-u", user, "--password-stdin", *ca], WRONG),
        }
        for label, (args, stdin) in commands.items():
            proc = run(*args, stdin=stdin)
            assert (proc.returncode == 0) == ("wrong" not in label), (label, proc.returncode, proc.stderr[-300:])
            texts[f"{label} output"] = proc.stdout + proc.stderr
            texts[f"cmdlines after {label}"] = _cmdlines()
        # the services, with every secret they take
        server = serve_factory(
            [repo, "-u", user, "--password-file", str(outside / "password"), *ca],
            tmp_path / f"serve-{trial}",
            extra_args=["--basic-auth-file", str(outside / "basic"), "--notify-token-file", str(outside / "notify")],
        )
        console = start_console(
            tmp_path / f"console-{trial}",
            "--service-token-file",
            str(outside / "service"),
            admin_password=admin_password,
        )
        try:
            texts["cmdlines while serving"] = _cmdlines()
            with server.client() as c:
                c.get("/s00/s0/f00000.json", auth=("reader", BASIC_PASSWORD))
                c.get("/s00/s0/f00000.json", auth=("reader", WRONG))
                c.post("/_specman/notify", headers={"Authorization": f"Bearer {NOTIFY_TOKEN}"}, json={"events": []})
                c.post("/_specman/notify", headers={"Authorization": f"Bearer {WRONG}"}, json={"events": []})
            with console.client() as c:
                c.post("/v1/auth/syslogin", json={"username": "admin", "password": WRONG})
            token = console.login(admin_password)
            secrets[f"session token {trial}"] = token
            with console.client(token) as c:
                scar = {"endpoint": "https://scar.example.com", "username": "scar", "password": SCAR_PASSWORD}
                assert c.put("/v1/system/config/scar", json=scar).status_code == 204
                pack = {"name": f"r{trial}", "endpoint": "r.example.com", "username": "u", "password": PACK_PASSWORD}
                c.post("/v1/registries/oci", json=pack)
                c.get("/v1/system/config/scar")
                c.get("/v1/registries/oci")
            with httpx.Client(base_url=console.base, verify=console.verify(), trust_env=False) as c:
                c.get("/v1/system/specman/source", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"})
            texts["cmdlines while the console runs"] = _cmdlines()
            # the whole migration, with every secret it takes from files and the environment
            source = _write_tree(tmp_path / f"migrate-{trial}", _files("M", _paths("m", 5)))
            shutil.copytree(EXAMPLES / "cloud-types", source / "cloud-types")  # the jobs' data: they succeed
            (outside / "console").write_text(admin_password + "\n")
            migrate = [
                *("migrate", "--from", str(source), "--to", f"{repo}:2.0.{trial}", "--console", console.base),
                *("--console-ca-file", str(console.ca), "--console-password-file", str(outside / "console")),
                *("--specman", server.base, "--specman-ca-file", str(server.ca), "--specman-username", "reader"),
                *("--notify-token-file", str(outside / "notify"), "-u", user, "--password-file"),
                *(str(outside / "password"), *ca, "--yes", "--json"),
            ]
            env = {"SPECMAN_SPECMAN_PASSWORD": BASIC_PASSWORD, "SPECMAN_FROM_PASSWORD": SCAR_PASSWORD}
            proc = run(*migrate, env=env)
            assert proc.returncode == 0, proc.stderr[-2000:]
            texts["migrate output"] = proc.stdout + proc.stderr
            texts["cmdlines after migrate"] = _cmdlines()
            with console.client(token) as c:
                c.get("/v1/system/config/scar")
        finally:
            server.stop()
            console.stop()
        texts["serve log"] = server.log_text()
        texts["console log"] = console.log()
        for root in (
            tmp_path / f"serve-{trial}",
            tmp_path / f"sync-{trial}",
            tmp_path / f"console-{trial}",
            tmp_path / f"pulled-{trial}",
        ):
            for path in _files_under(root):
                texts[f"file {path.relative_to(tmp_path)}"] = path.read_bytes().decode("latin-1")
        config = (docker_config / "config.json").read_text()
        assert secrets["registry Basic credentials"] in config  # the one allowed place (and the search finds it)
        texts["logout output"] = (lambda p: p.stdout + p.stderr)(run("logout", tls_registry.host))
        for where, text in texts.items():
            leaked = [name for name, secret in secrets.items() if secret in text]
            result.trial(not leaked, f"{', '.join(leaked)} in {where}")
    result.figures = {
        "secrets": len(secrets),
        "places searched": len(texts),
        "allowed": "docker config.json (login)" if config else "-",
    }
    result.check()
