"""The evidence rule's options, shared by the tools that measure it
(``calibrate_evidence.py``, ``squad_evidence.py``): the constants of
``bot.knowledge.evidence`` to try, and the thresholds to read the figures at."""

from __future__ import annotations

import argparse

from bot.config import Settings
from bot.knowledge.evidence import (
    FOCUS_FLOOR,
    MISSING_FULL_CHUNKS,
    MISSING_WEIGHT,
    EvidenceFinder,
)


def add_options(parser: argparse.ArgumentParser) -> None:
    """--missing-weight, --missing-full-chunks, --focus-floor and --at."""
    parser.add_argument("--missing-weight", type=float, default=MISSING_WEIGHT)
    parser.add_argument("--missing-full-chunks", type=int, default=MISSING_FULL_CHUNKS)
    parser.add_argument("--focus-floor", type=float, default=FOCUS_FLOOR)
    parser.add_argument(
        "--at",
        help="read the figures at these thresholds, 'COVERAGE,SIMILARITY' "
        "(the settings' defaults when not given)",
    )


def apply(finder: EvidenceFinder, args: argparse.Namespace) -> None:
    """Set the finder's constants to the options' values."""
    finder.missing_weight = args.missing_weight
    finder.missing_full_chunks = args.missing_full_chunks
    finder.focus_floor = args.focus_floor


def thresholds(args: argparse.Namespace) -> tuple[float, float]:
    """(coverage, similarity): --at, or the settings' declared defaults."""
    if args.at:
        coverage, similarity = (float(x) for x in args.at.split(","))
        return coverage, similarity
    fields = Settings.model_fields
    return float(fields["evidence_coverage"].default), float(fields["evidence_similarity"].default)
