"""Printing benchmark results: a readable table, or JSON."""

from __future__ import annotations

import json
from typing import Any


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {"dotted.path": value}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:,.1f}"
    return str(value)


def format_table(title: str, results: dict[str, Any], goals: dict[str, str] | None = None) -> str:
    """A two-column table of dotted keys and values, a goal column where one is set."""
    flat = flatten(results)
    goals = goals or {}
    width = max(len(k) for k in flat)
    lines = [title, "-" * len(title)]
    for key, value in flat.items():
        line = f"{key:<{width}}  {_cell(value)}"
        if key in goals:
            line = f"{line:<{width + 14}}  goal {goals[key]}"
        lines.append(line)
    return "\n".join(lines)


def to_json(results: dict[str, Any]) -> str:
    """The results as indented JSON (nested: ``squad.dense.recall@5`` is a path)."""
    return json.dumps(results, indent=2)
