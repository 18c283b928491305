"""The records the store writes next to its trees: ``version.json`` and ``generation.json``.

This module owns their format (reading and writing, validation of what is read); it performs no file-system
operation other than reading them.  A record that is missing or does not validate makes its directory an
incomplete leftover, which ``Store.recover`` removes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from specman.errors import StoreError
from specman.store._fs import read_json
from specman.store._merge import Conflict

__all__ = [
    "GENERATION_RECORD",
    "VERSION_RECORD",
    "Generation",
    "TagState",
    "Version",
    "read_generation",
    "read_generations",
    "read_version",
    "read_versions",
    "version_id",
]

VERSION_RECORD: Final = "version.json"
GENERATION_RECORD: Final = "generation.json"
_TAG: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST: Final = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")


def version_id(tag: str, digest: str) -> str:
    """The directory name of a version: ``<tag>@<algorithm>-<encoded digest>`` (``4.5.13@sha256-ab12...``).

    Tags and digests are checked against the OCI grammar, which keeps the name safe on any file system.
    """
    if not _TAG.fullmatch(tag):
        raise StoreError(f"invalid tag {tag!r}: not an OCI tag")
    match = _DIGEST.fullmatch(digest)
    if match is None:
        raise StoreError(f"invalid digest {digest!r} for tag {tag}")
    return f"{tag}@{match.group(1)}-{match.group(2)}"


@dataclass(frozen=True)
class Version:
    """One tag at one digest, extracted once, never modified: ``path/tree`` is its content."""

    tag: str
    digest: str
    id: str
    path: Path
    files: int
    bytes: int
    created: str
    dirs: int = 0
    symlinks: int = 0
    pooled: bool = False  # its files are hard links into the object pool (False: a legacy tree to convert)

    @property
    def tree(self) -> Path:
        return self.path / "tree"

    def to_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "digest": self.digest,
            "id": self.id,
            "files": self.files,
            "bytes": self.bytes,
            "dirs": self.dirs,
            "symlinks": self.symlinks,
            "pooled": self.pooled,
            "created": self.created,
        }


@dataclass(frozen=True)
class TagState:
    """A tag as published in a generation: its digest, version directory, regular files and bytes."""

    digest: str
    version: str
    files: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "version": self.version, "files": self.files, "bytes": self.bytes}


@dataclass(frozen=True)
class Generation:
    """One published merged view: ``path/tree`` is served, ``path/generation.json`` describes it.

    ``files``/``dirs``/``symlinks`` count the merged tree (the root excluded), ``conflicts`` lists every path
    where a later version replaced an earlier one.
    """

    number: int
    path: Path
    created: str
    tags: Mapping[str, TagState]
    files: int
    dirs: int
    symlinks: int
    conflicts: tuple[Conflict, ...] = field(default=())
    pooled: bool = False  # its files are hard links into the object pool (False: a legacy tree to convert)

    @property
    def tree(self) -> Path:
        return self.path / "tree"

    def digests(self) -> dict[str, str]:
        return {tag: state.digest for tag, state in self.tags.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.number,
            "created": self.created,
            "tags": {tag: state.to_json() for tag, state in self.tags.items()},
            "files": self.files,
            "dirs": self.dirs,
            "symlinks": self.symlinks,
            "conflicts": [conflict.to_json() for conflict in self.conflicts],
            "pooled": self.pooled,
        }


def read_version(path: Path) -> Version | None:
    """The version whose directory is ``path``, or None when its record is missing or invalid."""
    data = read_json(path / VERSION_RECORD)
    if data is None:
        return None
    try:
        version = Version(
            tag=str(data["tag"]),
            digest=str(data["digest"]),
            id=str(data["id"]),
            path=path,
            files=int(data["files"]),
            bytes=int(data["bytes"]),
            created=str(data["created"]),
            dirs=int(data.get("dirs", 0)),
            symlinks=int(data.get("symlinks", 0)),
            pooled=data.get("pooled") is True,
        )
    except (KeyError, TypeError, ValueError):
        return None
    return version if version.id == path.name else None


def read_generation(path: Path) -> Generation | None:
    """The generation whose directory is ``path``, or None when its record is missing or invalid."""
    data = read_json(path / GENERATION_RECORD)
    if data is None:
        return None
    try:
        tags = {
            str(tag): TagState(str(state["digest"]), str(state["version"]), int(state["files"]), int(state["bytes"]))
            for tag, state in data["tags"].items()
        }
        conflicts = tuple(
            Conflict(str(item["path"]), str(item["winner"]), str(item["loser"]), str(item["kind"]))
            for item in data["conflicts"]
        )
        generation = Generation(
            number=int(data["generation"]),
            path=path,
            created=str(data["created"]),
            tags=tags,
            files=int(data["files"]),
            dirs=int(data["dirs"]),
            symlinks=int(data["symlinks"]),
            conflicts=conflicts,
            pooled=data.get("pooled") is True,
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return generation if str(generation.number) == path.name else None


def read_versions(versions_dir: Path) -> list[Version]:
    """Every complete version below ``versions_dir``, by name."""
    return [v for p in sorted(versions_dir.iterdir()) if (v := read_version(p)) is not None]


def read_generations(generations_dir: Path) -> list[Generation]:
    """Every complete generation below ``generations_dir``, by name."""
    found = (read_generation(p) for p in sorted(generations_dir.iterdir()) if p.name.isdigit())
    return [g for g in found if g is not None]
