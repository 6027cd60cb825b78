"""What :func:`~whisper_align.tasks.transcribe.transcribe` returns, and its last touches once every window is done.

:class:`Transcription` is a :class:`~whisper_align.results.types.Result` (openai-whisper's result dict) that also
says how its word timings were obtained. :func:`finish` builds it:

- **no overlaps** (default mode): every word starts at or after the previous word's end and every segment at or
  after the previous segment's end (:func:`~whisper_align.tasks.window_words.keep_in_order`; the windows' own
  clipping, :func:`~whisper_align.tasks.window_words.clip_to_next_window`, does the real work), so no subtitle cue
  overlaps another. Conformance mode keeps openai-whisper's times exactly;
- **confidence**: with word timestamps, ``alignment_score`` is the geometric mean of the word probabilities
  (:func:`~whisper_align.tasks.align.alignment_score`) and ``low_confidence`` says it is below
  :data:`LOW_CONFIDENCE_SCORE`, with a warning: the text may not be what is said.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from ..results.types import Result, Segment
from .align import alignment_score
from .window_words import keep_in_order

# Geometric mean word probability below which a transcription is flagged ``low_confidence``. Measured with tiny.en,
# default mode, clips one by one: on timit-dev's 80 clips, the 8 scoring below 0.1 are damaged recordings
# transcribed as garbage (WER 0.88-1.0) and the others score 0.35 or more; on festival (78 clips, every fifth) one
# scores below 0.2 (0.06, a synthetic voice misheard, WER 0.5) and the others 0.33 or more; 15-20 s of silence
# hallucinated as " you" scores 0.07-0.08 (noise and tones gave no text at all).
LOW_CONFIDENCE_SCORE = 0.2


@dataclass(repr=True, eq=True)
class Transcription(Result):
    """A :class:`Result` that also says how its word timings were obtained."""

    word_alignment: str | None = None  # "captured" or "second_pass" as asked; None without word timestamps
    second_pass_windows: int = 0  # windows whose word timings needed a separate decoder pass anyway


def finish(
    segments: list[Segment],
    *,
    text: str,
    language: str,
    duration: float,
    word_alignment: str | None,
    second_pass_windows: int,
    in_order: bool,
) -> Transcription:
    """The transcription of ``segments``: put in order when ``in_order``, scored when it has word timestamps
    (``word_alignment`` is set), with warnings for a low score and for windows timed by a separate pass."""
    if in_order:
        keep_in_order(segments)
    if second_pass_windows:
        warnings.warn(
            f"{second_pass_windows} window(s) filled the decoder's context, so their word timings "
            "came from a separate decoder pass instead of the captured attention",
            stacklevel=3,
        )
    words = [word for segment in segments for word in segment.words]
    score = alignment_score([word.probability for word in words]) if word_alignment is not None else None
    result = Transcription(
        text=text,
        segments=segments,
        language=language,
        duration=duration,
        alignment_score=score,
        low_confidence=score is not None and score < LOW_CONFIDENCE_SCORE,
        word_alignment=word_alignment,
        second_pass_windows=second_pass_windows,
    )
    if result.low_confidence:
        warnings.warn(
            f"the transcript may not fit the audio: alignment score {score:.4f} (geometric mean word probability) "
            f"is below {LOW_CONFIDENCE_SCORE}; the model may have heard noise, music, silence or damaged audio, or "
            "the language may be wrong",
            stacklevel=3,
        )
    return result


__all__ = ["LOW_CONFIDENCE_SCORE", "Transcription", "finish"]
