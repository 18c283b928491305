"""What ``specman migrate`` moves: the old SCAR's files, from its directory or from its running server.

Both kinds answer the same questions: what is there (``inventory``: path → size), a local directory to pack
(``materialize``: the directory itself, or a mirror downloaded into the work directory, every file hashed as it
streams), what is there *now* (``digests``: path → sha256, read again at the time of the parity proof, so a
file changed after the push is caught), and the cloud type data the console's jobs will ingest (``cloud_data``:
read and validated by the jobs' own code, ``specman.console``, before anything is changed).  For a server the
second reading asks with the validators of the first (``If-None-Match``/``If-Modified-Since``): files nginx reports
unchanged are not downloaded twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from specman.console.cloudtypes import read_cloud_data, read_tree_file
from specman.console.jobs import ScarSource, fetch_cloud_data
from specman.errors import SpecmanError, UsageError
from specman.migrate.crawl import FileState, HttpTree, Site
from specman.migrate.parallel import fetch_all
from specman.oci.http import TLSOptions

__all__ = ["DirectorySource", "Source", "UrlSource", "open_source"]

Progress = Callable[[int], None]


class Source(Protocol):
    display: str

    def inventory(self) -> dict[str, int]: ...
    def materialize(self, work: Path, progress: Progress | None = None) -> Path: ...
    def digests(self, progress: Progress | None = None) -> dict[str, str]: ...
    def cloud_data(self, kind: str) -> dict[str, list[dict[str, Any]]]: ...
    def close(self) -> None: ...


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class DirectorySource:
    """A directory (the old ``/var/www/html``).  Symbolic links are followed inside the tree, as nginx serves
    them; links leading out of it and special files are left out, as the packer does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.display = str(root)
        if not root.is_dir():
            raise UsageError(f"--from {root}: not a directory")
        if not os.access(root, os.R_OK | os.X_OK):
            raise SpecmanError(f"--from {root}: not readable (permission denied)")

    def inventory(self) -> dict[str, int]:
        files: dict[str, int] = {}
        real_root = os.path.realpath(self.root)

        def walk(directory: str, prefix: str) -> None:
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError as exc:
                raise SpecmanError(f"--from: cannot list {directory}: {exc.strerror}") from None
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if os.path.commonpath((real_root, target)) != real_root or not os.path.isfile(target):
                        continue
                    files[rel] = os.stat(target).st_size
                elif entry.is_dir(follow_symlinks=False):
                    walk(entry.path, rel + "/")
                else:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode):
                        files[rel] = st.st_size

        walk(os.fspath(self.root), "")
        return dict(sorted(files.items()))

    def materialize(self, work: Path, progress: Progress | None = None) -> Path:
        return self.root

    def cloud_data(self, kind: str) -> dict[str, list[dict[str, Any]]]:
        """The ``kind`` data of the tree, read as the jobs read it from a server of this tree."""
        return read_cloud_data(lambda path: read_tree_file(self.root, path), kind)

    def digests(self, progress: Progress | None = None) -> dict[str, str]:
        paths = list(self.inventory())

        def one(rel: str) -> str:
            path = os.path.join(self.root, rel)
            try:
                digest = _sha256(path)
            except OSError as exc:
                raise SpecmanError(f"--from: cannot read {path}: {exc.strerror}") from None
            if progress:
                progress(os.path.getsize(path))
            return digest

        with ThreadPoolExecutor(4, thread_name_prefix="specman-hash") as pool:
            return dict(zip(paths, pool.map(one, paths), strict=True))

    def close(self) -> None:
        return None


class UrlSource:
    """The running SCAR at ``url``, read through its autoindex listings (nginx HTML or JSON)."""

    def __init__(
        self,
        url: str,
        *,
        tls: TLSOptions,
        username: str | None = None,
        password: str | None = None,
        workers: int = 8,
        processes: int = 1,
    ) -> None:
        self.tree = HttpTree(Site(url, f"the SCAR {url}", tls, username, password, workers))
        self._scar = (url, username or "", password or "", tls)
        self.processes = processes
        self.display = self.tree.base
        self._inventory: dict[str, int] | None = None
        self._states: dict[str, FileState] = {}

    def inventory(self) -> dict[str, int]:
        if self._inventory is None:
            self._inventory = self.tree.walk()
        return self._inventory

    def materialize(self, work: Path, progress: Progress | None = None) -> Path:
        """Download every file into ``work/mirror`` (hashed as it streams; the validators kept for later)."""
        mirror = work / "mirror"
        shutil.rmtree(mirror, ignore_errors=True)
        mirror.mkdir(parents=True)
        found = fetch_all(self.tree, self.inventory(), mirror=mirror, progress=progress, processes=self.processes)
        gone = [path for path, state in found.items() if state is None]
        if gone:
            raise SpecmanError(
                f"{self.tree.name}: {len(gone)} listed file(s) vanished while copying (first: {gone[0]})"
            )
        self._states = {path: state for path, state in found.items() if state is not None}
        return mirror

    def cloud_data(self, kind: str) -> dict[str, list[dict[str, Any]]]:
        """The ``kind`` data the server serves, fetched exactly as the console's jobs fetch it."""
        url, username, password, tls = self._scar
        try:
            ca = Path(tls.ca_file).read_text(encoding="ascii") if tls.ca_file else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecmanError(f"--from-ca-file {tls.ca_file}: {exc}") from None
        scar = ScarSource(url, username, password, ca, tls.insecure)
        return fetch_cloud_data(scar, kind)

    def digests(self, progress: Progress | None = None) -> dict[str, str]:
        """Walk the server again and hash what it serves now (unchanged files answer 304 to the validators)."""
        self._inventory = None
        found = fetch_all(self.tree, self.inventory(), progress=progress, known=self._states, processes=self.processes)
        return {path: state.sha256 for path, state in found.items() if state is not None}

    def close(self) -> None:
        self.tree.close()


def open_source(
    value: str,
    *,
    tls: TLSOptions,
    username: str | None = None,
    password: str | None = None,
    processes: int = 1,
) -> Source:
    """``--from``: an ``http(s)://`` URL is the running SCAR, anything else a directory."""
    if value.lower().startswith(("http://", "https://")):
        return UrlSource(value, tls=tls, username=username, password=password, processes=processes)
    if "://" in value:
        raise UsageError(f"--from {value!r}: expected a directory or an http:// or https:// URL")
    return DirectorySource(Path(value))
