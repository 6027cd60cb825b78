"""Logit filters applied at every decoding step, in openai-whisper's order and with its exact rules.

Each filter edits the last-position logits ``(batch, vocab)`` in place, given the tokens so far ``(batch, T)``
(initial tokens included). ``sample_begin`` is the number of initial tokens (prompt, sot sequence, prefix).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch.nn.functional as F
from torch import Tensor

from ..errors import DecodingError


class LogitFilter(Protocol):
    def apply(self, logits: Tensor, tokens: Tensor) -> None: ...


class SuppressBlank:
    """At the first sampled position, forbid a lone space and end-of-text (no empty transcripts)."""

    def __init__(self, blank_tokens: Sequence[int], sample_begin: int):
        self.blank_tokens = list(blank_tokens)
        self.sample_begin = sample_begin

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        if tokens.shape[1] == self.sample_begin:
            logits[:, self.blank_tokens] = -math.inf


class SuppressTokens:
    """Forbid a fixed set of tokens everywhere (non-speech symbols, task/sot tokens, no-speech)."""

    def __init__(self, suppress: Sequence[int]):
        self.suppress = list(suppress)

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        logits[:, self.suppress] = -math.inf


class ApplyTimestampRules:
    """Whisper's timestamp grammar.

    * ``<|notimestamps|>`` never appears (timestamps mode is chosen by the initial tokens);
    * timestamps come in pairs (end of one segment, start of the next), except a single one right before EOT:
      after a pair comes text, after a lone timestamp comes a timestamp or EOT;
    * timestamps never decrease, and a segment has nonzero length (after text, the next timestamp is > the last);
    * the first sampled token is a timestamp no later than ``max_initial_timestamp_index``;
    * a timestamp is forced when the total probability of all timestamps beats every single text token.
    """

    def __init__(
        self,
        timestamp_begin: int,
        eot: int,
        no_timestamps: int | None,
        sample_begin: int,
        max_initial_timestamp_index: int | None,
    ):
        self.timestamp_begin = timestamp_begin
        self.eot = eot
        self.no_timestamps = no_timestamps
        self.sample_begin = sample_begin
        self.max_initial_timestamp_index = max_initial_timestamp_index

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        begin = self.timestamp_begin
        if self.no_timestamps is not None:
            logits[:, self.no_timestamps] = -math.inf

        for k, row in enumerate(tokens[:, self.sample_begin :].tolist()):
            last_is_ts = len(row) >= 1 and row[-1] >= begin
            penultimate_is_ts = len(row) < 2 or row[-2] >= begin
            if last_is_ts:
                if penultimate_is_ts:  # a pair just closed: text must follow
                    logits[k, begin:] = -math.inf
                else:  # a lone timestamp: another timestamp or EOT must follow
                    logits[k, : self.eot] = -math.inf
            timestamps = [t for t in row if t >= begin]
            if timestamps:
                # never decrease; after text the next timestamp must be strictly later
                floor = timestamps[-1] if (last_is_ts and not penultimate_is_ts) else timestamps[-1] + 1
                logits[k, begin:floor] = -math.inf

        if tokens.shape[1] == self.sample_begin:
            logits[:, :begin] = -math.inf
            if self.max_initial_timestamp_index is not None:
                logits[:, begin + self.max_initial_timestamp_index + 1 :] = -math.inf

        logprobs = F.log_softmax(logits.float(), dim=-1)
        timestamp_logprob = logprobs[:, begin:].logsumexp(dim=-1)
        max_text_logprob = logprobs[:, :begin].max(dim=-1).values
        force = timestamp_logprob > max_text_logprob
        if bool(force.any()):
            logits[force, :begin] = -math.inf


def suppressed_tokens(
    spec: str | Sequence[int] | None, non_speech_tokens: Sequence[int], always: Sequence[int | None]
) -> tuple[int, ...]:
    """The token ids to suppress: ``spec`` ("-1" = the tokenizer's non-speech symbols, or ids, comma-separated
    or as a list) plus the ``always`` ids (task, sot, no-speech tokens...), sorted and unique."""
    if spec is None:
        ids: list[int] = []
    elif isinstance(spec, str):
        try:
            ids = [int(t) for t in spec.split(",") if t.strip()]
        except ValueError:
            raise DecodingError(
                f"suppress_tokens {spec!r} is not a comma-separated list of token ids (or -1)"
            ) from None
    else:
        ids = [int(t) for t in spec]
    if -1 in ids:
        ids = [t for t in ids if t >= 0] + list(non_speech_tokens)
    ids += [t for t in always if t is not None]
    return tuple(sorted(set(ids)))
