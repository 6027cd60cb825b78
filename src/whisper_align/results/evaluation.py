"""Scoring word timings against a labelled reference, and reading evaluation manifests.

The recipe (the one ``/work/shared/eval/README.md`` asks for, and what ``whisper-align eval``, the benchmarks and
alignment-head discovery report):

1. Normalise both word lists (:func:`normalize_words`): lowercase, drop punctuation except apostrophes inside a
   word (``don't``), and split on hyphens as TIMIT does (``semi-heights`` -> ``semi``, ``heights``). Each piece
   of a split word keeps the whole word's times.
2. Align the two piece sequences (:func:`match_words`): the alignment with the most equal pieces (a longest
   common subsequence); among equally long ones, the one whose paired times lie closest, so a repeated word
   ("the ... the") pairs with the occurrence that is actually there. Only equal pieces count as matched.
3. Over the matched pieces, compare start with start and end with end (:func:`score`).

All "word" counts in :class:`Metrics` are counts of normalised pieces (for TIMIT references, its words).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .types import Result, Word

TimedWord = tuple[str, float, float]
"""(word, start seconds, end seconds)."""

WordLike = TimedWord | Sequence[Any] | Word | Mapping[str, Any]

DEFAULT_THRESHOLDS_MS: tuple[int, ...] = (20, 50, 100, 200)
DEFAULT_TOLERANCE = 0.050  # seconds, for boundary precision / recall / F1

_EPSILON = 1e-9  # seconds; an error "within 50 ms" may come out as 50.000000001 ms in floating point


# ---------------------------------------------------------------------------------------------------------------
# normalisation and matching

_SPLIT = re.compile(r"[\s\-\u2010-\u2015]+")  # whitespace, hyphen, Unicode hyphens and dashes
_NOT_WORD = re.compile(r"[^\w']|_")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def normalize_words(text_or_words: str | Iterable[str]) -> list[str]:
    """Lowercased words without punctuation, split on whitespace and hyphens, apostrophes kept inside words.

    >>> normalize_words("Don't ask me -- a semi-heights, \u201cQuote\u201d!")
    ["don't", 'ask', 'me', 'a', 'semi', 'heights', 'quote']
    """
    items = [text_or_words] if isinstance(text_or_words, str) else list(text_or_words)
    pieces: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"normalize_words takes a string or strings, got {type(item).__name__}: {item!r}")
        pieces += _normalize_one(item)
    return pieces


def _normalize_one(word: str) -> list[str]:
    pieces = []
    for piece in _SPLIT.split(word.lower().translate(_APOSTROPHES)):
        piece = _NOT_WORD.sub("", piece).strip("'")
        if piece:
            pieces.append(piece)
    return pieces


def as_timed_words(words: Iterable[WordLike] | Result) -> list[TimedWord]:
    """``(word, start, end)`` tuples from tuples, :class:`Word` objects, ``{"word", "start", "end"}`` dicts or a
    whole :class:`Result`."""
    if isinstance(words, Result):
        words = words.words
    timed: list[TimedWord] = []
    for item in words:
        if isinstance(item, Word):
            word, start, end = item.word, item.start, item.end
        elif isinstance(item, Mapping):
            try:
                word, start, end = item["word"], item["start"], item["end"]
            except KeyError as missing:
                raise ValueError(f"word {dict(item)!r} lacks the key {missing}; need word, start, end") from None
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 3:
            word, start, end = item
        else:
            raise TypeError(f"cannot read a timed word from {item!r}; give (word, start, end), a Word or a dict")
        timed.append((str(word), float(start), float(end)))
    return timed


def _pieces(words: list[TimedWord]) -> tuple[list[str], list[int]]:
    """The normalised pieces of ``words`` and, for each piece, the index of the word it came from."""
    tokens: list[str] = []
    origin: list[int] = []
    for index, (word, _, _) in enumerate(words):
        for piece in _normalize_one(word):
            tokens.append(piece)
            origin.append(index)
    return tokens, origin


def match_words(reference: Iterable[WordLike], hypothesis: Iterable[WordLike]) -> list[tuple[int, int]]:
    """Pairs ``(ref_idx, hyp_idx)`` of matched words, indices into the given lists, in order.

    There is one pair per matched normalised piece, so a hyphenated word matched piece by piece appears once per
    piece (hypothesis ``"semi-heights"`` at index 4 against reference ``semi``, ``heights`` at 7, 8 gives
    ``(7, 4), (8, 4)``). Words that normalise to nothing (``"--"``) never match.
    """
    ref, hyp = as_timed_words(reference), as_timed_words(hypothesis)
    ref_tokens, ref_origin = _pieces(ref)
    hyp_tokens, hyp_origin = _pieces(hyp)
    ref_times = np.array([ref[k][1:] for k in ref_origin], dtype=np.float64).reshape(-1, 2)
    hyp_times = np.array([hyp[k][1:] for k in hyp_origin], dtype=np.float64).reshape(-1, 2)
    pairs = _align(ref_tokens, hyp_tokens, ref_times, hyp_times)
    return [(ref_origin[i], hyp_origin[j]) for i, j in pairs]


_MAX_CELLS = 50_000_000  # above this (1 byte a cell of back-pointers) fall back to difflib's alignment
_TIME_CAP = 30.0  # seconds; time distances beyond this all weigh the same in tie-breaking


def _align(ref: list[str], hyp: list[str], ref_times: np.ndarray, hyp_times: np.ndarray) -> list[tuple[int, int]]:
    """Most equal pairs (LCS), ties broken towards closer times. Indices into ``ref`` and ``hyp``.

    Each matched pair scores ``1 - small`` where ``small`` grows with the pair's time distance and is below
    ``1 / (min(n, m) + 1)``, so the time term can never trade away a match. Row ``i`` of the table is computed in
    one vectorised step: since every row is non-decreasing, ``L[i][j] = max(L[i][j-1], L[i-1][j],
    L[i-1][j-1] + w)`` equals a running maximum of ``max(L[i-1][j], L[i-1][j-1] + w)``.
    """
    n, m = len(ref), len(hyp)
    if n == 0 or m == 0:
        return []
    if n * m > _MAX_CELLS:
        matcher = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
        return [(a + k, b + k) for a, b, size in matcher.get_matching_blocks() for k in range(size)]

    vocabulary: dict[str, int] = {}
    ref_ids = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in ref])
    hyp_ids = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in hyp])
    scale = 1.0 / (2 * _TIME_CAP * (min(n, m) + 1))

    back = np.empty((n, m), dtype=np.uint8)  # 0: pair (i, j); 1: skip reference i; 2: skip hypothesis j
    previous = np.zeros(m + 1)
    for i in range(n):
        equal = hyp_ids == ref_ids[i]
        distance = np.minimum(np.abs(hyp_times - ref_times[i]).sum(axis=1), 2 * _TIME_CAP)
        diagonal = previous[:-1] + np.where(equal, 1.0 - distance * scale, -np.inf)
        current = np.empty(m + 1)
        current[0] = 0.0
        current[1:] = np.maximum.accumulate(np.maximum(previous[1:], diagonal))
        step = np.full(m, 2, dtype=np.uint8)
        step[current[1:] == previous[1:]] = 1
        step[equal & (current[1:] == diagonal)] = 0
        back[i] = step
        previous = current

    pairs: list[tuple[int, int]] = []
    i, j = n, m
    while i > 0 and j > 0:
        step = back[i - 1, j - 1]
        if step == 0:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    pairs.reverse()
    return pairs


# ---------------------------------------------------------------------------------------------------------------
# metrics


@dataclass
class Metrics:
    """Word-timing scores over one or more utterances. Shares are fractions in [0, 1]; times are milliseconds.

    - ``n_ref_words`` / ``n_hyp_words``: normalised pieces on each side; ``n_matched``: matched pairs;
      ``matched_share = n_matched / n_ref_words``.
    - ``start_mae_ms`` / ``end_mae_ms``: mean |hyp - ref| of matched starts / ends; ``start_bias_ms`` /
      ``end_bias_ms``: mean hyp - ref (positive = late); ``median_abs_ms``: median |error| over starts and ends
      together; ``within[t]``: share of those boundaries with |error| <= t ms.
    - Boundary ``precision`` / ``recall`` / ``f1`` at ``tolerance_ms``: every word has two boundaries (start and
      end). A hypothesis boundary is a hit when its word is matched and it lies within the tolerance of the same
      boundary (start or end) of the matched reference word. ``precision = hits / (2 n_hyp_words)``,
      ``recall = hits / (2 n_ref_words)``, so unmatched hypothesis words are false alarms and unmatched
      reference words misses.

    Figures with nothing to average over (no matched words, no words at all) are NaN.
    """

    n_utterances: int
    n_ref_words: int
    n_hyp_words: int
    n_matched: int
    matched_share: float
    start_mae_ms: float
    end_mae_ms: float
    start_bias_ms: float
    end_bias_ms: float
    median_abs_ms: float
    within: dict[int, float]
    tolerance_ms: float
    precision: float
    recall: float
    f1: float
    utterances: dict[str, Metrics] | None = field(default=None, repr=False)

    @property
    def mean_abs_ms(self) -> float:
        """The mean boundary error the literature reports (MFA, Aligner-SUPERB): the mean of the start and end
        MAE."""
        return 0.5 * (self.start_mae_ms + self.end_mae_ms)

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-able dict (``within`` becomes ``within_20ms`` ...; per-utterance metrics, if kept, go
        under ``utterances``)."""
        data: dict[str, Any] = {}
        for name in (
            "n_utterances",
            "n_ref_words",
            "n_hyp_words",
            "n_matched",
            "matched_share",
            "start_mae_ms",
            "end_mae_ms",
            "mean_abs_ms",
            "start_bias_ms",
            "end_bias_ms",
            "median_abs_ms",
        ):
            data[name] = getattr(self, name)
        for threshold, share in self.within.items():
            data[f"within_{threshold}ms"] = share
        data.update(tolerance_ms=self.tolerance_ms, precision=self.precision, recall=self.recall, f1=self.f1)
        if self.utterances is not None:
            data["utterances"] = {key: value.to_dict() for key, value in self.utterances.items()}
        return data


@dataclass
class _Tally:
    """What one utterance contributes: piece counts and the signed errors (seconds) of matched pieces."""

    n_ref: int
    n_hyp: int
    start_errors: list[float]
    end_errors: list[float]


def _tally(reference: Iterable[WordLike], hypothesis: Iterable[WordLike]) -> _Tally:
    ref, hyp = as_timed_words(reference), as_timed_words(hypothesis)
    pairs = match_words(ref, hyp)
    return _Tally(
        n_ref=len(_pieces(ref)[0]),
        n_hyp=len(_pieces(hyp)[0]),
        start_errors=[hyp[j][1] - ref[i][1] for i, j in pairs],
        end_errors=[hyp[j][2] - ref[i][2] for i, j in pairs],
    )


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def _metrics(tallies: list[_Tally], tolerance: float, thresholds_ms: Sequence[int]) -> Metrics:
    n_ref = sum(t.n_ref for t in tallies)
    n_hyp = sum(t.n_hyp for t in tallies)
    starts = np.array([e for t in tallies for e in t.start_errors], dtype=np.float64)
    ends = np.array([e for t in tallies for e in t.end_errors], dtype=np.float64)
    both = np.abs(np.concatenate([starts, ends]))
    n_matched = len(starts)

    def mean_ms(values: np.ndarray) -> float:
        return float(values.mean() * 1000.0) if len(values) else math.nan

    hits = int(np.count_nonzero(both <= tolerance + _EPSILON))
    precision = _ratio(hits, 2 * n_hyp)
    recall = _ratio(hits, 2 * n_ref)
    if math.isnan(precision) or math.isnan(recall):
        f1 = math.nan
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Metrics(
        n_utterances=len(tallies),
        n_ref_words=n_ref,
        n_hyp_words=n_hyp,
        n_matched=n_matched,
        matched_share=_ratio(n_matched, n_ref),
        start_mae_ms=mean_ms(np.abs(starts)),
        end_mae_ms=mean_ms(np.abs(ends)),
        start_bias_ms=mean_ms(starts),
        end_bias_ms=mean_ms(ends),
        median_abs_ms=float(np.median(both) * 1000.0) if len(both) else math.nan,
        within={int(t): _ratio(int(np.count_nonzero(both <= t / 1000.0 + _EPSILON)), len(both)) for t in thresholds_ms},
        tolerance_ms=tolerance * 1000.0,
        precision=precision,
        recall=recall,
        f1=f1,
    )


UtterancePair = tuple[Iterable[WordLike], Iterable[WordLike]]


def score(
    pairs: Iterable[UtterancePair]
    | Iterable[tuple[str, Iterable[WordLike], Iterable[WordLike]]]
    | Mapping[str, UtterancePair],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    thresholds_ms: Sequence[int] = DEFAULT_THRESHOLDS_MS,
    per_utterance: bool = False,
) -> Metrics:
    """Score hypothesis word timings against references, pooled over all utterances.

    ``pairs`` holds one ``(reference_words, hypothesis_words)`` per utterance, either as a mapping from utterance
    id, as ``(id, reference, hypothesis)`` triples, or as plain pairs (ids are then "0", "1", ...). Words are
    anything :func:`as_timed_words` reads. ``tolerance`` (seconds) is the boundary precision/recall tolerance.
    With ``per_utterance=True`` the result's ``utterances`` maps each id to its own :class:`Metrics`.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 seconds, got {tolerance}")
    if isinstance(pairs, Mapping):
        entries = [(key, *pair) for key, pair in pairs.items()]
    else:
        entries = []
        for index, item in enumerate(pairs):
            item = tuple(item)
            if len(item) not in (2, 3):
                raise ValueError(f"utterance {index}: expected (reference, hypothesis) or (id, reference, hypothesis)")
            entries.append(item if len(item) == 3 else (str(index), *item))
    keyed: dict[str, _Tally] = {}
    for key, reference, hypothesis in entries:
        if str(key) in keyed:
            raise ValueError(f"utterance id {key!r} appears twice")
        keyed[str(key)] = _tally(reference, hypothesis)

    metrics = _metrics(list(keyed.values()), tolerance, thresholds_ms)
    if per_utterance:
        metrics.utterances = {key: _metrics([tally], tolerance, thresholds_ms) for key, tally in keyed.items()}
    return metrics


def format_table(rows: Mapping[str, Metrics]) -> str:
    """A Markdown table (readable as plain text) with one row per named :class:`Metrics`."""
    thresholds = sorted({t for metrics in rows.values() for t in metrics.within})
    tolerances = {round(m.tolerance_ms) for m in rows.values()}
    tol = f"@{tolerances.pop()}ms" if len(tolerances) == 1 else ""
    header = ["", "utts", "ref words", "matched", "mean ms", "start MAE ms", "end MAE ms", "median ms"]
    header += [f"<={t}ms" for t in thresholds] + [f"P{tol}", f"R{tol}", f"F1{tol}"]

    def pct(x: float) -> str:
        return "-" if math.isnan(x) else f"{100 * x:.1f}%"

    def ms(x: float) -> str:
        return "-" if math.isnan(x) else f"{x:.1f}"

    body = []
    for name, m in rows.items():
        row = [
            name,
            str(m.n_utterances),
            str(m.n_ref_words),
            pct(m.matched_share),
            ms(m.mean_abs_ms),
            ms(m.start_mae_ms),
            ms(m.end_mae_ms),
            ms(m.median_abs_ms),
        ]
        row += [pct(m.within[t]) if t in m.within else "-" for t in thresholds]
        row += [pct(m.precision), pct(m.recall), pct(m.f1)]
        body.append(row)

    widths = [max(len(row[k]) for row in [header] + body) for k in range(len(header))]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                cell.ljust(width) if k == 0 else cell.rjust(width) for k, (cell, width) in enumerate(zip(cells, widths))
            )
            + " |"
        )

    separator = "|" + "|".join(("-" * (w + 1) + ":") if k else "-" * (w + 2) for k, w in enumerate(widths)) + "|"
    return "\n".join([line(header), separator] + [line(row) for row in body])
