"""``librarian bench load``: how many chat servers one gateway can feed.

No model is needed: the chat servers are :mod:`bot.bench.standin` processes that
stream a fixed answer at a fixed rate and sleep in between (no CPU), as a pool
(``bot.inference.pool``).  The bot runs in this process, whole: the dispatcher, the
answerer (history, hybrid retrieval with the real embedding model, evidence, prompt,
the check), streaming replies through an in-memory chat platform that records what
it is sent.  For 1, 2 and 4 servers, ``mentions`` questions over ``channels`` channels
arrive at once; it reports:

* answered: each question's reply completed exactly once (with its sources);
* throughput (answers per second) and its ratio to one server's;
* loop lag: the longest the event loop was late on a 10 ms timer, which bounds how long
  an adapter waits to acknowledge an event (Slack's limit: 3 s);
* fairness: the time at which each channel got its first answer (the slowest channel's,
  against the run's length), and the spread of the channels' last answers;
* the bot's CPU time per answer (this process only: the stand-ins are separate).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from bot.adapter import Adapter
from bot.app import App
from bot.bench.common import Log, bench_binding, ingest_documents, percentile, quiet_log
from bot.bench.sizes import LOAD_CHANNELS, LOAD_MENTIONS, LOAD_RATE, LOAD_SERVERS
from bot.events import ConversationRef, MessageReceived, OutboundMessage, UserRef

PLATFORM = "bench"
FACT = "The warranty lasts two years from the date of purchase."
QUESTION = "How long does the warranty last?"


class RecordingPlatform(Adapter):
    """A chat platform in memory: message ids, texts, and when each was posted and edited.

    It edits at the base's pace (``Adapter.edit_interval_s``), as Slack, Matrix and Discord do.
    """

    platform = PLATFORM

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.texts: dict[str, str] = {}
        self.reply_to: dict[str, str | None] = {}
        self.first_post: dict[str, float] = {}
        self.completed: dict[str, list[float]] = defaultdict(list)

    async def start(self, sink: Any) -> None:  # events are injected by the bench
        """Nothing to connect to."""

    async def stop(self) -> None:
        """Nothing to close."""

    async def send(self, message: OutboundMessage) -> str:
        """Record a post."""
        message_id = f"m{next(self._ids)}"
        self.texts[message_id] = message.text
        self.reply_to[message_id] = message.reply_to
        if message.reply_to is not None:
            self.first_post.setdefault(message.reply_to, time.monotonic())
        self._completed(message_id, message.text)
        return message_id

    async def edit(self, conversation: ConversationRef, message_id: str, text: str) -> None:
        """Record an edit."""
        self.texts[message_id] = text
        self._completed(message_id, text)

    def _completed(self, message_id: str, text: str) -> None:
        question = self.reply_to.get(message_id)
        if question is not None and "Sources:" in text:
            self.completed[question].append(time.monotonic())

    async def fetch_file(self, ref: Any) -> bytes:
        """No files on this platform."""
        raise NotImplementedError

    async def is_admin(self, user: UserRef, conversation: ConversationRef) -> bool:
        """Nobody is an admin here."""
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def standins(count: int, rate: float, slots: int, words: int) -> Iterator[str]:
    """Start ``count`` stand-in servers; yield their pool reference; stop them."""
    answer = " ".join((FACT.split() * (words // len(FACT.split()) + 1))[:words])
    ports = [_free_port() for _ in range(count)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot.bench.standin",
                "--port",
                str(port),
                "--rate",
                str(rate),
                "--slots",
                str(slots),
                "--llama-cpp",
                "--answer",
                answer,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            proc.stdout.readline()  # "listening on ..."
        refs = [f"http://127.0.0.1:{port}/v1#standin" for port in ports]
        # A pool needs two or more servers; one server is its plain reference.
        yield ",".join(refs) if count > 1 else refs[0] + ","
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


async def _loop_lag(stop: asyncio.Event, worst: list[float]) -> None:
    while not stop.is_set():
        started = time.monotonic()
        await asyncio.sleep(0.01)
        worst[0] = max(worst[0], time.monotonic() - started - 0.01)


async def run_once(
    app: App, bindings: list[Any], pool_ref: str, mentions: int, log: Log
) -> dict[str, Any]:
    """One round of ``mentions`` questions, spread over the bound channels, at once."""
    platform = RecordingPlatform()
    app.dispatcher.add_adapter(platform)
    app.inference.chat_model = pool_ref
    await app.inference.load(None)  # connect to the servers before the clock starts
    author = UserRef(PLATFORM, "bench-user")
    events = []
    for i in range(mentions):
        binding = bindings[i % len(bindings)]
        conversation = ConversationRef(PLATFORM, "", binding.channel_id, None, binding.channel_id)
        events.append(
            MessageReceived(f"load-{uuid.uuid4()}", conversation, author, QUESTION, True, f"q{i}")
        )
    channel_of = {e.message_id: e.conversation.channel_id for e in events}
    stop = asyncio.Event()
    lag = [0.0]
    ticker = asyncio.create_task(_loop_lag(stop, lag))
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(app.dispatcher.handle(e) for e in events))
    wall = time.monotonic() - wall0
    cpu = time.process_time() - cpu0
    stop.set()
    await ticker
    await app.inference.unload(None)
    answered_once = sum(1 for e in events if len(platform.completed.get(e.message_id, [])) == 1)
    first_by_channel: dict[str, float] = {}
    last_by_channel: dict[str, float] = {}
    for question, times in platform.completed.items():
        channel = channel_of[question]
        first_by_channel[channel] = min(first_by_channel.get(channel, 1e18), times[0] - wall0)
        last_by_channel[channel] = max(last_by_channel.get(channel, 0.0), times[0] - wall0)
    first_posts = [
        platform.first_post[e.message_id] - wall0
        for e in events
        if e.message_id in platform.first_post
    ]
    result = {
        "mentions": mentions,
        "answered_once": answered_once,
        "seconds": round(wall, 2),
        "answers_per_s": round(answered_once / wall, 2) if wall else 0.0,
        "loop_lag_max_ms": round(lag[0] * 1000, 1),
        "first_post_p95_s": round(percentile(first_posts, 95), 2),
        "slowest_channel_first_answer_s": round(max(first_by_channel.values(), default=0.0), 2),
        "channel_last_answer_spread_s": round(
            max(last_by_channel.values(), default=0) - min(last_by_channel.values(), default=0), 2
        ),
        "bot_cpu_ms_per_answer": round(cpu * 1000 / max(answered_once, 1), 1),
    }
    log(f"  {result}")
    return result


async def run_bench(
    app: App,
    *,
    servers: tuple[int, ...] = LOAD_SERVERS,
    mentions: int = LOAD_MENTIONS,
    channels: int = LOAD_CHANNELS,
    rate: float = LOAD_RATE,
    slots: int = 4,
    words: int = 16,
    log: Log = quiet_log,
) -> dict[str, Any]:
    """The load simulation on ``app`` (a scratch App); returns the results by server count."""
    bindings = [bench_binding(app, f"load-{i}") for i in range(channels)]
    log(f"indexing one document in each of {channels} channels' workspaces")
    for binding in bindings:
        await ingest_documents(app, binding, [("warranty.txt", f"Warranty\n\n{FACT}\n".encode())])
    app.inference.pool_slots_per_server = slots
    results: dict[str, Any] = {
        "setup": {
            "mentions": mentions,
            "channels": channels,
            "server_tokens_per_s": rate,
            "server_slots": slots,
            "answer_words": words,
            "one_server_capacity_answers_per_s": round(slots * rate / words, 2),
        }
    }
    base = None
    for count in servers:
        log(f"{count} server(s): {mentions} mentions over {channels} channels")
        with standins(count, rate, slots, words) as ref:
            outcome = await run_once(app, bindings, ref, mentions, log)
        if base is None:
            base = outcome["answers_per_s"] or 1e-9
        outcome["throughput_ratio"] = round(outcome["answers_per_s"] / base, 2)
        results[f"servers_{count}"] = outcome
    return results
