"""Layer archives: packing a directory into a deterministic tar+gzip, and extracting archives safely.

This package owns everything between a directory tree and the bytes of a layer: ``compression`` (detect
gzip/zstd/plain tar, decompress on a second thread), ``pack`` (deterministic, streamed, hashed while
written) and ``extract`` (streaming, bomb-limited, traversal-proof, staged then renamed into place).  It
knows nothing about registries (``specman.oci``) or about publishing generations (``specman.store``).
"""

from __future__ import annotations

from specman.archive.compression import Compression, detect_compression, open_decompressed
from specman.archive.extract import (
    DEFAULT_LIMITS,
    ExtractLimits,
    ExtractResult,
    ObjectSink,
    extract_archive,
    extract_into,
)
from specman.archive.pack import RESERVED_ROOT_NAME, PackResult, pack_directory, pack_to_file, reserved_entry

__all__ = [
    "DEFAULT_LIMITS",
    "RESERVED_ROOT_NAME",
    "Compression",
    "ExtractLimits",
    "ExtractResult",
    "ObjectSink",
    "PackResult",
    "detect_compression",
    "extract_archive",
    "extract_into",
    "open_decompressed",
    "pack_directory",
    "pack_to_file",
    "reserved_entry",
]
