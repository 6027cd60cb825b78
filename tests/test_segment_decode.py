"""The word-level global decode of word boundaries (alignment/segment_decode.py): exact marginals, reach beyond
the refinement's radius, order and count of words, and the parameters' ``joint`` switch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from whisper_align.alignment.boundary_features import FEATURE_NAMES
from whisper_align.alignment.refine import BoundaryModel, RefineParams, frame_tracks, refine_boundaries
from whisper_align.alignment.segment_decode import Boundary, chain_marginals, decode_chain
from whisper_align.alignment.word_refinement import (
    UNHEARD_PROBABILITY,
    UNHEARD_TEXT_END,
    lagging_tail,
    squeezed_tail,
    unheard_tail,
)
from whisper_align.alignment.words import WordTiming
from whisper_align.errors import RefineError

WORDS = [(50, 90), (130, 200), (240, 270)]  # true (start, end) frames of three words heard in silence
LETTERS = [6, 10, 5]  # letters giving the duration prior's expected lengths of about 0.4, 0.7 and 0.3 s


def loudness_params(radius: int = 25) -> RefineParams:
    """A hand-made scorer: a boundary is where the word's side is loud and the other side quiet (the ``rise``
    features), with a mild prior towards the coarse time."""
    weights = np.zeros(len(FEATURE_NAMES))
    weights[FEATURE_NAMES.index("rise_2")] = 2.0
    weights[FEATURE_NAMES.index("rise_5")] = 3.0
    weights[FEATURE_NAMES.index("|offset|")] = -1.0
    model = BoundaryModel(np.zeros(len(FEATURE_NAMES)), np.ones(len(FEATURE_NAMES)), weights)
    return RefineParams(radius, model, model)


def synthetic_mel(n_frames: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    level = np.full(n_frames, -1.0)
    for start, end in WORDS:
        level[start:end] = 1.0
    return level[None, :] + 0.05 * rng.normal(size=(80, n_frames))


def test_marginals_equal_brute_force_enumeration():
    rng = np.random.default_rng(1)
    chain = [Boundary(3 * j + int(rng.integers(0, 3)), rng.normal(size=int(rng.integers(3, 6)))) for j in range(4)]
    tables = [rng.normal(size=41) for _ in range(3)]
    gaps = [2, 0, 1]
    kernels = [(lambda d, t=t, g=g: np.where(d >= g, t[np.clip(d + 20, 0, 40)], -np.inf)) for t, g in zip(tables, gaps)]
    marginals = chain_marginals(chain, kernels)
    expected = [np.zeros(len(b.scores)) for b in chain]
    for choice in itertools.product(*[range(len(b.scores)) for b in chain]):
        f = [b.first + i for b, i in zip(chain, choice)]
        log_weight = sum(b.scores[i] for b, i in zip(chain, choice))
        log_weight += sum(float(kernels[j](np.array(f[j + 1] - f[j]))) for j in range(3))
        for j, i in enumerate(choice):
            expected[j][i] += np.exp(log_weight)
    for got, want in zip(marginals, expected):
        np.testing.assert_allclose(got, want / want.sum(), atol=1e-12)


def test_lagging_words_are_found_beyond_the_radius():
    """DTW lagging 0.4 s behind the last two words (farther than the 25-frame radius): the boundary-by-boundary
    refinement cannot reach them, the global decode puts every boundary within 20 ms of the truth."""
    params, mel = loudness_params(), synthetic_mel()
    starts = np.array([0.50, 1.70, 2.80])
    ends = np.array([0.90, 2.40, 3.10])
    true_starts = np.array([s for s, _ in WORDS]) / 100
    true_ends = np.array([e for _, e in WORDS]) / 100
    old_starts, old_ends = refine_boundaries(params, frame_tracks(mel), starts, ends)
    assert np.abs(old_starts - true_starts).max() > 0.1  # the radius stops it
    new_starts, new_ends = decode_chain(params, frame_tracks(mel), starts, ends, LETTERS)
    np.testing.assert_allclose(new_starts, true_starts, atol=0.02)
    np.testing.assert_allclose(new_ends, true_ends, atol=0.02)


def test_words_stay_in_order_and_none_is_lost():
    """Coarse times that cross and words with no evidence at all: as many words come back, in order, each at
    least two frames long, all inside the clip."""
    params = loudness_params()
    mel = np.zeros((80, 200))  # no acoustic evidence anywhere
    starts = np.array([0.10, 0.60, 0.50, 1.20, 1.95])
    ends = np.array([0.70, 0.55, 1.30, 1.20, 2.00])
    new_starts, new_ends = decode_chain(params, frame_tracks(mel), starts, ends, [3, 1, 8, 2, 4])
    assert len(new_starts) == len(new_ends) == 5
    assert np.all(new_ends - new_starts >= 0.02 - 1e-9)
    assert np.all(new_starts[1:] >= new_ends[:-1])
    assert new_starts[0] >= 0 and new_ends[-1] <= 2.0


def test_bad_lengths_and_missing_states_are_typed_errors():
    params, tracks = loudness_params(), frame_tracks(synthetic_mel())
    with pytest.raises(RefineError, match="equally long"):
        decode_chain(params, tracks, np.array([0.5, 1.3]), np.array([0.9, 2.0]), [4])
    with pytest.raises(RefineError, match="states"):
        params.detectors = {"start": None, "end": None}  # type: ignore[dict-item]
        decode_chain(params, tracks, np.array([0.5]), np.array([0.9]), [4])


def test_joint_switch_round_trips_and_old_parameters_load_with_it_on():
    params = loudness_params()
    params.joint = False
    data = params.to_dict()
    assert RefineParams.from_dict(data).joint is False
    del data["joint"]  # parameters saved before the global decode existed
    assert RefineParams.from_dict(data).joint is True


def _words(letters_and_flags: list[tuple[str, bool]], probability: float, seconds_each: float) -> list[WordTiming]:
    out, t = [], 0.2
    for word, flagged in letters_and_flags:
        if flagged:
            out.append(WordTiming(f" {word}", [1], 9.0, 9.0, probability, past_end=True))
        else:
            out.append(WordTiming(f" {word}", [1], t, t + seconds_each, probability))
            t += seconds_each
    return out


SENTENCE = [("she", False), ("had", False), ("your", False), ("dark", False), ("suit", False), ("in", False),
            ("greasy", True), ("wash", True), ("water", True), ("all", True), ("year", True)]  # fmt: skip


def test_a_barely_heard_clip_whose_length_fits_every_word_is_a_lagging_path() -> None:
    words = _words(SENTENCE, 0.004, 0.2)
    expected_all = sum(np.exp(-2.803 + 1.065 * np.log(len(w.word.strip()))) for w in words)
    assert lagging_tail(words, 0.2 + expected_all)  # the audio holds about all of the words
    assert not lagging_tail(words, 0.2 + 0.55 * expected_all)  # about the unflagged words only: cut short
    assert not lagging_tail(_words(SENTENCE, 0.6, 0.2), 0.2 + expected_all)  # heard well: the flags stand
    assert not lagging_tail(_words(SENTENCE, 0.0, 0.2), 0.2 + expected_all)  # no probabilities computed
    assert not lagging_tail(_words([(w, False) for w, _ in SENTENCE], 0.004, 0.2), 9.0)  # nothing flagged
    assert not lagging_tail(_words([(w, True) for w, _ in SENTENCE], 0.004, 0.2), 9.0)  # nothing heard


def _cut_clip(tail_probability: float, tail_seconds: float, heard_probability: float = 0.8) -> list[WordTiming]:
    """Seven words heard 0.3 s each from 0.2 s, then "wash water all" sharing ``tail_seconds`` before 2.5 s,
    a punctuation mark between them (pre-merge words)."""
    out = [WordTiming(f" {w}", [1], 0.2 + 0.3 * i, 0.5 + 0.3 * i, heard_probability) for i, w in enumerate(
        ["she", "had", "your", "dark", "suit", "in", "greasy"])]  # fmt: skip
    t, step = 2.5 - tail_seconds, tail_seconds / 3
    for w in [" wash", ",", " water", " all"]:
        if w == ",":
            out.append(WordTiming(w, [2], t, t, 0.9))
            continue
        out.append(WordTiming(w, [1], t, t + step, tail_probability))
        t += step
    return out


def test_a_squeezed_tail_the_decoder_does_not_expect_is_flagged_past_the_end() -> None:
    words = _cut_clip(UNHEARD_PROBABILITY / 10, 0.06)
    assert unheard_tail(words, 2.5) == 3  # three spoken words newly flagged (the comma too, uncounted)
    assert [w.past_end for w in words] == [False] * 7 + [True] * 4
    assert all(w.start == w.end == 2.5 for w in words[7:])
    assert words[6].end == 2.3  # the heard words keep their times


def test_a_tail_already_partly_flagged_extends_to_the_squeezed_words_before_it() -> None:
    words = _cut_clip(UNHEARD_PROBABILITY / 10, 0.06)
    words[-1].past_end = True
    assert unheard_tail(words, 2.5) == 2
    assert [w.past_end for w in words] == [False] * 7 + [True] * 4


@pytest.mark.parametrize(
    "words, why",
    [
        (_cut_clip(UNHEARD_PROBABILITY * 10, 0.06), "the decoder expects the words: heard"),
        (_cut_clip(UNHEARD_PROBABILITY / 10, 0.9), "the words have their speaking time: heard, if unclear"),
        (_cut_clip(UNHEARD_PROBABILITY / 10, 0.06, heard_probability=0.01), "nothing recognised: no trust"),
        (_cut_clip(0.0, 0.06, heard_probability=0.0), "no probabilities computed"),
    ],
)
def test_a_trailing_run_is_left_alone_unless_unexpected_squeezed_and_after_recognised_words(words, why) -> None:
    before = [(w.start, w.end, w.past_end) for w in words]
    assert unheard_tail(words, 2.5) == 0, why
    assert [(w.start, w.end, w.past_end) for w in words] == before


def test_an_unexpected_word_before_an_expected_last_word_is_not_flagged() -> None:
    words = _cut_clip(UNHEARD_PROBABILITY / 10, 0.06)
    words[-1].probability = 0.9
    assert unheard_tail(words, 2.5) == 0
    assert not any(w.past_end for w in words)


def _ending_at(place: int, probability: float, n_tokens: int = 11) -> list[float]:
    """Text-end probabilities of a _cut_clip's 11 tokens (one a word): ``probability`` in token ``place``'s place."""
    ends = [UNHEARD_TEXT_END / 100] * n_tokens
    ends[place] = probability
    return ends


def test_words_in_whose_place_the_decoder_ends_the_text_are_flagged_even_when_expected() -> None:
    """A decoder that reads the audio as over would end the text in place of " wash": that word and the rest are
    past the end, although the decoder expects them (probability 0.5: the rule on unexpected words keeps them)."""
    words = _cut_clip(0.5, 0.06)
    assert unheard_tail(words, 2.5) == 0
    assert unheard_tail(words, 2.5, text_ends=_ending_at(7, 2 * UNHEARD_TEXT_END)) == 3
    assert [w.past_end for w in words] == [False] * 7 + [True] * 4
    assert all(w.start == w.end == 2.5 for w in words[7:]) and words[6].end == 2.3


def test_an_ending_in_place_of_a_punctuation_mark_flags_the_words_after_it() -> None:
    words = _cut_clip(0.5, 0.06)
    assert unheard_tail(words, 2.5, text_ends=_ending_at(8, 2 * UNHEARD_TEXT_END)) == 2  # the comma's place
    assert [w.past_end for w in words] == [False] * 9 + [True] * 2  # " wash" and its comma are heard


@pytest.mark.parametrize(
    "tail_seconds, ends, why",
    [
        (0.06, _ending_at(7, UNHEARD_TEXT_END / 2), "the ending is not likely enough"),
        (0.06, _ending_at(0, 0.9), "ending before the first word: nothing heard, nothing to trust"),
        (0.06, [], "no text-end probabilities computed"),
        (0.9, _ending_at(7, 2 * UNHEARD_TEXT_END), "the words have their speaking time: heard"),
        (0.65, _ending_at(7, 2 * UNHEARD_TEXT_END), "most of their speaking time (0.8 of it): a fast speaker"),
    ],
)
def test_a_tail_the_decoder_expects_and_would_not_end_before_is_left_alone(tail_seconds, ends, why) -> None:
    words = _cut_clip(0.5, tail_seconds)
    assert unheard_tail(words, 2.5, text_ends=ends) == 0, why
    assert not any(w.past_end for w in words)


def test_the_earlier_of_the_two_runs_is_flagged() -> None:
    """Unexpected and squeezed from " wash" on, but the text ends in place of " greasy": flagged from there."""
    words = _cut_clip(UNHEARD_PROBABILITY / 10, 0.06)
    assert unheard_tail(words, 2.5, text_ends=_ending_at(6, 2 * UNHEARD_TEXT_END)) == 4
    assert [w.past_end for w in words] == [False] * 6 + [True] * 5


def test_a_barely_heard_clip_that_fits_all_its_words_is_not_taken_as_ended() -> None:
    """The same text end on a clip the decoder barely recognises, whose 2.3 s of speech fit all eleven words
    (a lagging path, as lagging_tail judges), is confusion: nothing flagged. Recognised, it is a cut."""
    ends = _ending_at(7, 2 * UNHEARD_TEXT_END)
    assert unheard_tail(_cut_clip(0.5, 0.06, heard_probability=0.005), 2.5, text_ends=ends) == 0
    assert unheard_tail(_cut_clip(0.5, 0.06, heard_probability=0.8), 2.5, text_ends=ends) == 3


def _spoken_at_pace(pace: float, last_three_in: float | None = None) -> tuple[list[WordTiming], float]:
    """SENTENCE's words one after another, each taking ``pace`` times its expected speaking time (the duration
    prior); with ``last_three_in`` the last three share that many seconds at the end. Returns (words, duration)."""
    lengths = [pace * np.exp(-2.803 + 1.065 * np.log(len(w))) for w, _ in SENTENCE]
    if last_three_in is not None:
        lengths[-3:] = [last_three_in / 3] * 3
    bounds = np.concatenate([[0.1], 0.1 + np.cumsum(lengths)])
    words = [WordTiming(f" {w}", [1], float(a), float(b), 0.8) for (w, _), a, b in zip(SENTENCE, bounds, bounds[1:])]
    return words, float(bounds[-1])


def test_a_tail_squeezed_into_the_end_is_what_packing_realigns() -> None:
    """The cut shape (the last three words in the last 0.06 s, or a word flagged at the end) is a squeezed tail;
    words at their expected pace, or at 0.8 of it (a fast speaker), are not; nor is a single word."""
    assert squeezed_tail(*_spoken_at_pace(1.0, last_three_in=0.06))
    assert not squeezed_tail(*_spoken_at_pace(1.0))
    assert not squeezed_tail(*_spoken_at_pace(0.8))
    assert squeezed_tail(*_spoken_at_pace(0.6))  # read as cut: realigned alone, which costs time only
    words, duration = _spoken_at_pace(1.0)
    words[-1].past_end, words[-1].start, words[-1].end = True, duration, duration
    assert squeezed_tail(words, duration)
    assert not squeezed_tail(words[:1], duration)
