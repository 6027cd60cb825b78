"""Packed windows: short clips laid out one after another in a 30 s window (0.5 s of silence between them), the
window encoded once and every clip aligned against its own stretch of it (``align --manifest``).

Two rules keep a packed clip's words what they would be alone. Each clip's decoder reads only its own stretch of
the encoded window (:data:`ISOLATE_CLIPS`, :func:`~whisper_align.tasks.pieces.isolation_mask`): a neighbour that
says the same sentence would otherwise pull the clip's alignment heads away. And a clip the model barely hears is
aligned again in a window of its own (:func:`barely_heard`, ``realign``): its diffuse attention would otherwise
move its words with whatever the encoder heard next to it. benchmarks/packing_orders.py measures both. So is a
clip whose last words are squeezed into its end (``squeezed_tail``): a recording cut short is recognised by
the decoder's wish to end the text, which it rarely shows inside a window that goes on with other speech
(benchmarks/cut_recordings.py ``--packed``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
import torch

from ..alignment.confidence import LOW_CONFIDENCE_SCORE, alignment_score
from ..alignment.word_refinement import squeezed_tail
from ..alignment.words import AlignmentConfig, WordTiming
from ..frontend.audio import N_SAMPLES, N_SAMPLES_PER_TOKEN, SAMPLE_RATE
from ..frontend.tokenizer import Tokenizer
from ..model.whisper import Whisper
from .align import align_long
from .pieces import Piece, refine_inputs, run_pieces, window_mel, words_of_piece

GAP_SECONDS = 0.5  # silence between packed clips
GAP = int(GAP_SECONDS * SAMPLE_RATE)
# Encode each packed clip as a sequence of its own (AudioEncoder ``starts``)? Measured with benchmarks/refine_cv.py
# (README): it helps tiny.en, costs base 5 ms of mean boundary error and lowers word probabilities, so it is off.
SEPARATE_CLIPS = False
# Each clip's decoder reads only its own stretch of the window? On (see the module's docstring).
ISOLATE_CLIPS = True


class Clip(Protocol):
    """What packing needs of a clip: its samples (16 kHz) and its transcript's tokens."""

    samples: np.ndarray
    tokens: list[int]


C = TypeVar("C", bound=Clip)


@dataclass
class Window:
    """Clips laid out in one 30 s window: each clip's first sample in ``starts``."""

    clips: list = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    length: int = 0  # samples used so far

    def fits(self, n_samples: int, gap: int = GAP) -> bool:
        return self.length + (gap if self.clips else 0) + n_samples <= N_SAMPLES

    def add(self, clip: Clip, gap: int = GAP) -> None:
        start = self.length + (gap if self.clips else 0)
        self.clips.append(clip)
        self.starts.append(start)
        self.length = start + len(clip.samples)

    def audio(self) -> np.ndarray:
        out = np.zeros(self.length, dtype=np.float32)
        for clip, start in zip(self.clips, self.starts):
            out[start : start + len(clip.samples)] = clip.samples
        return out


def lay_out(clips: Iterable[C], pack: bool = True) -> Iterator[Window | C]:
    """Lay clips out in windows in their order, by their decoded lengths; a clip too long for one window comes
    out alone (for long-form alignment). Without ``pack`` every clip comes out alone, to be aligned exactly as
    ``align`` aligns it."""
    window = Window()
    for clip in clips:
        if not pack or len(clip.samples) > N_SAMPLES:
            yield clip
            continue
        if window.clips and not window.fits(len(clip.samples)):
            yield window
            window = Window()
        window.add(clip)
    if window.clips:
        yield window


def align_packed_window(
    model: Whisper,
    tokenizer: Tokenizer,
    window: Window,
    config: AlignmentConfig,
    probabilities: bool = True,
    realign: bool = True,
) -> list[list[WordTiming]]:
    """Align every clip of a packed window; returns each clip's words, times relative to the clip. With
    ``realign`` a clip that is :func:`barely_heard`, or whose end looks cut short
    (:func:`~whisper_align.alignment.word_refinement.squeezed_tail`), is aligned again alone (as ``align`` does).

    With :data:`SEPARATE_CLIPS` the encoder takes each clip, from its first position to the next clip's, as a
    sequence of its own (see :class:`~whisper_align.model.whisper.AudioEncoder`)."""
    firsts = [start // N_SAMPLES_PER_TOKEN for start in window.starts]
    with torch.inference_mode():
        mel = window_mel(model, window.audio())
        features = model.embed_audio(mel[None].to(model.device), firsts if SEPARATE_CLIPS else None)
    pieces = []
    for clip, start, first in zip(window.clips, window.starts, firsts):
        last = max(first + 1, -(-(start + len(clip.samples)) // N_SAMPLES_PER_TOKEN))
        pieces.append(Piece(0, clip.tokens, first, min(last, features.shape[1])))
    results = run_pieces(model, tokenizer, features, pieces, probabilities, isolate=ISOLATE_CLIPS)
    out = []
    for clip, start, piece, (qk, probs, ends) in zip(window.clips, window.starts, pieces, results):
        offset = (piece.first * N_SAMPLES_PER_TOKEN - start) / SAMPLE_RATE  # region start, relative to the clip
        refine = refine_inputs(model, mel, features[0], piece.first, piece.last, text_ends=ends)
        words = words_of_piece(tokenizer, qk.float().cpu(), clip.tokens, probs, config, offset, refine=refine)
        duration = len(clip.samples) / SAMPLE_RATE
        doubtful = barely_heard(words, probabilities) or squeezed_tail(words, duration)
        if realign and len(window.clips) > 1 and doubtful:
            out.append(align_long(model, tokenizer, clip.samples, clip.tokens, config, probabilities))
            continue
        for w in words:  # the region may reach one position past the clip: clamp
            w.start, w.end = min(max(w.start, 0.0), duration), min(max(w.end, 0.0), duration)
        out.append(words)
    return out


def barely_heard(words: list[WordTiming], probabilities: bool) -> bool:
    """Whether a packed clip's words fit its audio so poorly (alignment score below ``LOW_CONFIDENCE_SCORE``)
    that it is aligned again in a window of its own.

    Where the model barely hears a clip its attention is diffuse, and the small differences its neighbours make
    to the encoded window move its words by hundreds of milliseconds: its result would depend on the manifest's
    order. Alone, it gets exactly what ``align`` gives it. Clips the model hears move by a few milliseconds at
    most and stay packed. ``False`` without probabilities (nothing to judge by).
    """
    score = alignment_score([w.probability for w in words if w.word]) if probabilities else None
    return score is not None and score < LOW_CONFIDENCE_SCORE


__all__ = ["GAP", "GAP_SECONDS", "Window", "align_packed_window", "barely_heard", "lay_out"]
