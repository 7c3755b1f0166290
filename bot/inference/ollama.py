"""Ollama's model store on disk: names, manifests and the GGUF blobs they point at.

Models are found through Ollama's manifests and blobs (``$OLLAMA_MODELS`` or
``~/.ollama/models``) without running Ollama.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bot.errors import LibrarianError

#: Ollama's media type for the layer that holds the GGUF weights.
OLLAMA_MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
OLLAMA_DEFAULT_HOST = "registry.ollama.ai"
OLLAMA_DEFAULT_NAMESPACE = "library"

_SHA256_DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")


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


def ollama_models(root: Path) -> list[OllamaRef]:
    """Every model name in an Ollama store (manifests/<host>/<ns>/<model>/<tag>)."""
    base = root / "manifests"
    if not base.is_dir():
        return []
    found: list[OllamaRef] = []
    for manifest in sorted(base.glob("*/*/*/*")):
        if manifest.is_file():
            host, namespace, model, tag = manifest.relative_to(base).parts
            found.append(OllamaRef(host=host, namespace=namespace, model=model, tag=tag))
    return found
