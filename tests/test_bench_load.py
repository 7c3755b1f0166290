"""`librarian bench load --quick --json`: the load simulation runs end to end.

Behaviour, not speed: every question is answered exactly once with 1 and 2 stand-in
servers, and the report holds what it promises (the figures depend on the machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_load_bench_quick_answers_every_mention_once(
    librarian_env: dict[str, str], shared_models: Path
) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot", "bench", "load", "--quick", "--json"],
        env={**os.environ, **librarian_env, "LIBRARIAN_MODELS_PATH": str(shared_models)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert data["setup"]["mentions"] == 30 and data["setup"]["channels"] == 6
    for key in ("servers_1", "servers_2"):
        run = data[key]
        assert run["answered_once"] == 30, run
        assert run["answers_per_s"] > 0 and run["bot_cpu_ms_per_answer"] > 0
        for figure in ("loop_lag_max_ms", "first_post_p95_s", "slowest_channel_first_answer_s"):
            assert figure in run
    assert data["servers_1"]["throughput_ratio"] == 1.0
    assert data["servers_2"]["throughput_ratio"] > 0
