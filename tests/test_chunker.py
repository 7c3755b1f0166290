"""Token-sized chunks with page ranges (bot.ingest.chunker)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from bot.ingest.chunker import Chunk, Tokenizer, _sentences, chunk_pages
from bot.ingest.extract import Page, extract

_PIECES = re.compile(r"\w+|[^\w\s]")


class WordPieceish:
    """A stand-in for a WordPiece tokenizer: [CLS] + pieces + [SEP].

    Words and punctuation are tokens; a word longer than 6 characters costs one more
    token per 6 characters, roughly like sub-word splitting.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.texts_counted = 0

    def count_tokens(self, text: str) -> int:
        self.calls += 1
        self.texts_counted += 1
        return 2 + sum(1 + (len(tok) - 1) // 6 for tok in _PIECES.findall(text))


class Batched(WordPieceish):
    """Also offers the optional batch method."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        self.batches += 1
        self.texts_counted += len(texts)
        return [2 + sum(1 + (len(t) - 1) // 6 for t in _PIECES.findall(x)) for x in texts]


class NotAdditive(WordPieceish):
    """Joining costs extra: every space and blank line in the text is a token of its own.

    Per-sentence sums then underestimate whole chunks, which exercises the final check.
    """

    def count_tokens(self, text: str) -> int:
        return super().count_tokens(text) + text.count(" ") + 3 * text.count("\n\n")


def _words(text: str) -> list[str]:
    return text.split()


def _random_pages(seed: int, n_pages: int = 6) -> list[Page]:
    rng = random.Random(seed)
    vocabulary = [
        "alpha", "beta", "gamma", "extraordinarily", "tokenization", "page", "chunk",
        "retrieval", "x", "of", "the", "Librarian", "knowledge", "embedding", "model",
    ]  # fmt: skip
    pages = []
    for number in range(1, n_pages + 1):
        paragraphs = []
        for _ in range(rng.randint(0, 5)):
            sentences = []
            for _ in range(rng.randint(1, 6)):
                length = rng.choice([3, 8, 15, 40, 120])  # some sentences exceed a chunk
                words = [rng.choice(vocabulary) for _ in range(length)]
                sentences.append(" ".join(words).capitalize() + rng.choice([".", "!", "?"]))
            paragraphs.append(" ".join(sentences))
        pages.append(Page(number, "\n\n".join(paragraphs)))
    return pages


def _check_invariants(chunks: list[Chunk], tokenizer: Tokenizer, size: int) -> None:
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text.strip()
        assert chunk.n_tokens == tokenizer.count_tokens(chunk.text)
        assert chunk.n_tokens <= size, (chunk.n_tokens, size, chunk.text)
        assert 1 <= chunk.page_start <= chunk.page_end
    starts = [c.page_start for c in chunks]
    assert starts == sorted(starts)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("size", "overlap"), [(32, 0), (32, 8), (64, 16), (200, 40)])
@pytest.mark.parametrize("tokenizer_class", [WordPieceish, Batched, NotAdditive])
def test_chunks_never_exceed_size(seed: int, size: int, overlap: int, tokenizer_class) -> None:
    pages = _random_pages(seed)
    tokenizer = tokenizer_class()
    chunks = chunk_pages(pages, tokenizer, size, overlap)
    _check_invariants(chunks, tokenizer, size)
    all_words = [w for p in pages for w in _words(p.text)]
    if not all_words:
        assert chunks == []
        return
    # Every word lands in some chunk, in order (chunks only ever repeat the overlap).
    chunk_words = [w for c in chunks for w in _words(c.text)]
    position = 0
    for word in all_words:
        position = chunk_words.index(word, position) + 1 if word in chunk_words[position:] else -1
        assert position > 0, f"lost {word!r}"


def test_without_overlap_the_text_is_partitioned() -> None:
    pages = _random_pages(7)
    chunks = chunk_pages(pages, WordPieceish(), 48, 0)
    assert [w for c in chunks for w in _words(c.text)] == [w for p in pages for w in _words(p.text)]


def test_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    sentences = [f"Sentence number {i} is here." for i in range(40)]
    chunks = chunk_pages([Page(1, " ".join(sentences))], WordPieceish(), 40, 12)
    assert len(chunks) > 3
    for before, after in zip(chunks, chunks[1:], strict=False):
        last_sentence = before.text.rsplit(". ", 1)[-1]
        assert after.text.startswith(last_sentence.rstrip(".")), (before.text, after.text)


def test_overlap_falls_back_to_last_words_of_a_long_sentence() -> None:
    long_sentence = " ".join(f"word{i}" for i in range(60)) + "."
    chunks = chunk_pages([Page(1, long_sentence)], WordPieceish(), 30, 6)
    assert len(chunks) >= 3
    for before, after in zip(chunks, chunks[1:], strict=False):
        # The next chunk starts with a few of the words that ended the previous one.
        assert _words(after.text)[0] in _words(before.text)[-6:]


def test_page_ranges() -> None:
    pages = [
        Page(1, "One. " * 5),
        Page(2, "Two two. " * 3),
        Page(3, "Three three three. " * 2),
        Page(5, "Five."),
    ]
    chunks = chunk_pages(pages, WordPieceish(), 24, 0)
    ranges = [(c.page_start, c.page_end) for c in chunks]
    assert ranges[0][0] == 1 and ranges[-1][1] == 5
    assert (2, 3) in ranges or any(s < e for s, e in ranges)  # some chunk spans pages
    everything = chunk_pages(pages, WordPieceish(), 500, 0)
    assert len(everything) == 1
    assert (everything[0].page_start, everything[0].page_end) == (1, 5)
    assert "\n\n" in everything[0].text  # page/paragraph breaks kept as blank lines


def test_chunk_spanning_pages_two_and_three() -> None:
    pages = [
        Page(1, "Intro on page one with many words here."),  # 9 tokens + [CLS] [SEP]
        Page(2, "Ends on two."),
        Page(3, "Starts three."),
    ]
    chunks = chunk_pages(pages, WordPieceish(), 11, 0)
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 1), (2, 3)]
    assert chunks[1].text == "Ends on two.\n\nStarts three."


def test_overlong_sentence_and_word_are_split() -> None:
    giant_word = "x" * 400  # a base64-like blob: 67 tokens as one "word"
    chunks = chunk_pages([Page(4, f"Short. {giant_word} end.")], WordPieceish(), 20, 0)
    _check_invariants(chunks, WordPieceish(), 20)
    assert all(c.page_start == c.page_end == 4 for c in chunks)
    assert sum(c.text.count("x") for c in chunks) == 400


class UnknownForLongWords(WordPieceish):
    """Like BERT's WordPiece: any word over 100 characters is a single [UNK]."""

    def count_tokens(self, text: str) -> int:
        self.calls += 1
        return 2 + sum(1 if len(t) > 100 else 1 + (len(t) - 1) // 6 for t in _PIECES.findall(text))


def test_blobs_are_cut_even_when_the_tokenizer_calls_them_cheap() -> None:
    blob = "Q" * 200_000  # 3 tokens for this tokenizer, but 200 KB of text
    chunks = chunk_pages([Page(1, f"Before. {blob} After.")], UnknownForLongWords(), 64, 8)
    assert max(len(c.text) for c in chunks) <= 62 * 32
    assert sum(c.text.count("Q") for c in chunks) == 200_000


def test_long_sentences_are_split_with_few_tokenizer_calls() -> None:
    words = " ".join(f"w{i % 97}" for i in range(20_000))  # one sentence, no punctuation
    tokenizer = WordPieceish()
    chunks = chunk_pages([Page(1, words)], tokenizer, 128, 16)
    _check_invariants(chunks, WordPieceish(), 128)
    # Not one call per word (20 000): a guess and a check or two per piece.
    assert tokenizer.calls < 6 * len(chunks) + 20, (tokenizer.calls, len(chunks))


def test_sentence_splitting_respects_abbreviations() -> None:
    text = "Dr. Smith met J. Doe, e.g. at noon. Fig. 3 shows it. Next one! 中文句子。第二句。"
    assert list(_sentences(text)) == [
        "Dr. Smith met J. Doe, e.g. at noon.",
        "Fig. 3 shows it.",
        "Next one!",
        "中文句子。",
        "第二句。",
    ]
    assert list(_sentences("Version 2.0 is out. see below.")) == [
        "Version 2.0 is out. see below."  # lower case after the dot: not a new sentence
    ]


def test_markdown_lists_and_headings_are_units() -> None:
    text = "# Heading\n- first item\n- second item\n1. numbered\nplain continuation"
    chunks = chunk_pages([Page(1, text)], WordPieceish(), 500, 0)
    assert chunks[0].text == (
        "# Heading\n\n- first item\n\n- second item\n\n1. numbered plain continuation"
    )


def test_tokenizer_calls_stay_linear() -> None:
    """Each unit is counted once, each chunk once more: no repeated re-tokenizing."""
    pages = _random_pages(3, n_pages=20)
    tokenizer = Batched()
    chunks = chunk_pages(pages, tokenizer, 200, 40)
    assert tokenizer.batches >= 1
    n_units = sum(len(re.findall(r"[.!?](?:\s|$)", p.text)) for p in pages)
    # units + chunks + a few calibration calls, plus word-level counts for long sentences
    assert tokenizer.calls <= len(chunks) + 20 + 2 * n_units


def test_empty_input_and_bad_arguments() -> None:
    assert chunk_pages([], WordPieceish(), 100, 10) == []
    assert chunk_pages([Page(1, "  \n\n ")], WordPieceish(), 100, 10) == []
    with pytest.raises(ValueError):
        chunk_pages([Page(1, "x")], WordPieceish(), 100, 100)
    with pytest.raises(ValueError):
        chunk_pages([Page(1, "x")], WordPieceish(), 100, -1)
    with pytest.raises(ValueError, match="special tokens"):
        chunk_pages([Page(1, "x")], WordPieceish(), 2, 0)  # [CLS]+[SEP] take it all


# --- with the real embedding tokenizer ------------------------------------------------------


class LlamaTokenizer:
    """Counts tokens with llama.cpp, as the embedder does ([CLS] ... [SEP] included)."""

    def __init__(self, model_path: Path) -> None:
        from llama_cpp import Llama

        self._model = Llama(model_path=str(model_path), vocab_only=True, verbose=False)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenize(text.encode("utf-8"), add_bos=True, special=False))


@pytest.mark.slow
def test_real_minilm_tokenizer(request: pytest.FixtureRequest, corpus_dir: Path) -> None:
    # Converts all-MiniLM-L6-v2 through ModelRegistry(...).resolve(..., role="embedding")
    # once per session (llama-cpp-python and the registry are the bot's own requirements:
    # missing, the test fails).
    model_path = request.getfixturevalue("runtime_embedding_path")
    tokenizer = LlamaTokenizer(model_path)
    assert tokenizer.count_tokens("") == 2  # [CLS] [SEP]

    name = "acl_N18-3011.pdf"  # 8 pages, two columns
    pages = extract((corpus_dir / "pdfs" / name).read_bytes(), name, None).pages
    size, overlap = 128, 24
    chunks = chunk_pages(pages, tokenizer, size, overlap)
    _check_invariants(chunks, tokenizer, size)
    assert len(chunks) > 20
    assert chunks[-1].page_end == 8
    # Chunks are well filled, not cut short by a pessimistic estimate.
    assert sum(c.n_tokens for c in chunks) / len(chunks) > 0.6 * size
