"""The cloud type data files the jobs ingest: where they are on the SCAR endpoint and what they must contain.

Layout (relative to the SCAR endpoint, i.e. the root of the manifests ``specman serve`` publishes)::

    cloud-types/index.json                      {"schemaVersion": 1, "clouds": [{"cloud": "aws",
                                                   "instanceTypes": "aws/instance-types.json",
                                                   "storageTypes": "aws/storage-types.json",
                                                   "instanceTypeCount": 31, "storageTypeCount": 6}, ...]}
    cloud-types/<cloud>/instance-types.json     [{"type", "family", "vcpu", "memoryGiB", "pricePerHour",
                                                  "architecture", "gpu"}, ...]
    cloud-types/<cloud>/storage-types.json      [{"name", "kind", "iopsMax", "throughputMBps",
                                                  "pricePerGiBMonth", "default"}, ...]

Paths in the index are relative to ``cloud-types/`` (no ``..``, no absolute paths); the counts are optional and,
when present, must match.  ``validate_*`` raise ``DataFileError`` naming the file and the field
(``cloud-types/aws/instance-types.json: [3].vcpu: must be an integer > 0, not "two"``).  Fields beyond the
schema are kept as they are.

``read_cloud_data`` is what a job does with the files, whatever carries them: the index, then each cloud's file of
one kind, each decoded by ``parse_json`` and validated.  The jobs read them over HTTP from the SCAR endpoint;
``specman migrate``'s preflight reads the tree it is about to push with the same function (``read_tree_file``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from specman.errors import SpecmanError

__all__ = [
    "INDEX_PATH",
    "KINDS",
    "MAX_FILE_BYTES",
    "MAX_ITEMS",
    "CloudEntry",
    "DataFileError",
    "parse_json",
    "read_cloud_data",
    "read_tree_file",
    "validate_index",
    "validate_items",
]

INDEX_PATH: Final = "cloud-types/index.json"
MAX_FILE_BYTES: Final = 16 << 20
MAX_ITEMS: Final = 10_000
KINDS: Final = ("instanceTypes", "storageTypes")
_CLOUD_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ARCHITECTURES: Final = ("amd64", "arm64")


class DataFileError(SpecmanError):
    """A data file is missing, unreadable or does not follow its schema."""


@dataclass(frozen=True)
class CloudEntry:
    cloud: str
    files: dict[str, str]  # kind -> path relative to the SCAR endpoint
    counts: dict[str, int | None]


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__ if not isinstance(value, str) else repr(value)[:60]


class _Checker:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, message: str) -> DataFileError:
        return DataFileError(f"{self.file}: {where}: {message}" if where else f"{self.file}: {message}")

    def field(self, obj: dict[str, Any], where: str, name: str) -> Any:
        if name not in obj:
            raise self.fail(f"{where}.{name}" if where else name, "is required")
        return obj[name]

    def string(self, obj: dict[str, Any], where: str, name: str) -> str:
        value = self.field(obj, where, name)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{name}", f"must be a non-empty string, not {_kind(value)}")
        return value

    def integer(self, obj: dict[str, Any], where: str, name: str, minimum: int = 1) -> int:
        value = self.field(obj, where, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"{where}.{name}", f"must be an integer >= {minimum}, not {_kind(value)}")
        return value

    def number(self, obj: dict[str, Any], where: str, name: str, *, positive: bool) -> float:
        value = self.field(obj, where, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (positive and value == 0):
            bound = "> 0" if positive else ">= 0"
            raise self.fail(f"{where}.{name}", f"must be a number {bound}, not {_kind(value)}")
        return float(value)

    def boolean(self, obj: dict[str, Any], where: str, name: str) -> bool:
        value = self.field(obj, where, name)
        if not isinstance(value, bool):
            raise self.fail(f"{where}.{name}", f"must be true or false, not {_kind(value)}")
        return value

    def objects(self, doc: Any) -> list[dict[str, Any]]:
        if not isinstance(doc, list):
            raise self.fail("", f"must be a JSON array of objects, not {_kind(doc)}")
        if len(doc) > MAX_ITEMS:
            raise self.fail("", f"has {len(doc)} entries, more than {MAX_ITEMS}")
        for i, item in enumerate(doc):
            if not isinstance(item, dict):
                raise self.fail(f"[{i}]", f"must be an object, not {_kind(item)}")
        return doc


def _relative_path(check: _Checker, where: str, value: Any) -> str:
    if (
        not isinstance(value, str)
        or not value.endswith(".json")
        or value.startswith("/")
        or "\\" in value
        or "?" in value
        or "#" in value
        or any(part in ("", ".", "..") for part in value.split("/"))
    ):
        raise check.fail(where, f"must be a relative path to a .json file inside cloud-types/, not {_kind(value)}")
    return value


def validate_index(doc: Any, file: str = INDEX_PATH) -> list[CloudEntry]:
    check = _Checker(file)
    if not isinstance(doc, dict):
        raise check.fail("", f"must be a JSON object, not {_kind(doc)}")
    version = check.field(doc, "", "schemaVersion")
    if version != 1 or isinstance(version, bool):
        raise check.fail("schemaVersion", f"must be 1, not {_kind(version)}")
    clouds = check.field(doc, "", "clouds")
    check.objects(clouds)
    if not clouds:
        raise check.fail("clouds", "lists no cloud")
    entries: list[CloudEntry] = []
    for i, item in enumerate(clouds):
        where = f"clouds[{i}]"
        cloud = check.string(item, where, "cloud")
        if not _CLOUD_RE.match(cloud):
            raise check.fail(f"{where}.cloud", f"must be lower-case letters, digits and '-', not {_kind(cloud)}")
        if any(e.cloud == cloud for e in entries):
            raise check.fail(f"{where}.cloud", f"{cloud!r} is listed twice")
        files: dict[str, str] = {}
        counts: dict[str, int | None] = {}
        for kind, count_key in (("instanceTypes", "instanceTypeCount"), ("storageTypes", "storageTypeCount")):
            files[kind] = "cloud-types/" + _relative_path(check, f"{where}.{kind}", check.field(item, where, kind))
            counts[kind] = check.integer(item, where, count_key, 0) if count_key in item else None
        entries.append(CloudEntry(cloud, files, counts))
    return entries


def _instance_type(check: _Checker, where: str, item: dict[str, Any]) -> str:
    name = check.string(item, where, "type")
    check.string(item, where, "family")
    check.integer(item, where, "vcpu")
    check.number(item, where, "memoryGiB", positive=True)
    check.number(item, where, "pricePerHour", positive=False)
    arch = check.string(item, where, "architecture")
    if arch not in _ARCHITECTURES:
        raise check.fail(f"{where}.architecture", f"must be one of {', '.join(_ARCHITECTURES)}, not {arch!r}")
    gpu = item.get("gpu")
    if gpu is not None:
        if not isinstance(gpu, dict):
            raise check.fail(f"{where}.gpu", f"must be null or an object, not {_kind(gpu)}")
        check.integer(gpu, f"{where}.gpu", "count")
        check.string(gpu, f"{where}.gpu", "model")
    return name


def _storage_type(check: _Checker, where: str, item: dict[str, Any]) -> str:
    name = check.string(item, where, "name")
    check.string(item, where, "kind")
    check.integer(item, where, "iopsMax")
    check.integer(item, where, "throughputMBps")
    check.number(item, where, "pricePerGiBMonth", positive=False)
    check.boolean(item, where, "default")
    return name


_ITEM_CHECKS: Final[dict[str, tuple[str, Callable[[_Checker, str, dict[str, Any]], str]]]] = {
    "instanceTypes": ("type", _instance_type),
    "storageTypes": ("name", _storage_type),
}


def validate_items(kind: str, doc: Any, file: str, expected_count: int | None = None) -> list[dict[str, Any]]:
    """The entries of one cloud's ``kind`` file, checked against the schema."""
    check = _Checker(file)
    key, check_item = _ITEM_CHECKS[kind]
    items = check.objects(doc)
    seen: set[str] = set()
    for i, item in enumerate(items):
        name = check_item(check, f"[{i}]", item)
        if name in seen:
            raise check.fail(f"[{i}].{key}", f"{name!r} is listed twice")
        seen.add(name)
    if kind == "storageTypes" and items and sum(1 for item in items if item["default"]) != 1:
        raise check.fail("default", "exactly one storage type must be the default")
    if expected_count is not None and expected_count != len(items):
        raise check.fail("", f"has {len(items)} entries but {INDEX_PATH} says {expected_count}")
    return items


def parse_json(body: bytes, path: str) -> Any:
    """The JSON document of the data file ``path`` (at most ``MAX_FILE_BYTES``)."""
    if len(body) > MAX_FILE_BYTES:
        raise DataFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFileError(f"{path}: not valid JSON ({exc})") from None


def read_cloud_data(read: Callable[[str], bytes], kind: str) -> dict[str, list[dict[str, Any]]]:
    """Every cloud's ``kind`` entries, validated; ``read(path)`` returns the bytes of a data file (path relative
    to the SCAR endpoint) or raises ``DataFileError``."""
    entries = validate_index(parse_json(read(INDEX_PATH), INDEX_PATH))
    data: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        path = entry.files[kind]
        data[entry.cloud] = validate_items(kind, parse_json(read(path), path), path, entry.counts[kind])
    return data


def read_tree_file(root: Path, path: str) -> bytes:
    """The data file ``path`` of the tree at ``root`` as a server of that tree would answer it: symlinks followed
    inside the tree only; ``DataFileError`` when missing (the jobs would get a 404)."""
    real_root = os.path.realpath(root)
    full = os.path.realpath(os.path.join(real_root, path))
    if os.path.commonpath((real_root, full)) != real_root or not os.path.isfile(full):
        raise DataFileError(f"{path}: missing from the tree (the console's jobs read it from the SCAR endpoint)")
    try:
        with open(full, "rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read it: {exc.strerror}") from None
