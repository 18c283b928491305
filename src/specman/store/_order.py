"""The order in which versions are layered into the merged view.

Tags that parse as semantic versions (``semver``, an optional leading ``v``, missing minor/patch read as 0:
``4.5`` is 4.5.0) come first, in semver precedence (``0.0.0 < 4.5.13 < 4.5.15``, ``1.0.0-rc.1 < 1.0.0``); every
other tag (``latest``, ``stable``...) comes after all of them, in code-point order.  Equal precedence
(``1.0.0`` and ``v1.0.0``, or tags differing only in build metadata) falls back to code-point order, so the
order is total and the same on every run.  A later version wins a path conflict.
"""

from __future__ import annotations

from collections.abc import Iterable

import semver

__all__ = ["ordered_tags", "version_key"]


def version_key(tag: str) -> tuple[int, semver.Version | None, str]:
    """Sort key of ``tag``: semver tags by precedence, then the rest by name."""
    text = tag[1:] if tag[:1] in ("v", "V") else tag
    try:
        parsed = semver.Version.parse(text, optional_minor_and_patch=True)
    except (ValueError, TypeError):
        return (1, None, tag)
    return (0, parsed, tag)


def ordered_tags(tags: Iterable[str]) -> list[str]:
    """``tags`` in layering order (the last one wins a conflict)."""
    return sorted(tags, key=version_key)
