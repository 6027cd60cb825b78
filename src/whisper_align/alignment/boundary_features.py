"""Features of candidate word-boundary positions for :mod:`whisper_align.alignment.refine`: loudness levels and
floors inside and outside a candidate, spectral flux, the word's and its neighbours' attention, at 10 ms steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import RefineError

FRAMES_PER_SECOND = 100  # log-mel frames (hop 160 at 16 kHz)
LEVEL_WINDOWS = (2, 5, 10)
FLUX_WINDOWS = (2, 5)
ATTENTION_WINDOW = 4  # 10 ms frames each side for the attention contrast
Kind = Literal["start", "end"]
Decode = Literal["argmax", "median", "mean"]

FEATURE_NAMES: tuple[str, ...] = (
    "offset",
    "offset^2",
    "|offset|",
    *(f"level_in_{k}" for k in LEVEL_WINDOWS),
    *(f"level_out_{k}" for k in LEVEL_WINDOWS),
    *(f"floor_in_{k}" for k in LEVEL_WINDOWS),
    *(f"floor_out_{k}" for k in LEVEL_WINDOWS),
    *(f"rise_{k}" for k in LEVEL_WINDOWS),
    *(f"flux_{k}" for k in FLUX_WINDOWS),
    "attention_word",
    "attention_neighbour",
    "detector",
)


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
    matrix: np.ndarray,
    word_rows: Sequence[tuple[int, int]],
    time_shift: float,
    n_frames: int,
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
