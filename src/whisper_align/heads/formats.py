"""Alignment heads in the forms other tools use, and one reader for any of them.

* Hugging Face's ``generation_config.json`` and CTranslate2's ``config.json`` (``alignment_heads``: pairs);
* whisper.cpp's C initializer of ``whisper_ahead`` structs, ``{ {1, 0}, {2, 0}, ... }``, and its ``-dtw`` presets;
* :func:`resolve_heads` reads an official name, a dump, pairs, ``layer:head`` text or a file from one string
  (what every CLI ``--heads`` option takes); :func:`format_grid` draws a mask.

Every reader takes untrusted input and returns a checked result or raises :class:`AlignmentHeadsError`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AlignmentHeadsError
from ..files import replacing
from .codec import (
    _WHISPER_CPP_PRESETS,
    _as_mask,
    _brief,
    _check_pairs,
    _check_shape,
    _shape_text,
    _unknown_name_message,
    decode,
    is_official_name,
    official_heads,
    pairs_to_mask,
)

# ---- Hugging Face / CTranslate2 JSON ----------------------------------------------------------------------------

JSON_KEY = "alignment_heads"
# in a folder: Hugging Face keeps the heads in generation_config.json, CTranslate2 in config.json
_JSON_FILES = ("generation_config.json", "config.json")


def find_json_heads_file(folder: str | os.PathLike[str]) -> Path | None:
    """The JSON file in a model folder that has an ``alignment_heads`` key, if any."""
    for name in _JSON_FILES:
        path = _as_path(folder, "a model folder") / name
        if path.is_file() and read_json_heads(path) is not None:
            return path
    return None


def _as_path(source: Any, what: str) -> Path:
    if not isinstance(source, (str, os.PathLike)):
        raise AlignmentHeadsError(f"{what} must be a path (str or os.PathLike), got {type(source).__name__}")
    return Path(source)


def _load_json(text: str | bytes, where: str) -> Any:
    """``json.loads``, with every way it fails (syntax, nesting too deep, a 5000-digit number) as one error."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise AlignmentHeadsError(f"{where} is not valid JSON: {str(error)[:200]}") from None


def _read_json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the path
        raise AlignmentHeadsError(f"cannot {what} {path}: {getattr(error, 'strerror', None) or error}") from None
    config = _load_json(data, str(path))
    if not isinstance(config, dict):
        raise AlignmentHeadsError(f"{path} holds a JSON {type(config).__name__}, not an object")
    return config


def read_json_heads(source: str | os.PathLike[str] | Mapping[str, Any]) -> list[list[int]] | None:
    """The ``alignment_heads`` pairs of a HF ``generation_config.json`` / CTranslate2 ``config.json``.

    ``source`` is the parsed dict, the file, or a model folder (generation_config.json, then config.json).
    Returns None when there is no such key (or it is null); a malformed file or value is an error.
    """
    if isinstance(source, Mapping):
        config: Mapping[str, Any] = source
        where = "the config"
    else:
        path = _as_path(source, "the heads source")
        if path.is_dir():
            found = find_json_heads_file(path)
            if found is None:
                return None
            path = found
        where = str(path)
        config = _read_json_object(path, "read")
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
    path = _as_path(path, "the JSON file to write")
    config: dict[str, Any] = {}
    if path.exists():
        try:
            config = _read_json_object(path, "update")
        except AlignmentHeadsError as error:
            raise AlignmentHeadsError(f"cannot update {path}: not a readable JSON object ({error})") from None
    config[JSON_KEY] = checked
    text = json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    try:
        _write_atomically(path, text)
    except (OSError, ValueError) as error:
        raise AlignmentHeadsError(f"cannot write {path}: {getattr(error, 'strerror', None) or error}") from None


def _write_atomically(path: Path, text: str) -> None:
    with replacing(path) as temp:
        temp.write_text(text, encoding="utf-8")


# ---- whisper.cpp -------------------------------------------------------------------------------------------------


def whisper_cpp_preset(name: str) -> str:
    """whisper.cpp's ``-dtw`` preset name for an official model name, e.g. "large-v2" -> "large.v2".

    whisper.cpp's command-line tools (``whisper-cli``, ``whisper-server``) take ``-dtw PRESET`` and set
    ``whisper_context_params.dtw_aheads_preset`` to the matching ``WHISPER_AHEADS_*`` enum value; its presets
    hold the same heads as openai's dumps.
    """
    if not isinstance(name, str):
        raise AlignmentHeadsError(f"a model name must be a str, got {type(name).__name__}")
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


def _require_text(text: Any, what: str) -> str:
    if not isinstance(text, str):
        raise AlignmentHeadsError(f"{what} must be a str, got {type(text).__name__}")
    return text


def _index(digits: str) -> int:
    """A layer or head number written in text; refuses numbers far past any decoder (and Python's 4300-digit cap)."""
    if len(digits.lstrip("-")) > 30:
        raise AlignmentHeadsError(f"the layer or head number {digits[:20]}... ({len(digits)} digits) is far too large")
    return int(digits)


def from_whisper_cpp(text: str) -> list[list[int]]:
    """Pairs from whisper.cpp's ``{ {layer, head}, ... }`` initializer (see :func:`to_whisper_cpp`).

    A whole declaration (``static const whisper_ahead x[] = { ... };``) is accepted too.
    """
    body = _require_text(text, "whisper.cpp heads").strip().rstrip(";").strip()
    if "=" in body:
        body = body.split("=", 1)[1].strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise AlignmentHeadsError(
            f"not a whisper.cpp heads initializer like '{{ {{1, 0}}, {{2, 5}} }}': {_brief(text)}"
        )
    inner = body[1:-1]
    pairs = [[_index(l), _index(h)] for l, h in _CPP_PAIR.findall(inner)]
    leftover = _CPP_PAIR.sub("", inner).replace(",", "").strip()
    if leftover or not pairs:
        raise AlignmentHeadsError(
            f"cannot read whisper.cpp heads {_brief(text)}: expected '{{ {{layer, head}}, ... }}'"
        )
    return pairs


# ---- one string, any form ----------------------------------------------------------------------------------------

_PAIR_TEXT = r"\d+\s*:\s*\d+"
# "1:0,2:5", "1:0 2:5", "1 : 0; 2 : 5,". Written so that no two quantifiers can share the same characters (each
# separator is either some space around one comma/semicolon, or space alone), which keeps a failing match linear
# in the text's length instead of quadratic. Used with fullmatch.
_COLON_PAIRS = re.compile(rf"\s*{_PAIR_TEXT}(?:(?:\s*[,;]\s*|\s+){_PAIR_TEXT})*(?:\s*[,;])?\s*")
_NAME_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,30}$")


def parse_colon_pairs(text: str) -> list[list[int]]:
    """Pairs from ``"1:0,2:5"`` (layer:head, separated by commas, semicolons or spaces)."""
    if not _COLON_PAIRS.fullmatch(_require_text(text, "'layer:head' pairs")):
        raise AlignmentHeadsError(f"cannot read {_brief(text)} as 'layer:head' pairs like '1:0,2:5'")
    return [[_index(l), _index(h)] for l, h in re.findall(r"(\d+)\s*:\s*(\d+)", text)]


def parse_pairs_text(text: str) -> list[list[int]] | None:
    """Pairs from a JSON list, a 'layer:head' list or a whisper.cpp initializer; None if ``text`` is none of those."""
    stripped = _require_text(text, "alignment-heads pairs").strip()
    if stripped.startswith("["):
        value = _load_json(stripped, f"{_brief(text)} (JSON [[layer, head], ...] pairs)")
        return _check_pairs(value)
    if stripped.startswith("{") or "whisper_ahead" in stripped:
        return from_whisper_cpp(stripped)
    if _COLON_PAIRS.fullmatch(stripped):
        return parse_colon_pairs(stripped)
    return None


def resolve_heads(spec: str, n_text_layer: int, n_text_head: int) -> np.ndarray:
    """The mask a heads ``spec`` names, for a model with ``n_text_layer`` x ``n_text_head`` decoder heads.

    ``spec`` is, in the order tried: an official name ("tiny.en") or whisper.cpp preset ("large.v3"); a path
    to a JSON file or model folder with an ``alignment_heads`` key (HF / CTranslate2); JSON pairs
    ("[[1,0],[2,5]]"); "layer:head" pairs ("1:0,2:5"); a whisper.cpp initializer ("{ {1, 0}, {2, 5} }");
    or an openai dump.
    """
    n_text_layer, n_text_head = _check_shape(n_text_layer, n_text_head)
    spec = _require_text(spec, "an alignment-heads spec").strip()
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
                f"{spec} has no {JSON_KEY!r} key (looked in a JSON file, or a folder's {' / '.join(_JSON_FILES)})"
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
    if not (isinstance(on, str) and isinstance(off, str)):
        raise AlignmentHeadsError(f"the grid's marks must be str, got {type(on).__name__} and {type(off).__name__}")
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
