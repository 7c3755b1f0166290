"""Helpers for tests that talk to the bot through the console adapter."""

from __future__ import annotations

import asyncio
import inspect
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pdfs import pdf_bytes

from adapters.console import ConsoleAdapter
from bot.app import App

PAGES = [
    [
        "Zephyr X200 product manual. Chapter 1: Introduction.",
        "The Zephyr X200 is a compact air purifier for small offices.",
    ],
    [
        "Chapter 2: Warranty.",
        "The Zephyr X200 comes with a warranty period of 5 years from the date of purchase.",
        "The warranty does not cover filters, which must be replaced every 6 months.",
    ],
    ["Chapter 3: Pricing.", "The Zephyr X200 costs 349 euros including VAT."],
]


def make_pdf(path: Path, pages: list[list[str]] = PAGES) -> Path:
    """A small multi-page PDF with a real text layer, written to ``path``.

    Each call makes a distinct file (its own creation time and id), as uploads of two
    files with the same text are.
    """
    path.write_bytes(pdf_bytes(["\n".join(lines) for lines in pages], invariant=False))
    return path


def make_epub(path: Path, title: str, chapters: list[tuple[str, list[str]]]) -> Path:
    """A small EPUB (written with ebooklib, as a publisher's tool would) of ``chapters``,
    each (its title, its paragraphs), in this order, written to ``path``."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier(f"urn:test:{path.stem}")
    book.set_title(title)
    book.set_language("en")
    items = []
    for i, (name, paragraphs) in enumerate(chapters, start=1):
        item = epub.EpubHtml(title=name, file_name=f"chapter{i}.xhtml", lang="en")
        body = "".join(f"<p>{p}</p>" for p in paragraphs)
        item.content = f"<html><body><h1>{name}</h1>{body}</body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = items
    epub.write_epub(str(path), book)
    return path


class RecordingStdout(io.StringIO):
    """A terminal that remembers each write, to see an answer arrive in pieces."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


async def converse(
    app: App, lines: list[str], *, channel: str = "general", user: str = "alice"
) -> RecordingStdout:
    """Type lines into a console channel; return what the bot printed."""
    out = RecordingStdout()
    console = ConsoleAdapter(
        channel=channel,
        user=user,
        admins=app.settings.admins,
        stdin=io.StringIO("".join(line + "\n" for line in lines)),
        stdout=out,
        interactive=False,
    )
    app.dispatcher.add_adapter(console)
    await console.start(app.dispatcher.handle)
    return out


async def say(app: App, line: str, *, channel: str = "general", user: str = "alice") -> str:
    """One line typed into a console channel; the bot's whole reply as text."""
    return (await converse(app, [line], channel=channel, user=user)).getvalue()


async def wait_until(predicate: Callable[[], bool], seconds: float) -> bool:
    """Poll ``predicate`` every 0.1 s for up to ``seconds``; its last value."""
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return predicate()


def start_llama_server(model: Path, port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A ``llama_cpp.server`` of ``model`` on loopback ``port``, once it answers.

    Its output goes to the file ``log`` (nobody reads a pipe while it runs); the test
    fails with the log's tail if it exits or does not answer within 60 s.
    """
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_threads", "1"]
    command += ["--verbose", "false", *args]
    with log.open("wb") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail("llama_cpp.server did not answer within 60 s")


# -- processes on loopback (tests/test_scale_out.py, tests/test_discord_shards.py) ------

ROOT = Path(__file__).resolve().parents[1]


def process_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment of a `librarian` process a test starts: this test's database,
    home and models, one thread, this checkout importable, and none of the runner's own
    Librarian or platform settings (they would point it elsewhere)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LIBRARIAN_", "SLACK_", "DISCORD_"))
    }
    env.update(
        DATABASE_URL=settings.database_url.get_secret_value(),
        LIBRARIAN_HOME=str(settings.home),
        LIBRARIAN_MODELS_PATH=str(settings.models_dir),
        LIBRARIAN_N_THREADS="1",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Child processes of the test, each killed at the end (by its own pid)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """``python ARGS`` from the checkout, its output in ``<logs>/<name>.log``."""
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self.started[name] = process
        return process

    def log(self, name: str) -> str:
        """The tail of a process's output."""
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        """SIGTERM to every process still running, SIGKILL to any still there after 15 s."""
        for process in self.started.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


async def until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` (sync or async) until it is truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


async def http_status(port: int, path: str, timeout: float = 5.0) -> tuple[int, float]:
    """A GET on loopback: its status (0 when nothing answered) and how long it took."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=timeout) as http:
        try:
            response = await http.get(f"http://127.0.0.1:{port}{path}")
        except httpx.HTTPError:
            return 0, time.monotonic() - started
    return response.status_code, time.monotonic() - started


async def ready(port: int) -> bool:
    """Whether the process serving ``port`` says it is ready (``/readyz``)."""
    code, _ = await http_status(port, "/readyz")
    return code == 200
