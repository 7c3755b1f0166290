"""Models nobody uses are unloaded by the scheduler, and come back on the next request."""

from __future__ import annotations

import asyncio

import pytest
from helpers import wait_until

from bot.app import App
from bot.config import load_settings
from bot.scheduler import IDLE_MODELS_JOB

pytestmark = pytest.mark.slow


async def test_an_idle_model_is_unloaded_and_loads_again_when_asked(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBRARIAN_MODEL_IDLE_MINUTES", "0.02")  # 1.2 s
    app = App.build(load_settings())
    try:
        app.start_background()
        job = app.scheduler.job(IDLE_MODELS_JOB)
        assert job is not None and job.max_instances == 1 and job.coalesce
        await app.inference.embed(["where is the warranty?"], key="someone")
        assert [m["role"] for m in app.inference.loaded()] == ["embedding"]

        # Nobody asks for 1.2 s: the job unloads it.  (Wait for the job's report: the
        # slot leaves loaded() before the job has finished and recorded the name.)
        assert await wait_until(lambda: app.scheduler.unloaded_models != [], 15)
        assert app.scheduler.unloaded_models == ["all-minilm-l6-v2"]
        assert app.inference.loaded() == []

        # The next question loads it again, without a restart.
        vectors = await app.inference.embed(["and the price?"], key="someone")
        assert vectors.shape == (1, 384)
    finally:
        await app.close()


async def test_models_stay_loaded_when_idle_unloading_is_off(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBRARIAN_MODEL_IDLE_MINUTES", "0")
    app = App.build(load_settings())
    try:
        app.start_background()
        assert app.scheduler.job(IDLE_MODELS_JOB) is None
        await app.inference.embed(["where is the warranty?"], key="someone")
        await asyncio.sleep(1.5)
        assert [m["role"] for m in app.inference.loaded()] == ["embedding"]
    finally:
        await app.close()
