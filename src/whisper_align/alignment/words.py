"""From a DTW path through the alignment matrix to word start/end times.

Two modes (see :class:`AlignmentConfig`):

* ``"conformance"`` reproduces openai-whisper: the full DTW path from the first frame to the last, each word
  starting at the first frame of its first token's row and ending where the next word starts
  (:func:`words_from_path`), then openai's clean-ups (:func:`truncate_sentence_marks`,
  :func:`merge_punctuations`).
* ``"default"`` starts the same way but lets the path begin and end anywhere in time
  (:func:`~whisper_align.alignment.dtw.dtw_subsequence`) and then trims silence off words
  (:func:`refine_word_times`), so that a word can end before the next one starts and the first word can start
  after leading silence.

Rows of the matrix are the decoder *inputs* from the no-timestamps token up to the last text token; row ``k``
is where the model predicts text token ``k`` (row ``n_text_tokens`` predicts the end of text), which is why a
word's rows are exactly the positions of its tokens in the text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import TranscriptError
from .dtw import dtw, dtw_subsequence

TOKENS_PER_SECOND = 50  # encoder positions per second: 16 kHz audio, hop 160, conv stride 2
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
SENTENCE_END_MARKS = ".。!！?？"
PAST_END_FRAMES = 2  # a squeezed tail within this many frames of the audio's end counts as past it


@dataclass
class WordTiming:
    """One word: its text (with its leading space), its tokens, start/end in seconds and mean token probability.

    ``past_end``: the word is one of the last words of the text and the alignment path passed it within the
    audio's last frames without giving it a single frame (see :func:`flag_past_end`): the audio ends before it.
    """

    word: str
    tokens: list[int]
    start: float
    end: float
    probability: float
    past_end: bool = False


@dataclass(frozen=True)
class AlignmentConfig:
    """Every knob of the tensor-level alignment, in one place so it can be tuned on labelled data.

    ``medfilt_width`` and ``qk_scale`` feed :func:`~whisper_align.alignment.attention.alignment_matrix`.
    The rest only matter in ``"default"`` mode:

    * ``free_ends``: DTW with a free start and end along time (:func:`dtw_subsequence`) instead of one that
      must run from the first frame to the last;
    * ``peak_fraction``: a frame of a word's DTW span counts as "this word is heard here" when the word's
      attention there is at least this fraction of the way from its typical level (its median over the whole
      clip) to its peak inside the span;
    * ``min_pause``: seconds of not-heard frames at the start or end of a word's span needed before they are
      cut off as silence (shorter dips are ordinary attention wobble, and the word keeps the DTW boundary);
    * ``min_word_duration``: seconds a trimmed word keeps at least (never more than its DTW span);
    * ``time_shift``: seconds added to every refined time (then clipped to the audio). Attention-based times
      are off by a roughly constant amount that depends on the model *and its heads* (tiny.en's official heads
      run ~85 ms late, base's ~55 ms early), so ``None`` means "the model's calibrated shift"
      (``Whisper.alignment_time_shift``, see ``alignment/calibration.py``), resolved by :func:`resolve_config`;
    * ``refine``: move each boundary to where the model's fitted boundary refinement puts it
      (``Whisper.boundary_refiner``, see ``alignment/refine.py``), when the model has one.

    The defaults (0.5, 0.06 s) were picked on timit-dev (tiny.en, base) and festival (tiny.en): start MAE drops
    by 10-17 ms against conformance mode, end MAE stays within about 3 ms of it.
    """

    mode: Literal["default", "conformance"] = "default"
    medfilt_width: int = 7
    qk_scale: float = 1.0
    free_ends: bool = True
    peak_fraction: float = 0.5
    min_pause: float = 0.06
    min_word_duration: float = 0.04
    time_shift: float | None = None
    refine: bool = True
    prepend_punctuations: str = PREPEND_PUNCTUATIONS
    append_punctuations: str = APPEND_PUNCTUATIONS

    def __post_init__(self) -> None:
        if self.mode not in ("default", "conformance"):
            raise ValueError(f"alignment mode must be 'default' or 'conformance', got {self.mode!r}")
        if not isinstance(self.medfilt_width, int) or self.medfilt_width < 1 or self.medfilt_width % 2 == 0:
            raise ValueError(f"medfilt_width must be a positive odd integer, got {self.medfilt_width!r}")
        if not np.isfinite(self.qk_scale) or self.qk_scale <= 0:
            raise ValueError(f"qk_scale must be a positive number, got {self.qk_scale!r}")
        if not 0.0 <= self.peak_fraction <= 1.0:
            raise ValueError(f"peak_fraction must lie in [0, 1], got {self.peak_fraction!r}")
        if not self.min_pause >= 0 or not self.min_word_duration >= 0:
            raise ValueError("min_pause and min_word_duration must be >= 0 seconds")
        if self.time_shift is not None and not np.isfinite(self.time_shift):
            raise ValueError(f"time_shift must be a finite number of seconds, got {self.time_shift!r}")

    @property
    def conformance(self) -> bool:
        return self.mode == "conformance"


# ---- openai-whisper's behaviour --------------------------------------------------------------------------


def _first_frames(text_indices: np.ndarray, time_indices: np.ndarray) -> np.ndarray:
    """The frame at which the path first reaches each row (the path visits every row, in order)."""
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    return time_indices[jumps]


def _check_path(text_indices: np.ndarray, time_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    text_indices, time_indices = np.asarray(text_indices), np.asarray(time_indices)
    if text_indices.ndim != 1 or text_indices.shape != time_indices.shape or len(text_indices) == 0:
        raise ValueError("text_indices and time_indices must be non-empty 1-D arrays of equal length (a DTW path)")
    steps = np.diff(text_indices)
    if text_indices[0] != 0 or ((steps != 0) & (steps != 1)).any() or (np.diff(time_indices) < 0).any():
        raise ValueError("the path must start at token row 0 and step through the rows one at a time, monotonically")
    return text_indices, time_indices


def words_from_path(
    words: Sequence[str],
    word_tokens: Sequence[Sequence[int]],
    text_indices: np.ndarray,
    time_indices: np.ndarray,
    token_probs: Sequence[float],
    time_offset: float = 0.0,
    tokens_per_second: float = TOKENS_PER_SECOND,
) -> list[WordTiming]:
    """Word times from a DTW path, exactly as openai-whisper's ``find_alignment`` computes them.

    ``words``/``word_tokens`` are the tokenizer's split of ``text_tokens + [eot]`` *including* its last entry
    (the end-of-text "word"), as openai splits it; that entry only marks where the last word ends and is
    dropped. ``token_probs[k]`` is the probability of text token ``k``. A word starts at the frame where the
    path first reaches its first token's row and ends where the next word (or the end of text) starts.
    """
    if len(words) != len(word_tokens):
        raise ValueError(f"{len(words)} words but {len(word_tokens)} token lists; give one token list per word")
    if len(word_tokens) <= 1:
        return []  # the end-of-text word only
    text_indices, time_indices = _check_path(text_indices, time_indices)
    n_rows = int(text_indices[-1]) + 1
    n_tokens = sum(len(t) for t in word_tokens)
    if n_rows != n_tokens:
        raise ValueError(
            f"the path has {n_rows} token rows but the words hold {n_tokens} tokens (text + end of text); "
            "the matrix rows must run from the no-timestamps token to the last text token"
        )
    boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    if len(token_probs) < boundaries[-1]:
        raise ValueError(f"{len(token_probs)} token probabilities for {boundaries[-1]} text tokens")
    jump_times = _first_frames(text_indices, time_indices) / tokens_per_second
    probs = list(token_probs)
    return [
        WordTiming(
            word=words[k],
            tokens=list(word_tokens[k]),
            start=float(time_offset + jump_times[boundaries[k]]),
            end=float(time_offset + jump_times[boundaries[k + 1]]),
            probability=float(np.mean(probs[boundaries[k] : boundaries[k + 1]])),
        )
        for k in range(len(boundaries) - 1)
    ]


def truncate_sentence_marks(words: list[WordTiming]) -> tuple[float, float]:
    """openai's ``add_word_timestamps`` hack, in place: no word next to a sentence end is over twice the median.

    A sentence mark ('.', '?', ...) longer than ``max_duration`` is cut to end ``max_duration`` after its
    start; a word right after one is cut to start ``max_duration`` before its end. Returns
    ``(median_duration, max_duration)`` (the median of the non-zero durations, capped at 0.7 s, and twice
    that), which openai's segment-level clean-ups use as well. Run it before :func:`merge_punctuations`.
    """
    durations = np.array([w.end - w.start for w in words])
    durations = durations[durations.nonzero()]
    median_duration = min(0.7, float(np.median(durations))) if len(durations) > 0 else 0.0
    max_duration = median_duration * 2
    if len(durations) > 0:
        for i in range(1, len(words)):
            if words[i].end - words[i].start > max_duration:
                if words[i].word in SENTENCE_END_MARKS:
                    words[i].end = words[i].start + max_duration
                elif words[i - 1].word in SENTENCE_END_MARKS:
                    words[i].start = words[i].end - max_duration
    return median_duration, max_duration


def merge_punctuations(
    words: list[WordTiming], prepended: str = PREPEND_PUNCTUATIONS, appended: str = APPEND_PUNCTUATIONS
) -> list[WordTiming]:
    """Glue punctuation onto its word, in place, as openai-whisper does; returns ``words``.

    Walking backwards, a word that is a space plus an opening mark (``' "'``, ``' ('``) is prepended to the
    next non-emptied word. Walking forwards, a closing mark (``'.'``, ``','``) is appended to the previous
    word unless that word ends with a space. A merged-away entry is left with ``word == ""`` and no tokens
    (its times are meaningless); the receiving word keeps its own times. Callers usually drop empty entries.
    """
    target = len(words) - 1
    for i in range(len(words) - 2, -1, -1):
        current = words[i]
        if current.word.startswith(" ") and current.word.strip() in prepended:
            receiver = words[target]
            receiver.word = current.word + receiver.word
            receiver.tokens = current.tokens + receiver.tokens
            current.word, current.tokens = "", []
        else:
            target = i

    target = 0
    for j in range(1, len(words)):
        current, receiver = words[j], words[target]
        if not receiver.word.endswith(" ") and current.word in appended:
            receiver.word = receiver.word + current.word
            receiver.tokens = receiver.tokens + current.tokens
            current.word, current.tokens = "", []
        else:
            target = j
    return words


# ---- the default mode's refinement -----------------------------------------------------------------------


def refine_word_times(
    words: Sequence[WordTiming],
    matrix: np.ndarray,
    text_indices: np.ndarray,
    time_indices: np.ndarray,
    config: AlignmentConfig = AlignmentConfig(),
    *,
    time_offset: float = 0.0,
    duration: float | None = None,
    tokens_per_second: float = TOKENS_PER_SECOND,
) -> list[WordTiming]:
    """Trim silence off the DTW word spans: new :class:`WordTiming` copies with refined start/end.

    The DTW path hands every frame to some token, so pauses (and leading/trailing silence) end up inside
    words: a word "ends" only when the next one starts. Here each word's span ``[s, e)`` (frames, from the
    path, as in :func:`words_from_path`) is examined through the word's own attention: ``a(t)``, the maximum
    of ``matrix`` over the word's token rows. The word is *heard* at frame ``t`` of its span when
    ``a(t) >= base + peak_fraction * (peak - base)``, where ``peak`` is the largest ``a`` inside the span and
    ``base`` the median of ``a`` over the whole clip (its level where it is not being said). A run of
    not-heard frames at the end of the span that lasts at least ``min_pause`` is cut off (the word ends
    before the next starts, leaving a gap); likewise at the start (a word after a pause, or the first word
    after leading silence, starts later). Shorter runs are kept, so words in fluent speech still touch.
    A trimmed word keeps at least ``min_word_duration`` of its span. Finally every time moves by
    ``time_shift``.

    The result is monotone (each start >= the previous end), each ``end >= start``, all times finite and
    inside ``[time_offset, time_offset + duration]`` (``duration`` defaults to the matrix's length in time).
    ``words`` are as :func:`words_from_path` returned them, before :func:`merge_punctuations`.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"the alignment matrix must be 2-D (tokens, frames), got shape {matrix.shape}")
    text_indices, time_indices = _check_path(text_indices, time_indices)
    n_frames = matrix.shape[1]
    if duration is None:
        duration = n_frames / tokens_per_second
    if not np.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be a finite number of seconds >= 0, got {duration!r}")
    boundaries = np.pad(np.cumsum([len(w.tokens) for w in words]), (1, 0))
    first = _first_frames(text_indices, time_indices)
    if len(first) <= boundaries[-1] or len(first) > matrix.shape[0]:
        raise ValueError(
            f"the words hold {boundaries[-1]} tokens, the path {len(first)} rows and the matrix "
            f"{matrix.shape[0]}; they must come from the same alignment (rows = tokens + 1)"
        )
    min_pause = int(round(config.min_pause * tokens_per_second))
    min_len = max(1, int(round(config.min_word_duration * tokens_per_second)))
    # silence scores nothing: non-finite entries never count as heard
    scores = np.where(np.isfinite(matrix), matrix, -np.inf)

    refined = []
    for k, word in enumerate(words):
        s, e = int(first[boundaries[k]]), int(first[boundaries[k + 1]])
        rows = slice(int(boundaries[k]), int(boundaries[k + 1]))
        if e > s and boundaries[k + 1] > boundaries[k]:
            s, e = _trim_span(scores[rows].max(axis=0), s, e, config.peak_fraction, min_pause, min_len)
        refined.append(dataclasses.replace(word, tokens=list(word.tokens), start=s, end=e))

    shift = config.time_shift or 0.0  # None (not resolved against a model) counts as no shift
    previous_end = 0.0
    for word in refined:  # frames -> seconds, shifted, clipped, monotone
        start = min(max(word.start / tokens_per_second + shift, previous_end), duration)
        end = min(max(word.end / tokens_per_second + shift, start), duration)
        word.start, word.end = float(time_offset + start), float(time_offset + end)
        previous_end = end
    return refined


def _trim_span(
    activation: np.ndarray, s: int, e: int, fraction: float, min_pause: int, min_len: int
) -> tuple[int, int]:
    """The sub-span of frames [s, e) where ``activation`` says the word is heard (see refine_word_times)."""
    inside = activation[s:e]
    finite = activation[np.isfinite(activation)]
    peak = inside.max()
    if len(finite) == 0 or not np.isfinite(peak):
        return s, e
    base = float(np.median(finite))
    if peak <= base:
        return s, e  # no clear peak: nothing to go on
    heard = np.flatnonzero(inside >= base + fraction * (peak - base))
    lead, trail = int(heard[0]), len(inside) - 1 - int(heard[-1])
    new_s = s + lead if lead >= max(min_pause, 1) else s
    new_e = e - trail if trail >= max(min_pause, 1) else e
    if new_e - new_s < min_len:  # too short after trimming: grow back towards the DTW span, ends first
        new_e = min(e, new_s + min_len)
        new_s = max(s, new_e - min_len)
    return new_s, new_e


def flag_past_end(
    words: Sequence[WordTiming],
    text_indices: np.ndarray,
    time_indices: np.ndarray,
    n_frames: int,
    tolerance: int = PAST_END_FRAMES,
) -> int:
    """Set ``past_end`` on the trailing words that the audio ends before, in place; returns how many.

    When the audio stops before the text does (a recording cut short), DTW still has to pass every remaining
    token row and does so at the last frames, without giving those words a frame of their own. So a word is
    past the end when its span on the path ``[first frame of its first row, first frame of the next word)``
    is empty, it starts within ``tolerance`` frames of the end of the matrix (``n_frames`` frames), and every
    word after it is past the end too. Words squeezed like this in the middle of the audio (unclear speech)
    are not flagged: the audio goes on there. ``words`` are as :func:`words_from_path` returned them.
    """
    text_indices, time_indices = _check_path(text_indices, time_indices)
    boundaries = np.cumsum([0] + [len(w.tokens) for w in words])
    first = _first_frames(text_indices, time_indices)
    count = 0
    for k in range(len(words) - 1, -1, -1):
        start, end = int(first[boundaries[k]]), int(first[min(boundaries[k + 1], len(first) - 1)])
        if end > start or start < n_frames - 1 - tolerance:
            break
        words[k].past_end = True
        count += 1
    return count


def widen_empty_words(words: Sequence[WordTiming], min_duration: float, start: float, end: float) -> int:
    """Give zero-length words that are not ``past_end`` ``min_duration`` seconds each, in place; returns how many.

    DTW may pass a short word within one frame (" a" after a pause), or a few unclear ones together, which
    leaves them empty intervals that subtitle and TextGrid tools cannot show. Each run of such words gets
    ``min_duration`` per word around where it sits: from the silence next to it first, else from a neighbour
    longer than ``2 * min_duration`` (which keeps at least ``min_duration``), shared evenly when there is less
    room; all inside ``[start, end]``, order and monotonicity kept. Run it on the output words (after
    :func:`merge_punctuations`: merged-away marks must not take time from their words).
    """
    widened, k = 0, 0
    while k < len(words):
        j = k
        while j < len(words) and words[j].end <= words[j].start and not words[j].past_end:
            j += 1
        if j == k:
            k += 1
            continue
        widened += _widen_run(words, k, j, min_duration, start, end)
        k = j
    return widened


def _widen_run(words: Sequence[WordTiming], k: int, j: int, min_duration: float, start: float, end: float) -> int:
    """Spread the zero-length words ``words[k:j]`` over up to ``min_duration`` each (see widen_empty_words)."""
    prev = words[k - 1] if k > 0 else None
    nxt = words[j] if j < len(words) and not words[j].past_end else None
    need = min_duration * (j - k)
    lo = prev.end if prev else start
    hi = nxt.start if nxt else (end if j == len(words) else words[k].end)
    if hi - lo < need and nxt:  # borrow from the next word's start ...
        hi = max(hi, min(lo + need, nxt.end - min_duration))
    if hi - lo < need and prev:  # ... or from the previous word's end
        lo = min(lo, max(hi - need, prev.start + min_duration))
    if hi <= lo:
        return 0
    point = words[k].start
    first = float(np.clip(point - need / 2, lo, max(lo, hi - need)))
    step = min(need, hi - first) / (j - k)
    for i in range(k, j):
        words[i].start, words[i].end = first + (i - k) * step, first + (i - k + 1) * step
    if prev and prev.end > first:
        prev.end = first
    if nxt and nxt.start < words[j - 1].end:
        nxt.start = words[j - 1].end
    return j - k


def resolve_config(config: AlignmentConfig | None, model_time_shift: float) -> AlignmentConfig:
    """``config`` (default: ``AlignmentConfig()``) with ``time_shift=None`` replaced by the model's calibrated
    shift; conformance mode never shifts."""
    config = config or AlignmentConfig()
    if config.time_shift is None:
        config = dataclasses.replace(config, time_shift=0.0 if config.conformance else float(model_time_shift))
    return config


# ---- the whole tensor-level step -------------------------------------------------------------------------


def align_words(
    matrix: np.ndarray,
    words: Sequence[str],
    word_tokens: Sequence[Sequence[int]],
    token_probs: Sequence[float],
    config: AlignmentConfig = AlignmentConfig(),
    *,
    time_offset: float = 0.0,
    duration: float | None = None,
    tokens_per_second: float = TOKENS_PER_SECOND,
) -> list[WordTiming]:
    """DTW through ``matrix`` and word times, per ``config.mode``; punctuation is *not* merged yet.

    ``matrix`` is the alignment matrix's rows from the no-timestamps token to the last text token (openai's
    ``matrix[len(sot_sequence):-1]``), as a numpy array or CPU tensor; ``words``/``word_tokens`` the split of
    ``text_tokens + [eot]`` (see :func:`words_from_path`). In conformance mode this is openai's
    ``find_alignment`` tail; follow it with :func:`truncate_sentence_marks` and :func:`merge_punctuations`
    for ``add_word_timestamps``' clean-ups. In default mode the path has free ends and the words are refined
    by :func:`refine_word_times`. In both modes, trailing words the audio ends before get ``past_end``
    (:func:`flag_past_end`); their times are left as the mode computes them.
    """
    if len(word_tokens) <= 1:
        return []
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"the alignment matrix must be 2-D (tokens, frames) and non-empty, got {matrix.shape}")
    n_tokens = sum(len(t) for t in word_tokens)
    if matrix.shape[0] != n_tokens:
        raise TranscriptError(
            f"the alignment matrix has {matrix.shape[0]} token rows but the words hold {n_tokens} tokens "
            "(text + end of text); pass the rows from the no-timestamps token to the last text token"
        )
    free = config.free_ends and not config.conformance
    text_indices, time_indices = (dtw_subsequence if free else dtw)(-matrix)
    timings = words_from_path(words, word_tokens, text_indices, time_indices, token_probs, 0.0, tokens_per_second)
    flag_past_end(timings, text_indices, time_indices, matrix.shape[1])
    if config.conformance:
        for w in timings:
            w.start, w.end = w.start + time_offset, w.end + time_offset
        return timings
    return refine_word_times(
        timings,
        matrix,
        text_indices,
        time_indices,
        config,
        time_offset=time_offset,
        duration=duration,
        tokens_per_second=tokens_per_second,
    )


__all__ = [
    "WordTiming",
    "AlignmentConfig",
    "words_from_path",
    "truncate_sentence_marks",
    "merge_punctuations",
    "refine_word_times",
    "flag_past_end",
    "widen_empty_words",
    "align_words",
    "resolve_config",
    "TOKENS_PER_SECOND",
    "PREPEND_PUNCTUATIONS",
    "APPEND_PUNCTUATIONS",
]
