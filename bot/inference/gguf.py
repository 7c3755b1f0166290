"""Read what a GGUF file says about its model, from its header alone.

gguf.GGUFReader parses every metadata array element into numpy views: 5-8 s
for a 100 MB model on this class of machine, because of the 30-50k token
strings.  We need a handful of scalars and the tensor table, so this module
walks the header itself (format: github.com/ggml-org/ggml docs/gguf.md) and
skips arrays without decoding them; tests check it against GGUFReader.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bot.errors import LibrarianError

Role = Literal["chat", "embedding"]

# Architectures that are sentence encoders rather than text generators.
_EMBEDDING_ARCHS = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "modern-bert", "neo-bert"}
)


@dataclass(frozen=True)
class GGUFFacts:
    """What the header of a GGUF file says about the model."""

    architecture: str
    quant: str
    role: Role
    name: str | None
    tensor_types: dict[str, int] = field(default_factory=dict)
    # The languages the model card says it was trained for (``general.languages``, ISO
    # 639-1 codes such as "en"); empty when the file does not say.
    languages: tuple[str, ...] = ()


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
# The arrays read, not only skipped: short lists of strings that describe the model.
_LISTS = frozenset({"general.languages"})
_LIST_MAX = 64


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
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the _LISTS read


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

    def string_list(self) -> tuple[int, tuple[str, ...] | None]:
        """An array's length, and its items when it is at most _LIST_MAX strings (else
        None: skipped, as ``skip_array`` does)."""
        start = self.pos
        item_type, count = self.unpack("I"), self.unpack("Q")
        if item_type == _STRING and count <= _LIST_MAX:
            return count, tuple(self.string() for _ in range(count))
        self.pos = start
        return self.skip_array(), None

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
    lists: dict[str, tuple[str, ...]] = {}
    for _ in range(n_kv):
        key = cursor.string()
        type_id = cursor.unpack("I")
        if type_id == _ARRAY and key in _LISTS:
            arrays[key], listed = cursor.string_list()
            if listed is not None:
                lists[key] = listed
        elif type_id == _ARRAY:
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
        version=version,
        metadata=metadata,
        array_lengths=arrays,
        tensors=tuple(tensors),
        lists=lists,
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
        languages=tuple(lang.strip().lower() for lang in header.lists.get("general.languages", ())),
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
