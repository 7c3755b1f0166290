"""Answers people can trust: evidence under every answer, the model's text checked against
the sources, "not found" when the documents do not say, questions that name a document.

Real Postgres, real embedding model, the real pipeline.  The chat model is the packaged
SmolLM2, or, where a test needs a model that misreads, a remote OpenAI-compatible server
on loopback that answers what the test scripts (the edge of the world: a remote model is
somebody else's server, and this one speaks its wire format: ``/v1/models`` and streamed
``/v1/chat/completions``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import converse, make_epub, make_pdf, say

from bot.app import App
from bot.events import ConversationRef
from bot.knowledge.acronyms import definitions, expansions
from bot.knowledge.answer import ANSWER_SEED, language
from bot.knowledge.check import ECHO, EMPTY, NO_FIGURE, check_answer
from bot.knowledge.definition import asked_short_form, asked_what_is, spelled_out
from bot.knowledge.draft import only_recites, tidy_draft
from bot.knowledge.question import is_follow_up
from bot.knowledge.quotes import Evidence, Quote
from bot.knowledge.reply import CLEAR_COVERAGE, Answer, evidence_heading, format_quotes
from bot.knowledge.texts import NOT_FOUND, TEXTS
from bot.store.records import ChunkHit

GENERAL = ConversationRef("console", "", "general")


async def evidence_for(app: App, question: str) -> Answer:
    """The evidence step's reply to ``question`` in #general, without the chat model."""
    binding = await app.dispatcher.binding(GENERAL)
    return await app.answerer.answer(
        binding,
        None,
        question,
        author="console:alice",
        conversation_key=question,
        evidence_only=True,
    )


async def evidence_on_shared_pdfs(
    settings: Any, corpus_dir: Path, names: list[str], question: str
) -> Answer:
    """The evidence step's reply to ``question`` in #general, once the corpus PDFs
    ``names`` (of ``shared/corpus/pdfs``) are shared there."""
    app = App.build(settings)
    app.start_background()
    try:
        for name in names:
            pdf = corpus_dir / "pdfs" / name
            assert "Indexed" in await say(app, f"/librarian upload {pdf}")
        return await evidence_for(app, question)
    finally:
        await app.close()


@contextlib.asynccontextmanager
async def files_shared(settings: Any, *paths: Path) -> AsyncIterator[App]:
    """A running bot with ``paths`` shared (indexed) in #general."""
    app = App.build(settings)
    app.start_background()
    try:
        for path in paths:
            assert "Indexed" in await say(app, f"/librarian upload {path}")
        yield app
    finally:
        await app.close()


AIRWORTHINESS = [
    [
        "Airworthiness directive 2020-17221.",
        "The FAA proposes an AOA sensor system test on each airplane.",
        "The test must be done before the airplane returns to service.",
    ],
    [
        "Costs of compliance.",
        "The FAA estimates that the AOA sensor system test costs $3,400 per airplane.",
        "The proposed directive affects 73 airplanes of U.S. registry.",
    ],
]


class _Scripted(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat server that answers with ``server.reply``."""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _json(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "misreader", "object": "model"}]})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": "not found"})
            return
        self.server.requests.append(request)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for word in self.server.reply.split(" "):  # type: ignore[attr-defined]
            chunk = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "model": "misreader",
                "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        end = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "model": "misreader",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture
def scripted_model() -> Iterator[ThreadingHTTPServer]:
    """A remote chat model on loopback whose answer the test sets."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    server.reply = ""  # type: ignore[attr-defined]
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_check_compares_numbers_as_numbers() -> None:
    sources = "The test costs $3,400 per airplane. 73 airplanes of U.S. registry."
    assert check_answer("It costs $3,400 [1].", sources).passed
    assert check_answer("It costs 3400 dollars.", sources).passed
    assert check_answer("It costs 3,400.", sources).passed
    misread = check_answer("It costs $3.40 per airplane [1].", sources)
    assert not misread.passed and misread.unsupported == ["$3.40"]
    assert not check_answer("The cost was estimated by Airbus.", sources).passed
    assert not check_answer('The "engine fire test" is required.', sources).passed


def test_a_numbers_scale_is_part_of_it() -> None:
    """Seen by hand in session 22: "How many ducks are slaughtered each year for meat?"
    got "The answer is: 3." of a page saying "3 billion", posted as checked."""
    page = "Approximately 3 billion ducks are slaughtered each year for meat worldwide."
    misread = check_answer("The answer is: 3.", page)
    assert not misread.passed and misread.unsupported == ["3"]
    assert check_answer("About 3 billion ducks are slaughtered each year.", page).passed
    assert check_answer("3,000,000,000 ducks a year.", page).passed
    assert not check_answer("About 3 million ducks.", page).passed
    assert check_answer("It employs 1.5 million people.", "Staff: 1,500,000 people").passed
    assert check_answer("约有3亿人。", "共有300,000,000人").passed


async def test_a_year_the_table_does_not_hold_is_not_answered_by_its_neighbour(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer
) -> None:
    """Seen by hand in session 22: "What was the number of freshwater ducks in 2018?" of
    a table whose rows start in 2019 got "The number of freshwater ducks in 2018 was
    120." (2019's figure), posted as checked: the question's year was taken as said."""
    table = OFFICE / "docling_odf_table_with_title_01.ods"
    # Another document writes 2018, so it is no word "no document mentions".
    notes = make_pdf(tmp_path / "notes.pdf", [["The duck survey's method changed in 2018."]])
    async with directive_on_scripted_model(settings, tmp_path, scripted_model, table, notes) as (
        app,
        binding,
    ):
        question = "What was the number of freshwater ducks in 2018?"
        said = "The number of freshwater ducks in 2018 was 120 [1]."
        answer = await scripted_answer(app, binding, scripted_model, question, said)
        assert answer.checked == "replaced_by_evidence", answer.text
        assert answer.unsupported == ["2018"]
        assert said not in answer.text
        # Of a year the table holds, the same sentence is the answer.
        question, said = question.replace("2018", "2019"), said.replace("2018", "2019")
        answer = await scripted_answer(app, binding, scripted_model, question, said)
        assert answer.checked == "passed", answer.unsupported
        assert answer.text.startswith(said)


def test_a_file_name_given_as_an_author_is_no_name_the_quotes_hold() -> None:
    """Seen by hand in session 22: "Who wrote the blog post about inference parameters?"
    got "The blog post about inference parameters is written by
    Markitdown_autogen-blog.", posted: a word holding "_" was never read as a name."""
    quote = (
        "In this blog post, we will explore how model and inference parameter matter in "
        "LLM applications, using a case study for MATH."
    )
    said = "The blog post about inference parameters is written by Markitdown_autogen-blog."
    result = check_answer(said, quote, "Who wrote the blog post about inference parameters?")
    assert not result.passed and result.unsupported == ["Markitdown_autogen-blog"]
    # A name written with "_" that the quote holds is vouched for.
    assert check_answer("The tag is APP_UPDTFLG.", "| 12 | UPDATE FLAG | APP_UPDTFLG |").passed


def test_a_word_in_quotes_is_the_sources_word() -> None:
    """Seen by hand in session 22: 'a sound that is often described as "breeze"' was
    posted above a quote writing "breeeeze" (one quoted word was never compared)."""
    page = (
        'Female mallard ducks make the classic "quack" sound while males make a similar '
        'but raspier sound that is sometimes written as "breeeeze".'
    )
    made_up = check_answer('Female mallards make a sound described as "breeze".', page)
    assert not made_up.passed and made_up.unsupported == ['"breeze"']
    assert check_answer('Female mallards make the classic "quack" sound.', page).passed


async def test_a_figure_stated_without_its_scale_is_replaced_by_the_evidence(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer
) -> None:
    page = OFFICE / "docling_wiki_duck.html"
    async with directive_on_scripted_model(settings, tmp_path, scripted_model, page) as (
        app,
        binding,
    ):
        question = "How many ducks are slaughtered each year for meat?"
        answer = await scripted_answer(app, binding, scripted_model, question, "The answer is: 3.")
        assert answer.checked == "replaced_by_evidence", answer.text
        assert answer.unsupported == ["3"]
        assert answer.text.startswith("The documents say:")
        assert "Approximately 3 billion ducks are slaughtered" in answer.text
        # Stated with its scale, the same figure is the answer.
        said = "About 3 billion ducks are slaughtered each year [1]."
        answer = await scripted_answer(app, binding, scripted_model, question, said)
        assert answer.checked == "passed", answer.unsupported
        assert answer.text.startswith(f"{said}\n\nEvidence:")


def test_a_long_quote_the_model_makes_up_is_checked() -> None:
    """Seen by hand in session 16: asked who wrote the AutoGen paper, the model wrote its
    own quote of the title and authors, one author left out; at 262 characters it was
    longer than a quoted phrase was read, so it was posted as checked."""
    title_page = (
        "AutoGen: Enabling Next-Gen LLM Applications via Multi-Agent Conversation "
        "Qingyun Wu , Gagan Bansal , Jieyu Zhang, Yiran Wu, Beibin Li, Erkang Zhu, "
        "Li Jiang, Xiaoyun Zhang, Shaokun Zhang, Jiale Liu, Ahmed Awadallah, "
        "Ryen W. White, Doug Burger, Chi Wang"
    )
    authors = title_page.split("Conversation ")[1]
    made_up = authors.replace(" , Gagan Bansal", "")
    result = check_answer(f'The paper is written by:\n> "{made_up}"', title_page)
    assert not result.passed and result.unsupported == [f'"{made_up}"']
    # Quoted whole, with its commas spaced as usual, it is what the page says.
    faithful = authors.replace(" , ", ", ")
    assert check_answer(f'The paper is written by:\n> "{faithful}"', title_page).passed


def test_a_number_written_against_chinese_words_is_checked() -> None:
    """Seen in session 13's Chinese benchmark: "10年前" was posted though no quote says
    10; a number against a Chinese character was never read as a number."""
    quotes = "《核电厂定期安全评价 第12部分：设计》为上述15项标准之一。"
    assert check_answer("这是第12部分，共15项标准。", quotes).passed
    assert check_answer("10年前发布。", quotes).unsupported == ["10"]
    # ... while a number glued to Latin letters is still no number ("12abc", "1.4M").
    assert check_answer("型号12abc，容量1.4M。", quotes).passed


def test_a_quantity_is_checked_with_what_it_counts() -> None:
    # Seen by hand in session 8 with the default model, asked how long the AOA sensor
    # test takes: "a 12-hour AOA sensor test ... takes approximately 3 hours ... 6 days"
    # passed the check, since a 15-page directive holds a 3, a 6 and a 12 somewhere.
    sources = (
        "AOA sensor system test ... 40 work-hours × $85 per hour = $3,400. The proposed AD "
        "affects 73 airplanes of U.S. registry. Paragraph 12 applies; see note 3 and item 6."
    )
    invented = check_answer("A 12-hour test that takes 3 hours over 6 days.", sources)
    assert not invented.passed
    assert invented.unsupported == ["12-hour", "3 hours", "6 days"]
    assert check_answer("The test takes 40 hours and costs 3,400 dollars.", sources).passed
    assert check_answer("It affects 73 planes.", sources).passed  # "airplanes" ends so
    assert check_answer("In 2020 the AD was proposed for 73 airplanes.", sources + " 2020").passed


def test_a_date_is_checked_as_a_date_and_a_rate_as_a_rate() -> None:
    # Seen in session 17's calibrate benchmark with the default model: "The Emergency
    # Order of Prohibition ... was issued on March 13, 2020" was posted, the quotes saying
    # "On March 13, 2019" and "dated June 12, 2020": each number of it was somewhere.
    sources = (
        "On March 13, 2019, the FAA issued an Emergency Order of Prohibition. "
        "Boeing Special Attention Service Bulletin 737-31-1860, dated June 12, 2020."
    )
    late = check_answer("The order was issued on March 13, 2020, by the FAA.", sources)
    assert not late.passed and late.unsupported == ["March 13, 2020"]
    for said in ("It was issued on March 13, 2019.", "It is dated 12 June 2020.", "On March 13."):
        assert check_answer(said, sources).passed, said
    assert check_answer("It was run on December 3, 2014.", "RUN 12/3/2014 11:57:01 AM").passed
    assert check_answer("Up to 3 may apply.", "Up to 3 may apply to each.").passed  # no month
    # An amount the sources give only per hour is no total (the same model wrote "The
    # estimated cost per airplane of the AOA sensor system test is $85." of a table
    # that also gave $85 as a total, which is why that one passed).
    rates = "AOA sensor system test: 40 work-hours × $85 per hour = $3,400."
    bare = check_answer("The test costs $85 per airplane.", rates)
    assert not bare.passed and bare.unsupported == ["$85"]
    assert check_answer("The test costs $3,400; labour is $85 per hour.", rates).passed
    assert check_answer("Labour costs $85 an hour.", rates).passed


def test_a_number_written_as_a_word_is_checked_as_a_number() -> None:
    # Seen by hand in session 9: asked how many agents the AutoGen paper's coding example
    # uses, the default model wrote "two different types of agents: one is a human agent"
    # and the check passed it; the paper's "two" counts questions, not types of agents.
    sources = "This requires addressing two critical questions. SPECTER is tested on 7 tasks."
    invented = check_answer("The example includes two different types of agents.", sources)
    assert not invented.passed
    assert check_answer("SPECTER is tested on seven tasks.", sources).passed
    assert not check_answer("SPECTER is tested on three tasks.", sources).passed
    # Nor is a number the start of a longer one: "1.4M" holds no 1.
    assert not check_answer("1", "ScienceParse was trained on 1.4M PDFs.").passed
    # "one" is mostly no count ("one of the"), and is left alone.
    assert check_answer("It is one of the tasks SPECTER is tested on.", sources).passed


def test_an_answer_in_words_the_sources_do_not_hold_fails_the_check() -> None:
    # Seen by hand in session 8: asked what the corpus's Word sample is about, the
    # default model wrote this of a file about summer, swimming and ducks.
    from bot.knowledge.check import UNGROUNDED

    sources = (
        "Summer activities. Swimming in the lake. Figure 1: This is a cute duckling. "
        "To get started with swimming, first lay down in a water and try not to drown."
    )
    fluff = check_answer(
        "The source is a collection of information about summer activities, which is a "
        "type of document. It has been edited or rewritten to make it easier for readers "
        "to understand and access the content.",
        sources,
    )
    assert not fluff.passed and fluff.unsupported == [UNGROUNDED]
    assert check_answer("It is about summer activities: swimming in the lake.", sources).passed


def test_a_name_written_without_its_accents_is_the_same_name() -> None:
    from bot.knowledge.question import content_of

    sources = "Nestlé reported sales in Zone AOA. The site is at 1069 boulevard de Sainte-Adèle."
    assert check_answer("Nestle reported them.", sources).passed
    assert check_answer("It is on Sainte-Adele boulevard.", sources).passed
    assert not check_answer("They were reported by Unilever.", sources).passed
    # "How long does it take?": the verb frames the question, the answer never says it.
    assert "take" not in content_of("How long does the AOA test take?").split()


async def test_the_noun_after_what_names_the_answers_type_not_its_topic(
    settings, tmp_path: Path
) -> None:
    """ "On what date was the election held?": the bulletin writes "11/04/14", never
    "date" (seen on the calibrate split: the precinct bulletin's question was "not
    found" in its own workspace, "date" counted as a word no document holds)."""
    from bot.knowledge.question import content_of

    assert content_of("On what date was the election held?").split() == [
        "On",
        "was",
        "the",
        "election",
        "held?",
    ]
    assert "year" not in content_of("In which year did the war end?").split()
    assert "date" in content_of("What is the due date of the comments?").split()
    bulletin = make_pdf(
        tmp_path / "bulletin.pdf",
        [["PRECINCT BULLETIN", "GENERAL ELECTION TO BE HELD 11/04/14", "Precinct 0050003A"]],
    )
    async with files_shared(settings, bulletin) as app:
        answer = await evidence_for(app, "On what date was the general election held?")
        assert answer.found and "11/04/14" in answer.evidence[0].text


def test_an_answer_that_only_restates_the_question_fails_the_check() -> None:
    # Seen by hand on the corpus's CSV with the default model: the quotes held
    # "Rasmussen Group", the model wrote the asker's own name back as the company.
    sources = "| First Name | Last Name | Company |\n| Sheryl | Baxter | Rasmussen Group |"
    question = "Which company does Sheryl Baxter work for?"
    echo = check_answer("The company Sheryl Baxter works for is Baxter.", sources, question)
    assert not echo.passed and echo.unsupported == [ECHO]
    assert check_answer("Sheryl Baxter works for Rasmussen Group.", sources, question).passed
    # Stating no name or number, it must still say a word the question does not (seen
    # by hand in session 19: "What is a male duck called?" got "The correct answer is
    # a male duck."), unless it says yes or no.
    assert check_answer("She works for a company.", sources, question).unsupported == [ECHO]
    duck = "A male is called a drake and the female is called a duck."
    asked = "What is a male duck called?"
    assert check_answer("The correct answer is a male duck.", duck, asked).unsupported == [ECHO]
    assert check_answer("A male duck is called a drake.", duck, asked).passed
    assert check_answer("No, a male is not called a duck.", duck, "Is a male called a duck?").passed
    # A number of its own passes.
    costs = "The AOA sensor system test costs $3,400 per airplane."
    asked = "What does the AOA sensor system test cost?"
    assert check_answer("The AOA test costs $3,400.", costs, asked).passed
    assert not check_answer("The AOA sensor system test has a cost.", costs, asked).passed
    # The question's own names are no claim of the answer's (seen by hand in session 9:
    # the quotes say "the agency", the question and the answer "the FAA").
    agency = "The agency estimates that the test costs $3,400 per airplane."
    asked = "What does the FAA estimate the test costs per airplane?"
    assert check_answer("The FAA estimates the test costs $3,400.", agency, asked).passed
    assert not check_answer("The FAA estimates the test costs $3,400.", agency).passed
    assert not check_answer("The NTSB estimates the test costs $3,400.", agency, asked).passed
    # Without the question, only the sources are compared (as before).
    assert check_answer("The company Sheryl Baxter works for is Baxter.", sources).passed


def test_an_answer_that_is_only_its_preamble_fails_the_check() -> None:
    # Seen in session 10's SQuAD benchmark: "The answer to this question is:" posted.
    sources = "The test costs $3,400 per airplane."
    preambles = ["The answer to this question is:", "Based on the sources, the answer is: [1]"]
    for said in preambles:
        verdict = check_answer(said, sources)
        assert not verdict.passed and verdict.unsupported == [EMPTY], said
    assert check_answer("The answer is: $3,400 [1].", sources).passed
    # Seen in session 11's Chinese benchmark: the question, and two more, as the answer.
    asked_back = "1. 本地知识已经测试过哪些文件格式？\n2. 是否能提供本地知识文件的格式？"
    verdict = check_answer(asked_back, "已测试格式包括docx、md文件中的文本信息。本地知识文件的格式")
    assert not verdict.passed and verdict.unsupported == [EMPTY]
    # ... the third line of it, a question ending in "－！": it asks all the same.
    third = asked_back + "\n3. 是否能提供其他文档中所有可以用来生成自己的知识文件－！"
    tested = "已测试格式包括docx、md文件中的文本信息。"
    verdict = check_answer(third, tested)
    assert not verdict.passed and EMPTY in verdict.unsupported
    assert check_answer("已测试格式包括docx和md。", tested).passed
    assert check_answer("Is it $3,400? Yes, $3,400 [1].", sources).passed
    # Seen in session 13's Chinese benchmark: questions around one line that states
    # something; mostly asking is no answer.  A question then its answer is one.
    mostly = third + "\n4. 已测试格式包括docx。\n5. 能否提供一个示例？"
    assert EMPTY in check_answer(mostly, tested).unsupported
    assert check_answer("Which formats?\nThe tested formats are docx and md.", tested).passed
    # ... under the reply's own heading, which the model imitates (seen by hand).
    headed = 'The documents say:\n> "DNC（可微神经计算机）的售价是多少？'
    assert check_answer(headed, "这款名为DNC（可微神经计算机）的AI模型").unsupported == [EMPTY]


def test_an_answer_that_only_quotes_a_tables_column_names_fails_the_check() -> None:
    # Seen by hand in session 17 with the default model: asked whether a spreadsheet's
    # field is mandatory, it quoted the sheet's header row, which every quoted row of the
    # sheet repeats, and that was posted as the answer.
    header = "| S.No | Field | Field Length | Mandatory / Optional for Individual KYC |"
    row = "| 4 | APPLICATION NO | 20 | O |"
    sources = f"{header} … {row}\n{header} … | 5 | APPLICATION DATE | | M |"
    for said in (f'The document says:\n> "{header}"', f'> "{header[:40]}'):
        verdict = check_answer(said, sources)
        assert not verdict.passed and verdict.unsupported == [EMPTY], said
    # A row under its column names says something.
    assert check_answer(f'The document says:\n> "{header} … {row}"', sources).passed
    # ... though nothing the quotes under it do not say: the reply shows them instead.
    assert only_recites(f'The document says:\n> "{header} … {row}"', sources.splitlines())
    assert not only_recites("> It is optional (O).", sources.splitlines())
    assert check_answer("The application number is optional (O) [1].", sources).passed


# The question on the directive whose answer, "$3,400", the scripted model is made to
# misread, recite, or read right.
COST_QUESTION = "What does the FAA estimate the AOA sensor system test costs per airplane?"


@contextlib.asynccontextmanager
async def directive_on_scripted_model(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer, *also: Path
) -> AsyncIterator[tuple[App, Any]]:
    """A bot answering with the scripted remote model, the directive (and the files
    ``also``) shared in #general: the app and #general's binding."""
    url = f"http://127.0.0.1:{scripted_model.server_address[1]}/v1"
    app = App.build(settings.model_copy(update={"chat_model": url}))
    app.start_background()
    try:
        pdf = make_pdf(tmp_path / "ad-2020-17221.pdf", AIRWORTHINESS)
        for path in (pdf, *also):
            assert f"Indexed {path.name}" in await say(app, f"/librarian upload {path}")
        yield app, await app.dispatcher.binding(GENERAL)
    finally:
        await app.close()


async def scripted_answer(
    app: App, binding: Any, model: ThreadingHTTPServer, question: str, reply: str
) -> Answer:
    """The bot's answer to ``question`` in #general, the scripted model replying
    ``reply``."""
    model.reply = reply  # type: ignore[attr-defined]
    return await app.answerer.answer(
        binding, None, question, author="console:alice", conversation_key="t"
    )


async def test_a_misread_amount_is_replaced_by_the_evidence_holding_the_real_one(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer
) -> None:
    async with directive_on_scripted_model(settings, tmp_path, scripted_model) as (app, binding):
        question = COST_QUESTION

        # The remote model misreads "$3,400" as "$3.40": the reply is the evidence alone.
        answer = await scripted_answer(
            app, binding, scripted_model, question, "The test costs $3.40 per airplane [1]."
        )
        assert answer.checked == "replaced_by_evidence"
        assert "$3.40" not in answer.text
        assert answer.text.startswith("The documents say:")
        assert any("$3,400" in q.text for q in answer.evidence)
        assert "ad-2020-17221.pdf, p. 2" in answer.text
        assert answer.unsupported == ["$3.40"]
        # Stopped at new turns: the request asked the server to stop at "Question:".
        assert "Question:" in scripted_model.requests[-1]["stop"]  # type: ignore[attr-defined]
        # ... and sampled with the answers' seed: an answer does not depend on the others
        # the model generated before it.
        assert scripted_model.requests[-1]["seed"] == ANSWER_SEED  # type: ignore[attr-defined]
        stored = app.store.recent_messages(binding.id, None)[-1]
        assert stored.role == "assistant" and "$3.40" not in stored.text

        # The same model reading it right: its answer is posted, the evidence under it.
        answer = await scripted_answer(
            app, binding, scripted_model, question, "The test costs $3,400 per airplane [1]."
        )
        assert answer.checked == "passed"
        assert answer.text.startswith("The test costs $3,400 per airplane [1].")
        assert "Evidence:\n> " in answer.text and "$3,400" in answer.text

        # A number the directive holds, but not in the sentences quoted under the answer:
        # the check reads the quotes, what the reader can verify (seen in session 9's
        # benchmark: "The answer is: 3" passed, a long document holding a 3 somewhere).
        answer = await scripted_answer(
            app,
            binding,
            scripted_model,
            question,
            "The test costs $3,400 per airplane, as of 2020 [1].",
        )
        assert not any("2020" in q.text for q in answer.evidence)  # on page 1 only
        assert answer.checked == "replaced_by_evidence" and answer.unsupported == ["2020"]


async def test_an_answer_whose_figure_is_not_the_best_quotes_is_replaced_by_the_evidence(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer
) -> None:
    # Seen in session 17's report benchmark with the default model: "The answer is: 84.2"
    # (a table's cell) was posted above the quote "SPECTER achieves a MAP score of ...
    # 84.5 on coread": one figure stated, another quoted first.  And "How many documents
    # are in the held-out test set?" got "The literature graph is a property graph with
    # directed edges.": no figure at all.
    async with directive_on_scripted_model(settings, tmp_path, scripted_model) as (app, binding):
        question = "How many airplanes does the proposed AOA sensor system test affect?"
        answer = await scripted_answer(
            app, binding, scripted_model, question, "The test affects 3,400 airplanes [1]."
        )
        assert answer.evidence[0].text == (
            "The proposed directive affects 73 airplanes of U.S. registry."
        )
        assert any("$3,400" in q.text for q in answer.evidence[1:])  # quoted, but not first
        assert answer.checked == "replaced_by_evidence"
        assert answer.unsupported == ["3,400 (the best quote gives 73)"]
        assert answer.text.startswith("The documents say:")
        answer = await scripted_answer(
            app, binding, scripted_model, question, "The test affects many airplanes [1]."
        )
        assert answer.checked == "replaced_by_evidence" and answer.unsupported == [NO_FIGURE]
        answer = await scripted_answer(
            app, binding, scripted_model, question, "The test affects 73 airplanes [1]."
        )
        assert answer.checked == "passed", answer.unsupported
    # A figure the best quote does not give is an answer when that quote gives none of
    # its kind ("46.5%" beside a sentence without a share), or only points elsewhere
    # ("(§5)", "Table 3": no rival of "4,113 clicks").
    best = "We performed an online A/B test, described in Table 3 (§5)."
    sources = f"{best}\nThe SPECTER ranker improved clickthrough rate by 46.5% over 4,113 clicks."
    for said, asked in (
        ("It improved clickthrough rate by 46.5%.", "By how much did it raise clickthrough?"),
        ("The test had 4,113 clicks.", "How many clicks did the A/B test have?"),
    ):
        assert check_answer(said, sources, asked, best=best).passed, said
    # A summary states its document's figures across quotes: no best quote is passed.
    assert check_answer("The test had 4,113 clicks.", sources, "What is it about?").passed
    # A rate in the best quote is no cost, though another quote gives the amount bare
    # (seen by hand in session 20: "… the AOA sensor system test is $85.", posted).
    best = "AOA sensor system test ....... 40 work-hours × $85 per hour = $3,400."
    sources = f"{best}\nFCC OPS installation .. 1 work-hour × $85 per hour = $85 ...... $0"
    asked = "What is the estimated cost per airplane of the AOA sensor system test?"
    said = "The estimated cost per airplane of the AOA sensor system test is $85."
    assert check_answer(said, sources, asked, best=best).unsupported == ["$85"]
    assert check_answer(said.replace("$85", "$3,400"), sources, asked, best=best).passed
    asked = "What hourly labor rate does the FAA assume?"
    assert check_answer("The FAA assumes $85 per hour.", sources, asked, best=best).passed
    # A figure glued to its letters is looked for as written (seen in session 20's
    # conversation benchmark: the previous answer's "37M" repeated for a later question).
    quote = "We run our final tests on a held-out set from PubMed Central, of about 54K documents."
    asked = "How many documents are in the held-out test set?"
    assert check_answer("The answer is 37M.", quote, asked).unsupported == ["37M"]
    assert check_answer("It holds about 54k documents.", quote, asked).passed


async def test_quotes_holding_too_little_of_the_question_are_the_closest_the_documents_come(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer
) -> None:
    # Seen in session 19's evidence dumps: of the unanswerable questions the evidence
    # answered, most were answered by quotes holding under half the question's weight
    # (calibrate split: 21 of 30; answerable ones: 23 of 119).  Shown as "The documents
    # say:", such quotes read as the answer.
    async with directive_on_scripted_model(settings, tmp_path, scripted_model) as (app, binding):
        question = "How long must the airplane wait before it returns to service?"
        answer = await scripted_answer(
            app, binding, scripted_model, question, "It must wait 12 hours [1]."
        )
        assert answer.found and answer.checked == "replaced_by_evidence" and answer.hedged
        assert 0.325 <= answer.timings["coverage"] < CLEAR_COVERAGE
        assert answer.text.startswith(
            "No passage clearly answers this. The closest the documents come:\n> "
            '"The test must be done before the airplane returns to service."'
        ), answer.text
        # Quotes holding most of it are what the documents say.
        question = COST_QUESTION
        answer = await scripted_answer(
            app, binding, scripted_model, question, "It costs 12 hours [1]."
        )
        assert answer.timings["coverage"] >= CLEAR_COVERAGE and not answer.hedged
        assert answer.text.startswith("The documents say:"), answer.text
    # In Chinese too; and quotes in another language than the question's, whose words
    # cannot be compared with it (similarity decided), are not judged by their words.
    weak = Evidence([], 0.4, 0.5, True)
    assert evidence_heading(weak, TEXTS["zh"]) == "没有段落明确回答这个问题。文件中最接近的内容："
    assert evidence_heading(replace(weak, lexical=False), TEXTS["en"]) == "The documents say:"


async def test_an_answer_about_what_no_document_mentions_is_replaced_by_the_evidence(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer
) -> None:
    # Seen by hand in session 17 with the default model: asked the budget of a division
    # that a slide lists with its code, it wrote "The budget of the Heliophysics Science
    # Division is: [2] 606." and it was posted as checked: every name and number of it is
    # on the slide, and no document says "budget".
    async with directive_on_scripted_model(settings, tmp_path, scripted_model) as (app, binding):
        question = "How much fuel does the AOA sensor system test cost per airplane?"
        answer = await scripted_answer(
            app,
            binding,
            scripted_model,
            question,
            "The fuel for the test costs $3,400 per airplane [1].",
        )
        assert answer.found and answer.checked == "replaced_by_evidence"
        assert answer.unsupported == ["fuel (no document mentions it)"]
        assert answer.text.startswith("The documents say:") and "fuel" not in answer.text
        # Without that word the same figure is an answer.
        question = "How much does the AOA sensor system test cost per airplane?"
        answer = await scripted_answer(
            app, binding, scripted_model, question, "The test costs $3,400 per airplane [1]."
        )
        assert answer.checked == "passed"


async def test_an_answer_that_only_recites_the_evidence_is_shown_as_the_evidence(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer
) -> None:
    # Seen by hand in session 18 with the default model: asked a company's phone number,
    # it wrote the reply's own heading and two quotes of the cover page, neither holding
    # the number, and that was posted as checked, the quote holding it shown below.
    async with directive_on_scripted_model(settings, tmp_path, scripted_model) as (app, binding):
        question = COST_QUESTION
        answer = await scripted_answer(
            app, binding, scripted_model, question, "The test costs $3,400 per airplane [1]."
        )
        assert answer.checked == "passed"
        quoted = [q.text for q in answer.evidence]
        recital = "The documents say:\n" + "\n".join(f'> "{text}"' for text in quoted)
        answer = await scripted_answer(app, binding, scripted_model, question, recital)
        # Every word of it is in the sources: replaced for saying nothing of its own.
        assert answer.checked == "replaced_by_evidence" and not answer.unsupported
        assert answer.text.startswith("The documents say:")
        assert all(answer.text.count(text) == 1 for text in quoted), answer.text
        # A quote with a sentence of the model's own is an answer.
        answer = await scripted_answer(
            app, binding, scripted_model, question, f"{recital}\nSo the test costs $3,400 [1]."
        )
        assert answer.checked == "passed", answer.text


async def test_the_models_citations_are_numbered_as_the_reply_lists_its_sources(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer
) -> None:
    # Seen by hand in session 17: "… is: [2] 606." under a reply whose only source was
    # [1]: the model cites its prompt's passages (the slide was the second), the reply
    # lists one source per document.
    async with directive_on_scripted_model(settings, tmp_path, scripted_model) as (app, binding):
        # Quoted from both pages: the model reads both pages' passages.
        question = "How many airplanes does the proposed AOA sensor system test affect?"
        answer = await scripted_answer(
            app, binding, scripted_model, question, "The test affects 73 airplanes [2]."
        )
        prompt = scripted_model.requests[-1]["messages"][-1]["content"]  # type: ignore[attr-defined]
        assert "\n[2] ad-2020-17221.pdf" in prompt  # two passages, one document
        assert answer.checked == "passed"
        assert answer.text.startswith("The test affects 73 airplanes [1].")
        assert "Sources:\n[1] ad-2020-17221.pdf" in answer.text and "\n[2] " not in answer.text
        # A passage the model was never given is cited: no reader could follow it.
        answer = await scripted_answer(
            app, binding, scripted_model, question, "The test affects 73 airplanes [7]."
        )
        assert answer.checked == "replaced_by_evidence"
        assert answer.unsupported == ["[7] (no such source)"]


async def test_the_model_reads_earlier_answers_without_their_quotes(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer
) -> None:
    # Seen by hand in session 20: five questions into a channel, the default model read
    # up to 2,100 prompt tokens, most of them earlier replies' quotes, and wrote its next
    # answers the way those replies are written ("The documents say:", then quotes).
    async with directive_on_scripted_model(settings, tmp_path, scripted_model) as (app, binding):
        said = "The test costs $3,400 per airplane [1]."
        answer = await scripted_answer(app, binding, scripted_model, COST_QUESTION, said)
        assert answer.checked == "passed"
        replaced = "How many airplanes does the proposed AOA sensor system test affect?"
        answer = await scripted_answer(app, binding, scripted_model, replaced, "Twelve [1].")
        assert answer.checked == "replaced_by_evidence"
        await scripted_answer(
            app, binding, scripted_model, "Who proposes the test?", "The FAA proposes it [1]."
        )
        messages = scripted_model.requests[-1]["messages"]  # type: ignore[attr-defined]
        turns = [(m["role"], m["content"]) for m in messages[1:-1]]
        # The earlier answer as posted, without the evidence under it; the reply that was
        # the evidence alone is left out with its question.
        assert turns == [
            ("user", COST_QUESTION),
            ("assistant", "The test costs $3,400 per airplane [1]."),
        ]
        # What the asker sees is unchanged: the stored replies keep their quotes.
        stored = app.store.recent_messages(binding.id, None)
        assert sum("Evidence:" in t.text or "The documents say:" in t.text for t in stored) >= 2


async def test_a_model_that_loops_or_recites_a_source_is_cut_to_its_answer(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer
) -> None:
    # Seen by hand in session 9 with the default model: an answer written twice over
    # (cut mid-word by the token cap), and one followed by "[5] <file>, section ..." and a
    # passage the model made up, were posted whole.
    async with directive_on_scripted_model(settings, tmp_path, scripted_model) as (app, binding):
        question = COST_QUESTION
        said = "The test costs $3,400 per airplane [1]. It is done on each airplane."
        for reply in (
            f"{said}\n\n{said} The test co",
            f"{said}\n\n[5] ad-2020-17221.pdf, p. 9\nThe test is done by 12 mechanics.",
        ):
            answer = await scripted_answer(app, binding, scripted_model, question, reply)
            assert answer.checked == "passed"
            assert answer.draft == said
            assert answer.text.startswith(f"{said}\n\nEvidence:")
        # A list whose items say the same again, however short (seen in session 10's
        # benchmark: "1. 2019\n2. 2019"), is cut to its first item.
        answer = await scripted_answer(
            app, binding, scripted_model, question, "1. $3,400\n2. $3,400\n3. $3,400"
        )
        assert answer.draft == "1. $3,400"
        # A draft that says itself again with no sentence end between (seen by hand in
        # session 14: "... by E. F. Benson The Project Gutenberg eBook of ... by E. F.")
        # is cut where the loop starts.
        said = "The FAA estimates that the AOA sensor system test costs $3,400 per airplane"
        answer = await scripted_answer(
            app, binding, scripted_model, question, f"{said} {said} The FAA es"
        )
        assert answer.checked == "passed" and answer.draft == said
    # A period after an initial ends no sentence: a draft the token cap cut keeps the
    # name whole.
    cut = tidy_draft("Winter Sports in Switzerland is by E. F. Benson. It was publi", capped=True)
    assert cut == "Winter Sports in Switzerland is by E. F. Benson."
    # Where it judges its own answer, it says what no source says (seen by hand in
    # session 19, after a right answer: "This answer is correct, as the AutoGen blog post
    # has been edited to include a link to the AutoGen blog post.").
    said = "The AutoGen blog post about MATH was written by Chi Wang."
    for judged in (
        f"{said}\nThis answer is correct, as the post has been edited.",
        f"{said} My answer is based on the first source.",
        f"{said}\n\nJustification: The answer is not provided with the text.",
    ):
        assert tidy_draft(judged) == said, judged
    assert (
        tidy_draft("The answer is in this answer key [1].")
        == "The answer is in this answer key [1]."
    )


async def test_a_question_on_a_detail_the_document_does_not_give_is_not_found(
    settings, tmp_path: Path
) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        pdf = make_pdf(tmp_path / "ad-2020-17221.pdf", AIRWORTHINESS)
        await say(app, f"/librarian upload {pdf}")
        served = sum(m["served"] for m in app.inference.loaded() if m["role"] == "chat")
        reply = await say(
            app, "@librarian What is the maximum takeoff weight of the airplanes in the directive?"
        )
        assert NOT_FOUND in reply
        assert "No document mentions: maximum, takeoff, weight." in reply
        assert "The closest passage is in ad-2020-17221.pdf" in reply
        # Decided from the evidence: the model was never called.
        assert sum(m["served"] for m in app.inference.loaded() if m["role"] == "chat") == served

        # The detail the document does give is answered, with its evidence quoted.
        reply = await say(app, "@librarian How many airplanes of U.S. registry are affected?")
        assert NOT_FOUND not in reply
        assert '"The proposed directive affects 73 airplanes of U.S. registry."' in reply
    finally:
        await app.close()


async def test_what_is_a_file_about_cites_that_file(settings, tmp_path: Path) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        await converse(
            app,
            [
                f"/librarian upload {make_pdf(tmp_path / 'ad-2020-17221.pdf', AIRWORTHINESS)}",
                f"/librarian upload {make_pdf(tmp_path / 'manual.pdf')}",
            ],
        )
        binding = await app.dispatcher.binding(GENERAL)
        for question in ("What is ad-2020-17221.pdf about?", "Summarize ad 2020 17221"):
            answer = await app.answerer.answer(
                binding, None, question, author="console:alice", conversation_key="a"
            )
            assert answer.found, answer.text
            assert [s.document for s in answer.sources] == ["ad-2020-17221.pdf"], answer.text
            assert answer.evidence[0].text == "Airworthiness directive 2020-17221."
        # Asked the ways people ask for a summary (seen by hand in session 13: "What is
        # the main idea of AutoGen?" was "not found", no document saying "idea"); the
        # evidence step decides, so the model is left out here.
        for question in (
            "Can you summarize ad-2020-17221.pdf?",
            "What are the key points of the airworthiness directive?",
        ):
            answer = await evidence_for(app, question)
            assert answer.found, answer.text
            assert {q.hit.file_name for q in answer.evidence} == {"ad-2020-17221.pdf"}
            assert answer.evidence[0].text == "Airworthiness directive 2020-17221."

        # A file that is not there: said so, with the closest names, and no model call.
        answer = await app.answerer.answer(
            binding, None, "What is budget-2021.xlsx about?", author="x", conversation_key="a"
        )
        assert not answer.found
        assert "There is no document named 'budget-2021.xlsx' in this workspace." in answer.text
        assert "The closest names:" in answer.text and "manual.pdf" in answer.text

        # "This document" is the one just shared (seen by hand in session 9: "这份文件讲了
        # 什么？" searched for the words "份文件讲" and found nothing).
        for question in ("What is this document about?", "Summarize it", "这份文件讲了什么？"):
            answer = await app.answerer.answer(
                binding, None, question, author="console:alice", conversation_key="a"
            )
            assert answer.found, answer.text
            assert [s.document for s in answer.sources] == ["manual.pdf"], answer.text
    finally:
        await app.close()


async def test_this_document_is_the_one_shared_last_in_this_channel(
    settings, tmp_path: Path
) -> None:
    """Two channels read one workspace: "this" in each is what was shared there."""
    app = App.build(settings)
    app.start_background()
    try:
        for channel in ("general", "design", "ops"):
            reply = await say(app, "/librarian workspace handbook", channel=channel)
            assert "handbook" in reply, reply
        ad = make_pdf(tmp_path / "ad-2020-17221.pdf", AIRWORTHINESS)
        assert "Indexed ad-2020-17221.pdf" in await say(app, f"/librarian upload {ad}")
        manual = make_pdf(tmp_path / "manual.pdf")
        reply = await say(app, f"/librarian upload {manual}", channel="design")
        assert "Indexed manual.pdf" in reply, reply

        # The workspace's latest is manual.pdf; general shared the directive.
        for channel, expected in (
            ("general", "ad-2020-17221.pdf"),
            ("design", "manual.pdf"),
            ("ops", "manual.pdf"),  # shared nothing: the workspace's latest
        ):
            binding = await app.dispatcher.binding(ConversationRef("console", "", channel))
            answer = await app.answerer.answer(
                binding, None, "What is this document about?", author="x", conversation_key=channel
            )
            assert answer.found, answer.text
            assert [s.document for s in answer.sources] == [expected], (channel, answer.text)
    finally:
        await app.close()


async def test_a_page_or_slide_asked_for_by_number_is_quoted_from_that_place(
    settings, tmp_path: Path
) -> None:
    """Seen by hand in session 10: "What does slide 2 of the AutoGen deck say?" searched
    for the words "slide, deck" and said not found."""
    app = App.build(settings)
    app.start_background()
    try:
        await say(app, f"/librarian upload {make_pdf(tmp_path / 'manual.pdf')}")
        answer = await evidence_for(app, "What does page 2 of manual.pdf say?")
        assert answer.found, answer.text
        assert {q.page for q in answer.evidence} == {2}, answer.text
        assert answer.evidence[0].text == "Chapter 2: Warranty."

        # The question proper, on that page: the evidence step decides as always.
        answer = await evidence_for(app, "On page 3 of the manual, how much does it cost?")
        assert answer.found, answer.text
        assert answer.evidence[0].text == "The Zephyr X200 costs 349 euros including VAT."

        # A page the document does not have: said so, with how many it has.
        answer = await evidence_for(app, "What is on page 9 of manual.pdf?")
        assert not answer.found
        assert answer.text == "manual.pdf has no page 9. It has 3 pages.", answer.text
        answer = await evidence_for(app, "这份文件第9页讲了什么？")
        assert answer.text == "manual.pdf 没有第 9 页。它共有 3 页。", answer.text

        reply = await say(app, f"/librarian upload {OFFICE / 'markitdown_autogen.pptx'}")
        assert "Indexed markitdown_autogen.pptx" in reply
        reply = await say(app, f"/librarian upload {OFFICE / 'unstructured_DA-1p.png'}")
        assert "Indexed unstructured_DA-1p.png" in reply
        # "the deck" is the presentation shared last, though an image came after it.
        answer = await evidence_for(app, "What is on slide 9 of the deck?")
        assert answer.text == "markitdown_autogen.pptx has no slide 9. It has 6 slides."
        answer = await evidence_for(app, "What is on page 3?")  # of the image, shared last
        assert answer.text == "unstructured_DA-1p.png has no page 3. It has 1 page."
        for question in (
            "What does slide 2 of the AutoGen deck say?",
            "Summarize slide 2 of the deck",
        ):
            answer = await evidence_for(app, question)
            assert answer.found, answer.text
            assert {q.page for q in answer.evidence} == {2}, answer.text
            assert all(q.hit.file_name == "markitdown_autogen.pptx" for q in answer.evidence), (
                answer.text
            )
        answer = await evidence_for(app, "Summarize this deck")
        assert {q.hit.file_name for q in answer.evidence} == {"markitdown_autogen.pptx"}
    finally:
        await app.close()


async def test_a_question_in_plain_words_finds_an_error_name_written_in_camel_case(
    settings,
) -> None:
    """Seen by hand in session 10: the pandoc error-code table names its errors
    "PandocTemplateError", which the keyword index took for one word."""
    app = App.build(settings)
    app.start_background()
    try:
        reply = await say(app, f"/librarian upload {OFFICE / 'kreuzberg_pandoc-error-codes.rtf'}")
        assert "Indexed kreuzberg_pandoc-error-codes.rtf" in reply
        answer = await evidence_for(app, "Which code does pandoc give for a template error?")
        assert answer.found, answer.text
        assert answer.evidence[0].text.endswith("| 5 | PandocTemplateError |"), answer.text
        # Seen by hand in session 13: a name holding an acronym ("PandocPDFProgram...")
        # was cut only at "Pandoc|PDFProgram", so "PDF" and "program" met nothing.
        answer = await evidence_for(
            app, "Which code does pandoc give when the PDF program is not found?"
        )
        assert answer.found, answer.text
        assert answer.evidence[0].text.endswith("| 47 | PandocPDFProgramNotFoundError |")
    finally:
        await app.close()


async def test_a_document_opening_with_its_title_alone_is_summed_up_by_its_first_sentences(
    settings,
) -> None:
    """Seen by hand in session 8: the corpus's Word sample opens with a chunk holding its
    title alone, and "what is it about?" quoted that title and nothing else."""
    app = App.build(settings)
    app.start_background()
    try:
        reply = await say(app, f"/librarian upload {OFFICE / 'docling_word_sample.docx'}")
        assert "Indexed docling_word_sample.docx" in reply
        answer = await evidence_for(app, "What is docling_word_sample.docx about?")
        quoted = [q.text for q in answer.evidence]
        assert quoted[0] == "Summer activities" and len(quoted) >= 2, quoted
        assert "Swimming in the lake" in quoted[1], quoted
        # "I searched for" names a word once, however it was capitalised.
        reply = await say(app, "@librarian What does the sample say about the Sample Heading?")
        searched = next(line for line in reply.splitlines() if line.startswith("I searched for"))
        assert searched.lower().count("sample") == 1, searched
    finally:
        await app.close()


async def test_a_chinese_question_gets_the_chinese_not_found(settings) -> None:
    app = App.build(settings)
    try:
        reply = await say(app, "@librarian 这个产品的保修期是多久？")
        assert "我在这个频道工作区的文件中没有找到答案" in reply
    finally:
        await app.close()


async def test_a_chinese_question_no_document_answers_is_not_found_beside_english_sheets(
    settings,
) -> None:
    """Seen by hand in session 8: with a Chinese web page, an English PDF and an English
    spreadsheet shared, "what is this product's warranty?" in Chinese, asked after a
    question on the spreadsheet, was answered from its rows, chosen by similarity alone,
    which cannot compare Chinese with English.  The words must match across scripts,
    and no Chinese word does."""
    app = App.build(settings)
    app.start_background()
    try:
        for path in (
            OFFICE.parent / "pdfs" / "pdfplumber_federal-register-2020-17221.pdf",
            OFFICE / "unstructured_nestle-2023-half-year-segments.xlsx",
            OFFICE / "readability_qq-deepmind-dnc_zh.html",
        ):
            assert f"Indexed {path.name}" in await say(app, f"/librarian upload {path}")
        # As by hand: a question on the sheet first, so the Chinese one that follows has
        # the sheet's rows among its candidates (a follow-up may rest on them).
        reply = await say(
            app, "@librarian What were Nestle's sales in Zone AOA in January-June 2023?"
        )
        assert "Nestlé" in reply, reply
        reply = await say(app, "@librarian 这个产品的保修期是多久？")
        assert "我在这个频道工作区的文件中没有找到答案" in reply, reply
        # What the page does say is still found by its Chinese words, "which journal"
        # (哪本期刊) being the question's frame, as "which" is: the page says 刊物.
        reply = await say(app, "@librarian DeepMind的新电脑可以利用什么自学？")
        assert "没有找到答案" not in reply, reply
        reply = await say(app, "@librarian DeepMind的可微神经计算机发表在哪本期刊上？")
        assert "发表在科学刊物《自然》（Nature）上" in reply, reply
    finally:
        await app.close()


async def test_a_chinese_question_is_answered_from_the_passage_that_holds_its_words(
    settings,
) -> None:
    """Seen by hand in session 9: with two Chinese files shared, "which company developed
    the differentiable neural computer?" was "not found", its closest passage in a
    nuclear safety standard.  The English embedding model ranked that standard's
    preface first (0.71) and the news passage naming DeepMind and DNC low (0.57), and
    no passage holds every character pair of the question (公司开发 is not written
    there), so the passage the keyword search put first was dropped.  On a Chinese
    question the words decide."""
    app = App.build(settings)
    app.start_background()
    try:
        for path in (
            OFFICE / "chatchat_nuclear-psr-part12-design-draft_zh.docx",
            OFFICE / "readability_qq-deepmind-dnc_zh.html",
        ):
            assert f"Indexed {path.name}" in await say(app, f"/librarian upload {path}")
        reply = await say(app, "@librarian 可微神经计算机是哪家公司开发的？")
        assert "没有找到答案" not in reply, reply
        assert "DeepMind表示，这款名为DNC（可微神经计算机）" in reply, reply
        assert "readability_qq-deepmind-dnc_zh.html" in reply
        # The bundled model's file says it writes English: it is not asked a Chinese
        # question (it wrote English, made-up Chinese or the question back, after 20 to
        # 60 s), and the reply is the evidence under its Chinese heading.
        assert "librarian: 文件中写道：\n> " in reply and "依据：" not in reply, reply
        answer = await app.answerer.answer(
            await app.dispatcher.binding(GENERAL),
            None,
            "可微神经计算机是哪家公司开发的？",
            author="console:alice",
            conversation_key="t",
        )
        assert answer.checked == "replaced_by_evidence" and answer.draft == ""
        assert answer.unsupported == ["not asked: the model writes en, not zh"]
        assert "prompt_tokens" not in answer.timings  # no prompt was built
        # A question on a detail neither file gives is still not found.
        reply = await say(app, "@librarian 福岛事故发生在哪一年？")
        assert "我在这个频道工作区的文件中没有找到答案" in reply, reply
    finally:
        await app.close()


async def test_a_model_whose_languages_are_not_known_is_asked_in_chinese(
    settings, tmp_path: Path, scripted_model: ThreadingHTTPServer
) -> None:
    # A remote model says nothing of its languages: it is asked, and its answer is
    # checked as any other (the bundled model is not: see the test above).
    page = OFFICE / "readability_qq-deepmind-dnc_zh.html"
    async with directive_on_scripted_model(settings, tmp_path, scripted_model, page) as (
        app,
        binding,
    ):
        said = "发表在《自然》（Nature）上 [1]。"
        answer = await scripted_answer(
            app, binding, scripted_model, "DeepMind的可微神经计算机发表在哪本期刊上？", said
        )
        assert answer.checked == "passed", answer.unsupported
        assert answer.text.startswith(f"{said}\n\n依据：")


async def test_a_chinese_question_after_an_english_one_quotes_only_what_holds_its_words(
    settings, tmp_path: Path
) -> None:
    """Seen by hand in session 11: "谷歌是在哪一年收购DeepMind的？", asked after a question
    on the directive's costs, quoted the directive's cost line beside the DeepMind
    passage: the earlier question's words lifted it, and a Chinese question has no
    similarity to weigh it down."""
    app = App.build(settings)
    app.start_background()
    try:
        directive = make_pdf(tmp_path / "ad-2020-17221.pdf", AIRWORTHINESS)
        for path in (directive, OFFICE / "readability_qq-deepmind-dnc_zh.html"):
            assert f"Indexed {path.name}" in await say(app, f"/librarian upload {path}")
        await say(app, "@librarian What does the AOA sensor system test cost per airplane?")
        reply = await say(app, "@librarian 谷歌是在哪一年收购DeepMind的？")
        assert "在2014年收购" in reply, reply
        assert "ad-2020-17221.pdf" not in reply, reply
        # And the other way round: an English question asked after the Chinese one does
        # not quote the Chinese page's timestamp for "what time" (seen by hand).
        minutes = make_pdf(tmp_path / "pv.pdf", [MINUTES_FR[0] + ["La séance est levée à 16h05."]])
        assert "Indexed pv.pdf" in await say(app, f"/librarian upload {minutes}")
        asked = "@librarian At what time was the demolition committee meeting closed?"
        reply = await say(app, asked)
        assert "16h05" in reply, reply
        assert "readability_qq-deepmind-dnc_zh.html" not in reply, reply
    finally:
        await app.close()


def test_a_document_is_found_by_its_title_in_a_papers_header() -> None:
    from bot.knowledge.named import find_named

    docs = [
        (
            1,
            "acl_2020.acl-main.207.pdf",
            "Proceedings of the 58th Annual Meeting of the "
            "Association for Computational Linguistics, pages 2270-2282 July 5 - 10, 2020. "
            "2270 SPECTER: Document-level Representation Learning",
        ),
        (2, "manual.pdf", "Zephyr X200 user manual."),
    ]
    named = find_named("Summarize the SPECTER paper", docs)
    assert named is not None and named.document_id == 1 and named.about
    within = find_named("In manual.pdf, what is the warranty?", docs)
    assert within is not None and within.document_id == 2
    assert within.rest == "what is the warranty?"  # the question proper, weighed alone
    assert find_named("In 2015, what was the warranty?", docs) is None
    assert find_named("What is the warranty about?", docs) is None
    # A summary asked for in other words, politely or not.
    for question in (
        "What is the main idea of the SPECTER paper?",
        "Could you give me the gist of SPECTER?",
        "tl;dr of the SPECTER paper",
    ):
        named = find_named(question, docs)
        assert named is not None and named.document_id == 1 and named.about, question
    # ... but the main idea of something no document is named after is a plain question.
    assert find_named("What is the main idea of the budget meeting?", docs) is None


def test_a_file_called_by_the_distinct_part_of_its_name_is_found() -> None:
    """Seen by hand in session 13: "What is in the image DA-1p.png?" was told there is no
    document named 'the image DA-1p.png', and then given unstructured_DA-1p.png as the
    closest name."""
    from bot.knowledge.named import find_named

    docs = [
        (1, "unstructured_DA-1p.png", "Department of the Army"),
        (2, "unstructured_science-exploration-1p.pptx", "Code 600"),
    ]
    for question in ("What is in the image DA-1p.png?", "Summarize the file DA-1p.png"):
        named = find_named(question, docs)
        assert named is not None and named.document_id == 1 and named.about, question
    missing = find_named("What is in the image budget.png?", docs)
    assert missing is not None and missing.document_id is None
    assert missing.asked_for == "budget.png"  # the name as written, not the words around it


def test_what_a_chinese_question_says_the_image_holds_names_the_image() -> None:
    """Seen by hand in session 14: "图片里写了什么？" ("what is written in the image?")
    searched for "图片里写" and was "not found"; Chinese has no article before 图片."""
    from bot.knowledge.named import find_named

    docs = [
        (1, "readability_qq-deepmind-dnc_zh.html", "DeepMind新电脑已可利用记忆自学"),
        (2, "unstructured_chi_sim_image.jpeg", "某个文字"),
        (3, "closed-issues_zh.csv", "标题"),
    ]
    for question in ("图片里写了什么？", "这张图片上写了什么", "图片里有什么？"):
        named = find_named(question, docs)
        assert named is not None and named.document_id == 2 and named.about, question
    assert find_named("可微神经计算机有什么用？", docs) is None  # a question, not a name


async def test_an_abbreviation_the_document_defines_answers_for_its_long_form(
    settings, tmp_path: Path
) -> None:
    """Seen by hand in session 14: "How many airplanes are affected by the airworthiness
    directive?" quoted the notice's title line ("Airworthiness Directives; The Boeing
    Company Airplanes"), not "this proposed AD affects 73 airplanes"."""
    pdf = make_pdf(
        tmp_path / "notice.pdf",
        [
            [
                "Airworthiness Directives; The Boeing Company Airplanes",
                "SUMMARY: The FAA proposes to adopt a new airworthiness directive (AD)",
                "for certain The Boeing Company Model 737-8 and 737-9 airplanes.",
            ],
            [
                "Costs of Compliance",
                "The FAA estimates that this proposed AD affects 73 airplanes of U.S.",
                "registry. The agency estimates the costs to comply with this proposed AD.",
            ],
        ],
    )
    async with files_shared(settings, pdf) as app:
        answer = await evidence_for(
            app, "How many airplanes are affected by the airworthiness directive?"
        )
        assert answer.found and "affects 73 airplanes" in answer.evidence[0].text
    # ... and the short form asked holds where the long one is written out; a word in
    # parentheses that no words before it spell is no definition.
    defined = definitions(["a new airworthiness directive (AD) for", "Boeing (BA) and (US)"])
    assert defined == {"AD": ["airworthiness", "directive"]}
    words = ["AD", "require"]
    assert expansions(defined, words, "The airworthiness directives require a test.") == [0]
    assert expansions(defined, words, "The directive requires a test.") == []


async def test_a_chinese_document_spells_a_short_form_out_in_chinese(
    settings, tmp_path: Path
) -> None:
    """The Chinese set's "缩略语NNSA代表什么机构？": the standard's list of abbreviations
    writes "NNSA 国家核安全局", which no initials spell (session 15's first rule said
    "none spells it out" there)."""
    standard = tmp_path / "psr-design_zh.md"
    standard.write_text(
        "# 核电厂定期安全评价 第12部分 设计\n\n## 缩略语\n\n本文件采用下列缩略语。\n\n"
        "PSR 定期安全评价 NNSA 国家核安全局 SF 安全要素 SSCs 构筑物、系统和设备\n\n"
        "## 总则\n\n本规定由国家能源局（NEA）发布，营运单位应每十年进行一次定期安全评价。\n",
        encoding="utf-8",
    )
    async with files_shared(settings, standard) as app:
        reply = await say(app, "@librarian 缩略语NNSA代表什么机构？")
        assert reply.startswith("librarian: NNSA 是 “国家核安全局” 的缩写。"), reply
        reply = await say(app, "@librarian NEA是什么的缩写？")
        assert reply.startswith("librarian: NEA 是 “国家能源局” 的缩写。"), reply
        # A plural asked as written; a list's long form holds its "、".
        reply = await say(app, "@librarian SSCs是什么的缩写？")
        assert reply.startswith("librarian: SSCs 是 “构筑物、系统和设备” 的缩写。"), reply


async def test_a_long_sentence_is_quoted_around_the_definition_not_its_first_long_form() -> None:
    """A title page's header block reads as one sentence, and names "Federal Aviation
    Administration" before "Federal Aviation Administration (FAA)"."""
    from bot.knowledge.definition import AROUND, definition_evidence
    from bot.knowledge.sentences import MAX_SENTENCE_CHARS
    from bot.store.records import ChunkHit

    header = (
        "DEPARTMENT OF TRANSPORTATION Federal Aviation Administration 14 CFR Part 39 "
        + "[Docket No. 2020-0686] " * 11
        + "AGENCY: Federal Aviation Administration (FAA), DOT."
    )
    assert 3 * AROUND < len(header) < MAX_SENTENCE_CHARS  # one sentence, a long one
    chunk = ChunkHit(1, 1, "notice.pdf", 1, 1, header)

    async def search(query: str, k: int) -> list[ChunkHit]:
        return []

    defined = await definition_evidence("FAA", [chunk], search)
    assert defined is not None and defined.long == "Federal Aviation Administration"
    quote = defined.evidence.quotes[0].text
    assert quote.startswith("… ") and quote.endswith("Federal Aviation Administration (FAA), DOT.")


def test_a_numbered_short_form_is_spelled_out_without_the_word_that_names_its_number() -> None:
    """Seen by hand in session 15: "What does NHNC1 stand for?" was not found, though the
    data model's list of abbreviations spells it out: its "1" is "Level 1"."""
    listed = (
        "ABBREVIATIONS LRM Linear Reference Method LRS Linear Reference System NHNC1 "
        "National Hydro Network, Canada, Level 1 NID National Identifier"
    )
    assert spelled_out("NHNC1", listed) == ("National Hydro Network, Canada, Level 1", listed)
    assert spelled_out("LRS", listed) == ("Linear Reference System", listed)
    # Only the word that names the number may be left out, no other.
    assert spelled_out("NHN1", "NHN1 National Hydro Network, Canada, Level 1") is None


def test_a_short_form_in_mixed_case_is_spelled_out_by_the_first_letters_of_its_words() -> None:
    """Seen by hand in session 16: "What does NRCan stand for?" was told "The documents
    write NRCan but none spells it out" beside the list "NRCan Natural Resources Canada"."""
    listed = "NID National Identifier NRCan Natural Resources Canada"
    assert spelled_out("NRCan", listed) == ("Natural Resources Canada", listed)
    told = "Our IoT Internet of Things devices report every hour."
    assert spelled_out("IoT", told) == ("Internet of Things", told)
    # Its small letters go on with a word as the short form writes them: "Council" is
    # no "Can".
    assert spelled_out("NRCan", "NRCan Natural Resources Council of Nova Scotia") is None


async def test_what_an_abbreviation_stands_for_is_the_sentence_that_spells_it_out(
    settings, tmp_path: Path
) -> None:
    """Seen by hand in session 15: "What does AOA stand for?" quoted a diary's "the
    standing report among Western boys" ("stand" matched "standing") above "The angle
    of attack (or AOA) is ..."; "What does NICS stand for?", asked of a table that never
    spells it out, was answered with the table's disclaimers."""
    notice = make_pdf(
        tmp_path / "notice.pdf",
        [
            [
                "The AOA sensors are small vanes on either side of the fuselage.",
                "The angle of attack (or AOA) is the angle at which the wing meets the air.",
                "An AOA DISAGREE alert shows when the two AOA sensors differ.",
            ],
            ["Each airplane gets an AOA sensor system test before it returns to service."],
        ],
    )
    diary = make_pdf(
        tmp_path / "diary.pdf",
        [["For a year the standing report among the boys has been All Quiet on the Potomac."]],
    )
    checks = make_pdf(
        tmp_path / "checks.pdf",
        [["These statistics represent the firearm background checks initiated through NICS."]],
    )
    paper = make_pdf(
        tmp_path / "paper.pdf",
        [
            ["We show that SPECTER's representations outperform the state of the art."],
            ["2SPECTER: Scientific Paper Embeddings using Citation-informed TransformERs"],
        ],
    )
    async with files_shared(settings, notice, diary, checks, paper) as app:
        asked = ("What does AOA stand for?", "what does aoa stand for", "AOA是什么的缩写？")
        for question in asked:
            answer = await evidence_for(app, question)
            assert answer.found, question
            assert [e.text for e in answer.evidence] == [
                "The angle of attack (or AOA) is the angle at which the wing meets the air."
            ], question
        answer = await evidence_for(app, "What does the name SPECTER stand for?")
        assert answer.found and "Scientific Paper Embeddings using Citation" in answer.body
        # "What is AOA?": its definition first, then what else the documents say of it.
        answer = await evidence_for(app, "What is AOA?")
        assert answer.found and "(or AOA)" in answer.evidence[0].text
        assert len(answer.evidence) > 1
        assert all("(or AOA)" not in e.text for e in answer.evidence[1:])
        # The answer is the long form in the document's words, no model's paraphrase.
        reply = await say(app, "@librarian What does AOA stand for?")
        assert reply.startswith("librarian: AOA stands for “angle of attack”.")
        assert "(or AOA)" in reply and "notice.pdf, p. 1" in reply
        reply = await say(app, "@librarian What does NICS stand for?")
        assert NOT_FOUND in reply
        assert "The documents write NICS but none spells it out." in reply
        assert "checks.pdf" in reply  # where it is written
        reply = await say(app, "@librarian What does FBI stand for?")
        assert NOT_FOUND in reply and "No document mentions: FBI." in reply
    # A plural asks for the same short form; "What is X?" of a word in lowercase, or of
    # a phrase, is an ordinary question.
    assert asked_what_is("What are AMOCs?") == "AMOCs"
    assert asked_short_form("What does AMOCs stand for?") == "AMOCs"
    assert asked_what_is("what is the cost?") is None
    assert asked_what_is("What is SPECTER about?") is None


async def test_what_a_thing_is_is_answered_by_the_sentence_saying_what_it_is(settings) -> None:
    """Seen by hand in session 22: "What is AutoGen?", of the AutoGen paper and a blog
    post on it, quoted the paper's title and author line and the blog's sentences naming
    AutoGen; the abstract's "AutoGen is an open-source framework ..." was not quoted."""
    paper = OFFICE / "markitdown_autogen-paper.docx"
    blog = OFFICE / "markitdown_autogen-blog.html"
    async with files_shared(settings, paper, blog) as app:
        for question in ("What is AutoGen?", "what's autogen"):
            answer = await evidence_for(app, question)
            assert answer.found, question
            assert "AutoGen is an open-source framework" in answer.evidence[0].text, question
            assert answer.evidence[0].hit.file_name == paper.name
        # Asked in the past tense, the sentence in the past answers first.
        answer = await evidence_for(app, "What was AutoGen?")
        assert "AutoGen was a subpackage in FLAML" in answer.evidence[0].text


async def test_what_a_thing_is_is_answered_by_the_sentence_naming_it(
    settings, tmp_path: Path
) -> None:
    """Seen by hand in session 22: "What is an Abomination?", of a game manual's page,
    quoted its heading and a story first; the sentence ending "... known as an
    abomination" second."""
    manual = make_pdf(
        tmp_path / "manual.pdf",
        [
            [
                "MAIN GAME CREATURES Abomination",
                "We arrived in the dead of night, and the abomination was waiting.",
                "Entire squads of templars have been known to fall to a single abomination.",
                "Should the demon get the upper hand, the result is an unholy union known "
                "as an abomination.",
            ]
        ],
    )
    async with files_shared(settings, manual) as app:
        answer = await evidence_for(app, "What is an Abomination?")
        assert answer.found
        assert answer.evidence[0].text.endswith("an unholy union known as an abomination.")


async def test_who_someone_is_is_answered_where_the_documents_name_them(settings) -> None:
    """Seen by hand in session 22: "Who is Richard McClintock?" was "not found" beside
    "Richard McClintock, a Latin professor at Hampden-Sydney College ...": the passage
    held both names, but the embedding model's similarity (0.13) was under the floor."""
    async with files_shared(settings, OFFICE / "docling_text_document_01.odt") as app:
        answer = await evidence_for(app, "Who is Richard McClintock?")
        assert answer.found
        assert answer.evidence[0].text.startswith("Richard McClintock, a Latin professor")
        # A name no passage holds with the other is still not found.
        assert not (await evidence_for(app, "Who is Richard Feynman?")).found


async def test_the_paper_asked_for_is_the_one_its_name_and_title_say(settings) -> None:
    """Seen by hand in session 22: of markitdown_autogen-blog.html and
    markitdown_autogen-paper.docx, "Who are the authors of the AutoGen paper?" quoted the
    blog's header (both file names hold "autogen"; the blog came first by name)."""
    paper = OFFICE / "markitdown_autogen-paper.docx"
    blog = OFFICE / "markitdown_autogen-blog.html"
    async with files_shared(settings, paper, blog) as app:
        answer = await evidence_for(app, "Who are the authors of the AutoGen paper?")
        assert answer.found
        assert "Qingyun Wu , Gagan Bansal" in answer.evidence[0].text
        assert {q.hit.file_name for q in answer.evidence} == {paper.name}
        # "What is AutoGen about?": the paper's title names AutoGen, the blog's does not.
        answer = await evidence_for(app, "What is AutoGen about?")
        assert {q.hit.file_name for q in answer.evidence} == {paper.name}
        # The blog, asked for as such, is still the blog.
        answer = await evidence_for(app, "Summarize the AutoGen blog")
        assert {q.hit.file_name for q in answer.evidence} == {blog.name}


async def test_who_wrote_a_document_and_its_title_are_quoted_from_its_header(
    settings, tmp_path: Path
) -> None:
    """Seen by hand in session 14: "Who are the authors of the SPECTER paper?" quoted
    sentences about authors as an input field, and "What is the title of
    acl_N18-3011.pdf?" was "not found" (no sentence says "title", and the file name's
    words were weighed as words the document must hold)."""
    pdf = make_pdf(
        tmp_path / "specter-2020.pdf",
        [
            [
                "SPECTER: Document-level Representation Learning",
                "Arman Cohan, Sergey Feldman, Iz Beltagy, Doug Downey",
                "Abstract",
                "Representation learning is a critical ingredient for natural language",
                "processing systems. We propose SPECTER to generate document embeddings.",
            ],
            [
                "We also experimented with additional fields such as venues and authors",
                "but did not find any empirical advantage in using those authors fields.",
                "The model was trained on 684,000 triples of scientific papers.",
            ],
        ],
    )
    async with files_shared(settings, pdf) as app:
        for question in ("Who are the authors of the SPECTER paper?", "Who wrote SPECTER?"):
            answer = await evidence_for(app, question)
            assert answer.found and "Arman Cohan" in answer.evidence[0].text, question
        answer = await evidence_for(app, "What is the title of specter-2020.pdf?")
        assert answer.found and answer.evidence[0].text.startswith("SPECTER: Document-level")
        # A file name elsewhere in a question says where to look; the rest is weighed.
        answer = await evidence_for(app, "How many triples was specter-2020.pdf trained on?")
        assert answer.found and "684,000" in answer.evidence[0].text


async def test_who_wrote_and_when_a_book_opening_with_its_cover_was_published(
    settings, tmp_path: Path
) -> None:
    """Seen by hand in session 17 on a Project Gutenberg e-book: its first chunk is its
    cover ("Cover"), so "Who wrote Winter Sports in Switzerland?" named no document and
    was "not found"; then "When was it published?" quoted the title and licence, its
    release date two chunks further on ("You may copy it" counted as a date)."""
    licence = (
        "This ebook is for the use of anyone anywhere at no cost and with almost no "
        "restrictions whatsoever. You may copy it, give it away or re-use it under the "
        "terms of the licence included with this ebook."
    )
    book = make_epub(
        tmp_path / "harbour.epub",
        "The Harbour Almanac",
        [
            ("Cover", []),
            ("The eBook of The Harbour Almanac, by Ada Brennan", [licence] * 3),
            (
                "Front matter",
                [
                    "Title: The Harbour Almanac",
                    "Author: Ada Brennan",
                    "Release date: March 3, 2021",
                    "Language: English",
                ],
            ),
            ("Tides", ["The spring tides in the harbour reach four metres."] * 20),
        ],
    )
    async with files_shared(settings, book) as app:
        answer = await evidence_for(app, "Who wrote The Harbour Almanac?")
        assert answer.found and "by Ada Brennan" in answer.evidence[0].text
        assert "harbour.epub" in answer.text
        answer = await evidence_for(app, "When was The Harbour Almanac published?")
        assert answer.found and any("March 3, 2021" in q.text for q in answer.evidence)
        assert not any(q.text.startswith("You may copy") for q in answer.evidence)


def test_a_documents_opening_quotes_what_the_next_chunk_repeats_once() -> None:
    """Seen by hand in session 15: the opening of acl_N18-3011.pdf quoted its list of
    authors twice, "Murray, Hsu-Han Ooi, Matthew Peters, ..." then "Ooi, Matthew
    Peters, ...": the second chunk repeats the end of the first."""
    from bot.knowledge.opening import opening_evidence
    from bot.store.records import ChunkHit

    first = (
        "Construction of the Literature Graph. Murray, Hsu-Han Ooi, Matthew Peters, Joanna Power"
    )
    second = "Ooi, Matthew Peters, Joanna Power and Oren Etzioni, Allen Institute for AI"
    chunks = [ChunkHit(i, 1, "n18.pdf", 1, 1, text) for i, text in enumerate([first, second])]
    quotes = [q.text for q in opening_evidence(chunks, header=True).quotes]
    assert quotes == [
        "Construction of the Literature Graph.",
        "Murray, Hsu-Han Ooi, Matthew Peters, Joanna Power",
        "and Oren Etzioni, Allen Institute for AI",
    ]


async def test_where_and_when_a_document_appeared_is_quoted_from_its_header(
    settings, tmp_path: Path
) -> None:
    """Seen on the calibrate split in session 15: "At which conference was
    "Construction of the Literature Graph in Semantic Scholar" published?" was "not
    found" in the library: no sentence says "conference"; the first page's header
    says "Proceedings of NAACL-HLT 2018"."""
    pdf = make_pdf(
        tmp_path / "N18-3011.pdf",
        [
            [
                "Proceedings of NAACL-HLT 2018, pages 84-91, New Orleans, June 1 - 6, 2018.",
                "Construction of the Literature Graph in Semantic Scholar",
                "Waleed Ammar, Dirk Groeneveld, Chandra Bhagavatula",
                "We describe a deployed scalable system for organizing published literature.",
            ],
            ["The literature graph consists of more than 280M nodes."],
        ],
    )
    other = make_pdf(tmp_path / "manual.pdf")
    async with files_shared(settings, pdf, other) as app:
        for question in (
            'At which conference was "Construction of the Literature Graph in Semantic '
            'Scholar" published?',
            "When was the literature graph paper published?",
            "Construction of the Literature Graph 是什么时候发表的？",
        ):
            answer = await evidence_for(app, question)
            assert answer.found, question
            assert "NAACL-HLT 2018" in answer.evidence[0].text, question


async def test_a_footnote_mark_named_in_words_finds_the_note_that_writes_it(
    settings, tmp_path: Path
) -> None:
    """Seen on the calibrate split in session 15: "What does the double asterisk mean
    in the NICS firearm background check table?" was "not found": the note writes
    "**Multiple", never "asterisk"."""
    table = make_pdf(
        tmp_path / "checks.pdf",
        [
            [
                "NICS Firearm Background Checks: November 2015.",
                "State Permit Handgun Long Gun Other* Multiple** Totals.",
                "Alabama 27,297 24,284 18,424 1,229 1,020 73,364.",
                "*Other (firearms that are neither handguns nor long guns).",
                "**Multiple (multiple types of firearms selected).",
            ]
        ],
    )
    other = make_pdf(tmp_path / "ad-2020-17221.pdf", AIRWORTHINESS)
    async with files_shared(settings, table, other) as app:
        answer = await evidence_for(
            app, "What does the double asterisk mean in the firearm checks table?"
        )
        assert answer.found
        assert answer.evidence[0].text.startswith("**Multiple"), answer.evidence[0].text
        answer = await evidence_for(app, "What does the asterisk mean in the firearm checks table?")
        # (quoted, though the title, holding "firearm" and "checks", may come first)
        assert answer.found and any(e.text.startswith("*Other") for e in answer.evidence)


async def test_a_question_whose_key_term_no_document_holds_is_not_found_and_says_what_was_searched(
    settings, tmp_path: Path
) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        pdf = make_pdf(tmp_path / "ad-2020-17221.pdf", AIRWORTHINESS)
        await say(app, f"/librarian upload {pdf}")
        await say(app, f"/librarian upload {make_pdf(tmp_path / 'manual.pdf')}")
        # Every word but one is in the cost sentence; the one the question hinges on is
        # in no document, so the documents do not say it (the cost they give is not
        # Canada's), and the reply says what was searched and what is missing.
        reply = await say(
            app, "@librarian How much does the AOA sensor system test cost per airplane in Canada?"
        )
        assert NOT_FOUND in reply
        assert "I searched for: Canada" in reply
        assert "No document mentions: Canada." in reply
        assert "The closest passage is in ad-2020-17221.pdf" in reply

        # Without it, the question is answered from that sentence.
        answer = await evidence_for(
            app, "How much does the AOA sensor system test cost per airplane?"
        )
        assert answer.found
        assert any("$3,400" in q.text for q in answer.evidence)
    finally:
        await app.close()


MINUTES_FR = [
    [
        "Procès-verbal de la séance du comité de démolition du 20 juin 2023.",
        "Madame Julie Tremblay agit à titre de secrétaire de la séance.",
        "Le comité adopte la résolution DM-2023-001 à l'unanimité.",
        "La demande vise la démolition partielle du bâtiment situé au 1069, boulevard",
        "de Sainte-Adèle, pour permettre la construction de 43 logements.",
    ]
]


async def test_an_english_question_on_a_french_document_is_answered_from_it(
    settings, tmp_path: Path
) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        await say(app, f"/librarian upload {make_pdf(tmp_path / 'pv-2023-06-20.pdf', MINUTES_FR)}")
        await say(app, f"/librarian upload {make_pdf(tmp_path / 'manual.pdf')}")
        # "secretary", "committee", "meeting" are in no document: the minutes say
        # "secrétaire", "comité", "séance".  Words cannot be compared across languages,
        # so the evidence's similarity decides, and the French sentence is quoted.
        answer = await evidence_for(
            app, "Who acted as secretary of the demolition committee meeting?"
        )
        assert answer.found, answer.text
        assert answer.timings["lexical"] is False
        assert all(q.hit.file_name == "pv-2023-06-20.pdf" for q in answer.evidence)
        assert any("Julie Tremblay" in q.text for q in answer.evidence), answer.text
    finally:
        await app.close()


async def test_a_question_asking_for_a_time_is_answered_by_the_sentence_holding_one(
    settings, tmp_path: Path
) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        closing = MINUTES_FR[0] + ["La séance est levée à 16h05."]
        await say(app, f"/librarian upload {make_pdf(tmp_path / 'pv.pdf', [closing])}")
        # Every sentence of the minutes holds a number (a date, a resolution, an
        # address, a count); asked for a time, the one holding a time of day comes first.
        answer = await evidence_for(
            app, "At what time was the demolition committee meeting closed?"
        )
        assert answer.found, answer.text
        assert "16h05" in answer.evidence[0].text, answer.text
    finally:
        await app.close()


EXPENDITURES = [
    [
        "Senate statement of expenditures, April to September 2019.",
        "PAYEE NAME OBLIGATION/SERVICE DESCRIPTION AMOUNT ($)",
        "37,499.96DISTRICT DIRECTORBAIN, J MATTHEW 21,000.00LEGISLATIVE",
        "11,188.87LEGISLATIVE CORRESPONDENT FROM JUL. 15KISHI, DANIEL",
    ]
]


async def test_a_name_glued_to_its_neighbour_by_the_pdf_is_not_missing(
    settings, tmp_path: Path
) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        await say(app, f"/librarian upload {make_pdf(tmp_path / 'senate.pdf', EXPENDITURES)}")
        await say(app, f"/librarian upload {make_pdf(tmp_path / 'manual.pdf')}")
        # The extraction glued "DIRECTORBAIN": the index never saw "Bain" as a word, but
        # it is in the text, so the question is not refused for a missing name.
        answer = await evidence_for(
            app, "What is the amount for district director J Matthew Bain in the Senate statement?"
        )
        assert answer.found, answer.text
        assert any("37,499.96" in q.text for q in answer.evidence)
    finally:
        await app.close()


def test_the_language_of_a_passage_is_told_by_its_script_or_function_words() -> None:
    from bot.knowledge.language import question_language, same_language, text_language

    assert text_language("La demande vise la démolition partielle du bâtiment situé au") == "fr"
    assert text_language("Einführung in die Geometrie und Topologie, die nicht mit der") == "de"
    assert text_language("The FAA estimates that the test costs $3,400 per airplane.") == "en"
    assert text_language("显存不足怎么办") == "zh"
    assert text_language("12,382 9,041 707 618 Arkansas 3,298 California") is None
    assert question_language("Which community is precinct 0050003A in?") == "en"
    assert question_language("Qui est le secrétaire?") == "fr"
    # A table has no language: its words are compared with the question's.
    assert same_language("What is the total for Colorado?", "42,271 Colorado 3,298 Arkansas")
    assert not same_language("Who was the secretary?", MINUTES_FR[0][1] + " " + MINUTES_FR[0][2])


OFFICE = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "office"


async def test_a_table_row_is_quoted_with_its_column_names_and_a_hyphen_is_no_missing_word(
    settings, tmp_path: Path
) -> None:
    """A slide's chart table answers "how many saltwater ducks in 2021" with the row and
    the header that says which column is which; a spreadsheet written "January–June"
    is found by a question typed "January-June"."""
    app = App.build(settings)
    app.start_background()
    try:
        for name in ("docling_pptx_chart.pptx", "unstructured_nestle-2023-half-year-segments.xlsx"):
            reply = await say(app, f"/librarian upload {OFFICE / name}")
            assert f"Indexed {name}" in reply

        async def evidence(question: str) -> list[str]:
            answer = await evidence_for(app, question)
            assert answer.found, question
            return [q.text for q in answer.evidence]

        ducks = await evidence("How many saltwater ducks were observed in 2021?")
        assert ducks[0] == "| | Freshwater Ducks | Saltwater Ducks | … | 2021 | 150 | 110 |"
        sales = await evidence("What were the sales of Zone AOA in January-June 2023?")
        # Found, from the Zone AOA row of the sales table, quoted with the sheet's title
        # lines that name its period (the row is in a later block of the sheet: it was
        # the impairment table's row, whose header names the period, before the title
        # travelled with every block).
        assert sales[0].startswith("Revenue and results — In millions of CHF, January–June 2023:")
        assert "| Zone AOA | 9060 |" in sales[0], sales
        # Typed as people type it, without the accent the spreadsheet writes ("Nestlé"):
        # the name is in the quotes after all, not a word no document holds, so the
        # question is answered (it was "not found", seen by hand in session 8).  The row
        # is quoted; the name, in "Nestlé Health Science" rows only, can outweigh the
        # period and put one of those first.
        typed = await evidence("What were Nestle's sales in Zone AOA in January-June 2023?")
        assert any("Nestlé" in q for q in typed), typed
        assert any("January–June 2023: " in q and "| Zone AOA | 9060 |" in q for q in typed)
    finally:
        await app.close()


async def test_a_document_named_by_the_words_of_its_file_name_answers(
    settings, tmp_path: Path
) -> None:
    """Seen on the calibrate split: "In the PDF Example Document exported from Google
    Docs, what should errors never do?" was "not found", "No document mentions: PDF,
    exported, Google, Docs", in a workspace holding pypdf-samples_011_google-doc.pdf.
    The words naming the document are in its file's name, which a reader sees in every
    citation, not in its text."""
    app = App.build(settings)
    app.start_background()
    try:
        policy = [
            [
                "Economy class is booked for every flight shorter than six hours.",
                "Receipts are filed within thirty days of the return.",
            ]
        ]
        pdf = make_pdf(tmp_path / "northwind_travel-policy.pdf", policy)
        assert "Indexed northwind_travel-policy.pdf" in await say(app, f"/librarian upload {pdf}")
        answer = await evidence_for(
            app, "Under the Northwind travel policy, which class is booked for short flights?"
        )
        assert answer.found, answer.text
        assert answer.evidence[0].text.startswith("Economy class is booked")
        # A word neither the text nor the name holds is still missing.
        reply = await say(
            app, "@librarian Under the Northwind travel policy, what is the hotel allowance?"
        )
        assert "I could not find this" in reply, reply
        assert "No document mentions: hotel, allowance." in reply, reply
    finally:
        await app.close()


async def test_a_slides_line_and_a_cover_pages_value_are_quoted_alone(settings) -> None:
    """Seen by hand in session 17: "What is Code 660?" was answered by the slide's whole
    list of codes, a 400-character run: the extractors wrote one block per line and the
    chunker joined the lines of a paragraph, as a PDF wraps them.  A slide's line is now
    a paragraph of its own.  And a web page's tables were all read as text (each cell of a
    page exported from a word processor is a <p>), so a filing's cover ran its values
    and their labels together: a table is now rows, its labels with their values."""
    app = App.build(settings)
    app.start_background()
    try:
        for name in (
            "unstructured_science-exploration-1p.pptx",
            "unstructured_example-10k-1p.html",
        ):
            reply = await say(app, f"/librarian upload {OFFICE / name}")
            assert f"Indexed {name}" in reply

        code = await evidence_for(app, "Which division has the code 660?")
        assert code.found
        assert code.evidence[0].text == "Code 660: Astrophysics Science Division"
        # Each quote is one line of the slide, not its list run together.
        assert not any("Code 610" in q.text and "Code 660" in q.text for q in code.evidence)
        state = await evidence_for(app, "In which state is Galaxy Gaming incorporated?")
        assert state.found
        assert any(
            q.text.startswith(
                "| Nevada (State or other jurisdiction of incorporation or organization) |"
            )
            for q in state.evidence
        ), [q.text for q in state.evidence]
        # The cover's table of securities: the symbol is quoted in its row, with the
        # column names (the spacer columns between them left out).
        symbol = await evidence_for(app, "What is Galaxy Gaming's trading symbol?")
        assert (
            "| Title of each class | Trading symbol | Name of exchange on which registered |"
            " … | Common stock | GLXZ | OTCQB marketplace |"
        ) in [q.text for q in symbol.evidence], [q.text for q in symbol.evidence]
        # A cell's inline elements are joined as written: "(702)", not "( 702 )".
        phone = await evidence_for(app, "What is Galaxy Gaming's telephone number?")
        assert any(
            "(702) 939-3254 (Registrant’s telephone number)" in q.text for q in phone.evidence
        ), [q.text for q in phone.evidence]
    finally:
        await app.close()


def test_a_list_number_or_a_captions_label_opens_the_sentence_it_numbers() -> None:
    from bot.knowledge.sentences import split_sentences

    minutes = "Agenda adopted.\n\n3. Public question period\nNo question.\n\nResolution DM-2023-001"
    assert split_sentences(minutes) == [
        "Agenda adopted.",
        "3. Public question period No question.",
        "Resolution DM-2023-001",
    ]
    caption = (
        "Figure 7-27. Stainless steel self-locking nut. Table 2: Torque values. "
        "We saw 3. That was all of it."
    )
    assert split_sentences(caption) == [
        "Figure 7-27. Stainless steel self-locking nut.",
        "Table 2: Torque values.",
        "We saw 3.",
        "That was all of it.",
    ]


CRAZY_ONES = [
    [
        "The crazy ones.",
        "Here's to the crazy ones, the misfits, the rebels, the troublemakers.",
        "The crazy ones see the world differently, and the crazy ones are not fond of rules.",
        "About the only thing you cant do is ignore them.",
    ]
]


async def test_in_a_named_document_only_the_question_proper_is_weighed(
    settings, tmp_path: Path
) -> None:
    """ "According to The Crazy Ones, ...": the name says where to look.  Its words are in
    every sentence of the poem and would pick the sentence that repeats them most; the
    question proper ("the only thing you can't do") picks the one that answers."""
    app = App.build(settings)
    app.start_background()
    try:
        await say(app, f"/librarian upload {make_pdf(tmp_path / 'the-crazy-ones.pdf', CRAZY_ONES)}")
        answer = await evidence_for(
            app, "According to The Crazy Ones, what is the only thing you can't do?"
        )
        assert answer.found, answer.text
        assert answer.evidence[0].text == "About the only thing you cant do is ignore them."
    finally:
        await app.close()


# A request whose number is in the next chunk (the next page), a chunk with none of the
# question's words; twelve reviews name the extension and rank above it.
DEMOLITION = [
    [
        "Planning committee minutes.",
        "Request for 1069 Maple Boulevard: the owner proposes housing in an extension behind "
        "the preserved front of the theatre.",
    ],
    [
        "It provides 43 new dwellings in four storeys.",
        "Work starts in the spring, once the permits are issued.",
        "The stage and the seats stay as they are, and the lobby is repainted in its first "
        "colours.",
        "The old projector goes to the town museum, with the posters of the opening night.",
        "The organ is tuned and the curtain is cleaned by the volunteers of the friends' society.",
    ],
]
REVIEWS = [
    "fire review found two exits, sprinklers on each floor and alarms wired to the station",
    "tree review counted forty old maples and asked that the roots be fenced off",
    "traffic review measured the morning queue at the crossing and the bus delays",
    "noise review limited the drilling to weekdays between eight and five",
    "drainage review asked for a larger storm pipe under the lane",
    "shadow review modelled the winter sun on the park benches at noon",
    "waste review placed the bins in a shed off the lane",
    "design review asked for red brick and tall windows like the old front",
    "access review kept the ramp and the side door for wheelchairs",
    "lighting review asked for warm lamps that do not shine into bedrooms",
    "parking review found spaces for bicycles but none for cars",
    "heritage review kept the painted sign and the marquee over the door",
]


async def test_a_passage_that_goes_on_in_the_next_chunk_is_quoted_from_it(
    settings, tmp_path: Path
) -> None:
    app = App.build(settings)
    app.start_background()
    try:
        reviews = [
            [
                f"The {r}; it raised no objection to the housing of the proposed extension on "
                "Maple Boulevard."
            ]
            for r in REVIEWS
        ]
        await say(app, f"/librarian upload {make_pdf(tmp_path / 'minutes.pdf', DEMOLITION)}")
        await say(app, f"/librarian upload {make_pdf(tmp_path / 'reviews.pdf', reviews)}")
        # The request's page is the best match; the number it announces is on the next
        # page, which shares no word with the question and ranks below eight reviews.
        # It is a candidate as the request's continuation, and quoted.
        answer = await evidence_for(
            app,
            "How many housing units would the proposed extension behind 1069 Maple Boulevard add?",
        )
        assert answer.found, answer.text
        assert any(
            q.text == "It provides 43 new dwellings in four storeys." and q.page == 2
            for q in answer.evidence
        ), answer.text
    finally:
        await app.close()


# The directive, and minutes that pasted the end of one of its sentences (as a chunk
# starting inside a sentence holds it).
DIRECTIVE = (
    "The operator inspects the sensors before the first flight of the day. As a result of "
    "the changes proposed in this directive, the stick shaker no longer activates when only "
    "one of the two angle of attack sensors reports a fault. The crews are trained again "
    "on the new alerts in a simulator session of four hours."
)
MINUTES = (
    "Minutes of the safety meeting, quoting the directive:\n\nresult of the changes "
    "proposed in this directive, the stick shaker no longer activates when only one of the "
    "two angle of attack sensors reports a fault.\n\nThe next meeting is in March."
)


async def test_a_sentence_and_its_tail_elsewhere_are_quoted_once(settings, tmp_path: Path) -> None:
    """Seen on the calibrate split (session 10): "As a result of the changes proposed in
    this AD, ..." and its tail "result of the changes proposed in this AD, ..." (a chunk
    that starts inside the sentence) were two of the three quotes, where another
    sentence could have been."""
    app = App.build(settings)
    app.start_background()
    try:
        for name, body in (("directive.txt", DIRECTIVE), ("minutes.txt", MINUTES)):
            (tmp_path / name).write_text(body)
            assert f"Indexed {name}" in await say(app, f"/librarian upload {tmp_path / name}")
        answer = await evidence_for(
            app, "What do the changes proposed in the directive do to the stick shaker?"
        )
        assert answer.found, answer.text
        quoted = [" ".join(q.text.lower().split()) for q in answer.evidence]
        assert sum("the stick shaker no longer activates" in q for q in quoted) == 1, answer.text
        # The whole sentence is the one quoted.
        assert any(q.startswith("as a result of the changes") for q in quoted), answer.text
    finally:
        await app.close()


async def test_a_table_row_found_by_its_rare_name_alone_is_quoted(
    settings, corpus_dir: Path
) -> None:
    """A row of a long PDF table embeds like every other row: the dense search ranks
    twenty rows above the one naming "Vishay Siliconix", which only the keyword search
    finds (first, far ahead).  It was dropped for having no similarity; it now gets its
    similarity to the question, is a candidate like the rest, and is quoted: not the
    whole run of rows the PDF's text flattened into one "sentence" (400 characters), but
    the stretch around the row."""
    answer = await evidence_on_shared_pdfs(
        settings,
        corpus_dir,
        ["pdfplumber_WARN-Report-2015-2016.pdf"],
        "How many workers were laid off by Vishay Siliconix in Santa Clara?",
    )
    quoted = [q.text for q in answer.evidence]
    row = next(q for q in quoted if "Vishay Siliconix Santa Clara 292 Layoff" in q)
    # The run opens with other companies' rows: they are cut, "…" marking the cut.
    assert row.startswith("… ") and "BAE SYSTEMS" not in row, row
    assert len(row) <= 300, row


async def test_a_sentence_holding_none_of_the_questions_words_is_quoted_only_beside_the_best(
    settings, corpus_dir: Path
) -> None:
    """After the best sentence, one that holds no word of the question was lifted only
    by its chunk's similarity and the number bonus: it is quoted beside the best one
    (an answer often follows the sentence restating the question), not from elsewhere.
    Seen by hand: "2014." and "2017." (p. 8, the references) quoted under a question
    answered on p. 1."""
    answer = await evidence_on_shared_pdfs(
        settings,
        corpus_dir,
        ["acl_N18-3011.pdf"],
        "How many monthly active users does Semantic Scholar have?",
    )
    assert answer.evidence and answer.evidence[0].page == 1, answer.text
    assert not [q for q in answer.evidence if q.page == 8], answer.text


async def test_the_row_a_question_names_is_quoted_beside_the_tables_title(
    settings, corpus_dir: Path
) -> None:
    """The NICS table's title and totals hold most of the question's words ("total",
    "firearm background checks", "NICS"), the row it asks about only "Alabama", the
    weightiest: the sentence holding it is quoted all the same.  (Beside other public
    records, as in a team's library: alone, the row's weight already carried it.)"""
    answer = await evidence_on_shared_pdfs(
        settings,
        corpus_dir,
        [
            "pdfplumber_nics-background-checks-2015-11.pdf",
            "pdfplumber_WARN-Report-2015-2016.pdf",
            "pdfplumber_federal-register-2020-17221.pdf",
            "pdfplumber_senate-expenditures.pdf",
        ],
        "What total number of firearm background checks does the NICS table give for Alabama?",
    )
    assert answer.found, answer.text
    row = [q.text for q in answer.evidence if "Alabama 18,870" in q.text]
    assert row and "71,137" in row[0], answer.text


async def test_a_question_that_stands_alone_is_not_searched_with_the_one_before(
    settings, corpus_dir: Path
) -> None:
    """Seen by hand in session 14: "What is the total number of background checks for
    Texas?", asked after a question on the airworthiness directive, quoted the NICS
    table's "Totals" row: it was searched together with the previous question, whose
    passages crowded the Texas row out.  Only a follow-up ("and for California?", "what
    is her email?") is searched with the question before it."""
    async with files_shared(
        settings,
        corpus_dir / "pdfs" / "pdfplumber_nics-background-checks-2015-11.pdf",
        corpus_dir / "pdfs" / "pdfplumber_federal-register-2020-17221.pdf",
    ) as app:
        reply = await say(app, "@librarian How many airplanes are affected by the directive?")
        assert "federal-register" in reply
        answer = await evidence_for(app, "What is the total number of background checks for Texas?")
        # (The row's last cells, its total 146,982, open the next chunk: a chunk boundary
        # cuts the row, and the quote ends with the chunk.)
        assert any("Texas 21,550 56,941" in q.text for q in answer.evidence), answer.text


def test_a_follow_up_is_told_from_a_question_that_stands_alone() -> None:
    for question in ("And how much does it cost?", "What is her email address?", "and Texas?"):
        assert is_follow_up(question), question
    for question in (
        "What is the total number of background checks for Texas?",
        "可微神经计算机是谁提出的？",
    ):
        assert not is_follow_up(question), question


async def test_a_kind_of_file_named_inside_a_question_is_that_file(
    settings, corpus_dir: Path
) -> None:
    """Seen by hand in session 14: "Who is listed in the CSV file?" searched for "CSV"
    (in no document's text) and was "not found"."""
    async with files_shared(
        settings,
        corpus_dir / "office" / "docling_csv-comma.csv",
        corpus_dir / "pdfs" / "pdfplumber_federal-register-2020-17221.pdf",
    ) as app:
        answer = await evidence_for(app, "Who is listed in the CSV file?")
        assert answer.found and any("Sheryl" in q.text for q in answer.evidence), answer.text
        quoted = [q.text for q in answer.evidence]
        assert len(quoted) == len(set(quoted)), quoted  # the header row each chunk repeats
        answer = await evidence_for(app, "What is the subscription date of Roy Berry in the csv?")
        assert answer.found and "2020-03-25" in answer.evidence[0].text, answer.text


async def test_a_follow_up_is_answered_from_the_document_the_previous_answer_quoted(
    settings, corpus_dir: Path
) -> None:
    """Seen by hand in session 14: "What is her email address?", after "Who is listed in
    the CSV file?", quoted the directive's "The street address ... is listed above"
    first: the previous question's word "listed" lifted it.  The previous answer's
    documents are what a follow-up is about."""
    async with files_shared(
        settings,
        corpus_dir / "office" / "docling_csv-comma.csv",
        corpus_dir / "pdfs" / "pdfplumber_federal-register-2020-17221.pdf",
    ) as app:
        assert "Sheryl" in await say(app, "@librarian Who is listed in the CSV file?")
        answer = await evidence_for(app, "What is her email address?")
        assert answer.evidence[0].hit.file_name == "docling_csv-comma.csv", answer.text
        # "It" in the conversation is the document its last answer quoted, not the file
        # shared last (seen by hand in session 19: "When was it published?" after "Who
        # wrote the AutoGen blog post?" quoted another file's opening).
        answer = await evidence_for(app, "What is it about?")
        assert {q.hit.file_name for q in answer.evidence} == {"docling_csv-comma.csv"}
        # ... until a file is shared after that answer: "this" is the new file.
        word = corpus_dir / "office" / "docling_word_sample.docx"
        assert "Indexed" in await say(app, f"/librarian upload {word}")
        answer = await evidence_for(app, "What is this about?")
        assert {q.hit.file_name for q in answer.evidence} == {word.name}, answer.text


async def test_a_two_column_tables_rows_are_quoted_with_its_column_names(settings) -> None:
    """Seen by hand in session 21 (pandoc's error codes, an RTF table of two columns):
    "What exit code does pandoc return for a PandocTemplateError?" quoted "| 5 |
    PandocTemplateError |" first, without "| Code | Error |", a number a reader cannot
    place.  (The reply is still "the closest the documents come": "exit" and "return"
    are in no document.)"""
    path = OFFICE / "kreuzberg_pandoc-error-codes.rtf"
    async with files_shared(settings, path) as app:
        answer = await evidence_for(
            app, "What exit code does pandoc return for a PandocTemplateError?"
        )
        assert answer.evidence[0].text == "| Code | Error | … | 5 | PandocTemplateError |"


def test_a_chinese_question_naming_things_in_english_is_answered_in_chinese() -> None:
    # Seen in session 21's Chinese benchmark: counted by letters, a Chinese question with
    # two English names was English; the model was asked it, and wrote about Python.
    assert language("langchain-ChatGLM项目里的embedding模型用的是哪一个？") == "zh"
    assert language("langchain-chatglm v0.1.13是几号更新的？") == "zh"
    assert language("Who wrote 'Einführung in die Geometrie und Topologie'?") == "en"
    assert language("How many airplanes does the AD affect?") == "en"


def test_rows_of_one_table_show_its_column_names_once() -> None:
    # Seen by hand in session 21: a KYC file structure's eleven column names stood before
    # each of the three rows quoted for "Which date format must be used for the DATE
    # field?", 330 characters each time.
    header = "| S.No | Field | Field Type | Field Length | Remarks |"
    rows = ["| 2 | DATE | DATE | | DD/MM/YYYY |", "| 17 | DATE OF BIRTH | DATE | | dd/mm/yyyy |"]
    other = "| ERROR CODE | ERROR DESCRIPTION | … | ERR-90063 | POS CODE MISMATCH |"
    sheet = ChunkHit(1, 1, "kyc.xlsx", None, None, "", location="sheet KYC")
    texts = [f"{header} … {rows[0]}", other, f"{header} … {rows[1]}"]
    block = format_quotes([Quote(t, sheet, 0.5, 0.5) for t in texts], "The documents say:")
    assert block.splitlines()[1:] == [
        f'> "{header} … {rows[0]}" (kyc.xlsx, sheet KYC)',
        f'> "{other}" (kyc.xlsx, sheet KYC)',
        f'> "… {rows[1]}" (kyc.xlsx, sheet KYC)',
    ]
