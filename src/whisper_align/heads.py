"""Alignment heads: which decoder cross-attention heads follow the audio closely enough to time words.

A Whisper decoder has ``n_text_layer x n_text_head`` cross-attention heads; a handful of them (picked by openai
per model) give a clean monotonic text-to-audio alignment. This module knows those picks for the 14 official
model names and moves them between every form they circulate in:

* **mask**: a bool numpy array of shape (layers, heads), True at an alignment head. The form everything
  converts through.
* **dump**: openai's compact form, ``base85(gzip(mask.tobytes()))`` (``whisper/__init__.py``'s
  ``_ALIGNMENT_HEADS``, decoded by ``Whisper.set_alignment_heads``). See :func:`decode` and :func:`encode`.
* **pairs**: ``[[layer, head], ...]``, the form of the ``alignment_heads`` key in a Hugging Face
  ``generation_config.json`` and in a CTranslate2 model's ``config.json``. See :func:`read_json_heads`.
* **whisper.cpp**: a C initializer of ``whisper_ahead`` structs, ``{ {1, 0}, {2, 0}, ... }``, and its
  ``-dtw`` preset names. See :func:`to_whisper_cpp`.

:func:`resolve_heads` reads any of these from one string (what every CLI ``--heads`` option takes).

This module imports nothing else of the package (numpy and the standard library only), so anything may use it.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import gzip
import json
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class AlignmentHeadsError(ValueError):
    """Alignment heads that cannot be read or do not fit the model: bad dump, bad pairs, wrong shape, unknown name."""


# ---- the official heads ----------------------------------------------------------------------------------------

# Decoder shape (n_text_layer, n_text_head) of each official model family.
_SHAPES = {
    "tiny": (4, 6),
    "base": (6, 8),
    "small": (12, 12),
    "medium": (24, 16),
    "large": (32, 20),
    "turbo": (4, 20),
}

# (name, family, openai's dump, the gzip mtime its header records). The dumps are data copied from openai-whisper's
# whisper/__init__.py; the mtimes are read from the dumps' own gzip headers (tests check both).
_OFFICIAL = [
    ("tiny.en", "tiny", b"ABzY8J1N>@0{>%R00Bk>$p{7v037`oCl~+#00", 1675241787),
    ("tiny", "tiny", b"ABzY8bu8Lr0{>%RKn9Fp%m@SkK7Kt=7ytkO", 1675242613),
    ("base.en", "base", b"ABzY8;40c<0{>%RzzG;p*o+Vo09|#PsxSZm00", 1675242208),
    ("base", "base", b"ABzY8KQ!870{>%RzyTQH3`Q^yNP!>##QT-<FaQ7m", 1675244607),
    ("small.en", "small", b"ABzY8>?_)10{>%RpeA61k&I|OI3I$65C{;;pbCHh0B{qLQ;+}v00", 1675242476),
    ("small", "small", b"ABzY8DmU6=0{>%Rpa?J`kvJ6qF(V^F86#Xh7JUGMK}P<N0000", 1675245354),
    ("medium.en", "medium", b"ABzY8usPae0{>%R7<zz_OvQ{)4kMa0BMw6u5rT}kRKX;$NfYBv00*Hl@qhsU00", 1675246000),
    ("medium", "medium", b"ABzY8B0Jh+0{>%R7}kK1fFL7w6%<-Pf*t^=N)Qr&0RR9", 1675246370),
    ("large-v1", "large", b"ABzY8r9j$a0{>%R7#4sLmoOs{s)o3~84-RPdcFk!JR<kSfC2yj", 1675247781),
    (
        "large-v2",
        "large",
        b"ABzY8zd+h!0{>%R7=D0pU<_bnWW*tkYAhobTNnu$jnkEkXqp)j;w1Tzk)UH3X%SZd&fFZ2fC2yj",
        1675247807,
    ),
    ("large-v3", "large", b"ABzY8gWO1E0{>%R7(9S+Kn!D~%ngiGaR?*L!iJG9p-nab0JQ=-{D1-g00", 1699273859),
    ("large", "large", b"ABzY8gWO1E0{>%R7(9S+Kn!D~%ngiGaR?*L!iJG9p-nab0JQ=-{D1-g00", 1699273859),
    ("large-v3-turbo", "turbo", b"ABzY8j^C+e0{>%RARaKHP%t(lGR*)0g!tONPyhe`", 1705631630),
    ("turbo", "turbo", b"ABzY8j^C+e0{>%RARaKHP%t(lGR*)0g!tONPyhe`", 1705631630),
]


@dataclass(frozen=True)
class OfficialHeads:
    """openai's alignment heads of one official model name, with the decoder shape they are for."""

    name: str
    dump: bytes  # exactly openai's bytes
    n_text_layer: int
    n_text_head: int
    mtime: int  # the gzip header's mtime, so encode(self.mask(), self.mtime) == self.dump

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_text_layer, self.n_text_head)

    def mask(self) -> np.ndarray:
        return decode(self.dump, self.n_text_layer, self.n_text_head)

    def pairs(self) -> list[list[int]]:
        return mask_to_pairs(self.mask())


ALIGNMENT_HEADS: dict[str, OfficialHeads] = {
    name: OfficialHeads(name, dump, *_SHAPES[family], mtime) for name, family, dump, mtime in _OFFICIAL
}


def official_heads(name: str) -> OfficialHeads:
    """The official heads of ``name``; an :class:`AlignmentHeadsError` listing the known names if it is unknown."""
    if name in ALIGNMENT_HEADS:
        return ALIGNMENT_HEADS[name]
    for official, preset in _WHISPER_CPP_PRESETS.items():  # a whisper.cpp preset name such as "large.v3"
        if name == preset:
            return ALIGNMENT_HEADS[official]
    raise AlignmentHeadsError(_unknown_name_message(name))


def is_official_name(name: str) -> bool:
    """True for the 14 official names and whisper.cpp's preset names for them ("large.v3")."""
    return name in ALIGNMENT_HEADS or name in _WHISPER_CPP_PRESETS.values()


def _unknown_name_message(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), list(ALIGNMENT_HEADS), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown model name {name!r}.{hint} Official names: {', '.join(ALIGNMENT_HEADS)}"


def official_matches(mask: np.ndarray) -> list[str]:
    """Names of the official models whose heads are exactly ``mask`` (same shape, same heads)."""
    mask = np.asarray(mask, dtype=bool)
    return [o.name for o in ALIGNMENT_HEADS.values() if o.shape == mask.shape and np.array_equal(o.mask(), mask)]


def _official_sizes(n_bytes: int) -> str:
    """'tiny.en, tiny (4x6)'-style list of the official models with ``n_bytes`` heads, or '' if none."""
    groups: dict[tuple[int, int], list[str]] = {}
    for o in ALIGNMENT_HEADS.values():
        if o.n_text_layer * o.n_text_head == n_bytes:
            groups.setdefault(o.shape, []).append(o.name)
    return "; ".join(f"{', '.join(names)} ({l}x{h})" for (l, h), names in groups.items())


def official_shape_for_size(n_heads: int) -> tuple[int, int] | None:
    """The official decoder shape with ``n_heads`` heads in all, if exactly one has that many."""
    shapes = {shape for shape in _SHAPES.values() if shape[0] * shape[1] == n_heads}
    return shapes.pop() if len(shapes) == 1 else None


# ---- mask <-> dump ----------------------------------------------------------------------------------------------


def _shape_text(n_text_layer: int, n_text_head: int) -> str:
    return f"{n_text_layer} decoder layers x {n_text_head} heads"


def _check_shape(n_text_layer: int, n_text_head: int) -> None:
    for what, value in (("n_text_layer", n_text_layer), ("n_text_head", n_text_head)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise AlignmentHeadsError(f"{what} must be a positive integer, got {value!r}")


def gunzip_dump(dump: bytes | str) -> bytes:
    """base85-decode and gunzip a dump (steps 1-2 of :func:`decode`), with a clear error for either failing."""
    if isinstance(dump, str):
        try:
            dump = dump.strip().encode("ascii")
        except UnicodeEncodeError as error:
            raise AlignmentHeadsError(f"the alignment-heads dump is not base85 text: {error}") from None
    dump = bytes(dump).strip()
    if not dump:
        raise AlignmentHeadsError("the alignment-heads dump is empty")
    try:
        compressed = base64.b85decode(dump)
    except (ValueError, binascii.Error) as error:
        raise AlignmentHeadsError(f"the alignment-heads dump is not valid base85 ({error})") from None
    try:
        return gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as error:
        raise AlignmentHeadsError(
            f"the alignment-heads dump is base85 but not gzip data ({error or type(error).__name__}); "
            "a dump is base85(gzip(bool array bytes)) as in openai-whisper's _ALIGNMENT_HEADS"
        ) from None


def gzip_mtime(dump: bytes | str) -> int:
    """The modification time recorded in a dump's gzip header (bytes 4-8, little-endian)."""
    try:
        raw = base64.b85decode(dump.strip().encode("ascii") if isinstance(dump, str) else bytes(dump).strip())
    except (ValueError, binascii.Error) as error:
        raise AlignmentHeadsError(f"the alignment-heads dump is not valid base85 ({error})") from None
    if len(raw) < 10 or raw[:2] != b"\x1f\x8b":
        raise AlignmentHeadsError("the alignment-heads dump does not start with a gzip header")
    return struct.unpack("<I", raw[4:8])[0]


def decode(dump: bytes | str, n_text_layer: int, n_text_head: int) -> np.ndarray:
    """Decode openai's dump into a bool mask of shape (n_text_layer, n_text_head).

    The steps of ``Whisper.set_alignment_heads``: b85decode -> gzip.decompress -> frombuffer(bool) -> reshape,
    each checked, so a bad dump fails with an :class:`AlignmentHeadsError` that names the problem and the shape
    (never a silently wrong mask: numpy would happily read byte 2 as True, or reshape a wrong-sized buffer
    that happens to divide).
    """
    _check_shape(n_text_layer, n_text_head)
    shape_text = _shape_text(n_text_layer, n_text_head)
    raw = gunzip_dump(dump)
    expected = n_text_layer * n_text_head
    if len(raw) != expected:
        fits = _official_sizes(len(raw))
        fits_text = f"; {len(raw)} heads fit the official models {fits}" if fits else "; no official model has so many"
        raise AlignmentHeadsError(
            f"the alignment-heads dump holds {len(raw)} bytes, but a model with {shape_text} needs "
            f"{n_text_layer}*{n_text_head} = {expected}{fits_text}. Was the dump made for another model?"
        )
    values = np.frombuffer(raw, dtype=np.uint8)
    if values.max() > 1:
        bad = sorted(set(values[values > 1].tolist()))
        raise AlignmentHeadsError(
            f"the alignment-heads dump for {shape_text} holds bytes other than 0 and 1 ({bad[:5]}); "
            "it must be a numpy bool array's bytes"
        )
    if not values.any():
        raise AlignmentHeadsError(f"the alignment-heads dump for {shape_text} marks no head at all")
    return values.astype(bool).reshape(n_text_layer, n_text_head)


def _as_mask(mask: Any) -> np.ndarray:
    """A validated 2-D bool copy of ``mask`` (bools or 0/1 numbers) with at least one head set."""
    try:
        array = np.asarray(mask.detach().cpu().to_dense() if hasattr(mask, "to_dense") else mask)
    except Exception as error:  # noqa: BLE001 - anything not array-like
        raise AlignmentHeadsError(f"cannot read alignment heads mask from {type(mask).__name__}: {error}") from None
    if array.ndim != 2:
        raise AlignmentHeadsError(f"an alignment-heads mask must be 2-D (layers, heads), got shape {array.shape}")
    if array.size == 0:
        raise AlignmentHeadsError(f"the alignment-heads mask of shape {array.shape} is empty")
    if array.dtype != bool:
        if not np.issubdtype(array.dtype, np.number) or not np.isin(array, (0, 1)).all():
            raise AlignmentHeadsError(
                f"an alignment-heads mask must hold booleans or 0/1, got dtype {array.dtype} with other values"
            )
        array = array.astype(bool)
    if not array.any():
        raise AlignmentHeadsError(
            f"the alignment-heads mask ({_shape_text(*array.shape)}) marks no head; mark at least one"
        )
    return np.ascontiguousarray(array)


def encode(mask: Any, mtime: int = 0) -> bytes:
    """openai's dump of ``mask``: base85(gzip(mask bytes)), gzip at level 9 with the header openai's dumps have.

    The gzip header is written here (not by ``gzip.compress``, whose header differs across Python versions):
    magic, deflate, no flags, ``mtime``, XFL 2 (best compression), OS 255 (unknown). Given an official dump's
    ``mtime`` (see :class:`OfficialHeads`) this reproduces that dump byte for byte.
    """
    array = _as_mask(mask)
    if isinstance(mtime, bool) or not isinstance(mtime, (int, np.integer)) or not 0 <= mtime < 2**32:
        raise AlignmentHeadsError(f"the gzip mtime must be an integer in [0, 2**32), got {mtime!r}")
    data = array.tobytes()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = compressor.compress(data) + compressor.flush()
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", int(mtime)) + b"\x02\xff"
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return base64.b85encode(header + body + trailer)


# ---- mask <-> pairs ---------------------------------------------------------------------------------------------


def mask_to_pairs(mask: Any) -> list[list[int]]:
    """``[[layer, head], ...]`` of the heads set in ``mask``, sorted by layer then head."""
    return [[int(l), int(h)] for l, h in np.argwhere(_as_mask(mask))]


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return None


def _check_pairs(pairs: Any) -> list[list[int]]:
    """``pairs`` as a list of [layer, head] ints, or an :class:`AlignmentHeadsError` saying what is malformed."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, (Iterable, np.ndarray)):
        raise AlignmentHeadsError(f"alignment heads must be a list of [layer, head] pairs, got {type(pairs).__name__}")
    checked = []
    for item in pairs:
        values = list(item) if isinstance(item, (list, tuple, np.ndarray)) else None
        ints = [_as_int(v) for v in values] if values is not None else None
        if ints is None or len(ints) != 2 or None in ints:
            raise AlignmentHeadsError(f"each alignment head must be a [layer, head] pair of integers, got {item!r}")
        checked.append(ints)
    if not checked:
        raise AlignmentHeadsError("the list of alignment heads is empty; give at least one [layer, head] pair")
    return checked


def pairs_to_mask(pairs: Any, n_text_layer: int, n_text_head: int) -> np.ndarray:
    """A bool (n_text_layer, n_text_head) mask with the given ``[[layer, head], ...]`` set (duplicates are fine)."""
    _check_shape(n_text_layer, n_text_head)
    checked = _check_pairs(pairs)
    bad = [p for p in checked if not (0 <= p[0] < n_text_layer and 0 <= p[1] < n_text_head)]
    if bad:
        raise AlignmentHeadsError(
            f"alignment heads {bad[:5]} are outside this model's decoder ({_shape_text(n_text_layer, n_text_head)}: "
            f"layers 0-{n_text_layer - 1}, heads 0-{n_text_head - 1}); were they made for another model?"
        )
    mask = np.zeros((n_text_layer, n_text_head), dtype=bool)
    for layer, head in checked:
        mask[layer, head] = True
    return mask


# ---- Hugging Face / CTranslate2 JSON ----------------------------------------------------------------------------

JSON_KEY = "alignment_heads"
# in a folder: Hugging Face keeps the heads in generation_config.json, CTranslate2 in config.json
_JSON_FILES = ("generation_config.json", "config.json")


def find_json_heads_file(folder: str | os.PathLike[str]) -> Path | None:
    """The JSON file in a model folder that has an ``alignment_heads`` key, if any."""
    for name in _JSON_FILES:
        path = Path(folder) / name
        if path.is_file() and read_json_heads(path) is not None:
            return path
    return None


def read_json_heads(source: str | os.PathLike[str] | Mapping[str, Any]) -> list[list[int]] | None:
    """The ``alignment_heads`` pairs of a HF ``generation_config.json`` / CTranslate2 ``config.json``.

    ``source`` is the parsed dict, the file, or a model folder (generation_config.json, then config.json).
    Returns None when there is no such key (or it is null); a malformed file or value is an error.
    """
    if isinstance(source, Mapping):
        config: Any = source
        where = "the config"
    else:
        path = Path(source)
        if path.is_dir():
            found = find_json_heads_file(path)
            if found is None:
                return None
            path = found
        where = str(path)
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise AlignmentHeadsError(f"cannot read {where}: {error.strerror or error}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise AlignmentHeadsError(f"{where} is not valid JSON: {error}") from None
        if not isinstance(config, dict):
            raise AlignmentHeadsError(f"{where} holds a JSON {type(config).__name__}, not an object")
    value = config.get(JSON_KEY)
    if value is None:
        return None
    try:
        return _check_pairs(value)
    except AlignmentHeadsError as error:
        raise AlignmentHeadsError(f"{where}: {JSON_KEY!r} is malformed: {error}") from None


def write_json_heads(path: str | os.PathLike[str], pairs: Any) -> None:
    """Set ``alignment_heads`` in the JSON file ``path`` (other keys kept), or create it with just that key.

    Written atomically (a temporary file in the same folder, then ``os.replace``), so a crash never leaves a
    half-written config.
    """
    checked = _check_pairs(pairs)
    path = Path(path)
    config: dict[str, Any] = {}
    if path.exists():
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise AlignmentHeadsError(f"cannot update {path}: not a readable JSON file ({error})") from None
        if not isinstance(config, dict):
            raise AlignmentHeadsError(f"cannot update {path}: it holds a JSON {type(config).__name__}, not an object")
    config[JSON_KEY] = checked
    text = json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---- whisper.cpp -------------------------------------------------------------------------------------------------

# official name -> the preset name whisper.cpp's examples take as `-dtw NAME` (mapped there to the enum
# WHISPER_AHEADS_<NAME> in whisper.h). "large.v3.turbo" exists in newer whisper.cpp versions only.
_WHISPER_CPP_PRESETS = {
    "tiny.en": "tiny.en",
    "tiny": "tiny",
    "base.en": "base.en",
    "base": "base",
    "small.en": "small.en",
    "small": "small",
    "medium.en": "medium.en",
    "medium": "medium",
    "large-v1": "large.v1",
    "large-v2": "large.v2",
    "large-v3": "large.v3",
    "large": "large.v3",
    "large-v3-turbo": "large.v3.turbo",
    "turbo": "large.v3.turbo",
}


def whisper_cpp_preset(name: str) -> str:
    """whisper.cpp's ``-dtw`` preset name for an official model name, e.g. "large-v2" -> "large.v2".

    whisper.cpp's command-line tools (``whisper-cli``, ``whisper-server``) take ``-dtw PRESET`` and set
    ``whisper_context_params.dtw_aheads_preset`` to the matching ``WHISPER_AHEADS_*`` enum value; its presets
    hold the same heads as openai's dumps.
    """
    if name in _WHISPER_CPP_PRESETS:
        return _WHISPER_CPP_PRESETS[name]
    if name in _WHISPER_CPP_PRESETS.values():
        return name
    raise AlignmentHeadsError(_unknown_name_message(name))


def to_whisper_cpp(pairs: Any) -> str:
    """The heads as whisper.cpp's C initializer of ``whisper_ahead`` structs: ``{ {1, 0}, {2, 0}, {2, 5} }``.

    whisper.cpp (``whisper.h``) has no text or file format for custom heads: its tools only know the ``-dtw``
    presets (:func:`whisper_cpp_preset`). Custom heads go through the C API: an array
    ``whisper_ahead heads[] = { {n_text_layer, n_head}, ... };`` (the form of whisper.cpp's own preset tables
    ``g_aheads_tiny_en`` etc. in ``whisper.cpp``), given as ``whisper_context_params.dtw_aheads =
    { n_heads, heads }`` with ``dtw_aheads_preset = WHISPER_AHEADS_CUSTOM`` and ``dtw_token_timestamps = true``.
    This returns the initializer, ready to paste after ``static const whisper_ahead heads[] =``.
    """
    return "{ " + ", ".join(f"{{{l}, {h}}}" for l, h in _check_pairs(pairs)) + " }"


_CPP_PAIR = re.compile(r"\{\s*(-?\d+)\s*,\s*(-?\d+)\s*\}")


def from_whisper_cpp(text: str) -> list[list[int]]:
    """Pairs from whisper.cpp's ``{ {layer, head}, ... }`` initializer (see :func:`to_whisper_cpp`).

    A whole declaration (``static const whisper_ahead x[] = { ... };``) is accepted too.
    """
    body = text.strip().rstrip(";").strip()
    if "=" in body:
        body = body.split("=", 1)[1].strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise AlignmentHeadsError(f"not a whisper.cpp heads initializer like '{{ {{1, 0}}, {{2, 5}} }}': {text!r}")
    inner = body[1:-1]
    pairs = [[int(l), int(h)] for l, h in _CPP_PAIR.findall(inner)]
    leftover = _CPP_PAIR.sub("", inner).replace(",", "").strip()
    if leftover or not pairs:
        raise AlignmentHeadsError(f"cannot read whisper.cpp heads {text!r}: expected '{{ {{layer, head}}, ... }}'")
    return pairs


# ---- one string, any form ----------------------------------------------------------------------------------------

_COLON_PAIRS = re.compile(r"^\s*\d+\s*:\s*\d+\s*([,;\s]\s*\d+\s*:\s*\d+\s*)*[,;]?\s*$")
_NAME_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,30}$")


def parse_colon_pairs(text: str) -> list[list[int]]:
    """Pairs from ``"1:0,2:5"`` (layer:head, separated by commas, semicolons or spaces)."""
    if not _COLON_PAIRS.match(text):
        raise AlignmentHeadsError(f"cannot read {text!r} as 'layer:head' pairs like '1:0,2:5'")
    return [[int(l), int(h)] for l, h in re.findall(r"(\d+)\s*:\s*(\d+)", text)]


def parse_pairs_text(text: str) -> list[list[int]] | None:
    """Pairs from a JSON list, a 'layer:head' list or a whisper.cpp initializer; None if ``text`` is none of those."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise AlignmentHeadsError(f"cannot read {text!r} as JSON [[layer, head], ...] pairs: {error}") from None
        return _check_pairs(value)
    if stripped.startswith("{") or "whisper_ahead" in stripped:
        return from_whisper_cpp(stripped)
    if _COLON_PAIRS.match(stripped):
        return parse_colon_pairs(stripped)
    return None


def resolve_heads(spec: str, n_text_layer: int, n_text_head: int) -> np.ndarray:
    """The mask a heads ``spec`` names, for a model with ``n_text_layer`` x ``n_text_head`` decoder heads.

    ``spec`` is, in the order tried: an official name ("tiny.en") or whisper.cpp preset ("large.v3"); a path
    to a JSON file or model folder with an ``alignment_heads`` key (HF / CTranslate2); JSON pairs
    ("[[1,0],[2,5]]"); "layer:head" pairs ("1:0,2:5"); a whisper.cpp initializer ("{ {1, 0}, {2, 5} }");
    or an openai dump.
    """
    _check_shape(n_text_layer, n_text_head)
    spec = spec.strip()
    if not spec:
        raise AlignmentHeadsError("empty alignment-heads spec")
    if is_official_name(spec):
        official = official_heads(spec)
        if official.shape != (n_text_layer, n_text_head):
            raise AlignmentHeadsError(
                f"the official heads of {official.name} are for {_shape_text(*official.shape)}, but this model has "
                f"{_shape_text(n_text_layer, n_text_head)}; pick the heads of a model of this size"
            )
        return official.mask()
    if os.path.exists(spec):
        pairs = read_json_heads(spec)
        if pairs is None:
            raise AlignmentHeadsError(
                f"{spec} has no {JSON_KEY!r} key (looked in a JSON file, or a folder's "
                f"{' / '.join(_JSON_FILES)})"
            )
        return pairs_to_mask(pairs, n_text_layer, n_text_head)
    pairs = parse_pairs_text(spec)
    if pairs is not None:
        return pairs_to_mask(pairs, n_text_layer, n_text_head)
    if _NAME_LIKE.match(spec) and not spec.startswith("ABzY8"):  # every gzip dump starts with ABzY8
        raise AlignmentHeadsError(
            _unknown_name_message(spec) + "; or give a JSON file, [[layer, head], ...] pairs, 'layer:head' pairs, "
            "a whisper.cpp '{ {layer, head}, ... }' list or an openai dump"
        )
    return decode(spec, n_text_layer, n_text_head)


# ---- display -----------------------------------------------------------------------------------------------------


def format_grid(mask: Any, on: str = "X", off: str = ".") -> str:
    """A text grid, one row per decoder layer, one column per head, alignment heads marked ``on``::

            0 1 2 3 4 5
        L0  . . . . . .
        L1  X . . . . .
    """
    array = _as_mask(mask)
    n_layers, n_heads = array.shape
    width = max(len(str(n_heads - 1)), len(on), len(off))
    label = len(f"L{n_layers - 1}")
    header = " " * label + "  " + " ".join(f"{h:>{width}}" for h in range(n_heads))
    rows = [
        f"{'L' + str(l):<{label}}  " + " ".join(f"{on if array[l, h] else off:>{width}}" for h in range(n_heads))
        for l in range(n_layers)
    ]
    return "\n".join([header.rstrip(), *rows])


__all__ = [
    "ALIGNMENT_HEADS",
    "AlignmentHeadsError",
    "JSON_KEY",
    "OfficialHeads",
    "decode",
    "encode",
    "find_json_heads_file",
    "format_grid",
    "from_whisper_cpp",
    "gunzip_dump",
    "gzip_mtime",
    "is_official_name",
    "mask_to_pairs",
    "official_heads",
    "official_matches",
    "official_shape_for_size",
    "pairs_to_mask",
    "parse_colon_pairs",
    "parse_pairs_text",
    "read_json_heads",
    "resolve_heads",
    "to_whisper_cpp",
    "whisper_cpp_preset",
    "write_json_heads",
]
