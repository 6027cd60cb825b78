"""Scoring sets of alignment heads from captured attention, with no more model passes.

The alignment matrix of a head set is the *mean over heads* of a per-head matrix (openai's ``find_alignment``
steps 1-4: crop, softmax over time, standardise over tokens, median filter; see
:mod:`whisper_align.alignment.attention`). So each head's matrix is computed once per utterance
(:func:`head_matrices`), and any set's matrix is the mean of its members' (:func:`set_matrix`), which equals
``alignment_matrix`` of the set's scores up to float rounding. Word times then come from the usual DTW and word
rules (:func:`~whisper_align.alignment.words.align_words`).

**The objective** (what supervised selection maximises, higher is better), over the pooled start and end
boundaries of all matched words::

    J = (within_50ms + within_100ms) / 2  -  median_abs_error_seconds

with the shares in [0, 1]; so 10 ms of median error weigh as much as 1 point of the within-shares. It rewards
getting many boundaries close (the shares) and the typical error small (the median), and is insensitive to a
few far-off words, which no head set can rescue.

**Unsupervised ranking** (:func:`unsupervised_ranking`, for data without reference times). A head that aligns
puts each word where the *other* good heads put it, while heads that attend elsewhere disagree with everyone
in their own ways. So:

1. each head aligns every utterance alone, giving its word boundaries;
2. a first panel is the heads whose DTW path runs through the strongest attention (the mean of the head's
   standardised matrix along its own path: a sharp, monotone diagonal scores high, diffuse or
   position-locked attention scores near 0);
3. the consensus is the per-boundary median over the panel; each head's *agreement* is the share of its
   boundaries within 50 ms of the consensus; the panel becomes the top heads by agreement, and this is
   repeated a few times;
4. heads are ranked by agreement; the set is the top ``k`` heads, ``k`` (up to ``max_heads``) being the one
   whose *set* alignment agrees best with the consensus (share of boundaries within 50 ms; of the sizes
   within 1 point of the best, the largest, since more heads average out each one's noise).

Its blind spot: a bias shared by most heads (attention-based times tend to run late) is in the consensus too,
so unsupervised sets can only match supervised ones on consistency, not on removing such a bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..alignment.attention import median_filter
from ..alignment.dtw import dtw, dtw_subsequence
from ..alignment.words import (
    TOKENS_PER_SECOND,
    AlignmentConfig,
    WordTiming,
    align_words,
    merge_punctuations,
    truncate_sentence_marks,
)
from ..results.evaluation import TimedWord, match_words

Progress = Callable[[int], None]  # called with the number of steps just done


# ---- per-head matrices and word times ------------------------------------------------------------------------


def head_matrices(qk: Tensor, n_positions: int, medfilt_width: int = 7, qk_scale: float = 1.0) -> Tensor:
    """Each head's alignment matrix, (heads, tokens, positions kept): ``alignment_matrix`` without the mean.

    ``qk`` holds pre-softmax scores (heads, tokens, positions) over *all* decoder input rows (the
    standardisation runs over them, as in :func:`~whisper_align.alignment.attention.alignment_matrix`).
    """
    weights = (qk[:, :, : int(n_positions)].float() * qk_scale).softmax(dim=-1)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = torch.where(std > 0, (weights - mean) / std, torch.zeros_like(weights))
    return median_filter(weights, medfilt_width)


@dataclass
class Item:
    """One utterance ready for scoring: every head's matrix and the word split of its text.

    ``matrices`` is (all heads, rows, positions), rows running from the no-timestamps token to the last text
    token (what :func:`align_words` takes); heads are flat indices ``layer * n_text_head + head``.
    ``words``/``word_tokens`` are the tokenizer's split of ``text tokens + [eot]``.
    """

    id: str
    words: list[str]
    word_tokens: list[list[int]]
    matrices: np.ndarray
    duration: float
    reference: list[TimedWord] | None = None
    speaker: str | None = None
    _pairs: list[tuple[int, int]] | None = field(default=None, repr=False)


def set_matrix(item: Item, heads: Sequence[int]) -> np.ndarray:
    """The alignment matrix of the head set ``heads`` (flat indices) for ``item``."""
    if len(heads) == 0:
        raise ValueError("a head set needs at least one head")
    return item.matrices[list(heads)].mean(axis=0)


def timings_from_matrix(
    matrix: np.ndarray,
    words: Sequence[str],
    word_tokens: Sequence[Sequence[int]],
    config: AlignmentConfig,
    duration: float,
) -> list[WordTiming]:
    """Words timed from an alignment matrix exactly as :func:`whisper_align.tasks.align.words_of_piece` does it."""
    n_tokens = sum(len(t) for t in word_tokens) - 1
    timings = align_words(matrix, words, word_tokens, [0.0] * n_tokens, config, duration=duration)
    if config.conformance:
        truncate_sentence_marks(timings)
    merge_punctuations(timings, config.prepend_punctuations, config.append_punctuations)
    return [t for t in timings if t.word]


def word_times(item: Item, heads: Sequence[int], config: AlignmentConfig) -> list[TimedWord]:
    """``(word, start, end)`` of ``item``'s words with the head set ``heads``."""
    timings = timings_from_matrix(set_matrix(item, heads), item.words, item.word_tokens, config, item.duration)
    return [(t.word, float(t.start), float(t.end)) for t in timings]


def dtw_path(matrix: np.ndarray, config: AlignmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """The DTW path ``align_words`` takes through ``matrix`` in this ``config``'s mode."""
    free = config.free_ends and not config.conformance
    return (dtw_subsequence if free else dtw)(-np.asarray(matrix, dtype=np.float64))


# ---- errors and the objective --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetScore:
    """How one head set did over some utterances: pooled start and end boundaries of matched words."""

    n_boundaries: int
    median_ms: float
    within_50: float
    within_100: float

    @property
    def objective(self) -> float:
        """(within 50 ms + within 100 ms) / 2 - median error in seconds; -inf when nothing was matched."""
        if self.n_boundaries == 0:
            return -math.inf
        return 0.5 * (self.within_50 + self.within_100) - self.median_ms / 1000.0

    def to_dict(self) -> dict[str, float]:
        return {
            "n_boundaries": self.n_boundaries,
            "median_ms": self.median_ms,
            "within_50ms": self.within_50,
            "within_100ms": self.within_100,
            "objective": self.objective,
        }


def score_errors(errors: np.ndarray) -> SetScore:
    """A :class:`SetScore` from absolute boundary errors in seconds."""
    errors = np.abs(np.asarray(errors, dtype=np.float64))
    if len(errors) == 0:
        return SetScore(0, math.nan, math.nan, math.nan)
    eps = 1e-9
    return SetScore(
        n_boundaries=len(errors),
        median_ms=float(np.median(errors) * 1000.0),
        within_50=float(np.mean(errors <= 0.050 + eps)),
        within_100=float(np.mean(errors <= 0.100 + eps)),
    )


def boundary_errors(item: Item, hypothesis: list[TimedWord], signed: bool = False) -> np.ndarray:
    """|hypothesis - reference| (``signed``: hypothesis - reference) of the starts and ends of matched words, s.

    The word matching (:func:`~whisper_align.results.evaluation.match_words`) is done once per item and reused: the
    hypothesis words are the same for every head set (only their times change). Times only break ties between
    repeated words, so the first head set's times decide those.
    """
    if item.reference is None:
        raise ValueError(f"utterance {item.id!r} has no reference word times")
    if item._pairs is None:
        item._pairs = match_words(item.reference, hypothesis)
    if not item._pairs:
        return np.zeros(0)
    ref = np.array([item.reference[i][1:] for i, _ in item._pairs])
    hyp = np.array([hypothesis[j][1:] for _, j in item._pairs])
    return (hyp - ref).reshape(-1) if signed else np.abs(hyp - ref).reshape(-1)


def median_offset(items: Sequence[Item], heads: Sequence[int], config: AlignmentConfig) -> float:
    """Median signed boundary error (hypothesis - reference, seconds) of a head set: how late it runs."""
    return _pooled_median([boundary_errors(item, word_times(item, heads, config), signed=True) for item in items])


def anchor_shift(items: Sequence[Item], heads: Sequence[int], anchor: Sequence[int], config: AlignmentConfig) -> float:
    """Seconds to add to the word times of ``heads`` so that their median boundary falls where the ``anchor``
    set puts it; no reference times needed. The unsupervised search anchors its few, mutually consistent heads
    to the default set (half the decoder's heads), whose individual lags largely average out."""
    return _pooled_median(
        [(_boundaries(item, anchor, config) - _boundaries(item, heads, config)).reshape(-1) for item in items]
    )


def _pooled_median(parts: list[np.ndarray]) -> float:
    """Median of all values of ``parts`` together; 0 when there are none."""
    pooled = np.concatenate(parts) if parts else np.zeros(0)
    return float(np.median(pooled)) if len(pooled) else 0.0


def evaluate_set(items: Sequence[Item], heads: Sequence[int], config: AlignmentConfig) -> SetScore:
    """The pooled :class:`SetScore` of head set ``heads`` over ``items`` (all with references)."""
    errors = [boundary_errors(item, word_times(item, heads, config)) for item in items]
    return score_errors(np.concatenate(errors) if errors else np.zeros(0))


def single_head_scores(
    items: Sequence[Item], n_heads: int, config: AlignmentConfig, progress: Progress | None = None
) -> list[SetScore]:
    """:func:`evaluate_set` of every head alone, in flat-index order."""
    scores = []
    for h in range(n_heads):
        scores.append(evaluate_set(items, [h], config))
        if progress:
            progress(1)
    return scores


# ---- supervised: greedy forward selection --------------------------------------------------------------------


@dataclass(frozen=True)
class GreedyStep:
    """The set after adding ``added``: its heads (flat indices, in order of addition) and its scores."""

    heads: tuple[int, ...]
    added: int
    train: SetScore
    heldout: SetScore | None


def greedy_forward(
    train: Sequence[Item],
    heldout: Sequence[Item],
    candidates: Sequence[int],
    max_heads: int,
    config: AlignmentConfig,
    progress: Progress | None = None,
) -> list[GreedyStep]:
    """Grow a head set one head at a time, each time adding the candidate that most raises the objective on
    ``train``; every prefix is also scored on ``heldout`` (if any), for :func:`choose_size`.

    Stops at ``max_heads`` heads or when the candidates run out. Ties go to the lower head index.
    """
    if not train:
        raise ValueError("greedy selection needs at least one training utterance with reference words")
    steps: list[GreedyStep] = []
    chosen: list[int] = []
    remaining = list(dict.fromkeys(candidates))
    while remaining and len(chosen) < max_heads:
        best: tuple[float, int, SetScore] | None = None
        for h in remaining:
            score = evaluate_set(train, chosen + [h], config)
            if best is None or score.objective > best[0]:
                best = (score.objective, h, score)
            if progress:
                progress(1)
        assert best is not None
        chosen.append(best[1])
        remaining.remove(best[1])
        held = evaluate_set(heldout, chosen, config) if heldout else None
        steps.append(GreedyStep(tuple(chosen), best[1], best[2], held))
    return steps


def choose_size(steps: Sequence[GreedyStep], tolerance: float = 0.002) -> GreedyStep:
    """The step to keep: best held-out objective (training objective without a held-out part), preferring the
    smallest set within ``tolerance`` of the best (fewer heads generalise better and cost less)."""
    if not steps:
        raise ValueError("no greedy steps to choose from")
    values = [s.heldout.objective if s.heldout is not None else s.train.objective for s in steps]
    best = max(values)
    return next(s for s, v in zip(steps, values) if v >= best - tolerance)


# ---- unsupervised ranking -------------------------------------------------------------------------------------


@dataclass
class UnsupervisedRanking:
    """Per-head path strength and agreement with the consensus, the ranking and the chosen set."""

    strength: np.ndarray  # (heads,) mean standardised attention along the head's own DTW path
    agreement: np.ndarray  # (heads,) share of the head's boundaries within 50 ms of the consensus
    order: list[int]  # heads, best first
    chosen: list[int]
    consensus: dict[str, np.ndarray]  # item id -> (words, 2) consensus start/end times
    set_agreement: list[float] = field(default_factory=list)  # [k-1]: agreement of the top-k set's boundaries


def _boundaries(item: Item, heads: Sequence[int], config: AlignmentConfig) -> np.ndarray:
    return np.array([w[1:] for w in word_times(item, heads, config)], dtype=np.float64).reshape(-1, 2)


def unsupervised_ranking(
    items: Sequence[Item],
    n_heads: int,
    config: AlignmentConfig,
    max_heads: int = 12,
    panel_size: int | None = None,
    rounds: int = 3,
    progress: Progress | None = None,
) -> UnsupervisedRanking:
    """Rank heads without reference times (see the module docstring) and choose a set."""
    if not items:
        raise ValueError("unsupervised ranking needs at least one utterance")
    panel_size = panel_size or max(3, n_heads // 2)
    strength = np.zeros(n_heads)
    single: list[list[np.ndarray]] = []  # [head][item] -> (words, 2)
    for h in range(n_heads):
        per_item, along = [], []
        for item in items:
            matrix = item.matrices[h]
            rows, cols = dtw_path(matrix, config)
            along.append(float(matrix[rows, cols].mean()))
            per_item.append(_boundaries(item, [h], config))
        strength[h] = float(np.mean(along))
        single.append(per_item)
        if progress:
            progress(1)

    panel = list(np.argsort(-strength, kind="stable")[:panel_size])
    agreement = np.zeros(n_heads)
    consensus: list[np.ndarray] = []
    for _ in range(rounds):
        consensus = [np.median(np.stack([single[h][k] for h in panel]), axis=0) for k in range(len(items))]
        for h in range(n_heads):
            errors = np.concatenate([np.abs(single[h][k] - consensus[k]).reshape(-1) for k in range(len(items))])
            agreement[h] = float(np.mean(errors <= 0.050 + 1e-9)) if len(errors) else 0.0
        new_panel = list(np.argsort(-agreement, kind="stable")[:panel_size])
        if set(new_panel) == set(panel):
            break
        panel = new_panel

    order = [int(h) for h in np.lexsort((-strength, -agreement))]
    set_agreement = []
    for k in range(1, min(max_heads, n_heads) + 1):
        per_item = [np.abs(_boundaries(item, order[:k], config) - c).reshape(-1) for item, c in zip(items, consensus)]
        set_agreement.append(float(np.mean(np.concatenate(per_item) <= 0.050 + 1e-9)))
    best = max(set_agreement)
    k = max(i for i, value in enumerate(set_agreement, start=1) if value >= best - 0.01)
    chosen = order[:k]
    return UnsupervisedRanking(
        strength=strength,
        agreement=agreement,
        order=order,
        chosen=sorted(chosen),
        consensus={item.id: c for item, c in zip(items, consensus)},
        set_agreement=set_agreement,
    )


__all__ = [
    "Item",
    "GreedyStep",
    "anchor_shift",
    "SetScore",
    "UnsupervisedRanking",
    "boundary_errors",
    "choose_size",
    "dtw_path",
    "evaluate_set",
    "greedy_forward",
    "head_matrices",
    "median_offset",
    "score_errors",
    "set_matrix",
    "single_head_scores",
    "timings_from_matrix",
    "unsupervised_ranking",
    "word_times",
    "TOKENS_PER_SECOND",
]
