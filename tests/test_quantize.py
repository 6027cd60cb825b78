"""int8 weights (quantize.py): which layers change, how close the outputs stay, and the clear errors around it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from whisper_align.checkpoints import save_model
from whisper_align.model import Linear, Whisper
from whisper_align.quantize import Int8Linear, QuantizationError, is_quantized, quantize_int8

from test_model import DIMS, make_model

DEMO = Path(__file__).resolve().parents[1] / "samples" / "demo.wav"


def test_every_linear_layer_and_the_vocabulary_projection_become_int8() -> None:
    model = make_model(seed=5)
    n_linear = sum(isinstance(m, Linear) for m in model.modules())
    heads = model.alignment_head_pairs()
    quantize_int8(model)
    assert sum(isinstance(m, Linear) for m in model.modules()) == 0
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == n_linear + 1  # + the vocabulary projection
    assert is_quantized(model) and model.alignment_head_pairs() == heads
    assert quantize_int8(model) is model  # a second call changes nothing
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == n_linear + 1


def test_int8_logits_stay_close_to_float32() -> None:
    torch.manual_seed(0)
    mel = torch.randn(2, DIMS.n_mels, 2 * DIMS.n_audio_ctx)
    tokens = torch.randint(0, DIMS.n_vocab, (2, 6))
    with torch.no_grad():
        expected = make_model(seed=6)(mel, tokens)
        got = quantize_int8(make_model(seed=6))(mel, tokens)
    assert got.shape == expected.shape and got.dtype == torch.float32
    spread = float(expected.max() - expected.min())
    error = float((got - expected).abs().max())
    assert 0 < error < 0.05 * spread  # changed (so int8 really ran), but only a little
    agree = float((got.argmax(-1) == expected.argmax(-1)).float().mean())
    assert agree >= 0.9


def test_quantizing_off_the_cpu_and_saving_an_int8_model_fail_clearly(tmp_path: Path) -> None:
    with torch.device("meta"):
        meta_model = Whisper(DIMS)
    with pytest.raises(QuantizationError, match="CPU only"):
        quantize_int8(meta_model)
    model = quantize_int8(make_model(seed=7))
    with pytest.raises(ValueError, match="int8 weights"):
        save_model(model, tmp_path / "m.pt")


@pytest.mark.slow
def test_tiny_en_int8_transcribes_the_demo_like_float32() -> None:
    from whisper_align.checkpoints import load_model
    from whisper_align.evaluation import normalize_words
    from whisper_align.transcriber import transcribe

    float_result = transcribe(load_model("tiny.en"), str(DEMO), temperature=0.0, word_timestamps=True)
    int8_result = transcribe(quantize_int8(load_model("tiny.en")), str(DEMO), temperature=0.0, word_timestamps=True)
    assert normalize_words(int8_result.text) == normalize_words(float_result.text)
    starts = np.array([[w.start, w.end] for w in float_result.words])
    ends = np.array([[w.start, w.end] for w in int8_result.words])
    assert len(starts) == len(ends) > 5
    assert float(np.median(np.abs(starts - ends))) <= 0.04  # word times move by tens of ms at most
