"""How well a transcript fits its audio, from the decoder's word probabilities: the alignment score and the
threshold below which an alignment is reported as low-confidence (``align``) and its ``past_end`` flags are
reconsidered (:func:`~whisper_align.alignment.word_refinement.lagging_tail`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Geometric mean word probability below which the text is reported as not matching the audio. Measured with
# tiny.en (default mode) on timit-dev (80 clips) and festival (78 clips, every fifth), each clip aligned with
# its own text and with another clip's (pairs with the same sentence left out): other texts scored at most
# 0.0080 on both sets, own texts at least 0.138 on festival; on timit-dev 10 of 80 own texts scored below
# 0.01 (12 below 0.03): recordings tiny.en mishears, whose alignments squeeze words and deserve the flag.
LOW_CONFIDENCE_SCORE = 0.03


def alignment_score(probabilities: Sequence[float]) -> float | None:
    """How well a transcript fits its audio: the geometric mean of its words' probabilities (the decoder's
    probability of each word's tokens given the audio and the words before), each floored at 1e-6.

    A text that is not what is said gets near-zero probabilities on most words; the geometric mean follows
    that majority, where the arithmetic mean is carried by a few function words the decoder guesses anyway
    and the median does not separate the measured sets (see :data:`LOW_CONFIDENCE_SCORE`). ``None`` when
    there are no words.
    """
    if len(probabilities) == 0:
        return None
    return float(np.exp(np.mean(np.log(np.clip(np.asarray(probabilities, dtype=float), 1e-6, 1.0)))))


__all__ = ["LOW_CONFIDENCE_SCORE", "alignment_score"]
