"""Regrouping segments by their words (whisper_align.regroup): where segments split and merge, and that the words
themselves (their count, order, text and times) never change."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import support
from whisper_align import regroup
from whisper_align.cli import main
from whisper_align.errors import PostprocessError
from whisper_align.results.types import Result, Segment, Word


def words_of(spec: str, start: float = 0.0, gap: float = 0.1, length: float = 0.3) -> list[Word]:
    """Words from text; ``|`` before a word puts a 1-second pause there."""
    out, t = [], start
    for token in spec.split():
        if token.startswith("|"):
            t += 1.0
            token = token[1:]
        out.append(Word(" " + token, round(t, 3), round(t + length, 3), 0.9))
        t += length + gap
    return out


def segment(index: int, words: list[Word], **stats: float) -> Segment:
    return Segment(
        id=index,
        seek=100 * index,
        start=words[0].start,
        end=words[-1].end,
        text="".join(w.word for w in words),
        tokens=[1000 * index + i for i in range(len(words) + 2)],
        words=words,
        **stats,
    )


def result_of(*segments: Segment) -> Result:
    return Result(text="".join(s.text for s in segments), segments=list(segments), language="en")


def texts(result: Result) -> list[str]:
    return [s.text for s in result.segments]


def test_splits_at_sentence_ends_and_pauses_keeping_every_word() -> None:
    words = words_of('Hello world. How are you? I am |fine "thanks!" Bye')
    original = result_of(segment(0, words))
    out = regroup(original)
    assert texts(out) == [" Hello world.", " How are you?", " I am", ' fine "thanks!"', " Bye"]
    assert [w.to_dict() for w in out.words] == [w.to_dict() for w in original.words]
    assert out.text == original.text and [s.id for s in out.segments] == list(range(5))
    assert all(s.start == s.words[0].start and s.end == s.words[-1].end for s in out.segments)


def test_switches_turn_splits_off() -> None:
    words = words_of("Hello world. How are |you")
    assert texts(regroup(result_of(segment(0, words)), punctuation="", max_gap=None)) == [" Hello world. How are you"]
    assert texts(regroup(result_of(segment(0, words)), max_gap=1.5)) == [" Hello world.", " How are you"]


def test_long_segments_are_cut_at_a_comma_or_pause_in_the_second_half() -> None:
    words = words_of("one two three four five six, seven eight nine ten eleven twelve thirteen")
    out = regroup(result_of(segment(0, words)), max_words=8)
    assert texts(out) == [" one two three four five six,", " seven eight nine ten eleven twelve thirteen"]
    plain = words_of(" ".join(f"w{i}" for i in range(23)))
    out = regroup(result_of(segment(0, plain)), max_words=10)
    assert [len(s.words) for s in out.segments] == [10, 10, 3]
    out = regroup(result_of(segment(0, plain)), max_chars=20)
    assert all(len(s.text.strip()) <= 20 for s in out.segments) and len(out.words) == 23


def test_a_word_longer_than_max_chars_stays_whole() -> None:
    words = words_of("a Pneumonoultramicroscopicsilicovolcanoconiosis b")
    out = regroup(result_of(segment(0, words)), max_chars=10)
    assert texts(out) == [" a", " Pneumonoultramicroscopicsilicovolcanoconiosis", " b"]


def test_short_segments_join_a_neighbour_but_not_across_a_pause_or_a_limit() -> None:
    words = words_of("Yes. I agree with you. |Right. Then go.")
    assert texts(regroup(result_of(segment(0, words)), min_words=2)) == [
        " Yes. I agree with you.",
        " Right. Then go.",
    ]
    # "Yes." may not join: the result would be 6 words
    assert texts(regroup(result_of(segment(0, words)), min_words=2, max_words=4))[:2] == [" Yes.", " I agree with you."]


def test_speaker_changes_split_and_name_the_segment() -> None:
    words = words_of("we should go now okay")
    for w, who in zip(words, ["A", "A", "A", "B", "B"]):
        w.speaker = who
    out = regroup(result_of(segment(0, words)))
    assert texts(out) == [" we should go", " now okay"] and [s.speaker for s in out.segments] == ["A", "B"]
    assert texts(regroup(result_of(segment(0, words)), by_speaker=False)) == [" we should go now okay"]


def test_segments_keep_openai_schema_and_statistics() -> None:
    first = segment(0, words_of("Good morning. Here"), avg_logprob=-0.1, temperature=0.0)
    second = segment(1, words_of("we go.", start=1.2), avg_logprob=-0.7, temperature=0.4)
    second.seek = 150
    out = regroup(result_of(first, second))
    assert texts(out) == [" Good morning.", " Here we go."]
    assert out.segments[0].tokens == [] and out.segments[1].tokens == []  # pieces of segments: no token list
    assert out.segments[1].seek == first.seek  # the window of its first word
    assert out.segments[1].avg_logprob == -0.7 and out.segments[1].temperature == 0.4  # 2 of its 3 words
    assert set(out.segments[0].to_dict()) == set(first.to_dict())
    whole = regroup(result_of(first, second), punctuation="", max_gap=None)
    assert whole.segments[0].tokens == first.tokens + second.tokens  # whole segments keep their tokens


def test_segments_without_words_stay_in_place() -> None:
    empty = Segment(id=1, seek=200, start=1.9, end=2.0, text="", words=[])
    out = regroup(result_of(segment(0, words_of("a b")), empty, segment(2, words_of("c d", start=3.0))))
    assert texts(out) == [" a b", "", " c d"] and [s.id for s in out.segments] == [0, 1, 2]


def test_subclass_and_extra_fields_are_kept() -> None:
    from whisper_align.tasks.transcribe import Transcription

    original = Transcription(text=" a b", segments=[segment(0, words_of("a b"))], word_alignment="captured")
    out = regroup(original)
    assert isinstance(out, Transcription) and out.word_alignment == "captured"
    assert original.segments[0].words[0] is not out.segments[0].words[0]  # a copy: the original is untouched


def test_bad_input_is_a_typed_error() -> None:
    no_words = result_of(Segment(id=0, seek=0, start=0, end=1, text=" hi"))
    with pytest.raises(PostprocessError, match="word timestamps"):
        regroup(no_words)
    good = result_of(segment(0, words_of("a b")))
    for options in ({"max_words": 0}, {"max_chars": 2.5}, {"min_words": 0}, {"max_gap": -1}, {"max_gap": "x"}):
        with pytest.raises(PostprocessError):
            regroup(good, **options)


def test_random_results_keep_every_word_and_respect_the_rules() -> None:
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(1, 60)
        words, t = [], 0.0
        for i in range(n):
            t += rng.choice([0.0, 0.05, 0.2, 0.6, 2.0])
            mark = rng.choice(["", "", "", ",", ".", "?"])
            words.append(Word(f" w{i}{mark}", round(t, 3), round(t + 0.2, 3), speaker=rng.choice(["A", "B", None])))
            t += 0.2
        cuts = sorted(rng.sample(range(1, n), min(n - 1, rng.randint(0, 4)))) if n > 1 else []
        pieces = [words[a:b] for a, b in zip([0, *cuts], [*cuts, n])]
        original = result_of(*(segment(i, p) for i, p in enumerate(pieces)))
        max_words = rng.choice([None, 1, 3, 7])
        out = regroup(original, max_words=max_words, max_gap=0.5, min_words=rng.choice([1, 2, 3]))
        assert [w.to_dict() for w in out.words] == [w.to_dict() for w in original.words]
        for seg in out.segments:
            assert max_words is None or len(seg.words) <= max_words
            assert all(b.start - a.end < 0.5 for a, b in zip(seg.words, seg.words[1:]))
            assert seg.text == "".join(w.word for w in seg.words)


@pytest.mark.slow
def test_cli_transcribe_regroups_by_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command = ["transcribe", str(support.DEMO_WAV), "--word-timestamps", "-f", "json", "-o", str(tmp_path)]
    assert main([*command, "--regroup-max-words", "4"]) == 0
    data = json.loads((tmp_path / "demo.json").read_text())
    words = [w["word"] for s in data["segments"] for w in s["words"]]
    assert "".join(words).strip() == (support.SAMPLES / "demo.txt").read_text().strip()
    assert all(1 <= len(s["words"]) <= 4 for s in data["segments"]) and len(data["segments"]) >= 4
    assert [s["id"] for s in data["segments"]] == list(range(len(data["segments"])))
    capsys.readouterr()
    assert main([c for c in command if c != "--word-timestamps"] + ["--regroup"]) == 1
    assert "add --word-timestamps" in capsys.readouterr().err
