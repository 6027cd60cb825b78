"""The plain result types that alignment and transcription return.

They mirror openai-whisper's ``transcribe()`` output so that ``Result.to_dict()`` is a drop-in replacement for its
JSON: a result has ``text``, ``segments`` and ``language``; each segment carries the decoder's statistics and, when
word timestamps were produced, a ``words`` list of ``{word, start, end, probability}``. Times are seconds from the
start of the audio. Word texts keep Whisper's leading space (``" hello"``), as openai-whisper's do, so that joining
them gives back the segment text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import formats


@dataclass
class Word:
    """One word with its time span (seconds) and the model's mean token probability for it.

    ``past_end`` marks a word of a forced alignment that the audio ends before: it could not be heard, so it
    sits at the end of the audio with zero length (the recording was cut short, or the text runs on). Only
    such words have ``past_end=True``; the key is written to dicts only then, so openai's schema is kept.
    ``speaker`` is set by :func:`~whisper_align.results.speakers.assign_speakers` (written only when set).
    """

    word: str
    start: float
    end: float
    probability: float = float("nan")
    past_end: bool = False
    speaker: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "word": self.word,
            "start": self.start,
            "end": self.end,
            "probability": self.probability,
        }
        if self.past_end:
            data["past_end"] = True
        if self.speaker is not None:
            data["speaker"] = self.speaker
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Word:
        return cls(
            word=str(data["word"]),
            start=float(data["start"]),
            end=float(data["end"]),
            probability=float(data.get("probability", float("nan"))),
            past_end=bool(data.get("past_end", False)),
            speaker=None if data.get("speaker") is None else str(data["speaker"]),
        )


@dataclass
class Segment:
    """One decoded (or given) stretch of text, as in openai-whisper's ``result["segments"]``.

    ``seek`` is the mel frame at which the 30-second window that produced the segment starts; ``tokens`` are its
    token ids (text and timestamp tokens). For a forced alignment of a given transcript the decoder statistics
    (``temperature``, ``avg_logprob``, ...) are whatever the aligner fills in.
    """

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int] = field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float = float("nan")
    compression_ratio: float = float("nan")
    no_speech_prob: float = float("nan")
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None  # set by assign_speakers; written to dicts only when set

    def to_dict(self, include_words: bool | None = None) -> dict[str, Any]:
        """openai-whisper's segment dict. ``words`` is included when asked, or by default when there are any
        (openai-whisper only has the key when word timestamps were requested)."""
        data: dict[str, Any] = {
            "id": self.id,
            "seek": self.seek,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "tokens": list(self.tokens),
            "temperature": self.temperature,
            "avg_logprob": self.avg_logprob,
            "compression_ratio": self.compression_ratio,
            "no_speech_prob": self.no_speech_prob,
        }
        if include_words if include_words is not None else bool(self.words):
            data["words"] = [word.to_dict() for word in self.words]
        if self.speaker is not None:
            data["speaker"] = self.speaker
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Segment:
        """Read a segment dict as written by ``to_dict`` or by openai-whisper (statistics are optional)."""
        return cls(
            id=int(data.get("id", 0)),
            seek=int(data.get("seek", 0)),
            start=float(data["start"]),
            end=float(data["end"]),
            text=str(data["text"]),
            tokens=[int(t) for t in data.get("tokens", [])],
            temperature=float(data.get("temperature", 0.0)),
            avg_logprob=float(data.get("avg_logprob", float("nan"))),
            compression_ratio=float(data.get("compression_ratio", float("nan"))),
            no_speech_prob=float(data.get("no_speech_prob", float("nan"))),
            words=[Word.from_dict(w) for w in data.get("words", [])],
            speaker=None if data.get("speaker") is None else str(data["speaker"]),
        )


@dataclass
class Result:
    """A whole transcript: full text, its segments, and the language code (``None`` if unknown)."""

    text: str
    segments: list[Segment]
    language: str | None = None
    duration: float | None = None  # seconds of audio, when known (not part of openai's JSON; used by TextGrid)
    # forced alignment only (None / False otherwise): how well the text matches the audio, see
    # aligner.alignment_score; low_confidence says it is below the threshold (the text may not be what is said)
    alignment_score: float | None = None
    low_confidence: bool = False

    @property
    def words(self) -> list[Word]:
        """Every word of every segment, in order."""
        return [word for segment in self.segments for word in segment.words]

    @property
    def has_words(self) -> bool:
        """Whether word timestamps are present (then every segment's dict gets a ``words`` key)."""
        return any(segment.words for segment in self.segments)

    def to_dict(self) -> dict[str, Any]:
        """openai-whisper's ``transcribe()`` result dict (JSON-serialisable)."""
        include_words = self.has_words
        data: dict[str, Any] = {
            "text": self.text,
            "segments": [segment.to_dict(include_words=include_words) for segment in self.segments],
            "language": self.language,
        }
        if self.alignment_score is not None:  # forced alignments only: transcriptions keep openai's keys
            data["alignment_score"] = self.alignment_score
            data["low_confidence"] = self.low_confidence
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """Read a result dict as written by ``to_dict`` or openai-whisper's ``transcribe()``."""
        segments = [Segment.from_dict(s) for s in data.get("segments", [])]
        text = data.get("text")
        if text is None:
            text = "".join(segment.text for segment in segments)
        score = data.get("alignment_score")
        return cls(
            text=str(text),
            segments=segments,
            language=data.get("language"),
            alignment_score=None if score is None else float(score),
            low_confidence=bool(data.get("low_confidence", False)),
        )

    def render(self, fmt: str, **options: Any) -> str:
        """The result as text in one of the formats of :mod:`whisper_align.results.formats` (``"srt"``, ``"vtt"``,
        ``"json"``, ``"textgrid"``, ``"tsv"``, ``"txt"``); ``options`` go to that writer."""
        return formats.render(self, fmt, **options)

    def write(self, path_or_fmt: str | os.PathLike[str], **options: Any) -> str:
        """Write the result to a file whose extension picks the format (.json .srt .vtt .TextGrid .tsv .txt),
        atomically, and return the text written. A bare format name (``"srt"``) writes nothing and just returns
        the text, like :meth:`render`."""
        if isinstance(path_or_fmt, str) and path_or_fmt.lower() in formats.FORMATS:
            return formats.render(self, path_or_fmt, **options)
        return formats.write_result(self, path_or_fmt, **options)
