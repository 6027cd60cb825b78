"""Speakers from a diarization (RTTM or (start, end, speaker) turns) on words and segments, and in the writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import support
from whisper_align import assign_speakers, read_rttm
from whisper_align.cli import main
from whisper_align.errors import PostprocessError
from whisper_align.results.speakers import SpeakerTurn, majority_speaker, parse_rttm
from whisper_align.results.types import Result, Segment, Word

RTTM = """;; made by a diarization tool
SPEAKER talk 1 0.00 2.50 <NA> <NA> SPEAKER_00 <NA> <NA>
SPKR-INFO talk 1 <NA> <NA> <NA> unknown SPEAKER_00 <NA> <NA>

SPEAKER talk 1 3.00 2.00 <NA> <NA> SPEAKER_01 <NA> <NA>
SPEAKER other 1 0.00 9.00 <NA> <NA> SPEAKER_09 <NA> <NA>
"""


def words(*spans: tuple[str, float, float]) -> list[Word]:
    return [Word(f" {text}", start, end, 0.9) for text, start, end in spans]


def result_of(*groups: list[Word]) -> Result:
    segments = [
        Segment(id=i, seek=0, start=g[0].start, end=g[-1].end, text="".join(w.word for w in g), words=g)
        for i, g in enumerate(groups)
    ]
    return Result(text="".join(s.text for s in segments), segments=segments, language="en")


def test_rttm_lines_by_recording_skipping_comments_and_other_records() -> None:
    recordings = parse_rttm(RTTM)
    assert recordings["talk"] == [SpeakerTurn(0.0, 2.5, "SPEAKER_00"), SpeakerTurn(3.0, 5.0, "SPEAKER_01")]
    assert recordings["other"] == [SpeakerTurn(0.0, 9.0, "SPEAKER_09")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("SPEAKER talk 1 0.0 1.0", "line 2: 5 fields"),
        ("SPEAKER talk 1 zero 1.0 <NA> <NA> A <NA> <NA>", "line 2: start 'zero'"),
        ("SPEAKER talk 1 1.0 -2 <NA> <NA> A <NA> <NA>", "line 2: start 1.0 and duration -2.0"),
        ("SPEAKER talk 1 nan 1 <NA> <NA> A <NA> <NA>", "line 2: start nan"),
    ],
)
def test_bad_rttm_lines_name_the_line(line: str, message: str) -> None:
    with pytest.raises(PostprocessError, match=message):
        parse_rttm("SPEAKER talk 1 0 1 <NA> <NA> A <NA> <NA>\n" + line, "x.rttm")


def test_reading_one_recording(tmp_path: Path) -> None:
    path = tmp_path / "d.rttm"
    path.write_text(RTTM)
    assert [t.speaker for t in read_rttm(path, "talk")] == ["SPEAKER_00", "SPEAKER_01"]
    with pytest.raises(PostprocessError, match="say which one"):
        read_rttm(path)
    with pytest.raises(PostprocessError, match="none is 'nope'"):
        read_rttm(path, "nope")
    (tmp_path / "empty.rttm").write_text(";; nothing\n")
    with pytest.raises(PostprocessError, match="no SPEAKER lines"):
        read_rttm(tmp_path / "empty.rttm")
    with pytest.raises(PostprocessError, match="cannot read"):
        read_rttm(tmp_path / "missing.rttm")


def test_words_get_the_longest_overlap_else_the_nearest_turn() -> None:
    turns = [(0.0, 2.0, "A"), (1.5, 4.0, "B"), (6.0, 8.0, "C")]
    result = result_of(
        words(("a", 0.2, 1.0), ("ab", 1.4, 2.0), ("b", 2.0, 3.0), ("gap_b", 4.2, 4.6), ("gap_c", 5.5, 5.8)),
        words(("zero", 1.2, 1.2), ("c", 6.5, 7.0)),
    )
    out = assign_speakers(result, turns)
    assert [w.speaker for w in out.words] == ["A", "A", "B", "B", "C", "A", "C"]
    assert result.words[0].speaker is None  # a copy: the input is untouched
    assert [w.word for w in out.words] == [w.word for w in result.words]


def test_segment_speaker_is_the_majority_by_duration() -> None:
    # three short words of A, one long word of B: B holds most of the time
    group = words(("a1", 0.0, 0.1), ("a2", 0.1, 0.2), ("a3", 0.2, 0.3), ("b", 1.0, 2.0))
    out = assign_speakers(result_of(group), [(0.0, 0.5, "A"), (0.5, 3.0, "B")])
    assert out.segments[0].speaker == "B"
    zero = [Word(" x", 1, 1, speaker="A"), Word(" y", 2, 2, speaker="B"), Word(" z", 3, 3, speaker="B")]
    assert majority_speaker(zero) == "B"  # no durations: by count


def test_segments_without_words_use_their_span() -> None:
    result = Result(text=" hi", segments=[Segment(id=0, seek=0, start=3.1, end=4.0, text=" hi")])
    assert assign_speakers(result, [(0, 3, "A"), (3, 9, "B")]).segments[0].speaker == "B"


def test_bad_turns_are_typed_errors() -> None:
    result = result_of(words(("a", 0, 1)))
    for turns in ([], [(1, 0, "A")], [("x", 1, "A")], [(0, 1)], [(float("inf"), 2, "A")]):
        with pytest.raises(PostprocessError):
            assign_speakers(result, turns)


def test_json_carries_speakers_only_when_assigned() -> None:
    result = result_of(words(("a", 0.0, 1.0), ("b", 1.0, 2.0)))
    plain = result.to_dict()
    assert "speaker" not in plain["segments"][0] and "speaker" not in plain["segments"][0]["words"][0]
    data = assign_speakers(result, [(0, 9, "SPEAKER_00")]).to_dict()
    assert data["segments"][0]["speaker"] == data["segments"][0]["words"][1]["speaker"] == "SPEAKER_00"
    assert json.dumps(Result.from_dict(json.loads(json.dumps(data))).to_dict()) == json.dumps(data)  # NaN-safe


def test_subtitles_start_each_cue_with_its_speaker() -> None:
    result = result_of(words(("Hi", 0, 0.5), ("there.", 0.5, 1.0)), words(("Hello.", 2.0, 2.5)))
    assert "[" not in result.render("srt")
    named = assign_speakers(result, [(0, 1.5, "SPEAKER_00"), (1.5, 3, "SPEAKER_01")])
    srt = named.render("srt")
    assert "[SPEAKER_00] Hi there." in srt and "[SPEAKER_01] Hello." in srt
    vtt = named.render("vtt", highlight_words=True)
    assert "[SPEAKER_00] <u>Hi</u> there." in vtt and "[SPEAKER_00] Hi <u>there.</u>" in vtt
    without_words = Result(text=" x", segments=[Segment(0, 0, 0.0, 1.0, " x", speaker="S")])
    assert "[S] x" in without_words.render("vtt")


@pytest.mark.slow
def test_cli_align_with_speakers_writes_labelled_subtitles(tmp_path: Path) -> None:
    text = (support.SAMPLES / "demo.txt").read_text().strip()
    rttm = tmp_path / "demo.rttm"
    rttm.write_text(
        "SPEAKER demo 1 0.0 2.3 <NA> <NA> alice <NA> <NA>\nSPEAKER demo 1 2.3 5.0 <NA> <NA> bob <NA> <NA>\n"
    )
    out = tmp_path / "demo.json"
    assert main(["align", str(support.DEMO_WAV), "--text", text, "-o", str(out), "--speakers", str(rttm)]) == 0
    data = json.loads(out.read_text())
    spoken = [(w["word"].strip(), w["speaker"]) for s in data["segments"] for w in s["words"]]
    assert [w for w, _ in spoken] == text.split()
    assert spoken[0] == ("The", "alice") and spoken[-1] == ("fire.", "bob")
    assert [who for _, who in spoken] == sorted(who for _, who in spoken)  # alice's words, then bob's
    srt = tmp_path / "demo.srt"
    args = ["align", str(support.DEMO_WAV), "--text", text, "-o", str(srt), "--speakers", str(rttm), "--regroup"]
    assert main(args) == 0
    assert "[alice] The weather was cold today," in srt.read_text() and "[bob] so we stayed" in srt.read_text()
    manifest = ["align", "--manifest", "m.jsonl", "--out", "o.jsonl", "--speakers", str(rttm)]
    assert main(manifest) == 2
