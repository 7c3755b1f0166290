"""The real-PDF grounding set (bot/bench/realdocs.jsonl) holds against the shared corpus,
and so does the Chinese set (bot/bench/realdocs_zh.jsonl) against the office folder's
three Chinese files.

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


# -- the Chinese set (bot/bench/realdocs_zh.jsonl, on shared/corpus/office) -----------


@pytest.fixture(scope="module")
def office_corpus(corpus_dir: Path) -> tuple[Path, Any]:
    """The office folder and its Chinese files as the bot reads them."""
    office = corpus_dir / "office"
    return office, verifier.read_corpus(office, verifier.CHINESE.pattern)


def _zh_items() -> list[dict[str, Any]]:
    text = verifier.CHINESE.path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_the_chinese_set_is_sound(office_corpus: tuple[Path, Any]) -> None:
    office, corpus = office_corpus
    assert sorted(corpus.pages) == [
        "chatchat_langchain-chatglm-closed-issues_zh.csv",
        "chatchat_nuclear-psr-part12-design-draft_zh.docx",
        "readability_qq-deepmind-dnc_zh.html",
    ]
    problems = verifier.verify(office, verifier.CHINESE.path, corpus=corpus, spec=verifier.CHINESE)
    assert problems == [], "\n".join(problems)


def test_the_chinese_verifier_reports_a_wrong_gold_a_present_term_and_a_wrong_location(
    office_corpus: tuple[Path, Any], tmp_path: Path
) -> None:
    office, corpus = office_corpus
    items = _zh_items()
    answerable = [i for i in items if i["kind"] == "answerable"]
    gold, cited = answerable[0], answerable[1]
    unanswerable = next(i for i in items if i["kind"] == "unanswerable")
    gold["answers"] = ["文中没有的一句话"]
    cited["location"] = "row 4711"
    # "核电厂" is in the draft standard: a question on it is not unanswerable by construction.
    unanswerable["absent_terms"] = ["核电厂"]
    unanswerable["question"] = "核电厂" + unanswerable["question"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8"
    )

    problems = verifier.verify(office, broken, corpus=corpus, spec=verifier.CHINESE)

    assert any(p.startswith(f"{gold['id']}: gold '文中没有的一句话'") for p in problems), problems
    assert any(p.startswith(f"{cited['id']}: page") for p in problems), problems
    assert any(
        p.startswith(f"{unanswerable['id']}: absent term '核电厂' occurs in") for p in problems
    ), problems
    assert len(problems) == 3, problems


def test_a_chinese_gold_inside_the_question_is_given_away(
    office_corpus: tuple[Path, Any], tmp_path: Path
) -> None:
    # Chinese has no spaces: a gold string is given away wherever it stands.
    office, corpus = office_corpus
    items = _zh_items()
    item = next(i for i in items if "2014年" in i.get("answers", []))
    item["question"] = "谷歌是在2014年收购DeepMind的吗？"
    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8"
    )
    problems = verifier.verify(office, broken, corpus=corpus, spec=verifier.CHINESE)
    assert problems == [f"{item['id']}: gold '2014年' is given away by the question"]
