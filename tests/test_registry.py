"""ModelRegistry: every kind of reference, the GGUF header reader, and the list command."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import LibrarianError
from bot.inference.gguf import file_type_name, read_gguf_facts, read_gguf_header
from bot.inference.levels import base_stem
from bot.inference.ollama import parse_ollama_ref
from bot.inference.registry import ModelRegistry, record_source

# -- helpers ------------------------------------------------------------------------


def _own_registry(tmp_path: Path) -> ModelRegistry:
    """A registry with its own, empty home (for tests that add files to models_dir)."""
    return ModelRegistry(Settings(home=tmp_path / "home"))


def _ollama_store(root: Path, blob_source: Path, name: tuple[str, str, str, str]) -> Path:
    """Build Ollama's on-disk layout: a manifest and a sha256-named blob (a symlink)."""
    digest = hashlib.sha256(blob_source.read_bytes()).hexdigest()
    blobs = root / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    blob = blobs / f"sha256-{digest}"
    if not blob.exists():
        blob.symlink_to(blob_source)
    # The other layers Ollama writes, so the registry has to pick the model layer.
    template = b"{{ .Prompt }}"
    template_digest = hashlib.sha256(template).hexdigest()
    (blobs / f"sha256-{template_digest}").write_bytes(template)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": "sha256:" + "0" * 64,
            "size": 485,
        },
        "layers": [
            {
                "mediaType": "application/vnd.ollama.image.template",
                "digest": f"sha256:{template_digest}",
                "size": len(template),
            },
            {
                "mediaType": "application/vnd.ollama.image.model",
                "digest": f"sha256:{digest}",
                "size": blob_source.stat().st_size,
            },
            {
                "mediaType": "application/vnd.ollama.image.params",
                "digest": "sha256:" + "1" * 64,
                "size": 30,
            },
        ],
    }
    host, namespace, model, tag = name
    path = root / "manifests" / host / namespace / model / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return blob


# -- packaged, converted and file references ----------------------------------------


def test_package_chat_model(models_settings: Settings, packaged_chat_gguf: Path) -> None:
    info = ModelRegistry(models_settings).resolve("smollm2")
    assert info.name == "smollm2"
    assert info.source == "package"
    assert info.role == "chat"
    assert info.quant == "Q4_1"  # read from general.file_type, not the file name
    assert info.path == packaged_chat_gguf
    assert info.size_bytes == packaged_chat_gguf.stat().st_size


def test_package_embedding_model_is_converted(models_settings: Settings, minilm_f16: Path) -> None:
    registry = ModelRegistry(models_settings)
    info = registry.resolve("all-minilm-l6-v2", role="embedding")
    assert (info.name, info.source, info.role, info.quant) == (
        "all-minilm-l6-v2",
        "converted",
        "embedding",
        "F16",
    )
    assert info.path == minilm_f16
    assert info.path.parent == models_settings.models_dir
    # The converted file can also be named by its file stem in models_dir.
    assert registry.resolve("all-minilm-l6-v2-f16", role="embedding").path == minilm_f16


def test_file_path_absolute_relative_and_home(
    tmp_path: Path,
    models_settings: Settings,
    packaged_chat_gguf: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = ModelRegistry(models_settings)
    absolute = registry.resolve(str(packaged_chat_gguf))
    assert absolute.source == "file"
    assert absolute.name == "SmolLM2-135M-Instruct.Q4_1"
    assert absolute.quant == "Q4_1"

    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "chat.gguf").symlink_to(packaged_chat_gguf)
    monkeypatch.chdir(workdir)
    assert registry.resolve("./chat.gguf").source == "file"
    assert registry.resolve("chat.gguf").quant == "Q4_1"

    fake_home = tmp_path / "userhome"
    fake_home.mkdir()
    (fake_home / "mine.gguf").symlink_to(packaged_chat_gguf)
    monkeypatch.setenv("HOME", str(fake_home))
    info = registry.resolve("~/mine.gguf")
    assert info.source == "file"
    assert info.role == "chat"


def test_models_dir_file_by_name_and_stem(tmp_path: Path, packaged_chat_gguf: Path) -> None:
    registry = _own_registry(tmp_path)
    models = registry.models_dir
    models.mkdir(parents=True)
    (models / "tiny-chat.Q4_1.gguf").symlink_to(packaged_chat_gguf)
    (models / "hand-copied.gguf").symlink_to(packaged_chat_gguf)

    by_stem = registry.resolve("tiny-chat.Q4_1")
    by_file = registry.resolve("tiny-chat.Q4_1.gguf")  # not in cwd: found in models_dir
    assert by_stem == by_file
    assert by_stem.name == "tiny-chat.Q4_1"
    assert by_stem.source == "quantized"  # guessed from the quant tag (no record)
    assert registry.resolve("HAND-COPIED").source == "file"  # case-insensitive


def test_recorded_sources_win_over_guessing(tmp_path: Path, packaged_chat_gguf: Path) -> None:
    registry = _own_registry(tmp_path)
    models = registry.models_dir
    (models / "org").mkdir(parents=True)
    pulled = models / "org" / "model.Q4_1.gguf"
    pulled.symlink_to(packaged_chat_gguf)
    record_source(models, pulled, "pulled", origin="https://hub.example/org/repo/model.Q4_1.gguf")
    info = registry.resolve("org/model.Q4_1")
    assert (info.name, info.source) == ("org/model.Q4_1", "pulled")


def test_unknown_reference_lists_available(models_settings: Settings, minilm_f16: Path) -> None:
    with pytest.raises(LibrarianError) as err:
        ModelRegistry(models_settings).resolve("no-such-model")
    message = str(err.value)
    assert "no-such-model" in message
    assert "smollm2" in message and "all-minilm-l6-v2" in message


def test_missing_file_path_says_so(models_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(LibrarianError, match="does not exist.*Available: .*smollm2"):
        ModelRegistry(models_settings).resolve(str(tmp_path / "gone.gguf"))


def test_unreadable_file_is_a_clear_error(models_settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model")
    with pytest.raises(LibrarianError, match="not a readable GGUF"):
        ModelRegistry(models_settings).resolve(str(bad))


def test_role_mismatch(models_settings: Settings, minilm_f16: Path) -> None:
    registry = ModelRegistry(models_settings)
    with pytest.raises(LibrarianError, match="is a chat model.*not an embedding model"):
        registry.resolve("smollm2", role="embedding")
    with pytest.raises(LibrarianError, match="is an embedding model"):
        registry.resolve("all-minilm-l6-v2", role="chat")
    with pytest.raises(LibrarianError, match="unknown model role"):
        registry.resolve("smollm2", role="vision")


# -- Ollama -------------------------------------------------------------------------


def test_ollama_references(
    tmp_path: Path,
    models_settings: Settings,
    packaged_chat_gguf: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "ollama"
    blob = _ollama_store(
        store, packaged_chat_gguf, ("registry.ollama.ai", "library", "llama3", "8b-instruct-q4_0")
    )
    _ollama_store(store, packaged_chat_gguf, ("registry.ollama.ai", "library", "llama3", "latest"))
    _ollama_store(store, packaged_chat_gguf, ("registry.ollama.ai", "someone", "tiny", "v1"))
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    registry = ModelRegistry(models_settings)

    info = registry.resolve("llama3:8b-instruct-q4_0")
    assert (info.name, info.source, info.role, info.quant) == (
        "llama3:8b-instruct-q4_0",
        "ollama",
        "chat",
        "Q4_1",  # the header's truth, whatever the tag says
    )
    assert info.path == blob
    assert registry.resolve("library/llama3:8b-instruct-q4_0").path == blob
    assert registry.resolve("registry.ollama.ai/library/llama3:8b-instruct-q4_0").path == blob
    assert registry.resolve("llama3").name == "llama3:latest"
    assert registry.resolve("library/llama3:latest").name == "llama3:latest"
    assert registry.resolve("someone/tiny:v1").name == "someone/tiny:v1"

    listed = {m.name for m in registry.list() if m.source == "ollama"}
    assert listed == {"llama3:8b-instruct-q4_0", "llama3:latest", "someone/tiny:v1"}

    with pytest.raises(LibrarianError, match=r"unknown model 'llama3:70b'.*llama3:latest"):
        registry.resolve("llama3:70b")


def test_ollama_default_store_and_broken_blob(
    tmp_path: Path,
    models_settings: Settings,
    packaged_chat_gguf: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    store = tmp_path / ".ollama" / "models"
    blob = _ollama_store(store, packaged_chat_gguf, ("registry.ollama.ai", "library", "qwen", "1b"))
    registry = ModelRegistry(models_settings)
    assert registry.resolve("qwen:1b").path == blob

    blob.unlink()
    with pytest.raises(LibrarianError, match="blob .* is missing"):
        registry.resolve("qwen:1b")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("llama3", ("registry.ollama.ai", "library", "llama3", "latest")),
        ("llama3:8b", ("registry.ollama.ai", "library", "llama3", "8b")),
        ("me/m:t", ("registry.ollama.ai", "me", "m", "t")),
        ("host.example:5000/ns/m:t", None),  # a port would be read as a tag separator: refuse
        ("host.example/ns/m:t", ("host.example", "ns", "m", "t")),
        ("../../etc/passwd", None),
        ("a/b/c/d", None),
    ],
)
def test_parse_ollama_ref(ref: str, expected: tuple[str, str, str, str] | None) -> None:
    parsed = parse_ollama_ref(ref)
    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None
        assert (parsed.host, parsed.namespace, parsed.model, parsed.tag) == expected


# -- quantization siblings ----------------------------------------------------------


def test_resolve_level_errors_and_checks(tmp_path: Path, packaged_chat_gguf: Path) -> None:
    registry = _own_registry(tmp_path)
    base = registry.resolve("smollm2")
    assert registry.resolve_level(base, "Q4_1") is base  # already at that level

    with pytest.raises(LibrarianError) as err:
        registry.resolve_level(base, "q8_0")
    assert "librarian models quantize smollm2 q8_0" in str(err.value)

    with pytest.raises(LibrarianError, match="unknown quantization level 'q9'.*q4_K_M"):
        registry.resolve_level(base, "q9")

    # A file named as the sibling but holding another level is refused.
    registry.models_dir.mkdir(parents=True)
    (registry.models_dir / "SmolLM2-135M-Instruct-q8_0.gguf").symlink_to(packaged_chat_gguf)
    with pytest.raises(LibrarianError, match="header says Q4_1"):
        registry.resolve_level(base, "q8_0")


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("all-minilm-l6-v2-f16.gguf", "all-minilm-l6-v2"),
        ("all-minilm-l6-v2-q4_K_M.gguf", "all-minilm-l6-v2"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct"),
        ("model-Q6_K.gguf", "model"),
        ("llama-3-8b.IQ4_XS.gguf", "llama-3-8b"),
        ("plain.gguf", "plain"),
        ("l6-v2.gguf", "l6-v2"),
    ],
)
def test_base_stem(name: str, stem: str) -> None:
    assert base_stem(Path(name)) == stem


# -- the GGUF header reader ------------------------------------------------------


def test_header_reader_agrees_with_gguf_reader(tmp_path: Path) -> None:
    """Our fast header walk must give what the reference GGUFReader gives."""
    import gguf
    import numpy as np

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_name("tiny")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_uint32("bert.context_length", 512)
    writer.add_float32("bert.attention.layer_norm_epsilon", 1e-12)
    writer.add_bool("bert.attention.causal", False)
    writer.add_int64("test.negative", -5)
    writer.add_float64("test.double", 2.5)
    writer.add_token_list(["[PAD]", "\u2581hello", "##x", "\u00e9t\u00e9"])
    writer.add_array("test.ints", [1, 2, 3])
    writer.add_tensor("token_embd.weight", np.ones((4, 8), dtype=np.float16))
    writer.add_tensor("token_embd_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    header = read_gguf_header(path)
    reader = gguf.GGUFReader(str(path), "r")
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue  # the reader's own pseudo-fields
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            assert header.array_lengths[key] == len(field.data)
        else:
            assert header.metadata[key] == pytest.approx(field.contents()), key
    assert [(t.name, t.shape, t.type_id) for t in header.tensors] == [
        (t.name, tuple(int(n) for n in t.shape), int(t.tensor_type)) for t in reader.tensors
    ]
    facts = read_gguf_facts(path)
    assert (facts.architecture, facts.quant, facts.role) == ("bert", "Q8_0", "embedding")


def test_file_type_names() -> None:
    assert [file_type_name(n) for n in (0, 1, 2, 7, 15, 18, 32)] == [
        "F32",
        "F16",
        "Q4_0",
        "Q8_0",
        "Q4_K_M",
        "Q6_K",
        "BF16",
    ]
    assert file_type_name(9999) == "type-9999"


# -- listing and the CLI ----------------------------------------------------------


def test_list_and_cli_json(models_settings: Settings, minilm_f16: Path) -> None:
    from typer.testing import CliRunner

    from bot.cli.models import app

    registry = ModelRegistry(models_settings)
    names = {m.name: m for m in registry.list()}
    assert names["smollm2"].source == "package"
    assert names["all-minilm-l6-v2"].source == "converted"

    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {"name", "role", "quant", "size_bytes", "path", "source"} <= set(rows[0])
    by_name = {row["name"]: row for row in rows}
    assert by_name["smollm2"]["role"] == "chat"
    assert by_name["all-minilm-l6-v2"]["quant"] == "F16"
    assert os.path.isfile(by_name["all-minilm-l6-v2"]["path"])

    table = CliRunner().invoke(app, ["list"])
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0].split() == [
        "NAME",
        "ROLE",
        "QUANT",
        "SIZE",
        "SOURCE",
        "PATH",
    ]
    assert "smollm2 *" in table.output  # the configured default is marked
