"""The official alignment heads, and alignment heads as a mask, a dump and pairs, with the conversions between them.

The official heads: openai's dumps for the 14 model names, each family's decoder shape, and whisper.cpp's
preset names for them. The forms:

* **mask**: a bool numpy array of shape (layers, heads), True at an alignment head. The form everything
  converts through.
* **dump**: openai's compact form, ``base85(gzip(mask.tobytes()))`` (``whisper/__init__.py``'s
  ``_ALIGNMENT_HEADS``, decoded by ``Whisper.set_alignment_heads``). See :func:`decode` and :func:`encode`.
* **pairs**: ``[[layer, head], ...]``, the form of Hugging Face's and CTranslate2's configs.

Every reader here takes untrusted input: whatever it is given, it returns a checked result or raises
:class:`AlignmentHeadsError`, and its memory stays bounded by the decoder's shape (a dump is inflated to at most
layers x heads bytes plus a small margin, never further). Imports only ``errors`` of the package; no torch.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import gzip
import io
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import AlignmentHeadsError

# Bounds on a decoder's shape: far above any Whisper's (32 layers x 20 heads), yet a mask of layers x heads bytes
# stays small; everything a reader may allocate follows from them.
MAX_TEXT_LAYERS = 1024
MAX_TEXT_HEADS = 1024
# Bytes a dump may inflate to beyond the layers x heads it needs: enough to name the size of a dump made for
# another model (every official size fits), far too few to matter for memory.
_SIZE_MARGIN = 4096
# Largest layer or head number a list of pairs may hold before a shape is known (to_whisper_cpp, the JSON
# writer): anything past it cannot index a decoder, and cannot be printed once past 4300 digits.
_MAX_INDEX = 2**31 - 1


def _brief(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for quoting untrusted input in a message (never raises)."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a huge int (over 4300 digits) or a broken __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    if not isinstance(name, str):
        raise AlignmentHeadsError(f"a model name must be a str, got {type(name).__name__}")
    if name in ALIGNMENT_HEADS:
        return ALIGNMENT_HEADS[name]
    for official, preset in _WHISPER_CPP_PRESETS.items():  # a whisper.cpp preset name such as "large.v3"
        if name == preset:
            return ALIGNMENT_HEADS[official]
    raise AlignmentHeadsError(_unknown_name_message(name))


def is_official_name(name: object) -> bool:
    """True for the 14 official names and whisper.cpp's preset names for them ("large.v3"); False for anything else."""
    return isinstance(name, str) and (name in ALIGNMENT_HEADS or name in _WHISPER_CPP_PRESETS.values())


def _unknown_name_message(name: str) -> str:
    close = difflib.get_close_matches(name[:64].lower(), list(ALIGNMENT_HEADS), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown model name {_brief(name)}.{hint} Official names: {', '.join(ALIGNMENT_HEADS)}"


def official_matches(mask: Any) -> list[str]:
    """Names of the official models whose heads are exactly ``mask`` (same shape, same heads)."""
    try:
        array = _as_mask(mask)
    except AlignmentHeadsError:
        return []  # not a usable mask (e.g. no head set), so no official model's
    return [o.name for o in ALIGNMENT_HEADS.values() if o.shape == array.shape and np.array_equal(o.mask(), array)]


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


def _check_shape(n_text_layer: Any, n_text_head: Any) -> tuple[int, int]:
    """The layer and head counts as ints, or an :class:`AlignmentHeadsError` unless both are in 1..their bound."""
    checked = []
    bounds = (("n_text_layer", n_text_layer, MAX_TEXT_LAYERS), ("n_text_head", n_text_head, MAX_TEXT_HEADS))
    for what, value, bound in bounds:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 1 <= value <= bound:
            raise AlignmentHeadsError(
                f"{what} must be a positive integer (at most {bound}), got {_brief(value)}; pass the decoder's "
                "shape (ModelDimensions.n_text_layer, .n_text_head)"
            )
        checked.append(int(value))
    return checked[0], checked[1]


def _dump_bytes(dump: Any) -> bytes:
    """A dump's base85 text as stripped bytes: from bytes-like data, or from a str (which must be ASCII)."""
    if isinstance(dump, str):
        try:
            return dump.strip().encode("ascii")
        except UnicodeEncodeError as error:
            raise AlignmentHeadsError(f"the alignment-heads dump is not base85 text: {error}") from None
    if isinstance(dump, (bytes, bytearray, memoryview)):
        return bytes(dump).strip()
    raise AlignmentHeadsError(
        f"an alignment-heads dump must be bytes or a str of base85 text (as in openai-whisper's _ALIGNMENT_HEADS), "
        f"got {type(dump).__name__}"
    )


def _b85decode_dump(dump: Any, max_size: int) -> bytes:
    """The gzip bytes under a dump, refusing dumps longer than any gzip of ``max_size`` bytes needs to be."""
    data = _dump_bytes(dump)
    if not data:
        raise AlignmentHeadsError("the alignment-heads dump is empty")
    # deflate never grows data by more than 5 bytes a 64 KiB block and gzip adds 18: twice the size plus 1 KiB
    # leaves room for any sane header, in base85's 5 characters per 4 bytes
    longest = (2 * max_size + 1024) * 5 // 4 + 5
    if len(data) > longest:
        raise AlignmentHeadsError(
            f"the alignment-heads dump is {len(data)} characters long, more than a dump of at most {max_size} heads "
            f"can need ({longest}); it is not an alignment-heads dump, or not one for this model"
        )
    try:
        return base64.b85decode(data)
    except (ValueError, binascii.Error) as error:
        raise AlignmentHeadsError(f"the alignment-heads dump is not valid base85 ({error})") from None


def _inflate(compressed: bytes, max_size: int) -> bytes:
    """gunzip ``compressed`` (every member, as ``gzip.decompress``), stopping after ``max_size + 1`` bytes.

    Streaming through :class:`gzip.GzipFile` keeps memory at the size asked for, whatever the data would
    inflate to; a result longer than ``max_size`` means the data holds more than that. When the result is
    shorter, the stream was read to its end, so every member's CRC and length were checked.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(compressed), mode="rb") as stream:
            return stream.read(max_size + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise AlignmentHeadsError(
            f"the alignment-heads dump is base85 but not gzip data ({error or type(error).__name__}); "
            "a dump is base85(gzip(bool array bytes)) as in openai-whisper's _ALIGNMENT_HEADS"
        ) from None


def gunzip_dump(dump: bytes | str, max_size: int | None = None) -> bytes:
    """base85-decode and gunzip a dump (steps 1-2 of :func:`decode`), with a clear error for either failing.

    At most ``max_size`` bytes come out (default: the largest decoder this module accepts,
    ``MAX_TEXT_LAYERS x MAX_TEXT_HEADS``); a dump holding more is refused without inflating the rest.
    """
    limit = MAX_TEXT_LAYERS * MAX_TEXT_HEADS if max_size is None else max_size
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise AlignmentHeadsError(f"max_size must be a positive integer, got {_brief(max_size)}")
    raw = _inflate(_b85decode_dump(dump, limit), limit)
    if len(raw) > limit:
        raise AlignmentHeadsError(
            f"the alignment-heads dump inflates to more than {limit} bytes, more than any decoder's heads "
            "(one byte a head); it is not an alignment-heads dump"
        )
    return raw


def gzip_mtime(dump: bytes | str) -> int:
    """The modification time recorded in a dump's gzip header (bytes 4-8, little-endian)."""
    raw = _b85decode_dump(dump, MAX_TEXT_LAYERS * MAX_TEXT_HEADS)
    if len(raw) < 10 or raw[:2] != b"\x1f\x8b":
        raise AlignmentHeadsError("the alignment-heads dump does not start with a gzip header")
    return struct.unpack("<I", raw[4:8])[0]


def decode(dump: bytes | str, n_text_layer: int, n_text_head: int) -> np.ndarray:
    """Decode openai's dump into a bool mask of shape (n_text_layer, n_text_head).

    The steps of ``Whisper.set_alignment_heads``: b85decode -> gzip.decompress -> frombuffer(bool) -> reshape,
    each checked, so a bad dump fails with an :class:`AlignmentHeadsError` that names the problem and the shape
    (never a silently wrong mask: numpy would happily read byte 2 as True, or reshape a wrong-sized buffer
    that happens to divide). ``dump`` is bytes or ASCII text; the gzip data is inflated no further than the
    layers x heads bytes the mask needs (plus a small margin), so a gzip bomb costs nothing.
    """
    n_text_layer, n_text_head = _check_shape(n_text_layer, n_text_head)
    shape_text = _shape_text(n_text_layer, n_text_head)
    expected = n_text_layer * n_text_head
    limit = expected + _SIZE_MARGIN
    raw = _inflate(_b85decode_dump(dump, limit), limit)
    if len(raw) != expected:
        raise AlignmentHeadsError(_size_message(len(raw), limit, n_text_layer, n_text_head))
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


def _size_message(size: int, limit: int, n_text_layer: int, n_text_head: int) -> str:
    """Why a dump of ``size`` bytes (``limit + 1``: more than ``limit``) does not fit the decoder."""
    expected = n_text_layer * n_text_head
    if size > limit:
        held, fits_text = f"more than {limit}", "; no official model has so many"
    else:
        fits = _official_sizes(size)
        held = str(size)
        fits_text = f"; {size} heads fit the official models {fits}" if fits else "; no official model has so many"
    return (
        f"the alignment-heads dump holds {held} bytes, but a model with {_shape_text(n_text_layer, n_text_head)} "
        f"needs {n_text_layer}*{n_text_head} = {expected}{fits_text}. Was the dump made for another model?"
    )


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
    if array.shape[0] > MAX_TEXT_LAYERS or array.shape[1] > MAX_TEXT_HEADS:
        raise AlignmentHeadsError(
            f"the alignment-heads mask of shape {array.shape} is larger than any decoder this library handles "
            f"({MAX_TEXT_LAYERS} layers x {MAX_TEXT_HEADS} heads)"
        )
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
        raise AlignmentHeadsError(f"the gzip mtime must be an integer in [0, 2**32), got {_brief(mtime)}")
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
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return None


def _check_pairs(pairs: Any) -> list[list[int]]:
    """``pairs`` as a list of [layer, head] ints, or an :class:`AlignmentHeadsError` saying what is malformed.

    Pairs are a list (any iterable but a string or mapping; or an (n, 2) array) of 2-item lists, tuples or
    arrays of integers; integral floats pass (JSON writers may emit ``1.0``), booleans do not.
    """
    if isinstance(pairs, np.ndarray):
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise AlignmentHeadsError(f"an array of alignment heads must have shape (n, 2), got {pairs.shape}")
    elif isinstance(pairs, (str, bytes, bytearray, Mapping)) or not isinstance(pairs, Iterable):
        raise AlignmentHeadsError(f"alignment heads must be a list of [layer, head] pairs, got {type(pairs).__name__}")
    checked = []
    for item in pairs:
        values = list(item) if isinstance(item, (list, tuple)) or _is_vector(item) else None
        ints = [_as_int(v) for v in values] if values is not None else None
        layer, head = ints if ints is not None and len(ints) == 2 else (None, None)
        if layer is None or head is None:
            raise AlignmentHeadsError(
                f"each alignment head must be a [layer, head] pair of integers, got {_brief(item)}"
            )
        if not all(-_MAX_INDEX <= v <= _MAX_INDEX for v in (layer, head)):
            raise AlignmentHeadsError(f"the alignment head {_brief(item)} is far outside any decoder")
        checked.append([layer, head])
    if not checked:
        raise AlignmentHeadsError("the list of alignment heads is empty; give at least one [layer, head] pair")
    return checked


def _is_vector(item: Any) -> bool:
    return isinstance(item, np.ndarray) and item.ndim == 1


def pairs_to_mask(pairs: Any, n_text_layer: int, n_text_head: int) -> np.ndarray:
    """A bool (n_text_layer, n_text_head) mask with the given ``[[layer, head], ...]`` set (duplicates are fine)."""
    n_text_layer, n_text_head = _check_shape(n_text_layer, n_text_head)
    checked = _check_pairs(pairs)
    bad = [p for p in checked if not (0 <= p[0] < n_text_layer and 0 <= p[1] < n_text_head)]
    if bad:
        raise AlignmentHeadsError(
            f"alignment heads {_brief(bad[:5], 200)} are outside this model's decoder "
            f"({_shape_text(n_text_layer, n_text_head)}: layers 0-{n_text_layer - 1}, heads 0-{n_text_head - 1}); "
            "were they made for another model?"
        )
    mask = np.zeros((n_text_layer, n_text_head), dtype=bool)
    for layer, head in checked:
        mask[layer, head] = True
    return mask
