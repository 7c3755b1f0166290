"""Office, OpenDocument, web, e-book, RTF and table files: read with their structure,
and cited in their own terms ("slide 1 (Quarterly Duck Survey)", "sheet Sheet1, rows
2-10", "section Etymology") when the bot answers from them.

The files are the real ones of ../shared/corpus/office (see its SOURCES.txt), plus a
TSV of our own in tests/fixtures/formats (no TSV there).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from helpers import converse

from bot.app import App
from bot.ingest.extract import Extracted, extract
from bot.ingest.filetypes import (
    SUPPORTED_FORMATS,
    ExtractionRefused,
    FileKind,
    UnsupportedFileType,
    detect_kind,
)
from bot.ingest.formats.common import TITLE_LINES, row_blocks
from bot.ingest.sandbox import Sandbox
from bot.knowledge.sentences import split_sentences, table_header
from bot.knowledge.texts import NOT_FOUND, TEXTS

OFFICE = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "office"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "formats"


def office_file(name: str) -> Path:
    path = OFFICE / name
    if not path.is_file():
        pytest.skip(f"the shared office corpus is not at {OFFICE}")
    return path


def read(path: Path) -> Extracted:
    return extract(path.read_bytes(), path.name)


def page_at(extracted: Extracted, location: str) -> str:
    """The text at ``location``; fails listing the locations there are."""
    found = [p.text for p in extracted.pages if p.location == location]
    assert found, f"no {location!r} in {[p.location for p in extracted.pages]}"
    return "\n\n".join(found)


# --- detection: the bytes decide ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("docling_word_sample.docx", FileKind.DOCX),
        ("markitdown_autogen.pptx", FileKind.PPTX),
        ("unstructured_nestle-2023-half-year-segments.xlsx", FileKind.XLSX),
        ("docling_text_document_01.odt", FileKind.ODT),
        ("docling_odf_table_with_title_01.ods", FileKind.ODS),
        ("docling_odf_presentation_01.odp", FileKind.ODP),
        ("docling_purvis_poetry.epub", FileKind.EPUB),
        ("kreuzberg_pandoc-error-codes.rtf", FileKind.RTF),
        ("docling_wiki_duck.html", FileKind.HTML),
    ],
)
def test_a_renamed_file_is_still_known_by_its_bytes(name: str, kind: FileKind) -> None:
    data = office_file(name).read_bytes()
    assert detect_kind(data, name) is kind
    assert detect_kind(data, "upload.bin") is kind  # chat platforms lose names


def test_an_xlsm_is_a_workbook_with_the_macro_enabled_type() -> None:
    source = office_file("unstructured_nestle-2023-half-year-segments.xlsx").read_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(source)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "[Content_Types].xml":
                data = data.replace(
                    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                    b"application/vnd.ms-excel.sheet.macroEnabled.main+xml",
                )
                assert b"macroEnabled" in data
            dst.writestr(info, data)
    xlsm = out.getvalue()
    assert detect_kind(xlsm, "segments.xlsm") is FileKind.XLSX
    text = page_at(extract(xlsm, "segments.xlsm"), "sheet OS-Rev.and results 30 06 2023, rows 1-9")
    assert "| Zone NA | 12553 | 2713 | 2632 |" in text


def test_the_refusal_names_every_supported_format() -> None:
    gif = b"GIF89a" + bytes(64)  # PNG, JPEG, TIFF, WebP and BMP are read by OCR; GIF is not
    with pytest.raises(UnsupportedFileType) as caught:
        extract(gif, "diagram.gif")
    message = caught.value.message
    assert message.startswith("diagram.gif is a GIF image. Librarian can read PDF (.pdf), Word")
    for family, extensions in SUPPORTED_FORMATS:
        assert family in message
        for ext in extensions:
            assert ext in message


# --- what each reader returns ---------------------------------------------------------


def test_word_sections_tables_and_recorded_pages() -> None:
    doc = read(office_file("docling_word_sample.docx"))
    eat = page_at(doc, "section Let’s swim! > Let’s eat, p. 2")
    assert "| Berries | Blueberry, Strawberry, Cranberry | 150 |" in eat  # a row, not a soup
    assert "|  | Food | Calories per portion |" in eat
    assert "Paddle about" in page_at(doc, "section Let’s swim!, p. 1")

    handbook = read(office_file("unstructured_handbook-1p.docx"))  # no headings, 2 pages
    assert [p.location for p in handbook.pages] == ["p. 1", "p. 2"]
    assert "ROLE OF THE UNITED STATES TRUSTEE" in page_at(handbook, "p. 2")

    chinese = read(office_file("chatchat_nuclear-psr-part12-design-draft_zh.docx"))
    assert "本部分为《核电厂定期安全评价》系列标准的第12部分" in page_at(chinese, "section 前 言")


def test_powerpoint_slides_tables_charts() -> None:
    chart = read(office_file("docling_pptx_chart.pptx"))
    assert [p.location for p in chart.pages] == [
        "slide 1 (Quarterly Duck Survey)",
        "slide 2 (Quarterly revenue)",
    ]
    survey = page_at(chart, "slide 1 (Quarterly Duck Survey)")
    assert "|  | Freshwater Ducks | Saltwater Ducks |" in survey  # the chart's own data
    assert "| 2022 | 175 | 130 |" in survey
    # A 3-D bar chart, a plot type python-pptx does not read, is read from its cached
    # values too (seen by hand in session 19: "What was the revenue in Q2?" was "No
    # document mentions: Q2").
    revenue = page_at(chart, "slide 2 (Quarterly revenue)")
    assert "|  | 2026 |\n| Q1 | 10 |\n| Q2 | 20 |\n| Q3 | 30 |" in revenue

    deck = read(office_file("markitdown_autogen.pptx"))
    assert deck.page_count == 6
    table = page_at(deck, "slide 3 (A table to test parsing:)")
    assert "| 7 | 8 | 9 | 1b92870d-e3b5-4e65-8153-919f4ff45592 | 11 | 12 |" in table


def test_excel_rows_in_blocks_with_the_header_repeated_and_cached_values() -> None:
    book = read(office_file("unstructured_nestle-2023-half-year-segments.xlsx"))
    sheet = "sheet OS-Rev.and results 30 06 2023, "
    blocks = [p for p in book.pages if p.location.startswith(sheet)]
    assert len(blocks) > 3
    header = "|  | Sales (a) | Underlying Trading operating profit (b) |"
    # Title rows come first; from the header row on, every block starts with the title
    # lines and the header, and the header repeated further down (the 2022 half of the
    # sheet) is not a block of its own.
    assert blocks[0].location == sheet + "rows 1-9"
    assert all(header in b.text for b in blocks[1:])
    # Totals are formulas in the workbook: their cached values are read.
    assert "| Zone LATAM | 6082 | 1202 | 1101 |" in page_at(book, sheet + "rows 12-13")

    kyc = read(office_file("tika_CVLKRA-KYC-file-structure.xlsx"))
    assert kyc.page_count == 30  # sheets
    assert "POS CODE" in page_at(kyc, "sheet KYC HEADER, rows 1-5")


def test_a_sheets_title_lines_travel_with_every_block_of_its_rows() -> None:
    """Found by hand (issue 15): the period and unit above the Nestlé sheet's header
    ("In millions of CHF ... January–June 2023") were in its first block only, so a row
    further down was indexed and quoted without them."""
    book = read(office_file("unstructured_nestle-2023-half-year-segments.xlsx"))
    sheet = "sheet OS-Rev.and results 30 06 2023, "
    blocks = [p for p in book.pages if p.location.startswith(sheet)]
    header = "|  | Sales (a) | Underlying Trading operating profit (b) |"
    title = "| 3.1 Operating segments |\n| Revenue and results |\n| In millions of CHF, "
    # The first block: the title lines once, where the sheet has them (a title's cells
    # in one, so that it is never taken for the header), then the header.
    first = blocks[0].text
    assert first.startswith("| 3. Analyses by segment |\n" + title + "January–June 2023 |\n")
    assert first.count("January–June 2023") == 1 and first.count(header) == 1
    # A block far down: the nearest title lines (bounded: not the chapter above them),
    # then the header, then its rows.
    aoa = page_at(book, sheet + "rows 10-11")
    assert aoa.startswith(title + "January–June 2023 |\n" + header)
    assert "| Zone AOA | 9060 | 2068 | 1985 |" in aoa and "3. Analyses" not in aoa
    # The sheet's second table, titled "January–June 2022" above a repeat of the header,
    # starts a block, and its rows carry that period, not the sheet's first one.
    later = [b for b in blocks if b.text.startswith(title + "January–June 2022 |\n" + header)]
    assert later[0].location == sheet + "rows 21-25"
    assert later == blocks[blocks.index(later[0]) :]
    assert "| Nespresso | 3190 | 777 | 757 |" in "".join(b.text for b in later)
    assert not any("In millions of CHF |" in b.text for b in blocks)  # the row, as a title

    # No title rows: every block is the header and rows, as before.
    kyc = read(office_file("tika_CVLKRA-KYC-file-structure.xlsx"))
    kyc_header = "| S.No | Field | Field Type | Field Length |"
    sheet_blocks = [p for p in kyc.pages if p.location.startswith("sheet KYC, ")]
    assert len(sheet_blocks) > 10
    assert all(p.text.startswith(kyc_header) for p in sheet_blocks)


def test_rows_that_are_data_are_no_title() -> None:
    """Only narrow rows of words (a year may stand beside them) right above the header
    are a title, a few of them: a number above the header is data, and a dozen lines
    there are a form."""
    header = ["Region", "Q1", "Q2", "Q3"]
    body = [[f"Region {n}", n, n * 2, n * 3] for n in range(1, 40)]
    numbered = [["Budget"], ["Paid", 1250], header, *body]
    pages = row_blocks(enumerate(numbered, start=1), "")
    assert pages[0].text.startswith("| Budget |\n| Paid | 1250 |\n| Region | Q1 |")
    # "1250" is a number, so nothing above it is copied either.
    assert all(p.text.startswith("| Region | Q1 |") for p in pages[1:])
    form = [[f"Field {n}", f"value {n}"] for n in range(1, 9)]
    pages = row_blocks(enumerate([*form, header, *body], start=1), "")
    assert len(pages) > 2
    # The lines nearest the header, no more than TITLE_LINES of them.
    nearest = "".join(f"| Field {n}, value {n} |\n" for n in range(9 - TITLE_LINES, 9))
    assert all(p.text.startswith(nearest + "| Region | Q1 |") for p in pages[1:])
    assert "| Field 1 | value 1 |" in pages[0].text  # not a title: left as it was

    # A CSV's title, split at its comma: the year is the title's period.
    rows = "".join(f"Office {n},Portugal,{n * 100},{n * 200}\n" for n in range(1, 40))
    data = f"Sales by office, 2023\nIn EUR thousands\n\nOffice,Country,Q1,Q2\n{rows}"
    table = extract(data.encode(), "offices.csv")
    title = "| Sales by office, 2023 |\n| In EUR thousands |\n| Office | Country | Q1 | Q2 |\n"
    assert len(table.pages) > 2 and all(p.text.startswith(title) for p in table.pages)


def test_a_titled_rows_quote_names_its_period_and_the_title_is_one_sentence() -> None:
    book = read(office_file("unstructured_nestle-2023-half-year-segments.xlsx"))
    aoa = page_at(book, "sheet OS-Rev.and results 30 06 2023, rows 10-11")
    titled = "Revenue and results — In millions of CHF, January–June 2023: |  | Sales (a) |"
    assert table_header(aoa).startswith(" ".join(titled.split()))
    sentences = split_sentences(aoa)
    # The header with its title is one sentence (the nearest title lines that fit a line:
    # not "3.1 Operating segments"), which a row is quoted with; the title is not
    # another sentence.
    assert sentences[0] == "3.1 Operating segments"
    assert sentences[1] == table_header(aoa)
    assert sentences[2] == "| Zone EUR | 9467 | 1570 | 1373 | | -197 | -5 | -140 | | -414 |"
    assert not any(s.startswith("Revenue and results") for s in sentences[2:])
    # An untitled table's header is its header row alone; a footnote is a sentence.
    ducks = "| Year | Ducks | Geese |"
    assert table_header(ducks + "\n| 2021 | 150 | 3 |") == ducks
    assert split_sentences(ducks + "\n| (a) Counted in May. |") == [
        ducks,
        "(a) Counted in May.",
    ]


def test_opendocument_text_sheet_and_slides() -> None:
    odt = read(office_file("docling_text_document_01.odt"))
    assert "1914 Cicero translation" in page_at(odt, "section heading level 1.0")
    assert "bullet list 2.2.1" in page_at(odt, "section heading level 1.0 > Heading level 2: A")

    ods = read(office_file("docling_odf_table_with_title_01.ods"))
    ducks = page_at(ods, "sheet Sheet1, rows 2-10")
    assert "|  | Year | Freshwater Ducks |\n|  | 2019 | 120 |" in ducks
    assert "|  | 2023 | 160 |" in ducks

    odp = read(office_file("docling_odf_presentation_01.odp"))
    assert [p.location for p in odp.pages] == [
        "slide 1 (Test Table Slide)",
        "slide 2 (Second slide title)",
        "slide 3",
    ]
    second = page_at(odp, "slide 2 (Second slide title)")
    assert "A rectangle shape with this text inside." in second
    assert "Speaker notes: Some notes on the second slide." in second


def test_web_pages_without_their_furniture() -> None:
    wiki = read(office_file("docling_wiki_duck.html"))
    assert wiki.title == "Duck - Wikipedia"
    assert "Old English" in page_at(wiki, "section Duck > Etymology")  # h1 > h2
    assert "Jump to content" not in wiki.text  # navigation
    assert "function(" not in wiki.text and "{display:" not in wiki.text  # scripts, styles

    # Declares gb2312, is UTF-8: read as UTF-8 (no mojibake).
    news = read(office_file("readability_qq-deepmind-dnc_zh.html"))
    assert "可微神经计算机" in page_at(
        news, "section DeepMind新电脑已可利用记忆自学 人工智能迈上新台阶"
    )


def test_epub_chapters_rtf_tables_and_csv_rows() -> None:
    poetry = read(office_file("docling_purvis_poetry.epub"))
    assert poetry.title == "Poetry"
    grave = page_at(poetry, "section The Grave of the Slave")
    assert "The cold storms of winter shall chill him no more" in grave

    rtf = read(office_file("kreuzberg_pandoc-error-codes.rtf"))
    assert "| Code | Error |\n| 3 | PandocFailOnWarningError |" in page_at(rtf, "")

    issues = read(office_file("chatchat_langchain-chatglm-closed-issues_zh.csv"))
    assert len(issues.pages) > 10
    assert all(p.text.startswith("|  | title | file | url | detail | id |") for p in issues.pages)
    assert re.fullmatch(r"rows 1-\d+", issues.pages[0].location)

    budget = read(FIXTURES / "office-budget-2026.tsv")
    header = "| Office | Country | Q1 total (EUR) | Q2 total (EUR) | Q3 total (EUR) |"
    assert len(budget.pages) > 2 and all(p.text.startswith(header) for p in budget.pages)
    lisbon = [p for p in budget.pages if "| Lisbon | Portugal | 44028 | 47760 | 43452 |" in p.text]
    assert len(lisbon) == 1 and re.fullmatch(r"rows \d+-\d+", lisbon[0].location)


def test_markdown_sections_by_heading_path_code_blocks_left_alone() -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    doc = read(readme)
    formats = page_at(doc, "section Librarian > Document formats and citations")
    assert "Citations say where the answer is" in formats
    # Every section is a real heading of the file, never a "# comment" in a code block.
    headings = {
        line.lstrip("#").strip()
        for line in readme.read_text().splitlines()
        if re.match(r"#{1,6} ", line)
    }
    for page in doc.pages:
        assert set(page.location.removeprefix("section ").split(" > ")) <= headings


# --- cheap guards against hostile files (the sandbox's limits are the last line) --------

WORD_TYPES = (
    b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'content-types"><Override PartName="/word/document.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)


def test_a_zip_bomb_dressed_as_word_is_refused_before_it_is_inflated() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", WORD_TYPES)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            zeros = bytes(1 << 20)
            for _ in range(450):
                member.write(zeros)
    bomb = out.getvalue()
    assert len(bomb) < 1_000_000
    with pytest.raises(ExtractionRefused) as caught:
        extract(bomb, "policy.docx")
    assert caught.value.reason_code == "over_limit"
    assert caught.value.message == (
        "policy.docx was not read: its part word/document.xml would inflate to 450 MB, "
        "over the limit of 256 MB per part."
    )


def test_entity_expansion_and_deep_nesting_are_refused_in_plain_words() -> None:
    lol = b'<!ENTITY l0 "lol">' + b"".join(
        b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 10)
    )
    content = (
        b'<?xml version="1.0"?><!DOCTYPE d [' + lol + b"]><office:document-content "
        b'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        b'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body>'
        b"<office:text><text:p>&l9;</text:p></office:text></office:body>"
        b"</office:document-content>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", b"application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", content)
    with pytest.raises(ExtractionRefused) as caught:
        extract(out.getvalue(), "laughs.odt")
    assert caught.value.reason_code == "broken"
    # Refused by the archive checks before the parser sees it, saying why.
    assert caught.value.message.startswith("laughs.odt was not read: its XML (content.xml)")
    assert "declares entities" in caught.value.message

    deep = b"<html><body>" + b"<div>" * 100_000 + b"deep" + b"</div>" * 100_000
    with pytest.raises(ExtractionRefused) as caught:
        extract(deep, "deep.html")
    assert caught.value.message == (
        "deep.html could not be read as a web page: its structure is nested too deeply."
    )


def test_locations_survive_the_sandbox() -> None:
    path = office_file("docling_odf_presentation_01.odp")
    with Sandbox(workers=1) as sandbox:
        result = sandbox.extract(path.read_bytes(), path.name)
    assert result.pages == read(path).pages


# --- asked through the console bot ----------------------------------------------------

# (file, question, text the cited location must hold)
QUESTIONS = [
    (
        "docling_word_sample.docx",
        "How many calories per portion do berries have?",
        "| Berries | Blueberry, Strawberry, Cranberry | 150 |",
    ),
    (
        "docling_pptx_chart.pptx",
        "How many saltwater ducks were observed in 2022?",
        "| 2022 | 175 | 130 |",
    ),
    (
        "unstructured_nestle-2023-half-year-segments.xlsx",
        "What were the sales of Zone LATAM?",
        "| Zone LATAM |",
    ),
    (
        "docling_text_document_01.odt",
        "Who took a 1914 Cicero translation to make dummy text?",
        "1914 Cicero translation",
    ),
    (
        "docling_odf_table_with_title_01.ods",
        "How many freshwater ducks were there in 2023?",
        "|  | 2023 | 160 |",
    ),
    (
        "docling_odf_presentation_01.odp",
        "What text is inside the rectangle shape?",
        "A rectangle shape with this text inside.",
    ),
    ("docling_wiki_duck.html", "Where does the word duck come from?", "Old English"),
    (
        "docling_purvis_poetry.epub",
        "What shall the cold storms of winter no longer do?",
        "The cold storms of winter shall chill him no more",
    ),
    (
        "kreuzberg_pandoc-error-codes.rtf",
        "What is the error with code 5?",
        "| 5 | PandocTemplateError |",
    ),
    (
        "docling_csv-comma.csv",
        "What is the company of Sheryl Baxter?",
        "Rasmussen Group",
    ),
    ("office-budget-2026.tsv", "What is the Q3 total for Lisbon?", "| Lisbon | Portugal |"),
]


def cited_places(reply: str, file_name: str) -> list[str]:
    """The places of ``file_name`` in the reply's Sources ("" when it has none)."""
    line = re.search(rf"^\[\d+\] {re.escape(file_name)}(.*)$", reply, re.MULTILINE)
    assert line, f"{file_name} is not cited in:\n{reply}"
    rest = re.sub(r" \(shared in #[^)]*\)$", "", line.group(1))
    return rest.removeprefix(", ").split("; ") if rest else [""]


async def test_each_format_answers_with_its_own_location(settings, tmp_path: Path) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        for name, question, holds in QUESTIONS:
            path = FIXTURES / name if name.endswith(".tsv") else office_file(name)
            channel = path.suffix.lstrip(".")
            out = await converse(app, [f"/librarian upload {path}"], channel=channel)
            assert f"Indexed {name}" in out.getvalue(), out.getvalue()
            reply = (await converse(app, [f"@librarian {question}"], channel=channel)).getvalue()
            assert NOT_FOUND not in reply, reply
            places = cited_places(reply, name)
            pages = read(path)
            assert any(holds in page_at(pages, place) for place in places), (places, reply)
            if name.endswith((".pptx", ".odp")):
                assert places[0].startswith("slide ")
            if name.endswith((".xlsx", ".ods")):
                assert places[0].startswith("sheet ")
    finally:
        await app.close()


async def test_a_common_word_the_file_lacks_does_not_make_the_answer_not_found(
    settings, tmp_path: Path
) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        path = office_file("docling_csv-comma.csv")
        await converse(app, [f"/librarian upload {path}"], channel="csv")
        # The file never says "work": in a workspace this small, lacking a common word
        # says little (the missing-word weight grows with the workspace), so the row
        # that answers is quoted with its column names.
        question = "@librarian Which company does Sheryl Baxter work for?"
        reply = (await converse(app, [question], channel="csv")).getvalue()
        assert NOT_FOUND not in reply, reply
        assert "Rasmussen Group" in reply and "Company" in reply, reply
        # A name is another matter: no paraphrase of "Argentina" exists.
        question = "@librarian Which company does Sheryl Baxter work for in Argentina?"
        reply = (await converse(app, [question], channel="csv")).getvalue()
        assert NOT_FOUND in reply, reply
    finally:
        await app.close()


async def test_a_chinese_reply_names_the_searched_words_and_its_sources_in_chinese(
    settings, tmp_path: Path
) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        path = office_file("readability_qq-deepmind-dnc_zh.html")
        await converse(app, [f"/librarian upload {path}"], channel="zh")
        # The page says nothing of Microsoft's qubits: not found, and what was searched
        # is named word by word, not as the whole run of characters.
        reply = (
            await converse(app, ["@librarian 微软的量子计算机有多少个量子比特？"], channel="zh")
        ).getvalue()
        assert "我在这个频道工作区的文件中没有找到答案" in reply, reply
        assert "我搜索了：微软, 量子计算机, 量子比特。" in reply, reply
        # Answered: the quotes stay as the page writes them, the labels are Chinese.
        reply = (
            await converse(app, ["@librarian DeepMind的新电脑叫什么？"], channel="zh")
        ).getvalue()
        # The bundled model writes English: the reply is the evidence under a Chinese
        # heading ("the documents say", or "the closest they come").
        heading = reply.removeprefix("librarian: ").split("\n", 1)[0]
        assert heading in (TEXTS["zh"]["replaced"], TEXTS["zh"]["unclear"]), reply
        assert "来源：" in reply and "分享于" in reply, reply
        assert "Sources:" not in reply, reply
    finally:
        await app.close()


async def test_a_row_far_down_a_sheet_is_found_by_the_period_its_title_names(
    settings,
) -> None:
    """Issue 15: each period of the Nestlé sheet is written once, above its table; a
    question naming it is answered from a row far below, quoted with that title and
    its column names (both were answered from another sheet's rows, or "not found")."""
    app = App.build(settings)
    app.start_background()
    try:
        path = office_file("unstructured_nestle-2023-half-year-segments.xlsx")
        await converse(app, [f"/librarian upload {path}"], channel="xlsx")
        sheet = "sheet OS-Rev.and results 30 06 2023, "
        for question, period, row, place in [
            (
                "What was the trading operating profit of Nespresso in January–June 2022?",
                "January–June 2022",
                "| Nespresso | 3190 | 777 | 757 |",
                "rows 30-31",
            ),
            (
                "What were Nestlé's sales in Zone AOA in January–June 2023?",
                "January–June 2023",
                "| Zone AOA | 9060 | 2068 | 1985 |",
                "rows 10-11",
            ),
        ]:
            reply = (await converse(app, [f"@librarian {question}"], channel="xlsx")).getvalue()
            assert NOT_FOUND not in reply, reply
            best = next(line for line in reply.splitlines() if line.startswith('> "'))
            assert f"In millions of CHF, {period}: | | Sales (a) |" in best, reply
            assert row in best and best.endswith(f"{sheet}{place})"), reply
            assert sheet + place in cited_places(reply, path.name)
    finally:
        await app.close()
