"""int8 weights (quantize.py): which layers change, how close the outputs stay, and the clear errors around it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from support import DIMS, make_model
from whisper_align.checkpoints import save_model
from whisper_align.model.int8 import Int8Linear, QuantizationError, is_quantized, quantize_int8
from whisper_align.model.layers import Linear
from whisper_align.model.whisper import Whisper

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


def test_each_row_gets_its_own_activation_scale_so_quiet_rows_keep_their_precision() -> None:
    torch.manual_seed(3)
    weight, bias = torch.randn(64, 48), torch.randn(64) * 5
    layer = Int8Linear(weight, bias)
    x = torch.randn(2, 3, 48)
    x[0, 0] *= 200.0  # one loud row (an encoder frame of a shout) beside quiet ones
    exact = torch.nn.functional.linear(x, weight, bias)
    got = layer(x)
    assert got.shape == exact.shape
    for b in range(2):
        for r in range(3):  # each row as precise as if it were quantized alone (a decoding step's case)
            alone = layer(x[b, r][None, None])[0, 0]
            error = float((got[b, r] - exact[b, r]).abs().max() / (exact[b, r] - bias).abs().max())
            assert error < 0.05, (b, r, error)  # one scale for all rows: ~100% on the quiet rows
            torch.testing.assert_close(got[b, r], alone, rtol=0, atol=0.03 * float((alone - bias).abs().max()))


def test_int8_products_do_not_overflow_at_full_scale() -> None:
    # every activation at the top of its range against weights at the top of theirs: with 8-bit activations,
    # AVX2 kernels without VNNI saturate their 16-bit pair sums (half the true value); 7-bit ones cannot
    weight, x = torch.ones(8, 384), torch.ones(4, 384)
    torch.testing.assert_close(Int8Linear(weight)(x), x @ weight.T, rtol=1e-3, atol=0)
    torch.testing.assert_close(Int8Linear(-weight)(x), -(x @ weight.T), rtol=1e-3, atol=0)


@pytest.mark.slow
def test_tiny_en_int8_transcribes_the_demo_like_float32() -> None:
    from whisper_align.checkpoints import load_model
    from whisper_align.results.evaluation import normalize_words
    from whisper_align.tasks.transcribe import transcribe

    float_result = transcribe(load_model("tiny.en"), str(DEMO), temperature=0.0, word_timestamps=True)
    int8_result = transcribe(quantize_int8(load_model("tiny.en")), str(DEMO), temperature=0.0, word_timestamps=True)
    # int8 kernels round differently on different CPUs (AVX2 vs VNNI): one word may change, no more
    float_words, int8_words = normalize_words(float_result.text), normalize_words(int8_result.text)
    assert len(float_words) == len(int8_words) > 5
    assert sum(a != b for a, b in zip(float_words, int8_words)) <= 1
    starts = np.array([[w.start, w.end] for w in float_result.words])
    ends = np.array([[w.start, w.end] for w in int8_result.words])
    assert len(starts) == len(ends) > 5
    assert float(np.median(np.abs(starts - ends))) <= 0.04  # word times move by tens of ms at most


# ---- checked int8 logits (fast_logits.py) ---------------------------------------------------------------------


def test_checked_projection_recomputes_what_could_win_and_falls_back_when_unsure() -> None:
    from whisper_align.model.int8_logits import CheckedInt8Vocabulary
    from whisper_align.model.whisper import TextDecoder

    decoder = TextDecoder(n_vocab=60, n_ctx=4, n_state=16, n_head=2, n_layer=1).requires_grad_(False)
    torch.manual_seed(1)
    weight = torch.randn(60, 16)
    decoder.token_embedding.weight.copy_(weight)
    eot = 50
    hidden = torch.randn(2, 1, 16) * 3
    exact = hidden @ weight.T
    everything = CheckedInt8Vocabulary(decoder, eot, suppressed=[3, 4], margin=1e9)
    got = everything(hidden)
    allowed = [t for t in range(eot) if t not in (3, 4)]
    torch.testing.assert_close(got[..., allowed], exact[..., allowed], rtol=0, atol=1e-5)
    torch.testing.assert_close(got[..., eot:], exact[..., eot:], rtol=0, atol=1e-5)
    assert everything.fallbacks == 0 and everything.recomputed == len(allowed)

    unsure = CheckedInt8Vocabulary(decoder, eot, suppressed=[], margin=0.0)  # any int8 error is too much
    torch.testing.assert_close(unsure(hidden), exact, rtol=0, atol=1e-5)
    assert unsure.fallbacks == unsure.steps == 1

    usual = CheckedInt8Vocabulary(decoder, eot, suppressed=[], margin=4.0)
    got = usual(hidden)
    assert torch.equal(got[..., :eot].argmax(-1), exact[..., :eot].argmax(-1))
    assert 0 < usual.recomputed < eot  # only the contenders


@pytest.mark.slow
def test_checked_int8_logits_decode_the_float32_tokens() -> None:
    from whisper_align.checkpoints import load_model
    from whisper_align.frontend.audio import load_audio, log_mel_spectrogram, pad_or_trim
    from whisper_align.tasks.decoding import DecodingError, DecodingOptions, DecodingTask

    model = load_model("tiny.en")
    mel = pad_or_trim(log_mel_spectrogram(torch.from_numpy(load_audio(str(DEMO))), model.dims.n_mels), 3000)
    with torch.no_grad():
        features = model.encoder(mel[None])
    exact = DecodingTask(model, DecodingOptions()).run(features)[0]
    task = DecodingTask(model, DecodingOptions(checked_int8_logits=True))
    checked = task.run(features)[0]
    assert checked.tokens == exact.tokens and len(exact.tokens) > 10
    assert task.fast_projection is not None and task.fast_projection.steps >= len(exact.tokens)
    assert task.fast_projection.fallbacks == 0
    assert checked.avg_logprob == pytest.approx(exact.avg_logprob, abs=5e-3)
    with pytest.raises(DecodingError, match="greedy"):
        DecodingTask(model, DecodingOptions(checked_int8_logits=True, beam_size=2))


@pytest.mark.slow
def test_cli_fast_logits_writes_the_float32_transcript(tmp_path: Path) -> None:
    from whisper_align.cli import main

    texts = []
    for flags in ([], ["--fast-logits"]):
        out = tmp_path / str(len(flags))
        assert main(["transcribe", str(DEMO), "-f", "txt", "-o", str(out), *flags]) == 0
        texts.append((out / "demo.txt").read_text())
    assert texts[0] == texts[1] and "weather" in texts[0]
