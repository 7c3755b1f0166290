"""A pool of chat servers, process roles, probes and JSON logs, each on its own.

The servers are ``bot.bench.standin`` processes on loopback (OpenAI-compatible,
streaming a fixed answer at a fixed rate) and, for a server that is up but full, a
loopback server answering 503 as Ollama does when its queue is full.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from helpers import start_llama_server

from bot.errors import ConfigError
from bot.inference.pool import RESTART, ChatPool, NoServerAvailable, is_pool
from bot.inference.service import Inference

ROOT = Path(__file__).resolve().parents[1]
ANSWER = "The pump is cleaned every week."


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _standin(port: int, *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.bench.standin",
            "--port",
            str(port),
            "--answer",
            ANSWER,
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


@pytest.fixture
def two_servers() -> Iterator[tuple[list[int], list[subprocess.Popen[bytes]]]]:
    ports = [_port(), _port()]
    procs = [_standin(ports[0], "--llama-cpp", "--rate", "10"), _standin(ports[1], "--rate", "10")]
    yield ports, procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)


class _Full(BaseHTTPRequestHandler):
    """A server that is up (it lists its model) but answers 503 to every chat: Ollama full."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.dumps({"data": [{"id": "standin"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"error": "server busy, please try again.  maximum pending requests exceeded"}'
        self.send_response(503 if self.path.endswith("/chat/completions") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def full_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Full)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": "When is the pump cleaned?"}]


def test_a_list_of_urls_is_a_pool_and_one_url_is_not() -> None:
    assert is_pool("http://a:8080/v1#m,http://b:8080/v1#m")
    assert is_pool("http://a:8080/v1#m,")  # a pool of one
    assert not is_pool("http://a:8080/v1#m")
    assert not is_pool("smollm2")
    assert not is_pool("http://a:8080/v1,smollm2")


async def test_answers_spread_over_the_servers_and_a_dead_one_is_rested_then_back(
    two_servers: tuple[list[int], list[subprocess.Popen[bytes]]],
) -> None:
    ports, procs = two_servers
    ref = ",".join(f"http://127.0.0.1:{p}/v1#standin" for p in ports)
    inference = Inference(lambda *a, **k: None, chat_model=ref, pool_rest_s=1.0)
    try:
        streams = [await inference.chat_stream(None, _messages(), f"c{i}") for i in range(4)]
        texts = await asyncio.gather(*(s.text() for s in streams))
        assert texts == [ANSWER] * 4
        rows = {r["backend"]: r for r in inference.backends()}
        assert [rows[f"http://127.0.0.1:{p}"]["served"] for p in ports] == [2, 2]

        # The second server stops: the next answers all come from the first, and status
        # says the second is resting.
        procs[1].send_signal(signal.SIGTERM)
        procs[1].wait(10)
        streams = [await inference.chat_stream(None, _messages(), f"d{i}") for i in range(3)]
        assert await asyncio.gather(*(s.text() for s in streams)) == [ANSWER] * 3
        second = {r["backend"]: r for r in inference.backends()}[f"http://127.0.0.1:{ports[1]}"]
        assert second["up"] is False and second["failures"] >= 1
        assert inference.ready() is None  # one server is enough to be ready

        # It comes back on the same port: the prober finds it within its rest and a probe.
        procs[1] = _standin(ports[1], "--rate", "10")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = {r["backend"]: r for r in inference.backends()}
            if rows[f"http://127.0.0.1:{ports[1]}"]["up"]:
                break
            await asyncio.sleep(0.2)
        assert rows[f"http://127.0.0.1:{ports[1]}"]["up"]
    finally:
        await inference.close()


async def test_a_full_server_is_passed_over_before_the_first_token(
    two_servers: tuple[list[int], list[subprocess.Popen[bytes]]], full_server: int
) -> None:
    ports, _ = two_servers
    # The full server comes first: least busy ties go to the first listed (the other is
    # the plain OpenAI stand-in, which reports no idle slots either).
    ref = f"http://127.0.0.1:{full_server}/v1#standin,http://127.0.0.1:{ports[1]}/v1#standin"
    pool = await asyncio.to_thread(ChatPool, ref, rest_s=30.0)
    try:
        pieces = await asyncio.to_thread(lambda: list(pool.generate(_messages())))
        assert "".join(pieces) == ANSWER  # no RESTART: nothing had been produced
        full = pool.servers()[0]
        assert full["up"] is False and "503" in full["error"]
        # Busy, not dead: it rests a second, not the 30 s of a failure.
        assert "resting" in full["state"] and int(full["state"].split()[1]) <= 1
    finally:
        pool.close()


async def test_when_every_server_is_down_the_answer_fails_in_plain_words(
    two_servers: tuple[list[int], list[subprocess.Popen[bytes]]],
) -> None:
    ports, procs = two_servers
    ref = ",".join(f"http://127.0.0.1:{p}/v1#standin" for p in ports)
    pool = await asyncio.to_thread(ChatPool, ref, rest_s=30.0)
    try:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        with pytest.raises(NoServerAvailable, match="no inference server available"):
            await asyncio.to_thread(lambda: list(pool.generate(_messages())))
    finally:
        pool.close()


def test_a_pool_no_server_of_which_answers_is_refused_at_once() -> None:
    with pytest.raises(Exception, match="no server of the pool answers"):
        ChatPool(f"http://127.0.0.1:{_port()}/v1#m,http://127.0.0.1:{_port()}/v1#m")


# -- roles ----------------------------------------------------------------------------------


def test_adapters_are_named_from_the_known_platforms() -> None:
    from bot.roles import parse_adapters, run_role, select

    assert parse_adapters("slack, matrix,slack") == ("slack", "matrix")
    assert parse_adapters(None) is None
    with pytest.raises(ConfigError, match="unknown platform telegram"):
        parse_adapters("slack,telegram")
    assert run_role(None, False).name == "all"
    assert run_role(("slack",), False).name == "gateway"
    assert run_role(("slack",), True).background

    class Slack:
        platform = "slack"

    assert [a.platform for a in select([Slack()], ("slack",))] == ["slack"]
    with pytest.raises(ConfigError, match="matrix is not configured"):
        select([Slack()], ("slack", "matrix"))


def test_run_refuses_a_gateway_of_an_unconfigured_platform(librarian_env) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--adapters", "matrix"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "--adapters matrix: matrix is not configured" in result.stderr


# -- JSON logs ------------------------------------------------------------------------------


async def test_json_logs_carry_the_event_id_and_no_message_text() -> None:
    from bot.logs import JsonFormatter, with_event_id

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("gateway"))
    log = logging.getLogger("test.jsonlogs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    class Event:
        event_id = "Ev123"

    async def sink(event: object) -> None:
        log.info("question from %s: %s (%d words)", "bob", "what is the secret plan?", 5)
        try:
            raise ValueError("the secret plan")
        except ValueError:
            log.exception("failed on %s", "the secret plan")

    await with_event_id(sink)(Event())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["event_id"] == "Ev123" and lines[0]["role"] == "gateway"
    assert lines[0]["values"] == [5]
    assert lines[1]["exception"] == "ValueError"
    assert "secret" not in stream.getvalue() and "bob" not in stream.getvalue()
    log.removeHandler(handler)


async def test_healthz_answers_while_readyz_waits_on_a_hung_check() -> None:
    from bot.health import HealthServer
    from bot.metrics import Metrics

    hang = asyncio.Event()

    async def database() -> str | None:
        await hang.wait()
        return None

    server = HealthServer(Metrics(), {"database": database}, host="127.0.0.1", port=0)
    port = await server.start()
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            started = time.monotonic()
            ready = await http.get(f"http://127.0.0.1:{port}/readyz")
            assert ready.status_code == 503 and time.monotonic() - started < 2.0
            assert "database: no answer within" in ready.json()["reasons"][0]
            assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            hang.set()
            await asyncio.sleep(0.05)
            assert (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            metrics = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert "librarian_ingest_queue_depth" in metrics.text
    finally:
        await server.close()


# -- embeddings from a pool of real llama_cpp.server processes -------------------------------


def _llama_server(model: Path, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """A llama_cpp.server on loopback (an embedding server unless ``extra`` says otherwise)."""
    return start_llama_server(
        model, port, log, *(extra or ("--embedding", "true", "--n_ctx", "512"))
    )


async def test_an_embedding_pool_keeps_embedding_when_a_server_dies_and_status_lists_it(
    runtime_embedding_path: Path, tmp_path: Path, librarian_env
) -> None:
    ports = [_port(), _port()]
    servers = [_llama_server(runtime_embedding_path, p, tmp_path / f"{p}.log") for p in ports]
    ref = ",".join(f"http://127.0.0.1:{p}/v1" for p in ports)
    texts = ["The pump is cleaned every week.", "Quarterly revenue grew."]
    try:
        status = subprocess.run(
            [sys.executable, "-m", "bot", "status", "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LIBRARIAN_EMBEDDING_MODEL": ref},
        )
        assert status.returncode == 0, status.stderr
        listed = json.loads(status.stdout)["inference_servers"]
        assert [(s["backend"], s["role"], s["up"]) for s in listed] == [
            (f"http://127.0.0.1:{p}", "embedding", True) for p in ports
        ]
        async with Inference(lambda *a, **k: None, embedding_model=ref) as inference:
            before = await inference.embed(texts)
            servers[0].terminate()
            servers[0].wait(10)
            after = await asyncio.gather(*(inference.embed(texts) for _ in range(3)))
            rows = {r["backend"]: r for r in inference.backends()}
        assert before.shape == (2, 384)
        for vectors in after:
            assert float((vectors * before).sum(axis=1).min()) > 0.999
        assert rows[f"http://127.0.0.1:{ports[0]}"]["up"] is False
        assert rows[f"http://127.0.0.1:{ports[1]}"]["up"] is True
    finally:
        for server in servers:
            if server.poll() is None:
                server.terminate()
                server.wait(10)


def _chat_server(model: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return _llama_server(model, port, log, "--n_ctx", "1024")


def test_a_real_chat_server_killed_mid_answer_gets_the_answer_regenerated_on_the_other(
    runtime_chat_path: Path, tmp_path: Path
) -> None:
    """Two llama_cpp.server processes of the bundled chat model, at temperature 0: the
    answer regenerated on the survivor is the whole answer, identical to the reference."""
    ports = [_port(), _port()]
    servers = [_chat_server(runtime_chat_path, p, tmp_path / f"{p}.log") for p in ports]
    ref = ",".join(f"http://127.0.0.1:{p}/v1" for p in ports)
    messages = [{"role": "user", "content": "Write three sentences about pumps."}]
    pool = ChatPool(ref, rest_s=30.0)
    try:
        reference = "".join(pool.generate(messages, max_tokens=96, temperature=0.0))
        assert len(reference.split()) > 20
        stream = pool.generate(messages, max_tokens=96, temperature=0.0)
        pieces = [next(stream)]
        (busy,) = [i for i, r in enumerate(pool.servers()) if r["inflight"] == 1]
        servers[busy].kill()
        pieces.extend(stream)
        restart = pieces.index(RESTART)
        assert RESTART not in pieces[restart + 1 :]
        assert "".join(pieces[restart + 1 :]) == reference
        assert pool.servers()[busy]["up"] is False and pool.restarts == 1
    finally:
        pool.close()
        for server in servers:
            if server.poll() is None:
                server.terminate()
                server.wait(10)
