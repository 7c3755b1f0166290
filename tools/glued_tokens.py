"""Count tokens that look glued in the text the bot extracts from PDFs.

Table cells and columns that a PDF places side by side without a space character can
come out of text extraction as one token ("37,499.96DISTRICT", "RateTotal").  A glued
token hides both words from the keyword index and the evidence matcher.  This tool
reads every PDF as the bot does (:func:`bot.ingest.extract.extract`, text layer only)
and counts, per file, whitespace-separated tokens that match one of the patterns in
:data:`PATTERNS`, with examples.

Many matches are genuine ("iPhone", "SciBERT", "NetworkLinearFlow", "DHAW20190001"):
read the examples (``--examples N``) to judge; joins of two capitalised or two
numeric words ("DIRECTORBAIN", "4624,704") are not counted at all.

``--compare`` extracts every file twice in one run, with pypdf's own word spacing and
with the bot's (:mod:`bot.ingest.pdftext`), alternating, and prints both counts, the
tokens the bot's spacing split, and the time of each (best of ``--rounds``).

Run from the repository root::

    python tools/glued_tokens.py [PDF ...] [--examples 5] [--compare] [--dump DIR]

Without PDFs it reads ``shared/corpus/pdfs/*.pdf``.  ``--dump DIR`` writes each file's
extracted text to ``DIR/<name>.txt`` (``DIR/pypdf/`` and ``DIR/bot/`` with
``--compare``; pages separated by form feeds) for diffing.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: import this checkout's bot, not another
    sys.path.insert(0, str(REPO))

from bot.ingest.extract import ExtractionRefused, extract  # noqa: E402
from bot.ingest.ocr import OcrOptions  # noqa: E402
from bot.ingest.pdftext import pypdf_own_spacing  # noqa: E402

TEXT_LAYER_ONLY = OcrOptions(max_pages=0)

# Each pattern is searched inside one whitespace-separated token.  Letters are Unicode
# letters ([^\W\d_]); upper/lower case pairs use the ASCII and Latin-1 ranges, which
# is what the corpus' glued tokens use.
PATTERNS: dict[str, re.Pattern[str]] = {
    # "37,499.96DISTRICT", "2015Alabama": a number (at least two digits, or with a
    # decimal/thousands separator) run straight into a word of two or more letters.
    "number+letters": re.compile(r"\d(?:[.,]\d+)*\d[^\W\d_]{2,}|\d[.,]\d+[^\W\d_]{2,}"),
    # "0103,532", "02,2481,135": a thousands group of four digits, or a grouped number
    # that starts with 0 or with four digits: two numbers run together.
    "number+number": re.compile(r"\d,\d{4}|(?<![\d.,])(?:0\d+|\d{4,}),\d{3}(?!\d)"),
    # "Total2015", "Alabama12,345": a word of three or more letters run into a number.
    "letters+number": re.compile(r"[^\W\d_]{3,}\d{2,}|[^\W\d_]{3,}\d+[.,]\d"),
    # "RateTotal", "DirectorBain": a lower-case letter followed by a capital inside a word.
    "lower→Upper": re.compile(r"[a-zß-öø-ÿ]{2,}[A-ZÀ-ÖØ-Þ]"),
    # "DIRECTORBain": a run of capitals followed by a capitalised word (the last capital
    # of the run begins the word), at least three capitals before it.
    "UPPER→Capital": re.compile(r"[A-ZÀ-ÖØ-Þ]{3,}[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]{2,}"),
    # "word.Next", "end,Start": a sentence or list punctuation with no space after it,
    # between letters (not "e.g.", not "3.5", not URLs: those have lower case after).
    "punct→Capital": re.compile(r"[a-zß-öø-ÿ]{2,}[.,;:][A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]"),
}
# Tokens that are obviously not prose: URLs, e-mail addresses, file names, identifiers,
# and ordinals ("216th", "10TH.").
_SKIP_TOKEN_RE = re.compile(
    r"://|www\.|@|\.(pdf|html?|com|org|gov|xml|json)\b|_|^\d+(st|nd|rd|th)\W*$", re.I
)
_TRIM = "()[]{}\"'“”‘’«»<>"


@dataclass
class FileCount:
    """Glued-token counts of one PDF."""

    name: str
    tokens: int = 0
    pages: int = 0
    refused: str | None = None
    glued: int = 0  # tokens that matched at least one pattern
    by_pattern: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)


def glued_kinds(token: str) -> list[str]:
    """The names of the patterns that ``token`` matches (empty: it does not look glued)."""
    token = token.strip(_TRIM)
    if len(token) < 4 or _SKIP_TOKEN_RE.search(token):
        return []
    return [kind for kind, pattern in PATTERNS.items() if pattern.search(token)]


def count_text(name: str, pages: list[str], keep: int) -> FileCount:
    """Count the glued tokens of one document's pages, keeping ``keep`` examples a kind."""
    result = FileCount(name=name, pages=len(pages))
    for text in pages:
        for token in text.split():
            result.tokens += 1
            kinds = glued_kinds(token)
            if not kinds:
                continue
            result.glued += 1
            for kind in kinds:
                result.by_pattern[kind] += 1
                shown = result.examples.setdefault(kind, [])
                if len(shown) < keep and token not in shown:
                    shown.append(token)
    return result


def read_pages(path: Path) -> list[str]:
    """The text-layer pages of one PDF, as the bot extracts them."""
    extracted = extract(path.read_bytes(), path.name, None, ocr_options=TEXT_LAYER_ONLY)
    return [page.text for page in extracted.pages]


def timed_read(path: Path, *, pypdf_spacing: bool) -> tuple[list[str] | str, float]:
    """The pages of one PDF (or its refusal code) and the seconds extraction took."""
    started = time.perf_counter()
    try:
        if pypdf_spacing:
            with pypdf_own_spacing():
                pages: list[str] | str = read_pages(path)
        else:
            pages = read_pages(path)
    except ExtractionRefused as refused:
        pages = refused.reason_code
    return pages, time.perf_counter() - started


def split_tokens(before: list[str], after: list[str]) -> list[tuple[str, str]]:
    """The tokens of ``before`` that ``after`` spells as several (a word diff)."""
    old, new = " ".join(before).split(), " ".join(after).split()
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return [
        (" ".join(old[i1:i2]), " ".join(new[j1:j2]))
        for op, i1, i2, j1, j2 in matcher.get_opcodes()
        if op != "equal"
    ]


@dataclass
class Run:
    """One extraction mode over the corpus: counts per file and the total time."""

    label: str
    counts: dict[str, FileCount] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def totals(self) -> tuple[int, int, Counter[str]]:
        """Glued tokens, all tokens, and glued tokens by pattern."""
        by_pattern: Counter[str] = Counter()
        for count in self.counts.values():
            by_pattern.update(count.by_pattern)
        return (
            sum(c.glued for c in self.counts.values()),
            sum(c.tokens for c in self.counts.values()),
            by_pattern,
        )


def run_modes(paths: list[Path], modes: list[str], rounds: int, keep: int) -> list[Run]:
    """Extract every file in each mode ("pypdf", "bot"), alternating; best time of rounds."""
    runs = [Run(mode) for mode in modes]
    for index, path in enumerate(paths):
        # Alternate which mode goes first so neither always meets a cold cache.
        order = runs if index % 2 == 0 else runs[::-1]
        best: dict[str, float] = {}
        for _ in range(rounds):
            for run in order:
                pages, seconds = timed_read(path, pypdf_spacing=run.label == "pypdf")
                best[run.label] = min(best.get(run.label, seconds), seconds)
                if isinstance(pages, str):
                    run.counts[path.name] = FileCount(name=path.name, refused=pages)
                else:
                    run.texts[path.name] = pages
                    run.counts[path.name] = count_text(path.name, pages, keep)
        for run in runs:
            run.seconds += best[run.label]
    return runs


def _per_mille(glued: int, tokens: int) -> str:
    return f"{1000 * glued / max(tokens, 1):.2f}‰"


def print_single(run: Run) -> None:
    """A table of one mode's counts, worst file first, with examples."""
    for count in sorted(run.counts.values(), key=lambda c: -c.glued):
        if count.refused:
            print(f"{count.name}: refused ({count.refused})")
            continue
        print(f"{count.name}: {count.glued} glued of {count.tokens} tokens")
        for kind, shown in count.examples.items():
            print(f"    {kind:14} {count.by_pattern[kind]:5}  {' | '.join(shown)}")
    glued, tokens, by_pattern = run.totals()
    print(
        f"TOTAL {glued} glued of {tokens} tokens ({_per_mille(glued, tokens)}) in "
        f"{len(run.counts)} files; " + ", ".join(f"{k} {v}" for k, v in by_pattern.items())
    )
    print(f"extraction time {run.seconds:.2f} s")


def print_compare(before: Run, after: Run, keep: int) -> None:
    """Both modes' counts per file, the tokens split, and the time ratio."""
    for name, old in sorted(before.counts.items(), key=lambda item: -item[1].glued):
        new = after.counts[name]
        if old.refused:
            print(f"{name}: refused ({old.refused})")
            continue
        splits = split_tokens(before.texts[name], after.texts[name])
        print(
            f"{name}: glued {old.glued} -> {new.glued} of {new.tokens} tokens; "
            f"{len(splits)} places spaced differently"
        )
        for old_text, new_text in splits[:keep]:
            print(f"    {old_text!r} -> {new_text!r}")
    for run in (before, after):
        glued, tokens, by_pattern = run.totals()
        print(
            f"TOTAL {run.label:5} {glued} glued of {tokens} tokens ({_per_mille(glued, tokens)}); "
            + ", ".join(f"{k} {v}" for k, v in sorted(by_pattern.items()))
        )
    print(
        f"extraction time: pypdf spacing {before.seconds:.2f} s, bot spacing "
        f"{after.seconds:.2f} s, ratio {after.seconds / max(before.seconds, 1e-9):.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Count glued tokens per PDF and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pdfs", nargs="*", type=Path, help="PDFs (default: the shared corpus)")
    parser.add_argument("--examples", type=int, default=3, help="examples shown per pattern")
    parser.add_argument("--compare", action="store_true", help="pypdf's spacing against the bot's")
    parser.add_argument("--rounds", type=int, default=1, help="extractions per file and mode")
    parser.add_argument("--dump", type=Path, help="write each file's extracted text here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged-file chatter

    paths = args.pdfs or sorted((REPO.parent / "shared" / "corpus" / "pdfs").glob("*.pdf"))
    if not paths:
        paths = sorted(Path("/work/shared/corpus/pdfs").glob("*.pdf"))
    modes = ["pypdf", "bot"] if args.compare else ["bot"]
    runs = run_modes(paths, modes, max(args.rounds, 1), args.examples)
    if args.dump:
        for run in runs:
            folder = args.dump / run.label if args.compare else args.dump
            folder.mkdir(parents=True, exist_ok=True)
            for name, pages in run.texts.items():
                (folder / f"{name}.txt").write_text("\f".join(pages), encoding="utf-8")
    if args.json:
        print(
            json.dumps(
                {
                    run.label: {
                        "files": {
                            name: {
                                "refused": c.refused,
                                "tokens": c.tokens,
                                "glued": c.glued,
                                "by_pattern": dict(c.by_pattern),
                                "examples": c.examples,
                            }
                            for name, c in run.counts.items()
                        },
                        "glued": run.totals()[0],
                        "tokens": run.totals()[1],
                        "extract_seconds": round(run.seconds, 3),
                    }
                    for run in runs
                },
                ensure_ascii=False,
                indent=1,
            )
        )
    elif args.compare:
        print_compare(runs[0], runs[1], args.examples)
    else:
        print_single(runs[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
