"""Long-form transcription: same text and segments as openai-whisper's ``transcribe``, word timestamps from the
attention captured while decoding (close to a separate alignment pass), the seek loop across windows, the CLI."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict

import numpy as np
import pytest
import torch

import support
from whisper_align.alignment.words import AlignmentConfig
from whisper_align.errors import TranscriptError
from whisper_align.frontend.audio import SAMPLE_RATE, load_audio
from whisper_align.tasks.decoding import DecodingError

EVAL = support.TIMIT_DIR
CLIPS = ["dr1-fvmh0/sa2.wav", "dr1-mcpm0/sa1.wav"]  # clean at temperature 0 with tiny.en
CONFORMANCE = AlignmentConfig(mode="conformance")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (EVAL / "audio").is_dir(), reason="the TIMIT eval clips are not available"),
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Decoding is hundreds of tiny ops: one thread avoids OpenMP hand-offs that dominate on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    from whisper_align.checkpoints import load_model

    return load_model("tiny.en")


@pytest.fixture(scope="module")
def reference(model):
    """openai-whisper's Whisper with our weights and tiny.en's official heads."""
    whisper = pytest.importorskip("whisper")
    ref = whisper.model.Whisper(whisper.model.ModelDimensions(**asdict(model.dims)))
    ref.load_state_dict({k: v for k, v in model.state_dict().items() if k != "alignment_heads"})
    ref.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    return ref.eval()


def audio(name: str) -> np.ndarray:
    return load_audio(str(EVAL / "audio" / name))


def openai_transcribe(reference, samples: np.ndarray, **options):
    import whisper

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return whisper.transcribe(reference, torch.from_numpy(samples), fp16=False, language="en", **options)


def assert_same_segments(ours, theirs, times: bool = True) -> None:
    """Same text, tokens and windows; and same times unless word timings (which move them) came another way."""
    assert ours.text == theirs["text"]
    assert [s.tokens for s in ours.segments] == [s["tokens"] for s in theirs["segments"]]
    assert [s.seek for s in ours.segments] == [s["seek"] for s in theirs["segments"]]
    for a, b in zip(ours.segments, theirs["segments"]):
        if times:
            assert (a.start, a.end) == pytest.approx((b["start"], b["end"]), abs=1e-6)
        assert a.avg_logprob == pytest.approx(b["avg_logprob"], abs=1e-4)


def assert_sane_words(result) -> None:
    words = result.words
    assert words, "no words"
    assert "".join(w.word for w in words).strip() == result.text.strip()
    for previous, word in zip(words, words[1:]):
        assert previous.start <= word.start and previous.end <= word.end + 1e-9
    for segment in result.segments:
        for word in segment.words:
            assert word.start <= word.end and 0.0 <= word.probability <= 1.0


@pytest.mark.parametrize("clip", CLIPS)
def test_greedy_matches_openai_and_captured_words_match_a_second_pass(model, reference, clip):
    from whisper_align.tasks.transcribe import transcribe

    samples = audio(clip)
    theirs = openai_transcribe(reference, samples, temperature=0.0, word_timestamps=True)
    their_words = [w for s in theirs["segments"] for w in s["words"]]
    captured = transcribe(model, samples, temperature=0.0, word_timestamps=True, alignment_config=CONFORMANCE)
    assert_same_segments(captured, theirs, times=False)
    assert captured.word_alignment == "captured" and captured.second_pass_windows == 0

    # the captured attention gives (nearly) the timings of openai's separate pass, without that pass
    assert [w.word for w in captured.words] == [w["word"] for w in their_words]
    close = [
        abs(a.start - b["start"]) <= 0.1 and abs(a.end - b["end"]) <= 0.1 for a, b in zip(captured.words, their_words)
    ]
    assert sum(close) >= 0.9 * len(close)
    assert_sane_words(captured)

    if clip == CLIPS[0]:
        # our second pass is openai's own procedure: identical segments and words
        second = transcribe(
            model,
            samples,
            temperature=0.0,
            word_timestamps=True,
            alignment_config=CONFORMANCE,
            word_alignment="second_pass",
        )
        assert_same_segments(second, theirs)
        assert [(w.word, w.start, w.end) for w in second.words] == [
            (w["word"], w["start"], w["end"]) for w in their_words
        ]
        assert [w.probability for w in second.words] == pytest.approx([w["probability"] for w in their_words], abs=1e-4)
        default = transcribe(model, samples, temperature=0.0, word_timestamps=True)  # the aligner's default rules
        assert default.text == theirs["text"]
        assert_sane_words(default)


def test_beam_search_matches_openai(model, reference):
    from whisper_align.tasks.transcribe import transcribe

    samples = audio(CLIPS[1])
    theirs = openai_transcribe(reference, samples, temperature=0.0, beam_size=5)
    ours = transcribe(model, samples, temperature=0.0, beam_size=5, word_timestamps=True)
    assert_same_segments(ours, theirs, times=False)
    assert_sane_words(ours)


def test_long_form_windows_match_openai(model, reference):
    """33 s, mostly silence (cheap to decode): the second window starts at the first window's last word end and
    is prompted with its text."""
    from whisper_align.tasks.transcribe import transcribe

    a, b = audio(CLIPS[0]), audio(CLIPS[1])
    silence = lambda seconds: np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)  # noqa: E731
    samples = np.concatenate([a, silence(1), b, silence(20.5), b, silence(0.5), a])

    theirs = openai_transcribe(reference, samples, temperature=0.0, word_timestamps=True)
    second = transcribe(
        model,
        samples,
        temperature=0.0,
        word_timestamps=True,
        alignment_config=CONFORMANCE,
        word_alignment="second_pass",
    )
    assert_same_segments(second, theirs)
    assert len({s.seek for s in second.segments}) >= 2, "expected more than one window"
    their_words = [(w["word"], w["start"], w["end"]) for s in theirs["segments"] for w in s["words"]]
    assert [(w.word, w.start, w.end) for w in second.words] == their_words

    # Captured timings move the next window's start (the last word's end) by a frame or two, so later windows
    # may differ slightly from openai's; on this input the text is the same.
    captured = transcribe(model, samples, temperature=0.0, word_timestamps=True, alignment_config=CONFORMANCE)
    assert captured.text == theirs["text"]
    assert_sane_words(captured)
    assert captured.words[-1].end <= len(samples) / SAMPLE_RATE + 0.02


def test_word_timestamps_keep_the_windows_of_a_run_without_them_unless_seeking_to_the_last_word(model, reference):
    """38 s of speech: openai's word-timestamp rule starts the second window at the last word's end; without it
    the second window starts at the last timestamp token, as in a run without word timestamps. The default mode
    does the latter, conformance mode the former. (The text may still
    differ: word times can empty a segment, which then leaves the next window's prompt, in both rules.)"""
    from whisper_align.tasks.transcribe import transcribe

    names = ["dr1-fvmh0/sa2.wav", "dr1-mcpm0/sa1.wav", "dr1-fvmh0/sa1.wav", "dr1-mcpm0/sa2.wav"]
    gap = np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.float32)
    samples = np.concatenate([x for name in names * 3 for x in (audio(name), gap)])

    plain = openai_transcribe(reference, samples, temperature=0.0)
    plain_seeks = sorted({s["seek"] for s in plain["segments"]})
    kept = transcribe(model, samples, temperature=0.0, word_timestamps=True)  # default mode: windows kept
    assert sorted({s.seek for s in kept.segments}) == plain_seeks
    assert_sane_words(kept)
    for moved in (
        transcribe(model, samples, temperature=0.0, word_timestamps=True, seek_to_last_word=True),
        transcribe(model, samples, temperature=0.0, word_timestamps=True, alignment_config=CONFORMANCE),
    ):
        assert sorted({s.seek for s in moved.segments}) != plain_seeks  # openai's rule
    forced = transcribe(
        model, samples, temperature=0.0, word_timestamps=True, alignment_config=CONFORMANCE, seek_to_last_word=False
    )
    assert sorted({s.seek for s in forced.segments}) == plain_seeks


def test_clip_timestamps_prompt_and_hallucination_skip_match_openai(model, reference):
    """openai's own word procedure (second pass, conformance rules): segments and words identical."""
    from whisper_align.tasks.transcribe import transcribe

    samples = np.concatenate([audio(CLIPS[0]), np.zeros(3 * SAMPLE_RATE, dtype=np.float32), audio(CLIPS[1])])
    options = dict(
        temperature=0.0,
        clip_timestamps="0.5,6.5",
        initial_prompt="Carry the rag.",
        word_timestamps=True,
        hallucination_silence_threshold=1.0,
    )
    theirs = openai_transcribe(reference, samples, **options)
    ours = transcribe(model, samples, word_alignment="second_pass", alignment_config=CONFORMANCE, **options)
    assert_same_segments(ours, theirs)
    their_words = [(w["word"], w["start"], w["end"]) for s in theirs["segments"] for w in s["words"]]
    assert [(w.word, w.start, w.end) for w in ours.words] == their_words
    assert all(0.5 <= s.start and s.end <= 6.5 + 0.02 for s in ours.segments)


def test_falls_back_to_a_second_pass_and_says_so(model, monkeypatch):
    import whisper_align.tasks.transcribe as module
    import whisper_align.tasks.window_words as word_timestamps

    monkeypatch.setattr(
        word_timestamps, "_captured_matrix", lambda *args, **kwargs: None
    )  # as if capture were impossible
    with pytest.warns(UserWarning, match="separate decoder pass"):
        result = module.transcribe(model, audio(CLIPS[0]), temperature=0.0, word_timestamps=True)
    assert result.second_pass_windows == 1
    assert_sane_words(result)


def test_bad_options_are_typed_errors(model):
    from whisper_align.tasks.transcribe import transcribe

    samples = np.zeros(SAMPLE_RATE, dtype=np.float32)
    with pytest.raises(DecodingError, match="word_alignment"):
        transcribe(model, samples, word_alignment="third_pass")
    with pytest.raises(TranscriptError, match="English-only"):
        transcribe(model, samples, language="de")
    with pytest.raises(DecodingError, match="clip_timestamps"):
        transcribe(model, samples, clip_timestamps="one,two")


def test_cli_writes_every_format(tmp_path, capsys):
    from whisper_align.cli import main

    clip = EVAL / "audio" / CLIPS[0]
    code = main(
        [
            "transcribe",
            str(clip),
            "--word-timestamps",
            "--temperature-increment-on-fallback",
            "0",
            "--output-dir",
            str(tmp_path),
            "--highlight-words",
        ]
    )
    assert code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"sa2.{ext}" for ext in ("json", "srt", "vtt", "tsv", "txt", "TextGrid"))
    data = json.loads((tmp_path / "sa2.json").read_text())
    assert data["text"].strip().startswith("Don't ask me") and data["segments"][0]["words"]
    assert "<u>" in (tmp_path / "sa2.vtt").read_text()
    assert "100%" in capsys.readouterr().err  # the progress bar, in audio seconds
