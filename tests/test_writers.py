"""Writers: byte-for-byte against openai-whisper's ``whisper.utils`` writers, plus TextGrid parsed back."""

from __future__ import annotations

import io
import json
import os
import random
import re
from pathlib import Path

import pytest

from whisper_align.results import writers
from whisper_align.results.types import Result, Segment, Word
from whisper_align.results.writers import OutputFormatError, format_timestamp, render, write_result

whisper_utils = pytest.importorskip("whisper.utils")


def make_result() -> Result:
    """Three segments: a long pause (> 3 s) before the second, an hour mark in the third, quotes and '-->'."""
    return Result(
        text=' She had your dark suit. In greasy "wash" water --> all year.',
        language="en",
        segments=[
            Segment(
                0,
                0,
                0.0,
                2.5,
                " She had your dark suit.",
                [50364, 220, 221],
                0.0,
                -0.25,
                1.2,
                0.01,
                [
                    Word(" She", 0.48, 0.66, 0.91),
                    Word(" had", 0.66, 0.9, 0.88),
                    Word(" your", 0.9, 0.98, 0.7),
                    Word(" dark", 0.98, 1.3, 0.95),
                    Word(" suit.", 1.3, 1.6, 0.99),
                ],
            ),
            Segment(
                1,
                1500,
                6.0,
                9.0,
                ' In greasy "wash" water',
                [222, 223],
                0.2,
                -0.5,
                1.5,
                0.02,
                [
                    Word(" In", 6.1, 6.2, 0.5),
                    Word(" greasy", 6.2, 6.71, 0.6),
                    Word(' "wash"', 6.71, 7.0, 0.7),
                    Word(" water", 7.2, 7.65, 0.8),
                ],
            ),
            Segment(
                2,
                2000,
                3599.5,
                3601.25,
                " --> all year.",
                [224],
                0.0,
                -0.1,
                1.0,
                0.0,
                [
                    Word(" -->", 3599.5, 3599.6, 0.1),
                    Word(" all", 3599.7, 3600.0, 0.9),
                    Word(" year.", 3600.0004, 3601.2496, 0.9),
                ],
            ),
        ],
    )


def random_result(rng: random.Random) -> Result:
    vocabulary = ["a", "the", "greasy", "wash", "extraordinarily", "I", "don't", "semi-heights", "water,", "yes."]
    segments = []
    t = rng.uniform(0.0, 2.0)
    for index in range(rng.randint(1, 6)):
        words = []
        for _ in range(rng.randint(1, 12)):
            t += rng.choice([0.0, 0.0, 0.02, rng.uniform(0.0, 0.5), rng.uniform(2.5, 4.0)])
            start = round(t, 2)
            t += rng.uniform(0.0, 0.6)
            words.append(Word(" " + rng.choice(vocabulary), start, round(t, 2), rng.random()))
        text = "".join(w.word for w in words)
        segments.append(Segment(index, 0, words[0].start, words[-1].end, text, [1, 2], 0.0, -0.3, 1.3, 0.1, words))
    return Result(text="".join(s.text for s in segments), segments=segments, language="en")


def openai_output(result: Result, fmt: str, tmp_path: Path, **options) -> str:
    buffer = io.StringIO()
    whisper_utils.get_writer(fmt, str(tmp_path)).write_result(result.to_dict(), buffer, options=options)
    if fmt == "vtt":  # our one deliberate difference on this input: WebVTT forbids '-->' in a cue's text
        return "\n".join(
            line if re.fullmatch(r"[\d:.]+ --> [\d:.]+", line) else line.replace("-->", "->")
            for line in buffer.getvalue().split("\n")
        )
    return buffer.getvalue()


def has_degenerate_cues(srt_text: str) -> bool:
    """Whether an SRT has a cue that ends before it starts or overlaps the previous one (ours are tidied then:
    tests/test_strict_parsers.py checks how)."""
    times = re.findall(r"^(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})$", srt_text, re.M)
    spans = [
        (
            int(h1) * 3600000 + int(m1) * 60000 + int(s1) * 1000 + int(f1),
            int(h2) * 3600000 + int(m2) * 60000 + int(s2) * 1000 + int(f2),
        )
        for h1, m1, s1, f1, h2, m2, s2, f2 in times
    ]
    return any(end <= start for start, end in spans) or any(b[0] < a[1] for a, b in zip(spans, spans[1:]))


SUBTITLE_OPTIONS = [
    {},
    {"max_line_width": 12},
    {"max_line_count": 2},
    {"max_line_width": 15, "max_line_count": 2},
    {"max_line_width": 10, "max_line_count": 1},
    {"max_words_per_line": 2},
    {"max_words_per_line": 3, "max_line_width": 8},
    {"highlight_words": True},
    {"highlight_words": True, "max_line_width": 14, "max_line_count": 2},
    {"highlight_words": True, "max_words_per_line": 1},
]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
@pytest.mark.parametrize(
    "options", SUBTITLE_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
def test_subtitles_match_openai(fmt, options, tmp_path):
    result = make_result()
    ours = render(result, fmt, **options)
    assert ours == openai_output(result, fmt, tmp_path, **options)


@pytest.mark.parametrize("fmt", ["json", "tsv", "txt", "srt", "vtt"])
def test_formats_match_openai(fmt, tmp_path):
    result = make_result()
    assert render(result, fmt) == openai_output(result, fmt, tmp_path)


@pytest.mark.parametrize("fmt", ["json", "tsv", "txt", "srt", "vtt"])
def test_formats_without_words_match_openai(fmt, tmp_path):
    result = make_result()
    for segment in result.segments:
        segment.words = []
    ours = render(result, fmt)
    assert ours == openai_output(result, fmt, tmp_path)
    if fmt == "srt":  # segment cues: segment times, '-->' in text defused
        assert "00:59:59,500 --> 01:00:01,250\n-> all year." in ours
    if fmt == "json":
        assert "words" not in json.loads(ours)["segments"][0]


def test_random_results_match_openai(tmp_path):
    rng = random.Random(1234)
    for _ in range(60):
        result = random_result(rng)
        options = rng.choice(SUBTITLE_OPTIONS)
        if has_degenerate_cues(openai_output(result, "srt", tmp_path, **options)):
            continue  # a zero-length word gave openai a zero-length cue; ours lasts 1 ms (3 of the 60)
        for fmt in ("srt", "vtt"):
            assert render(result, fmt, **options) == openai_output(result, fmt, tmp_path, **options), options


def test_subtitle_cue_details():
    srt = render(make_result(), "srt")
    # one cue per segment, spanning its first word's start to its last word's end, hours always shown
    assert srt.startswith("1\n00:00:00,480 --> 00:00:01,600\nShe had your dark suit.\n\n2\n")
    assert "3\n00:59:59,500 --> 01:00:01,250\n--> all year.\n\n" in srt
    vtt = render(make_result(), "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00.480 --> 00:01.600\nShe had your dark suit.\n\n")
    assert "59:59.500 --> 01:00:01.250" in vtt
    highlighted = render(make_result(), "vtt", highlight_words=True)
    assert "00:00.660 --> 00:00.900\nShe <u>had</u> your dark suit.\n" in highlighted
    # the gap between "greasy" ... "water" words (7.00 -> 7.20) is filled by the plain cue
    assert '00:07.000 --> 00:07.200\nIn greasy "wash" water\n' in highlighted


@pytest.mark.parametrize(
    "seconds", [0.0, 0.0004, 0.0005, 0.0015, 1.0, 59.9995, 61.25, 3599.9994, 3599.9996, 3600.0, 7322.123, 36000.5]
)
def test_format_timestamp_matches_openai(seconds):
    for hours in (False, True):
        for marker in (".", ","):
            assert format_timestamp(seconds, hours, marker) == whisper_utils.format_timestamp(seconds, hours, marker)


def test_format_timestamp_rejects_negative():
    with pytest.raises(ValueError, match="negative"):
        format_timestamp(-0.01)


def test_tsv_word_level():
    tsv = render(make_result(), "tsv", word_level=True)
    lines = tsv.splitlines()
    assert lines[0] == "start\tend\ttext"
    assert lines[1] == "480\t660\tShe"
    assert len(lines) == 1 + len(make_result().words)


def test_json_round_trips_through_result():
    result = make_result()
    data = json.loads(render(result, "json", indent=2))
    assert list(data) == ["text", "segments", "language"]
    assert list(data["segments"][0]) == [
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
        "words",
    ]
    assert Result.from_dict(data) == result


def test_result_words_and_to_dict():
    result = make_result()
    assert [w.word for w in result.words][:3] == [" She", " had", " your"]
    assert len(result.words) == 12
    result.segments[1].words = []  # one segment without words still gets a words key, as in openai-whisper
    assert result.to_dict()["segments"][1]["words"] == []
    assert result.words[0].to_dict() == {"word": " She", "start": 0.48, "end": 0.66, "probability": 0.91}


# ---------------------------------------------------------------------------------------------------------------
# file writing


def test_write_result_by_extension(tmp_path):
    result = make_result()
    for name, fmt in [
        ("a.json", "json"),
        ("a.srt", "srt"),
        ("a.vtt", "vtt"),
        ("a.TextGrid", "textgrid"),
        ("a.textgrid", "textgrid"),
        ("a.tsv", "tsv"),
        ("a.TXT", "txt"),
    ]:
        text = write_result(result, tmp_path / name)
        assert text == render(result, fmt)
        assert (tmp_path / name).read_text(encoding="utf-8") == text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a.json", "a.srt", "a.vtt", "a.TextGrid", "a.textgrid", "a.tsv", "a.TXT"]
    )  # no temp files left


def test_write_result_replaces_and_keeps_mode(tmp_path):
    target = tmp_path / "out.srt"
    target.write_text("old content that is longer than nothing\n")
    os.chmod(target, 0o640)
    make_result().write(target)
    assert target.read_text().startswith("1\n00:00:00,480")
    assert target.stat().st_mode & 0o777 == 0o640


def test_write_result_errors(tmp_path):
    result = make_result()
    with pytest.raises(OutputFormatError, match="extension"):
        write_result(result, tmp_path / "out.docx")
    with pytest.raises(OutputFormatError, match="max_line_widht"):
        write_result(result, tmp_path / "out.srt", max_line_widht=3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_result(result, tmp_path / "missing" / "out.srt")
    with pytest.raises(OutputFormatError, match="unknown output format"):
        render(result, "docx")
    assert list(tmp_path.iterdir()) == []


def test_write_format_name_returns_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert make_result().write("srt") == render(make_result(), "srt")
    assert make_result().write("TextGrid") == render(make_result(), "textgrid")
    assert list(tmp_path.iterdir()) == []


def test_options_shared_across_formats():
    # an option of one writer is accepted (and ignored) by the others, so one option set can serve all formats
    assert render(make_result(), "txt", max_line_width=3, duration=9.0) == render(make_result(), "txt")


# ---------------------------------------------------------------------------------------------------------------
# TextGrid


def parse_textgrid(text: str) -> dict:
    """A minimal reader of Praat's long text format: {xmin, xmax, tiers: {name: [(xmin, xmax, text)]}}."""
    lines = text.splitlines()
    assert lines[0] == 'File type = "ooTextFile"'
    assert lines[1] == 'Object class = "TextGrid"'

    def value(line: str, key: str) -> str:
        match = re.fullmatch(rf"\s*{re.escape(key)} = (.*?)\s*", line)
        assert match, (key, line)
        return match.group(1)

    def string(raw: str) -> str:
        assert raw.startswith('"') and raw.endswith('"') and len(raw) >= 2, raw
        inner = raw[1:-1]
        assert re.fullmatch(r'([^"]|"")*', inner), raw  # every inner quote doubled
        return inner.replace('""', '"')

    grid = {"xmin": float(value(lines[3], "xmin")), "xmax": float(value(lines[4], "xmax")), "tiers": {}}
    assert lines[5].strip() == "tiers? <exists>"
    size = int(value(lines[6], "size"))
    assert lines[7].strip() == "item []:"
    k = 8
    for tier_number in range(1, size + 1):
        assert lines[k].strip() == f"item [{tier_number}]:"
        assert string(value(lines[k + 1], "class")) == "IntervalTier"
        name = string(value(lines[k + 2], "name"))
        tier_min, tier_max = float(value(lines[k + 3], "xmin")), float(value(lines[k + 4], "xmax"))
        assert (tier_min, tier_max) == (grid["xmin"], grid["xmax"])
        count = int(value(lines[k + 5], "intervals: size"))
        k += 6
        intervals = []
        for number in range(1, count + 1):
            assert lines[k].strip() == f"intervals [{number}]:"
            intervals.append(
                (
                    float(value(lines[k + 1], "xmin")),
                    float(value(lines[k + 2], "xmax")),
                    string(value(lines[k + 3], "text")),
                )
            )
            k += 4
        grid["tiers"][name] = intervals
    assert k == len(lines)
    return grid


def assert_tiles(intervals, xmin, xmax):
    assert intervals[0][0] == xmin and intervals[-1][1] == xmax
    for (_, end, _), (start, _, _) in zip(intervals, intervals[1:]):
        assert end == start
    assert all(start < end for start, end, _ in intervals)


def test_textgrid_round_trip():
    result = make_result()
    grid = parse_textgrid(render(result, "textgrid"))
    assert grid["xmin"] == 0 and grid["xmax"] == 3601.25  # the last segment end (3601.2496 for the word)
    assert list(grid["tiers"]) == ["words", "segments"]
    for intervals in grid["tiers"].values():
        assert_tiles(intervals, 0.0, grid["xmax"])
    labelled = [(text, start, end) for start, end, text in grid["tiers"]["words"] if text]
    assert labelled == [(w.word.strip(), w.start, w.end) for w in result.words]
    assert ('"wash"', 6.71, 7.0) in labelled  # quotes survive the doubling
    gaps = [(start, end) for start, end, text in grid["tiers"]["words"] if not text]
    assert gaps[:3] == [(0.0, 0.48), (1.6, 6.1), (7.0, 7.2)]  # silences are empty intervals
    segments = [(text, start, end) for start, end, text in grid["tiers"]["segments"] if text]
    assert segments == [(s.text.strip(), s.start, s.end) for s in result.segments]


def test_textgrid_duration_overlaps_and_zero_length_words():
    result = Result(
        text=" a b c d",
        language="en",
        segments=[
            Segment(
                0,
                0,
                0.2,
                1.0,
                " a b c d",
                words=[Word(" a", 0.2, 0.5), Word(" b", 0.4, 0.6), Word(" c", 0.6, 0.6), Word(" d", 0.6, 0.9)],
            )
        ],
    )
    grid = parse_textgrid(render(result, "textgrid", duration=2.5, segments_tier=False))
    assert list(grid["tiers"]) == ["words"] and grid["xmax"] == 2.5
    words = grid["tiers"]["words"]
    assert_tiles(words, 0.0, 2.5)
    # "b" overlapping "a" is clipped to start at a's end; zero-length "c" gets 1 ms and pushes "d"
    assert [(text, start, end) for start, end, text in words] == [
        ("", 0.0, 0.2),
        ("a", 0.2, 0.5),
        ("b", 0.5, 0.6),
        ("c", 0.6, 0.601),
        ("d", 0.601, 0.9),
        ("", 0.9, 2.5),
    ]


def test_textgrid_of_empty_result_is_valid():
    grid = parse_textgrid(render(Result(text="", segments=[], language=None), "textgrid"))
    for intervals in grid["tiers"].values():
        assert_tiles(intervals, 0.0, grid["xmax"])
        assert [text for _, _, text in intervals] == [""]


def test_writers_accept_plain_dicts():
    data = make_result().to_dict()
    assert render(data, "srt") == render(make_result(), "srt")
    assert writers.get_writer(".VTT") is writers.write_vtt
