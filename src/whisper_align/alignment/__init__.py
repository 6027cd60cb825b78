"""Tensor-level alignment: alignment-head scores -> alignment matrix -> DTW path -> word times.

Nothing here touches a model or a tokenizer; inputs are tensors, arrays and token lists.
"""

from __future__ import annotations

from .attention import alignment_matrices, alignment_matrix, median_filter
from .dtw import dtw, dtw_subsequence
from .words import (
    APPEND_PUNCTUATIONS,
    PREPEND_PUNCTUATIONS,
    TOKENS_PER_SECOND,
    AlignmentConfig,
    WordTiming,
    align_words,
    merge_punctuations,
    refine_word_times,
    truncate_sentence_marks,
    words_from_path,
)

__all__ = [
    "median_filter",
    "alignment_matrix",
    "alignment_matrices",
    "dtw",
    "dtw_subsequence",
    "WordTiming",
    "AlignmentConfig",
    "words_from_path",
    "truncate_sentence_marks",
    "merge_punctuations",
    "refine_word_times",
    "align_words",
    "TOKENS_PER_SECOND",
    "PREPEND_PUNCTUATIONS",
    "APPEND_PUNCTUATIONS",
]
