"""Preflight: everything ``migrate`` needs is checked before anything is changed.

Each check is independent where it can be (a wrong console password does not hide a full disk) and reports one
line saying what is wrong and what to do about it.  Checks that depend on an earlier one (the console's current
SCAR configuration needs a login) are skipped when it failed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from specman.archive import RESERVED_ROOT_NAME
from specman.console.cloudtypes import KINDS
from specman.console.jobs import JOBS
from specman.errors import AuthenticationError, AuthorizationError, ConsoleError, SpecmanError

__all__ = ["Check", "Preflight", "check_cloud_data", "check_reserved", "disk_needed", "same_source"]


class _CloudSource(Protocol):
    def cloud_data(self, kind: str) -> dict[str, list[dict[str, Any]]]: ...


def check_cloud_data(source: _CloudSource) -> str:
    """Read and validate the tree's ``cloud-types/`` data with the code the console's jobs run (each kind the
    jobs ingest); ``DataFileError`` names the file and the field.  Returns what the jobs will find."""
    counts = {kind: source.cloud_data(kind) for kind in KINDS}
    clouds = sorted({cloud for data in counts.values() for cloud in data})
    found = ", ".join(f"{sum(len(items) for items in counts[kind].values())} {kind}" for kind in KINDS)
    return f"{len(clouds)} clouds ({', '.join(clouds)}): {found}, valid for {' and '.join(JOBS)}"


def check_reserved(paths: Iterable[str]) -> None:
    """SpecmanError when the tree holds ``_specman`` at its root (push would refuse it, serve could not show it)."""
    for path in paths:
        if path == RESERVED_ROOT_NAME or path.startswith(RESERVED_ROOT_NAME + "/"):
            raise SpecmanError(
                f"{path}: the tree holds {RESERVED_ROOT_NAME!r} at its root, which specman serve keeps for itself "
                f"(/{RESERVED_ROOT_NAME}/): rename or move it on the SCAR first"
            )


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str
    skipped: bool = False
    hint: str | None = None  # the operator's next step, in the command line's words (the error's ``hint``)

    def line(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        return f"{'ok  ' if self.ok else 'skip' if self.skipped else 'FAIL'} {self.name}: {self.message}{hint}"


def disk_needed(sizes: dict[str, int], *, mirror: bool) -> int:
    """Bytes the work directory needs: the archive (at most the tree, plus tar headers) and, for a server, the
    mirror of its files."""
    tree = sum(max(size, 0) for size in sizes.values()) + 1024 * len(sizes)
    return tree * (2 if mirror else 1)


def free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def same_source(status: dict[str, Any], display: str) -> bool | None:
    """Whether specman's status says it syncs ``display`` (a registry repository ``host/name`` or
    ``oci-layout:PATH``); None when it cannot tell yet (it asks the console and has not synced)."""
    given = (status.get("source"), (status.get("sync") or {}).get("source"))
    names = {n for n in given if isinstance(n, str) and not n.startswith("console:")}
    if not names:
        return None
    if display.startswith("oci-layout:"):
        mine = os.path.realpath(display.removeprefix("oci-layout:"))
        return any(
            n.startswith("oci-layout:") and os.path.realpath(n.removeprefix("oci-layout:")) == mine for n in names
        )
    return display in names


class Preflight:
    """Collects checks; ``run(name, func)`` records ``func()``'s message, or its error as the failure."""

    def __init__(self, report: Callable[[Check], None]) -> None:
        self.checks: list[Check] = []
        self.report = report

    def run(self, name: str, func: Callable[[], str], *, hint: str = "", auth_hint: str = "") -> bool:
        """``hint`` follows any failure's message, ``auth_hint`` a refusal of credentials."""
        try:
            message = func()
            check = Check(name, True, message)
        except (AuthenticationError, AuthorizationError) as exc:
            check = Check(name, False, f"{exc}{auth_hint or hint}")
        except ConsoleError as exc:
            extra = " (check --console-user and the console password)" if exc.status == 401 else ""
            check = Check(name, False, f"{exc}{extra}")
        except SpecmanError as exc:
            check = Check(name, False, f"{exc}{hint}", hint=exc.hint)
        except OSError as exc:
            check = Check(name, False, f"{exc}{hint}")
        self.checks.append(check)
        self.report(check)
        return check.ok

    def skip(self, name: str, reason: str) -> None:
        check = Check(name, False, f"not checked: {reason}", skipped=True)
        self.checks.append(check)
        self.report(check)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failures(self) -> list[Check]:
        """The checks that failed (not those skipped because of them)."""
        return [c for c in self.checks if not c.ok and not c.skipped]
