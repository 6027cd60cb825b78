"""The ``model.bin`` container of a CTranslate2 checkpoint: named tensors and aliases, read and written.

A CTranslate2 model is a folder (see :mod:`.ctranslate2`); ``model.bin`` may be split into ``model.bin.part1``,
``model.bin.part2``, ... that concatenate to one file.

``model.bin`` is little-endian::

    u32 version (6) | string spec name ("WhisperSpec") | u32 spec revision | u32 variable count
    per variable: string name | u8 rank | u32 dim × rank | u8 dtype | u32 byte count | data
    u32 alias count | (string alias, string target) × count
    string = u16 length including a trailing NUL | UTF-8 bytes | NUL

dtype codes: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16. Scalars (rank 0) hold settings such as
``encoder/num_heads``. What the names mean and how quantized weights read back: :mod:`.ctranslate2`.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ModelLoadError

SPEC_NAME = "WhisperSpec"
BINARY_VERSION = 6
SPEC_REVISION = 3
_DTYPES: dict[int, torch.dtype] = {
    0: torch.float32,
    1: torch.int8,
    2: torch.int16,
    3: torch.int32,
    4: torch.float16,
    5: torch.bfloat16,
}
_DTYPE_CODES = {dtype: code for code, dtype in _DTYPES.items()}


# ---- reading the raw variables --------------------------------------------------------------------------------


class _Concatenated(io.RawIOBase):
    """Read several files as one stream (``model.bin.part1`` + ``.part2`` + ...), without a temporary copy."""

    def __init__(self, paths: list[Path]):
        self._paths = list(paths)
        self._file: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        while True:
            if self._file is None:
                if not self._paths:
                    return 0
                self._file = open(self._paths.pop(0), "rb")
            n = self._file.readinto(buffer)
            if n:
                return n
            self._file.close()
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()


def _read_exact(stream: io.RawIOBase | io.BufferedIOBase, n: int, what: str) -> bytearray:
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            raise ModelLoadError(
                f"model.bin ends early while reading {what} (is the file truncated or a part missing?)"
            )
        got += k
    return buffer


def _unpack(stream: io.RawIOBase | io.BufferedIOBase, fmt: str, what: str) -> int:
    return struct.unpack("<" + fmt, _read_exact(stream, struct.calcsize(fmt), what))[0]


def _read_string(stream: io.RawIOBase | io.BufferedIOBase, what: str) -> str:
    n = _unpack(stream, "H", what)
    raw = _read_exact(stream, n, what)
    if not raw or raw[-1] != 0:
        raise ModelLoadError(f"model.bin: {what} is not NUL-terminated; this is not a CTranslate2 model file")
    try:
        return raw[:-1].decode("utf-8")
    except UnicodeDecodeError:
        raise ModelLoadError(f"model.bin: {what} is not UTF-8 text; the file is damaged") from None


@dataclass
class RawModel:
    """The variables of a model.bin, as stored (no dequantization, aliases resolved)."""

    spec: str
    revision: int
    variables: dict[str, Tensor]
    aliases: dict[str, str]


def read_variables(paths: list[Path]) -> RawModel:
    """Parse a model.bin (or its parts, concatenated in order) into tensors."""
    try:
        return _read_variables(paths)
    except ModelLoadError as exc:
        if not str(exc).startswith("model.bin"):
            raise
        # the low-level readers know no path: name the file (and its parts) in their errors
        where = str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+ {len(paths) - 1} more parts)"
        raise ModelLoadError(where + str(exc)[len("model.bin") :]) from exc


def _read_variables(paths: list[Path]) -> RawModel:
    with io.BufferedReader(_Concatenated(paths), buffer_size=1 << 20) as stream:
        version = _unpack(stream, "I", "the format version")
        if version < 5 or version > BINARY_VERSION:
            raise ModelLoadError(
                f"{paths[0]}: CTranslate2 binary version {version} is not supported (this reader knows 5 and 6); "
                "convert the model again with a current ct2-transformers-converter"
            )
        spec = _read_string(stream, "the spec name")
        revision = _unpack(stream, "I", "the spec revision")
        count = _unpack(stream, "I", "the variable count")
        variables: dict[str, Tensor] = {}
        for _ in range(count):
            name = _read_string(stream, "a variable name")
            rank = _unpack(stream, "B", f"{name}'s rank")
            shape = [_unpack(stream, "I", f"{name}'s shape") for _ in range(rank)]
            code = _unpack(stream, "B", f"{name}'s dtype")
            n_bytes = _unpack(stream, "I", f"{name}'s size")
            if code not in _DTYPES:
                raise ModelLoadError(f"{paths[0]}: variable {name} has unknown dtype code {code}")
            dtype = _DTYPES[code]
            expected = dtype.itemsize * (torch.Size(shape).numel() if shape else 1)
            if n_bytes != expected:
                raise ModelLoadError(
                    f"{paths[0]}: variable {name} of shape {shape} has {n_bytes} bytes, not {expected}"
                )
            if n_bytes == 0:
                variables[name] = torch.empty(shape, dtype=dtype)
                continue
            data = _read_exact(stream, n_bytes, name)
            variables[name] = torch.frombuffer(data, dtype=dtype).reshape(shape)
        aliases: dict[str, str] = {}
        for _ in range(_unpack(stream, "I", "the alias count")):
            alias = _read_string(stream, "an alias")
            aliases[alias] = _read_string(stream, "an alias target")
        if stream.read(1):
            raise ModelLoadError(f"{paths[0]}: unexpected bytes after the aliases; the file is not a CTranslate2 model")
    for alias, target in aliases.items():
        if target not in variables:
            raise ModelLoadError(f"{paths[0]}: alias {alias} points to a missing variable {target}")
        variables[alias] = variables[target]
    return RawModel(spec, revision, variables, aliases)


# ---- writing ----------------------------------------------------------------------------------------------------


def pack_string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def iter_model_bin(variables: dict[str, Tensor], aliases: dict[str, str]) -> Iterator[bytes]:
    yield struct.pack("<I", BINARY_VERSION) + pack_string(SPEC_NAME) + struct.pack("<I", SPEC_REVISION)
    yield struct.pack("<I", len(variables))
    for name in sorted(variables):
        t = variables[name]
        header = pack_string(name) + struct.pack("<B", t.dim()) + b"".join(struct.pack("<I", n) for n in t.shape)
        n_bytes = t.numel() * t.element_size()
        yield header + struct.pack("<BI", _DTYPE_CODES[t.dtype], n_bytes)
        # bytes of any dtype (numpy has no bfloat16): view as unsigned bytes
        yield t.reshape(-1).view(torch.uint8).numpy().tobytes()
    yield struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        yield pack_string(alias) + pack_string(target)
