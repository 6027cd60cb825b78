"""The files beside a CTranslate2 Whisper ``model.bin`` that CTranslate2 and faster-whisper need to open it.

CTranslate2 refuses a Whisper folder without ``vocabulary.txt`` (every token a line, in id order: "Cannot load
the vocabulary from the model directory"); faster-whisper reads ``tokenizer.json`` (without it, it fetches one
from the Hugging Face hub), ``preprocessor_config.json`` for the number of mel bins (80 when absent) and, through
CTranslate2, these keys of ``config.json``: ``alignment_heads`` ([layer, head] pairs: the heads its word
timestamps use), ``lang_ids`` (language detection), ``suppress_ids`` (the tokens ``suppress_tokens=[-1]``
stands for) and ``suppress_ids_begin`` (what ``suppress_blank`` bans at a segment's start). The values computed
here are those CTranslate2's own converter writes for the official models (the tests compare them with the
bundled conversions).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..errors import ModelLoadError
from ..frontend.tokenizer import Tokenizer
from ..model.whisper import Whisper
from .tokenizers import get_tokenizer, tokenizer_file, vocabulary_tokens

SAMPLE_RATE = 16000
HOP_LENGTH = 160
N_FFT = 400


def decoding_config(tokenizer: Tokenizer) -> dict[str, list[int]]:
    """``lang_ids``, ``suppress_ids`` and ``suppress_ids_begin`` for ``config.json``.

    ``suppress_ids`` is openai-whisper's default suppression (``suppress_tokens="-1"``): the non-speech symbols
    plus the task and control tokens; ``suppress_ids_begin`` bans a blank (" ") or the end of text as a segment's
    first token.
    """
    control = {
        tokenizer.transcribe,
        tokenizer.translate,
        tokenizer.sot,
        tokenizer.sot_prev,
        tokenizer.sot_lm,
        tokenizer.no_speech,
    }
    return {
        "lang_ids": list(tokenizer.all_language_tokens),
        "suppress_ids": sorted(set(tokenizer.non_speech_tokens) | control),
        "suppress_ids_begin": [tokenizer.encode(" ")[0], tokenizer.eot],
    }


def preprocessor_config(model: Whisper) -> dict[str, int]:
    """What faster-whisper's feature extractor needs to make this model's log-mel input (mel bins, window)."""
    chunk_length = model.dims.n_audio_ctx * 2 * HOP_LENGTH // SAMPLE_RATE  # two mel frames per encoder position
    return {
        "chunk_length": chunk_length,
        "feature_size": model.dims.n_mels,
        "hop_length": HOP_LENGTH,
        "n_fft": N_FFT,
        "sampling_rate": SAMPLE_RATE,
    }


def vocabulary_text(tokens: list[str]) -> bytes:
    """``vocabulary.txt``: one token a line (byte-level BPE tokens never hold a line break)."""
    broken = [token for token in tokens if "\n" in token or "\r" in token]
    if broken:
        raise ModelLoadError(f"tokens {broken[:3]!r} hold a line break, so they cannot be listed one a line")
    return ("\n".join(tokens) + "\n").encode("utf-8")


def companion_files(model: Whisper, where: Path) -> tuple[dict[str, list[int]], dict[str, bytes | Path]]:
    """(config.json's decoding keys, {file name: bytes or a file to copy}) for a folder written at ``where``.

    A model without a Whisper tokenizer (a vocabulary of another size, or no tokenizer.json and the bundled one
    not installed) gets neither, with a warning: our :func:`~whisper_align.load_model` reads the folder, but
    CTranslate2 and faster-whisper cannot.
    """
    try:
        tokenizer = get_tokenizer(model)
        vocabulary = vocabulary_text(vocabulary_tokens(model))
        source = tokenizer_file(model)
    except ModelLoadError as exc:
        warnings.warn(
            f"{where}: no vocabulary.txt or tokenizer.json written ({exc}); whisper-align can load this folder, but "
            "CTranslate2 and faster-whisper cannot open it without them",
            stacklevel=3,
        )
        return {}, {}
    files: dict[str, bytes | Path] = {
        "vocabulary.txt": vocabulary,
        "tokenizer.json": source,
        "preprocessor_config.json": (json.dumps(preprocessor_config(model), indent=2) + "\n").encode("utf-8"),
    }
    return decoding_config(tokenizer), files


__all__ = ["companion_files", "decoding_config", "preprocessor_config", "vocabulary_text"]
