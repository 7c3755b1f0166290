"""A sharded Discord bot, as a deployment runs it: real gateway processes on loopback.

Discord splits a bot's guilds over shards: each gateway session IDENTIFYs as shard
``[id, count]`` and receives the events of the guilds with ``(guild_id >> 22) % count ==
id`` only.  Here two guilds sit on different shards of two (tests/discord_emulator.py
routes events by that formula) and the bot answers a question in each:

* two ``librarian run --adapters discord`` processes, each running one shard
  (``LIBRARIAN_DISCORD_SHARD_COUNT=2``, ``LIBRARIAN_DISCORD_SHARD_IDS=0`` or ``1``),
  against one database: each question reaches one process, which answers it once;
* one process with ``LIBRARIAN_DISCORD_SHARD_COUNT=auto`` runs every shard Discord's
  ``/gateway/bot`` recommends, and answers in both guilds.

Which process answered is read from its own ``/metrics``; which session a question
reached, from the emulator.  The models are the real ones (SmolLM2, MiniLM).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from adapters.discord import DiscordAdapter
from bot.commands import base_commands
from bot.errors import ConfigError
from bot.events import ConversationRef, UserRef
from tests.discord_emulator import DiscordEmulator, point_discord_py_at, shard_of
from tests.helpers import Processes, free_port, make_pdf, process_env, ready, until

pytestmark = pytest.mark.slow

WARRANTY = "How long is the warranty of the Zephyr X200?"
PRICE = "How much does the Zephyr X200 cost?"


@dataclass
class Guilds:
    """The emulated Discord with a guild on each of two shards, the manual indexed in both."""

    emu: DiscordEmulator
    alpha: str  # guild on shard 0 of 2, channel "alpha"
    beta: str  # guild on shard 1 of 2, channel "beta"
    env: dict[str, str]  # what every process of the deployment shares


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


def _librarian(*args: str, env: dict[str, str | None] | None = None) -> str:
    """A one-shot CLI command (``db upgrade``, ``ingest``, ``status``) that must succeed;
    its output.

    Run in this process by typer's CliRunner: the command ``python -m bot`` runs, reading
    the test's settings from this process's environment (``env`` over it), without a new
    interpreter's imports (~2 s each).  The gateways are separate processes.
    """
    from bot.cli import db, knowledge, status

    cli = typer.Typer()  # these commands as bot.cli registers them
    cli.add_typer(db.app, name="db")
    cli.command("ingest")(knowledge.ingest)
    cli.command("status")(status.status)
    done = CliRunner().invoke(cli, list(args), env=env)
    assert done.exit_code == 0, (done.output[-2000:], done.exception)
    return done.stdout


@pytest.fixture
async def guilds(settings, tmp_path: Path) -> AsyncIterator[Guilds]:
    from bot.inference.registry import ModelRegistry

    emu = DiscordEmulator(heartbeat_ms=1000)
    alpha = emu.add_guild("Alpha", ("alpha",), shard=(0, 2))
    beta = emu.add_guild("Beta", ("beta",), shard=(1, 2))
    assert (shard_of(alpha, 2), shard_of(beta, 2)) == (0, 1)
    await emu.start()
    # The embedding model is converted once here, not by several processes at once.
    ModelRegistry(settings).resolve(settings.embedding_model, role="embedding")
    env = process_env(
        settings,
        LIBRARIAN_HTTP_HOST="127.0.0.1",
        LIBRARIAN_DISCORD_TOKEN=emu.token,
        LIBRARIAN_DISCORD_API_URL=emu.api_url,
        LIBRARIAN_DISCORD_GATEWAY_URL=emu.gateway_url,
    )
    # What a deployment's migrate step runs, then the manual indexed in each guild's channel
    # (in a thread: the commands run event loops of their own; the emulator's is this one).
    await asyncio.to_thread(_librarian, "db", "upgrade")
    pdf = make_pdf(tmp_path / "manual.pdf")
    for guild, channel in ((alpha, "alpha"), (beta, "beta")):
        target = f"discord:{guild}/{emu.channel_ids[channel]}"
        await asyncio.to_thread(_librarian, "ingest", str(pdf), "--channel", target)
    try:
        yield Guilds(emu, alpha, beta, env)
    finally:
        await emu.close()


def _gateway(guilds: Guilds, processes: Processes, name: str, **shards: str) -> int:
    """Start ``librarian run --adapters discord`` with these shard settings; its HTTP port."""
    port = free_port()
    env = dict(guilds.env, LIBRARIAN_HTTP_PORT=str(port))
    env.update({f"LIBRARIAN_DISCORD_{k.upper()}": v for k, v in shards.items()})
    processes.start(name, ["-m", "bot", "run", "--adapters", "discord"], env)
    return port


async def _connected(guilds: Guilds, processes: Processes, ports: dict[str, int]) -> None:
    """Every process ready, and /librarian synced in both guilds (their GUILD_CREATE came)."""
    emu = guilds.emu
    for name, port in ports.items():
        await until(lambda p=port: ready(p), 120, f"{name} ready: {processes.log(name)}")
    await until(
        lambda: guilds.alpha in emu.commands and guilds.beta in emu.commands,
        60,
        f"/librarian synced in both guilds: {[processes.log(n) for n in ports]}",
    )


async def _ask_both(guilds: Guilds, processes: Processes, names: list[str]) -> tuple[dict, dict]:
    """alice asks in each guild; both answers arrive, each once, in its question's thread."""
    emu = guilds.emu
    in_alpha = await emu.post("alice", "alpha", WARRANTY, mention_bot=True)
    in_beta = await emu.post("alice", "beta", PRICE, mention_bot=True)
    for question in (in_alpha, in_beta):
        await until(
            lambda q=question: [m for m in emu.bot_messages(q["id"]) if "Sources:" in m["content"]],
            180,
            f"the answer to {question['content']!r}: {[processes.log(n) for n in names]}",
            interval=0.2,
        )
    await asyncio.sleep(2.0)  # room for a second answer to show up, if there were one
    for question in (in_alpha, in_beta):
        channel = question["channel_id"]
        [answer] = emu.bot_messages(question["id"])  # one message in the thread, edited
        assert "Sources:" in answer["content"] and "manual.pdf" in answer["content"]
        threads = emu.calls_to("POST", rf"/channels/{channel}/messages/{question['id']}/threads")
        assert len(threads) == 1
    assert emu.rate_limited == [], "discord.py let a request hit a 429"
    return in_alpha, in_beta


def _answered(port: int) -> int:
    """How many Discord answers the process on ``port`` made (any outcome), from /metrics."""
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    series = r'^librarian_answers_total\{[^}]*platform="discord"[^}]*\} (\S+)$'
    counts = re.findall(series, metrics, re.M)
    return int(sum(float(c) for c in counts))


def _identified(emu: DiscordEmulator) -> list[list[int]]:
    """The shards of the IDENTIFYs Discord accepted (not those over the start limit)."""
    return sorted(e["shard"] for e in emu.gateway_log if e["op"] == 2 and "refused" not in e)


def _questions_received(guilds: Guilds, shard_id: int) -> set[str]:
    """The ids of the messages the sessions of a shard were sent."""
    return {
        m["id"]
        for s in guilds.emu.sessions.values()
        if s.shard[0] == shard_id
        for m in guilds.emu.received(s, "MESSAGE_CREATE")
    }


async def test_two_gateway_processes_each_run_one_shard_and_answer_their_guilds_once(
    guilds: Guilds, processes: Processes
) -> None:
    emu = guilds.emu
    ports = {
        "shard0": _gateway(guilds, processes, "shard0", shard_count="2", shard_ids="0"),
        "shard1": _gateway(guilds, processes, "shard1", shard_count="2", shard_ids="1"),
    }
    await _connected(guilds, processes, ports)
    # One session per process, each its own shard.  (The two processes start together:
    # the later IDENTIFY may be refused by the session start limit and made again.)
    assert _identified(emu) == [[0, 2], [1, 2]]
    assert not emu.calls_to("GET", "/gateway/bot")  # the count was given, not asked for
    # Each session was told only of its shard's guilds.
    for shard_id, guild in ((0, guilds.alpha), (1, guilds.beta)):
        told = {g["id"] for g in emu.received(emu.session(shard_id), "GUILD_CREATE")}
        assert guild in told and all(shard_of(g, 2) == shard_id for g in told)

    in_alpha, in_beta = await _ask_both(guilds, processes, list(ports))

    # The question in Alpha went to shard 0 only, the one in Beta to shard 1 only, and the
    # process running that shard answered it: one answer each.
    assert in_alpha["id"] in _questions_received(guilds, 0)
    assert in_alpha["id"] not in _questions_received(guilds, 1)
    assert in_beta["id"] in _questions_received(guilds, 1)
    assert in_beta["id"] not in _questions_received(guilds, 0)
    assert (_answered(ports["shard0"]), _answered(ports["shard1"])) == (1, 1)

    # `/librarian status` in each guild is answered by the process running its shard,
    # which names the shards it runs.
    for channel, shard in (("alpha", 0), ("beta", 1)):
        await emu.slash("alice", channel, "status")
        [status] = await until(
            lambda c=channel: [
                m["content"]
                for m in emu.bot_messages(emu.channel_ids[c])
                if m["content"].startswith("Status of")
            ],
            60,
            f"status in {channel}: {[processes.log(n) for n in ports]}",
        )
        assert f"\n  Discord shards of this process: {shard} of 2\n" in status, status


async def test_one_process_runs_every_shard_discord_recommends(
    guilds: Guilds, processes: Processes
) -> None:
    emu = guilds.emu
    emu.shard_count = 2  # what /gateway/bot recommends for this bot
    ports = {"all": _gateway(guilds, processes, "all", shard_count="auto")}
    await _connected(guilds, processes, ports)
    assert emu.calls_to("GET", "/gateway/bot")
    assert _identified(emu) == [[0, 2], [1, 2]]  # both shards, from the one process

    in_alpha, in_beta = await _ask_both(guilds, processes, list(ports))

    assert in_alpha["id"] in _questions_received(guilds, 0)
    assert in_beta["id"] in _questions_received(guilds, 1)
    assert _answered(ports["all"]) == 2


async def test_a_bot_in_too_many_guilds_for_one_connection_is_told_to_shard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Discord closes an unsharded session of too many guilds with 4011; the adapter says
    what to set, in words, and gives up (no restart helps).  With shards it connects."""
    emu = DiscordEmulator()
    emu.add_guild("Alpha", ("alpha",), shard=(0, 2))
    emu.add_guild("Beta", ("beta",), shard=(1, 2))
    emu.max_guilds_per_shard = 2  # three guilds: one connection may not hold them all
    emu.shard_count = 2
    await emu.start()
    # The adapter points discord.py's class attributes at the emulator; restore them after.
    point_discord_py_at(emu, monkeypatch)

    def adapter(**shards: Any) -> DiscordAdapter:
        return DiscordAdapter(
            emu.token,
            commands=base_commands(),
            api_url=emu.api_url,
            gateway_url=emu.gateway_url,
            guild_ready_timeout=0.2,
            **shards,
        )

    async def sink(event: Any) -> None:
        pass

    try:
        unsharded = adapter()
        with pytest.raises(ConfigError) as refused:
            await asyncio.wait_for(unsharded.start(sink), 30)
        assert "Discord requires sharding" in str(refused.value)
        assert "LIBRARIAN_DISCORD_SHARD_COUNT=auto" in str(refused.value)
        assert not emu.sessions
        # A shard Discord does not know (settings refuse such ids before this): 4010.
        beyond = adapter(shard_count=2, shard_ids=[2])
        with pytest.raises(ConfigError, match="Discord refused shards 2 of 2: check"):
            await asyncio.wait_for(beyond.start(sink), 30)

        sharded = adapter(shard_count="auto")
        task = asyncio.create_task(sharded.start(sink))
        try:
            await emu.wait_for(lambda: len(emu.commands) == 3 or task.done(), timeout=60)
            if task.done():
                task.result()
            assert sorted(s.shard for s in emu.sessions.values()) == [(0, 2), (1, 2)]
        finally:
            await sharded.stop()
            await asyncio.wait_for(task, 10)
    finally:
        await emu.close()


async def test_admins_are_recognised_in_a_guild_of_another_shard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gateway finishing an event another shard's process left in flight (event
    recovery) must still know who is an admin there, though it has no such guild."""
    emu = DiscordEmulator()
    alpha = emu.add_guild("Alpha", ("alpha",), shard=(0, 2))
    beta = emu.add_guild("Beta", ("beta",), shard=(1, 2))
    await emu.start()
    point_discord_py_at(emu, monkeypatch)
    adapter = DiscordAdapter(
        emu.token,
        commands=base_commands(),
        api_url=emu.api_url,
        gateway_url=emu.gateway_url,
        guild_ready_timeout=0.2,
        shard_count=2,
        shard_ids=[1],
    )

    async def sink(event: Any) -> None:
        pass

    task = asyncio.create_task(adapter.start(sink))
    try:
        await emu.wait_for(lambda: beta in emu.commands or task.done(), timeout=30)
        assert alpha not in emu.commands  # shard 0's guild is not this process's
        assert adapter.client is not None and adapter.client.get_guild(int(alpha)) is None

        def asks_in_alpha(user: str) -> tuple[UserRef, ConversationRef]:
            who = UserRef("discord", emu.users[user]["id"])
            where = ConversationRef("discord", alpha, emu.channel_ids["alpha"], None)
            return who, where

        assert await adapter.is_admin(*asks_in_alpha("alice"))  # Manage Server in Alpha
        assert await adapter.is_admin(*asks_in_alpha("carol"))  # Manage Channels
        assert not await adapter.is_admin(*asks_in_alpha("bob"))
        assert len(emu.calls_to("GET", rf"/guilds/{alpha}")) == 1  # fetched once, then kept
    finally:
        await adapter.stop()
        await asyncio.wait_for(task, 10)
        await emu.close()


def test_librarian_status_shows_the_shards_of_this_process_and_nothing_unsharded(
    settings,
) -> None:
    _librarian("db", "upgrade")

    def status(**shards: str) -> tuple[dict[str, Any], str]:
        env: dict[str, str | None] = {
            "LIBRARIAN_DISCORD_SHARD_COUNT": None,  # unset unless given
            "LIBRARIAN_DISCORD_SHARD_IDS": None,
        }
        env.update({f"LIBRARIAN_DISCORD_{k.upper()}": v for k, v in shards.items()})
        said = [_librarian(*args, env=env) for args in (("status", "--json"), ("status",))]
        return json.loads(said[0]), said[1]

    info, text = status()
    assert "discord_shards" not in info and "discord shards" not in text
    info, text = status(shard_count="2", shard_ids="1")
    assert info["discord_shards"] == {"count": 2, "ids": [1]}
    assert "\ndiscord shards    1 of 2\n" in text, text
    info, text = status(shard_count="16", shard_ids="0-3,8")
    assert info["discord_shards"] == {"count": 16, "ids": [0, 1, 2, 3, 8]}
    assert "\ndiscord shards    0-3,8 of 16\n" in text, text
    info, text = status(shard_count="4")  # no ids: this process runs them all
    assert info["discord_shards"] == {"count": 4, "ids": [0, 1, 2, 3]}
    assert "\ndiscord shards    0-3 of 4\n" in text, text
    info, text = status(shard_count="auto")
    assert info["discord_shards"] == {"count": "auto", "ids": None}
    assert "\ndiscord shards    all that Discord recommends (auto)\n" in text, text


def test_shard_settings_that_cannot_work_are_refused_in_plain_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.config import load_settings

    def refusal(**env: str) -> str:
        for name in ("LIBRARIAN_DISCORD_SHARD_COUNT", "LIBRARIAN_DISCORD_SHARD_IDS"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(f"LIBRARIAN_DISCORD_{name.upper()}", value)
        with pytest.raises(ConfigError) as refused:
            load_settings()
        return str(refused.value)

    assert refusal(shard_count="0") == (
        "LIBRARIAN_DISCORD_SHARD_COUNT: must be between 1 and 10000, or auto"
    )
    assert refusal(shard_count="two") == (
        "LIBRARIAN_DISCORD_SHARD_COUNT: 'two' is not a number of shards or auto"
    )
    assert refusal(shard_ids="0,1").startswith(
        "LIBRARIAN_DISCORD_SHARD_IDS: needs LIBRARIAN_DISCORD_SHARD_COUNT set to the number"
    )
    assert refusal(shard_count="auto", shard_ids="1").startswith(
        "LIBRARIAN_DISCORD_SHARD_IDS: needs LIBRARIAN_DISCORD_SHARD_COUNT"
    )
    assert refusal(shard_count="2", shard_ids="0,2") == (
        "LIBRARIAN_DISCORD_SHARD_IDS: shard 2 does not exist: with 2 shards the ids are 0 to 1"
    )
    assert refusal(shard_count="4", shard_ids="0-1,1") == (
        "LIBRARIAN_DISCORD_SHARD_IDS: shard 1 is named twice"
    )
    assert refusal(shard_count="4", shard_ids="3-1") == (
        "LIBRARIAN_DISCORD_SHARD_IDS: '3-1' is an empty range"
    )
    assert refusal(shard_count="4", shard_ids="first") == (
        "LIBRARIAN_DISCORD_SHARD_IDS: 'first' is not a shard id (0) or a range of them (0-3)"
    )
    monkeypatch.setenv("LIBRARIAN_DISCORD_SHARD_COUNT", "")  # compose's ${VAR:-}: unset
    monkeypatch.delenv("LIBRARIAN_DISCORD_SHARD_IDS")
    assert load_settings().discord_shard_count is None
    monkeypatch.setenv("LIBRARIAN_DISCORD_SHARD_COUNT", "4")
    monkeypatch.setenv("LIBRARIAN_DISCORD_SHARD_IDS", " 0-1, 3 ")
    settings = load_settings()
    assert (settings.discord_shard_count, settings.discord_shard_ids) == (4, [0, 1, 3])
