"""Paths the tests share: the repository, the bundled samples and the labelled evaluation data.

The evaluation data lives outside the repository (``../shared/eval`` beside the checkout, or wherever
``WHISPER_ALIGN_EVAL`` points); it is never copied in.
"""

from __future__ import annotations

import json
import os
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from whisper_align.model.whisper import ModelDimensions, Whisper
from whisper_align.results.manifest import Utterance

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DEMO_WAV = SAMPLES / "demo.wav"
EVAL = Path(os.environ.get("WHISPER_ALIGN_EVAL") or ROOT.parent / "shared" / "eval").resolve()
TIMIT_DIR = EVAL / "timit-dev"
TIMIT = TIMIT_DIR / "manifest.jsonl"
FESTIVAL = EVAL / "festival" / "manifest.jsonl"

needs_eval = pytest.mark.skipif(not TIMIT.is_file(), reason=f"the evaluation data is not at {EVAL}")

# A small random-weight Whisper for unit tests (tests/test_model.py, tests/test_quantize.py).
DIMS = ModelDimensions(
    n_mels=8,
    n_audio_ctx=10,
    n_audio_state=32,
    n_audio_head=4,
    n_audio_layer=2,
    n_vocab=60,
    n_text_ctx=16,
    n_text_state=32,
    n_text_head=4,
    n_text_layer=4,
)


def make_model(seed: int = 0) -> Whisper:
    torch.manual_seed(seed)
    model = Whisper(DIMS).eval()
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(std=0.1)  # created empty, as in openai-whisper
        for name, p in model.named_parameters():  # LayerNorms start at 1/0; randomise them so every weight matters
            if "ln" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


# A small random-weight Whisper with a real window (80 mels, 1500 positions) and vocabulary, for tests that
# run the tokenizer and whole windows without the cost of real weights.
WINDOW_DIMS = ModelDimensions(
    n_mels=80,
    n_audio_ctx=1500,
    n_audio_state=16,
    n_audio_head=2,
    n_audio_layer=1,
    n_vocab=51864,
    n_text_ctx=64,
    n_text_state=16,
    n_text_head=4,
    n_text_layer=2,
)


def make_window_model(seed: int = 0) -> Whisper:
    torch.manual_seed(seed)
    model = Whisper(WINDOW_DIMS).eval()
    with torch.no_grad():
        model.decoder.positional_embedding.normal_()
    return model


def write_manifest(path: Path, clips: Sequence[Utterance], texts: dict[str, str] | None = None) -> Path:
    """A corpus manifest of ``clips`` in their order at ``path`` (``texts`` replaces some clips' transcripts)."""
    texts = texts or {}
    lines = [json.dumps({"id": u.id, "audio": str(u.audio), "text": texts.get(u.id, u.text)}) for u in clips]
    path.write_text("\n".join(lines) + "\n")
    return path


def wav_ints(path: Path) -> np.ndarray:
    """A 16-bit WAV's samples exactly as its bytes hold them (no repair, no scaling)."""
    with wave.open(str(path)) as f:
        return np.frombuffer(f.readframes(f.getnframes()), "<i2")
