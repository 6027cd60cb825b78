"""Learned refinement of word boundaries: move each coarse boundary to the 10 ms frame where the sound puts it.

The default mode's word times come from cross-attention and DTW at 20 ms steps, and attention knows *which*
word is being said far better than *where* it starts: boundaries scatter tens of milliseconds around the truth.
The audio itself is sharper: a word that follows a pause starts where the energy rises, a word before a pause
ends where it falls, and between two words in fluent speech the spectrum changes. This module scores every
10 ms candidate position within ``radius`` frames of a coarse boundary and picks the best one.

**Model.** A conditional logit ("which of these candidates is the boundary?"): candidate ``c`` of a boundary
gets the score ``w · x_c``, where ``x_c`` are the features below, and the candidates' scores go through a
softmax. One weight vector for starts and one for ends (the same features, mirrored so that "inside" means the
word's side of the boundary for both). Fitting (:func:`fit`) maximises the log-likelihood of the labelled
boundaries with an L2 penalty, by Newton's method (convex; a few iterations). The weights are a few dozen
floats (:class:`RefineParams`, JSON-serialisable), so they can travel in a checkpoint next to the heads.

**Features** of candidate frame ``f`` (the boundary between mel frames ``f - 1`` and ``f``), from the log-mel
frames the model computes anyway (``n_mels x frames``, hop 10 ms) and, optionally, the alignment matrix:

* offset from the coarse boundary (linear, squared, absolute, in units of ``radius``): the prior;
* loudness inside and outside (mean log-mel level over 2, 5 and 10 frames on each side, relative to the clip's
  loud level and floor) and their differences: pauses;
* spectral change (distance between the mean spectra of 2 and 5 frames on each side): fluent boundaries;
* the word's own attention activation inside minus outside, and its neighbour's (previous word for a start,
  next word for an end) outside minus inside, when activations are given.

Everything here is numpy; :func:`refine_boundaries` costs a few tenths of a millisecond per word.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import WhisperAlignError

FRAMES_PER_SECOND = 100  # log-mel frames (hop 160 at 16 kHz)
LEVEL_WINDOWS = (2, 5, 10)
FLUX_WINDOWS = (2, 5)
ATTENTION_WINDOW = 4  # 10 ms frames each side for the attention contrast
Kind = Literal["start", "end"]
Decode = Literal["argmax", "median", "mean"]

FEATURE_NAMES: tuple[str, ...] = (
    "offset", "offset^2", "|offset|",
    *(f"level_in_{k}" for k in LEVEL_WINDOWS),
    *(f"level_out_{k}" for k in LEVEL_WINDOWS),
    *(f"floor_in_{k}" for k in LEVEL_WINDOWS),
    *(f"floor_out_{k}" for k in LEVEL_WINDOWS),
    *(f"rise_{k}" for k in LEVEL_WINDOWS),
    *(f"flux_{k}" for k in FLUX_WINDOWS),
    "attention_word", "attention_neighbour",
    "detector",
)


class RefineError(WhisperAlignError, ValueError):
    """Inputs or parameters of the boundary refinement that do not fit together (shape, kind, version)."""


# ---- features ---------------------------------------------------------------------------------------------------


@dataclass
class FrameTracks:
    """Per-boundary-frame quantities of one clip, computed once and shared by all of its boundaries.

    For each boundary frame ``f`` in ``0..n_frames`` (the boundary between mel frames ``f - 1`` and ``f``):
    ``after[k]`` / ``before[k]`` are the mean log-mel level of the ``k`` frames after / before it and ``flux[k]``
    the RMS difference between the mean spectra of those frames. ``loud``/``floor`` are the clip's 95th / 5th
    percentile of the per-frame level.
    """

    n_frames: int
    loud: float
    floor: float
    after: dict[int, np.ndarray]
    before: dict[int, np.ndarray]
    flux: dict[int, np.ndarray]


def frame_tracks(mel: np.ndarray) -> FrameTracks:
    """Prepare one clip's log-mel frames ``mel`` (n_mels, frames; 10 ms hop) for :func:`candidate_features`."""
    mel = np.asarray(mel, dtype=np.float64)
    if mel.ndim != 2 or mel.shape[1] == 0 or not np.isfinite(mel).all():
        raise RefineError(f"log-mel frames must be a finite, non-empty (n_mels, frames) array, got shape {mel.shape}")
    n = mel.shape[1]
    level = mel.mean(axis=0)
    cumulative_level = np.concatenate([[0.0], np.cumsum(level)])
    cumulative_spectra = np.concatenate([np.zeros((mel.shape[0], 1)), np.cumsum(mel, axis=1)], axis=1)
    f = np.arange(n + 1)
    after, before, flux = {}, {}, {}
    for k in sorted(set(LEVEL_WINDOWS) | set(FLUX_WINDOWS)):
        after[k] = _window_mean(cumulative_level, f, f + k)
        before[k] = _window_mean(cumulative_level, f - k, f)
        if k in FLUX_WINDOWS:
            difference = _window_mean(cumulative_spectra, f, f + k) - _window_mean(cumulative_spectra, f - k, f)
            flux[k] = np.sqrt((difference**2).mean(axis=0))
    loud, floor = np.percentile(level, [95, 5])
    return FrameTracks(n, float(loud), float(floor), after, before, flux)


def _window_mean(cumulative: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of the frames [lo, hi) from a cumulative sum along the last axis (windows clipped to the clip)."""
    n = cumulative.shape[-1] - 1
    lo, hi = np.clip(lo, 0, n), np.clip(hi, 0, n)
    return (cumulative[..., hi] - cumulative[..., lo]) / np.maximum(hi - lo, 1)


def candidate_frames(coarse: np.ndarray, radius: int, n_frames: int) -> np.ndarray:
    """(boundaries, 2 radius + 1) candidate boundary frames around each coarse time (seconds), clipped to the
    clip: frames off the clip repeat its first or last frame (the fitting and the decoding both see them as
    duplicates, which never win over the original)."""
    centre = np.rint(np.asarray(coarse, dtype=np.float64) * FRAMES_PER_SECOND).astype(np.int64)
    frames = centre[:, None] + np.arange(-radius, radius + 1)[None, :]
    return np.clip(frames, 0, n_frames)


def candidate_features(
    tracks: FrameTracks,
    coarse: np.ndarray,
    kind: Kind,
    radius: int,
    word_activation: np.ndarray | None = None,
    neighbour_activation: np.ndarray | None = None,
    evidence: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features of every candidate of every boundary: ``(frames (B, C), features (B, C, F))``.

    ``coarse`` are the boundaries' coarse times in seconds (relative to the first mel frame); ``kind`` says
    whether they are word starts or ends (which side is "inside" the word). ``word_activation`` and
    ``neighbour_activation`` (B, n_frames) are the attention of each boundary's word and of its neighbour per
    10 ms frame (see :func:`word_activations`); without them those two features are 0. ``evidence``
    (n_frames + 1,) is a frame detector's log-odds that a boundary of this kind lies at each boundary frame
    (see :func:`evidence_track`); without it that feature is 0.
    """
    if kind not in ("start", "end"):
        raise RefineError(f"kind must be 'start' or 'end', got {kind!r}")
    coarse = np.asarray(coarse, dtype=np.float64).reshape(-1)
    frames = candidate_frames(coarse, radius, tracks.n_frames)
    centre = np.clip(np.rint(coarse * FRAMES_PER_SECOND), 0, tracks.n_frames)
    offset = (frames - centre[:, None]) / radius
    sign = 1 if kind == "start" else -1  # inside the word: after a start, before an end
    columns = [offset, offset**2, np.abs(offset)]
    level_in, level_out = [], []
    for k in LEVEL_WINDOWS:
        after, before = tracks.after[k][frames], tracks.before[k][frames]
        inside, outside = (after, before) if sign > 0 else (before, after)
        level_in.append(inside)
        level_out.append(outside)
    columns += [x - tracks.loud for x in level_in] + [x - tracks.loud for x in level_out]
    columns += [x - tracks.floor for x in level_in] + [x - tracks.floor for x in level_out]
    columns += [i - o for i, o in zip(level_in, level_out)]
    for k in FLUX_WINDOWS:
        columns.append(tracks.flux[k][frames])
    for activation in (word_activation, neighbour_activation):
        if activation is None:
            columns.append(np.zeros_like(offset))
            continue
        columns.append(_contrast(np.asarray(activation, dtype=np.float64), frames, sign, activation is word_activation))
    if evidence is None:
        columns.append(np.zeros_like(offset))
    else:
        evidence = np.asarray(evidence, dtype=np.float64)
        columns.append(evidence[np.clip(frames, 0, len(evidence) - 1)])
    return frames, np.stack(columns, axis=-1)


def _contrast(activation: np.ndarray, frames: np.ndarray, sign: int, own: bool) -> np.ndarray:
    """Attention inside minus outside the word (own word) or outside minus inside (its neighbour)."""
    if activation.ndim != 2 or activation.shape[0] != frames.shape[0]:
        raise RefineError(f"activations must be (boundaries, frames), one row per boundary; got {activation.shape}")
    cumulative = np.concatenate([np.zeros((activation.shape[0], 1)), np.cumsum(activation, axis=1)], axis=1)
    rows = np.arange(frames.shape[0])[:, None]
    n = activation.shape[1]

    def mean(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        lo, hi = np.clip(lo, 0, n), np.clip(hi, 0, n)
        return (cumulative[rows, hi] - cumulative[rows, lo]) / np.maximum(hi - lo, 1)

    after = mean(frames, frames + ATTENTION_WINDOW)
    before = mean(frames - ATTENTION_WINDOW, frames)
    inside, outside = (after, before) if sign > 0 else (before, after)
    return inside - outside if own else outside - inside


def word_activations(
    matrix: np.ndarray, word_rows: Sequence[tuple[int, int]], time_shift: float, n_frames: int,
    tokens_per_second: int = 50,
) -> np.ndarray:
    """Each word's attention per 10 ms frame: (words, n_frames).

    ``matrix`` is the alignment matrix (rows, 20 ms positions), ``word_rows`` each word's [first, last) rows;
    a word's activation is the maximum over its rows (as the default mode's silence trimming reads it), moved by
    ``time_shift`` seconds (the shift the coarse times carry) and repeated onto the 10 ms grid.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    times = np.arange(n_frames) / FRAMES_PER_SECOND - time_shift
    positions = np.clip((times * tokens_per_second).astype(np.int64), 0, matrix.shape[1] - 1)
    out = np.empty((len(word_rows), n_frames))
    for k, (lo, hi) in enumerate(word_rows):
        out[k] = matrix[lo:hi].max(axis=0)[positions] if hi > lo else 0.0
    return out


# ---- the model --------------------------------------------------------------------------------------------------


@dataclass
class BoundaryModel:
    """One conditional-logit scorer: features are standardised with ``mean``/``scale``, then dotted with
    ``weights``."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    def scores(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.weights


@dataclass
class RefineParams:
    """Everything :func:`refine_boundaries` needs: the search radius (10 ms frames), the decoding rule and one
    :class:`BoundaryModel` each for starts and ends. ``to_dict``/``from_dict`` give a JSON-able form."""

    radius: int
    start: BoundaryModel
    end: BoundaryModel
    decode: Decode = "median"
    detectors: dict[str, FrameDetector] | None = None  # {"start": ..., "end": ...} on encoder states, if fitted
    feature_names: tuple[str, ...] = FEATURE_NAMES
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        def model(m: BoundaryModel) -> dict[str, list[float]]:
            return {"mean": m.mean.tolist(), "scale": m.scale.tolist(), "weights": m.weights.tolist()}

        detectors = None
        if self.detectors:
            detectors = {kind: {"mean": d.mean.tolist(), "scale": d.scale.tolist(), "weights": d.weights.tolist(),
                                "bias": d.bias} for kind, d in self.detectors.items()}
        return {"version": self.version, "radius": self.radius, "decode": self.decode,
                "feature_names": list(self.feature_names), "start": model(self.start), "end": model(self.end),
                "detectors": detectors}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefineParams:
        """Read :meth:`to_dict`'s form back; a version or feature list this code does not know is refused."""
        if data.get("version") != 1 or tuple(data.get("feature_names", ())) != FEATURE_NAMES:
            raise RefineError(
                "these boundary-refinement parameters were made for other features (version "
                f"{data.get('version')!r}); refit them with this version of whisper-align"
            )

        def model(d: dict[str, list[float]]) -> BoundaryModel:
            arrays = [np.asarray(d[key], dtype=np.float64) for key in ("mean", "scale", "weights")]
            if any(a.shape != (len(FEATURE_NAMES),) for a in arrays):
                raise RefineError(f"refinement weights must have {len(FEATURE_NAMES)} entries each")
            return BoundaryModel(*arrays)

        def detector(d: dict[str, Any]) -> FrameDetector:
            arrays = [np.asarray(d[key], dtype=np.float64) for key in ("mean", "scale", "weights")]
            if arrays[0].ndim != 1 or any(a.shape != arrays[0].shape for a in arrays):
                raise RefineError("a frame detector's mean, scale and weights must be equally long vectors")
            return FrameDetector(*arrays, float(d["bias"]))

        detectors = data.get("detectors")
        return cls(int(data["radius"]), model(data["start"]), model(data["end"]), data.get("decode", "median"),
                   {kind: detector(detectors[kind]) for kind in ("start", "end")} if detectors else None)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RefineParams:
        return cls.from_dict(json.loads(Path(path).read_text()))


def soft_targets(frames: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(B, C) target distributions: each true time (seconds) split between the two candidate frames around it
    (linear interpolation); a row whose truth lies outside its candidates is all zero (no information)."""
    position = np.asarray(truth, dtype=np.float64)[:, None] * FRAMES_PER_SECOND
    weight = np.clip(1.0 - np.abs(frames - position), 0.0, 1.0)
    # duplicates of a clipped edge frame: keep only the first copy
    duplicate = np.zeros_like(frames, dtype=bool)
    duplicate[:, 1:] = frames[:, 1:] == frames[:, :-1]
    weight[duplicate] = 0.0
    total = weight.sum(axis=1, keepdims=True)
    return np.divide(weight, total, out=np.zeros_like(weight), where=total > 0)


def fit_boundary_model(
    features: np.ndarray, targets: np.ndarray, l2: float = 1.0, iterations: int = 30
) -> BoundaryModel:
    """Fit one conditional logit: ``features`` (B, C, F) of B boundaries' C candidates, ``targets`` (B, C) each
    row a distribution over the candidates (rows of zeros are skipped). Newton's method on the penalised
    negative log-likelihood (``l2`` on the standardised weights)."""
    features = np.asarray(features, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if features.ndim != 3 or targets.shape != features.shape[:2]:
        raise RefineError(f"features must be (B, C, F) and targets (B, C); got {features.shape}, {targets.shape}")
    keep = targets.sum(axis=1) > 0
    if keep.sum() < 2:
        raise RefineError("fewer than two boundaries lie within the search radius; give more labelled data")
    x, q = features[keep], targets[keep]
    flat = x.reshape(-1, x.shape[-1])
    mean, scale = flat.mean(axis=0), flat.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (x - mean) / scale
    w = np.zeros(x.shape[-1])
    loss, p = _objective(z, q, w, l2)
    for _ in range(iterations):
        expected = np.einsum("bc,bcf->bf", p, z)
        gradient = np.einsum("bc,bcf->f", p - q, z) + l2 * w
        centred = z - expected[:, None, :]
        hessian = np.einsum("bc,bcf,bcg->fg", p, centred, centred) + l2 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        for _ in range(30):  # backtracking: Newton's full step can overshoot on nearly separable data
            new_loss, new_p = _objective(z, q, w - step, l2)
            if new_loss <= loss:
                break
            step = step / 2
        else:
            break
        w, loss, p = w - step, new_loss, new_p
        if np.abs(step).max() < 1e-6:
            break
    return BoundaryModel(mean, scale, w)


def _objective(z: np.ndarray, q: np.ndarray, w: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Penalised negative log-likelihood of targets ``q`` and the candidates' probabilities."""
    s = z @ w
    s = s - s.max(axis=1, keepdims=True)
    log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    return float(-(q * log_p).sum() + 0.5 * l2 * w @ w), np.exp(log_p)


def posterior(model: BoundaryModel, frames: np.ndarray, features: np.ndarray) -> np.ndarray:
    """(B, C) probability of each candidate (duplicated edge frames get none)."""
    s = model.scores(features)
    duplicate = np.zeros_like(frames, dtype=bool)
    duplicate[:, 1:] = frames[:, 1:] == frames[:, :-1]
    s = np.where(duplicate, -np.inf, s)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def decode(frames: np.ndarray, probabilities: np.ndarray, rule: Decode) -> np.ndarray:
    """Boundary times (seconds) from each row's candidate probabilities: the most likely frame, the posterior
    median (minimises the expected absolute error) or the posterior mean."""
    if rule == "argmax":
        chosen = frames[np.arange(len(frames)), probabilities.argmax(axis=1)].astype(np.float64)
    elif rule == "median":
        index = (probabilities.cumsum(axis=1) >= 0.5).argmax(axis=1)
        chosen = frames[np.arange(len(frames)), index].astype(np.float64)
    elif rule == "mean":
        chosen = (probabilities * frames).sum(axis=1)
    else:
        raise RefineError(f"unknown decoding rule {rule!r}; use 'argmax', 'median' or 'mean'")
    return chosen / FRAMES_PER_SECOND


# ---- a frame-level boundary detector on encoder states -----------------------------------------------------------


@dataclass
class FrameDetector:
    """Logistic regression from one encoder position's hidden state (20 ms) to "a word boundary of this kind
    falls in this position"; states are standardised with ``mean``/``scale`` first."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def log_odds(self, states: np.ndarray) -> np.ndarray:
        return ((np.asarray(states, dtype=np.float64) - self.mean) / self.scale) @ self.weights + self.bias


def position_labels(n_positions: int, times: np.ndarray, tokens_per_second: int = 50) -> np.ndarray:
    """(n_positions,) 1.0 at the encoder positions holding one of ``times`` (seconds; NaN ignored), else 0."""
    times = np.asarray(times, dtype=np.float64)
    index = np.floor(times[np.isfinite(times)] * tokens_per_second).astype(np.int64)
    labels = np.zeros(n_positions)
    labels[index[(index >= 0) & (index < n_positions)]] = 1.0
    return labels


def fit_frame_detector(states: np.ndarray, labels: np.ndarray, l2: float = 100.0, iterations: int = 15) -> FrameDetector:
    """Fit :class:`FrameDetector` on (N, D) ``states`` and (N,) 0/1 ``labels`` by damped Newton (L2 ``l2``)."""
    x = np.asarray(states, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.ndim != 2 or y.shape != (len(x),) or not 0 < y.sum() < len(y):
        raise RefineError("a frame detector needs (N, D) states and N labels with both classes present")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk

    def objective(w: np.ndarray) -> float:
        s = z @ w
        return float(np.logaddexp(0.0, s).sum() - y @ s + 0.5 * (penalty * w) @ w)

    loss = objective(w)
    z32 = z.astype(np.float32)  # the Hessian's product in float32: 2x faster, ample for a Newton step
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        gradient = z.T @ (p - y) + penalty * w
        hessian = ((z32 * (p * (1 - p)).astype(np.float32)[:, None]).T @ z32).astype(np.float64)
        hessian += np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        for _ in range(30):
            new_loss = objective(w - step)
            if new_loss <= loss:
                break
            step = step / 2
        else:
            break
        w, loss = w - step, new_loss
        if np.abs(step).max() < 1e-6:
            break
    return FrameDetector(mean, scale, w[:-1], float(w[-1]))


def evidence_track(detector: FrameDetector, states: np.ndarray, n_frames: int) -> np.ndarray:
    """The detector's log-odds on the 10 ms boundary-frame grid (n_frames + 1,): boundary frame ``f`` lies in
    encoder position ``f // 2``."""
    odds = detector.log_odds(states)
    positions = np.clip(np.arange(n_frames + 1) // 2, 0, len(odds) - 1)
    return odds[positions]


# ---- the whole step ---------------------------------------------------------------------------------------------


@dataclass
class LabelledClip:
    """One clip for :func:`fit`: its log-mel frames, the coarse word times (seconds, one per word, in order),
    the reference times (NaN for words without one) and optionally the words' attention activations."""

    mel: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    true_starts: np.ndarray
    true_ends: np.ndarray
    activation: np.ndarray | None = None
    states: np.ndarray | None = None  # encoder output (positions, D), 20 ms per position


def boundary_inputs(
    tracks: FrameTracks,
    coarse: np.ndarray,
    kind: Kind,
    radius: int,
    activation: np.ndarray | None,
    evidence: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate frames and features of one kind of boundary of all words of a clip; a start's neighbour is the
    previous word, an end's the next one (none at the clip's edges)."""
    neighbour = None
    if activation is not None:
        activation = np.asarray(activation, dtype=np.float64)
        if activation.shape != (len(coarse), tracks.n_frames):
            raise RefineError(
                f"activations must be (words, frames) = ({len(coarse)}, {tracks.n_frames}); got {activation.shape}"
            )
        empty = np.zeros((1, tracks.n_frames))
        neighbour = np.vstack([empty, activation[:-1]]) if kind == "start" else np.vstack([activation[1:], empty])
    return candidate_features(tracks, coarse, kind, radius, activation, neighbour, evidence)


def fit(
    clips: Sequence[LabelledClip],
    radius: int = 15,
    l2: float = 1.0,
    rule: Decode = "median",
    detector_l2: float = 100.0,
) -> RefineParams:
    """Fit start and end scorers on labelled clips (a boundary whose truth lies farther than ``radius`` frames
    from its coarse time teaches nothing and is skipped).

    When every clip carries encoder ``states``, start and end :class:`FrameDetector` s are fitted too and their
    evidence becomes a feature; the scorers then learn from *out-of-fold* evidence (detectors fitted on the
    other half of the clips), since a detector's output on its own training clips is over-confident.
    """
    if radius < 1:
        raise RefineError(f"radius must be at least one frame, got {radius}")
    if not clips or sum(len(c.starts) for c in clips) == 0:
        raise RefineError("no labelled words to fit the boundary refinement on")
    use_states = all(c.states is not None for c in clips)
    detectors, evidence_of = None, {}
    if use_states:
        detectors = _fit_detectors(clips, detector_l2)
        halves = [list(range(0, len(clips), 2)), list(range(1, len(clips), 2))]
        for a, b in ((0, 1), (1, 0)):
            part = _fit_detectors([clips[i] for i in halves[a]], detector_l2) if halves[a] else detectors
            evidence_of.update({i: part for i in halves[b]})
    models = {}
    for kind in ("start", "end"):
        xs, qs = [], []
        for i, clip in enumerate(clips):
            tracks = frame_tracks(clip.mel)
            coarse, truth = (clip.starts, clip.true_starts) if kind == "start" else (clip.ends, clip.true_ends)
            evidence = None
            if use_states:
                evidence = evidence_track(evidence_of[i][kind], clip.states, tracks.n_frames)  # type: ignore[arg-type]
            frames, x = boundary_inputs(tracks, np.asarray(coarse, dtype=np.float64), kind, radius,  # type: ignore[arg-type]
                                        clip.activation, evidence)
            xs.append(x)
            qs.append(soft_targets(frames, np.nan_to_num(np.asarray(truth, dtype=np.float64), nan=-1e9)))
        models[kind] = fit_boundary_model(np.concatenate(xs), np.concatenate(qs), l2=l2)
    return RefineParams(radius, models["start"], models["end"], rule, detectors)


def _fit_detectors(clips: Sequence[LabelledClip], l2: float) -> dict[str, FrameDetector]:
    states = np.concatenate([np.asarray(c.states, dtype=np.float64) for c in clips])
    out = {}
    for kind in ("start", "end"):
        labels = np.concatenate([
            position_labels(len(c.states), c.true_starts if kind == "start" else c.true_ends)  # type: ignore[arg-type]
            for c in clips
        ])
        out[kind] = fit_frame_detector(states, labels, l2=l2)
    return out


def refine_boundaries(
    params: RefineParams,
    mel: np.ndarray | FrameTracks,
    starts: np.ndarray,
    ends: np.ndarray,
    activation: np.ndarray | None = None,
    states: np.ndarray | None = None,
    min_duration: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """Refined (starts, ends) in seconds of one clip's words, given their coarse times (seconds from the first
    mel frame, in order) and the clip's log-mel frames; overlaps are resolved by :func:`make_monotone`.

    ``activation`` (words, frames) are the words' attention activations (:func:`word_activations`) and
    ``states`` the encoder output over the clip (positions, D); the latter is required when ``params`` hold
    frame detectors."""
    if params.detectors and states is None:
        raise RefineError("these refinement parameters use encoder states; pass the encoder output as states=")
    tracks = mel if isinstance(mel, FrameTracks) else frame_tracks(mel)
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    if starts.shape != ends.shape or starts.ndim != 1:
        raise RefineError(f"starts and ends must be 1-D and equally long; got {starts.shape} and {ends.shape}")
    if len(starts) == 0:
        return starts.copy(), ends.copy()
    refined = []
    for kind, coarse, model in (("start", starts, params.start), ("end", ends, params.end)):
        evidence = None
        if params.detectors:
            evidence = evidence_track(params.detectors[kind], states, tracks.n_frames)  # type: ignore[arg-type]
        frames, x = boundary_inputs(tracks, coarse, kind, params.radius, activation, evidence)  # type: ignore[arg-type]
        refined.append(decode(frames, posterior(model, frames, x), params.decode))
    return make_monotone(refined[0], refined[1], min_duration, tracks.n_frames / FRAMES_PER_SECOND)


def make_monotone(
    starts: np.ndarray, ends: np.ndarray, min_duration: float, duration: float
) -> tuple[np.ndarray, np.ndarray]:
    """Word times in order: where a word would end after the next one starts, both meet at the midpoint; then
    every word lasts at least ``min_duration`` where room allows, and all times lie in [0, duration]."""
    s, e = np.clip(starts, 0, duration), np.clip(ends, 0, duration)
    for k in range(len(s)):
        if k and s[k] < e[k - 1]:
            middle = 0.5 * (s[k] + e[k - 1])
            e[k - 1], s[k] = middle, middle
            s[k - 1] = min(s[k - 1], e[k - 1])
        if e[k] < s[k] + min_duration:
            e[k] = min(s[k] + min_duration, duration)
    for k in range(1, len(s)):  # a grown word may overlap the next again: clamp forwards
        s[k] = max(s[k], e[k - 1])
        e[k] = max(e[k], s[k])
    return s, e


__all__ = [
    "LabelledClip",
    "boundary_inputs",
    "fit",
    "refine_boundaries",
    "make_monotone",
    "FrameDetector",
    "position_labels",
    "fit_frame_detector",
    "evidence_track",
    "RefineError",
    "FrameTracks",
    "frame_tracks",
    "candidate_frames",
    "candidate_features",
    "word_activations",
    "BoundaryModel",
    "RefineParams",
    "soft_targets",
    "fit_boundary_model",
    "posterior",
    "decode",
    "FEATURE_NAMES",
]
