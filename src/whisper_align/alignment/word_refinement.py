"""Apply a fitted boundary refinement (:mod:`whisper_align.alignment.refine`) to the words of one aligned piece.

This is the glue between the word timings that DTW produces and the refinement's arrays: it picks the words
worth refining (those with a letter or digit; punctuation-only words and words the audio ends before keep
their times), builds their attention activations from the alignment matrix, and writes the refined times back.
The refinement decodes a piece's words jointly (:func:`~whisper_align.alignment.segment_decode.decode_chain`)
when its parameters say ``joint``, else boundary by boundary. It runs on the piece's own region: the log-mel
frames and encoder states of the audio the piece was aligned against, whether that is a whole clip, one window
of a long recording or one clip of a packed window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .boundary_features import word_activations
from .refine import RefineParams, frame_tracks, refine_boundaries
from .segment_decode import decode_chain
from .words import WordTiming


@dataclass
class RefineInputs:
    """What the refinement reads besides the attention: the fitted ``params``, the region's log-mel frames
    (n_mels, frames at 10 ms) and its encoder output (positions at 20 ms, D)."""

    params: RefineParams
    mel: np.ndarray
    states: np.ndarray


def refinable(word: WordTiming) -> bool:
    """Whether a word's boundaries are refined: it has a letter or digit and the audio did not end before it."""
    return not word.past_end and any(c.isalnum() for c in word.word)


def refine_timings(
    timings: Sequence[WordTiming],
    matrix: np.ndarray,
    inputs: RefineInputs,
    time_shift: float,
    time_offset: float,
) -> None:
    """Move the boundaries of ``timings`` (the tokenizer's words before punctuation merging, times in seconds
    with ``time_offset`` added) in place to where the refinement puts them.

    ``matrix`` is the piece's alignment matrix as :func:`~whisper_align.alignment.words.align_words` read it
    (rows: no-timestamps token, text tokens; columns: 20 ms positions of the region); ``time_shift`` the shift
    the coarse times carry (the refinement's activations are moved by the same amount, as when it was fitted).
    """
    chosen = [k for k, w in enumerate(timings) if refinable(w)]
    if not chosen:
        return
    tracks = frame_tracks(np.asarray(inputs.mel, dtype=np.float64))
    bounds = np.concatenate([[0], np.cumsum([len(w.tokens) for w in timings])])
    rows = [(int(bounds[k]), int(bounds[k + 1])) for k in chosen]
    activation = word_activations(np.asarray(matrix), rows, time_shift, tracks.n_frames)
    starts = np.array([timings[k].start - time_offset for k in chosen])
    ends = np.array([timings[k].end - time_offset for k in chosen])
    states = np.asarray(inputs.states, dtype=np.float64)
    if inputs.params.joint:
        letters = [sum(c.isalnum() for c in timings[k].word) for k in chosen]
        new_starts, new_ends = decode_chain(inputs.params, tracks, starts, ends, letters, activation, states)
    else:
        new_starts, new_ends = refine_boundaries(inputs.params, tracks, starts, ends, activation, states)
    for k, start, end in zip(chosen, new_starts, new_ends):
        timings[k].start, timings[k].end = float(start) + time_offset, float(end) + time_offset


__all__ = ["RefineInputs", "refinable", "refine_timings"]
