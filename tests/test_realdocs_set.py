"""The real-PDF grounding set (bot/bench/realdocs.jsonl) holds against the shared corpus.

Every gold string must be on its page as the project's extractor reads it, and every
absent term of an unanswerable question in no PDF at all; see tools/verify_realdocs.py.
The corpus is extracted once per module (a few seconds).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SET_PATH = REPO / "bot" / "bench" / "realdocs.jsonl"


def _load_verifier() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "verify_realdocs", REPO / "tools" / "verify_realdocs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


verifier = _load_verifier()


@pytest.fixture(scope="module")
def pdf_dir(corpus_dir: Path) -> Path:
    """shared/corpus/pdfs, located the way the other corpus tests do (conftest)."""
    return corpus_dir / "pdfs"


@pytest.fixture(scope="module")
def corpus(pdf_dir: Path) -> Any:
    """The folder's PDFs as the bot reads them, extracted once for this module."""
    return verifier.read_corpus(pdf_dir)


def _items() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SET_PATH.read_text(encoding="utf-8").splitlines()]


def test_the_committed_set_is_sound(pdf_dir: Path, corpus: Any) -> None:
    problems = verifier.verify(pdf_dir, SET_PATH, corpus=corpus)
    assert problems == [], "\n".join(problems)


def test_a_wrong_gold_string_or_present_term_is_reported(
    pdf_dir: Path, corpus: Any, tmp_path: Path
) -> None:
    items = _items()
    answerable = next(i for i in items if i["kind"] == "answerable")
    unanswerable = next(i for i in items if i["kind"] == "unanswerable")
    answerable["answers"] = ["a string on no page of any PDF 4711"]
    unanswerable["absent_terms"] = ["the"]
    unanswerable["question"] += " the"
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")

    problems = verifier.verify(pdf_dir, broken, corpus=corpus)

    assert any(p.startswith(f"{answerable['id']}: gold") for p in problems), problems
    assert any(p.startswith(f"{unanswerable['id']}: absent term 'the'") for p in problems)
    assert len(problems) == 2, problems


def test_the_wrong_page_and_duplicate_ids_are_reported(
    pdf_dir: Path, corpus: Any, tmp_path: Path
) -> None:
    items = _items()
    first = next(i for i in items if i["kind"] == "answerable" and i["page"] == 1)
    multi_page = next(
        i
        for i in items
        if i["kind"] == "answerable"
        and i["page"] > 1
        and 1 in corpus.pages[i["document"]]
        and not any(a in corpus.pages[i["document"]][1] for a in i["answers"])
    )
    multi_page["page"] = 1  # its gold is on a later page only
    items.append(dict(first))
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")

    problems = verifier.verify(pdf_dir, broken, corpus=corpus)

    assert any(p.startswith(f"{multi_page['id']}: gold") for p in problems), problems
    assert f"id {first['id']!r} is used 2 times" in problems


def test_splits_and_documents_cover_the_set() -> None:
    items = _items()
    summary = verifier.summarize(items)
    assert len(summary["answerable_documents"]) >= verifier.MIN_DOCUMENTS
    for split in verifier.SPLITS:
        split_docs = {
            i["document"] for i in items if i["kind"] == "answerable" and i["split"] == split
        }
        assert len(split_docs) >= verifier.MIN_DOCUMENTS // 2, split
