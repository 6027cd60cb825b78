"""From the alignment heads' cross-attention scores to one (tokens x time) alignment matrix.

These are openai-whisper's ``find_alignment`` steps, in the same order and with the same arithmetic, so that
the matrix (and hence the DTW path and the word times) is the one openai-whisper would compute:

1. crop the scores to the audio positions that hold real audio (mel frames // 2) *before* the softmax, so
   the padding after the audio gets no probability mass;
2. softmax over time (after multiplying by ``qk_scale``);
3. standardise each head over the token axis (population std, i.e. ``unbiased=False``), which turns "how much
   does this token look at frame t" into "how much more than the other tokens do";
4. median-filter each row along time (odd width, reflect padding) to remove one-frame spikes;
5. average over heads.

The normalisation in step 3 runs over every token row given, so pass the scores of the whole decoder input
(sot sequence, no-timestamps token, text, eot) as openai does, and slice the rows afterwards.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import AudioError


def median_filter(x: Tensor, width: int) -> Tensor:
    """Median of each sliding window of ``width`` values along the last axis; same shape as ``x``.

    The ends are reflect-padded (``[3, 2, 1] | 1 2 3 ... `` mirrors without repeating the edge value), as
    openai-whisper's CPU path does; a last axis no longer than ``width // 2`` is returned unchanged, as there.
    The median of an odd window is its middle value after sorting, so this equals openai's result bit for bit.
    """
    if not isinstance(width, int) or width < 1 or width % 2 == 0:
        raise ValueError(f"median filter width must be a positive odd integer, got {width!r}")
    pad = width // 2
    if pad == 0 or x.shape[-1] <= pad:
        return x
    left = x[..., 1 : pad + 1].flip(-1)
    right = x[..., -pad - 1 : -1].flip(-1)
    padded = torch.cat([left, x, right], dim=-1)
    if torch.isnan(padded).any():  # sort's NaN ordering is openai's; min/max would spread NaNs differently
        return padded.unfold(-1, width, 1).sort(dim=-1).values[..., pad]
    # A sorting network over the ``width`` shifted views, of which only the comparisons that reach the middle
    # lane are kept: elementwise min/max pick the very same elements a sort would, several times faster than
    # sorting every window. Rows go in blocks small enough for the views to stay in the CPU's cache.
    n = x.shape[-1]
    rows = padded.reshape(-1, padded.shape[-1])
    out = torch.empty(rows.shape[0], n, dtype=x.dtype, device=x.device)
    block = max(1, _BLOCK_ELEMENTS // padded.shape[-1])
    for start in range(0, rows.shape[0], block):
        part = rows[start : start + block]
        lanes = [part[:, i : i + n] for i in range(width)]
        for i, low, high in _median_network(width):
            a, b = lanes[i], lanes[i + 1]
            if low:
                lanes[i] = torch.minimum(a, b)
            if high:
                lanes[i + 1] = torch.maximum(a, b)
        out[start : start + block] = lanes[pad]
    return out.view(x.shape)


_BLOCK_ELEMENTS = 32_768  # per view: width views of a block fit in a core's L2 cache


@functools.cache
def _median_network(width: int) -> tuple[tuple[int, bool, bool], ...]:
    """Odd-even transposition sort of ``width`` lanes, as (i, keep min into lane i, keep max into lane i + 1),
    without the comparisons (or halves of them) whose results never reach the middle lane."""
    network = [(step, i) for step in range(width) for i in range(step % 2, width - 1, 2)]
    needed, kept = {width // 2}, []
    for _, i in reversed(network):
        low, high = i in needed, i + 1 in needed
        if low or high:
            kept.append((i, low, high))
            needed |= {i, i + 1}
    return tuple(reversed(kept))


def alignment_matrix(
    qk: Tensor,
    n_positions_kept: int,
    medfilt_width: int = 7,
    qk_scale: float = 1.0,
) -> Tensor:
    """Turn alignment-head scores ``qk`` (heads, tokens, positions) into a (tokens, n_positions_kept) matrix.

    ``qk`` holds the *pre-softmax* cross-attention scores (q·kᵀ, already scaled by 1/sqrt(head dim)) of the
    alignment heads. ``n_positions_kept`` is the number of encoder positions that hold real audio, i.e. the
    number of mel frames // 2 (one position is 20 ms); it is capped at the number of positions, as openai's
    slicing does. The result is float32; higher values mean "this token is heard here".

    A column where every token has the same weight (zero spread over tokens) is set to 0 instead of NaN.
    """
    if qk.ndim != 3:
        raise ValueError(f"qk must have shape (heads, tokens, positions), got shape {tuple(qk.shape)}")
    n_heads, n_tokens, n_positions = qk.shape
    if n_heads == 0 or n_tokens == 0:
        raise ValueError(f"qk has no {'heads' if n_heads == 0 else 'tokens'} (shape {tuple(qk.shape)})")
    if n_positions_kept < 1:
        raise AudioError(
            f"the audio spans {n_positions_kept} encoder positions; at least one (20 ms of audio) is needed"
        )
    weights = qk[:, :, : min(int(n_positions_kept), n_positions)].float()
    weights = (weights * qk_scale).softmax(dim=-1)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = torch.where(std > 0, (weights - mean) / std, torch.zeros_like(weights))
    weights = median_filter(weights, medfilt_width)
    return weights.mean(dim=0)


def alignment_matrices(
    qk: Tensor,
    n_positions_kept: Sequence[int],
    n_tokens: Sequence[int] | None = None,
    medfilt_width: int = 7,
    qk_scale: float = 1.0,
) -> list[Tensor]:
    """:func:`alignment_matrix` for a batch ``qk`` of shape (batch, heads, tokens, positions).

    Item ``b`` keeps its first ``n_positions_kept[b]`` positions and, if ``n_tokens`` is given, its first
    ``n_tokens[b]`` token rows (the rest being padding, which must not enter the normalisation over tokens).
    The items differ in length, so a list of (tokens_b, positions_b) matrices comes back. Each item is done
    on its own: the reflect padding of the median filter depends on each item's own length.
    """
    if qk.ndim != 4:
        raise ValueError(f"qk must have shape (batch, heads, tokens, positions), got shape {tuple(qk.shape)}")
    batch = qk.shape[0]
    if len(n_positions_kept) != batch or (n_tokens is not None and len(n_tokens) != batch):
        raise ValueError(
            f"qk holds {batch} items but {len(n_positions_kept)} position counts"
            + ("" if n_tokens is None else f" and {len(n_tokens)} token counts")
            + " were given; give one per item"
        )
    matrices = []
    for b in range(batch):
        item = qk[b] if n_tokens is None else qk[b, :, : int(n_tokens[b])]
        matrices.append(alignment_matrix(item, int(n_positions_kept[b]), medfilt_width, qk_scale))
    return matrices


__all__ = ["median_filter", "alignment_matrix", "alignment_matrices"]
