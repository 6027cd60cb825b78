"""Word-level global decode of word boundaries: all boundaries of a piece chosen jointly, in order.

The boundary refinement (:mod:`whisper_align.alignment.refine`) moves each boundary on its own within
``radius`` frames of where DTW put it. Attention and DTW sometimes misplace words by far more than that: the
path lags behind the speech, stretches one word over the next ones and squeezes those into a few frames. Such
boundaries are out of the refinement's reach, and they dominate the mean error. This decode looks wider and
uses what a lone boundary cannot: that words come in order and that a word's length follows its spelling.

**Model.** Every boundary of a piece (``start_1, end_1, start_2, ..., end_K``; 10 ms frames) is a variable
whose candidates are the frames within ``band`` of its coarse position. Its unary score is the refinement's
fitted scorer *without* its offset prior (the evidence: loudness, spectral change, the word's and its
neighbour's attention, the encoder-state detector) minus a weak Laplace prior on the distance beyond the
refinement's radius. Consecutive boundaries are linked by a log-normal prior on each word's duration given its
number of letters (and at least ``min_frames``), and by a prior on the gap between a word and the next (zero
in fluent speech, else an exponentially distributed pause; never negative). A forward-backward pass gives
each boundary's marginal posterior, read by the refinement's decoding rule (the posterior median by default).

The pairwise terms depend only on the difference of two frames, so each step of the forward-backward pass is
one convolution: O(words x band x band) multiply-adds in numpy and a few milliseconds per clip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import RefineError
from .boundary_detector import evidence_track
from .boundary_features import FRAMES_PER_SECOND, Decode, FrameTracks, Kind
from .refine import RefineParams, boundary_inputs, make_monotone

OFFSET_COLUMNS = 3  # offset, offset^2, |offset|: the scorer's prior, the first three features


@dataclass(frozen=True)
class ChainSettings:
    """The global decode's search width and priors (frames are 10 ms).

    ``band``: frames each side of a coarse boundary that can be chosen; ``prior_scale``: scale of the Laplace
    prior on the distance beyond the refinement's radius; ``min_frames``: shortest word; ``duration_*``: the
    log-normal duration prior, ``log(seconds) ~ N(intercept + slope * log(letters), sd)`` (fitted on festival's
    fitting clips, see benchmarks/precision_segment.py), with weight ``duration_weight``; ``gap_zero``: the
    probability that a word starts where the previous one ends, ``gap_scale`` the mean pause otherwise (frames),
    both with weight ``gap_weight``; ``anchor``: weight of the scorer's own fitted offset prior (flat beyond
    its radius; 0, the best measured, leaves the evidence alone).
    """

    band: int = 120
    prior_scale: float = 200.0
    min_frames: int = 2
    duration_weight: float = 1.0
    duration_slope: float = 1.065
    duration_intercept: float = -2.803
    duration_sd: float = 0.357
    gap_weight: float = 0.5
    gap_zero: float = 0.9
    gap_scale: float = 15.0
    anchor: float = 0.0


@dataclass
class Boundary:
    """One variable of the chain: its candidate frames ``first, first + 1, ...`` and their unary scores."""

    first: int
    scores: np.ndarray

    @property
    def frames(self) -> np.ndarray:
        return np.arange(self.first, self.first + len(self.scores))


def unary_boundaries(
    params: RefineParams,
    tracks: FrameTracks,
    coarse: np.ndarray,
    kind: Kind,
    settings: ChainSettings,
    activation: np.ndarray | None,
    evidence: np.ndarray | None,
) -> list[Boundary]:
    """One :class:`Boundary` per coarse time (seconds) of one kind: the fitted scorer's evidence (its offset
    features set to their training mean), plus ``anchor`` times its offset prior (in units of its radius,
    clipped there), minus the Laplace prior beyond the radius."""
    band = max(settings.band, params.radius)
    frames, x = boundary_inputs(tracks, coarse, kind, band, activation, evidence)
    model = params.start if kind == "start" else params.end
    offset = np.clip(x[..., 0] * band / params.radius, -1.0, 1.0)
    prior = np.stack([offset, offset**2, np.abs(offset)], axis=-1)
    prior = ((prior - model.mean[:OFFSET_COLUMNS]) / model.scale[:OFFSET_COLUMNS]) @ model.weights[:OFFSET_COLUMNS]
    distance = np.abs(x[..., 0]) * band  # frames from the coarse boundary
    x = x.copy()
    x[..., :OFFSET_COLUMNS] = model.mean[:OFFSET_COLUMNS]
    scores = model.scores(x) + settings.anchor * prior
    scores -= np.clip(distance - params.radius, 0.0, None) / settings.prior_scale
    out = []
    for row_frames, row in zip(frames, scores):
        unique = np.ones(len(row_frames), dtype=bool)  # candidates off the clip repeat its edge frames
        unique[1:] = row_frames[1:] != row_frames[:-1]
        out.append(Boundary(int(row_frames[0]), row[unique]))
    return out


def expected_log_seconds(letters: float, settings: ChainSettings) -> float:
    """The duration prior's mean: the log of how long a word of ``letters`` letters and digits lasts (seconds)."""
    return float(settings.duration_intercept + settings.duration_slope * np.log(max(letters, 1.0)))


def duration_kernel(letters: float, settings: ChainSettings) -> Callable[[np.ndarray], np.ndarray]:
    """Log-potential of a word lasting ``d`` frames: at least ``min_frames``, log-normal in its letters."""
    mu = expected_log_seconds(letters, settings)

    def kernel(d: np.ndarray) -> np.ndarray:
        z = (np.log(np.maximum(d, 1) / FRAMES_PER_SECOND) - mu) / settings.duration_sd
        return np.where(d >= settings.min_frames, -0.5 * settings.duration_weight * z**2, -np.inf)

    return kernel


def gap_kernel(settings: ChainSettings) -> Callable[[np.ndarray], np.ndarray]:
    """Log-potential of ``d`` frames between a word's end and the next word's start: never negative, zero in
    fluent speech (probability ``gap_zero``), else an exponential pause of mean ``gap_scale``."""
    pause = np.log1p(-settings.gap_zero) - np.log(settings.gap_scale)

    def kernel(d: np.ndarray) -> np.ndarray:
        score = np.where(d == 0, np.log(settings.gap_zero), pause - d / settings.gap_scale)
        return np.where(d >= 0, settings.gap_weight * score, -np.inf)

    return kernel


def chain_marginals(
    boundaries: Sequence[Boundary], kernels: Sequence[Callable[[np.ndarray], np.ndarray]]
) -> list[np.ndarray]:
    """Each boundary's posterior over its frames, given unaries and the pairwise log-potentials
    ``kernels[j](frame[j + 1] - frame[j])``: forward-backward with each step a convolution, rescaled at every
    step. A boundary that no ordered assignment reaches falls back to its unaries."""
    n = len(boundaries)
    unary = [np.exp(b.scores - b.scores.max()) for b in boundaries]
    links = []
    for j in range(n - 1):  # h[t]: the kernel at d = first[j+1] - last[j] + t, over every difference in reach
        a, b = boundaries[j], boundaries[j + 1]
        lowest = b.first - (a.first + len(a.scores) - 1)
        links.append(np.exp(kernels[j](np.arange(lowest, lowest + len(a.scores) + len(b.scores) - 1))))
    forward = [_normalised(unary[0])]
    for j in range(n - 1):
        size = len(unary[j])
        reach = np.convolve(forward[j], links[j])[size - 1 : size - 1 + len(unary[j + 1])]
        forward.append(_normalised(unary[j + 1] * reach))
    backward = [np.ones(len(unary[-1]))]
    for j in range(n - 2, -1, -1):
        reach = np.correlate(links[j], unary[j + 1] * backward[0], mode="valid")[::-1]
        backward.insert(0, _normalised(reach))
    out = []
    for j in range(n):
        p = forward[j] * backward[j]
        out.append(_normalised(p) if p.sum() > 0 else _normalised(unary[j]))
    return out


def _normalised(p: np.ndarray) -> np.ndarray:
    total = p.sum()
    return p / total if total > 0 else p


def read_boundary(frames: np.ndarray, p: np.ndarray, rule: Decode) -> float:
    """A boundary frame from its posterior: the posterior median, the most likely frame or the mean."""
    if rule == "argmax":
        return float(frames[p.argmax()])
    if rule == "mean":
        return float((p * frames).sum())
    if rule == "median":
        return float(frames[int((p.cumsum() >= 0.5).argmax())])
    raise RefineError(f"unknown decoding rule {rule!r}; use 'argmax', 'median' or 'mean'")


def decode_chain(
    params: RefineParams,
    tracks: FrameTracks,
    starts: np.ndarray,
    ends: np.ndarray,
    letters: Sequence[float],
    activation: np.ndarray | None = None,
    states: np.ndarray | None = None,
    settings: ChainSettings = ChainSettings(),
    min_duration: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """Refined (starts, ends) in seconds of one piece's words, all decoded jointly (see the module docstring).

    ``starts``/``ends`` are the coarse times (seconds from the first mel frame, in order), ``letters`` each
    word's number of letters and digits; ``activation`` and ``states`` as
    :func:`~whisper_align.alignment.refine.refine_boundaries` takes them."""
    if params.detectors and states is None:
        raise RefineError("these refinement parameters use encoder states; pass the encoder output as states=")
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    if starts.shape != ends.shape or starts.ndim != 1 or len(letters) != len(starts):
        raise RefineError(
            f"starts, ends and letters must be 1-D and equally long; got {starts.shape}, {ends.shape}, {len(letters)}"
        )
    if len(starts) == 0:
        return starts.copy(), ends.copy()
    unaries = {}
    for kind, coarse in (("start", starts), ("end", ends)):
        evidence = None
        if params.detectors:
            evidence = evidence_track(params.detectors[kind], states, tracks.n_frames)  # type: ignore[arg-type]
        unaries[kind] = unary_boundaries(params, tracks, coarse, kind, settings, activation, evidence)  # type: ignore[arg-type]
    chain, kernels = [], []
    for k in range(len(starts)):
        if k:
            kernels.append(gap_kernel(settings))
        chain += [unaries["start"][k], unaries["end"][k]]
        kernels.append(duration_kernel(float(letters[k]), settings))
    marginals = chain_marginals(chain, kernels)
    times = np.array([read_boundary(b.frames, p, params.decode) for b, p in zip(chain, marginals)])
    times /= FRAMES_PER_SECOND
    return make_monotone(times[0::2], times[1::2], min_duration, tracks.n_frames / FRAMES_PER_SECOND)


__all__ = ["ChainSettings", "Boundary", "unary_boundaries", "chain_marginals", "decode_chain", "read_boundary"]
