"""``specman.runtime.certwatch.CertificateWatcher``, poll by poll, with certificates made at test time."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from specman.runtime.certwatch import CertificateWatcher
from tests.fixtures.certs import Certs, make_certs


def _served_pair(tmp_path: Path) -> tuple[Certs, Certs, Path, Path]:
    """Two certificate sets, and the served files (``tls.crt``, ``tls.key``) holding the first one's pair."""
    first, second = make_certs(tmp_path / "one"), make_certs(tmp_path / "two")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(first.server_cert, cert)
    shutil.copy(first.server_key, key)
    return first, second, cert, key


def test_reload_once_a_new_pair_has_settled_and_loads(tmp_path: Path) -> None:
    _, second, cert, key = _served_pair(tmp_path)
    reloads: list[int] = []
    watcher = CertificateWatcher(cert, key, lambda: reloads.append(1))
    assert not watcher.poll()

    os.utime(cert, ns=(1, 1))  # touched: same content, nothing to do
    assert not watcher.poll()
    assert not watcher.poll()
    assert reloads == []

    shutil.copy(second.server_cert, cert)  # a writer replacing the certificate, then the key
    assert not watcher.poll()  # changed since the last poll: wait
    shutil.copy(second.server_key, key)
    assert not watcher.poll()
    assert watcher.poll()  # settled and loads
    assert reloads == [1]
    assert not watcher.poll()


def test_a_pair_that_does_not_load_or_a_missing_file_changes_nothing(tmp_path: Path) -> None:
    first, second, cert, key = _served_pair(tmp_path)
    reloads: list[int] = []
    watcher = CertificateWatcher(cert, key, lambda: reloads.append(1))

    shutil.copy(second.server_cert, cert)  # the key stays the old one: a mismatched pair
    assert not watcher.poll()
    assert not watcher.poll()
    assert not watcher.poll()
    key.unlink()
    assert not watcher.poll()
    assert not watcher.poll()
    shutil.copy(first.server_cert, cert)
    shutil.copy(first.server_key, key)  # back to what is served: no reload either
    assert not watcher.poll()
    assert not watcher.poll()
    assert reloads == []
