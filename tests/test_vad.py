"""Voice-activity detection: the detectors on real speech with inserted silence, moving times out of silence,
planning the clips a transcription decodes, and ``transcribe --vad`` / ``align --vad`` end to end."""

from __future__ import annotations

import json
import random
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import support
from whisper_align.cli import main
from whisper_align.errors import AudioError, DecodingError, PostprocessError
from whisper_align.frontend import vad
from whisper_align.frontend.audio import SAMPLE_RATE, load_audio
from whisper_align.frontend.vad import SpeechMap, VadOptions, clip_to_speech, speech_regions, transcription_clips
from whisper_align.tasks.speech import transcribe_speech

TEXT = (support.SAMPLES / "demo.txt").read_text().strip()


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    """Quiet room noise (about -80 dBFS), or digital silence for seed < 0."""
    if seed < 0:
        return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    return (np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)) * 1e-4).astype(np.float32)


def spliced(silence: float) -> tuple[np.ndarray, tuple[float, float]]:
    """The demo sentence twice with ``silence`` seconds of digital silence between; and that silence's span."""
    speech = load_audio(support.DEMO_WAV)
    audio = np.concatenate([noise(1.0), speech, noise(silence, seed=-1), speech, noise(1.0, seed=1)])
    start = 1.0 + len(speech) / SAMPLE_RATE
    return audio, (start, start + silence)


def write_wav(path: Path, audio: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def strictly_in_silence(t: float, regions: list[tuple[float, float]]) -> bool:
    return not any(start <= t <= end for start, end in regions)


# ---- detectors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["energy", "silero"])
def test_detectors_find_both_sentences_and_not_the_silence_between(method: str) -> None:
    audio, (gap_start, gap_end) = spliced(4.0)
    speech = vad.detect_speech(audio, VadOptions(method=method))
    assert speech.method == method and len(speech.regions) == 2
    (first_start, first_end), (second_start, second_end) = speech.regions
    # the demo file has ~0.3 s of silence at its end; padding adds 0.1 s
    assert 1.0 <= first_start < 1.4 and gap_start - 0.6 < first_end < gap_start + 0.2
    assert gap_end <= second_start < gap_end + 0.4 and second_end > second_start + 4.5


def test_silero_leaves_torch_threads_alone() -> None:
    before = torch.get_num_threads()
    vad._silero_model.cache_clear()
    for module in [m for m in sys.modules if m.startswith("silero_vad")]:
        del sys.modules[module]  # its import sets one thread: our wrapper must undo that
    vad.detect_speech(noise(1.0), VadOptions(method="silero"))
    assert torch.get_num_threads() == before


def test_auto_prefers_silero_and_a_missing_silero_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert vad.detect_speech(noise(0.5)).method == "silero"  # the vad extra is part of dev
    vad._silero_model.cache_clear()
    monkeypatch.setitem(sys.modules, "silero_vad", None)  # as if not installed
    monkeypatch.setattr(vad, "silero_installed", lambda: False)
    assert vad.detect_speech(noise(0.5)).method == "energy"
    with pytest.raises(PostprocessError, match="whisper-align\\[vad\\]"):
        vad.detect_speech(noise(0.5), VadOptions(method="silero"))
    vad._silero_model.cache_clear()


def test_silence_has_no_regions_and_empty_audio_is_an_error() -> None:
    assert speech_regions(noise(3.0), VadOptions(method="energy")) == []
    assert speech_regions(noise(3.0, seed=-1), VadOptions(method="silero")) == []
    with pytest.raises(AudioError):
        speech_regions(np.zeros(0, dtype=np.float32))


def test_bad_options_are_typed_errors() -> None:
    for options in ({"method": "webrtc"}, {"threshold": 1.5}, {"min_silence": -1}, {"max_clip": 40}, {"pad": "x"}):
        with pytest.raises(PostprocessError):
            VadOptions(**options)  # type: ignore[arg-type]


# ---- times out of silence -------------------------------------------------------------------------------------------

REGIONS = [(1.0, 2.0), (4.0, 6.0)]


def test_spans_are_moved_out_of_silence() -> None:
    spans = [(1.2, 1.5), (1.8, 2.6), (2.8, 3.0), (3.5, 3.6), (3.7, 4.5), (4.6, 4.6), (5.5, 6.8), (6.9, 7.0)]
    assert clip_to_speech(spans, REGIONS) == [
        (1.2, 1.5),  # inside: unchanged
        (1.8, 2.0),  # runs on into the pause: ends where speech ends
        (2.0, 2.0),  # wholly in the pause, nearer its start
        (4.0, 4.0),  # nearer its end
        (4.0, 4.5),  # starts in the pause: starts where speech starts
        (4.6, 4.6),  # zero-length inside speech
        (5.5, 6.0),
        (6.0, 6.0),  # after the last region
    ]
    assert clip_to_speech(spans, []) == spans
    assert clip_to_speech([(1.5, 4.8)], REGIONS) == [(4.0, 4.8)]  # across a pause: the region it overlaps more
    assert clip_to_speech([(1.2, 4.3)], REGIONS) == [(1.2, 2.0)]


def test_random_spans_keep_order_and_never_land_in_silence() -> None:
    rng = random.Random(3)
    for _ in range(500):
        edges = sorted(rng.uniform(0, 20) for _ in range(2 * rng.randint(1, 5)))
        regions = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b > a]
        if not regions:
            continue
        points = sorted(rng.uniform(0, 22) for _ in range(2 * rng.randint(1, 30)))
        spans = list(zip(points[::2], points[1::2]))
        placed = clip_to_speech(spans, regions)
        assert len(placed) == len(spans)
        assert all(a <= b for a, b in placed) and all(p[0] <= q[0] for p, q in zip(placed, placed[1:]))
        for start, end in placed:  # each span within one region (or at its edge)
            assert any(r0 <= start <= end <= r1 for r0, r1 in regions), (start, end, regions)


def test_clips_join_short_pauses_and_cut_long_speech_at_its_quietest() -> None:
    step = 0.01
    scores = np.ones(7000)
    scores[round(41.3 / step)] = -1.0  # the quietest moment of the long region, in its second half
    speech = SpeechMap([(0.0, 5.0), (6.0, 9.0), (20.0, 65.0)], scores, step, 70.0, "energy")
    clips = transcription_clips(speech, VadOptions(max_pause=2.0))
    assert clips[0] == (0.0, 9.0)  # a 1-s pause is kept inside a clip
    assert clips[1] == (20.0, 41.3)  # cut at the quietest step between 35 and 50 s
    assert all(end - start <= 30.0 for start, end in clips) and clips[-1][1] == 65.0
    assert transcription_clips(speech, VadOptions(max_pause=0.5))[:2] == [(0.0, 5.0), (6.0, 9.0)]


# ---- with the model -------------------------------------------------------------------------------------------------


def test_transcribe_speech_refuses_clip_timestamps_and_skips_silent_audio() -> None:
    model = support.make_model()  # never used: there is nothing to decode
    with pytest.raises(DecodingError, match="clip_timestamps"):
        transcribe_speech(model, noise(1.0), clip_timestamps="0,1")
    empty = transcribe_speech(model, noise(5.0, seed=-1), word_timestamps=True)
    assert empty.segments == [] and empty.text == "" and empty.duration == 5.0


@pytest.mark.slow
def test_align_vad_keeps_every_word_in_order_and_out_of_the_silence(tmp_path: Path) -> None:
    audio, (gap_start, gap_end) = spliced(3.0)
    path = write_wav(tmp_path / "two.wav", audio)
    out = tmp_path / "two.json"
    assert main(["align", str(path), "--text", f"{TEXT} {TEXT}", "--vad", "-o", str(out)]) == 0
    words = [w for s in json.loads(out.read_text())["segments"] for w in s["words"]]
    assert [w["word"].strip() for w in words] == (TEXT + " " + TEXT).split()
    regions = speech_regions(load_audio(path))
    assert len(regions) == 2
    for w in words:
        assert not strictly_in_silence(w["start"], regions) and not strictly_in_silence(w["end"], regions)
        assert not (w["start"] < gap_start + 0.5 and w["end"] > gap_end - 0.5)  # no word across the silence
    assert all(a["start"] <= b["start"] and a["start"] <= a["end"] for a, b in zip(words, words[1:]))


@pytest.mark.slow
def test_transcribe_vad_skips_a_long_silence_and_gives_the_same_words(tmp_path: Path) -> None:
    audio, (gap_start, gap_end) = spliced(25.0)
    path = write_wav(tmp_path / "long.wav", audio)
    argv = ["transcribe", str(path), "--word-timestamps", "-f", "json", "-o", str(tmp_path), "--vad"]
    assert main(argv) == 0
    data = json.loads((tmp_path / "long.json").read_text())
    words = [w for s in data["segments"] for w in s["words"]]
    assert [w["word"].strip() for w in words] == (TEXT + " " + TEXT).split()
    regions = speech_regions(load_audio(path))
    assert not any(strictly_in_silence(w["start"], regions) or strictly_in_silence(w["end"], regions) for w in words)
    assert all(not gap_start + 0.5 < w["start"] < gap_end - 0.5 for w in words)
    # no window was decoded in the silence: each starts at a clip (a region's start) or inside one
    assert all(not strictly_in_silence(s["seek"] / 100 + 0.005, regions) for s in data["segments"])


@pytest.mark.slow
def test_language_is_detected_on_the_first_speech_not_leading_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    from whisper_align import load_model
    from whisper_align.tasks import speech

    audio = np.concatenate([noise(40.0), load_audio(support.DEMO_WAV)])  # openai's rule would hear only noise
    heard: dict[str, object] = {}

    def detect(model: object, mel: torch.Tensor, verbose: object) -> str:
        heard["mel"] = mel
        return "de"

    monkeypatch.setattr(speech, "_detect_language", detect)

    def transcribe(model: object, samples: np.ndarray, **options: object) -> speech.Transcription:
        heard.update(options)
        return speech.Transcription(text="", segments=[])

    monkeypatch.setattr(speech, "transcribe", transcribe)
    transcribe_speech(load_model("base"), audio)
    assert heard["language"] == "de" and heard["clip_timestamps"][0] > 40.0  # type: ignore[index]
    mel = heard["mel"]
    assert isinstance(mel, torch.Tensor) and mel[:, :300].mean() > mel[:, -300:].mean() + 0.3  # speech, then padding
