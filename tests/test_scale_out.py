"""Librarian split over processes on loopback, as a deployment runs it.

Real processes, each started with the command the compose file and the Dockerfile run:
``librarian db upgrade``, one gateway (``librarian run --adapters slack``, against the
Slack emulator over Socket Mode), two ``librarian worker`` processes, and a pool of two
chat servers.  The chat servers are ``bot.bench.standin`` (OpenAI-compatible servers
streaming a fixed answer at a fixed rate, with llama.cpp's ``/health`` and ``/slots``),
not ``llama_cpp.server``: the answer they stream must be one the checker passes, so the
user-visible result is exact, and the 135M model on 2 shared cores answers too slowly
to kill a server reliably mid-answer.  (``tests/test_pool.py`` kills a real
``llama_cpp.server`` of a pool mid-answer.)  All processes share one real Postgres.

The conversation: a big file is shared; the worker indexing it is killed mid-ingest and
the other indexes it, once.  A question is asked; the chat server answering is killed
mid-answer; the user gets exactly one complete answer.  The embedded Postgres is frozen
(SIGSTOP of its postmaster): ``/readyz`` says 503 within 2 s, ``/healthz`` stays 200, a
question asked meanwhile is acknowledged and answered once Postgres resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.helpers import ROOT, Processes, free_port, http_status, process_env, ready, until
from tests.slack_emulator import APP_TOKEN, BOT_TOKEN, SlackEmulator

pytestmark = pytest.mark.slow

CHANNEL = "C0SCALE"
USER = "U0BOB"
ANSWER = "The warranty lasts two years from the date of purchase."
QUESTION = "How long does the warranty last?"
ACK_LIMIT_S = 3.0


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    # Stopped off the event loop: the Slack emulator runs on it and must answer the
    # gateway's WebSocket close, or the gateway waits 10 s (aiohttp's close timeout).
    await asyncio.to_thread(procs.stop_all)


@pytest.fixture
async def emulator() -> AsyncIterator[SlackEmulator]:
    emu = SlackEmulator()
    await emu.start()
    emu.add_user(USER, "bob")
    emu.add_channel(CHANNEL, "general")
    yield emu
    await emu.close()


def _document(tmp_path: Path) -> bytes:
    """A text file big enough (about 150 chunks) that indexing takes seconds."""
    lines = ["Product manual", "", ANSWER, ""]
    for i in range(600):
        lines.append(
            f"Section {i}: the pump unit {i} moves {i * 7 % 97 + 3} litres each minute and its "
            f"filter number {i * 13 % 89} is cleaned every {i % 11 + 2} weeks by the operator, "
            f"who records the pressure of circuit {i * 3 % 41} in the logbook."
        )
    return "\n".join(lines).encode()


def _postmaster_pid(engine: Any) -> int | None:
    """The pid of the server's postmaster, when the server runs on this machine."""
    with engine.connect() as conn:
        datadir = conn.execute(text("SHOW data_directory")).scalar_one()
    try:
        return int((Path(datadir) / "postmaster.pid").read_text().splitlines()[0])
    except OSError:
        return None


def _dockerfile_healthcheck() -> list[str]:
    """The exec form of the Dockerfile's HEALTHCHECK CMD, with this interpreter."""
    import json

    text = (ROOT / "deploy" / "Dockerfile").read_text()
    form = text.split("HEALTHCHECK", 1)[1].split("CMD", 1)[1].strip().splitlines()[0]
    command = json.loads(form)
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def _busy_standins(ports: list[int]) -> list[int]:
    busy = []
    for port in ports:
        with contextlib.suppress(httpx.HTTPError):
            slots = httpx.get(f"http://127.0.0.1:{port}/slots", timeout=1).json()
            if any(s["is_processing"] for s in slots):
                busy.append(port)
    return busy


def _answer_in_thread(emulator: SlackEmulator, ts: str) -> list[dict[str, Any]]:
    return [m for m in emulator.posted() if m["thread_ts"] == ts]


async def test_a_gateway_two_workers_and_two_chat_servers_survive_their_failures(
    settings, emulator: SlackEmulator, processes: Processes, tmp_path: Path
) -> None:
    from bot.inference.registry import ModelRegistry

    # The embedding model is converted once here, not by three processes at once.
    ModelRegistry(settings).resolve(settings.embedding_model, role="embedding")
    engine = create_engine(
        settings.database_url.get_secret_value().replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
    )

    def sql(query: str, **params: Any) -> Any:
        with engine.connect() as conn:
            return conn.execute(text(query), params).all()

    postmaster = _postmaster_pid(engine)
    if postmaster is None:
        pytest.skip("freezing Postgres needs a server on this machine (DATABASE_URL is remote)")

    # The chat servers: 8 tokens a second, so an answer of 10 words streams for > 1 s.
    chat_ports = [free_port(), free_port()]
    for i, port in enumerate(chat_ports):
        processes.start(
            f"chat{i}",
            [
                "-m",
                "bot.bench.standin",
                "--port",
                str(port),
                "--rate",
                "8",
                "--llama-cpp",
                "--answer",
                ANSWER,
            ],
            dict(os.environ, PYTHONPATH=str(ROOT)),
        )
    pool = ",".join(f"http://127.0.0.1:{p}/v1#standin" for p in chat_ports)
    ports = {"gateway": free_port(), "worker_a": free_port(), "worker_b": free_port()}

    def env_of(name: str) -> dict[str, str]:
        return process_env(
            settings,
            LIBRARIAN_HTTP_PORT=str(ports[name]),
            LIBRARIAN_HTTP_HOST="127.0.0.1",
            LIBRARIAN_CHAT_MODEL=pool,
            LIBRARIAN_POOL_REST_S="60",
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_APP_TOKEN=APP_TOKEN,
            LIBRARIAN_SLACK_API_URL=emulator.api_url,
        )

    # What the compose file's migrate service runs, then the gateway and one worker.
    upgrade = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=ROOT,
        env=env_of("gateway"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    processes.start("gateway", ["-m", "bot", "run", "--adapters", "slack"], env_of("gateway"))
    processes.start("worker_a", ["-m", "bot", "worker"], env_of("worker_a"))
    for name in ("gateway", "worker_a"):
        await until(lambda n=name: ready(ports[n]), 120, f"{name} ready")
    await emulator.wait_connected(timeout=30)
    # The image's HEALTHCHECK command, as written in the Dockerfile, against the gateway.
    check = [a.replace(":8080/", f":{ports['gateway']}/") for a in _dockerfile_healthcheck()]
    assert subprocess.run(check, timeout=10).returncode == 0

    # A big file is shared.  The gateway queues it; worker A starts indexing it.
    shared = emulator.share_file(CHANNEL, USER, "manual.txt", _document(tmp_path))
    _, took = await emulator.socket_send(
        "events_api", emulator.event_callback(emulator.file_message(shared))
    )
    assert took < ACK_LIMIT_S
    await until(
        lambda: sql("SELECT 1 FROM documents WHERE status = 'indexing'"),
        120,
        "worker A to start embedding the file",
        interval=0.05,
    )
    # Worker B joins; worker A dies mid-ingest (no goodbye: SIGKILL).
    processes.start("worker_b", ["-m", "bot", "worker"], env_of("worker_b"))
    processes.started["worker_a"].kill()
    ((doc_id, attempts_when_killed),) = sql("SELECT id, attempts FROM documents")
    await until(
        lambda: sql("SELECT 1 FROM documents WHERE status = 'ready'"),
        240,
        f"worker B to index the file: {processes.log('worker_b')}",
        interval=0.2,
    )
    ((status, attempts),) = sql("SELECT status, attempts FROM documents WHERE id = :id", id=doc_id)
    ordinals = [
        r[0]
        for r in sql(
            "SELECT ordinal FROM chunks WHERE document_id = :id ORDER BY ordinal", id=doc_id
        )
    ]
    # Indexed exactly once: one contiguous run of chunks, and one "Indexed" reply.
    chunk_count = len(ordinals)
    assert status == "ready" and chunk_count > 50
    assert ordinals == list(range(chunk_count))
    assert attempts == attempts_when_killed + 1
    await until(lambda: _answer_in_thread(emulator, shared.ts), 60, "the Indexed reply")
    await asyncio.sleep(1.0)
    (indexed,) = _answer_in_thread(emulator, shared.ts)
    assert indexed["text"].startswith(f"Indexed manual.txt: 1 page, {chunk_count} chunks")

    # A question; the chat server answering it dies mid-answer.
    mention = emulator.mention(CHANNEL, USER, QUESTION)
    _, took = await emulator.socket_send("events_api", emulator.event_callback(mention))
    assert took < ACK_LIMIT_S
    busy = await until(lambda: _busy_standins(chat_ports), 60, "a chat server answering")
    await asyncio.sleep(0.5)  # a few tokens into the answer
    killed = chat_ports.index(busy[0])
    processes.started[f"chat{killed}"].kill()
    await until(
        lambda: any("Sources:" in m["text"] for m in _answer_in_thread(emulator, mention["ts"])),
        90,
        f"the answer: {processes.log('gateway')}",
    )
    await asyncio.sleep(1.0)
    (answer,) = _answer_in_thread(emulator, mention["ts"])
    # The model's answer, whole and once, then the evidence quoted from the file.
    assert answer["text"].split("\n\nEvidence:")[0] == ANSWER, answer["text"]
    assert "died mid-answer: generating it again elsewhere" in processes.log("gateway")
    posts = [
        c for c in emulator.calls_of("chat.postMessage") if c.args.get("thread_ts") == mention["ts"]
    ]
    assert len(posts) == 1  # one message, completed by edits
    metrics = httpx.get(f"http://127.0.0.1:{ports['gateway']}/metrics").text
    assert 'librarian_answers_total{outcome="answered",platform="slack"} 1.0' in metrics
    dead = f'librarian_backend_up{{backend="http://127.0.0.1:{chat_ports[killed]}"}} 0.0'
    assert dead in metrics

    # Status in the chat lists both servers: the killed one is no longer up.
    _, took = await emulator.socket_send(
        "slash_commands", emulator.slash_command(CHANNEL, USER, "status")
    )
    assert took < ACK_LIMIT_S
    status = await until(
        lambda: [m for m in emulator.posted() if "Inference servers:" in m["text"]],
        30,
        "the status reply",
    )
    servers_line = next(
        line for line in status[0]["text"].splitlines() if "Inference servers:" in line
    )
    alive = chat_ports[1 - killed]
    assert f"http://127.0.0.1:{alive} (chat, up" in servers_line, servers_line
    assert f"http://127.0.0.1:{chat_ports[killed]} (chat, resting" in servers_line, servers_line

    # Postgres freezes: liveness stays, readiness goes within 2 s.
    engine.dispose()
    os.kill(postmaster, signal.SIGSTOP)
    try:
        for name in ("gateway", "worker_b"):
            code, took = await http_status(ports[name], "/readyz")
            assert code == 503 and took < 2.0, (name, code, took)
            code, took = await http_status(ports[name], "/healthz")
            assert code == 200 and took < 0.5, (name, code, took)
        # A question meanwhile is acknowledged at once.
        frozen_mention = emulator.mention(CHANNEL, USER, QUESTION)
        _, took = await emulator.socket_send("events_api", emulator.event_callback(frozen_mention))
        assert took < ACK_LIMIT_S
        await asyncio.sleep(2.0)
    finally:
        os.kill(postmaster, signal.SIGCONT)
    for name in ("gateway", "worker_b"):
        await until(lambda n=name: ready(ports[n]), 30, f"{name} ready again")
    # Nothing lost: the question asked while Postgres was frozen is answered, once.
    await until(
        lambda: any(
            "Sources:" in m["text"] for m in _answer_in_thread(emulator, frozen_mention["ts"])
        ),
        90,
        f"the answer to the question asked while frozen: {processes.log('gateway')}",
    )
    await asyncio.sleep(1.0)
    (late,) = _answer_in_thread(emulator, frozen_mention["ts"])
    assert late["text"].split("\n\nEvidence:")[0] == ANSWER, late["text"]
