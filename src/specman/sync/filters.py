"""Which tags a sync follows: ``--tags`` globs and a ``--semver`` range.

A tag is selected when it matches one of the globs (``fnmatch``, case-sensitive; no globs means every tag) and
satisfies the range (no range means every tag, semver or not).  A range is comparators joined by spaces (all
must hold) and alternatives joined by ``||``, as npm and Flux write them::

    >=4.5.0 <5        4.5.x, 4.6.x ...  but not 5.0.0
    ^4.5              >=4.5.0 <5.0.0
    ~4.5.13           >=4.5.13 <4.6.0
    4.5.13 || >=5     exactly 4.5.13, or 5.0.0 and later

Versions may be partial (``5`` is ``5.0.0``) and tags may carry a leading ``v``, as in ``specman.store``'s
ordering.  A tag that is not a semantic version never satisfies a range.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import semver

from specman.errors import UsageError

__all__ = ["SemverRange", "TagFilter", "parse_version"]

_COMPARATOR: Final = re.compile(r"(>=|<=|==|!=|>|<|=|\^|~)?\s*v?([0-9][0-9A-Za-z.+-]*)")
_OPS: Final[dict[str, Callable[[int], bool]]] = {
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    "<": lambda c: c < 0,
    "=": lambda c: c == 0,
    "==": lambda c: c == 0,
    "!=": lambda c: c != 0,
}

Comparator = tuple[str, semver.Version]


def parse_version(text: str) -> semver.Version | None:
    """``text`` as a semantic version (leading ``v`` and missing minor/patch allowed), or None."""
    try:
        return semver.Version.parse(text.removeprefix("v"), optional_minor_and_patch=True)
    except (ValueError, TypeError):
        return None


def _expand(op: str, text: str, whole: str) -> list[Comparator]:
    """One written comparator as plain ones (``^4.5`` becomes ``>=4.5.0`` and ``<5.0.0``)."""
    version = parse_version(text)
    if version is None:
        raise UsageError(f"semver range {whole!r}: {text!r} is not a version")
    if op == "^":
        upper = (
            version.bump_major() if version.major else version.bump_minor() if version.minor else version.bump_patch()
        )
        return [(">=", version), ("<", upper)]
    if op == "~":
        return [(">=", version), ("<", version.bump_minor())]
    return [(op or "=", version)]


@dataclass(frozen=True)
class SemverRange:
    """A parsed range: alternatives (``||``), each a list of comparators that must all hold."""

    text: str
    alternatives: tuple[tuple[Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> SemverRange:
        alternatives: list[tuple[Comparator, ...]] = []
        for part in text.split("||"):
            comparators: list[Comparator] = []
            rest = part.strip()
            while rest:
                match = _COMPARATOR.match(rest)
                if match is None:
                    raise UsageError(f"semver range {text!r}: cannot read {rest!r} (example: '>=4.5.0 <5')")
                comparators += _expand(match.group(1) or "", match.group(2), text)
                rest = rest[match.end() :].strip().removeprefix(",").strip()
            if not comparators:
                raise UsageError(f"semver range {text!r} has an empty alternative")
            alternatives.append(tuple(comparators))
        return cls(text, tuple(alternatives))

    def contains(self, version: semver.Version) -> bool:
        return any(all(_OPS[op](version.compare(bound)) for op, bound in alt) for alt in self.alternatives)


@dataclass(frozen=True)
class TagFilter:
    """Globs (any may match) and an optional semver range (must hold); the default selects every tag."""

    globs: tuple[str, ...] = ()
    semver: str | None = None
    _range: SemverRange | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "globs", tuple(self.globs))
        if self.semver is not None and self.semver.strip():
            object.__setattr__(self, "_range", SemverRange.parse(self.semver))

    def matches(self, tag: str) -> bool:
        if self.globs and not any(fnmatch.fnmatchcase(tag, glob) for glob in self.globs):
            return False
        if self._range is not None:
            version = parse_version(tag)
            return version is not None and self._range.contains(version)
        return True

    def select(self, tags: Iterable[str]) -> list[str]:
        """The matching tags, in the order given."""
        return [tag for tag in tags if self.matches(tag)]

    def describe(self) -> str:
        parts = [f"tags {' '.join(self.globs)}"] if self.globs else []
        if self.semver:
            parts.append(f"semver {self.semver}")
        return ", ".join(parts) or "all tags"
