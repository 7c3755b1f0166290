"""Download a GGUF file from a Hugging Face-compatible hub into models_dir.

This is the bot's only network path, and it runs only when an administrator
asks for it (``librarian models pull owner/repo/file.gguf``).  The download
goes through ``huggingface_hub.hf_hub_download`` (resumable, with a progress
bar) and honours ``HF_ENDPOINT`` (a mirror or an internal hub) and ``HF_TOKEN``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.errors import LibrarianError
from bot.inference.gguf import read_gguf_facts
from bot.inference.registry import record_source

_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class PullRef:
    """A parsed ``owner/repo/path/to/file.gguf`` reference."""

    repo_id: str
    filename: str

    def __str__(self) -> str:
        return f"{self.repo_id}/{self.filename}"


@dataclass(frozen=True)
class PullResult:
    """Where a pulled file landed."""

    ref: PullRef
    path: Path
    size_bytes: int
    quant: str
    role: str
    endpoint: str


def parse_pull_ref(ref: str) -> PullRef:
    """Split ``owner/repo/file.gguf`` (the file may be in sub-folders) into repo and file.

    Raises LibrarianError for anything else, with the expected form.
    """
    parts = ref.strip().strip("/").split("/")
    usage = (
        f"cannot pull {ref!r}: give <owner>/<repo>/<file>.gguf, "
        "e.g. HuggingFaceTB/SmolLM2-360M-Instruct-GGUF/smollm2-360m-instruct-q8_0.gguf"
    )
    if len(parts) < 3:
        raise LibrarianError(usage)
    owner, repo, *path = parts
    if not all(_REPO_PART.match(p) for p in (owner, repo, *path)) or any(
        p in {".", ".."} for p in path
    ):
        raise LibrarianError(usage)
    filename = "/".join(path)
    if not filename.lower().endswith(".gguf"):
        raise LibrarianError(f"cannot pull {ref!r}: only .gguf files can be loaded")
    return PullRef(repo_id=f"{owner}/{repo}", filename=filename)


def hub_endpoint() -> str:
    """The hub address in force: ``HF_ENDPOINT`` or huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def pull(
    ref: str,
    models_dir: Path,
    *,
    revision: str | None = None,
    progress: bool = True,
    endpoint: str | None = None,
) -> PullResult:
    """Download ``owner/repo/file.gguf`` into ``models_dir`` and check that it is GGUF.

    ``endpoint`` defaults to ``HF_ENDPOINT`` read at call time (huggingface_hub
    reads it once at import).  Network and hub errors become LibrarianError.
    """
    parsed = parse_pull_ref(ref)
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    models_dir.mkdir(parents=True, exist_ok=True)

    import huggingface_hub

    try:
        with _progress_bars(progress):
            downloaded = huggingface_hub.hf_hub_download(
                repo_id=parsed.repo_id,
                filename=parsed.filename,
                revision=revision,
                local_dir=str(models_dir),
                endpoint=endpoint,
            )
    except Exception as exc:  # huggingface_hub, requests and httpx all have their own
        raise LibrarianError(_explain(exc, parsed, endpoint)) from exc

    path = Path(downloaded)
    try:
        facts = read_gguf_facts(path)
    except LibrarianError:
        path.unlink(missing_ok=True)
        raise LibrarianError(
            f"{parsed} from {endpoint} is not a valid GGUF file; it was removed"
        ) from None
    record_source(models_dir, path, "pulled", origin=f"{endpoint}/{parsed}")
    return PullResult(
        ref=parsed,
        path=path,
        size_bytes=path.stat().st_size,
        quant=facts.quant,
        role=facts.role,
        endpoint=endpoint,
    )


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """Turn huggingface_hub's tqdm bars on or off for one call, then restore."""
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    if enabled and was_disabled and not os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"):
        enable_progress_bars()
    elif not enabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if was_disabled:
            disable_progress_bars()
        else:
            enable_progress_bars()


def _explain(exc: Exception, ref: PullRef, endpoint: str) -> str:
    """One line that says what went wrong, by the kind of failure."""
    kind = type(exc).__name__
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if kind in {"RepositoryNotFoundError", "GatedRepoError"} or (
        status in (401, 403) and "Entry" not in kind
    ):
        hint = "" if os.environ.get("HF_TOKEN") else " (private or gated? set HF_TOKEN)"
        return f"repository {ref.repo_id} was not found on {endpoint}{hint}"
    if kind in {"EntryNotFoundError", "RemoteEntryNotFoundError"} or status == 404:
        return f"{ref.filename} was not found in {ref.repo_id} on {endpoint}"
    if kind == "RevisionNotFoundError":
        return f"that revision of {ref.repo_id} was not found on {endpoint}"
    if kind in {"LocalEntryNotFoundError", "ConnectError", "ConnectionError", "ConnectTimeout"} or (
        "connect" in str(exc).lower()
    ):
        return (
            f"cannot reach the model hub at {endpoint} to download {ref} "
            "(no network? set HF_ENDPOINT to a reachable mirror)"
        )
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
    return f"downloading {ref} from {endpoint} failed: {first_line}"
