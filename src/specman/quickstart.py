"""``specman quickstart``: the main job on the embedded default, with nothing to prepare.

Today (before the service exists) it pushes the bundled sample manifests to an OCI image layout in a work
directory — the embedded default registry — pulls them back through the same client code a remote registry
uses (digests verified, safe extraction), and proves that every file came back byte for byte.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import click

from specman.errors import ContentError
from specman.oci import open_target, pull_artifact, push_artifact
from specman.oci.reference import DEFAULT_REPOSITORY
from specman.oci.repository import RegistryOptions
from specman.samples import bundled_manifests, tree_digest
from specman.ui import UI

__all__ = ["quickstart"]


@click.command()
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory to publish (default: the bundled sample manifests).",
)
@click.option(
    "--work-dir",
    envvar="SPECMAN_WORK_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the OCI layout and the pulled copy go (default: a temp dir, removed at the end).",
)
@click.option("--tag", default="0.0.0", show_default=True, envvar="SPECMAN_TAG", help="Tag to push.")
@click.pass_obj
def quickstart(ui: UI, source: Path | None, work_dir: Path | None, tag: str) -> None:
    """Push the sample manifests to a local OCI layout, pull them back and verify every file."""
    source = source or bundled_manifests()
    keep = work_dir is not None
    work = work_dir or Path(tempfile.mkdtemp(prefix="specman-quickstart-"))
    work.mkdir(parents=True, exist_ok=True)
    layout = work / "registry" / DEFAULT_REPOSITORY
    pulled = work / "pulled"
    if pulled.exists():
        shutil.rmtree(pulled)
    options = RegistryOptions(oci_layout=True)
    try:
        started = time.monotonic()
        expected = tree_digest(source)
        ui.status(f"Source: {source} ({len(expected)} files)")
        target = open_target(f"{layout}:{tag}", options, create_layout=True)
        with ui.progress() as start:
            pushed = push_artifact(target.repository, source, tag, start_progress=start)
        ui.status(f"Pushed {target.repository.display}:{tag} digest {pushed.digest}")
        with ui.progress() as start:
            result = pull_artifact(target.repository, tag, pulled, start_progress=start)
        ui.status(f"Pulled {result.files} files into {pulled}")
        actual = tree_digest(pulled)
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        different = sorted(p for p in set(expected) & set(actual) if expected[p] != actual[p])
        if missing or extra or different:
            raise ContentError(
                f"verification failed: {len(missing)} missing, {len(extra)} extra, {len(different)} different "
                f"(first: {(missing + extra + different)[0]})"
            )
        elapsed = time.monotonic() - started
        ui.status(f"Verified {len(actual)} files: identical to the source ({elapsed:.2f} s)")
        ui.result(pushed.digest)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
