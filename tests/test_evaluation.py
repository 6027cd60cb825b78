"""Word-timing metrics on hand-made examples with known answers, word matching, and manifest reading."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

import support
from whisper_align.errors import ManifestError
from whisper_align.results import evaluation
from whisper_align.results.evaluation import as_timed_words, format_table, match_words, normalize_words, score
from whisper_align.results.manifest import load_manifest
from whisper_align.results.types import Result, Segment, Word

EVAL_DIR = support.EVAL

approx = lambda x: pytest.approx(x, abs=1e-9)  # noqa: E731  (exact up to float rounding)


# ---------------------------------------------------------------------------------------------------------------
# normalisation


@pytest.mark.parametrize(
    "text, expected",
    [
        ("She had your dark suit.", ["she", "had", "your", "dark", "suit"]),
        ("Don't ask me!", ["don't", "ask", "me"]),
        ("semi-heights", ["semi", "heights"]),
        ("well\u2014known \u201cquotes\u201d", ["well", "known", "quotes"]),
        ("It\u2019s 'quoted' dogs'", ["it's", "quoted", "dogs"]),
        (" -- ... ", []),
        ("U.S.A. co-op's", ["usa", "co", "op's"]),
        ("Caf\u00e9 na\u00efve", ["caf\u00e9", "na\u00efve"]),
    ],
)
def test_normalize_words(text, expected):
    assert normalize_words(text) == expected


def test_normalize_words_takes_a_list():
    assert normalize_words([" Hello,", "semi-heights", "--"]) == ["hello", "semi", "heights"]
    with pytest.raises(TypeError, match="string"):
        normalize_words([1, 2])


# ---------------------------------------------------------------------------------------------------------------
# matching


def timed(words: str, start: float = 0.0, step: float = 0.5):
    return [(w, start + k * step, start + (k + 1) * step) for k, w in enumerate(words.split())]


def test_match_identical_up_to_case_and_punctuation():
    ref = timed("she had your dark suit")
    hyp = timed("She had your dark suit.")
    assert match_words(ref, hyp) == [(k, k) for k in range(5)]


def test_match_insertions_deletions_substitutions():
    ref = timed("she had your dark suit in greasy wash water")
    hyp = timed("uh she had dark suits in greasy wash water all year")
    # "your" deleted, "suit" -> "suits" substituted (not matched), "uh", "all", "year" inserted
    assert match_words(ref, hyp) == [(0, 1), (1, 2), (3, 3), (5, 5), (6, 6), (7, 7), (8, 8)]


def test_match_hyphenated_hypothesis_pieces_share_the_word():
    ref = [("the", 0.0, 0.1), ("semi", 0.1, 0.4), ("heights", 0.4, 0.9), ("rose", 0.9, 1.2)]
    hyp = [(" The", 0.0, 0.1), (" semi-heights,", 0.12, 0.88), (" rose", 0.9, 1.2)]
    assert match_words(ref, hyp) == [(0, 0), (1, 1), (2, 1), (3, 2)]


def test_match_hyphenated_reference():
    ref = [("a", 0.0, 0.2), ("well-known", 0.2, 0.8)]
    hyp = [("a", 0.0, 0.2), ("well", 0.2, 0.5), ("known", 0.5, 0.8)]
    assert match_words(ref, hyp) == [(0, 0), (1, 1), (1, 2)]


def test_match_prefers_the_occurrence_closest_in_time():
    ref = [("the", 0.0, 0.2), ("cat", 0.2, 0.5), ("saw", 0.5, 0.8), ("the", 0.8, 1.0), ("dog", 1.0, 1.4)]
    late = [("the", 0.79, 1.0), ("dog", 1.0, 1.4)]
    early = [("the", 0.01, 0.2), ("dog", 1.0, 1.4)]
    assert match_words(ref, late) == [(3, 0), (4, 1)]
    assert match_words(ref, early) == [(0, 0), (4, 1)]


def test_match_never_trades_a_match_for_time():
    # pairing hyp "a" with the near ref "a" would cost the match of "b"; the count wins
    ref = [("a", 0.0, 0.1), ("b", 0.1, 0.2), ("a", 9.0, 9.1)]
    hyp = [("b", 5.0, 5.1), ("a", 0.0, 0.1)]
    assert match_words(ref, hyp) == [(1, 0), (2, 1)]


def test_match_empty_and_unmatchable():
    assert match_words([], timed("a b")) == []
    assert match_words(timed("a b"), []) == []
    assert match_words(timed("-- ..."), timed("-- ...")) == []


def lcs_length(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def check_pairs(ref, hyp, pairs):
    assert all(normalize_words(ref[i][0]) == normalize_words(hyp[j][0]) for i, j in pairs)
    assert pairs == sorted(pairs) and len({j for _, j in pairs}) == len(pairs)  # monotone, one-to-one
    assert all(j1 < j2 for (_, j1), (_, j2) in zip(pairs, pairs[1:]))


def test_match_is_a_longest_common_subsequence_on_random_input(monkeypatch):
    rng = random.Random(7)
    for _ in range(200):
        ref = [(rng.choice("abcd"), rng.random(), rng.random()) for _ in range(rng.randint(0, 15))]
        hyp = [(rng.choice("abcde"), rng.random(), rng.random()) for _ in range(rng.randint(0, 15))]
        pairs = match_words(ref, hyp)
        check_pairs(ref, hyp, pairs)
        assert len(pairs) == lcs_length([w for w, _, _ in ref], [w for w, _, _ in hyp])
    # very long inputs fall back to difflib: still valid pairs of equal words
    monkeypatch.setattr(evaluation, "_MAX_CELLS", 0)
    ref, hyp = timed("a b c a b c d"), timed("a c b a d")
    pairs = match_words(ref, hyp)
    check_pairs(ref, hyp, pairs)
    assert len(pairs) >= 3


def test_words_in_every_form():
    forms = [("hi", 1.0, 2.0), Word(" hi", 1.0, 2.0, 0.5), {"word": "hi", "start": 1, "end": 2}]
    assert [as_timed_words([f])[0][1:] for f in forms] == [(1.0, 2.0)] * 3
    result = Result(text=" hi", segments=[Segment(0, 0, 1.0, 2.0, " hi", words=[Word(" hi", 1.0, 2.0)])])
    assert as_timed_words(result) == [(" hi", 1.0, 2.0)]
    with pytest.raises(ValueError, match="'end'"):
        as_timed_words([{"word": "hi", "start": 1}])
    with pytest.raises(TypeError, match="timed word"):
        as_timed_words(["hi"])


# ---------------------------------------------------------------------------------------------------------------
# metrics

REF = [("she", 1.00, 1.20), ("had", 1.20, 1.50), ("your", 1.50, 1.70), ("dark", 1.70, 2.00)]
HYP = [("She", 1.01, 1.23), ("had", 1.25, 1.40), ("dark", 1.90, 2.00), ("suit", 2.00, 2.30), ("in", 2.3, 2.4)]
# matched: she (+10 ms, +30 ms), had (+50, -100), dark (+200, 0); "your" missed; "suit", "in" inserted


def test_score_known_answers():
    m = score([(REF, HYP)])
    assert (m.n_utterances, m.n_ref_words, m.n_hyp_words, m.n_matched) == (1, 4, 5, 3)
    assert m.matched_share == 0.75
    assert m.start_mae_ms == approx(260 / 3)
    assert m.end_mae_ms == approx(130 / 3)
    assert m.start_bias_ms == approx(260 / 3)
    assert m.end_bias_ms == approx(-70 / 3)
    assert m.median_abs_ms == approx(40.0)  # |errors| 0 10 30 50 100 200
    assert m.within == {20: approx(2 / 6), 50: approx(4 / 6), 100: approx(5 / 6), 200: approx(1.0)}
    # 4 boundaries within 50 ms (50 ms exactly counts); 10 hypothesis and 8 reference boundaries
    assert m.tolerance_ms == 50.0
    assert (m.precision, m.recall) == (approx(0.4), approx(0.5))
    assert m.f1 == approx(2 * 0.4 * 0.5 / 0.9)


def test_score_tolerance_and_thresholds():
    m = score([(REF, HYP)], tolerance=0.2, thresholds_ms=(5, 100))
    assert m.within == {5: approx(1 / 6), 100: approx(5 / 6)}
    assert (m.precision, m.recall) == (approx(6 / 10), approx(6 / 8))
    with pytest.raises(ValueError, match="tolerance"):
        score([(REF, HYP)], tolerance=-1)


def test_score_pools_utterances_and_keeps_breakdown():
    perfect = timed("all year", 3.0)
    m = score({"u1": (REF, HYP), "u2": (perfect, perfect)}, per_utterance=True)
    assert (m.n_utterances, m.n_ref_words, m.n_hyp_words, m.n_matched) == (2, 6, 7, 5)
    assert m.start_mae_ms == approx(260 / 5)
    assert m.median_abs_ms == approx(5.0)  # |errors| four zeros then 0 10 30 50 100 200
    assert (m.precision, m.recall) == (approx((4 + 4) / 14), approx((4 + 4) / 12))
    assert set(m.utterances) == {"u1", "u2"}
    assert m.utterances["u1"].to_dict() == score([(REF, HYP)]).to_dict()
    assert m.utterances["u2"].start_mae_ms == 0.0 and m.utterances["u2"].f1 == 1.0
    # the same pooled numbers from (id, ref, hyp) triples and from plain pairs
    triples = score([("u1", REF, HYP), ("u2", perfect, perfect)])
    plain = score([(REF, HYP), (perfect, perfect)])
    assert triples.to_dict() == plain.to_dict() == {k: v for k, v in m.to_dict().items() if k != "utterances"}
    with pytest.raises(ValueError, match="twice"):
        score([("u1", REF, HYP), ("u1", REF, HYP)])


def test_score_hyphen_pieces_take_the_whole_word_times():
    ref = [("semi", 1.0, 1.4), ("heights", 1.4, 2.0)]
    hyp = [("semi-heights", 1.0, 2.0)]
    m = score([(ref, hyp)])
    assert (m.n_ref_words, m.n_hyp_words, m.n_matched) == (2, 2, 2)
    assert m.start_mae_ms == approx(200.0)  # 0 for semi, 400 for heights
    assert m.end_mae_ms == approx(300.0)  # 600 for semi, 0 for heights


def test_score_degenerate_cases_are_nan_not_errors():
    m = score([(REF, [])])
    assert m.n_matched == 0 and m.matched_share == 0.0 and m.recall == 0.0
    assert math.isnan(m.start_mae_ms) and math.isnan(m.median_abs_ms) and math.isnan(m.precision)
    assert math.isnan(m.f1) and math.isnan(m.within[50])
    empty = score([])
    assert empty.n_utterances == 0 and math.isnan(empty.matched_share)
    assert json.loads(json.dumps(empty.to_dict())) is not None  # NaN is still serialisable by json


def test_metrics_to_dict_and_table():
    m = score([(REF, HYP)], per_utterance=True)
    data = m.to_dict()
    assert data["within_50ms"] == approx(4 / 6) and data["n_matched"] == 3 and "utterances" in data
    table = format_table({"tiny.en": m, "nothing": score([(REF, [])])})
    lines = table.splitlines()
    assert len(lines) == 4
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = dict(zip(header, (c.strip() for c in lines[2].strip("|").split("|"))))
    assert row[""] == "tiny.en" and row["ref words"] == "4" and row["matched"] == "75.0%"
    assert row["start MAE ms"] == "86.7" and row["median ms"] == "40.0" and row["<=50ms"] == "66.7%"
    assert row["P@50ms"] == "40.0%" and row["F1@50ms"] == "44.4%"
    assert "| -" in lines[3] or " - |" in lines[3]
    assert len({len(line) for line in lines}) == 1  # aligned


# ---------------------------------------------------------------------------------------------------------------
# manifests


def write_manifest(folder: Path, lines: list[str]) -> Path:
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = {
    "id": "u1",
    "audio": "audio/u1.wav",
    "text": "She had.",
    "speaker": "s1",
    "duration": 2.0,
    "gt_kind": "human",
    "words": [{"word": "she", "start": 0.1, "end": 0.3}, {"word": "had", "start": 0.3, "end": 0.6}],
}


def test_load_manifest(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "u1.wav").write_bytes(b"")
    path = write_manifest(tmp_path, [json.dumps(GOOD), "", json.dumps({"id": 2, "audio": "/abs/x.wav", "text": ""})])
    first, second = load_manifest(path, check_audio=False)
    assert first.id == "u1" and first.audio == tmp_path / "audio" / "u1.wav" and first.audio.is_absolute()
    assert first.words == [("she", 0.1, 0.3), ("had", 0.3, 0.6)]
    assert (first.speaker, first.duration, first.extra) == ("s1", 2.0, {"gt_kind": "human"})
    assert second.id == "2" and second.audio == Path("/abs/x.wav") and second.words is None
    with pytest.raises(ManifestError, match=r"line 3: audio file '/abs/x.wav' does not exist"):
        load_manifest(path, check_audio=True)


def test_load_manifest_resolves_relative_to_the_manifest(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    write_manifest(tmp_path / "sub", [json.dumps(GOOD)])
    monkeypatch.chdir(tmp_path)
    (utterance,) = load_manifest("sub/manifest.jsonl")
    assert utterance.audio == tmp_path / "sub" / "audio" / "u1.wav"


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"id": "u2", "audio": "a.wav", "text": "x"', r"line 2: not valid JSON"),
        ('["u2", "a.wav"]', r"line 2: expected a JSON object"),
        ('{"id": "u2", "text": "x"}', r"line 2: missing required field 'audio'"),
        ('{"id": "u2", "audio": "a.wav"}', r"line 2: missing required field 'text'"),
        ('{"id": "u2", "audio": 3, "text": "x"}', r"line 2: field 'audio' must be a string"),
        ('{"id": "u2", "audio": "a.wav", "text": "x", "words": "x"}', r"line 2: field 'words' must be a list"),
        (
            '{"id": "u2", "audio": "a.wav", "text": "x", "words": [{"word": "x", "start": 0.1}]}',
            r"line 2: words\[0\] lacks 'end'",
        ),
        (
            '{"id": "u2", "audio": "a.wav", "text": "x", "words": [{"word": "x", "start": 0.5, "end": 0.1}]}',
            r"line 2: words\[0\] \('x'\): need numbers 0 <= start <= end",
        ),
        ('{"id": "u2", "audio": "a.wav", "text": "x", "duration": -1}', r"line 2: field 'duration'"),
        ('{"id": "u1", "audio": "a.wav", "text": "x"}', r"line 2: id 'u1' already used on line 1"),
    ],
)
def test_load_manifest_errors_name_the_line(tmp_path, bad_line, message):
    path = write_manifest(tmp_path, [json.dumps(GOOD), bad_line])
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


def test_load_manifest_missing_or_empty(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nope.jsonl")
    with pytest.raises(ManifestError, match="no utterances"):
        load_manifest(write_manifest(tmp_path, ["", "  "]))


@pytest.mark.parametrize("name, count", [("timit-dev", 80), ("festival", 390)])
def test_shared_eval_manifests(name, count):
    path = EVAL_DIR / name / "manifest.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    utterances = load_manifest(path, check_audio=True)
    assert len(utterances) == count
    assert all(u.words for u in utterances)
    # every reference word matches itself; its words are the normalised transcript
    references = {u.id: (u.words, u.words) for u in utterances}
    m = score(references)
    assert m.matched_share == 1.0 and m.start_mae_ms == 0.0 and m.f1 == 1.0
    assert all(normalize_words(u.text) == normalize_words([w for w, _, _ in u.words]) for u in utterances)
    # shifting every hypothesis word 30 ms late gives exactly 30 ms error and no boundary within 20 ms
    shifted = {key: (ref, [(w, s + 0.03, e + 0.03) for w, s, e in ref]) for key, (ref, _) in references.items()}
    m = score(shifted)
    assert m.start_mae_ms == approx(30.0) and m.end_mae_ms == approx(30.0)
    assert m.within[20] == 0.0 and m.within[50] == 1.0
