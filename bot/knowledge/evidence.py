"""Evidence: the sentences of the retrieved chunks that best answer a question.

This step needs no chat model and is deterministic.  Its results serve twice:

* they are quoted verbatim under every answer (or alone, when the model's answer fails
  the check in ``bot.knowledge.check``), so a reader sees what the reply rests on;
* they decide whether the documents answer the question at all.

**Scoring a sentence.**  Two signals, each in [0, 1]:

* *coverage*: the share of the question's term weight the sentence holds.  A term
  weighs its BM25 idf in the workspace (the statistics the keyword search keeps per
  workspace, ``Store.term_stats``), so "the" or "use" weigh little and a rare name a
  lot; a term no document of the workspace holds weighs the most of all.  Terms are
  compared as the keyword index sees them (``Store.analyze``: stemmed, stop words out,
  CJK as the index segments it).
* *similarity*: the cosine similarity of the sentence's chunk to the question (the
  dense search computed it already).  Embedding the sentences themselves (a short
  list of the best-covering ones) is an option (``embed_sentences``); on 2 cores it
  cost 55-85 ms for six sentences, past this step's 20 ms budget.

A sentence scores ``coverage + similarity``.  The best one to three are kept: the
best, then others within ``KEEP_WITHIN`` of its score.

**Answerability.**  The question counts as answered by the documents when the kept
sentences together hold at least ``coverage`` of the question's weight and the best
reaches ``similarity``; both are per-workspace settings with calibrated defaults
(``bot.config.Settings.evidence_coverage`` / ``evidence_similarity``); a question of
names alone whose quotes hold every one needs no similarity.  A question
whose key term appears in no document (the usual unanswerable question: the detail is
simply not there) loses that term's weight, MISSING_WEIGHT times its idf, and falls
below the bar.  The words of a document's file name count as held by its quotes for
this decision, and are never missing ("Google Docs" names
pypdf-samples_011_google-doc.pdf); they do not rank the sentences.  When the best
quote's document is in another language than the question
(``bot.knowledge.language``), words cannot be compared and the similarity floor
decides alone, unless the two are in different scripts (Chinese and English),
which the embedding model cannot bridge either: then the words must match.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from bot.knowledge.acronyms import with_definitions
from bot.knowledge.check import names
from bot.knowledge.language import fold, same_language
from bot.knowledge.question import content_of, question_words, type_bonus
from bot.knowledge.quotes import Evidence, Quote
from bot.knowledge.sentences import (
    AFTER_HEADER,
    CJK,
    HEADER_CELLS,
    TABLE_ROW,
    is_cjk,
    row_cells,
    split_sentences,
    table_header,
)
from bot.knowledge.spelling import glued_words, named_marks
from bot.knowledge.window import table_window
from bot.store.keyword import TermStats
from bot.store.records import ChunkHit

# A term no document of the workspace holds weighs this many times its idf: the usual
# unanswerable question asks about something the documents never name ("the maximum
# takeoff weight", "the GDP of Austria"), and one such word should weigh more than its
# idf alone (which counts it as merely the rarest word).  Calibrated with the thresholds
# on the calibrate split (tools/calibrate_evidence.py --missing-weight).
MISSING_WEIGHT = 5.0
# ... in a workspace of this many chunks or more.  In a smaller one the weight shrinks
# linearly towards 1 (plain idf) for a one-chunk workspace: the fewer words a workspace
# holds, the less its lacking a word says.  A team with one spreadsheet asking "which
# company does Sheryl Baxter work for?" is asking about what the file holds; the
# spreadsheet simply never says "work".  Calibrated with the thresholds
# (tools/calibrate_evidence.py asks every question both in the whole library and in a
# workspace holding only its document).
MISSING_FULL_CHUNKS = 1000
# A term held by every candidate chunk (the document's own subject: "SPECTER", "737",
# "airworthiness directive") weighs this share of its idf; one held by few weighs it
# whole.  Such a word finds the document, not the answer in it: "what is the maximum
# takeoff weight of the 737-9 in the directive?" is covered only if "takeoff weight" is.
FOCUS_FLOOR = 0.25
# How much a follow-up's earlier topic (its share of the earlier question's terms) adds
# to a sentence's score; the question's own terms count fully.
CONTEXT_WEIGHT = 0.3
# Sentences within this much of the best score are quoted too (up to MAX_QUOTES).
KEEP_WITHIN = 0.5
MAX_QUOTES = 3


Embed = Callable[[list[str]], Awaitable[Any]]


def _coverage(lexemes: frozenset[str], weights: dict[str, float]) -> float:
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(w for lex, w in weights.items() if lex in lexemes) / total


_SPACES = re.compile(r"\s+")
# What separates the words of a file's name: "pypdf-samples_011_google-doc.pdf".
_NAME_PARTS = re.compile(r"[_\-.]+")


def _distinct(quotes: Iterable[Quote]) -> list[Quote]:
    """The quotes in order, each sentence once: overlapping chunks cut one sentence in
    two places ("As a result of the changes ..." and "result of the changes ..."), and
    quoting it twice would take the place of another sentence.  A quote that is part
    of an earlier one is dropped; one that holds an earlier one takes its place (the
    whole sentence reads better than its tail)."""
    kept: list[Quote] = []
    seen: list[str] = []
    for quote in quotes:
        flat = _SPACES.sub(" ", quote.text.lower()).strip()
        if any(flat in other for other in seen):
            continue
        held = [i for i, other in enumerate(seen) if other in flat]
        if held:
            kept[held[0]], seen[held[0]] = quote, flat
            for i in reversed(held[1:]):
                del kept[i], seen[i]
            continue
        kept.append(quote)
        seen.append(flat)
    return kept


def _stem_prefix(word: str, lexemes: frozenset[str]) -> str:
    """What a question word and its lexeme share at their start ("checks", "check" ->
    "check"; "company", "compani" -> "compan"): the word's stem as the text writes it."""
    folded = fold(word)
    return max((os.path.commonprefix([folded, lex]) for lex in lexemes), key=len, default="")


def _beside(hit: ChunkHit, best: ChunkHit) -> bool:
    """Whether ``hit`` is of ``best``'s document, on its pages or the page after (a
    document without pages: any of its chunks)."""
    if hit.document_id != best.document_id:
        return False
    if hit.page_start is None or best.page_start is None:
        return True
    return best.page_start <= hit.page_start <= (best.page_end or best.page_start) + 1


def is_answered(
    coverage: float,
    similarity: float,
    lexical: bool,
    coverage_floor: float,
    similarity_floor: float,
) -> bool:
    """The answerability rule: the quotes hold ``coverage_floor`` of the question's
    weight (when the words can be compared: ``lexical``, the best quote is in the
    question's language) and the best reaches ``similarity_floor``."""
    return (coverage >= coverage_floor or not lexical) and similarity >= similarity_floor


class EvidenceFinder:
    """Picks the evidence sentences for a question from retrieved chunks."""

    def __init__(
        self,
        store: Any,
        embed: Embed,
        *,
        embed_sentences: int = 0,
        missing_weight: float = MISSING_WEIGHT,
        missing_full_chunks: int = MISSING_FULL_CHUNKS,
        focus_floor: float = FOCUS_FLOOR,
    ) -> None:
        """``embed`` turns texts into unit vectors with the workspace's embedding model.

        ``embed_sentences``: how many sentences get an embedding of their own (0: each
        sentence takes its chunk's similarity; see SENTENCE_EMBEDDINGS in the README).
        ``missing_weight``: how many times its idf a term no document holds weighs, in a
        workspace of ``missing_full_chunks`` chunks or more.  ``focus_floor``: the share
        of its idf a term every candidate chunk holds weighs (1: no such discount).
        """
        self.store = store
        self.embed = embed
        self.embed_sentences = embed_sentences
        self.missing_weight = missing_weight
        self.missing_full_chunks = missing_full_chunks
        self.focus_floor = focus_floor

    async def find(
        self,
        question: str,
        question_vector: Any,
        hits: Sequence[ChunkHit],
        *,
        workspace_id: int,
        embedding_model_id: int,
        coverage_floor: float,
        similarity_floor: float,
        context: str | None = None,
        context_documents: frozenset[int] = frozenset(),
        file_names: Sequence[str] = (),
    ) -> Evidence:
        """The evidence for ``question`` among ``hits`` (best chunks first).

        ``context``: the conversation's previous question, for a follow-up ("and how much
        does it cost?"): a sentence gets CONTEXT_WEIGHT times its share of that
        question's terms, so the price of the earlier product wins over another's; a
        sentence of ``context_documents`` (those the previous answer quoted) gets it in
        full ("what is her email?" after a question on a CSV's rows).

        ``file_names``: the names of other documents the search ranked (the candidates'
        own are read from ``hits``): a word of a file's name is no word "no document
        mentions", even when none of that file's chunks is a candidate.
        """
        started = time.perf_counter()
        sentences: list[tuple[str, ChunkHit, int]] = []
        seen: set[str] = set()
        for rank, hit in enumerate(hits):
            header = table_header(hit.text)
            # Rows below the header are of its table; a row above it too when it is as
            # wide as a header can be (a sheet's block starts with the rows the chunk
            # before ends with), not a form's line of one or two cells set over a table
            # (a filing's cover, "| Nevada (State of incorporation) | 20-8143439 |").
            under = False
            for sentence in split_sentences(hit.text):
                if sentence == header:
                    under = True
                elif (
                    header
                    and TABLE_ROW.match(sentence)
                    and (under or len(row_cells(sentence)) >= HEADER_CELLS)
                ):
                    # A row means nothing without its column names ("| 2021 | 150 |"):
                    # quoted, and scored, with the header row its chunk repeats.
                    sentence = f"{header}{AFTER_HEADER}{sentence}"
                key = sentence.lower()
                if key in seen:  # chunk overlap repeats sentences
                    continue
                seen.add(key)
                sentences.append((sentence, hit, rank))
        content = content_of(question)
        words = question_words(content)
        stats: TermStats
        documents = sorted({hit.document_id: hit.file_name for hit in hits}.items())
        stats, earlier, lexeme_sets, word_lexemes, named_by = await asyncio.to_thread(
            self._analyze,
            workspace_id,
            embedding_model_id,
            content,
            content_of(context) if context else None,
            sentences,
            words,
            [file_name for _, file_name in documents]
            + sorted(set(file_names) - {name for _, name in documents}),
        )
        # A document holds the words of its file's name, which a reader sees in the
        # citation (calibrate split: "... exported from Google Docs ..." was not found
        # beside pypdf-samples_011_google-doc.pdf).  For the decision only, below: a
        # sentence is ranked and quoted for what it says.  (The candidates' names first.)
        name_lexemes = dict(zip((d for d, _ in documents), named_by[: len(documents)], strict=True))
        # A CJK lexeme is a character bigram: one that straddles two words of the
        # question ("黄酮有" of "甘草黄酮有什么作用") is in no document however well the
        # documents answer it, so only whole words count as missing.
        # Nor is a hyphenated compound ("january-june"): the parser also emits its parts,
        # which are weighed on their own, and a document may write "January–June".
        missing_lex = {
            lex
            for lex, df in stats.df.items()
            if df == 0 and not CJK.search(lex) and "-" not in lex
        }
        # Lexemes a sentence holds written otherwise: a word glued to its neighbour or
        # without its accents, a footnote's mark named in words (-> how the text writes it).
        glued = {
            lex: re.compile(re.escape(w))
            for lex, w in glued_words(words, word_lexemes, missing_lex, sentences).items()
        }
        glued.update(named_marks(words, word_lexemes, sentences, glued))
        if glued:
            folded = [fold(s) for s, _, _ in sentences]
            lexeme_sets = [
                lx | {lex for lex, w in glued.items() if w.search(text)}
                for text, lx in zip(folded, lexeme_sets, strict=True)
            ]
            # The index holds the other spelling, so the word's df there is 0, which
            # would make it the rarest word of all: count the candidate chunks that hold
            # it instead (a lower bound), so it weighs as a word those chunks hold.
            ranks = [rank for _, _, rank in sentences]
            held = {
                lex: len({r for r, text in zip(ranks, folded, strict=True) if w.search(text)})
                for lex, w in glued.items()
                if lex in missing_lex
            }
            missing_lex -= set(glued)
            stats = TermStats(stats.chunk_count, {**stats.df, **held})
        # A word of a file's name is no word "no document mentions" (once the text has
        # been searched for it written otherwise: "Nestle" finds "Nestlé" in the rows
        # of nestle-2023-half-year-segments.xlsx).
        missing_lex -= frozenset().union(*named_by)
        # "this AD affects 73 airplanes" holds "airworthiness directive" (acronyms.py).
        texts = [s for s, _, _ in sentences]
        lexeme_sets = with_definitions(texts, lexeme_sets, words, word_lexemes)
        # A name has no synonym: a document that answers a question about Canada says
        # "Canada", however small the workspace.  Other words may be paraphrased.
        asked_names = {n.lower() for n in names(question)}
        named_lex = {
            lex
            for w, lx in zip(words, word_lexemes, strict=True)
            if w.lower() in asked_names
            for lex in lx & missing_lex
        }
        scaled = self._missing_weight(stats.chunk_count)
        focus = self._focus(sentences, lexeme_sets, set(stats.df))
        weights = {
            lex: stats.idf(lex)
            * (self.missing_weight if lex in named_lex else scaled if lex in missing_lex else 1.0)
            * focus.get(lex, 1.0)
            for lex in stats.df
        }
        context_weights = {lex: earlier.idf(lex) for lex in earlier.df} if earlier else {}
        missing_terms = [w for w, lx in zip(words, word_lexemes, strict=True) if lx & missing_lex]
        by_weight = sorted(
            (
                (max((weights.get(x, 0.0) for x in lx), default=0.0), w)
                for w, lx in zip(words, word_lexemes, strict=True)
                if lx
            ),
            key=lambda p: -p[0],
        )
        key_terms = [w for _, w in by_weight[:6]]
        if not sentences:
            return Evidence(
                [],
                0.0,
                0.0,
                False,
                0.0,
                missing_terms,
                key_terms,
                (time.perf_counter() - started) * 1000,
            )
        coverages = [_coverage(lx, weights) for lx in lexeme_sets]
        typed = type_bonus(question)
        # Ties among sentences holding the question's terms go to the earlier topic.
        bonuses = [
            typed(s)
            + CONTEXT_WEIGHT
            * (1.0 if hit.document_id in context_documents else _coverage(lx, context_weights))
            for (s, hit, _), lx in zip(sentences, lexeme_sets, strict=True)
        ]

        # A sentence's similarity is its chunk's (from the dense search: free), or, when
        # sentence embeddings are on, its own for a short list of the best-covering
        # sentences and the best of each of the top two chunks.
        # On a Chinese (Japanese, Korean) question the embedding model's similarity is
        # noise (all-MiniLM-L6-v2 learnt English; see bot.knowledge.retrieval), and a
        # passage the keyword search alone found has none: the words decide alone there.
        words_only = is_cjk(question)
        sims = [
            0.0 if words_only else sentences[i][1].similarity or 0.0 for i in range(len(sentences))
        ]
        shortlist = list(range(len(sentences)))
        if self.embed_sentences and question_vector is not None and not words_only:
            order = sorted(range(len(sentences)), key=lambda i: (-coverages[i], sentences[i][2], i))
            shortlist = order[: max(1, self.embed_sentences - 2)]
            for rank in range(min(2, len(hits))):
                top = next((i for i in order if sentences[i][2] == rank), None)
                if top is not None and top not in shortlist:
                    shortlist.append(top)
            vectors = np.asarray(await self.embed([sentences[i][0] for i in shortlist]))
            q = np.asarray(question_vector, dtype=np.float32).reshape(-1)
            for i, vec in zip(shortlist, vectors, strict=True):
                sims[i] = float(np.dot(vec, q))
        quotes = sorted(
            (
                Quote(
                    sentences[i][0],
                    sentences[i][1],
                    coverages[i],
                    sims[i],
                    lexeme_sets[i],
                    bonuses[i],
                )
                for i in shortlist
            ),
            key=lambda qt: -qt.score,
        )
        # A sentence holding none of the question's words is no evidence when nothing
        # else vouches for it: on a Chinese question there is no similarity, and across
        # scripts the similarity is noise (the embedding model has no bridge from
        # Chinese to English).  The earlier question's topic (CONTEXT_WEIGHT) or a
        # number (the type bonus) would otherwise lift it near the best.  Seen by hand:
        # "谷歌是在哪一年收购DeepMind的？", asked after a question on an airworthiness
        # directive, quoted the directive's cost line; "At what time did the session
        # open?", asked after it, quoted the Chinese page's timestamp.
        # (``words_only`` is the question being Chinese: an English question's other
        # script is Chinese.)
        quotes = [
            qt for qt in quotes if qt.coverage > 0 or not (words_only or is_cjk(qt.text))
        ] or quotes[:1]
        best = quotes[0].score
        kept = _distinct(qt for qt in quotes if qt.score >= best - KEEP_WITHIN)[:MAX_QUOTES]
        together = frozenset().union(
            *(qt.lexemes | name_lexemes.get(qt.hit.document_id, frozenset()) for qt in kept)
        )
        coverage = _coverage(together, weights)
        similarity = max(qt.similarity for qt in kept)
        # The best quote's document, from all its candidate chunks (a title page alone
        # has too few words to tell its language).
        document = kept[0].hit.document_id
        own = " ".join(h.text for h in hits if h.document_id == document)
        # Similarity alone may decide across languages of one script (an English
        # question, a French passage: names, numbers and cognates are shared), not
        # across scripts: the embedding model has no bridge from Chinese to English.
        # There, the words must be compared, and English quotes cover no Chinese word.
        lexical = same_language(question, own) or is_cjk(question) != is_cjk(own)
        # After the best, a sentence holding none of the question's words (nor, in a
        # follow-up, the earlier question's) is shown only beside the best one, from its
        # page or the next (where an answer often follows the sentence that restates the
        # question: "the owner proposes housing …" then "It provides 43 new dwellings").
        # Elsewhere only its chunk's similarity or the number bonus lifted it, and a
        # reader would take it for part of the answer.  Seen by hand: "2014." and
        # "2017." (p. 8, the references) under a question answered on p. 1.  It holds
        # no weight: the decision is the same.
        if lexical:
            kept = kept[:1] + [
                qt
                for qt in kept[1:]
                if qt.coverage > 0
                or _coverage(qt.lexemes, context_weights) > 0
                or _beside(qt.hit, kept[0].hit)
            ]
        # The sentence holding the weightiest question word any candidate holds is
        # quoted, in the last quote's place if none of them holds it: the word that picks
        # the answer out among sentences alike (a table's row label, "Alabama", beside
        # the table's title and totals, which hold more of the question's other words).
        # The decision above is the same: this changes what is shown, not what counted.
        # Also a sentence of the best quote's document outside the shortlist (seen by
        # hand in session 14: the row "Texas 21,550 …" was not in it, and "Totals …" was
        # quoted for Texas).  A word of the best quote's document wins a tie: "tables"
        # in another document is not the table asked about.
        best_doc = kept[0].hit.document_id
        own = [i for i, (_, hit, _) in enumerate(sentences) if hit.document_id == best_doc]
        in_best = {lex for i in own for lex in lexeme_sets[i] if lex in weights}
        held = {lex for qt in quotes for lex in qt.lexemes if lex in weights} | in_best
        if lexical and held:
            # Equal weights are broken by the word itself: sets iterate in an order the
            # hash seed decides, and the evidence must not change from run to run.
            rarest = max(held, key=lambda lex: (weights[lex], lex in in_best, lex))
            if not any(rarest in qt.lexemes for qt in kept):
                holders = [qt for qt in quotes if rarest in qt.lexemes]
                mine = [qt for qt in holders if qt.hit.document_id == best_doc]
                unlisted = [i for i in own if rarest in lexeme_sets[i]]
                if not mine and unlisted:
                    i = max(unlisted, key=coverages.__getitem__)
                    text, hit, _ = sentences[i]
                    mine = [Quote(text, hit, coverages[i], sims[i], lexeme_sets[i], bonuses[i])]
                holder = (mine or holders)[0]
                kept = [*kept[: MAX_QUOTES - 1], holder]
        # Flattened tables shown as the stretch holding most of the question's weight.
        lexemes_of = dict(zip(words, word_lexemes, strict=True))
        anchors = [
            (p, weight) for weight, w in by_weight if len(p := _stem_prefix(w, lexemes_of[w])) >= 2
        ]
        kept = [replace(qt, text=table_window(qt.text, anchors)) for qt in kept]
        # A question of names alone ("Who is Richard McClintock?") is about what the
        # passages holding those names say: the embedding model knows few names, and its
        # similarity says little there (seen by hand in session 22: 0.13 for the passage
        # "Richard McClintock, a Latin professor at Hampden-Sydney College ...").
        weighed_words = [(w, lx) for w, lx in zip(words, word_lexemes, strict=True) if lx]
        names_held = bool(weighed_words) and all(
            w.lower() in asked_names and lx & together for w, lx in weighed_words
        )
        answerable = is_answered(
            coverage,
            similarity,
            lexical,
            coverage_floor,
            0.0 if words_only or names_held else similarity_floor,
        )
        return Evidence(
            kept,
            round(coverage, 4),
            round(similarity, 4),
            answerable,
            round(max(qt.coverage for qt in kept), 4),
            missing_terms,
            key_terms,
            (time.perf_counter() - started) * 1000,
            lexical,
        )

    def _missing_weight(self, chunk_count: int) -> float:
        """How many times its idf a word no document holds weighs in a workspace of
        ``chunk_count`` chunks: 1 for one chunk, up to ``missing_weight``."""
        if chunk_count >= self.missing_full_chunks:
            return self.missing_weight
        grown = max(0, chunk_count - 1) / (self.missing_full_chunks - 1)
        return 1.0 + (self.missing_weight - 1.0) * grown

    def _focus(
        self,
        sentences: Sequence[tuple[str, ChunkHit, int]],
        lexeme_sets: Sequence[frozenset[str]],
        wanted: set[str],
    ) -> dict[str, float]:
        """Each lexeme's weight factor by how many candidate chunks hold it: 1 for none,
        ``focus_floor`` for all (empty below three chunks: too few to tell)."""
        by_chunk: dict[int, set[str]] = {}
        for (_, _, rank), lexemes in zip(sentences, lexeme_sets, strict=True):
            by_chunk.setdefault(rank, set()).update(lexemes & wanted)
        if len(by_chunk) < 3 or self.focus_floor >= 1.0:
            return {}
        held: dict[str, int] = {}
        for lexemes in by_chunk.values():
            for lex in lexemes:
                held[lex] = held.get(lex, 0) + 1
        n = len(by_chunk)
        return {
            lex: self.focus_floor + (1 - self.focus_floor) * (1 - k / n) for lex, k in held.items()
        }

    def _analyze(
        self,
        workspace_id: int,
        model_id: int,
        question: str,
        context: str | None,
        sentences: list[tuple[str, ChunkHit, int]],
        words: list[str],
        file_names: list[str],
    ) -> tuple[
        TermStats,
        TermStats | None,
        list[frozenset[str]],
        list[frozenset[str]],
        list[frozenset[str]],
    ]:
        """The statements of one evidence step, in one worker thread: the question's
        term statistics (and the earlier question's), the lexemes of the sentences, of
        the question's words and of the file names (their words: "google-doc.pdf")."""
        stats = self.store.term_stats(workspace_id, model_id, question)
        earlier = self.store.term_stats(workspace_id, model_id, context) if context else None
        analyzed = self.store.analyze(
            [s for s, _, _ in sentences] + [_NAME_PARTS.sub(" ", name) for name in file_names]
        )
        cut = len(sentences)
        asked = self.store.analyze(words, question=True)
        return stats, earlier, analyzed[:cut], asked, analyzed[cut:]
