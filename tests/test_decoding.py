"""Decoding one window: Whisper's logit rules, greedy/beam search parity with openai-whisper, attention capture.

The capture tests check the one thing openai-whisper cannot: that the alignment-head rows kept while decoding
(following the chosen beam through every reorder) are exactly the rows a fresh teacher-forced pass over the
chosen tokens gives, and so can replace that second pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch

import support
from whisper_align.model.whisper import ModelDimensions, Whisper
from whisper_align.tasks.decoding import DecodingError, DecodingOptions, compression_ratio, decode, detect_language
from whisper_align.tasks.decoding_rules import ApplyTimestampRules, SuppressBlank, SuppressTokens, suppressed_tokens

EVAL = support.TIMIT_DIR
CLIP = EVAL / "audio" / "dr1-fvmh0" / "sa2.wav"  # "Don't ask me to carry an oily rag like that."


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Decoding is hundreds of tiny ops: one thread avoids OpenMP hand-offs that dominate on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- the logit rules on a toy vocabulary: text 0..7, EOT 8, no-timestamps 9, timestamps 10..19 ----------------

EOT, NO_TS, TS = 8, 9, 10


def rules(sample_begin: int = 1, max_initial: int | None = 2) -> ApplyTimestampRules:
    return ApplyTimestampRules(TS, EOT, NO_TS, sample_begin, max_initial)


def allowed(rule, sampled: list[int], logits: torch.Tensor | None = None) -> list[int]:
    logits = torch.zeros(1, 20) if logits is None else logits.clone()
    rule.apply(logits, torch.tensor([[50] + sampled]))  # one initial token (id irrelevant)
    return torch.nonzero(torch.isfinite(logits[0])).flatten().tolist()


def test_first_token_is_an_early_timestamp():
    assert allowed(rules(max_initial=2), []) == [10, 11, 12]
    assert allowed(rules(max_initial=None), []) == list(range(10, 20))


def test_timestamps_come_in_pairs_and_never_decrease():
    # after a closed pair: text or EOT, no timestamp
    assert allowed(rules(), [10, 3, 13, 13]) == list(range(9))
    # a lone timestamp after text: EOT, or a timestamp no earlier than it (EOT made likely, so that the
    # "timestamps together outweigh text" rule stays out of the way)
    likely_eot = torch.zeros(1, 20)
    likely_eot[0, EOT] = 5.0
    assert allowed(rules(), [10, 3, 13], likely_eot) == [EOT] + list(range(13, 20))
    # text after timestamps: text, EOT, or a strictly later timestamp (segments have nonzero length)
    likely_text = torch.zeros(1, 20)
    likely_text[0, 2] = 5.0
    assert allowed(rules(), [10, 3, 13, 13, 4], likely_text) == list(range(9)) + list(range(14, 20))
    # <|notimestamps|> never
    assert NO_TS not in allowed(rules(), [10, 3], likely_text)


def test_timestamp_forced_when_their_total_probability_wins():
    logits = torch.zeros(1, 20)
    logits[0, 2] = 2.0  # the best single token is text (e^2 = 7.4), but nine timestamps together weigh 9
    assert allowed(rules(), [10, 3], logits) == list(range(11, 20))
    logits[0, 2] = 6.0  # now the text token beats all timestamps together
    assert 2 in allowed(rules(), [10, 3], logits)


def test_suppress_blank_and_tokens():
    logits = torch.zeros(2, 20)
    SuppressBlank([5, EOT], sample_begin=1).apply(logits, torch.tensor([[50], [50]]))
    assert torch.isinf(logits[:, [5, EOT]]).all() and torch.isfinite(logits[:, :5]).all()
    logits = torch.zeros(1, 20)
    SuppressBlank([5, EOT], sample_begin=1).apply(logits, torch.tensor([[50, 3]]))  # only at the first position
    assert torch.isfinite(logits).all()
    SuppressTokens([1, 2]).apply(logits, torch.tensor([[50]]))
    assert torch.isinf(logits[0, [1, 2]]).all()


def test_suppressed_token_spec():
    assert suppressed_tokens("-1", [7, 5], [None, 30]) == (5, 7, 30)
    assert suppressed_tokens("1, 2", [7], [30]) == (1, 2, 30)
    assert suppressed_tokens([4, -1], [7], []) == (4, 7)
    assert suppressed_tokens("", [7], [30]) == (30,)
    with pytest.raises(DecodingError, match="comma-separated"):
        suppressed_tokens("a,b", [], [])


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(beam_size=2, best_of=2), "cannot be given together"),
        (dict(best_of=2), "needs sampling"),
        (dict(patience=2.0), "give beam_size"),
        (dict(beam_size=2, length_penalty=2.0), "between 0 and 1"),
        (dict(task="summarise"), "unknown"),
        (dict(beam_size=0), "at least 1"),
    ],
)
def test_bad_options_are_typed_errors(random_model, options, message):
    with pytest.raises(DecodingError, match=message):
        decode(random_model, torch.zeros(80, 200), DecodingOptions(**options))


def test_compression_ratio_flags_repetition():
    assert compression_ratio("the cat sat on the mat") < 1.5
    assert compression_ratio("la " * 200) > 2.4
    assert compression_ratio("") == 0.0


# ---- a small random model: parity with openai-whisper and capture consistency ----------------------------------


def make_random_model(seed: int = 0, std: float = 0.3) -> Whisper:
    torch.manual_seed(seed)
    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=100,
        n_audio_state=64,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=51864,
        n_text_ctx=448,
        n_text_state=64,
        n_text_head=4,
        n_text_layer=2,
    )
    model = Whisper(dims)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    model.set_alignment_head_pairs([[0, 1], [1, 0], [1, 3]])
    return model.eval()


def openai_copy(model: Whisper):
    whisper = pytest.importorskip("whisper")
    reference = whisper.model.Whisper(whisper.model.ModelDimensions(**asdict(model.dims)))
    reference.load_state_dict({k: v for k, v in model.state_dict().items() if k != "alignment_heads"})
    return reference.eval()


@pytest.fixture(scope="module")
def random_model() -> Whisper:
    return make_random_model()


def teacher_forced(model: Whisper, mel: torch.Tensor, tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Alignment-head scores (heads, T, S) and logits (T, vocab) of one cache-free pass over ``tokens``."""
    features = model.embed_audio(mel[None])
    logits, scores = model.decoder(torch.tensor([tokens]), features, qk_heads=model.alignment_heads_by_layer())
    return torch.cat([scores[layer] for layer in sorted(scores)], dim=1)[0], logits[0]


@pytest.mark.parametrize(
    "options",
    [
        dict(),  # greedy
        dict(beam_size=3),
        dict(beam_size=2, patience=2.0, length_penalty=0.5),
        dict(prompt=[300, 301, 302], prefix=" Hello"),
        dict(without_timestamps=True),
    ],
    ids=["greedy", "beam3", "beam2-patience", "prompt-prefix", "no-timestamps"],
)
def test_random_model_matches_openai_and_capture_equals_a_second_pass(random_model, options):
    whisper = pytest.importorskip("whisper")
    torch.manual_seed(1)
    mel = torch.randn(80, 200)
    ours = decode(random_model, mel, DecodingOptions(sample_len=16, capture_attention=True, **options))
    theirs = whisper.decode(
        openai_copy(random_model), mel, whisper.DecodingOptions(sample_len=16, language="en", fp16=False, **options)
    )
    assert ours.tokens == theirs.tokens
    assert ours.avg_logprob == pytest.approx(theirs.avg_logprob, abs=1e-4)
    assert ours.no_speech_prob == pytest.approx(theirs.no_speech_prob, abs=1e-5)

    sequence = list(ours.initial_tokens) + ours.tokens
    qk, logits = teacher_forced(random_model, mel, sequence)
    assert ours.attention is not None and ours.attention.shape == (3, len(sequence), 100)
    torch.testing.assert_close(ours.attention, qk, atol=2e-4, rtol=1e-4)
    # each token's probability among text tokens, from the row that predicted it
    start = len(ours.initial_tokens)
    for i, token in enumerate(ours.tokens):
        expected = logits[start + i - 1, :50256].softmax(-1)[token].item() if token < 50256 else math.nan
        assert ours.text_token_probs[i] == pytest.approx(expected, rel=1e-3, abs=1e-7, nan_ok=True)


@pytest.mark.parametrize(
    "options",
    [
        dict(prefix=" Hello there"),
        dict(prefix=[1, 2, 3], sample_len=220),
        dict(prompt="A long story." * 60),
        dict(prompt=[5, 6], prefix="Hi", without_timestamps=True),
    ],
)
def test_initial_tokens_match_openai(random_model, options):
    whisper = pytest.importorskip("whisper")
    from whisper_align.tasks.decoding import DecodingTask

    ours = DecodingTask(random_model, DecodingOptions(**options)).initial_tokens
    theirs = whisper.decoding.DecodingTask(openai_copy(random_model), whisper.DecodingOptions(language="en", **options))
    assert ours == theirs.initial_tokens


def test_capture_is_off_by_default_and_batches_work(random_model):
    torch.manual_seed(2)
    mels = torch.randn(2, 80, 200)
    results = decode(random_model, mels, DecodingOptions(sample_len=8))
    assert isinstance(results, list) and len(results) == 2
    assert all(r.attention is None for r in results)
    single = decode(random_model, mels[1], DecodingOptions(sample_len=8))
    assert single.tokens == results[1].tokens


@pytest.mark.parametrize("options", [dict(), dict(beam_size=3)], ids=["greedy", "beam3"])
def test_capturing_attention_does_not_change_a_single_logit(random_model, options):
    """Word timestamps must not change the transcript: with capture on, every step runs the same arithmetic."""
    torch.manual_seed(3)
    mel = torch.randn(80, 200)
    plain = decode(random_model, mel, DecodingOptions(sample_len=16, **options))
    captured = decode(random_model, mel, DecodingOptions(sample_len=16, capture_attention=True, **options))
    assert captured.tokens == plain.tokens and len(plain.tokens) > 3
    assert captured.sum_logprob == plain.sum_logprob and captured.text_token_probs == pytest.approx(
        plain.text_token_probs, rel=0, abs=0, nan_ok=True
    )


def test_english_only_model_has_no_language_detection(random_model):
    with pytest.raises(DecodingError, match="English-only"):
        detect_language(random_model, torch.zeros(80, 200))


# ---- real weights ----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("beam_size", [None])  # beam 5 on real weights: tests/test_transcribe.py
def test_tiny_en_decode_matches_openai(tiny_en, beam_size):
    whisper = pytest.importorskip("whisper")
    if not CLIP.exists():
        pytest.skip("the TIMIT eval clips are not available")
    from whisper_align.frontend.audio import N_FRAMES, log_mel_spectrogram, pad_or_trim

    mel = pad_or_trim(log_mel_spectrogram(str(CLIP), 80), N_FRAMES)
    ours = decode(tiny_en, mel, DecodingOptions(beam_size=beam_size, capture_attention=True))
    theirs = whisper.decode(
        openai_copy(tiny_en), mel, whisper.DecodingOptions(beam_size=beam_size, language="en", fp16=False)
    )
    assert ours.tokens == theirs.tokens and ours.text == theirs.text
    assert ours.text.startswith("Don't ask me")
    assert ours.avg_logprob == pytest.approx(theirs.avg_logprob, abs=1e-4)
    assert ours.no_speech_prob == pytest.approx(theirs.no_speech_prob, abs=1e-4)
    assert ours.attention.shape[1] == len(ours.initial_tokens) + len(ours.tokens)


@pytest.mark.slow
def test_base_detects_english():
    if not CLIP.exists():
        pytest.skip("the TIMIT eval clips are not available")
    from whisper_align.checkpoints import load_model
    from whisper_align.errors import ModelLoadError
    from whisper_align.frontend.audio import N_FRAMES, log_mel_spectrogram, pad_or_trim

    try:
        base = load_model("base")
    except ModelLoadError as error:
        pytest.skip(f"base is not available offline: {error}")
    mel = pad_or_trim(log_mel_spectrogram(str(CLIP), base.dims.n_mels), N_FRAMES)
    token, probs = detect_language(base, mel)
    assert max(probs, key=probs.get) == "en"
    assert probs["en"] > 0.5 and sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
    result = decode(base, mel, DecodingOptions())  # language None: detected inside
    assert result.language == "en" and "oily rag" in result.text
