"""Word and result confidence (issue #14, item 5): each word keeps its probability, a transcription with word
timestamps carries an alignment score and a low-confidence flag (with a warning), ``--min-probability`` marks
doubtful words (``"low_probability": true`` in JSON), ``--filter-low-probability`` leaves them out, and the CLI
warns when words collapse to zero length."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import support
from whisper_align.cli import main
from whisper_align.cli.output_options import quality_warnings
from whisper_align.errors import ResultError
from whisper_align.results.types import Result, Segment, Word

DEMO = support.DEMO_WAV
DEMO_TEXT = (support.SAMPLES / "demo.txt").read_text().strip()


def two_segments() -> Result:
    first = [Word(" sure", 0.0, 0.4, 0.9), Word(" maybe", 0.4, 0.8, 0.2), Word(" yes", 0.8, 1.0, float("nan"))]
    second = [Word(" um", 2.0, 2.2, 0.05), Word(" uh", 2.2, 2.4, 0.1)]
    return Result(
        " sure maybe yes um uh",
        [
            Segment(0, 0, 0.0, 1.0, " sure maybe yes", [1], words=first),
            Segment(1, 0, 2.0, 2.4, " um uh", [2], words=second),
        ],
        "en",
    )


def test_flag_marks_exactly_the_words_below_the_threshold():
    result = two_segments()
    assert result.flag_low_probability(0.3) == 3
    assert [w.word for w in result.words if w.low_probability] == [" maybe", " um", " uh"]
    data = json.loads(json.dumps(result))
    flags = [w.get("low_probability", False) for s in data["segments"] for w in s["words"]]
    assert flags == [False, True, False, True, True]
    assert "low_probability" not in data["segments"][0]["words"][0]  # only where true: openai's schema otherwise
    assert result.flag_low_probability(0.15) == 2  # a new threshold unmarks the words above it
    assert not result.words[1].low_probability
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ResultError, match="between 0 and 1"):
            result.flag_low_probability(bad)


def test_drop_rebuilds_texts_spans_and_ids():
    result = two_segments()
    result.flag_low_probability(0.3)
    assert result.drop_low_probability() == 3
    assert [w.word for w in result.words] == [" sure", " yes"]
    assert [(s.id, s.text, s.start, s.end) for s in result.segments] == [(0, " sure yes", 0.0, 1.0)]
    assert result.text == " sure yes" and json.loads(json.dumps(result))["text"] == " sure yes"
    assert result.drop_low_probability() == 0  # nothing marked any more


def test_collapsed_words_are_warned_about_only_when_many():
    result = two_segments()
    assert quality_warnings(result) == []
    result.segments[0].words[0].end = 0.0  # one of five: not yet a collapse
    assert quality_warnings(result) == []
    for word in result.segments[1].words:
        word.start = word.end = 2.0
    (message,) = quality_warnings(result)
    assert message.startswith("3 of 5 words collapsed to zero length") and "'um' at 2.00 s" in message


@pytest.fixture(scope="module")
def demo_transcription(tiny_en):
    from whisper_align.tasks.transcribe import transcribe

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = transcribe(tiny_en, str(DEMO), temperature=0.0, word_timestamps=True)
    return result, caught


@pytest.mark.slow
def test_a_transcription_carries_its_score(demo_transcription, tiny_en):
    from whisper_align.tasks.transcribe import LOW_CONFIDENCE_SCORE, transcribe

    result, caught = demo_transcription
    probabilities = [w.probability for w in result.words]
    assert all(0.0 < p <= 1.0 for p in probabilities)
    assert result.alignment_score == pytest.approx(math.exp(np.mean(np.log(probabilities))))
    assert result.alignment_score > LOW_CONFIDENCE_SCORE and not result.low_confidence
    assert not [w for w in caught if "may not fit" in str(w.message)]
    data = json.loads(json.dumps(result))
    assert data["alignment_score"] == pytest.approx(result.alignment_score) and data["low_confidence"] is False
    plain = transcribe(tiny_en, str(DEMO), temperature=0.0)  # no words, no score: openai's keys only
    assert plain.alignment_score is None and list(plain) == ["text", "segments", "language"]


@pytest.mark.slow
def test_a_hallucination_on_silence_is_flagged(tiny_en, one_thread):
    """tiny.en hears " you" in 15 s of silence (score 0.07): the text does not fit the audio."""
    from whisper_align.tasks.transcribe import transcribe

    with pytest.warns(UserWarning, match="may not fit the audio"):
        result = transcribe(tiny_en, np.zeros(15 * 16000, dtype=np.float32), word_timestamps=True)
    assert result.words and result.low_confidence and result["low_confidence"] is True


@pytest.mark.slow
def test_cli_marks_and_drops_words_below_the_threshold(tmp_path, capsys, one_thread):
    marked_dir, dropped_dir = tmp_path / "marked", tmp_path / "dropped"
    common = ["transcribe", str(DEMO), "--word-timestamps", "--temperature-increment-on-fallback", "0"]
    assert main([*common, "-o", str(marked_dir), "-f", "json", "--min-probability", "0.9"]) == 0
    err = capsys.readouterr().err
    words = [w for s in json.loads((marked_dir / "demo.json").read_text())["segments"] for w in s["words"]]
    low = [w for w in words if w["probability"] < 0.9]
    assert low and len(low) < len(words)
    assert [w.get("low_probability", False) for w in words] == [w["probability"] < 0.9 for w in words]
    assert f'{len(low)} of {len(words)} words below probability 0.9 marked "low_probability"' in err
    assert "alignment score" in err

    dropping = ["-o", str(dropped_dir), "-f", "all", "--min-probability", "0.9", "--filter-low-probability"]
    assert main([*common, *dropping]) == 0
    kept = [w for s in json.loads((dropped_dir / "demo.json").read_text())["segments"] for w in s["words"]]
    assert [w["word"] for w in kept] == [w["word"] for w in words if w["probability"] >= 0.9]
    cues = [block.split("\n", 2)[2] for block in (dropped_dir / "demo.srt").read_text().strip().split("\n\n")]
    assert " ".join(cues).split() == [w["word"].strip() for w in kept]


def test_cli_option_errors(tmp_path, capsys):
    assert main(["transcribe", str(DEMO), "-o", str(tmp_path), "--filter-low-probability"]) == 2
    assert "--min-probability" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["transcribe", str(DEMO), "--min-probability", "2"])
    assert "not a probability" in capsys.readouterr().err
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "a", "audio": str(DEMO), "text": DEMO_TEXT}) + "\n")
    code = main(["align", "--manifest", str(manifest), "--out", str(tmp_path / "o.jsonl"), "--min-probability", "0.5"])
    assert code == 2 and "do(es) not apply to --manifest" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_align_marks_words_and_prints_them(tmp_path, capsys):
    out = tmp_path / "demo.json"
    assert main(["align", str(DEMO), "--text", DEMO_TEXT, "-o", str(out), "--min-probability", "0.5"]) == 0
    words = json.loads(out.read_text())["segments"][0]["words"]
    assert [w.get("low_probability", False) for w in words] == [w["probability"] < 0.5 for w in words]
    assert main(["align", str(DEMO), "--text", DEMO_TEXT, "--min-probability", "1.0"]) == 0
    table = capsys.readouterr().out
    assert table.count("(low probability)") == len(words)
