"""Dynamic time warping of token rows onto time columns, in plain numpy (no numba, no compiler).

:func:`dtw` returns exactly the path of openai-whisper's ``dtw_cpu``: the same float32 accumulated cost
(each step adds a float64 cost to a float32 total and rounds the sum to float32), the same tie-breaking
(diagonal only if strictly cheapest, then "up" only if strictly cheapest, otherwise "left") and the same
backtrace from the last cell to the first.

Speed comes from sweeping anti-diagonals: every cell of the diagonal ``i + j = d`` depends only on the
diagonals ``d - 1`` and ``d - 2``, so one diagonal is three numpy operations. The accumulated costs are
kept in a skewed array (row = diagonal) and read back through a strided view; no trace array is stored,
because the backtrace can recompute each choice from the same three costs the forward pass compared.

:func:`dtw_subsequence` frees both ends along time: the first token may start at any frame and the last
token may end at any frame.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

# Accumulated costs live in float32 (as in openai's dtw_cpu); keep far from its overflow.
_FLOAT32_SAFE = float(np.finfo(np.float32).max) / 4


def _check_cost(cost: np.ndarray) -> np.ndarray:
    x = np.asarray(cost)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"the DTW cost must be a non-empty 2-D (tokens, frames) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"the DTW cost must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise ValueError("the DTW cost contains NaN or infinity; check the alignment matrix it came from")
    if np.abs(x).max() * (x.shape[0] + x.shape[1]) > _FLOAT32_SAFE:
        raise ValueError("the DTW cost is too large to accumulate in float32; rescale it")
    return x


def _accumulate(x: np.ndarray, free_start: bool) -> np.ndarray:
    """The (N+1, M+1) float32 accumulated-cost matrix of ``x`` (N, M), padded by an inf row and column.

    ``cost[0, 0] = 0``. Without ``free_start`` each cell adds the predecessor openai's ``dtw_cpu`` picks
    (diagonal if strictly cheapest, else up if strictly cheapest, else left). With ``free_start`` the whole
    padding row ``cost[0, :]`` is 0, so a path may enter the first token row at any column, and each cell
    adds the cheapest predecessor. Returned as a strided view of the skewed diagonal-major storage.
    """
    n, m = x.shape
    width = n + 1  # one skewed row per anti-diagonal d = i + j, indexed by i
    skew = np.full((n + m + 1, width), np.inf, dtype=np.float32)
    skew[0, 0] = 0.0
    flat = skew.reshape(-1)
    item = flat.itemsize
    # cost[i, j] lives at skew[i + j, i], i.e. flat[i * (width + 1) + j * width]
    cost = as_strided(flat, shape=(n + 1, m + 1), strides=((width + 1) * item, width * item), writeable=True)
    if free_start:
        cost[0, :] = 0.0

    # the input, skewed the same way: xs[d, i] = x[i - 1, j - 1] for the cell (i, j) with i + j = d
    xs = np.zeros((n + m + 1, width), dtype=np.float64)
    xflat = xs.reshape(-1)
    xview = as_strided(
        xflat[width + 1 + width :], shape=(n, m), strides=((width + 1) * xflat.itemsize, width * xflat.itemsize)
    )
    xview[...] = x

    for d in range(2, n + m + 1):
        lo, hi = max(1, d - m), min(n, d - 1)  # rows i of the interior cells on this diagonal
        diag = skew[d - 2, lo - 1 : hi]  # cost[i-1, j-1]
        up = skew[d - 1, lo - 1 : hi]  # cost[i-1, j]
        left = skew[d - 1, lo : hi + 1]  # cost[i, j-1]
        best = np.minimum(diag, up)
        if not free_start:
            # dtw_cpu adds the cost it *chose*: on a diag/up tie that is "left", even if left is dearer.
            # (Otherwise its choice has the minimum's value: on any other tie the tied values are equal.)
            np.copyto(best, np.inf, where=diag == up)
        np.minimum(best, left, out=best)
        # float64 cost + float32 total, rounded to float32: exactly dtw_cpu's arithmetic
        np.add(xs[d, lo : hi + 1], best, out=skew[d, lo : hi + 1], casting="same_kind")
    return cost


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest monotone path through ``cost`` (tokens, frames) from (0, 0) to (N-1, M-1).

    Steps are diagonal, down one token, or right one frame. Returns ``(text_indices, time_indices)``, two
    int64 arrays of equal length, identical to openai-whisper's ``dtw_cpu(cost)`` (cost as float64).
    """
    x = _check_cost(cost)
    acc = _accumulate(x, free_start=False)
    i, j = x.shape
    path: list[tuple[int, int]] = []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        if i == 0:
            j -= 1
            continue
        if j == 0:
            i -= 1
            continue
        c0, c1, c2 = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
        if c0 < c1 and c0 < c2:
            i, j = i - 1, j - 1
        elif c1 < c0 and c1 < c2:
            i -= 1
        else:
            j -= 1
    return _as_indices(path)


def dtw_subsequence(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`dtw`, but the path may start at any frame of the first token row and end at any frame
    of the last one, so frames before the first token and after the last one can be left unassigned.

    The end is the cheapest cell of the last row (the earliest one on ties). Ties inside are broken
    diagonal, then up, then left, so that the recorded path always follows the cheapest predecessor
    (openai's "left unless strictly worse" rule would never leave the free first row).
    """
    x = _check_cost(cost)
    acc = _accumulate(x, free_start=True)
    n, _ = x.shape
    i, j = n, int(np.argmin(acc[n, 1:])) + 1
    path: list[tuple[int, int]] = []
    while i > 0:
        path.append((i - 1, j - 1))
        if j == 1:  # column 0 is padding: only the way up (or, from row 1, out) is left
            i -= 1
            continue
        c0, c1, c2 = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
        if i == 1 and c0 <= c2 or i > 1 and c0 <= c1 and c0 <= c2:
            i, j = i - 1, j - 1
        elif i > 1 and c1 <= c2:
            i -= 1
        else:
            j -= 1
    return _as_indices(path)


def _as_indices(path: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    steps = np.array(path[::-1], dtype=np.int64).reshape(-1, 2)
    return steps[:, 0].copy(), steps[:, 1].copy()


__all__ = ["dtw", "dtw_subsequence"]
