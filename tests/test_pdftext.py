"""Word breaks in PDF text: table cells pypdf's plain mode glued (bot.ingest.pdftext).

Each generated PDF draws one way of placing words that pypdf's own spacing reads as
one word; the test checks the bot's extraction separates them, and (inside
``pypdf_own_spacing``) that pypdf alone indeed glued them, so the PDF still shows
the problem the code is for.
"""

from __future__ import annotations

import pytest
from conftest import build_flate_stream, build_raw_pdf

from bot.ingest.extract import extract
from bot.ingest.pdftext import install, pypdf_own_spacing

HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
# A font whose glyph at the space's code is half an em wide, like the visible space
# "␣" of TeX's T1-encoded fonts: every glyph 500 thousandths of an em.
WIDE_SPACE = (
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding "
    b"/FirstChar 32 /LastChar 126 /Widths [" + b"500 " * 95 + b"] >>"
)


def one_page(content: bytes, font: bytes = HELVETICA) -> bytes:
    """A one-page PDF showing ``content`` (a content stream) with ``font`` as /F1."""
    return build_raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
            font,
            build_flate_stream(content),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>",
        ]
    )


def text_of(pdf: bytes) -> str:
    """The bot's text of a one-page PDF, whitespace collapsed."""
    return " ".join(extract(pdf, "table.pdf").pages[0].text.split())


def pypdf_text_of(pdf: bytes) -> str:
    """The same with pypdf's own word spacing."""
    with pypdf_own_spacing():
        return text_of(pdf)


def test_the_spaced_extractor_is_in_use() -> None:
    # False would mean this pypdf changed what the subclass relies on: every case
    # below would then be glued again.
    assert install()


# A payroll row drawn as the US Senate report draws it: each cell its own text
# object, the amount column first, then the cells to its left.
ROW_RIGHT_TO_LEFT = b"""
BT /F1 9 Tf 1 0 0 1 400 700 Tm (37,499.96) Tj ET
BT /F1 9 Tf 1 0 0 1 220 700 Tm (DISTRICT DIRECTOR) Tj ET
BT /F1 9 Tf 1 0 0 1 60 700 Tm (BAIN, J MATTHEW) Tj ET
"""
# The same within one text object, moved back with Td (an election bulletin).
TD_BACK = b"BT /F1 8 Tf 1 0 0 1 200 700 Tm (247) Tj -30 0 Td (REP) Tj ET"
# Each header cell is "q BT Tm Tf ... ET Q": at the Tm the font size is the one Q
# restored (12, pypdf's default), so pypdf wanted half a 12-point space between two
# 6-point cells (the FBI table); this gap is 1.2 points, about 0.2 em at 6 points.
CELLS_IN_Q = b"""
q BT 1 0 0 1 50 700 Tm /F1 6 Tf (Handgun) Tj ET Q
q BT 1 0 0 1 75.55 700 Tm /F1 6 Tf (Long Gun) Tj ET Q
"""
# Digits placed in columns by character spacing (Tc) of 3.9 em, compensated by TJ
# offsets between the digits of one number: "0" and "35" are two cells.
SPREAD_BY_TC = b"BT /F1 1 Tf 6 0 0 6 100 700 Tm 3.9 Tc [(03) 3916 (5)] TJ ET"
# Upside-down text: moving left is moving forward; a column gap of 8 em.
UPSIDE_DOWN = b"""
BT /F1 10 Tf -1 0 0 -1 400 700 Tm (Total) Tj -1 0 0 -1 300 700 Tm (Amount) Tj ET
"""


@pytest.mark.parametrize(
    ("content", "pypdf_glued", "spaced"),
    [
        (
            ROW_RIGHT_TO_LEFT,
            "37,499.96DISTRICT DIRECTORBAIN, J MATTHEW",
            "37,499.96 DISTRICT DIRECTOR BAIN, J MATTHEW",
        ),
        (TD_BACK, "247REP", "247 REP"),
        (CELLS_IN_Q, "HandgunLong Gun", "Handgun Long Gun"),
        (SPREAD_BY_TC, "035", "0 35"),
        (UPSIDE_DOWN, "TotalAmount", "Total Amount"),
    ],
    ids=["cells-right-to-left", "td-back", "font-restored-by-Q", "spread-by-Tc", "upside-down"],
)
def test_table_cells_are_separate_words(content: bytes, pypdf_glued: str, spaced: str) -> None:
    pdf = one_page(content)
    assert pypdf_text_of(pdf) == pypdf_glued
    assert text_of(pdf) == spaced


def test_word_gaps_narrower_than_the_fonts_space_glyph() -> None:
    # TeX shrinks a justified line's word spaces to 0.22 em, less than half of a
    # half-em "space" glyph: pypdf glued "EinRaumX heißtzusammenhängend".
    pdf = one_page(b"BT /F1 10 Tf 100 700 Td [(Ein) -227 (Raum) -227 (X)] TJ ET", WIDE_SPACE)
    assert pypdf_text_of(pdf) == "EinRaumX"
    assert text_of(pdf) == "Ein Raum X"


@pytest.mark.parametrize(
    ("content", "text"),
    [
        # An accent drawn over the letter before it (0.5 em back), then the word goes
        # on: one word, as before.
        (
            b"BT /F1 10 Tf 1 0 0 1 100 700 Tm (Erd) Tj 1 0 0 1 115.5 700 Tm (o) Tj "
            b"1 0 0 1 116 702 Tm (^) Tj 1 0 0 1 121 700 Tm (s) Tj ET",
            "Erdo^s",
        ),
        # Kerning in a TJ array, both ways, and a word placed glyph by glyph.
        (b"BT /F1 10 Tf 100 700 Td [(W) 80 (a) -40 (ter)] TJ ET", "Water"),
        (b"BT /F1 10 Tf 100 700 Td (T) Tj 5.6 0 Td (ext) Tj ET", "Text"),
        # Letter-spaced heading: character spacing of 0.3 em keeps the word.
        (b"BT /F1 10 Tf 3 Tc 100 700 Td (TITLE) Tj ET", "TITLE"),
        # Ordinary words and lines.
        (b"BT /F1 10 Tf 12 TL 100 700 Td (one two) Tj T* (three) Tj ET", "one two three"),
    ],
    ids=["accent", "tj-kerning", "glyph-by-glyph", "letter-spaced", "lines"],
)
def test_ordinary_text_is_unchanged(content: bytes, text: str) -> None:
    pdf = one_page(content)
    assert text_of(pdf) == pypdf_text_of(pdf) == text


# --- real tables from the shared corpus (US government public records) -------------------


@pytest.mark.parametrize(
    ("name", "row"),
    [
        ("pdfplumber_senate-expenditures.pdf", "37,499.96 DISTRICT DIRECTOR BAIN, J MATTHEW"),
        ("pdfplumber_la-precinct-bulletin-2014-p1.pdf", "NEEL KASHKARI 247 REP NO 142"),
        ("pdfplumber_nics-background-checks-2015-11.pdf", "2,268 1,957 121 8 9 0 2,248 1,135"),
        ("pdfplumber_nics-background-checks-2015-11-rotated.pdf", "36 19 0 0 0 0 103,532"),
        ("pdfplumber_WARN-Report-2015-2016.pdf", "Closure Permanent 07/13/2015"),
    ],
)
def test_corpus_table_rows_read_as_words(corpus_dir, name: str, row: str) -> None:
    result = extract((corpus_dir / "pdfs" / name).read_bytes(), name)
    assert row in " ".join(result.text.split())
