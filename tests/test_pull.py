"""``librarian models pull`` against a local imitation of the hub's file-resolve endpoint.

No hub can be reached here, so a tiny HTTP server on 127.0.0.1 answers what
``huggingface_hub.hf_hub_download`` asks: ``HEAD`` and ``GET``
``/<owner>/<repo>/resolve/<revision>/<file>`` with the ``X-Repo-Commit``,
``ETag`` and ``Content-Length`` headers, and the hub's ``X-Error-Code`` on 404.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from bot.errors import LibrarianError
from bot.inference.pull import parse_pull_ref, pull
from bot.inference.registry import ModelRegistry


class FakeHub:
    """Serves {(repo_id, filename): bytes} the way the hub's resolve endpoint does."""

    def __init__(self, files: dict[tuple[str, str], bytes]) -> None:
        self.files = files
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                self._serve(with_body=False)

            def do_GET(self) -> None:
                self._serve(with_body=True)

            def _serve(self, with_body: bool) -> None:
                hub.requests.append((self.command, self.path))
                parts = unquote(urlsplit(self.path).path).lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._error("EntryNotFound")
                repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
                if all(known != repo for known, _ in hub.files):
                    return self._error("RepoNotFound")
                data = hub.files.get((repo, filename))
                if data is None:
                    return self._error("EntryNotFound")
                self.send_response(200)
                self.send_header("X-Repo-Commit", "0123456789abcdef" * 2 + "01234567")
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if with_body:
                    self.wfile.write(data)

            def _error(self, code: str) -> None:
                body = b'{"error": "not found"}'
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def hub(packaged_chat_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    files = {
        ("acme/Tiny-GGUF", "tiny.Q4_1.gguf"): packaged_chat_gguf.read_bytes(),
        ("acme/Tiny-GGUF", "sub/dir/nested.gguf"): packaged_chat_gguf.read_bytes(),
        ("acme/Tiny-GGUF", "broken.gguf"): b"<html>not a model</html>",
    }
    with FakeHub(files) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server


def test_pull_downloads_into_models_dir(hub: FakeHub, tmp_path: Path, packaged_chat_gguf) -> None:
    from bot.config import Settings

    settings = Settings(home=tmp_path / "home")
    result = pull("acme/Tiny-GGUF/tiny.Q4_1.gguf", settings.models_dir, progress=False)
    assert result.path == settings.models_dir / "tiny.Q4_1.gguf"
    assert result.path.read_bytes() == packaged_chat_gguf.read_bytes()
    assert (result.quant, result.role, result.endpoint) == ("Q4_1", "chat", hub.url)
    assert ("HEAD", "/acme/Tiny-GGUF/resolve/main/tiny.Q4_1.gguf") in hub.requests
    assert ("GET", "/acme/Tiny-GGUF/resolve/main/tiny.Q4_1.gguf") in hub.requests

    registry = ModelRegistry(settings)
    info = registry.resolve("tiny.Q4_1")
    assert (info.source, info.quant, info.name) == ("pulled", "Q4_1", "tiny.Q4_1")

    nested = pull("acme/Tiny-GGUF/sub/dir/nested.gguf", settings.models_dir, progress=False)
    assert nested.path == settings.models_dir / "sub" / "dir" / "nested.gguf"
    assert registry.resolve("sub/dir/nested").source == "pulled"
    # The hub client's own bookkeeping (.cache/) is not listed as models.
    assert {m.name for m in registry.list() if m.source == "pulled"} == {
        "tiny.Q4_1",
        "sub/dir/nested",
    }


def test_pull_cli(hub: FakeHub, models_home: Path) -> None:
    from typer.testing import CliRunner

    from bot.cli.models import app

    result = CliRunner().invoke(app, ["pull", "acme/Tiny-GGUF/tiny.Q4_1.gguf"])
    assert result.exit_code == 0, result.output
    assert "pulled acme/Tiny-GGUF/tiny.Q4_1.gguf" in result.output
    assert "use it as 'tiny.Q4_1'" in result.output
    (models_home / "models" / "tiny.Q4_1.gguf").unlink()  # keep the shared home as it was


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("acme/Tiny-GGUF/missing.gguf", "missing.gguf was not found in acme/Tiny-GGUF"),
        ("acme/Nope/x.gguf", "repository acme/Nope was not found"),
        ("acme/Tiny-GGUF/broken.gguf", "is not a valid GGUF file; it was removed"),
    ],
)
def test_pull_errors(hub: FakeHub, tmp_path: Path, ref: str, message: str) -> None:
    with pytest.raises(LibrarianError, match=message) as err:
        pull(ref, tmp_path / "models", progress=False)
    assert hub.url in str(err.value)
    assert not list((tmp_path / "models").glob("*.gguf"))


@pytest.mark.parametrize(
    "ref", ["model.gguf", "acme/model.gguf", "acme/repo/model.bin", "acme/repo/../x.gguf"]
)
def test_bad_references(ref: str) -> None:
    with pytest.raises(LibrarianError, match="cannot pull"):
        parse_pull_ref(ref)


def test_unreachable_endpoint_message() -> None:
    """The wording for a hub that cannot be reached (huggingface_hub retries ~25 s
    before giving up on a refused connection, too slow to run for real here)."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    from bot.inference.pull import PullRef, _explain

    message = _explain(
        LocalEntryNotFoundError("cannot find the requested files in the local cache"),
        PullRef("acme/repo", "m.gguf"),
        "http://127.0.0.1:9",
    )
    assert message.startswith("cannot reach the model hub at http://127.0.0.1:9")
    assert "HF_ENDPOINT" in message
