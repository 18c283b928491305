"""The console's "signatures" validation check: are the versions a policy covers signed by one of its keys?

Used by ``specman.console.registries`` when the "Contains Spectro Manifests" registry carries a policy (``verify``
audit or required).  It verifies at most ``MAX_CHECKED`` version tags (the registry's order), each as the sync
would, and answers one line: how many verified, and for the others tag and reason.
"""

from __future__ import annotations

from itertools import islice
from typing import Final

from specman.errors import SpecmanError
from specman.oci import Repository
from specman.signature.discovery import split_tags
from specman.signature.policy import Verifier, VerifyPolicy

__all__ = ["MAX_CHECKED", "check_signatures"]

MAX_CHECKED: Final = 50
_MAX_TAGS: Final = 10_000


def check_signatures(repo: Repository, policy: VerifyPolicy) -> tuple[bool, str]:
    """(all covered versions verified, a one-line message)."""
    try:
        listed = list(islice(repo.tags(), _MAX_TAGS))
        versions, _ = split_tags(listed)
        covered = [t for t in versions if policy.applies(t)]
        verifier = Verifier(policy)
        failed: list[str] = []
        for tag in covered[:MAX_CHECKED]:
            verification, _ = verifier.verify(repo, repo.resolve(tag).digest, listed=frozenset(listed))
            if not verification.ok:
                failed.append(f"{tag} ({verification.message})")
    except SpecmanError as exc:
        return False, f"cannot check signatures: {exc}"
    checked = min(len(covered), MAX_CHECKED)
    scope = f"{checked} of {len(covered)} covered version(s) checked" if checked < len(covered) else ""
    if not covered:
        return True, f"no version matches the policy's tags ({' '.join(policy.tags)})"
    if failed:
        shown = "; ".join(failed[:5]) + ("; ..." if len(failed) > 5 else "")
        return False, f"{len(failed)} of {checked} version(s) not signed by a trusted key: {shown}"
    return True, f"{checked} version(s) signed by a trusted key ({policy.mode})" + (f"; {scope}" if scope else "")
