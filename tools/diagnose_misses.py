"""Where the gold chunk of each answerable question ranks, when the evidence misses it.

For every answerable question of one split of ``bot/bench/realdocs.jsonl`` (calibrate
by default), asked in the library and in its own document's workspace (the same
workspaces as ``calibrate_evidence.py``, which indexes the latter on first use), this
runs retrieval and the answerer's choice of evidence candidates (no chat model) and
says whether a candidate chunk holds a gold string.  For a miss it prints where the
best gold chunk ranks in the dense list, in the keyword list and in the fused list,
its similarity next to the best one, whether it counted as relevant, and whether the
gold string is held by no single chunk of its page (split across a chunk boundary).

    LIBRARIAN_HOME=/tmp/rd-home python tools/diagnose_misses.py --channel console:rd
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from calibrate_evidence import SET, _own_workspace  # tools/ is on sys.path

from bot.app import App
from bot.bench.common import default_eval_dir
from bot.bench.grounding import answer_matches, normalize
from bot.cli.common import parse_channel, with_app
from bot.knowledge.candidates import evidence_candidates
from bot.store.records import ChunkHit

# Ranks are looked for this deep in each list (the corpus has a few thousand chunks).
DEPTH = 2000


def _is_gold(hit: ChunkHit, q: dict[str, Any], *, loose: bool = False) -> bool:
    """Whether the chunk is of the gold document (or a copy), holds the page and a gold
    string: as a word, as the scorer counts it, or (``loose``) anywhere, even glued to
    a neighbour by the PDF's extraction ("37,499.96DISTRICT")."""
    files = {q["document"], *q.get("also_in", [])}
    page = q.get("page")
    on_page = page is None or (hit.page_start or 0) <= page <= (hit.page_end or hit.page_start)
    if hit.file_name not in files or not on_page:
        return False
    if loose:
        return any(normalize(a) and normalize(a) in normalize(hit.text) for a in q["answers"])
    return answer_matches(hit.text, q["answers"])


def _rank(hits: list[ChunkHit], q: dict[str, Any]) -> tuple[int | None, ChunkHit | None]:
    """1-based rank of the first gold chunk in a list (a glued one if no other), and the
    chunk."""
    for loose in (False, True):
        for i, hit in enumerate(hits, 1):
            if _is_gold(hit, q, loose=loose):
                return i, hit
    return None, None


async def diagnose(app: App, channel: str, split: str, pdf_dir: Path) -> list[dict[str, Any]]:
    """One row per (answerable question, workspace)."""
    library = await app.dispatcher.binding(parse_channel(channel))
    rows = [json.loads(line) for line in SET.read_text().splitlines() if line.strip()]
    retriever, answerer, store = app.retriever, app.answerer, app.store
    model_id, dims, _ = await retriever._embedding_model()
    out = []
    for q in rows:
        if q["split"] != split or q["kind"] != "answerable":
            continue
        places = [("library", library), ("own", await _own_workspace(app, q["document"], pdf_dir))]
        for where, binding in places:
            ws = binding.workspace
            retrieved = await retriever.search(ws, [q["question"]])
            named = await answerer._named(binding, q["question"])
            candidates = await evidence_candidates(
                store, ws.id, retrieved.hits, [], named, retrieved
            )
            row: dict[str, Any] = {
                "id": q["id"],
                "where": where,
                "question": q["question"],
                "document": q["document"],
                "named": None if named is None else named.document_id is not None,
                "in_candidates": any(_is_gold(c, q) for c in candidates),
                "candidates": len(candidates),
                "relevant": len(retrieved.hits),
            }
            if not row["in_candidates"]:
                vector = retrieved.query_vectors[0]
                dense = store.search_dense(ws.id, model_id, dims, vector, DEPTH, exact=True)
                keyword = store.search_keyword(ws.id, model_id, q["question"], DEPTH)
                deep = await retriever.search(ws, [q["question"]], candidates=DEPTH)
                d_rank, gold = _rank(dense, q)
                k_rank, k_hit = _rank(keyword, q)
                f_rank, _ = _rank([r.hit for r in deep.ranked], q)
                # The rank in the fused list as searched (its depth changes the min-max
                # scaling, so the deep list's order is not the same).
                n_rank, _ = _rank([r.hit for r in retrieved.ranked], q)
                best = dense[0].similarity if dense else None
                row |= {
                    "dense_rank": d_rank,
                    "gold_sim": None if gold is None else round(gold.similarity or 0, 3),
                    "best_sim": None if best is None else round(best, 3),
                    "keyword_rank": k_rank,
                    "all_terms": None if k_hit is None else k_hit.all_terms,
                    "fused_rank": f_rank,
                    "fused_rank_searched": n_rank,
                    "glued": gold is not None and not _is_gold(gold, q),
                    "fused_relevant": (
                        None if f_rank is None else deep.ranked[f_rank - 1].relevant
                    ),
                    "gold_chunk": None if gold is None else gold.text[:300],
                }
                if d_rank is None:
                    # No single chunk holds it: is it split across two neighbours?
                    ids = store.document_chunk_ids(_document_id(app, ws.id, q["document"]))
                    chunks = store.chunks_by_ids(ws.id, ids)
                    by_id = {c.chunk_id: c for c in chunks}
                    texts = [by_id[i].text for i in ids if i in by_id]
                    row["straddles"] = any(
                        answer_matches(a + " " + b, q["answers"])
                        for a, b in zip(texts, texts[1:], strict=False)
                    )
                    row["in_document"] = any(
                        f" {normalize(g)} " in f" {normalize(' '.join(texts))} "
                        for g in q["answers"]
                    )
            out.append(row)
    return out


def _document_id(app: App, workspace_id: int, file_name: str) -> int:
    """The id of the workspace's document of that file name."""
    for doc in app.store.list_documents(workspace_id):
        if doc.file_name == file_name:
            return int(doc.id)
    raise LookupError(file_name)


def main() -> None:
    """Print the misses of the split, and the share of questions with gold in the
    candidates in each kind of workspace."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--channel", default="console:rd", help="the library's channel")
    parser.add_argument("--split", default="calibrate")
    parser.add_argument("--pdfs", type=Path, default=default_eval_dir().parent / "corpus" / "pdfs")
    parser.add_argument("--dump", type=Path, help="write every row as JSON here")
    args = parser.parse_args()
    rows = with_app(lambda app: diagnose(app, args.channel, args.split, args.pdfs))
    if args.dump:
        args.dump.write_text(json.dumps(rows, indent=1))
    for where in ("library", "own"):
        part = [r for r in rows if r["where"] == where]
        found = sum(r["in_candidates"] for r in part)
        print(f"{where}: gold in the evidence candidates {found}/{len(part)}")
    keys = (
        "dense_rank",
        "gold_sim",
        "best_sim",
        "keyword_rank",
        "all_terms",
        "fused_rank",
        "fused_rank_searched",
        "glued",
    )
    for r in rows:
        if r["in_candidates"]:
            continue
        facts = " ".join(f"{k}={r.get(k)}" for k in (*keys, "fused_relevant", "named"))
        extra = f" straddles={r['straddles']}" if "straddles" in r else ""
        print(f"{r['id']} {r['where']:7} {facts}{extra}  | {r['question']}")


if __name__ == "__main__":
    main()
