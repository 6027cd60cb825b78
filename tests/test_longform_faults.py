"""Forced alignment under faults (issue #13, items 1, 7, 8), on the bundled tiny.en.

Long recordings must give every transcript word exactly once and in order; silent or cut-short audio must warn
and invent nothing; bad transcripts must fail typed, lose their control characters, and be flagged when they do
not match the audio.
"""

from __future__ import annotations

import json
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest

import support
import whisper_align.tasks.align as aligner
from whisper_align.alignment.words import (
    AlignmentConfig,
    WordTiming,
    merge_punctuations,
    widen_empty_words,
)
from whisper_align.checkpoints.tokenizers import get_tokenizer
from whisper_align.cli import main
from whisper_align.cli.engine_options import print_summary
from whisper_align.errors import TranscriptError
from whisper_align.frontend.audio import N_SAMPLES, SAMPLE_RATE, load_audio
from whisper_align.results.manifest import load_manifest
from whisper_align.results.types import Result
from whisper_align.tasks.align import (
    LOW_CONFIDENCE_SCORE,
    align,
    align_long,
    clean_text,
    prepare_text,
)
from whisper_align.tasks.corpus import align_corpus

ROOT = Path(__file__).resolve().parent.parent
EVAL = support.EVAL
TIMIT = EVAL / "timit-dev" / "manifest.jsonl"
FESTIVAL = EVAL / "festival" / "manifest.jsonl"
DEMO = ROOT / "samples" / "demo.wav"
needs_eval = pytest.mark.skipif(not TIMIT.is_file() or not FESTIVAL.is_file(), reason="../shared/eval is not here")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tiny_en):
    return tiny_en


@pytest.fixture(scope="module")
def recording():
    """16 timit-dev clips (no hyphenated words: Whisper splits "semi-heights" in two) joined with 0.3-1 s of
    silence: (audio, transcript, per-clip (first word index, start s))."""
    if not TIMIT.is_file():
        pytest.skip("../shared/eval is not here")
    clips = [u for u in load_manifest(TIMIT) if "-" not in u.text][:16]
    rng = np.random.default_rng(13)
    pieces, texts, starts, t, n_words = [], [], [], 0.0, 0
    for u in clips:
        samples = load_audio(u.audio)
        starts.append((n_words, t, u))
        gap = np.zeros(int(rng.uniform(0.3, 1.0) * SAMPLE_RATE), dtype=np.float32)
        pieces += [samples, gap]
        t += (len(samples) + len(gap)) / SAMPLE_RATE
        n_words += len(u.text.split())
        texts.append(u.text)
    return np.concatenate(pieces), " ".join(texts), starts


def check_times(result: Result, duration: float) -> None:
    """start <= end for every word, times never go back, everything inside [0, duration]."""
    times = [x for w in result.words for x in (w.start, w.end)]
    assert all(w.start <= w.end for w in result.words)
    assert times == sorted(times)
    assert times[0] >= 0 and times[-1] <= duration


# ---- 1. long-form: every transcript word exactly once, in order ---------------------------------------------


def test_long_recording_gives_every_transcript_word_once_in_order(model, recording):
    audio, text, _ = recording
    duration = len(audio) / SAMPLE_RATE
    assert duration > 1.5 * N_SAMPLES / SAMPLE_RATE  # at least three windows
    result = align(model, audio, text)
    assert len(result.words) == len(text.split())
    assert [w.word.strip() for w in result.words] == text.split()
    assert result.text == " " + text
    check_times(result, duration)
    assert not any(w.past_end for w in result.words)  # the audio is complete


def test_long_recording_in_conformance_mode_gives_every_word_once(model, recording):
    audio, _, starts = recording
    audio = audio[: int(40 * SAMPLE_RATE)]  # two windows, the text of the clips that end inside them
    text = " ".join(u.text for _, t, u in starts if t + len(load_audio(u.audio)) / SAMPLE_RATE <= 40.0)
    result = align(model, audio, text, config=AlignmentConfig(mode="conformance"))
    assert [w.word.strip() for w in result.words] == text.split()
    check_times(result, 40.0)


def test_window_hand_over_commits_each_word_once_whatever_the_punctuation(model, monkeypatch):
    """align_long with a stand-in for the model: each window's words get 0.4 s each from the window's start,
    those that do not fit are squeezed into its end (as DTW does). Split words that punctuation merging
    removes (',', '.', '"', '(') must not shift the hand-over between windows."""
    tokenizer = get_tokenizer(model)
    text = " ".join(f'Item {i} says "go (now)", then stops. Well, {i}!' for i in range(40))
    tokens = prepare_text(tokenizer, text)

    def fake_window(model, tokenizer, chunk, tokens, config, probabilities, time_offset, merge=True, ends_audio=True):
        words, word_tokens = tokenizer.split_to_word_tokens(tokens)
        end = time_offset + len(chunk) / SAMPLE_RATE
        timings = [
            WordTiming(w, list(t), min(time_offset + 0.4 * k, end), min(time_offset + 0.4 * (k + 1), end), 0.9)
            for k, (w, t) in enumerate(zip(words, word_tokens))
        ]
        if merge:
            merge_punctuations(timings)
            timings = [t for t in timings if t.word]
        return timings

    monkeypatch.setattr(aligner, "align_window", fake_window)
    n_split = len(tokenizer.split_to_word_tokens(tokens)[0])
    samples = np.zeros(int(0.4 * n_split * SAMPLE_RATE), dtype=np.float32)
    timings = align_long(model, tokenizer, samples, tokens, AlignmentConfig())
    assert "".join(t.word for t in timings) == " " + text
    assert [t.word.strip() for t in timings] == text.split()


# ---- 7. silence and truncated audio -------------------------------------------------------------------------


def test_silence_with_a_short_text_warns_and_invents_no_word(model):
    text = "Hello there, how are you today."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = align(model, np.zeros(75 * SAMPLE_RATE, dtype=np.float32), text)
    assert any("silent" in str(w.message) for w in caught)
    assert [w.word.strip() for w in result.words] == text.split()
    check_times(result, 75.0)


@needs_eval
def test_audio_cut_short_warns_and_flags_the_unheard_words(model):
    clips = [u for u in load_manifest(TIMIT) if "-" not in u.text]
    for u in (clips[1], clips[41]):
        cut_index = len(u.words) * 6 // 10  # the audio stops where this word starts
        samples = load_audio(u.audio)[: int(u.words[cut_index][1] * SAMPLE_RATE)]
        duration = len(samples) / SAMPLE_RATE
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = align(model, samples, u.text)
        assert [w.word.strip() for w in result.words] == u.text.split()
        check_times(result, duration)
        flagged = [i for i, w in enumerate(result.words) if w.past_end]
        assert flagged, u.id
        assert flagged == list(range(flagged[0], len(result.words)))  # a tail of the text ...
        assert flagged[0] >= cut_index  # ... of words the audio does not hold
        assert all(result.words[i].start == result.words[i].end for i in flagged)
        assert any("not heard before the audio ends" in str(w.message) for w in caught)
        json_words = json.loads(result.render("json"))["segments"][0]["words"]
        assert [w.get("past_end", False) for w in json_words] == [w.past_end for w in result.words]


@needs_eval
@pytest.mark.parametrize(
    "clip_id, cut_index",
    [
        ("timit_nltk_dr4-falr0_sx245", 1),
        ("timit_nltk_dr3-falk0_sx96", 4),
        ("timit_nltk_dr4-maeb0_sx90", 5),
        # the decoder still expects the first unheard word ("we": 0.38) but would end the text in its place
        ("timit_nltk_dr1-mcpm0_sx24", 3),
        ("timit_nltk_dr3-falk0_sx6", 3),
        ("timit_nltk_dr2-marc0_sx378", 2),
    ],
)
def test_a_first_unheard_word_given_the_last_frames_is_flagged_too(model, clip_id, cut_index):
    """Cuts where DTW hands the last frames to the first word never said, so the path alone flags nothing:
    ``unheard_tail`` flags exactly them (the decoder does not expect those words and they are squeezed, or it
    would end the text in place of the first; the last three cuts escaped before the second rule)."""
    (u,) = [u for u in load_manifest(TIMIT) if u.id == clip_id]
    samples = load_audio(u.audio)[: int(u.words[cut_index][1] * SAMPLE_RATE)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = align(model, samples, u.text)
    assert [w.word.strip() for w in result.words] == u.text.split()
    check_times(result, len(samples) / SAMPLE_RATE)
    assert [i for i, w in enumerate(result.words) if w.past_end] == list(range(cut_index, len(result.words)))
    tail = result.words[cut_index:]  # zero length at the end, after the heard words
    assert all(w.start == w.end == tail[0].start >= result.words[cut_index - 1].end for w in tail)
    assert result.duration - tail[0].start < 0.02
    assert any("not heard before the audio ends" in str(w.message) for w in caught)


@needs_eval
def test_long_recording_cut_short_flags_only_its_tail(model, recording):
    audio, text, starts = recording
    first_word, start, u = starts[-2]  # cut inside the second-to-last clip, where its 4th word starts
    cut = start + u.words[3][1]
    samples = audio[: int(cut * SAMPLE_RATE)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = align(model, samples, text)
    assert [w.word.strip() for w in result.words] == text.split()
    check_times(result, len(samples) / SAMPLE_RATE)
    flagged = [i for i, w in enumerate(result.words) if w.past_end]
    assert flagged and flagged == list(range(flagged[0], len(result.words)))
    assert flagged[0] >= first_word + 3
    assert any("not heard before the audio ends" in str(w.message) for w in caught)


@needs_eval
def test_complete_clips_get_no_flag_and_no_zero_length_word(model):
    """Zero-length words only past the end: in timit's faem0_si1392 (well heard, score 0.95) DTW passes the
    " a" after "example," within one frame; it gets a short span of the pause before it instead."""
    timit = [u for u in load_manifest(TIMIT) if u.id == "timit_nltk_dr2-faem0_si1392"]
    for u in load_manifest(FESTIVAL)[:3] + timit:
        result = align(model, u.audio, u.text)
        assert [w.word.strip() for w in result.words] == u.text.split()
        assert not any(w.past_end for w in result.words)
        assert all(w.end > w.start for w in result.words), u.id
        assert not result.low_confidence


@needs_eval
def test_base_keeps_every_word_of_a_complete_clip_it_reads_fast() -> None:
    """base would end fvmh0_si2096's text in place of "with" (probability 0.22), five words before its end, and
    those five had 0.93 of their expected speaking time left: they were flagged past the end of a complete
    recording. A run must now be squeezed harder than a fast speaker squeezes it (``UNHEARD_TEXT_END_SQUEEZE``)."""
    from whisper_align.checkpoints import load_model

    (u,) = [u for u in load_manifest(TIMIT) if u.id == "timit_nltk_dr1-fvmh0_si2096"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = align(load_model("base"), u.audio, u.text)
    assert [w.word.strip() for w in result.words] == u.text.split()
    assert not any(w.past_end for w in result.words)


@pytest.mark.parametrize(
    "spans",
    [
        [(0.0, 1.0), (1.5, 1.5), (1.5, 2.0)],  # after a pause: takes the pause
        [(0.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 2.0)],  # a run, no pause: borrows
        [(0.0, 0.05), (0.05, 0.05), (0.05, 0.06)],  # short neighbours keep their minimum
        [(0.0, 0.0), (0.0, 1.0)],  # at the very start
        [(0.0, 1.0), (3.0, 3.0)],  # at the very end
    ],
)
def test_zero_length_words_are_widened_in_place_keeping_order(spans):
    words = [WordTiming(f" w{i}", [i], a, b, 0.9) for i, (a, b) in enumerate(spans)]
    lengths = [b - a for a, b in spans]
    assert widen_empty_words(words, 0.04, 0.0, 3.0) == sum(x == 0 for x in lengths)
    assert all(w.end > w.start for w in words)
    times = [x for w in words for x in (w.start, w.end)]
    assert times == sorted(times) and times[0] >= 0.0 and times[-1] <= 3.0
    for w, before in zip(words, lengths):
        if before > 0:  # a word that lent time keeps min_duration, or what it had if that was less
            assert w.end - w.start >= min(before, 0.04) - 1e-9


def test_words_past_the_end_are_not_widened():
    words = [WordTiming(" a", [1], 0.0, 1.0, 0.9), WordTiming(" b", [2], 1.0, 1.0, 0.0, past_end=True)]
    assert widen_empty_words(words, 0.04, 0.0, 1.0) == 0
    assert (words[1].start, words[1].end) == (1.0, 1.0)


# ---- 8. the transcript --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [b"the weather was cold", None, 42, ["the", "weather"]])
def test_a_transcript_that_is_not_a_str_is_a_typed_error(model, text):
    with pytest.raises(TranscriptError, match="must be a str"):
        align(model, str(DEMO), text)


def test_control_characters_are_dropped_from_the_text():
    assert clean_text("\x1b[31mred\x1b[0m and\x00 blue\x07") == "red and blue"
    assert clean_text("\ufeffline one\r\nline\ttwo\x1b]0;title\x07") == "line one line two"
    assert clean_text("café naïve") == "café naïve"  # letters are not controls


def test_control_characters_never_reach_the_output_words(model, tmp_path, capsys):
    clean = (ROOT / "samples" / "demo.txt").read_text().strip()
    dirty = "\x1b[1;32m" + clean.replace(" cold", " \x00cold\x1b[0m").replace("books", "bo\x08oks") + "\n"
    result = align(model, str(DEMO), dirty)
    assert [w.word.strip() for w in result.words] == clean.split()
    assert all(c.isprintable() for w in result.words for c in w.word)

    text_file, out = tmp_path / "dirty.txt", tmp_path / "out.json"
    text_file.write_text(dirty, encoding="utf-8")
    assert main(["align", str(DEMO), "--text-file", str(text_file), "-o", str(out)]) == 0
    words = json.loads(out.read_text())["segments"][0]["words"]
    assert [w["word"].strip() for w in words] == clean.split()


@needs_eval
def test_text_that_does_not_match_the_audio_is_flagged_low_confidence(model):
    festival = load_manifest(FESTIVAL)
    own, other = festival[0], next(u for u in festival if u.text != festival[0].text and len(u.words) < 10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        matching = align(model, own.audio, own.text)
    assert matching.alignment_score is not None and matching.alignment_score > LOW_CONFIDENCE_SCORE
    assert not matching.low_confidence and not caught

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrong = align(model, own.audio, other.text)
    assert wrong.alignment_score < LOW_CONFIDENCE_SCORE and wrong.low_confidence
    assert any("may not match the audio" in str(w.message) for w in caught)
    data = json.loads(wrong.render("json"))
    assert data["low_confidence"] is True and data["alignment_score"] == pytest.approx(wrong.alignment_score)
    assert Result.from_dict(data).low_confidence

    unscored = align(model, own.audio, other.text, probabilities=False)
    assert unscored.alignment_score is None and not unscored.low_confidence


def test_cli_prints_the_low_confidence_warning(model, capsys):
    clean = (ROOT / "samples" / "demo.txt").read_text().strip()
    assert main(["align", str(DEMO), "--text", clean]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err and "alignment score" in err
    assert main(["align", str(DEMO), "--text", "Seven purple giraffes juggle quantum pancakes on Mars."]) == 0
    err = capsys.readouterr().err
    assert "whisper-align: warning: the transcript may not match the audio" in err
    assert "LOW CONFIDENCE" in err


@needs_eval
def test_a_corpus_line_marks_the_words_a_cut_file_does_not_hold(model, tmp_path, capsys):
    """``align --manifest`` on a file cut short (packed between two complete clips) writes ``"past_end": true``
    on exactly the words it does not hold, as ``align`` flags them; the complete clips' lines carry no flag."""
    utterances = load_manifest(TIMIT)
    (cut_clip,) = [u for u in utterances if u.id == "timit_nltk_dr3-falk0_sx96"]
    cut_index = 4
    samples = load_audio(cut_clip.audio)[: int(cut_clip.words[cut_index][1] * SAMPLE_RATE)]
    wav = tmp_path / "cut.wav"
    with wave.open(str(wav), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes())
    before, after = [u for u in utterances if u.id != cut_clip.id][:2]
    entries = [
        {"id": before.id, "audio": str(before.audio), "text": before.text},
        {"id": "cut", "audio": str(wav), "text": cut_clip.text},
        {"id": after.id, "audio": str(after.audio), "text": after.text},
    ]
    manifest = tmp_path / "corpus.jsonl"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = align_corpus(model, manifest, tmp_path / "out.jsonl", progress=False)
        alone = align(model, samples, cut_clip.text)
    assert summary.cut_short == ["cut"]
    assert print_summary(summary, "out.jsonl") == 0  # a warning, not a failure
    assert "the audio ends before the transcript in 1 of the clips aligned (cut)" in capsys.readouterr().err
    lines = {line["id"]: line["words"] for line in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    words = lines["cut"]
    assert [w["word"].strip() for w in words] == cut_clip.text.split()
    assert [i for i, w in enumerate(words) if w.get("past_end")] == list(range(cut_index, len(words)))
    assert [w.past_end for w in alone.words] == [bool(w.get("past_end")) for w in words]
    assert not any("past_end" in w for clip_id in (before.id, after.id) for w in lines[clip_id])
