"""Greedy decoding's vocabulary projection in int8, with every token that could be chosen recomputed in float32.

For a small Whisper on a CPU the projection onto the 51,864-token vocabulary is the largest single cost of a
decoding step (3.7 ms a token for tiny.en in float32, 0.8 ms in int8). Greedy decoding only needs the winner,
and Whisper's timestamp rule only compares the timestamps' total probability with the best text token's. So:

1. all logits come from the int8 product (error: a fraction of a logit);
2. the special and timestamp tokens (ids from end-of-text on, about 1,500 rows) are recomputed in float32;
3. so is every text token that could still win: those not always suppressed whose int8 logit is within
   ``margin`` of the best such one (plus the blank tokens, which are suppressed only at the first step);
4. if the int8 error seen on those recomputed tokens exceeds ``margin / 2``, the whole step falls back to
   the float32 product (``fallbacks`` counts it).

As long as no token's int8 error exceeds half the margin, the argmax and the timestamp rule's comparison are
float32's, so the tokens are the float32 tokens. The log-probabilities (avg_logprob, word probabilities) are
normalised over logits of which the unlikely ones are int8, an error around 1e-3.
"""

from __future__ import annotations

import math
import weakref
from typing import Sequence

import torch
from torch import Tensor

from .quantize import _pack


_PACKED: dict[int, tuple[weakref.ref, int, torch.ScriptObject]] = {}  # id(weight) -> (weight, version, packing)


def _packed(weight: Tensor) -> torch.ScriptObject:
    """The int8 packing of an embedding, made once per weight (and again if it is edited in place): packing
    tiny.en's takes longer than decoding a few tokens. Dropped when the weight is."""
    cached = _PACKED.get(id(weight))
    if cached is None or cached[0]() is not weight or cached[1] != weight._version:
        if cached is None or cached[0]() is not weight:
            weakref.finalize(weight, _PACKED.pop, id(weight), None)
        cached = (weakref.ref(weight), weight._version, _pack(weight, None))
        _PACKED[id(weight)] = cached
    return cached[2]


class CheckedInt8Vocabulary:
    """A drop-in for the decoder's vocabulary projection (hidden states (B, T, D) -> logits (B, T, V))."""

    def __init__(self, weight: Tensor, eot: int, suppressed: Sequence[int], always_exact: Sequence[int] = (),
                 margin: float = 4.0):
        if weight.device.type != "cpu":
            raise ValueError("the checked int8 projection runs on the CPU only")
        self.weight = weight.detach().float()
        self.eot, self.margin = eot, margin
        self.packed = _packed(weight)
        self.special = self.weight[eot:].T.contiguous()  # (D, V - eot): always exact
        self.allowed = torch.ones(eot, dtype=torch.bool)
        self.allowed[[t for t in suppressed if t < eot]] = False
        self.always_exact = torch.tensor(sorted({t for t in always_exact if t < eot}), dtype=torch.long)
        self.steps = self.fallbacks = 0
        self.recomputed = 0  # text tokens recomputed in float32, summed over steps

    def __call__(self, hidden: Tensor) -> Tensor:
        shape = hidden.shape
        x = hidden.reshape(-1, shape[-1]).float().contiguous()
        logits = torch.ops.quantized.linear_dynamic(x, self.packed, True)
        approx_text = logits[:, : self.eot].masked_fill(~self.allowed, -math.inf)
        best = approx_text.max(dim=-1, keepdim=True).values
        candidates = (approx_text >= best - self.margin).any(dim=0)
        candidates[self.always_exact] = True
        index = candidates.nonzero().squeeze(1)
        exact = x @ self.weight[index].T
        self.steps += 1
        self.recomputed += len(index)
        if float((exact - logits[:, index]).abs().max()) > self.margin / 2:
            self.fallbacks += 1
            logits = x @ self.weight.T
        else:
            logits[:, index] = exact
            logits[:, self.eot :] = x @ self.special
        return logits.reshape(*shape[:-1], logits.shape[-1])


__all__ = ["CheckedInt8Vocabulary"]
