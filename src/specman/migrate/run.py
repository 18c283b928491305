"""``Migration``: the whole SCAR → OCI move, checked at every step, undone when the switch does not hold.

    preflight ─▶ push ─▶ register ─▶ served ─▶ parity ─▶ switch ─▶ jobs ─┬─▶ done
    (no change)  (skipped if     (console,   (notify,   (stop here  (PUT    │
                  REF has it)     validated)  wait)      on a diff)  scar)   └─▶ rollback: the previous SCAR back

Nothing is changed before every preflight check passed; nothing the clusters read (the SCAR endpoint) is changed
before the parity proof held; after the switch, a failed job puts the previous SCAR configuration back (unless
``rollback`` is off) and says so.  ``summary`` records what happened at each step, with durations, for the
terminal and for ``--json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from specman.console.client import ConsoleClient
from specman.errors import MigrationError, SpecmanError
from specman.migrate.checks import Checks
from specman.migrate.consoleops import (
    JOBS,
    JobResult,
    ScarConfig,
    register_registry,
    registry_body,
    restore_scar,
    run_job,
    switch_scar,
)
from specman.migrate.endpoint import SpecmanEndpoint
from specman.migrate.parallel import helper_peak_rss
from specman.migrate.parity import prove_parity
from specman.migrate.preflight import (
    Preflight,
    check_cloud_data,
)
from specman.migrate.reporter import Reporter
from specman.migrate.source import Source, UrlSource
from specman.oci import push_artifact
from specman.oci.client import RemoteRepository
from specman.oci.manifest import OCI_MANIFEST, Descriptor
from specman.oci.repository import RegistryOptions, Target
from specman.signature.keys import PrivateKey
from specman.signature.signing import sign_descriptor

__all__ = ["Migration", "MigrationPlan"]


@dataclass
class MigrationPlan:
    source: Source
    target: Target
    registry: RegistryOptions
    console: ConsoleClient
    console_user: str
    console_password: str = field(repr=False)
    specman: SpecmanEndpoint
    tag: str
    work_dir: Path
    notify_token: str | None = field(default=None, repr=False)
    scar_password: str | None = field(default=None, repr=False)  # the current SCAR's, to put it back
    rollback: bool = True
    dry_run: bool = False
    timeout: float = 300.0
    registry_name: str = "spectro-manifests"
    processes: int = 1  # processes fetching over HTTP (the copy from a SCAR URL, the parity proof)
    sign_key: PrivateKey | None = field(default=None, repr=False)  # sign the pushed version (cosign .sig tag)


class Migration:
    def __init__(self, plan: MigrationPlan, ui: Reporter, *, confirm: Callable[[str], bool] | None = None) -> None:
        self.plan = plan
        self.ui = ui
        self.confirm = confirm
        self.summary: dict[str, Any] = {
            "ok": False,
            "source": plan.source.display,
            "reference": f"{plan.target.repository.display}:{plan.tag}",
            "endpoint": plan.specman.url,
            "console": plan.console.base_url,
            "dryRun": plan.dry_run,
            "durations": {},
        }
        self.sizes: dict[str, int] = {}
        self.scar_before: ScarConfig | None = None
        self.registry_values: dict[str, Any] = {}  # what preflight had the console check, registered after the push
        self.repository = plan.target.repository

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        except SpecmanError as exc:
            self.summary["failedPhase"] = name
            self.summary["error"] = str(exc)
            raise
        finally:
            self.summary["durations"][name] = round(time.monotonic() - started, 3)

    @property
    def remote(self) -> RemoteRepository | None:
        return self.repository if isinstance(self.repository, RemoteRepository) else None

    # -- the steps ----------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            with self._phase("preflight"):
                self.preflight()
            if self.plan.dry_run:
                self._describe_plan()
                self.summary["ok"] = True
                return self.summary
            if self.confirm is not None and not self.confirm(self._plan_text()):
                raise MigrationError("stopped before any change: not confirmed")
            with self._phase("push"):
                digest = self.push()
            if self.remote is not None:
                with self._phase("register"):
                    self.register()
            with self._phase("served"):
                self.wait_served(digest)
            with self._phase("parity"):
                self.parity()
            with self._phase("switch"):
                self.switch()
            self.summary["ok"] = True
            return self.summary
        finally:
            self.summary["durations"]["total"] = round(time.monotonic() - started, 3)
            if helper_peak_rss():
                self.summary["helperPeakRssMiB"] = round(helper_peak_rss() / (1 << 20), 1)

    def preflight(self) -> None:
        plan, check = self.plan, Checks(self)
        checks = Preflight(lambda c: self.ui.status(f"  {c.line()}"))
        self.ui.status("Preflight (nothing is changed yet)")
        has_source = checks.run("source", check.source, auth_hint=" (check --from-username and SPECMAN_FROM_PASSWORD)")
        if has_source:
            checks.run("cloud types", lambda: check_cloud_data(plan.source))
        else:
            checks.skip("cloud types", "the source cannot be read")
        checks.run("registry", check.registry, auth_hint=" (check the credentials for --to: they need push rights)")
        if checks.run("console", check.console):
            if self.remote is not None:
                checks.run("console registry", check.console_registry)
        else:
            checks.skip("console registry", "no console session")
        checks.run("specman", check.specman, hint=" (check --specman and --specman-ca-file)")
        if has_source:
            checks.run("disk", check.disk)
        else:
            checks.skip("disk", "the source size is unknown")
        self.summary["preflight"] = [c.__dict__ for c in checks.checks]
        if not checks.ok:
            first = checks.failures()[0]
            count = len(checks.failures())
            raise MigrationError(
                f"preflight failed ({count} problem{'s' if count > 1 else ''}, nothing was changed): {first.name}: "
                f"{first.message}",
                hint=first.hint,
            )

    def registry_body(self) -> dict[str, Any]:
        remote = self.remote
        assert remote is not None
        options = self.plan.registry
        ecr = options.provider_name(remote.client.host) == "aws"
        creds = None if ecr else options.credentials_for(remote.client.host)
        ca = Path(options.ca_file).read_text(encoding="ascii") if options.ca_file else ""
        scheme = "http" if options.plain_http else "https"
        return registry_body(
            f"{scheme}://{remote.client.host}",
            creds.username if creds else "",
            creds.password if creds else None,
            ca,
            options.insecure,
            auth_type="ecr" if ecr else "basic",
        )

    def _plan_text(self) -> str:
        plan = self.plan
        before = self.scar_before.endpoint if self.scar_before else "not configured"
        return (
            f"Migrate {len(self.sizes)} files from {plan.source.display} to {self.repository.display}:{plan.tag}, "
            f"then switch the console's SCAR from {before} to {plan.specman.url}?"
        )

    def _describe_plan(self) -> None:
        self.ui.status("Dry run: nothing was changed. The migration would:")
        existing = self.summary.get("existingDigest")
        self.ui.status(
            f"  push {len(self.sizes)} files to {self.repository.display}:{self.plan.tag}"
            + (" (skipped if its content is already there)" if existing else "")
        )
        if self.remote is not None:
            self.ui.status(f"  register {self.remote.client.host} in the console with 'Contains Spectro Manifests'")
        self.ui.status(f"  wait until {self.plan.specman.url} serves it, prove every file identical")
        self.ui.status(f"  switch the SCAR to {self.plan.specman.url} and run {', '.join(JOBS)}")

    def push(self) -> str:
        plan = self.plan
        with self.ui.progress() as start:
            total = sum(s for s in self.sizes.values() if s >= 0)
            advance = start("copy from the SCAR", total) if isinstance(plan.source, UrlSource) else None
            tree = plan.source.materialize(plan.work_dir, advance)
            pushed = push_artifact(
                self.repository, tree, plan.tag, start_progress=start, tmp_dir=plan.work_dir, reuse=True
            )
        self.summary.update(digest=pushed.digest, pushed=not pushed.reused, files=pushed.files)
        self.summary["layer"] = {"digest": pushed.layer.digest, "size": pushed.layer.size}
        if pushed.reused:
            self.ui.status(
                f"{self.repository.display}:{plan.tag} already has this content ({pushed.digest}): not pushed"
            )
        else:
            self.ui.status(f"Pushed {self.repository.display}:{plan.tag} digest {pushed.digest}")
        if plan.sign_key is not None:  # also when reused: the same payload replaces its own layer, nothing piles up
            subject = Descriptor(OCI_MANIFEST, pushed.digest, len(pushed.manifest))
            signed = sign_descriptor(self.repository, subject, plan.sign_key, reference=self.repository.display)
            self.summary["signature"] = {"format": signed.format, "tag": signed.location}
            self.ui.status(f"Signed {pushed.digest} ({signed.location})")
        return pushed.digest

    def register(self) -> None:
        registration = register_registry(self.plan.console, self.registry_values, name=self.plan.registry_name)
        self.summary["registry"] = registration.__dict__
        verb = "Added" if registration.created else "Updated"
        moved = f" (the flag was moved from {', '.join(registration.unflagged)})" if registration.unflagged else ""
        self.ui.status(
            f"{verb} registry {registration.name!r} in the console with 'Contains Spectro Manifests'{moved}; "
            f"the console validated it ({len(registration.checks)} checks passed)"
        )

    def wait_served(self, digest: str) -> None:
        plan = self.plan
        if plan.notify_token:
            name = self.remote.name if self.remote is not None else self.repository.display
            taken = plan.specman.notify(plan.notify_token, name, plan.tag, digest)
            self.ui.status(
                "Notified specman" if taken else "specman did not take the notification: waiting for its sync"
            )
        else:
            self.ui.status(f"Waiting for specman's next sync (up to {plan.timeout:.0f} s)")
        seconds = plan.specman.wait_served(plan.tag, digest, plan.timeout, report=self.ui.status)
        self.ui.status(f"specman serves {plan.tag} at {digest} ({seconds:.2f} s)")

    def parity(self) -> None:
        plan = self.plan
        total = sum(s for s in self.sizes.values() if s >= 0)
        with self.ui.progress() as start:
            advance_source, advance = start("read the source again", total), start("fetch from specman", total)
            served, version = plan.specman.tree(), plan.specman.version_tree(plan.tag)
            try:
                report = prove_parity(
                    lambda: plan.source.digests(advance_source),
                    self.sizes,
                    served,
                    version,
                    progress=advance,
                    processes=plan.processes,
                )
            finally:
                served.close()
                version.close()
        self.summary["parity"] = report.as_json()
        self.summary["bytes"] = report.bytes
        if not report.ok:
            raise MigrationError(f"parity proof failed, the SCAR was not switched: {report.summary()}")
        self.ui.status(f"Parity proof: {report.summary()} over HTTPS from {plan.specman.url}")

    def switch(self) -> None:
        plan = self.plan
        specman = plan.specman
        switch_scar(plan.console, specman.url, specman.ca_pem, specman.username or "", specman.password or "")
        self.summary["scarAfter"] = plan.specman.url
        self.ui.status(f"Switched the console's SCAR to {plan.specman.url}; running the sync jobs")
        try:
            results = [run_job(plan.console, job, plan.timeout) for job in JOBS]
        except (KeyboardInterrupt, SpecmanError) as exc:  # stopped or cut off while the jobs ran: not proven
            self._after_failed_switch([JobResult("jobs", "interrupted", 0.0, error=str(exc) or type(exc).__name__)])
        self.summary["jobs"] = [r.__dict__ for r in results]
        for r in results:
            self.ui.status(f"  {r.name}: {r.state} in {r.seconds:.2f} s" + (f" ({r.error})" if r.error else ""))
        failed = [r for r in results if not r.ok]
        if failed:
            self._after_failed_switch(failed)

    def _after_failed_switch(self, failed: list[JobResult]) -> NoReturn:
        plan = self.plan
        what = "; ".join(f"{r.name} {r.state}: {r.error}" for r in failed)
        if not plan.rollback:
            raise MigrationError(f"the sync jobs failed after the switch (kept: --no-rollback): {what}")
        if self.scar_before is None:
            raise MigrationError(
                f"the sync jobs failed after the switch and there was no previous SCAR configuration to restore: {what}"
            )
        try:
            restore_scar(plan.console, self.scar_before, plan.scar_password or "")
        except SpecmanError as exc:
            self.summary["rolledBack"] = False
            raise MigrationError(
                f"the sync jobs failed after the switch: {what}; restoring the previous SCAR endpoint "
                f"{self.scar_before.endpoint} failed too ({exc}): the console still points at {plan.specman.url}"
            ) from None
        self.summary["rolledBack"] = True
        self.summary["scarAfter"] = self.scar_before.endpoint
        raise MigrationError(
            f"the sync jobs failed after the switch: {what}; the previous SCAR endpoint "
            f"{self.scar_before.endpoint} was restored"
        )
