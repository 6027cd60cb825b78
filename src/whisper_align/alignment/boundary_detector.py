"""A frame-level word-boundary detector on the encoder's hidden states (20 ms positions): logistic regression for
"a word start (or end) falls here", used as evidence by :mod:`whisper_align.alignment.refine`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RefineError

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


def fit_frame_detector(
    states: np.ndarray, labels: np.ndarray, l2: float = 100.0, iterations: int = 15
) -> FrameDetector:
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
