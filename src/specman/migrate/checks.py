"""The preflight checks of ``migrate``, one method each: they read what the migration needs and note what they
learn on it (the source's sizes, the tag's digest, the SCAR configuration to put back); ``Migration.preflight``
runs them in order (``Preflight``: one line each, failures do not hide each other).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from specman.console.registries import SPECTRO_REPOSITORY
from specman.errors import SpecmanError
from specman.migrate.consoleops import ScarConfig, precheck_registry
from specman.migrate.preflight import check_reserved, disk_needed, free_bytes, same_source
from specman.migrate.source import UrlSource

if TYPE_CHECKING:
    from specman.migrate.run import Migration

__all__ = ["Checks"]


@dataclass
class Checks:
    """The checks of one ``Migration`` (each returns its ``ok`` line or raises what is wrong)."""

    migration: Migration

    def source(self) -> str:
        m = self.migration
        m.sizes = m.plan.source.inventory()
        if not m.sizes:
            raise SpecmanError(f"{m.plan.source.display} has no files")
        check_reserved(m.sizes)
        known = sum(s for s in m.sizes.values() if s >= 0)
        return f"{m.plan.source.display}: {len(m.sizes)} files, {known} bytes"

    def registry(self) -> str:
        m = self.migration
        m.repository.check_push()
        if m.remote is not None and m.remote.name != SPECTRO_REPOSITORY:
            raise SpecmanError(
                f"the console reads the manifests from {SPECTRO_REPOSITORY} only; push there (--to HOST/"
                f"{SPECTRO_REPOSITORY}:{m.plan.tag})"
            )
        try:
            existing = m.repository.resolve(m.plan.tag).digest
        except SpecmanError:
            existing = None
        m.summary["existingDigest"] = existing
        where = f"{m.repository.display}:{m.plan.tag}"
        return f"{where}: push allowed" + (f" (the tag exists: {existing})" if existing else " (new tag)")

    def console(self) -> str:
        m = self.migration
        m.plan.console.login(m.plan.console_user, m.plan.console_password)
        m.scar_before = ScarConfig.read(m.plan.console)
        before = m.scar_before
        m.summary["scarBefore"] = before.endpoint if before else None
        if before and before.password_set and m.plan.rollback and m.plan.scar_password is None:
            raise SpecmanError(
                "the current SCAR endpoint has a password: give it (SPECMAN_FROM_PASSWORD or "
                "--from-password-file) so that a failed switch can be undone, or use --no-rollback"
            )
        now = before.endpoint if before else "not configured"
        return f"logged in to {m.plan.console.base_url} as {m.plan.console_user}; SCAR now: {now}"

    def console_registry(self) -> str:
        m = self.migration
        m.registry_values = m.registry_body()
        precheck_registry(m.plan.console, m.registry_values)
        return "the console reaches the registry and its credentials are accepted"

    def specman(self) -> str:
        m = self.migration
        status = m.plan.specman.check()
        same = same_source(status, m.repository.display)
        if same is False:
            raise SpecmanError(
                f"specman at {m.plan.specman.url} syncs {status.get('source')}, not {m.repository.display}"
            )
        served = (status.get("tags") or {}).get(m.plan.tag)
        note = " (it will take it from the console)" if same is None else ""
        return f"{m.plan.specman.url} is up and syncs this repository{note}" + (
            f"; serves {m.plan.tag} now" if served else ""
        )

    def disk(self) -> str:
        m = self.migration
        mirror = isinstance(m.plan.source, UrlSource)
        needed, free = disk_needed(m.sizes, mirror=mirror), free_bytes(m.plan.work_dir)
        if free < needed:
            raise SpecmanError(
                f"{m.plan.work_dir}: {free >> 20} MiB free, {needed >> 20} MiB needed (choose another --work-dir)"
            )
        return f"{m.plan.work_dir}: {free >> 20} MiB free, {needed >> 20} MiB needed"
