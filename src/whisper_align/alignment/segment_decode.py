"""Word-level global decode of word boundaries: all boundaries of a piece chosen jointly, in order.

The boundary refinement (:mod:`whisper_align.alignment.refine`) moves each boundary on its own within
``radius`` frames of where DTW put it. When attention and DTW misplace a word by more than that, the refinement
cannot reach the truth, and nothing stops one word's refined end from being placed after the next word's start.
This module scores every 10 ms frame within a wider ``band`` of each coarse boundary with the refinement's own
fitted scorer (its offset prior made flat beyond ``radius`` and replaced there by a Laplace prior on the distance
from the coarse boundary, wide enough that strong evidence can move a boundary far), and then treats the
piece's boundaries ``start_1 <= end_1 <= start_2 <= ... <= end_K`` as one chain: a forward-backward pass over
the chain gives each boundary's marginal posterior under the ordering constraint (each word at least
``min_frames`` long), decoded as the refinement decodes (posterior median by default).

Cost: O(words x band^2) per piece in numpy (a few milliseconds for a clip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RefineError
from .boundary_detector import evidence_track
from .boundary_features import FRAMES_PER_SECOND, FrameTracks, Kind
from .refine import RefineParams, boundary_inputs, make_monotone

OFFSET_COLUMNS = 3  # offset, offset^2, |offset|: the first three features (boundary_features.FEATURE_NAMES)


@dataclass(frozen=True)
class ChainSettings:
    """How far the global decode looks and how strongly it trusts DTW beyond the refinement's radius.

    ``band``: frames (10 ms) each side of a coarse boundary that can be chosen; ``prior_scale``: scale (frames)
    of the Laplace prior on the distance beyond the refinement's radius; ``min_frames``: shortest word;
    ``rule``: how a boundary is read from its marginal ('median', 'argmax' or 'mean')."""

    band: int = 60
    prior_scale: float = 20.0
    min_frames: int = 2
    rule: str = "median"
    duration_weight: float = 0.0
    duration_slope: float = 1.06
    duration_intercept: float = -2.83
    duration_sd: float = 0.38
    gap_weight: float = 0.0
    gap_zero: float = 0.9
    gap_scale: float = 15.0
    anchor: float = 1.0


def unary_scores(
    params: RefineParams,
    tracks: FrameTracks,
    coarse: np.ndarray,
    kind: Kind,
    settings: ChainSettings,
    activation: np.ndarray | None,
    evidence: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(frames (B, C), log-scores (B, C)) of one kind of boundary over ``settings.band`` frames each side: the
    fitted scorer with its offset features computed in units of its own radius and clipped at it, minus the
    Laplace prior on the distance beyond the radius; duplicated edge frames get ``-inf``."""
    band = max(settings.band, params.radius)
    frames, x = boundary_inputs(tracks, coarse, kind, band, activation, evidence)
    offset = x[..., 0] * band / params.radius  # in units of the fitted radius
    clipped = np.clip(offset, -1.0, 1.0)
    x = x.copy()
    x[..., 0], x[..., 1], x[..., 2] = clipped, clipped**2, np.abs(clipped)
    model = params.start if kind == "start" else params.end
    scores = model.scores(x)
    if settings.anchor != 1.0:  # scale the fitted prior's share of the score
        z = (x[..., :OFFSET_COLUMNS] - model.mean[:OFFSET_COLUMNS]) / model.scale[:OFFSET_COLUMNS]
        scores = scores - (1.0 - settings.anchor) * (z @ model.weights[:OFFSET_COLUMNS])
    scores = scores - (np.abs(offset) - 1.0).clip(min=0.0) * params.radius / settings.prior_scale
    duplicate = np.zeros_like(frames, dtype=bool)
    duplicate[:, 1:] = frames[:, 1:] == frames[:, :-1]
    return frames, np.where(duplicate, -np.inf, scores)


def chain_marginals(frames: list[np.ndarray], scores: list[np.ndarray], pairs: list[np.ndarray]) -> list[np.ndarray]:
    """Marginal posteriors of a chain of boundaries.

    Boundary ``j`` takes one of ``frames[j]`` with unary log-score ``scores[j]``; ``pairs[j - 1]`` is the
    (len(frames[j]), len(frames[j - 1])) log-potential of each pair of consecutive choices (``-inf``: not
    allowed). Returns each boundary's probabilities over its frames (forward-backward in the log domain). A
    boundary left with no consistent assignment falls back to its unaries."""
    n = len(frames)
    forward = [scores[0]]
    for j in range(1, n):
        forward.append(scores[j] + _logsumexp(forward[-1][None, :] + pairs[j - 1]))
    backward = [np.zeros_like(scores[-1])]
    for j in range(n - 2, -1, -1):
        backward.insert(0, _logsumexp((scores[j + 1] + backward[0])[:, None] + pairs[j], axis=0))
    out = []
    for j in range(n):
        total = forward[j] + backward[j]
        if not np.isfinite(total).any():
            total = scores[j]
        p = np.exp(total - total.max())
        out.append(p / p.sum())
    return out


def _logsumexp(values: np.ndarray, axis: int = 1) -> np.ndarray:
    """log-sum-exp along ``axis`` (rows that are all ``-inf`` give ``-inf``)."""
    top = values.max(axis=axis, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.exp(values - safe).sum(axis=axis, keepdims=True)) + safe
    return np.squeeze(np.where(np.isfinite(top), out, -np.inf), axis=axis)


def duration_pairs(starts: np.ndarray, ends: np.ndarray, letters: float, settings: ChainSettings) -> np.ndarray:
    """Log-potential (end, start) of one word: ordering (at least ``min_frames`` long) plus a log-normal prior
    on its duration given its number of letters."""
    length = ends[:, None] - starts[None, :]
    ok = length >= settings.min_frames
    if settings.duration_weight == 0:
        return np.where(ok, 0.0, -np.inf)
    mu = settings.duration_intercept + settings.duration_slope * np.log(max(letters, 1.0))
    z = (np.log(np.maximum(length, 1) / FRAMES_PER_SECOND) - mu) / settings.duration_sd
    return np.where(ok, -0.5 * settings.duration_weight * z**2, -np.inf)


def gap_pairs(ends: np.ndarray, starts: np.ndarray, settings: ChainSettings) -> np.ndarray:
    """Log-potential (next start, end) between two words: no overlap, plus (if weighted) a prior that the next
    word starts where this one ends (fluent speech) or after an exponentially distributed pause."""
    gap = starts[:, None] - ends[None, :]
    if settings.gap_weight == 0:
        return np.where(gap >= 0, 0.0, -np.inf)
    pause = np.log1p(-settings.gap_zero) - np.log(settings.gap_scale) - gap / settings.gap_scale
    score = np.where(gap == 0, np.log(settings.gap_zero), pause)
    return np.where(gap >= 0, settings.gap_weight * score, -np.inf)


def order_pairs(prev: np.ndarray, nxt: np.ndarray, gap: int) -> np.ndarray:
    """Log-potential (next, prev) that only allows ``next >= prev + gap``."""
    return np.where(nxt[:, None] >= prev[None, :] + gap, 0.0, -np.inf)


def decode_chain(
    params: RefineParams,
    tracks: FrameTracks,
    starts: np.ndarray,
    ends: np.ndarray,
    activation: np.ndarray | None,
    states: np.ndarray | None,
    settings: ChainSettings = ChainSettings(),
    min_duration: float = 0.02,
    letters: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Refined (starts, ends) in seconds of one piece's words, decoded jointly (see the module's docstring);
    arguments as :func:`~whisper_align.alignment.refine.refine_boundaries` takes them."""
    if params.detectors and states is None:
        raise RefineError("these refinement parameters use encoder states; pass the encoder output as states=")
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    if len(starts) == 0:
        return starts.copy(), ends.copy()
    unaries = {}
    for kind, coarse in (("start", starts), ("end", ends)):
        evidence = None
        if params.detectors:
            evidence = evidence_track(params.detectors[kind], states, tracks.n_frames)  # type: ignore[arg-type]
        unaries[kind] = unary_scores(params, tracks, coarse, kind, settings, activation, evidence)  # type: ignore[arg-type]
    frames, scores, pairs = [], [], []
    for k in range(len(starts)):
        for kind in ("start", "end"):
            frames.append(unaries[kind][0][k])
            scores.append(unaries[kind][1][k])
            if kind == "end":
                n_letters = float(letters[k]) if letters is not None else 4.0
                pairs.append(duration_pairs(frames[-2], frames[-1], n_letters, settings))
            elif k:
                pairs.append(gap_pairs(frames[-2], frames[-1], settings))
    marginals = chain_marginals(frames, scores, pairs)
    times = np.array([_read(f, p, settings.rule) for f, p in zip(frames, marginals)]) / FRAMES_PER_SECOND
    return make_monotone(times[0::2], times[1::2], min_duration, tracks.n_frames / FRAMES_PER_SECOND)


def _read(frames: np.ndarray, p: np.ndarray, rule: str) -> float:
    if rule == "argmax":
        return float(frames[p.argmax()])
    if rule == "mean":
        return float((p * frames).sum())
    return float(frames[int((p.cumsum() >= 0.5).argmax())])
