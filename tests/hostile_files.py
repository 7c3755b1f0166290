"""Small generators of hostile files, one family each, built in memory by the tests.

Each returns ``(file name, bytes)``.  They are valid enough that a format's extractor
gets past the container and meets the attack: a zip bomb inside a real OOXML, ODF or
EPUB skeleton, billion-laughs entities in the XML a parser must read, an image whose
pixels inflate to gigabytes, HTML nested a hundred thousand levels deep, spreadsheets
with a million empty rows.
"""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib

MB = 1024 * 1024

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/{main}" ContentType="{type}"/></Types>'
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="{main}"/></Relationships>'
)
_OOXML = {
    ".docx": (
        "word/document.xml",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>",
        "</w:t></w:r></w:p></w:body></w:document>",
    ),
    ".pptx": (
        "ppt/presentation.xml",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
        '<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">'
        "<p:notes>",
        "</p:notes></p:presentation>",
    ),
    ".xlsx": (
        "xl/workbook.xml",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<definedNames><definedName>",
        "</definedName></definedNames></workbook>",
    ),
}
_ODF_TYPES = {
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
}
_LAUGHS_DTD = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n"
)


def _write_big(zf: zipfile.ZipFile, name: str, head: str, tail: str, inflated_mb: int) -> None:
    """A member of ``inflated_mb`` MB, nearly all one repeated byte (a zip bomb's body)."""
    block = b"a" * MB
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as member:
        member.write(head.encode())
        for _ in range(inflated_mb):
            member.write(block)
        member.write(tail.encode())


def _ooxml(ext: str, body: bytes | None = None, *, bomb_mb: int = 0) -> bytes:
    main, ctype, head, tail = _OOXML[ext]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES.format(main="/" + main, type=ctype))
        zf.writestr("_rels/.rels", _ROOT_RELS.format(main=main))
        if bomb_mb:
            _write_big(zf, main, head, tail, bomb_mb)
        else:
            zf.writestr(main, body or (head + tail).encode())
    return buffer.getvalue()


def _odf(ext: str, content: bytes | None = None, *, bomb_mb: int = 0) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), _ODF_TYPES[ext])  # stored, first
        zf.writestr(
            "META-INF/manifest.xml",
            '<?xml version="1.0"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:'
            'opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" '
            f'manifest:media-type="{_ODF_TYPES[ext]}"/><manifest:file-entry '
            'manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
            "</manifest:manifest>",
        )
        head = (
            '<?xml version="1.0"?><office:document-content xmlns:office="urn:oasis:names:tc:'
            'opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:'
            'xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0">'
            "<office:body><office:text><text:p>"
        )
        tail = "</text:p></office:text></office:body></office:document-content>"
        if bomb_mb:
            _write_big(zf, "content.xml", head, tail, bomb_mb)
        else:
            zf.writestr("content.xml", content or (head + tail).encode())
    return buffer.getvalue()


def _epub(chapter: bytes | None = None, *, bomb_mb: int = 0) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        zf.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:'
            'opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" '
            'media-type="application/oebps-package+xml"/></rootfiles></container>',
        )
        zf.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
            'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
            '<dc:identifier id="id">hostile</dc:identifier><dc:title>Hostile</dc:title>'
            '<dc:language>en</dc:language></metadata><manifest><item id="c1" '
            'href="chapter.xhtml" media-type="application/xhtml+xml"/></manifest>'
            '<spine><itemref idref="c1"/></spine></package>',
        )
        head = '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>'
        tail = "</p></body></html>"
        if bomb_mb:
            _write_big(zf, "OEBPS/chapter.xhtml", head, tail, bomb_mb)
        else:
            zf.writestr("OEBPS/chapter.xhtml", chapter or (head + tail).encode())
    return buffer.getvalue()


# -- the families ----------------------------------------------------------------------------


def zip_bombs(inflated_mb: int = 300) -> list[tuple[str, bytes]]:
    """One OOXML, one ODF and one EPUB whose main part inflates to ``inflated_mb`` MB."""
    return list(_zip_bombs(inflated_mb))


@functools.cache
def _zip_bombs(inflated_mb: int) -> tuple[tuple[str, bytes], ...]:
    # Deflating 3 x 300 MB takes ~5 s, and two tests ask for the same bombs: made once.
    return (
        ("bomb.docx", _ooxml(".docx", bomb_mb=inflated_mb)),
        ("bomb.odt", _odf(".odt", bomb_mb=inflated_mb)),
        ("bomb.epub", _epub(bomb_mb=inflated_mb)),
    )


def billion_laughs() -> list[tuple[str, bytes]]:
    """Entity expansion to ~3 GB (10^9 "lol"s) in the XML each format's parser reads."""
    laughs = _LAUGHS_DTD
    return [
        (
            "laughs.docx",
            _ooxml(
                ".docx",
                (
                    laughs + '<w:document xmlns:w="http://schemas.openxmlformats.org/'
                    'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r>'
                    "</w:p></w:body></w:document>"
                ).encode(),
            ),
        ),
        (
            "laughs.odt",
            _odf(
                ".odt",
                (
                    laughs + '<office:document-content xmlns:office="urn:oasis:names:tc:'
                    'opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:'
                    'opendocument:xmlns:text:1.0"><office:body><office:text><text:p>&lol9;'
                    "</text:p></office:text></office:body></office:document-content>"
                ).encode(),
            ),
        ),
        (
            "laughs.epub",
            _epub(
                (
                    laughs + '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>&lol9;</p>'
                    "</body></html>"
                ).encode()
            ),
        ),
    ]


def huge_image(side: int = 20_000) -> tuple[str, bytes]:
    """A valid greyscale PNG of ``side`` x ``side`` pixels (400 Mpx), a few hundred KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + one byte per pixel
    batch = row * 500
    idat = b"".join(rows.compress(batch) for _ in range(side // 500)) + rows.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
    return "huge.png", png + chunk(b"IEND", b"")


def deep_html(depth: int = 200_000) -> tuple[str, bytes]:
    """An HTML page nested ``depth`` elements deep around one word."""
    return "deep.html", (
        b"<!DOCTYPE html><html><body>"
        + b"<div>" * depth
        + b"deep"
        + b"</div>" * depth
        + b"</body></html>"
    )


def million_row_sheets(rows: int = 1_048_576) -> list[tuple[str, bytes]]:
    """An XLSX sheet, an ODS table and a CSV, each with ``rows`` empty rows."""
    sheet_head = (
        '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/'
        f'spreadsheetml/2006/main"><dimension ref="A1:XFD{rows}"/><sheetData>'
    )
    sheet = (
        sheet_head.encode()
        + b"".join(b'<row r="%d"/>' % (i + 1) for i in range(rows))
        + b"</sheetData></worksheet>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        main, ctype, _h, _t = _OOXML[".xlsx"]
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES.format(main="/" + main, type=ctype))
        zf.writestr("_rels/.rels", _ROOT_RELS.format(main=main))
        zf.writestr(
            main,
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
            '<sheets><sheet name="Empty" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        zf.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
            'officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
            "</Relationships>",
        )
        zf.writestr("xl/worksheets/sheet1.xml", sheet)
    ods_content = (
        '<?xml version="1.0"?><office:document-content xmlns:office="urn:oasis:names:tc:'
        'opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:'
        'table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body>'
        '<office:spreadsheet><table:table table:name="Empty"><table:table-row '
        f'table:number-rows-repeated="{rows}"><table:table-cell '
        'table:number-columns-repeated="16384"/></table:table-row></table:table>'
        "</office:spreadsheet></office:body></office:document-content>"
    ).encode()
    return [
        ("empty-rows.xlsx", buffer.getvalue()),
        ("empty-rows.ods", _odf(".ods", ods_content)),
        ("empty-rows.csv", b",,,,\n" * rows),
    ]


def every_family() -> list[tuple[str, bytes]]:
    """All of the above, for a test that wants them all."""
    return [
        *zip_bombs(),
        *billion_laughs(),
        huge_image(),
        deep_html(),
        *million_row_sheets(),
    ]
