"""Opening the ZIP containers of office documents and e-books without being bombed.

Word, PowerPoint and Excel files (OOXML), OpenDocument files and EPUB e-books are ZIP
archives of XML.  A hostile one can declare small members that inflate to gigabytes
(a zip bomb), hold thousands of members, or carry XML whose entity declarations expand
exponentially (billion laughs).  Every extractor of these families opens its archive
through :func:`open_archive` and reads members with :meth:`SafeArchive.read`, so the
same bounds (:class:`bot.ingest.limits.ArchiveLimits`, declared once) hold whichever
library parses the XML afterwards:

- the member count, each member's size and the archive's total size, as declared in the
  central directory, before anything is inflated;
- each member's compression ratio (a real document's XML compresses 5-20 times; a bomb
  of repeated bytes 1000 times or more);
- the bytes actually inflated, counted while reading, since declared sizes can lie;
- XML with a document type declaring entities, which office formats never need.

A library that opens the archive itself (python-docx, python-pptx, openpyxl, ebooklib)
is given :func:`checked_copy`: the archive with every member read once through these
checks and stored uncompressed, so each part is inflated exactly once, here.

All refusals are :class:`ExtractionRefused` with a plain message; this runs inside the
sandbox's child, whose memory and time limits remain the last line.
"""

from __future__ import annotations

import io
import re
import zipfile

from bot.ingest.filetypes import ExtractionRefused, RefusalCode, display_name
from bot.ingest.limits import ArchiveLimits

__all__ = ["SafeArchive", "check_xml", "checked_copy", "open_archive"]

_MB = 1024 * 1024
_READ_CHUNK = 1 << 16
# An entity declaration in a DOCTYPE: what billion-laughs and external-entity attacks
# need, and what no OOXML, ODF or EPUB part carries.
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)


DEFAULT_LIMITS = ArchiveLimits()


class SafeArchive:
    """A checked ZIP archive whose members are read within the limits."""

    def __init__(self, archive: zipfile.ZipFile, name: str, limits: ArchiveLimits) -> None:
        self._zip = archive
        self._name = name
        self._limits = limits
        self._inflated = 0

    def names(self) -> list[str]:
        """The members' names, in archive order."""
        return self._zip.namelist()

    def __contains__(self, member: str) -> bool:
        try:
            self._zip.getinfo(member)
        except KeyError:
            return False
        return True

    def read(self, member: str, *, xml: bool | None = None) -> bytes:
        """A member's bytes, counted as they inflate; XML members are checked for entities.

        ``xml`` None: judged by the name (``.xml``, ``.rels``, ``.xhtml``, ``.opf``,
        ``.ncx``, ``.html``, ``.htm``).

        Raises:
            ExtractionRefused: the member is missing, or inflates past a limit, or is
                XML declaring entities.
        """
        try:
            info = self._zip.getinfo(member)
        except KeyError:
            raise ExtractionRefused(
                RefusalCode.BROKEN, f"{self._name} is damaged: it has no {member} part."
            ) from None
        limit = min(self._limits.max_member_bytes, self._limits.max_total_bytes - self._inflated)
        out = io.BytesIO()
        try:
            with self._zip.open(info) as stream:
                while chunk := stream.read(_READ_CHUNK):
                    if out.tell() + len(chunk) > limit:
                        raise _bomb(
                            self._name,
                            f"its part {member} inflates past {limit // _MB:,} MB, more than "
                            "the archive's limits leave it",
                        )
                    out.write(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise ExtractionRefused(
                RefusalCode.BROKEN, f"{self._name} is damaged: {member} cannot be read ({exc})."
            ) from None
        data = out.getvalue()
        self._inflated += len(data)
        if xml if xml is not None else _looks_xml(member):
            check_xml(data, self._name, member)
        return data

    def stored_copy(self) -> io.BytesIO:
        """The archive again with every member read once through :meth:`read` (counted,
        XML checked) and stored uncompressed, for a parser that opens the archive itself:
        it then reads each part without inflating it a second time.  Directory entries,
        which no parser needs, are left out; dates are 1980-01-01 (nothing reads them)."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as copy:
            for member in dict.fromkeys(self.names()):  # a name twice is read once
                if not member.endswith("/"):
                    copy.writestr(zipfile.ZipInfo(member), self.read(member))
        out.seek(0)
        return out

    def close(self) -> None:
        """Release the archive."""
        self._zip.close()

    def __enter__(self) -> SafeArchive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_archive(
    data: bytes, filename: str | None, limits: ArchiveLimits = DEFAULT_LIMITS
) -> SafeArchive:
    """Open a document's ZIP container after checking what its directory declares.

    Raises:
        ExtractionRefused: ``broken`` if it is no ZIP archive; ``encrypted`` if a member
            is encrypted; ``over_limit`` for too many members, declared sizes past the
            limits, or a compression ratio only a zip bomb has.
    """
    name = display_name(filename)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractionRefused(
            RefusalCode.BROKEN, f"{name} is damaged: its ZIP container cannot be read ({exc})."
        ) from None
    try:
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            raise _bomb(
                name, f"it holds {len(infos):,} parts, over the limit of {limits.max_members:,}"
            )
        total = 0
        for info in infos:
            if info.flag_bits & 0x1:
                raise ExtractionRefused(
                    RefusalCode.ENCRYPTED,
                    f"{name} is password-protected; share a copy without a password.",
                )
            if info.file_size > limits.max_member_bytes:
                raise _bomb(
                    name,
                    f"its part {info.filename} would inflate to {info.file_size / _MB:,.0f} MB, "
                    f"over the limit of {limits.max_member_bytes // _MB:,} MB per part",
                )
            total += info.file_size
            if (
                info.file_size > limits.ratio_floor_bytes
                and info.file_size > limits.max_ratio * max(info.compress_size, 1)
            ):
                ratio = info.file_size / max(info.compress_size, 1)
                raise _bomb(
                    name,
                    f"its part {info.filename} is compressed {ratio:,.0f} times, over the "
                    f"limit of {limits.max_ratio:,.0f} (real documents compress 5-20 times)",
                )
        if total > limits.max_total_bytes:
            raise _bomb(
                name,
                f"its parts would inflate to {total / _MB:,.0f} MB, over the limit of "
                f"{limits.max_total_bytes // _MB:,} MB",
            )
    except BaseException:
        archive.close()
        raise
    return SafeArchive(archive, name, limits)


def checked_copy(
    data: bytes, filename: str | None, limits: ArchiveLimits = DEFAULT_LIMITS
) -> io.BytesIO:
    """A document's archive for a parser that opens it itself: checked by
    :func:`open_archive`, then :meth:`SafeArchive.stored_copy`.

    Raises:
        ExtractionRefused: as :func:`open_archive` and :meth:`SafeArchive.read` do.
    """
    with open_archive(data, filename, limits) as archive:
        return archive.stored_copy()


def check_xml(data: bytes, filename: str | None, part: str = "") -> None:
    """Refuse XML that declares entities (billion laughs, external entities).

    Raises:
        ExtractionRefused: code ``broken``, naming the part.
    """
    if _ENTITY_DECLARATION.search(data):
        where = f" ({part})" if part else ""
        raise ExtractionRefused(
            RefusalCode.BROKEN,
            f"{display_name(filename)} was not read: its XML{where} declares entities, "
            "which documents do not need and attacks on XML readers do.",
        )


def _looks_xml(member: str) -> bool:
    return member.lower().endswith((".xml", ".rels", ".xhtml", ".opf", ".ncx", ".html", ".htm"))


def _bomb(name: str, what: str) -> ExtractionRefused:
    return ExtractionRefused(RefusalCode.OVER_LIMIT, f"{name} was not read: {what}.")
