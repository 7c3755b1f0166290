"""Loading a model on a worker thread never swallows what the bot prints meanwhile."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_console_output_survives_models_loading_on_other_threads(runtime_chat_path: Path) -> None:
    # llama-cpp-python's quiet loading used to dup2 /dev/null over stdout for the whole
    # process: the console's answers printed during a load vanished.
    code = textwrap.dedent(
        f"""
        import sys, threading
        from bot.inference.llm import ChatModel

        def load():
            for _ in range(3):
                ChatModel({str(runtime_chat_path)!r}, n_ctx=512).close()

        threads = [threading.Thread(target=load) for _ in range(2)]
        for t in threads:
            t.start()
        n = 0
        while any(t.is_alive() for t in threads) or n < 50:
            print(f"line {{n}}", flush=True)
            n += 1
        for t in threads:
            t.join()
        print(f"total {{n}}", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    total = int(lines[-1].split()[1])
    assert lines[:-1] == [f"line {i}" for i in range(total)]
    assert "llama_model_loader" not in done.stderr  # llama.cpp's log stays out of the terminal
