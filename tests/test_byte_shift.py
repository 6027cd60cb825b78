"""WAVs read one byte off from some point on (frontend/byte_shift.py): found where they are, undone exactly,
never found in sound that is not damaged, and repaired wherever audio comes in except in conformance mode."""

from __future__ import annotations

import json
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest

import support
from whisper_align.alignment.words import AlignmentConfig
from whisper_align.errors import DamagedAudioWarning
from whisper_align.frontend.audio import load_audio
from whisper_align.frontend.byte_shift import byte_shifted_spans, repair_byte_shift
from whisper_align.model.whisper import Whisper
from whisper_align.tasks.align import align
from whisper_align.tasks.corpus import align_corpus

DAMAGED_ID = "timit_nltk_dr2-faem0_sa2"  # read one byte off from 0.47 s to its end


def manifest_rows(path: Path) -> list[dict]:
    if not path.is_file():
        pytest.skip(f"evaluation data not found at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_wav(path: Path, ints: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(ints.astype("<i2").tobytes())
    return path


def shifted(ints: np.ndarray, edits: list[tuple[int, bool]]) -> np.ndarray:
    """``ints`` with a byte dropped (True) or a zero byte added (False) at each byte position of ``edits``."""
    raw = bytearray(ints.astype("<i2").tobytes())
    for place, drop in sorted(edits, reverse=True):
        if drop:
            del raw[place]
        else:
            raw.insert(place, 0x5A)
    return np.frombuffer(bytes(raw[: len(raw) // 2 * 2]), "<i2")


@pytest.fixture(scope="module")
def intact() -> list[np.ndarray]:
    """A dozen timit-dev and festival recordings the detector leaves alone."""
    out = []
    for manifest in (support.TIMIT, support.FESTIVAL):
        rows = manifest_rows(manifest)
        for row in rows[::13]:
            ints = support.wav_ints(manifest.parent / row["audio"])
            if not byte_shifted_spans(ints):
                out.append(ints)
    return out[:12]


def test_a_dropped_byte_is_found_where_it_is_and_undone_exactly(intact: list[np.ndarray]):
    for ints in intact:
        place = len(ints)  # byte position: half way through the recording
        damaged = shifted(ints, [(place, True)])
        [(start, end)] = byte_shifted_spans(damaged)
        assert abs(start - place // 2) <= 160 and end == len(damaged)  # from the lost byte to the end
        repaired = repair_byte_shift(damaged, [(start, end)])
        k = place // 2
        np.testing.assert_array_equal(repaired[: k - 1], ints[: k - 1])
        np.testing.assert_array_equal(repaired[k + 1 : -1], ints[k + 2 : -1])  # one sample lost with the byte


def test_a_stretch_between_an_added_and_a_lost_byte_is_undone_exactly(intact: list[np.ndarray]):
    for ints in intact:
        first, second = len(ints) // 2, len(ints)  # a quarter and half way through (byte positions)
        damaged = shifted(ints, [(first + 1, False), (second + 1, True)])
        [(start, end)] = byte_shifted_spans(damaged)
        assert abs(start - first // 2) <= 160 and abs(end - second // 2) <= 160
        repaired = repair_byte_shift(damaged, [(start, end)])
        assert len(repaired) == len(ints)
        wrong = np.flatnonzero(repaired != ints)
        assert len(wrong) <= 4 and all(  # the samples the two bytes touch (two at most each)
            min(abs(w - first // 2), abs(w - second // 2)) <= 1 for w in wrong
        )


def test_sound_that_is_not_damaged_is_left_alone(intact: list[np.ndarray]):
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    signals = [*intact, *(np.clip(x.astype(np.int32) * 8, -32768, 32767) for x in intact)]  # clipped hard
    signals += [0.5 * np.sin(2 * np.pi * 3000 * t) * 32767, rng.uniform(-32768, 32767, t.size), np.zeros(t.size)]
    signals += [rng.normal(0, 60, t.size), *((x // 256) * 256 for x in intact[:3])]  # faint noise; 8-bit in 16 bits
    for x in signals:
        assert byte_shifted_spans(np.asarray(x).astype(np.int16)) == []


def test_the_damaged_timit_clips_are_found():
    rows = manifest_rows(support.TIMIT)
    flagged = {r["id"] for r in rows if byte_shifted_spans(support.wav_ints(support.TIMIT_DIR / r["audio"]))}
    assert len(flagged) == 20 and DAMAGED_ID in flagged
    assert {r["speaker"] for r in rows if r["id"] in flagged} >= {"dr1-fvmh0", "dr4-maeb0", "dr2-faem0"}


def test_load_audio_repairs_a_damaged_wav_and_says_so(tmp_path: Path, intact: list[np.ndarray]):
    ints = intact[0]
    path = write_wav(tmp_path / "damaged.wav", shifted(ints, [(len(ints), True)]))
    with pytest.warns(DamagedAudioWarning, match=r"read one byte off at \d+\.\d\d-\d+\.\d\d s.*one byte later"):
        repaired = load_audio(path)
    k = len(ints) // 2
    np.testing.assert_array_equal(repaired[k + 1 : -1], ints[k + 2 : -1].astype(np.float32) / 32768)
    with pytest.warns(DamagedAudioWarning, match="kept as they are"):
        kept = load_audio(path, repair=False)
    assert np.abs(kept[k + 1 : -1] - repaired[k + 1 : -1]).max() > 0.5  # noise at full scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an intact file gives no warning
        load_audio(write_wav(tmp_path / "intact.wav", ints))


def _mean_error_ms(words: list, reference: list[dict]) -> float:
    assert [w.word.strip().lower().strip(".,") for w in words] == [r["word"] for r in reference]
    return 1000 * float(
        np.mean([(abs(w.start - r["start"]) + abs(w.end - r["end"])) / 2 for w, r in zip(words, reference)])
    )


def test_a_damaged_timit_clip_aligns_as_well_as_an_intact_one_once_repaired(tiny_en: Whisper, tmp_path: Path):
    row = next(r for r in manifest_rows(support.TIMIT) if r["id"] == DAMAGED_ID)
    path = support.TIMIT_DIR / row["audio"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        repaired = align(tiny_en, path, row["text"])
        kept = align(tiny_en, load_audio(path, repair=False), row["text"])
        conformance = align(tiny_en, path, row["text"], config=AlignmentConfig(mode="conformance"))
        unrepaired_conformance = align(
            tiny_en, load_audio(path, repair=False), row["text"], config=AlignmentConfig(mode="conformance")
        )
        manifest = tmp_path / "m.jsonl"
        manifest.write_text(json.dumps({"id": row["id"], "audio": str(path), "text": row["text"]}) + "\n")
        align_corpus(tiny_en, manifest, tmp_path / "out.jsonl", progress=False)
    assert _mean_error_ms(repaired.words, row["words"]) < 25 < 40 < _mean_error_ms(kept.words, row["words"])
    # conformance mode hears what openai-whisper would: the file as it is
    assert [(w.start, w.end) for w in conformance.words] == [(w.start, w.end) for w in unrepaired_conformance.words]
    [line] = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(w["start"], w["end"]) for w in line["words"]] == [(w.start, w.end) for w in repaired.words]


def test_transcribe_repairs_a_damaged_file_except_in_conformance_mode(tiny_en: Whisper):
    from whisper_align.tasks.transcribe import transcribe

    row = next(r for r in manifest_rows(support.TIMIT) if r["id"] == DAMAGED_ID)
    path = str(support.TIMIT_DIR / row["audio"])
    conformance = AlignmentConfig(mode="conformance")

    def words(audio: object, config: AlignmentConfig | None = None) -> list[tuple[str, float, float]]:
        result = transcribe(  # no temperature fallback: it samples, and unrepaired audio falls back
            tiny_en, audio, word_timestamps=True, alignment_config=config, language="en", temperature=0.0
        )
        return [(w.word, w.start, w.end) for s in result.segments for w in s.words]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        repaired, kept = load_audio(path), load_audio(path, repair=False)
        assert words(path) == words(repaired) != words(kept)
        assert words(path, conformance) == words(kept, conformance)
        said = " ".join(w.strip(" ,.") for w, _, _ in words(path)).lower()
        assert said == "don't ask me to carry an oily rag like that"  # what the speaker says (the manifest's text)
