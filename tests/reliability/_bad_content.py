"""The bad content cases 3 and 4 push into a registry: corruptions of the registry's storage and hostile archives.

Each maker pushes one tag (with content of its own, so no blob is shared with another tag) and returns the
words one of which the sync's error line for that tag must contain, or ``None`` when the content is to be
accepted with its danger neutralised (a setuid bit is stripped).  Every hostile archive starts with a good
member that would override a path of version A: if any part of it were published, the view would not be A.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.archives import Entry, make_tar
from tests.fixtures.oci import OCI_MANIFEST, digest_of, push_blob, push_manifest, registry_client
from tests.fixtures.oci import push_artifact as raw_push
from tests.fixtures.registry import Registry

__all__ = ["CORRUPTIONS", "HOSTILE", "Push", "blob_file"]

OVERRIDE = "d00/s0/f00000.json"  # a path of version A (tests.test_serve_process._paths("d", ...))
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Push:
    registry: Registry
    name: str
    tag: str
    rng: random.Random
    pwned: Path  # a path outside everything: no archive may create it
    how: str = "gz"  # compression of hostile archives


Maker = Callable[[Push], tuple[str, ...] | None]


def blob_file(registry: Registry, digest: str) -> Path:
    hex_ = digest.removeprefix("sha256:")
    return registry.storage_dir / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


def _good_archive(push: Push) -> bytes:
    unique = f"{push.tag} {push.rng.random()}".encode()
    return make_tar([Entry(f"./{OVERRIDE}", data=b"EVIL " + unique), Entry("./extra.json", data=unique)])


def _push_layer(push: Push, data: bytes, layer_type: str = "application/vnd.oci.image.layer.v1.tar") -> str:
    with registry_client(push.registry) as client:
        pushed = raw_push(client, push.name, push.tag, {"manifests.tgz": data}, layer_media_type=layer_type)
    return digest_of(pushed.layers["manifests.tgz"])


# -- case 3: corrupted content in the registry's storage ---------------------------------------------------------


def flipped_byte(push: Push) -> tuple[str, ...]:
    path = blob_file(push.registry, _push_layer(push, _good_archive(push)))
    raw = bytearray(path.read_bytes())
    raw[push.rng.randrange(len(raw))] ^= 0x01 << push.rng.randrange(8)
    path.write_bytes(bytes(raw))
    return ("digest mismatch",)


def truncated_blob(push: Push) -> tuple[str, ...]:
    path = blob_file(push.registry, _push_layer(push, _good_archive(push)))
    raw = path.read_bytes()
    path.write_bytes(raw[: push.rng.randrange(1, len(raw))])
    return ("size", "bytes", "truncated", "short", "digest mismatch", "connection")


def extended_blob(push: Push) -> tuple[str, ...]:
    path = blob_file(push.registry, _push_layer(push, _good_archive(push)))
    path.write_bytes(path.read_bytes() + os.urandom(push.rng.randrange(1, 4096)))
    return ("more", "size", "bytes", "digest mismatch")


def missing_blob(push: Push) -> tuple[str, ...]:
    blob_file(push.registry, _push_layer(push, _good_archive(push))).unlink()
    return ("not found", "unknown", "BLOB_UNKNOWN")


def container_image(push: Push) -> tuple[str, ...]:
    """A container image pushed to the manifests tag by mistake: image config, a rootfs layer."""
    with registry_client(push.registry) as client:
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
        layer = make_tar([Entry("./bin/sh", data=b"\x7fELF" + os.urandom(16))])
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": push_blob(client, push.name, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": push_blob(client, push.name, layer),
                    "size": len(layer),
                }
            ],
        }
        push_manifest(client, push.name, push.tag, json.dumps(manifest).encode())
    return ("media type", "image", "config")


def json_layer(push: Push) -> tuple[str, ...]:
    _push_layer(push, json.dumps({"not": "an archive", "tag": push.tag}).encode(), "application/json")
    return ("archive", "gzip", "media type", "tar")


def image_index(push: Push) -> tuple[str, ...]:
    with registry_client(push.registry) as client:
        images = [raw_push(client, push.name, f"img-{i}", {"f": os.urandom(8)}).digest for i in range(2)]
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": 1} for d in images],
        }
        push_manifest(client, push.name, push.tag, json.dumps(index).encode(), OCI_INDEX)
    return ("index",)


CORRUPTIONS: dict[str, Maker] = {
    "blob byte flipped in storage": flipped_byte,
    "blob truncated in storage": truncated_blob,
    "blob extended in storage": extended_blob,
    "manifest → missing blob": missing_blob,
    "wrong media type: container image": container_image,
    "wrong media type: JSON layer": json_layer,
    "wrong media type: image index": image_index,
}


# -- case 4: hostile archives ------------------------------------------------------------------------------------


def _hostile(*entries: Entry, expect: tuple[str, ...] | None) -> Maker:
    def make(push: Push) -> tuple[str, ...] | None:
        good = Entry(f"./{OVERRIDE}", data=f"EVIL {push.tag} {push.rng.random()}".encode())
        pwned = str(push.pwned)
        resolved = [
            Entry(e.name.replace("PWNED", pwned), e.kind, e.data, e.linkname.replace("PWNED", pwned), e.mode)
            for e in entries
        ]
        _push_layer(push, make_tar(resolved if expect is None else [good, *resolved], push.how))
        return expect

    return make


def gzip_bomb(push: Push) -> tuple[str, ...]:
    zeros = Entry("./bomb.json", data=b"\0" * (96 << 20))  # 96 MiB, over the --max-size 64 MiB of these syncs
    _push_layer(push, make_tar([zeros, Entry("./after.json", data=push.tag.encode())], push.how))
    return ("size", "limit", "larger", "exceed")


def member_bomb(push: Push) -> tuple[str, ...]:
    entries = [Entry(f"./m/{i}", data=b"") for i in range(6000)]  # over the --max-files 5000 of these syncs
    _push_layer(push, make_tar(entries, push.how))
    return ("files", "entries", "limit", "members")


def truncated_stream(push: Push) -> tuple[str, ...]:
    data = make_tar([Entry(f"./t/{i}.json", data=os.urandom(2000)) for i in range(50)], push.how)
    _push_layer(push, data[: len(data) // 2])
    return ("truncated", "unexpected end", "incomplete", "end of", "archive", "corrupt")


HOSTILE: dict[str, Maker] = {
    "traversal ../": _hostile(Entry("../escape.json", data=b"x"), expect=("..",)),
    "traversal a/../../": _hostile(Entry("a/../../escape.json", data=b"x"), expect=("..",)),
    "absolute path": _hostile(Entry("PWNED/abs.json", data=b"x"), expect=("absolute",)),
    "symlink escape": _hostile(Entry("./esc", "symlink", linkname="../../.."), expect=("symlink", "link")),
    "absolute symlink": _hostile(Entry("./abs", "symlink", linkname="/etc"), expect=("symlink", "link", "absolute")),
    "write through symlink out": _hostile(
        Entry("./out", "symlink", linkname="PWNED"), Entry("./out/x.json", data=b"x"), expect=("symlink", "link")
    ),
    "write through symlink in": _hostile(
        Entry("./sub", "dir"),
        Entry("./in", "symlink", linkname="sub"),
        Entry("./in/x.json", data=b"x"),
        expect=("symlink", "link"),
    ),
    "hardlink escape": _hostile(Entry("./hl", "hardlink", linkname="../../etc/passwd"), expect=("link", "..")),
    "absolute hardlink": _hostile(Entry("./hl", "hardlink", linkname="/etc/passwd"), expect=("link", "absolute")),
    "character device": _hostile(Entry("./chr", "chr"), expect=("device",)),
    "block device": _hostile(Entry("./blk", "blk"), expect=("device",)),
    "fifo": _hostile(Entry("./fifo", "fifo"), expect=("FIFO", "fifo")),
    "duplicate names": _hostile(
        Entry("./dup.json", data=b"one"), Entry("./dup.json", "dir"), expect=("dup", "twice", "conflict", "exists")
    ),
    "newline in a name": _hostile(Entry("./new\nline.json", data=b"x"), expect=("control", "character", "name")),
    "escape sequence in a name": _hostile(Entry("./esc\x1b[31m", data=b"x"), expect=("control", "character", "name")),
    "setuid file (neutralised)": _hostile(Entry("./suid.sh", data=b"#!/bin/sh\n", mode=0o6777), expect=None),
    "gzip bomb": gzip_bomb,
    "member-count bomb": member_bomb,
    "truncated stream": truncated_stream,
}
