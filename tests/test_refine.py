"""Learned word-boundary refinement (alignment/refine.py) on synthetic clips with known boundaries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_align.alignment import refine as R
from whisper_align.errors import WhisperAlignError


def synthetic_clip(rng: np.random.Generator, n_words: int = 8, late: float = 0.06, jitter: float = 0.02):
    """Log-mel frames of words (each its own random spectrum, some separated by pauses at the floor level), the
    true word times, and coarse times that run ``late`` seconds late with ``jitter`` of noise."""
    n_mels, t, frames = 80, 0.3, []
    starts, ends = [], []
    for _ in range(n_words):
        if rng.random() < 0.5:  # a pause before the word
            pause = int(rng.integers(10, 30))
            frames.append(np.full((n_mels, pause), -1.0) + 0.05 * rng.standard_normal((n_mels, pause)))
            t += pause / 100
        length = int(rng.integers(15, 40))
        spectrum = rng.uniform(0.0, 1.5, size=(n_mels, 1))
        frames.append(spectrum + 0.05 * rng.standard_normal((n_mels, length)))
        starts.append(t)
        t += length / 100
        ends.append(t)
    lead = np.full((n_mels, 30), -1.0)
    tail = np.full((n_mels, 30), -1.0)
    mel = np.concatenate([lead, *frames, tail], axis=1)
    starts, ends = np.array(starts), np.array(ends)
    noise = rng.normal(0.0, jitter, size=(2, n_words))
    return mel, starts, ends, starts + late + noise[0], ends + late + noise[1]


def clips(seed: int, n: int, **kwargs) -> list[R.LabelledClip]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        mel, ts, te, cs, ce = synthetic_clip(rng, **kwargs)
        out.append(R.LabelledClip(mel, cs, ce, ts, te))
    return out


def errors(params: R.RefineParams, test: list[R.LabelledClip]) -> tuple[np.ndarray, np.ndarray]:
    coarse, refined = [], []
    for clip in test:
        s, e = R.refine_boundaries(params, clip.mel, clip.starts, clip.ends)
        coarse += [clip.starts - clip.true_starts, clip.ends - clip.true_ends]
        refined += [s - clip.true_starts, e - clip.true_ends]
    return np.abs(np.concatenate(coarse)), np.abs(np.concatenate(refined))


def test_learns_a_known_late_offset_and_finds_the_boundaries():
    params = R.fit(clips(0, 30), radius=15)
    coarse, refined = errors(params, clips(1, 10))
    assert np.median(coarse) > 0.045  # the coarse times run 60 ms late
    assert np.median(refined) <= 0.011  # the refined ones sit on the true frame (10 ms grid, rounding)
    assert np.mean(refined <= 0.02) > 0.9


def test_fitted_params_survive_json_and_give_the_same_times():
    params = R.fit(clips(2, 10), radius=10)
    again = R.RefineParams.from_dict(json.loads(json.dumps(params.to_dict())))
    clip = clips(3, 1)[0]
    np.testing.assert_array_equal(
        np.stack(R.refine_boundaries(params, clip.mel, clip.starts, clip.ends)),
        np.stack(R.refine_boundaries(again, clip.mel, clip.starts, clip.ends)),
    )
    assert len(json.dumps(params.to_dict())) < 20_000


def test_refined_words_stay_in_order_and_inside_the_clip():
    params = R.fit(clips(4, 10))
    rng = np.random.default_rng(5)
    mel, _, _, cs, ce = synthetic_clip(rng, n_words=12, late=0.0, jitter=0.08)
    s, e = R.refine_boundaries(params, mel, np.sort(cs), np.sort(ce))
    assert len(s) == len(e) == 12
    assert (e >= s).all() and (s[1:] >= e[:-1] - 1e-12).all()
    assert s.min() >= 0 and e.max() <= mel.shape[1] / 100


def test_soft_targets_split_between_neighbouring_frames():
    frames = np.array([[10, 11, 12, 13]])
    q = R.soft_targets(frames, np.array([0.1125]))
    np.testing.assert_allclose(q, [[0.0, 0.75, 0.25, 0.0]])
    assert R.soft_targets(frames, np.array([5.0])).sum() == 0  # outside: no information


def test_make_monotone_meets_overlaps_at_the_midpoint():
    s, e = R.make_monotone(np.array([0.0, 0.9]), np.array([1.0, 2.0]), 0.02, 3.0)
    np.testing.assert_allclose(s, [0.0, 0.95])
    np.testing.assert_allclose(e, [0.95, 2.0])


def test_bad_inputs_raise_typed_errors():
    params = R.fit(clips(6, 5), radius=5)
    mel = clips(7, 1)[0].mel
    with pytest.raises(WhisperAlignError, match="equally long"):
        R.refine_boundaries(params, mel, np.array([0.1, 0.2]), np.array([0.15]))
    with pytest.raises(WhisperAlignError, match="log-mel"):
        R.refine_boundaries(params, np.zeros((80, 0)), np.array([0.1]), np.array([0.2]))
    with pytest.raises(WhisperAlignError, match="activations"):
        R.refine_boundaries(params, mel, np.array([0.1]), np.array([0.2]), activation=np.zeros((2, 3)))
    data = params.to_dict()
    data["version"] = 99
    with pytest.raises(WhisperAlignError, match="refit"):
        R.RefineParams.from_dict(data)
    with pytest.raises(WhisperAlignError, match="no labelled words"):
        R.fit([])


def with_states(clip: R.LabelledClip, rng: np.random.Generator, dims: int = 16) -> R.LabelledClip:
    """Encoder-like states (20 ms positions): noise, with dimension 0 lit at the positions holding a start and
    dimension 1 at those holding an end, so a detector can learn where boundaries are."""
    n_positions = clip.mel.shape[1] // 2
    states = rng.standard_normal((n_positions, dims))
    states[:, 0] += 3 * R.position_labels(n_positions, clip.true_starts)
    states[:, 1] += 3 * R.position_labels(n_positions, clip.true_ends)
    return R.LabelledClip(clip.mel, clip.starts, clip.ends, clip.true_starts, clip.true_ends, states=states)


def test_frame_detectors_are_fitted_used_and_serialised():
    rng = np.random.default_rng(8)
    # no acoustic cue: flat log-mel, so only the states can say where the boundaries are
    train = [with_states(c, rng) for c in clips(9, 20)]
    for c in train:
        c.mel = np.zeros_like(c.mel)
    params = R.fit(train, radius=10)
    assert params.detectors is not None
    assert params.detectors["start"].weights[0] > 0 and params.detectors["end"].weights[1] > 0
    test = with_states(clips(10, 1)[0], rng)
    flat = np.zeros_like(test.mel)
    s, e = R.refine_boundaries(params, flat, test.starts, test.ends, states=test.states)
    coarse_error = np.abs(np.concatenate([test.starts - test.true_starts, test.ends - test.true_ends]))
    refined_error = np.abs(np.concatenate([s - test.true_starts, e - test.true_ends]))
    assert refined_error.mean() < 0.5 * coarse_error.mean()
    again = R.RefineParams.from_dict(json.loads(json.dumps(params.to_dict())))
    np.testing.assert_array_equal(s, R.refine_boundaries(again, flat, test.starts, test.ends, states=test.states)[0])
    with pytest.raises(WhisperAlignError, match="encoder states"):
        R.refine_boundaries(params, flat, test.starts, test.ends)
