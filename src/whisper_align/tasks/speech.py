"""Transcription and alignment kept to the speech a voice-activity detector finds (:mod:`..frontend.vad`).

:func:`transcribe_speech` decodes only the speech: the detector's clips become :func:`.transcribe.transcribe`'s
``clip_timestamps``, so the long-form loop never looks at the silence between them, each window starts at a
clip (a pause) and times stay on the original timeline. :func:`snap_to_speech` then moves word (and segment) times
out of any detected silence: a word running on into a pause ends where the speech ends. After a forced alignment
(``align --vad``) it does the same to the aligned words.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from torch import Tensor

from ..errors import DecodingError
from ..frontend.audio import N_SAMPLES, SAMPLE_RATE, load_audio, log_mel_spectrogram
from ..frontend.vad import Span, VadOptions, clip_to_speech, detect_speech, transcription_clips
from ..model.whisper import Whisper
from ..results.types import Result, Segment
from .transcribe import Transcription, _detect_language, transcribe

R = TypeVar("R", bound=Result)


def snap_to_speech(result: R, regions: list[Span]) -> R:
    """A copy of ``result`` whose word times lie in the speech ``regions`` (see
    :func:`~whisper_align.frontend.vad.clip_to_speech`); a segment with words then spans its words, one without
    is clipped like a word. Nothing changes without regions."""
    if not regions:
        return result
    spans = clip_to_speech([(w.start, w.end) for w in result.words], regions)
    segment_spans = iter(clip_to_speech([(s.start, s.end) for s in result.segments], regions))
    moved = iter(spans)
    segments: list[Segment] = []
    for segment in result.segments:
        own_span = next(segment_spans)
        words = [dataclasses.replace(w, start=start, end=end) for w, (start, end) in zip(segment.words, moved)]
        start, end = (words[0].start, words[-1].end) if words else own_span
        segments.append(dataclasses.replace(segment, words=words, start=start, end=end))
    return dataclasses.replace(result, segments=segments)


def transcribe_speech(
    model: Whisper,
    audio: str | Path | np.ndarray | Tensor,
    *,
    vad: VadOptions | None = None,
    **options: Any,
) -> Transcription:
    """:func:`~whisper_align.tasks.transcribe.transcribe` over the speech ``vad`` finds, times on the original
    timeline and words kept out of the silence. ``options`` are transcribe's, except ``clip_timestamps``, which the
    detector sets (a :class:`DecodingError` if given). Audio without speech gives an empty transcription. The
    language, when not given, is detected on the first speech (openai's rule would listen to the audio's first 30
    seconds, silence or not)."""
    if options.get("clip_timestamps", "0") not in ("0", [], (), None):
        raise DecodingError("voice-activity detection chooses the clips to decode itself; drop clip_timestamps")
    options.pop("clip_timestamps", None)
    vad = vad or VadOptions()
    samples = load_audio(audio)
    speech = detect_speech(samples, vad)
    clips = transcription_clips(speech, vad)
    if not clips:
        return Transcription(
            text="",
            segments=[],
            language=options.get("language"),
            duration=len(samples) / SAMPLE_RATE,
            word_alignment=options.get("word_alignment", "captured") if options.get("word_timestamps") else None,
        )
    if options.get("language") is None and model.is_multilingual:  # from the first speech, not leading silence
        first = round(clips[0][0] * SAMPLE_RATE)
        mel = log_mel_spectrogram(samples[first : first + N_SAMPLES], model.dims.n_mels, padding=N_SAMPLES)
        options["language"] = _detect_language(model, mel, options.get("verbose"))
    result = transcribe(model, samples, clip_timestamps=[t for clip in clips for t in clip], **options)
    return snap_to_speech(result, speech.regions)


__all__ = ["snap_to_speech", "transcribe_speech"]
