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
from dataclasses import dataclass, field

import numpy as np

from .boundary_features import FRAMES_PER_SECOND, word_activations
from .confidence import LOW_CONFIDENCE_SCORE, alignment_score
from .refine import RefineParams, frame_tracks, refine_boundaries
from .segment_decode import ChainSettings, decode_chain, expected_log_seconds
from .words import WordTiming


@dataclass
class RefineInputs:
    """What the refinement reads besides the attention: the fitted ``params``, the region's log-mel frames
    (n_mels, frames at 10 ms) and its encoder output (positions at 20 ms, D). ``ends_audio``: the region is the
    end of the recording (a clip, or a long recording's last window), so the words flagged ``past_end`` there
    may be reconsidered (:func:`lagging_tail`) and extended (:func:`unheard_tail`); elsewhere words squeezed at the
    end belong to the next window. ``text_given``: the text is a given transcript (forced alignment), not the
    decoder's own (transcription), so a word the decoder does not expect may be one the audio does not hold.
    ``text_ends``: for each text token, the decoder's probability of ending the text in its place (empty when
    not computed; see :func:`unheard_tail`)."""

    params: RefineParams
    mel: np.ndarray
    states: np.ndarray
    ends_audio: bool = True
    text_given: bool = True
    text_ends: list[float] = field(default_factory=list)


def _spoken(word: WordTiming) -> bool:
    """Whether a word is said at all: it has a letter or digit (punctuation-only words are not)."""
    return any(c.isalnum() for c in word.word)


def refinable(word: WordTiming) -> bool:
    """Whether a word's boundaries are refined: it is :func:`_spoken` and the audio did not end before it."""
    return not word.past_end and _spoken(word)


_SETTINGS = ChainSettings()
# A trailing word the decoder gives a mean token probability below this may be one the audio does not hold ...
UNHEARD_PROBABILITY = 0.003
# ... when the trailing run of such words has less than this share of its expected speaking time before the end.
UNHEARD_SQUEEZE = 0.5
# A word in whose place the decoder ends the text with more than this probability is one the audio ends before ...
UNHEARD_TEXT_END = 0.2
# ... when the run from it has less than this share of its expected speaking time before the end (a fast speaker
# leaves a heard run nearly all of it).
UNHEARD_TEXT_END_SQUEEZE = 0.75
UNHEARD_TAIL = True  # apply :func:`unheard_tail` (benchmarks switch it off to measure what it changes)


def lagging_tail(timings: Sequence[WordTiming], duration: float, settings: ChainSettings = _SETTINGS) -> bool:
    """Whether the words flagged ``past_end`` are more likely heard words that the attention path lagged behind
    than words the audio does not hold (a recording cut short).

    Two things must agree. The decoder barely recognised the speech: the alignment score (geometric mean word
    probability, :func:`~whisper_align.alignment.confidence.alignment_score`) is below ``LOW_CONFIDENCE_SCORE``
    (then the heads' attention, and with it the flags, is unreliable); when it recognises the words before the
    flagged ones, the flags are trusted. And the speaking time fits the whole transcript better than the part
    before the flags: the time from the first word's start to the end of the audio is closer, on a log scale, to
    the expected length of all the words (the duration prior of the global decode, from their letters) than to
    that of the unflagged words alone.
    """
    said = [w for w in timings if _spoken(w)]
    flagged = [w for w in said if w.past_end]
    if not flagged or len(flagged) == len(said) or not any(w.probability > 0 for w in said):
        return False
    score = alignment_score([w.probability for w in said])
    if score is None or score >= LOW_CONFIDENCE_SCORE:
        return False

    return _fits_every_word(said, [w for w in said if not w.past_end], duration, settings)


def _fits_every_word(
    said: Sequence[WordTiming], heard: Sequence[WordTiming], duration: float, settings: ChainSettings
) -> bool:
    """Whether the time from the first word's start to the end of the audio is closer, on a log scale, to the
    expected speaking time of all the words ``said`` than to that of the ``heard`` ones alone."""
    span = duration - min(w.start for w in said)
    everything = _expected_seconds(said, settings)
    return span > 0 and np.log(everything / span) < 0.5 * np.log(everything / _expected_seconds(heard, settings))


def _token_bounds(timings: Sequence[WordTiming]) -> np.ndarray:
    """Where each word's tokens start in the piece's text tokens, and where the last one ends (len + 1 values)."""
    return np.concatenate([[0], np.cumsum([len(w.tokens) for w in timings])]).astype(int)


def _expected_seconds(words: Sequence[WordTiming], settings: ChainSettings) -> float:
    """Expected speaking time of ``words``: the global decode's duration prior, from their letters."""
    return sum(float(np.exp(expected_log_seconds(sum(c.isalnum() for c in w.word), settings))) for w in words)


def _squeezed(run: Sequence[WordTiming], duration: float, share: float, settings: ChainSettings) -> bool:
    """Whether ``run`` (a trailing run of words) has less than ``share`` of its expected speaking time between its
    first word's start and the end of the audio."""
    return duration - run[0].start < share * _expected_seconds(run, settings)


def unheard_tail(
    timings: Sequence[WordTiming],
    duration: float,
    settings: ChainSettings = _SETTINGS,
    text_ends: Sequence[float] = (),
) -> int:
    """Flag ``past_end`` on a trailing run of words that the audio most likely ends before although DTW gave
    them frames, in place; returns how many words it newly flagged.

    :func:`~whisper_align.alignment.words.flag_past_end` catches words the path passes without a frame; but
    where a recording is cut short the path often hands its last frame or two to the first word that was never
    said, and that word, with the words the path squeezes after it, escapes. The decoder, reading audio that
    stops, marks such a run in one of two ways, and the earlier run found is flagged:

    - it would end the text in place of the run's first word (or of the punctuation just before it): with
      probability above :data:`UNHEARD_TEXT_END` (``text_ends``: per text token, see
      :class:`~whisper_align.tasks.pieces.PieceScores`), and the run has less than
      :data:`UNHEARD_TEXT_END_SQUEEZE` of its expected speaking time (the duration prior) before the end of the
      audio. Whisper learned to end its text where speech ends; but on a clip it barely recognises (alignment
      score below ``LOW_CONFIDENCE_SCORE``) whose length fits all of its words (as in :func:`lagging_tail`),
      that is taken for confusion, not an ending;
    - it does not expect the run's words (:func:`_unexpected_run`).

    A flagged word ends the audio with zero length, like the words the path passes. It runs after
    :func:`lagging_tail` and may flag again what that took back: ``lagging_tail`` judges by the whole text's
    score, which a run of words the decoder does not expect drags down even when the words before them are
    recognised.
    """
    said = [k for k, w in enumerate(timings) if _spoken(w)]
    ended = _text_ended(timings, said, text_ends, duration, settings)
    runs = [j for j in (ended, _unexpected_run(timings, said, duration, settings)) if j]
    if not runs or all(timings[k].past_end for k in said[min(runs) :]):
        return 0
    count = 0
    for word in timings[said[min(runs)] :]:
        count += refinable(word)  # a spoken word not flagged before
        word.past_end, word.start, word.end = True, duration, duration
    return count


def squeezed_tail(timings: Sequence[WordTiming], duration: float, settings: ChainSettings = _SETTINGS) -> bool:
    """Whether a trailing run of the spoken words, from the second on, has less than
    :data:`UNHEARD_TEXT_END_SQUEEZE` of its expected speaking time before ``duration``: the shape DTW gives the
    unsaid words of a recording cut short (words already flagged ``past_end`` have none left).

    Packing asks this of a packed clip: there the decoder reads the encoded audio of a window that goes on with
    other speech, and it rarely says the text should end where a cut clip stops, so :func:`unheard_tail`'s
    first sign fails; such a clip is aligned again alone.
    """
    said = [w for w in timings if _spoken(w)]
    return any(_squeezed(said[j:], duration, UNHEARD_TEXT_END_SQUEEZE, settings) for j in range(1, len(said)))


def _text_ended(
    timings: Sequence[WordTiming],
    said: list[int],
    text_ends: Sequence[float],
    duration: float,
    settings: ChainSettings,
) -> int | None:
    """Index in ``said`` of the first spoken word after the first in whose place, or in the place of the
    punctuation just before it, the decoder ends the text with probability above :data:`UNHEARD_TEXT_END`, if
    the run from it is squeezed (less than :data:`UNHEARD_TEXT_END_SQUEEZE` of its expected speaking time before
    the end) and the clip is not a barely recognised one whose length fits all its words (see
    :func:`unheard_tail`)."""
    if not text_ends:
        return None
    first_token = _token_bounds(timings)
    for j in range(1, len(said)):
        places = [int(first_token[k]) for k in range(said[j - 1] + 1, said[j] + 1)]
        if max(text_ends[t] for t in places if t < len(text_ends)) > UNHEARD_TEXT_END:
            run, words = [timings[k] for k in said[j:]], [timings[k] for k in said]
            if not _squeezed(run, duration, UNHEARD_TEXT_END_SQUEEZE, settings):
                return None
            score = alignment_score([w.probability for w in words])
            lagging = score is not None and score < LOW_CONFIDENCE_SCORE
            return None if lagging and _fits_every_word(words, words[:j], duration, settings) else j
    return None


def _unexpected_run(
    timings: Sequence[WordTiming], said: list[int], duration: float, settings: ChainSettings
) -> int | None:
    """Index in ``said`` where a trailing run of words the decoder does not expect starts, if it is squeezed.

    Each word of the run has a mean token probability below :data:`UNHEARD_PROBABILITY` (or is flagged
    already), while the words before it are recognised (their alignment score is at least
    ``LOW_CONFIDENCE_SCORE``; where it is lower nothing is trusted). And the run is squeezed: the time from its
    first word's start to the end of the audio is less than :data:`UNHEARD_SQUEEZE` of the run's expected
    speaking time (the duration prior)."""
    j = len(said)
    while j > 0 and (timings[said[j - 1]].past_end or timings[said[j - 1]].probability < UNHEARD_PROBABILITY):
        j -= 1
    if j == 0 or j == len(said):
        return None
    score = alignment_score([timings[k].probability for k in said[:j]])
    if score is None or score < LOW_CONFIDENCE_SCORE:
        return None
    run = [timings[k] for k in said[j:]]
    return j if _squeezed(run, duration, UNHEARD_SQUEEZE, settings) else None


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
    end = time_offset + inputs.mel.shape[1] / FRAMES_PER_SECOND
    if inputs.ends_audio and inputs.params.joint and lagging_tail(timings, end):
        for word in timings:  # heard after all: the global decode places them like the others
            word.past_end = False
    if inputs.ends_audio and inputs.text_given and UNHEARD_TAIL:  # after it: see unheard_tail
        unheard_tail(timings, end, text_ends=inputs.text_ends)
    chosen = [k for k, w in enumerate(timings) if refinable(w)]
    if not chosen:
        return
    tracks = frame_tracks(np.asarray(inputs.mel, dtype=np.float64))
    bounds = _token_bounds(timings)
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


__all__ = ["RefineInputs", "lagging_tail", "refinable", "refine_timings", "squeezed_tail", "unheard_tail"]
