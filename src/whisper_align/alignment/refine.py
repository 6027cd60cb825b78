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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RefineError
from ..files import replacing
from .boundary_detector import FrameDetector, evidence_track, fit_frame_detector, position_labels
from .boundary_features import (
    FEATURE_NAMES,
    FRAMES_PER_SECOND,
    Decode,
    FrameTracks,
    Kind,
    candidate_features,
    candidate_frames,
    frame_tracks,
    word_activations,
)

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
    :class:`BoundaryModel` each for starts and ends. ``joint``: a piece's words are refined by the word-level
    global decode (:mod:`~whisper_align.alignment.segment_decode`) rather than boundary by boundary (parameters
    saved before it existed load with it on). ``to_dict``/``from_dict`` give a JSON-able form."""

    radius: int
    start: BoundaryModel
    end: BoundaryModel
    decode: Decode = "median"
    detectors: dict[str, FrameDetector] | None = None  # {"start": ..., "end": ...} on encoder states, if fitted
    feature_names: tuple[str, ...] = FEATURE_NAMES
    version: int = 1
    joint: bool = True

    def to_dict(self) -> dict[str, Any]:
        def model(m: BoundaryModel) -> dict[str, list[float]]:
            return {"mean": m.mean.tolist(), "scale": m.scale.tolist(), "weights": m.weights.tolist()}

        detectors = None
        if self.detectors:
            detectors = {
                kind: {
                    "mean": d.mean.tolist(),
                    "scale": d.scale.tolist(),
                    "weights": d.weights.tolist(),
                    "bias": d.bias,
                }
                for kind, d in self.detectors.items()
            }
        return {
            "version": self.version,
            "radius": self.radius,
            "decode": self.decode,
            "feature_names": list(self.feature_names),
            "start": model(self.start),
            "end": model(self.end),
            "detectors": detectors,
            "joint": self.joint,
        }

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
            mean, scale, weights = arrays
            return FrameDetector(mean, scale, weights, float(d["bias"]))

        detectors = data.get("detectors")
        return cls(
            int(data["radius"]),
            model(data["start"]),
            model(data["end"]),
            data.get("decode", "median"),
            {kind: detector(detectors[kind]) for kind in ("start", "end")} if detectors else None,
            joint=bool(data.get("joint", True)),
        )

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as compact JSON, atomically (a failed write leaves ``path`` as it was)."""
        with replacing(path) as temp:
            temp.write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n", encoding="utf-8")

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
            frames, x = boundary_inputs(
                tracks,
                np.asarray(coarse, dtype=np.float64),
                kind,
                radius,  # type: ignore[arg-type]
                clip.activation,
                evidence,
            )
            xs.append(x)
            qs.append(soft_targets(frames, np.nan_to_num(np.asarray(truth, dtype=np.float64), nan=-1e9)))
        models[kind] = fit_boundary_model(np.concatenate(xs), np.concatenate(qs), l2=l2)
    return RefineParams(radius, models["start"], models["end"], rule, detectors)


def _fit_detectors(clips: Sequence[LabelledClip], l2: float) -> dict[str, FrameDetector]:
    states = np.concatenate([np.asarray(c.states, dtype=np.float64) for c in clips])
    out = {}
    for kind in ("start", "end"):
        labels = np.concatenate(
            [
                position_labels(len(c.states), c.true_starts if kind == "start" else c.true_ends)  # type: ignore[arg-type]
                for c in clips
            ]
        )
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
