"""Under CI, a skipped test fails the run with its reason, unless the README allows it.

A test skips when something it needs is missing (a model package, the shared corpus,
Synapse, slack-bolt, ...).  On a developer's machine that is a hint; in CI it would
let a broken feature pass unseen.  So when ``CI`` is set, every skip becomes a
failure that says why, except the reasons listed in the README's "Skips allowed in
CI" section (each a bullet whose first backticked text is part of the reason).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "### Skips allowed in CI"


def ci() -> bool:
    """Whether this run is CI's (``CI`` set to anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def allowed_reasons(readme: Path = README) -> list[str]:
    """The skip reasons the README allows in CI: the first `code` of each bullet."""
    text = readme.read_text(encoding="utf-8")
    if SECTION not in text:
        return []
    section = text.split(SECTION, 1)[1].split("\n#", 1)[0]
    return re.findall(r"^- `([^`]+)`", section, re.M)


def reason_of(report: Any) -> str:
    """The text a skip gave (``pytest.skip(reason)``, importorskip's message)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def failed_instead(report: Any, allowed: list[str]) -> bool:
    """Turn a skipped report into a failure unless its reason is allowed; True if turned."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return False
    reason = reason_of(report)
    if any(part in reason for part in allowed):
        return False
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI, which the README does not allow ({SECTION.lstrip('# ')}): {reason}"
    )
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    if ci():
        failed_instead(outcome.get_result(), allowed_reasons())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    outcome = yield
    if ci():  # a module-level importorskip skips the whole file at collection
        failed_instead(outcome.get_result(), allowed_reasons())
