"""Type detection, text decoding and in-process extraction (bot.ingest.filetypes/extract)."""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections.abc import Callable

import pytest
from conftest import build_raw_pdf

from bot.errors import LibrarianError
from bot.ingest.extract import (
    Extracted,
    ExtractionRefused,
    Page,
    clean_pdf_text,
    clean_plain_text,
    extract,
)
from bot.ingest.filetypes import (
    FileKind,
    FileTooLarge,
    RefusalCode,
    UnsupportedFileType,
    check_size,
    decode_text,
    detect_kind,
    display_name,
)
from bot.ingest.furniture import without_running_lines

GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes(20)


def _zip_bytes(names: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in names.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _refused(code: str, data: bytes, filename: str, media_type: str | None = None, **kw):
    with pytest.raises(ExtractionRefused) as caught:
        extract(data, filename, media_type, **kw)
    assert caught.value.reason_code == code, caught.value.message
    assert str(caught.value) == caught.value.message
    return caught.value


# --- refusals: what the file is --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "filename", "detected"),
    [
        (GIF, "photo.gif", "a GIF image"),
        (GIF, "renamed.pdf", "a GIF image"),  # the bytes win over the name
        (_zip_bytes({"a.txt": b"hello"}), "stuff.zip", "a ZIP archive"),
        (_zip_bytes({"word/document.xml": b"<w/>"}), "noext", "a ZIP archive"),
        (b"\x1f\x8b\x08\x00" + bytes(20), "x.tar.gz", "a gzip archive"),
        (b"\x7fELF\x02\x01\x01" + bytes(40), "tool", "a program"),
        (bytes(range(256)) * 4, "blob.bin", "binary data"),
        (b"hello\x00world" * 20, "notes.txt", "binary data"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "logo.svg", "an SVG image"),
    ],
)
def test_unsupported_types_are_named(data: bytes, filename: str, detected: str) -> None:
    exc = _refused("unsupported_type", data, filename)
    assert isinstance(exc, UnsupportedFileType)
    assert detected in exc.message
    assert filename in exc.message
    assert "PDF" in exc.message and "Markdown" in exc.message  # says what is supported


def test_too_large_says_size_and_limit() -> None:
    data = b"word " * 300_000  # 1.5 MB (1.43 MiB)
    exc = _refused("too_large", data, "big.txt", max_mb=1)
    assert isinstance(exc, FileTooLarge)
    assert exc.message == "big.txt is 1.5 MB; the limit is 1 MB."
    # At the limit is fine.
    check_size(1024 * 1024, 1.0, "ok.txt")
    with pytest.raises(FileTooLarge, match=r"is 1\.1 MB; the limit is 1 MB"):
        check_size(1024 * 1024 + 1, 1.0, "over.txt")  # rounded up, never "1 MB > 1 MB"


def test_empty_files_are_refused() -> None:
    assert "0 bytes" in _refused("empty", b"", "nothing.pdf").message
    _refused("empty", b"  \n\n\t\n", "blank.txt")
    _refused("empty", b"\xef\xbb\xbf", "bom-only.md")


def test_refusals_are_librarian_errors_and_pickle() -> None:
    exc = ExtractionRefused("scanned", "x looks scanned")
    assert isinstance(exc, LibrarianError)
    assert exc.code is RefusalCode.SCANNED
    again = pickle.loads(pickle.dumps(FileTooLarge("too big")))
    assert isinstance(again, FileTooLarge) and again.message == "too big"
    with pytest.raises(ValueError):
        ExtractionRefused("no_such_code", "x")


def test_display_name_is_safe_for_messages() -> None:
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\report.pdf") == "report.pdf"
    assert display_name("evil\nname\x1b[31m.txt") == "evil name [31m.txt"
    assert display_name("") == "the file"
    assert len(display_name("a" * 500 + ".pdf")) == 80


# --- text and Markdown -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Grüße, naïve café".encode(), "Grüße, naïve café"),
        (b"\xef\xbb\xbf" + "Grüße".encode(), "Grüße"),
        ("Grüße ✓".encode("utf-16"), "Grüße ✓"),  # with BOM
        ("Grüße ✓".encode("utf-32"), "Grüße ✓"),
        ("Grüße – “quoted”".encode("cp1252"), "Grüße – “quoted”"),
        ("Ça coûte 5 €".encode("cp1252"), "Ça coûte 5 €"),
        (b"caf\xe9 \x81", "café \x81"),  # 0x81 is undefined in cp1252: Latin-1 instead
    ],
)
def test_decode_text_encodings(raw: bytes, expected: str) -> None:
    assert decode_text(raw, "x.txt") == expected


def test_decode_text_refuses_binary_and_unknown_encodings() -> None:
    with pytest.raises(UnsupportedFileType, match="binary data"):
        decode_text(b"text with a NUL\x00 in it", "x.txt")
    with pytest.raises(UnsupportedFileType, match="binary data"):
        decode_text(bytes(range(1, 32)) * 10, "x.txt")
    # GBK text is mostly high bytes: cp1252 would turn it into mojibake.
    with pytest.raises(UnsupportedFileType, match="encoding"):
        decode_text("中文文本，这是一个测试。".encode("gbk") * 5, "x.txt")


def test_text_file_is_one_page_or_split_by_form_feed() -> None:
    one = extract(b"Hello there.\r\nSecond line.   \n\n\n\nAfter gap.\n", "notes.txt", None)
    assert one.media_type == "text/plain"
    assert one.page_count == 1 and one.title == "notes"
    assert one.pages == [Page(1, "Hello there.\nSecond line.\n\nAfter gap.")]

    paged = extract(b"page one\fpage two\f\fpage four", "paged.txt", "text/plain")
    assert paged.page_count == 4
    assert [(p.number, p.text) for p in paged.pages] == [
        (1, "page one"),
        (2, "page two"),
        (4, "page four"),
    ]


def test_markdown_detected_by_extension_or_media_type_and_titled() -> None:
    doc = "Intro line\n\n# The Real Title\n\nBody with `code`.\n\n    indented code\n"
    result = extract(doc.encode(), "guide.md", None)
    assert result.media_type == "text/markdown"
    assert result.title == "The Real Title"
    assert "    indented code" in result.text  # layout kept for Markdown
    # Sections by heading path: what comes before the first heading is its own part.
    assert [p.location for p in result.pages] == ["start of the document", "section The Real Title"]

    assert detect_kind(b"# hi", "README.markdown") is FileKind.MARKDOWN
    assert detect_kind(b"# hi", "upload", "text/markdown; charset=utf-8") is FileKind.MARKDOWN
    assert detect_kind(b"# hi", "notes.txt", "text/markdown") is FileKind.TEXT  # name wins
    front = extract(b"---\ntitle: 'From front matter'\n---\n\n# Other\n", "a.md", None)
    assert front.title == "From front matter"


def test_plain_text_cleanup_drops_controls_and_ansi() -> None:
    assert clean_plain_text("a\x00b\x1b[31mred\x1b[0m\u200bc  \n") == "abredc"
    assert clean_plain_text("  keep indent\n") == "  keep indent"


# --- PDFs made here ----------------------------------------------------------------------


def test_pdf_pages_keep_their_numbers(make_pdf: Callable[..., bytes]) -> None:
    data = make_pdf(
        ["Alpha page one.", "Bravo page two.", None, "Delta page four."],
        title="Quarterly Report",
    )
    result = extract(data, "report.pdf", "application/pdf")
    assert isinstance(result, Extracted)
    assert result.page_count == 4
    assert [p.number for p in result.pages] == [1, 2, 4]  # the drawing-only page is skipped
    assert "Bravo page two." in result.pages[1].text
    assert result.title == "Quarterly Report"
    assert result.media_type == "application/pdf"
    assert result.warnings == []


def test_pdf_text_only_on_page_two(make_pdf: Callable[..., bytes]) -> None:
    result = extract(make_pdf([None, "Only here."]), "two.pdf", None)
    assert result.page_count == 2
    assert result.pages == [Page(2, "Only here.")]
    assert result.title == "two"  # no metadata title: the file name


def test_pdf_roundtrips_through_dict(make_pdf: Callable[..., bytes]) -> None:
    result = extract(make_pdf(["One.", "Two."]), "rt.pdf", None)
    assert Extracted.from_dict(result.to_dict()) == result


def test_scanned_pdf_is_refused(make_pdf: Callable[..., bytes]) -> None:
    # Blank pages: no text layer, and nothing for OCR to find (or no OCR installed).
    exc = _refused("scanned", make_pdf([None, None, None]), "scan.pdf")
    assert exc.message.startswith("scan.pdf ")
    assert "no text layer on any of its 3 pages" in exc.message
    single = _refused("scanned", make_pdf([None]), "one.pdf")
    assert "its only page has no text layer" in single.message


def test_pdf_with_no_pages_is_empty() -> None:
    data = build_raw_pdf(
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    )
    assert "no pages" in _refused("empty", data, "hollow.pdf").message


def test_broken_pdfs_are_refused_with_a_short_reason(make_pdf: Callable[..., bytes]) -> None:
    good = make_pdf(["Some text."])
    exc = _refused("broken", good[: len(good) // 3], "cut.pdf")
    assert exc.message.startswith("cut.pdf could not be read as a PDF: ")
    assert len(exc.message) < 200 and "\n" not in exc.message
    # Claims to be a PDF (by name or by media type) but has no header.
    _refused("broken", b"just some words", "fake.pdf")
    _refused("broken", b"just some words", "upload", "application/pdf")


def test_encrypted_pdf_needs_password(make_pdf: Callable[..., bytes]) -> None:
    locked = make_pdf(["Secret text."], user_password="hunter2")
    exc = _refused("encrypted", locked, "locked.pdf")
    assert "encrypted, needs a password" in exc.message
    # Only an owner password (copy/print restrictions): opens with the empty password.
    restricted = make_pdf(["Readable text."], owner_password="boss")
    assert "Readable text." in extract(restricted, "restricted.pdf", None).pages[0].text


def test_pdf_text_cleanup() -> None:
    raw = "The exam-\nple shows ﬁne   text\x00 here.\nJean-\nPierre said\u00a0so.\n\n\n\nNext"
    assert clean_pdf_text(raw) == (
        "The example shows fine text here.\nJean-Pierre said so.\n\nNext"
    )
    assert clean_pdf_text("soft\u00adhy\u00ad\nphen") == "softhyphen"
    assert clean_pdf_text("lone \ud800 surrogate") == "lone \ufffd surrogate"
    assert clean_pdf_text("   \n \x00 ") == ""


# --- real PDFs from the shared corpus (in-process; the sandbox tests repeat some) ---------


@pytest.mark.parametrize(
    ("name", "page_count", "text_pages", "needle"),
    [
        ("pypdf-samples_004_pdflatex-4-pages.pdf", 4, 4, None),
        ("pypdf-samples_026_latex-multicolumn.pdf", 3, 3, "Lorem ipsum"),
        ("pypdf_Seige_of_Vicksburg_Sample_OCR.pdf", 6, 6, "Vicksburg"),  # scan + OCR layer
        ("acl_N18-3011.pdf", 8, 8, "Semantic Scholar"),
    ],
)
def test_real_pdfs(
    corpus_dir, name: str, page_count: int, text_pages: int, needle: str | None
) -> None:
    result = extract((corpus_dir / "pdfs" / name).read_bytes(), name, None)
    assert result.page_count == page_count
    assert len(result.pages) == text_pages
    assert all(p.text.strip() for p in result.pages)
    if needle:
        assert needle in result.text


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("pypdf-samples_005_encrypted-openpassword.pdf", "encrypted"),
    ],
)
def test_real_pdfs_refused(corpus_dir, name: str, code: str) -> None:
    _refused(code, (corpus_dir / "pdfs" / name).read_bytes(), name)


def test_a_running_head_is_kept_on_its_first_page_only(corpus_dir) -> None:
    # Seen in session 13: "With how many men was Johnston rumored to be coming?" was
    # answered "52", the head of page 3 ("52 THE SIEGE OF VICKSBURG."), a number the
    # quoted passage held.
    name = "pypdf_Seige_of_Vicksburg_Sample_OCR.pdf"
    pages = extract((corpus_dir / "pdfs" / name).read_bytes(), name, None).pages
    heads = [p.text.strip().splitlines()[0] for p in pages]
    assert "SIEGE" in heads[0] and "49" in heads[0]  # the first page keeps it
    assert not any("SIEGE" in head for head in heads[1:]), heads  # OCR's "VICKSBUEG" too
    assert "fifty" in pages[0].text  # the text itself is all there
    # A page number that grows is dropped; a date at a page's edge that does not
    # grow with the pages (a WARN report's rows) is data, and kept.
    name = "pdfplumber_federal-register-2020-17221.pdf"
    text = extract((corpus_dir / "pdfs" / name).read_bytes(), name, None).text
    assert text.count("Federal Register / Vol. 85, No. 152") == 1
    name = "pdfplumber_WARN-Report-2015-2016.pdf"
    warn = extract((corpus_dir / "pdfs" / name).read_bytes(), name, None)
    firsts = [p.text.strip().splitlines()[0] for p in warn.pages[1:]]
    assert all(re.fullmatch(r"\d\d/\d\d/\d{4}", first) for first in firsts[:-1]), firsts
    assert without_running_lines(["2\nA", "3\nB", "4\nC"]) == ["2\nA", "B", "C"]
    assert without_running_lines(["1/2\nA", "2/3\nB", "3/4\nC"])[2] == "3/4\nC"
