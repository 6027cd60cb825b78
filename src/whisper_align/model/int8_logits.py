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
from collections.abc import Sequence

import torch
from torch import Tensor

from .int8 import _linear
from .whisper import TextDecoder


class CheckedInt8Vocabulary:
    """A drop-in for the decoder's vocabulary projection (hidden states (B, T, D) -> logits (B, T, V))."""

    def __init__(
        self,
        decoder: TextDecoder,
        eot: int,
        suppressed: Sequence[int],
        always_exact: Sequence[int] = (),
        margin: float = 4.0,
    ):
        weight = decoder.token_embedding.weight
        if weight.device.type != "cpu":
            raise ValueError("the checked int8 projection runs on the CPU only")
        self.decoder = decoder
        self.weight = weight.detach().float()  # its rows: the candidates' exact logits
        self.eot, self.margin = eot, margin
        self.packed = decoder.int8_vocabulary()
        self.allowed = torch.ones(eot, dtype=torch.bool)
        self.allowed[[t for t in suppressed if t < eot]] = False
        self.always_exact = torch.tensor(sorted({t for t in always_exact if t < eot}), dtype=torch.long)
        self.steps = self.fallbacks = 0
        self.recomputed = 0  # text tokens recomputed in float32, summed over steps

    def __call__(self, hidden: Tensor) -> Tensor:
        shape = hidden.shape
        x = hidden.reshape(-1, shape[-1]).float()
        logits = _linear(x, self.packed, "the checked vocabulary projection")
        approx_text = logits[:, : self.eot].masked_fill(~self.allowed, -math.inf)
        best = approx_text.max(dim=-1, keepdim=True).values
        candidates = (approx_text >= best - self.margin).any(dim=0)
        candidates[self.always_exact] = True
        index = candidates.nonzero().squeeze(1)
        exact = x @ self.weight[index].T
        self.steps += 1
        self.recomputed += len(index)
        projection = self.decoder.vocabulary_projection(torch.float32)  # (D, V), float32 as decoding gets it
        if float((exact - logits[:, index]).abs().max()) > self.margin / 2:
            self.fallbacks += 1
            logits = x @ projection
        else:
            logits[:, index] = exact
            logits[:, self.eot :] = x @ projection[:, self.eot :]
        return logits.reshape(*shape[:-1], logits.shape[-1])


__all__ = ["CheckedInt8Vocabulary"]
