"""Keyword search ranked by BM25, on a real Postgres: what a team's questions find.

Each test tells a small story: a team uploads a few notes, someone asks, and the
ranking must follow BM25 computed within that team's workspace only.  The notes are
written without stop words, so a note's length (BM25's dl) is its word count, and the
expected scores can be worked out by hand (``bm25`` below) and compared with the
database's.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import CORPUS_DIR
from sqlalchemy import text

from bot.config import load_settings
from bot.store import migrate
from bot.store.database import Database, open_database
from bot.store.keyword import K1, B
from bot.store.records import ChunkHit, NewChunk
from bot.store.repo import Store, WorkspaceDefaults

DEFAULTS = WorkspaceDefaults(chunk_tokens=200, chunk_overlap=40, top_k=4, relevance_floor=0.5)


@dataclass
class Team:
    """A channel's workspace and the means to add notes to it."""

    store: Store
    workspace_id: int
    model_id: int

    old_schema: bool = False  # chunks written as revision 0007's code wrote them

    def note(self, name: str, *chunks: str) -> int:
        """Upload a note (one chunk per string), indexed at once; returns its document id."""
        doc, _created = self.store.add_document(
            self.workspace_id,
            file_name=name,
            media_type="text/plain",
            sha256=hashlib.sha256(f"{self.workspace_id}/{name}".encode()).hexdigest(),
            size_bytes=sum(len(c) for c in chunks),
            uploader="alice",
        )
        if self.old_schema:
            # Today's Store writes columns of later revisions (chunks.location, 0011).
            with self.store.engine.begin() as conn:
                for i, body in enumerate(chunks):
                    conn.execute(
                        text(
                            "INSERT INTO chunks (document_id, workspace_id, ordinal, "
                            "page_start, page_end, text, embedding, embedding_model_id) "
                            "VALUES (:d, :w, :o, 1, 1, :t, '[1,0,0]', :m)"
                        ),
                        {
                            "d": doc.id,
                            "w": self.workspace_id,
                            "o": i,
                            "t": body,
                            "m": self.model_id,
                        },
                    )
                conn.execute(
                    text("UPDATE documents SET status = 'ready', page_count = 1 WHERE id = :d"),
                    {"d": doc.id},
                )
            return doc.id
        self.store.complete_document(
            doc.id,
            page_count=1,
            chunks=[NewChunk(i, 1, 1, body, [1.0, 0.0, 0.0]) for i, body in enumerate(chunks)],
            embedding_model_id=self.model_id,
        )
        return doc.id

    def ask(self, query: str, k: int = 10) -> list[ChunkHit]:
        """The keyword search the retriever runs for this workspace."""
        return self.store.search_keyword(self.workspace_id, self.model_id, query, k)

    def files(self, query: str) -> list[str]:
        """File names of the hits, best first."""
        return [h.file_name for h in self.ask(query)]

    def score(self, query: str, file_name: str) -> float:
        """The BM25 score of a file's (only) chunk for the query."""
        hit = next(h for h in self.ask(query, k=100) if h.file_name == file_name)
        assert hit.keyword_rank is not None
        return hit.keyword_rank

    def stats(self) -> tuple[int, int]:
        """(chunks, tokens) as kept by the triggers, and checked against a recount."""
        with self.store.engine.connect() as conn:
            kept = conn.execute(
                text(
                    "SELECT chunk_count, token_count FROM keyword_stats "
                    "WHERE workspace_id = :w AND embedding_model_id = :m"
                ),
                {"w": self.workspace_id, "m": self.model_id},
            ).first()
            recount = conn.execute(
                text(
                    "SELECT count(*), coalesce(sum(tsv_length), 0) FROM chunks "
                    "WHERE workspace_id = :w AND embedding_model_id = :m"
                ),
                {"w": self.workspace_id, "m": self.model_id},
            ).one()
            # Document frequencies as kept by their triggers, against a recount.
            kept_df = dict(
                conn.execute(
                    text(
                        "SELECT lexeme, df FROM keyword_terms "
                        "WHERE workspace_id = :w AND embedding_model_id = :m AND df > 0"
                    ),
                    {"w": self.workspace_id, "m": self.model_id},
                ).all()
            )
            recount_df = dict(
                conn.execute(
                    text(
                        "SELECT t.lexeme, count(*) FROM chunks c, "
                        "unnest(tsvector_to_array(c.tsv)) AS t(lexeme) "
                        "WHERE c.workspace_id = :w AND c.embedding_model_id = :m GROUP BY 1"
                    ),
                    {"w": self.workspace_id, "m": self.model_id},
                ).all()
            )
        assert kept_df == recount_df
        got = (int(kept[0]), int(kept[1])) if kept else (0, 0)
        assert got == (int(recount[0]), int(recount[1]))
        return got


def bm25(tf: int, dl: int, df: int, n: int, avgdl: float) -> float:
    """One term's BM25 contribution, worked out independently of the SQL."""
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / avgdl))


@pytest.fixture
def store(librarian_env: dict[str, str]) -> Iterator[Store]:
    """A Store on a fresh, migrated database."""
    db = open_database(load_settings())
    migrate.upgrade(db)
    try:
        yield Store(db)
    finally:
        db.close()


@pytest.fixture
def team(store: Store) -> Team:
    """The birders' channel, with a workspace of its own."""
    return make_team(store, "birders")


def make_team(store: Store, channel: str) -> Team:
    """A channel's team with its own workspace, on the shared 3-dimension test model."""
    binding = store.binding_for("console", "", channel, DEFAULTS)
    model_id = store.ensure_embedding_model("test-3d", 3)
    return Team(store, binding.workspace.id, model_id)


def test_a_rare_name_outranks_a_common_word(team: Team) -> None:
    """Everybody writes about nests; only one note names the heron.  Asked about heron
    nests, the heron note wins, and its score is BM25 to the last digit."""
    team.note("a.txt", "nest twig branch")
    team.note("b.txt", "nest twig branch")
    team.note("c.txt", "nest moss branch")
    team.note("heron.txt", "heron reed branch")
    team.note("nests.txt", "nest nest twig")

    assert team.files("heron nests")[0] == "heron.txt"
    # ts_rank_cd would have put the note saying "nest" twice first.
    assert team.files("heron nests")[1] == "nests.txt"

    n, avgdl = 5, 3.0
    assert team.stats() == (5, 15)
    assert team.score("heron nests", "heron.txt") == pytest.approx(bm25(1, 3, 1, n, avgdl))
    assert team.score("heron nests", "nests.txt") == pytest.approx(bm25(2, 3, 4, n, avgdl))
    assert team.score("heron nests", "a.txt") == pytest.approx(bm25(1, 3, 4, n, avgdl))


def test_a_shorter_note_with_the_same_mentions_ranks_higher(team: Team) -> None:
    """Two notes mention the kestrel once; the terse one is more about kestrels."""
    team.note("long.txt", "kestrel hover field hedge meadow fence post wire")
    team.note("short.txt", "kestrel hover")
    team.note("other.txt", "sparrow hedge")

    assert team.files("kestrel") == ["short.txt", "long.txt"]
    n, avgdl = 3, 12 / 3
    assert team.score("kestrel", "short.txt") == pytest.approx(bm25(1, 2, 2, n, avgdl))
    assert team.score("kestrel", "long.txt") == pytest.approx(bm25(1, 8, 2, n, avgdl))


def test_another_workspaces_notes_do_not_change_scores(store: Store) -> None:
    """The birders' ranking is theirs: the sailors upload a hundred notes full of
    'wind', and the birders' scores for 'wind heron' do not move by a hair."""
    birders = make_team(store, "birders")
    sailors = make_team(store, "sailors")
    birders.note("wind.txt", "wind heron flight")
    birders.note("calm.txt", "calm heron")
    birders.note("rain.txt", "rain nest")
    before = [(h.file_name, h.keyword_rank) for h in birders.ask("wind heron")]

    for i in range(100):
        sailors.note(f"log{i}.txt", f"wind sail knot{i}")
    sailors.note("heron.txt", "heron harbour")

    assert [(h.file_name, h.keyword_rank) for h in birders.ask("wind heron")] == before
    assert birders.stats() == (3, 7)
    assert sailors.stats() == (101, 302)
    # And neither sees the other's notes.
    assert "heron.txt" not in birders.files("heron harbour")
    assert sailors.files("calm rain") == []


def test_all_terms_says_whether_every_question_word_is_there(team: Team) -> None:
    """'all_terms' is what lets a chunk through the relevance rule on words alone."""
    team.note("both.txt", "osprey dive river fish")
    team.note("one.txt", "osprey perch")
    team.note("none.txt", "owl barn")

    hits = {h.file_name: h.all_terms for h in team.ask("Does the osprey fish?")}
    assert hits == {"both.txt": True, "one.txt": False}
    # Stemming applies to the question as to the notes: "diving ospreys" are covered.
    assert {h.file_name: h.all_terms for h in team.ask("diving ospreys")}["both.txt"]


def test_forgetting_notes_updates_the_ranking(team: Team) -> None:
    """Swifts are everywhere until the swift notes are forgotten; then 'swift' is a
    rare word again, and the remaining note's score reflects that."""
    keep = team.note("keep.txt", "swift eave roof")
    swift_notes = [team.note(f"s{i}.txt", "swift sky") for i in range(4)]
    team.note("gull.txt", "gull pier")
    common = team.score("swift", "keep.txt")
    assert common == pytest.approx(bm25(1, 3, 5, 6, 13 / 6))

    for doc_id in swift_notes:
        assert team.store.forget_document(doc_id) is not None
    assert team.stats() == (2, 5)
    rare = team.score("swift", "keep.txt")
    assert rare == pytest.approx(bm25(1, 3, 1, 2, 5 / 2))
    assert rare > common
    assert team.files("swift") == ["keep.txt"]

    team.store.forget_document(keep)
    assert team.files("swift") == []
    assert team.stats() == (1, 2)


def test_reindexing_failing_and_bulk_loading_keep_the_totals_right(team: Team) -> None:
    """Every way chunks come and go keeps the workspace's totals equal to a recount."""
    doc = team.note("a.txt", "robin worm lawn", "robin song")
    assert team.stats() == (2, 5)
    # Indexed again (the worker retries a document): the old chunks are replaced.
    team.store.complete_document(
        doc,
        page_count=1,
        chunks=[NewChunk(0, 1, 1, "robin", [1.0, 0.0, 0.0])],
        embedding_model_id=team.model_id,
    )
    assert team.stats() == (1, 1)
    team.store.fail_document(doc, "unreadable")
    assert team.stats() == (0, 0)
    team.store.bulk_load_vectors(
        team.workspace_id,
        team.model_id,
        np.ones((50, 3), dtype=np.float32),
        file_name="bulk.txt",
        chunk_text="wren hedge",
    )
    assert team.stats() == (50, 100)
    assert len(team.ask("wren", k=100)) == 50


def test_a_team_can_be_deleted_with_its_notes(store: Store) -> None:
    """Deleting a workspace cascades to its notes and its totals, without tripping the
    triggers that keep them; the other team's totals are untouched."""
    birders = make_team(store, "birders")
    sailors = make_team(store, "sailors")
    birders.note("a.txt", "heron reed")
    sailors.note("b.txt", "wind sail")
    with store.engine.begin() as conn:
        conn.execute(
            text("DELETE FROM channel_bindings WHERE workspace_id = :w"),
            {"w": birders.workspace_id},
        )
        conn.execute(text("DELETE FROM workspaces WHERE id = :w"), {"w": birders.workspace_id})
    assert birders.stats() == (0, 0)
    assert sailors.stats() == (1, 2)


# Bird words that English stemming leaves as they are, from everywhere to rare.
BIRDS = ["nest", "twig", "reed", "moss", "owl", "wren", "kite", "gull"]
BIRDS += ["pier", "lark", "dove", "crow", "hawk", "swan", "teal", "rook"]


def test_skipping_common_words_chunks_finds_exactly_the_full_ranking(team: Team) -> None:
    """The birders write 300 notes where "nest" is everywhere and "rook" almost never
    appears.  Whatever they ask, the top k is BM25's over every note, score for score,
    although the search reads only the chunks that can still make it."""
    import random

    rng = random.Random(20261126)
    weights = [1 / (i + 1) ** 1.3 for i in range(len(BIRDS))]
    notes = [rng.choices(BIRDS, weights, k=rng.randint(2, 9)) for _ in range(300)]
    # One document of 300 chunks: one statement, as the ingest worker writes them.
    doc = team.note("birds.txt", *(" ".join(words) for words in notes))
    with team.store.engine.connect() as conn:
        ordinal = dict(
            conn.execute(
                text("SELECT id, ordinal FROM chunks WHERE document_id = :d"), {"d": doc}
            ).all()
        )
    n, tokens = team.stats()
    avgdl = tokens / n
    df = {bird: sum(bird in words for words in notes) for bird in BIRDS}

    def expected(query: list[str]) -> list[float]:
        terms = set(query)
        return [
            sum(bm25(words.count(t), len(words), df[t], n, avgdl) for t in terms if t in words)
            for words in notes
        ]

    team.store.plan_counts.clear()
    for _ in range(60):
        query = rng.sample(BIRDS, rng.randint(1, 4))
        k = rng.choice([1, 3, 10, 20])
        hits = team.ask(" ".join(query), k=k)
        want = sorted((s for s in expected(query) if s > 0), reverse=True)[:k]
        assert [h.keyword_rank for h in hits] == pytest.approx(want, rel=1e-9)
        scores = expected(query)
        for hit in hits:  # each hit is the chunk its score says
            assert scores[ordinal[hit.chunk_id]] == pytest.approx(hit.keyword_rank, rel=1e-9)
    plans = team.store.plan_counts
    # Every way of reading was taken, so each was checked against the full ranking.
    assert plans["keyword_pruned"] and plans["keyword_two_pass"] and plans["keyword_full"]


@pytest.mark.parametrize("query", ["", "   ", "the of and", "?!", "who is it that was there"])
def test_a_question_without_searchable_words_finds_nothing(team: Team, query: str) -> None:
    """Stop words and punctuation leave no term to search for: no hits, no error."""
    team.note("a.txt", "heron reed")
    assert team.ask(query) == []


def test_quotes_and_backslashes_in_a_question_are_only_words(team: Team) -> None:
    """A question's punctuation can never break the query syntax."""
    team.note("obrien.txt", "O'Brien heron count")
    assert team.files("O'Brien's count | & ! \\ ' (heron") == ["obrien.txt"]
    assert team.files("'\\'' <-> :*") == []


def _hit(chunk_id: int, *, similarity: float | None = None, bm25: float | None = None) -> ChunkHit:
    """A search hit as a dense (similarity) or keyword (BM25) list holds it."""
    return ChunkHit(
        chunk_id, chunk_id, f"{chunk_id}.txt", 1, 1, "", similarity=similarity, keyword_rank=bm25
    )


def test_a_keyword_hit_far_ahead_of_the_rest_survives_fusion() -> None:
    """Only one note names the heron: BM25 puts it far ahead, while the embedding, which
    does not know the name, ranks it tenth.  Fusing by score keeps it first; fusing by
    rank (RRF, k=60) put the note both lists rank near the top ahead of it."""
    from bot.knowledge.retrieval import fuse

    dense = [_hit(2, similarity=0.62), _hit(3, similarity=0.61)]
    dense += [_hit(10 + i, similarity=0.60 - i / 100) for i in range(7)]
    dense.append(_hit(1, similarity=0.535))  # ninth
    dense += [_hit(20 + i, similarity=0.53 - i / 100) for i in range(14)]
    keyword = [_hit(1, bm25=14.0), _hit(2, bm25=2.1), _hit(3, bm25=2.0), _hit(4, bm25=1.0)]

    order = [hit.chunk_id for hit, _score in fuse([dense, keyword])]
    assert order[0] == 1
    assert order[1:3] == [2, 3]
    best = fuse([dense, keyword])[0][0]
    assert (best.similarity, best.keyword_rank) == (0.535, 14.0)


# ---- Chinese, Japanese and Korean: CJK runs are indexed as character bigrams ------------

ARTICLE = CORPUS_DIR / "office" / "readability_qq-deepmind-dnc_zh.html"
ISSUES = CORPUS_DIR / "office" / "chatchat_langchain-chatglm-closed-issues_zh.csv"


class _Paragraphs(HTMLParser):
    """The text of a web page's <p> elements, scripts and styles left out."""

    def __init__(self) -> None:
        super().__init__()
        self.paragraphs: list[str] = []
        self._depth = 0  # inside <p>
        self._hidden = 0  # inside <script> or <style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "p":
            self._depth += 1
            self.paragraphs.append("")
        elif tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._depth:
            self._depth -= 1
        elif tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if self._depth and not self._hidden:
            self.paragraphs[-1] += data.strip()


def article_paragraphs() -> list[str]:
    """The paragraphs of a real Chinese news article (qq.com, 2016, on DeepMind's DNC)."""
    if not ARTICLE.is_file():
        pytest.skip(f"the shared corpus is not at {CORPUS_DIR}")
    parser = _Paragraphs()
    parser.feed(ARTICLE.read_text(encoding="utf-8"))
    return [p for p in parser.paragraphs if len(p) >= 20]


def issues() -> dict[str, str]:
    """Real closed GitHub issues of langchain-ChatGLM, mostly Chinese: id -> title and body."""
    if not ISSUES.is_file():
        pytest.skip(f"the shared corpus is not at {CORPUS_DIR}")
    with ISSUES.open(encoding="utf-8", newline="") as f:
        return {row["id"]: f"{row['title']}\n{row['detail'][:800]}" for row in csv.DictReader(f)}


@pytest.fixture
def chinese_team(store: Store) -> Team:
    """A Chinese-speaking team: the DNC article (one document, a chunk per paragraph)
    and the 172 issues (a document each), in one workspace."""
    team = make_team(store, "zh")
    team.note("dnc.html", *article_paragraphs())
    for issue_id, body in issues().items():
        team.note(f"issue-{issue_id}.txt", body)
    return team


def test_a_chinese_question_finds_the_chinese_passage_by_keyword_alone(
    chinese_team: Team,
) -> None:
    """Asked in their own words, never a whole sentence of the passage, the team's
    questions put the passage they are about first, by BM25 over bigrams alone."""
    # "Which route is best to Piccadilly Circus?" -> "... plan the best route from
    # Marble Arch to Piccadilly Circus."
    hits = chinese_team.ask("去皮卡迪利广场走哪条路线最好？")
    assert "皮卡迪利广场的最佳路线" in hits[0].text
    # "Why is all the text taken from the knowledge base garbled?" -> issue 3.
    assert chinese_team.files("为什么从知识库里提取出来的文字全是乱码？")[0] == "issue-3.txt"
    # "Drive C is short of space; can the model be downloaded somewhere else?"
    assert chinese_team.files("C盘空间不够了，模型能下载到别的位置吗")[0] == "issue-144.txt"
    # Mixed: "How many game records did AlphaGo have to be trained on?"
    hits = chinese_team.ask("AlphaGo要用多少对弈记录来训练？")
    assert "3000万记录" in hits[0].text


# Twelve questions a team might ask, each in other words than its passage: a snippet of
# the article's paragraph, or the issue's file name.  (English glosses for reviewers.)
CHINESE_QUESTIONS = [
    ("去皮卡迪利广场走哪条路线最好？", "皮卡迪利广场"),  # best route to Piccadilly Circus?
    ("AlphaGo要用多少对弈记录来训练？", "3000万"),  # how many game records for AlphaGo?
    ("DNC能回答家谱里亲戚关系的复杂问题吗", "大舅"),  # family-tree questions?
    ("这项研究发表在哪本科学杂志上？", "刊物《自然》"),  # which journal published it?
    ("为什么从知识库里提取出来的文字全是乱码？", "issue-3.txt"),  # garbled text
    ("C盘空间不够了，模型能下载到别的位置吗", "issue-144.txt"),  # model download folder
    ("24G显存也不够用，能不能用两张卡一起跑", "issue-9.txt"),  # two GPUs
    ("上传中文文件名的文件后向量数据库生成失败", "issue-100.txt"),  # Chinese file names
    ("怎么一次读入好几个txt文档", "issue-32.txt"),  # several txt files at once
    ("知识库里的知识越多，检索是不是越慢", "issue-21.txt"),  # slower with more knowledge?
    ("加载lora微调以后的模型该怎么做", "issue-69.txt"),  # load a LoRA-tuned model
    ("读PDF里的图片时报png颜色空间的错误", "issue-117.txt"),  # png colorspace error
]


def rank_of(team: Team, question: str, target: str) -> int | None:
    """Where the target passage lands (1 = first) among the top 10, by keyword alone."""
    for rank, hit in enumerate(team.ask(question, k=10), start=1):
        if hit.file_name == target or (hit.file_name == "dnc.html" and target in hit.text):
            return rank
    return None


def test_twelve_chinese_questions_find_their_passages_near_the_top(chinese_team: Team) -> None:
    """Recall of the bigram index on real text: every passage is in the top three, and
    most are first (measured: 9 of 12; the English parser found none)."""
    ranks = [rank_of(chinese_team, q, target) for q, target in CHINESE_QUESTIONS]
    assert all(r is not None and r <= 3 for r in ranks), ranks
    assert sum(r == 1 for r in ranks) >= 9, ranks


def test_an_english_question_still_works_beside_the_chinese_ones(chinese_team: Team) -> None:
    """English in the same workspace is stemmed as before, and English words glued to
    Chinese ones ("windows还是Linux") are words of their own now."""
    assert chinese_team.files("offline Windows server: download the punkt tokenizer")[0] == (
        "issue-33.txt"
    )
    # Issue 1 writes "windows还是Linux", one unsearchable token for the English parser.
    assert chinese_team.files("Does it run on Windows or Linux?")[0] == "issue-1.txt"


def test_the_statistics_of_a_chinese_workspace_match_a_recount(chinese_team: Team) -> None:
    """Bigrams are lexemes like any other: the triggers count them right."""
    chunks, tokens = chinese_team.stats()
    assert chunks == len(article_paragraphs()) + len(issues())
    assert tokens > 10 * chunks


def test_a_sentence_is_analysed_into_bigrams_as_the_index_sees_it(store: Store) -> None:
    """The analyzer the answer check uses: overlapping bigrams for CJK runs, a lone
    character alone, English stemmed, across scripts and punctuation."""
    assert store.analyze(["显存不足"]) == [frozenset({"显存", "存不", "不足"})]
    [mixed] = store.analyze(["GPU 显存不足，怎么办？DeepMind开发 字"])
    assert mixed == {"gpu", "显存", "存不", "不足", "怎么", "么办", "deepmind", "开发", "字"} | {
        "deep",  # the words of a camel-case name too (migration 0014)
        "mind",
    }
    [japanese, korean] = store.analyze(["日本語のテキスト", "한국어 텍스트"])
    assert japanese == {"日本", "本語", "語の", "のテ", "テキ", "キス", "スト"}
    assert korean == {"한국", "국어", "텍스", "스트"}
    # English text is analysed exactly as to_tsvector('english', ...) did.
    [english] = store.analyze(["The ospreys were diving for fish"])
    assert english == {"osprey", "dive", "fish"}


def test_a_camel_case_name_is_also_its_words(store: Store) -> None:
    """Error and class names: the whole name, and its words (migrations 0014, 0015)."""
    [row] = store.analyze(["| 5 | PandocTemplateError | getUserName |"])
    assert row == {"5", "pandoctemplateerror", "pandoc", "templat", "error"} | {
        "getusernam",
        "get",
        "user",
        "name",
    }
    # After a run of capitals, a name is cut before the capital that starts a word
    # (migration 0015): "PDFProgram" is "PDF Program", "HTTPServer" "HTTP Server".
    [acronyms] = store.analyze(["| 47 | PandocPDFProgramNotFoundError | HTTPServer |"])
    assert {"pdf", "program", "found", "error", "http", "server"} <= acronyms
    assert {"pandocpdfprogramnotfounderror", "httpserver"} <= acronyms
    # ... but no stray letters from an acronym's plural ("PDFs", "IDs") or from
    # "96DISTRICT" (which the parser already cuts after the digits).
    [caps] = store.analyze(["PDFs IDs 37,499.96DISTRICT"])
    assert caps == {"pdfs", "id", "37", "499.96", "district"}
    # A question is read without them: "ScienceParse" asks for that name, and "science"
    # or "parse" alone would dilute it.
    assert store.analyze(["What is ScienceParse?"], question=True) == [{"sciencepars"}]


def test_a_question_in_plain_words_finds_the_camel_case_name(team: Team) -> None:
    team.note("codes.rtf", "| 4 | PandocAppError |\n| 5 | PandocTemplateError |")
    team.note("guide.txt", "Templates are plain text files with variables.")
    assert team.files("pandoc template error code") == ["codes.rtf", "guide.txt"]


def test_repeated_bigrams_count_as_term_frequency(team: Team) -> None:
    """A bigram twice in a chunk has tf 2, and each CJK token counts in the chunk
    length, so BM25 works on Chinese as on English (worked out by hand)."""
    team.note("twice.txt", "显存 显存 不足")  # 显存:2, 不足:1 -> dl 3
    team.note("once.txt", "显存 内存")  # dl 2
    team.note("other.txt", "路线")  # dl 1
    n, avgdl = 3, 6 / 3
    assert team.stats() == (3, 6)
    assert team.score("显存", "twice.txt") == pytest.approx(bm25(2, 3, 2, n, avgdl))
    assert team.score("显存", "once.txt") == pytest.approx(bm25(1, 2, 2, n, avgdl))


def test_a_database_with_chinese_chunks_is_upgraded_to_bigrams(
    librarian_env: dict[str, str],
) -> None:
    """A team's Chinese notes were indexed by the English parser (0007); after the
    upgrade their vectors, lengths, document frequencies and totals are the bigram
    analyzer's, and the Chinese question finds its passage.  Downgrading restores the
    English parser's vectors and totals."""
    db = open_database(load_settings())
    try:
        assert migrate.upgrade(db, "0007") == "0007"
        store = Store(db)
        # The workspace as revision 0007 stores it (the Store of today reads columns of
        # later revisions, so it is written by hand).
        with db.engine.begin() as conn:
            ws = conn.execute(
                text(
                    "INSERT INTO workspaces (name, chunk_tokens, chunk_overlap, top_k, "
                    "relevance_floor) VALUES ('console:zh', 200, 40, 4, 0.25) RETURNING id"
                )
            ).scalar_one()
        team = Team(store, ws, store.ensure_embedding_model("test-3d", 3), old_schema=True)
        team.note("dnc.html", *article_paragraphs())
        team.note("issue-3.txt", issues()["3"])
        team.note("english.txt", "ospreys diving fish")
        before = team.stats()

        def vectors_are(expression: str) -> bool:
            with db.engine.connect() as conn:
                return bool(
                    conn.execute(
                        text(
                            f"SELECT bool_and(tsv = {expression} "
                            f"AND tsv_length = tsvector_token_count({expression})) FROM chunks"
                        )
                    ).scalar_one()
                )

        assert vectors_are("to_tsvector('english', text)")
        assert migrate.upgrade(db) == migrate.head_revision()
        assert vectors_are("librarian_tsvector(text)")
        after = team.stats()  # recounted from the new vectors, and kept equal
        assert after[0] == before[0] and after[1] > before[1]
        assert team.files("为什么从知识库里提取出来的文字全是乱码？")[0] == "issue-3.txt"
        assert team.files("diving osprey") == ["english.txt"]
        # New chunks after the upgrade are counted on top of the rebuilt totals.
        team.note("more.txt", "显存不足")
        assert team.stats() == (after[0] + 1, after[1] + 3)

        assert migrate.downgrade(db, "0007") == "0007"
        assert vectors_are("to_tsvector('english', text)")
        assert team.stats()[0] == after[0] + 1
    finally:
        db.close()


@contextlib.contextmanager
def _notes_at(revision: str, notes: dict[str, str]) -> Iterator[tuple[Database, Team]]:
    """A database at ``revision`` holding ``notes`` (file name -> text) in one workspace:
    the database and the team that wrote them; closed afterwards."""
    db = open_database(load_settings())
    try:
        assert migrate.upgrade(db, revision) == revision
        store = Store(db)
        binding = store.binding_for("console", "", "codes", DEFAULTS)
        team = Team(store, binding.workspace.id, store.ensure_embedding_model("test-3d", 3))
        for name, body in notes.items():
            team.note(name, body)
        yield db, team
    finally:
        db.close()


def _lexemes(db: Database) -> set[str]:
    """Every lexeme of the chunks' vectors, read directly (whatever the analyzer)."""
    with db.engine.connect() as conn:
        return set(
            conn.execute(text("SELECT t.lexeme FROM chunks c, unnest(c.tsv) AS t")).scalars()
        )


def test_a_database_with_camel_case_names_is_upgraded_to_their_words(
    librarian_env: dict[str, str],
) -> None:
    """Notes indexed before 0014 hold "PandocTemplateError" as one word; after the
    upgrade a question in plain words finds them, and the totals are recounted.
    Downgrading restores 0008's vectors (today's searches need 0014's functions, so
    the vectors are read directly on either side)."""
    notes = {"codes.rtf": "| 5 | PandocTemplateError |", "plain.txt": "ospreys diving fish"}
    with _notes_at("0013", notes) as (db, team):
        before = team.stats()
        assert _lexemes(db) == {"5", "pandoctemplateerror", "osprey", "dive", "fish"}

        assert migrate.upgrade(db) == migrate.head_revision()
        assert team.files("template error") == ["codes.rtf"]
        assert team.files("PandocTemplateError") == ["codes.rtf"]
        after = team.stats()  # recounted from the new vectors
        assert after == (before[0], before[1] + 3)  # pandoc, template, error

        assert migrate.downgrade(db, "0013") == "0013"
        assert _lexemes(db) == {"5", "pandoctemplateerror", "osprey", "dive", "fish"}
        assert team.stats() == before


def test_a_database_with_acronym_names_is_upgraded_to_their_words(
    librarian_env: dict[str, str],
) -> None:
    """Notes indexed at 0014 hold "HTTPServer" as one word and "PandocPDFProgram..." cut
    only after "Pandoc"; after 0015 "http server" and "pdf program" find them, and the
    totals are recounted.  Downgrading restores 0014's vectors."""
    notes = {"codes.rtf": "| 47 | PandocPDFProgramNotFoundError |", "server.txt": "HTTPServer PDFs"}
    with _notes_at("0014", notes) as (db, team):
        before = team.stats()
        at_0014 = _lexemes(db)
        assert {"pdfprogram", "httpserver"} <= at_0014 and "program" not in at_0014

        assert migrate.upgrade(db) == migrate.head_revision()
        assert team.files("pdf program") == ["codes.rtf"]
        assert team.files("http server") == ["server.txt"]
        # "pdfprogram" becomes "pdf program" (one more), "httpserver" adds "http server"
        assert team.stats() == (before[0], before[1] + 1 + 2)
        assert "pdfprogram" not in _lexemes(db) and "pdfs" in _lexemes(db)

        assert migrate.downgrade(db, "0014") == "0014"
        assert _lexemes(db) == at_0014
        assert team.stats() == before


def test_the_schema_module_names_the_analyzer_the_migrations_built(store: Store) -> None:
    """bot.store.schema describes chunks.tsv and tsv_length as migration 0008 made them."""
    from bot.store.schema import chunks

    with store.engine.connect() as conn:
        built = dict(
            conn.execute(
                text(
                    "SELECT a.attname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
                    "JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                    "WHERE a.attrelid = 'chunks'::regclass AND a.attgenerated = 's'"
                )
            ).all()
        )
    described = {}
    for name in ("tsv", "tsv_length"):
        computed = chunks.c[name].computed
        assert computed is not None
        described[name] = str(computed.sqltext)
    assert built == described
