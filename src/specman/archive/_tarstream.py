"""Reading tar headers from a stream with ``tarfile``, hardened for hostile input.

This module owns the use of ``tarfile`` for reading: stream mode (``r|``, forward only), and the places
where the standard library is too lenient or keeps too much in memory:

* after the first member, tarfile takes a truncated or corrupt header for the end of the archive (a cut
  download would extract partially, silently): here it is a ``CorruptArchiveError``, and so is a stream that
  ends without its end-of-archive block;
* PAX and GNU long-name headers are read whole into memory: their size is capped;
* header parsing has a fast path for ordinary headers (falls back to tarfile's for anything else);
* ``TarFile.members`` grows by one ``TarInfo`` per member even in stream mode: it is replaced by a list
  that keeps nothing.

It does not decide what members may be created (``_tree``) nor write anything (``extract``).
"""

from __future__ import annotations

import contextlib
import tarfile
from collections.abc import Iterator
from typing import IO, Final, Protocol, cast

from specman.errors import CorruptArchiveError, LimitExceededError, SpecmanError

__all__ = ["MAX_EXTENDED_HEADER", "MemberData", "TarInfo", "map_tar_errors", "member_data", "open_tar_stream"]

#: Largest PAX / GNU long-name header accepted (tarfile reads one into memory in one piece).
MAX_EXTENDED_HEADER: Final = 1 << 20

_EXTENDED_TYPES: Final = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE)
BLOCKSIZE: Final = tarfile.BLOCKSIZE
_ZERO_BLOCK: Final = bytes(BLOCKSIZE)
# mode, uid, gid, size, mtime, devmajor, devminor: in the order TarInfo.frombuf assigns them
_NUMBER_FIELDS: Final = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (329, 337), (337, 345))
_EmptyHeaderError: Final = tarfile.EmptyHeaderError  # type: ignore[attr-defined]
_TruncatedHeaderError: Final = tarfile.TruncatedHeaderError  # type: ignore[attr-defined]
_InvalidHeaderError: Final = tarfile.InvalidHeaderError  # type: ignore[attr-defined]


class MemberData(Protocol):
    """Where a member's content is read from, right after ``TarFile.next()`` returned it."""

    def read(self, size: int, /) -> bytes: ...


def _octal(field: bytes | bytearray) -> int:
    """A tar number field in octal (the common form); ``ValueError`` for anything else."""
    end = field.find(b"\0")
    return int((field if end < 0 else field[:end]).strip() or b"0", 8)


def _text(field: bytes | bytearray, encoding: str, errors: str) -> str:
    end = field.find(b"\0")
    return (field if end < 0 else field[:end]).decode(encoding, errors)


class _GuardedTarInfo(tarfile.TarInfo):
    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _GuardedTarInfo:
        """``TarInfo.frombuf`` with a fast path for ordinary headers (the stdlib's costs ~20 µs a member).

        Anything unusual (end block, old GNU sparse, base-256 numbers, a checksum that only matches as signed
        bytes, malformed fields) takes the standard library's path, which also raises its errors.
        """
        if len(buf) != BLOCKSIZE or buf[156:157] == tarfile.GNUTYPE_SPARSE or buf == _ZERO_BLOCK:
            return super().frombuf(buf, encoding, errors)
        try:
            chksum = _octal(buf[148:156])
            numbers = [_octal(buf[start:end]) for start, end in _NUMBER_FIELDS]
        except ValueError:
            return super().frombuf(buf, encoding, errors)
        if chksum != 256 + sum(buf[:148]) + sum(buf[156:]):
            return super().frombuf(buf, encoding, errors)
        obj = cls()
        obj.name = _text(buf[0:100], encoding, errors)
        obj.mode, obj.uid, obj.gid, obj.size, obj.mtime, obj.devmajor, obj.devminor = numbers
        obj.chksum = chksum
        obj.type = bytes(buf[156:157])
        obj.linkname = _text(buf[157:257], encoding, errors)
        obj.uname = _text(buf[265:297], encoding, errors)
        obj.gname = _text(buf[297:329], encoding, errors)
        prefix = _text(buf[345:500], encoding, errors)
        if obj.type == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE  # old V7 directories
        if obj.isdir():
            obj.name = obj.name.rstrip("/")
        if prefix and obj.type not in tarfile.GNU_TYPES:
            obj.name = prefix + "/" + obj.name
        return obj

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> _GuardedTarInfo:
        try:
            return super().fromtarfile(archive)
        except _EmptyHeaderError as exc:
            raise CorruptArchiveError("tar stream ends without an end-of-archive marker (truncated?)") from exc
        except (_TruncatedHeaderError, _InvalidHeaderError) as exc:
            raise CorruptArchiveError(f"malformed tar header: {exc}") from exc

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_TYPES and self.size > MAX_EXTENDED_HEADER:
            raise LimitExceededError(
                f"tar extended header of {self.size} bytes exceeds the limit of {MAX_EXTENDED_HEADER}"
            )
        proc = super()._proc_member  # type: ignore[misc]
        return cast(tarfile.TarInfo, proc(archive))


class _Discard(list[tarfile.TarInfo]):
    def append(self, item: tarfile.TarInfo, /) -> None:
        return None


#: The ``TarInfo`` class used for reading (exported for the tests comparing it with the standard library's).
TarInfo: Final = _GuardedTarInfo


def open_tar_stream(stream: IO[bytes]) -> tarfile.TarFile:
    """Open ``stream`` (already decompressed) in tarfile's stream mode; it reads the first header at once."""
    archive = tarfile.open(fileobj=stream, mode="r|", tarinfo=_GuardedTarInfo)  # noqa: SIM115 - caller closes
    archive.members = _Discard()  # type: ignore[attr-defined]
    return archive


def member_data(archive: tarfile.TarFile) -> MemberData:
    """The stream positioned at the content of the member ``archive.next()`` just returned.

    Reading exactly ``size`` bytes of it leaves tarfile's bookkeeping right: ``next()`` skips the padding.
    """
    return cast(MemberData, archive.fileobj)


@contextlib.contextmanager
def map_tar_errors() -> Iterator[None]:
    """Turn what ``tarfile`` raises on malformed input into ``CorruptArchiveError``."""
    try:
        yield
    except SpecmanError:
        raise
    except tarfile.TarError as exc:
        raise CorruptArchiveError(f"malformed tar archive: {exc}") from exc
    except RecursionError as exc:
        raise CorruptArchiveError("malformed tar archive: too many nested extended headers") from exc
