"""Our results are openai-whisper's result dicts (issue #14, item 1): code written for ``whisper.transcribe()``'s
return value runs unchanged on ``wa.transcribe`` / ``wa.align`` results, openai-whisper's own writers take them,
and ``json.dump`` writes them; attribute access keeps working on the same objects."""

from __future__ import annotations

import copy
import io
import json
import pickle
import warnings
from pathlib import Path

import pytest
import torch

import support
from whisper_align.results.types import Result, Segment, Word
from whisper_align.results.writers import render

whisper_utils = pytest.importorskip("whisper.utils")

DEMO = support.DEMO_WAV
DEMO_TEXT = (support.SAMPLES / "demo.txt").read_text().strip()
SEGMENT_KEYS = [
    "id",
    "seek",
    "start",
    "end",
    "text",
    "tokens",
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
]
WORD_KEYS = ["word", "start", "end", "probability"]


def hand_made() -> Result:
    """Two segments with words; finite statistics so that equality after pickling is meaningful."""
    first = [Word(" Hello", 0.5, 0.9, 0.9), Word(" world.", 0.9, 1.4, 0.8)]
    second = [Word(" Good", 2.0, 2.3, 0.7), Word(" bye.", 2.3, 2.9, 0.6)]
    return Result(
        text=" Hello world. Good bye.",
        segments=[
            Segment(0, 0, 0.5, 1.4, " Hello world.", [50364, 1, 2, 50434], 0.0, -0.2, 1.1, 0.01, first),
            Segment(1, 0, 2.0, 2.9, " Good bye.", [50464, 3, 4, 50509], 0.0, -0.3, 1.2, 0.02, second),
        ],
        language="en",
    )


def openai_style_summary(result) -> list[str]:
    """What scripts written for openai-whisper do with its result, verbatim patterns."""
    lines = [result["text"].strip(), result["language"]]
    for segment in result["segments"]:
        lines.append(f"[{segment['start']:.2f} --> {segment['end']:.2f}] {segment['text'].strip()}")
        for word in segment.get("words", []):
            lines.append(f"{word['word']}|{word['start']:.2f}|{word['end']:.2f}|{word['probability']:.3f}")
    return lines


def attribute_summary(result: Result) -> list[str]:
    lines = [result.text.strip(), str(result.language)]
    for segment in result.segments:
        lines.append(f"[{segment.start:.2f} --> {segment.end:.2f}] {segment.text.strip()}")
        for word in segment.words:
            lines.append(f"{word.word}|{word.start:.2f}|{word.end:.2f}|{word.probability:.3f}")
    return lines


def openai_writer_output(result, fmt: str, folder: Path, **options) -> str:
    """openai-whisper's writer called as its CLI calls it: ``writer(result, audio_path, options)``."""
    writer = whisper_utils.get_writer(fmt, str(folder))
    writer(result, "a.wav", dict(options))
    return (folder / f"a.{fmt}").read_text(encoding="utf-8")


# ---- the dict view, without a model ------------------------------------------------------------------------------


def test_item_access_reads_what_attributes_read():
    result = hand_made()
    assert isinstance(result, dict) and isinstance(result["segments"][0], dict)
    assert list(result) == ["text", "segments", "language"]
    assert list(result["segments"][0]) == SEGMENT_KEYS + ["words"]
    assert list(result["segments"][0]["words"][0]) == WORD_KEYS
    assert result["segments"][1]["words"][0]["start"] == 2.0
    assert openai_style_summary(result) == attribute_summary(result)
    assert result["segments"] is result.segments and result["segments"][0]["words"] is result.segments[0].words


def test_writes_through_either_view_reach_the_other():
    result = hand_made()
    result["segments"][0]["words"][1]["end"] = 1.5
    assert result.segments[0].words[1].end == 1.5
    result.segments[1].words[0].start = 2.1
    assert result["segments"][1]["words"][0]["start"] == 2.1
    result["text"] = " Changed."
    assert result.text == " Changed." and json.loads(json.dumps(result))["text"] == " Changed."
    result["segments"][0]["words"] = [{"word": " Hi", "start": 0.5, "end": 0.7, "probability": 0.5}]
    assert isinstance(result.segments[0].words[0], Word) and result.segments[0].words[0].word == " Hi"
    result.segments[0].update({"start": 0.4, "note": "A"})
    assert result.segments[0].start == 0.4 and result["segments"][0]["note"] == "A"
    assert result.segments[0].setdefault("start", 9.0) == 0.4
    # numbers become plain floats and ints, so json.dump never meets a numpy or torch scalar
    result.segments[0].words[0].probability = torch.tensor(0.25).item()
    result.segments[0]["seek"] = torch.tensor(3000)
    assert type(result.segments[0].seek) is int and json.dumps(result)


def test_optional_keys_appear_only_when_they_say_something():
    result = hand_made()
    word = result.segments[0].words[0]
    word.past_end = True
    word["low_probability"] = True
    assert list(word) == WORD_KEYS + ["past_end", "low_probability"]
    del word["past_end"]
    assert word.past_end is False and "past_end" not in word
    word.low_probability = False
    assert list(word) == WORD_KEYS
    result.alignment_score = 0.4
    assert result["alignment_score"] == 0.4 and result["low_confidence"] is False
    result.pop("alignment_score")
    assert result.alignment_score is None and "low_confidence" not in result
    # deleting a key openai always has slims the dict view only (scripts do this to shrink their JSON)
    for segment in result["segments"]:
        del segment["tokens"]
    assert "tokens" not in json.loads(json.dumps(result))["segments"][0] and result.segments[0].tokens
    with pytest.raises(KeyError):
        del word["no such key"]


def test_words_key_follows_openai_schema():
    result = hand_made()
    result.segments[1].words = []  # emptied after the fact: keeps its key, like openai's "words": []
    assert result["segments"][1]["words"] == []
    without = Result(" a", [Segment(0, 0, 0.0, 1.0, " a"), Segment(1, 0, 1.0, 2.0, " b")], "en")
    assert all("words" not in segment for segment in without["segments"])
    mixed = Result(" a b", [Segment(0, 0, 0.0, 1.0, " a"), Segment(1, 0, 1.0, 2.0, " b", words=[Word(" b", 1, 2)])])
    assert mixed["segments"][0]["words"] == []  # any segment with words gives every segment the key
    for segment in result.segments:
        segment.words = []
    assert all("words" not in segment for segment in result.to_dict()["segments"])


def test_json_dump_round_trip_and_plain_copies():
    result = hand_made()
    result.segments[0]["note"] = "A"
    buffer = io.StringIO()
    json.dump(result, buffer)
    data = json.loads(buffer.getvalue())
    assert data == result.to_dict() and type(result.to_dict()["segments"][0]) is dict
    again = Result.from_dict(data)
    assert again == result and again.segments[0]["note"] == "A"
    assert json.dumps(again) == json.dumps(result)
    assert render(result, "json") == json.dumps(result)  # our JSON writer writes the dict view


def test_pickle_and_copy_keep_both_views():
    result = hand_made()
    result.segments[0]["note"] = "A"
    for again in (pickle.loads(pickle.dumps(result)), copy.deepcopy(result), copy.copy(result)):
        assert again == result and json.dumps(again) == json.dumps(result)
        assert again.segments[0].words[0].start == 0.5 and again["segments"][0]["note"] == "A"
    clone = copy.deepcopy(result)
    clone.segments[0].words[0].start = 0.1
    assert result["segments"][0]["words"][0]["start"] == 0.5 and clone["segments"][0]["words"][0]["start"] == 0.1


@pytest.mark.parametrize("fmt", ["srt", "vtt", "tsv", "txt", "json"])
@pytest.mark.parametrize("options", [{}, {"highlight_words": True}, {"max_line_width": 12, "max_line_count": 1}])
def test_openai_writers_take_our_result(fmt, options, tmp_path):
    result = hand_made()
    assert openai_writer_output(result, fmt, tmp_path, **options) == render(result, fmt, **options)


# ---- real results: transcription and alignment -------------------------------------------------------------------


@pytest.fixture(scope="module")
def transcription(tiny_en):
    from whisper_align.tasks.transcribe import transcribe

    return transcribe(tiny_en, str(DEMO), temperature=0.0, word_timestamps=True)


@pytest.fixture(scope="module")
def alignment(tiny_en):
    from whisper_align.tasks.align import align

    return align(tiny_en, str(DEMO), DEMO_TEXT)


@pytest.mark.slow
def test_a_transcription_has_openai_keys_in_openai_order(tiny_en, transcription):
    """Against openai-whisper's own ``transcribe()`` on the same weights: the same keys, in the same order."""
    whisper = pytest.importorskip("whisper")
    from dataclasses import asdict

    from whisper_align.frontend.audio import load_audio

    reference = whisper.model.Whisper(whisper.model.ModelDimensions(**asdict(tiny_en.dims)))
    reference.load_state_dict({k: v for k, v in tiny_en.state_dict().items() if k != "alignment_heads"})
    reference.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = whisper.transcribe(
            reference.eval(), torch.from_numpy(load_audio(str(DEMO))), fp16=False, temperature=0.0, word_timestamps=True
        )
    assert list(transcription)[:3] == list(theirs)
    assert set(transcription) - set(theirs) <= {"alignment_score", "low_confidence"}
    assert [list(s) for s in transcription["segments"]] == [list(s) for s in theirs["segments"]]
    assert {tuple(w) for s in transcription["segments"] for w in s["words"]} == {tuple(WORD_KEYS)}
    assert transcription["text"] == theirs["text"]


@pytest.mark.slow
@pytest.mark.parametrize("which", ["transcription", "alignment"])
def test_real_results_through_openai_code_and_writers(which, transcription, alignment, tmp_path):
    result = transcription if which == "transcription" else alignment
    assert openai_style_summary(result) == attribute_summary(result)
    assert len(result["segments"][0]["words"]) == len(result.segments[0].words) > 5
    for fmt in ("srt", "vtt", "tsv", "txt"):
        options = {"highlight_words": True, "max_line_width": 20, "max_line_count": 2}
        assert openai_writer_output(result, fmt, tmp_path, **options) == render(result, fmt, **options)
    with open(tmp_path / "out.json", "w") as handle:
        json.dump(result, handle)
    data = json.loads((tmp_path / "out.json").read_text())
    assert data == result.to_dict() == json.loads(openai_writer_output(result, "json", tmp_path))
    again = Result.from_dict(data)
    assert [(w.word, w.start, w.end, w.probability) for w in again.words] == [
        (w.word, w.start, w.end, w.probability) for w in result.words
    ]
    all_writer = whisper_utils.get_writer("all", str(tmp_path))
    all_writer(result, "every.wav", {"highlight_words": False, "max_line_width": None, "max_line_count": None})
    assert (tmp_path / "every.srt").read_text(encoding="utf-8") == render(result, "srt")


def test_speakers_are_optional_keys_and_label_cues():
    result = hand_made()
    assert all("speaker" not in w for w in result.words) and "speaker" not in result["segments"][1]
    result["segments"][0]["words"][0]["speaker"] = "A"
    result.segments[1].speaker = "B"
    assert result.segments[0].words[0].speaker == "A" and result["segments"][1]["speaker"] == "B"
    assert render(result, "srt").split("\n")[2] == "[A] Hello world."
    for segment in result.segments:
        segment.words = []
    assert "\n[B] Good bye.\n" in render(result, "srt")
    del result.segments[1]["speaker"]
    assert result.segments[1].speaker is None
