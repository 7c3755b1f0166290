"""CI cannot pass by skipping: under CI a skip fails the run, with its reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ci_strict import README, allowed_reasons, failed_instead

TESTS = Path(__file__).resolve().parent


def _run(folder: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.run(
        # Both files run even though collecting one fails (without the flag the run stops
        # there, which fails CI just the same).
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"]
        + ["--continue-on-collection-errors", str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_missing_package_fails_ci_instead_of_skipping(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "from ci_strict import pytest_make_collect_report, pytest_runtest_makereport\n"
    )
    (tmp_path / "test_needs_a_package.py").write_text(
        "import pytest\n"
        "pytest.importorskip('a_package_nobody_installed')\n"
        "def test_feature():\n    pass\n"
    )
    (tmp_path / "test_needs_a_server.py").write_text(
        "import pytest\n"
        "def test_feature():\n    pytest.skip('the server is not installed')\n"
        "def test_other():\n    pass\n"
    )
    on_a_laptop = _run(tmp_path, None)
    assert on_a_laptop.returncode == 0, on_a_laptop.stdout
    assert "1 passed, 2 skipped" in on_a_laptop.stdout

    in_ci = _run(tmp_path, "true")
    assert in_ci.returncode == 1, in_ci.stdout
    assert "skipped under CI" in in_ci.stdout
    assert "a_package_nobody_installed" in in_ci.stdout
    assert "the server is not installed" in in_ci.stdout
    assert "1 failed, 1 passed, 1 error" in in_ci.stdout


class _Report:
    def __init__(self, reason: str) -> None:
        self.outcome = "skipped"
        self.longrepr = ("test_x.py", 3, f"Skipped: {reason}")

    @property
    def skipped(self) -> bool:
        return self.outcome == "skipped"


def test_only_reasons_the_readme_names_may_skip() -> None:
    allowed = allowed_reasons(README)
    assert allowed == allowed_reasons()  # the README is the one list
    report = _Report("Synapse is not installed")
    assert failed_instead(report, allowed) and report.outcome == "failed"
    kept = _Report("needs the GPU build of llama.cpp")
    assert not failed_instead(kept, ["GPU build"]) and kept.outcome == "skipped"
