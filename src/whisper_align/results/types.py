"""The result types that alignment and transcription return, which are also openai-whisper's result dicts.

openai-whisper's ``transcribe()`` returns a dict: ``text``, ``segments`` and ``language``; each segment carries the
decoder's statistics and, when word timestamps were produced, a ``words`` list of ``{word, start, end,
probability}``. Code written for it indexes that dict (``r["segments"][0]["words"][0]["start"]``), hands it to
``whisper.utils.get_writer(...)`` or ``json.dump``\\ s it. So :class:`Result`, :class:`Segment` and :class:`Word` are
``dict`` subclasses whose items are exactly openai's keys, and dataclasses whose attributes are the same values
(``r.segments[0].words[0].start``): one object, two views that always agree. Setting an attribute updates the
item and setting an item updates the attribute (``word["start"] = 1.5`` is ``word.start = 1.5``); a list of plain
dicts given as ``segments`` or ``words`` becomes a list of segments or words. ``json.dump(result, f)`` writes
openai's JSON; ``to_dict()`` gives plain ``dict``\\ s.

Keys beyond openai's are written only when they say something: ``past_end`` and ``low_probability`` on a word
when true, ``alignment_score`` and ``low_confidence`` on a result when a score was computed. A segment has a
``words`` key once it has words, and a result gives the key to all its segments when any has words (as
openai-whisper does when word timestamps were asked for); emptying a segment's words keeps the key (``[]``).
Keys of your own (``segment["note"] = "..."``) live in the dict only and are written to JSON. Deleting a key whose
absence means something (``words``, ``past_end``, ``low_probability``, ``speaker``, ``alignment_score``) resets
that attribute; deleting another (``del segment["tokens"]``, as scripts do to slim their JSON) removes it from the
dict view only, and the attribute keeps its value.

Times are seconds from the start of the audio. Word texts keep Whisper's leading space (``" hello"``), as
openai-whisper's do, so that joining them gives back the segment text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ResultError
from . import formats


class _DictView(dict):  # type: ignore[type-arg]
    """A dataclass whose openai keys (``_KEYS``) are kept as dict items too, always equal to the attributes."""

    _KEYS: ClassVar[tuple[str, ...]] = ()
    _ABSENT: ClassVar[dict[str, Any]] = {}  # optional keys, left out of the dict at this attribute value
    _LINKED: ClassVar[dict[str, tuple[str, ...]]] = {}  # setting one attribute re-syncs these keys too

    def _convert(self, name: str, value: Any) -> Any:
        """The value an attribute stores (plain floats and ints, segment and word objects)."""
        return value

    def _shown(self, key: str) -> bool:
        """Whether ``key`` belongs in the dict now (an optional key is left out at its absent value)."""
        return key not in self._ABSENT or getattr(self, key) != self._ABSENT[key]

    def _sync(self, key: str) -> None:
        if not hasattr(self, key):  # still being built (dataclass __init__, unpickling)
            return
        if self._shown(key):
            dict.__setitem__(self, key, getattr(self, key))
        else:
            dict.pop(self, key, None)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, self._convert(name, value))
        if name in self._KEYS:
            for key in self._LINKED.get(name, (name,)):
                self._sync(key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self._KEYS:
            setattr(self, key, value)
        else:
            dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        dict.__delitem__(self, key)
        if key in self._ABSENT:
            setattr(self, key, self._ABSENT[key])

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    # dict's own methods write the storage directly; these go through the two methods above instead
    def update(self, other: Any = (), /, **kwargs: Any) -> None:  # type: ignore[override]
        items = other.items() if isinstance(other, Mapping) else other
        for key, value in [*items, *kwargs.items()]:
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: str, *default: Any) -> Any:  # type: ignore[override]
        if key not in self:
            if default:
                return default[0]
            raise KeyError(key)
        value = self[key]
        del self[key]
        return value

    def popitem(self) -> tuple[str, Any]:
        if not self:
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(self))
        return key, self.pop(key)

    def clear(self) -> None:
        for key in list(self):
            del self[key]

    def __ior__(self, other: Any) -> _DictView:  # type: ignore[override,misc]
        self.update(other)
        return self


def _plain(value: Any) -> Any:
    """``value`` with every dict and list copied as a plain ``dict`` / ``list`` (what ``to_dict`` returns)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _keep_extra_keys(target: _DictView, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if key not in target._KEYS:
            target[key] = value


@dataclass(repr=True, eq=True)
class Word(_DictView):
    """One word with its time span (seconds) and the model's mean token probability for it.

    ``past_end`` marks a word of a forced alignment that the audio ends before: it could not be heard, so it
    sits at the end of the audio with zero length (the recording was cut short, or the text runs on).
    ``low_probability`` marks a word whose probability is below a threshold the caller chose
    (:meth:`Result.flag_low_probability`); ``speaker`` is set by speaker assignment. Each key is in the dict only
    when true or set, so openai's schema is kept.
    """

    _KEYS: ClassVar[tuple[str, ...]] = (
        "word",
        "start",
        "end",
        "probability",
        "past_end",
        "speaker",
        "low_probability",
    )
    _ABSENT: ClassVar[dict[str, Any]] = {"past_end": False, "speaker": None, "low_probability": False}

    word: str
    start: float
    end: float
    probability: float = float("nan")
    past_end: bool = False
    speaker: str | None = None
    low_probability: bool = False

    def _convert(self, name: str, value: Any) -> Any:
        if name in ("start", "end", "probability"):
            return float(value)
        if name in ("past_end", "low_probability"):
            return bool(value)
        if name == "speaker":
            return None if value is None else str(value)
        return str(value) if name == "word" else value

    def to_dict(self) -> dict[str, Any]:
        """openai-whisper's word dict, as a plain ``dict``."""
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Word:
        word = cls(
            word=data["word"],
            start=data["start"],
            end=data["end"],
            probability=data.get("probability", float("nan")),
            past_end=data.get("past_end", False),
            speaker=data.get("speaker"),
            low_probability=data.get("low_probability", False),
        )
        _keep_extra_keys(word, data)
        return word


def _words(value: Iterable[Any]) -> list[Word]:
    words = value if isinstance(value, list) else list(value)
    if all(isinstance(w, Word) for w in words):
        return words  # the same list: callers may keep appending to it
    return [w if isinstance(w, Word) else Word.from_dict(w) for w in words]


@dataclass(repr=True, eq=True)
class Segment(_DictView):
    """One decoded (or given) stretch of text, as in openai-whisper's ``result["segments"]``.

    ``seek`` is the mel frame at which the 30-second window that produced the segment starts; ``tokens`` are its
    token ids (text and timestamp tokens). For a forced alignment of a given transcript the decoder statistics
    (``temperature``, ``avg_logprob``, ...) are whatever the aligner fills in. ``speaker`` is set by speaker
    assignment (a key only when set).
    """

    _KEYS: ClassVar[tuple[str, ...]] = (
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
        "words",
        "speaker",
    )
    _ABSENT: ClassVar[dict[str, Any]] = {"words": [], "speaker": None}

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
    speaker: str | None = None

    def _convert(self, name: str, value: Any) -> Any:
        if name == "speaker":
            return None if value is None else str(value)
        if name in ("id", "seek"):
            return int(value)
        if name in ("start", "end", "temperature", "avg_logprob", "compression_ratio", "no_speech_prob"):
            return float(value)
        if name == "tokens":
            return [int(t) for t in value]
        if name == "words":
            return _words(value)
        return str(value) if name == "text" else value

    def _shown(self, key: str) -> bool:
        if key == "words":  # once shown, an emptied list stays (openai: "words": [] when none were found)
            return bool(self.words) or dict.__contains__(self, "words")
        return super()._shown(key)

    def to_dict(self, include_words: bool | None = None) -> dict[str, Any]:
        """openai-whisper's segment dict, as a plain ``dict``. ``words`` is included when asked, or by default
        when the segment has the key (see the module's docstring)."""
        data = _plain(self)
        if include_words:
            data.setdefault("words", [])
        elif include_words is False:
            data.pop("words", None)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Segment:
        """Read a segment dict as written by ``to_dict`` or by openai-whisper (statistics are optional)."""
        segment = cls(
            id=data.get("id", 0),
            seek=data.get("seek", 0),
            start=data["start"],
            end=data["end"],
            text=data["text"],
            tokens=data.get("tokens", []),
            temperature=data.get("temperature", 0.0),
            avg_logprob=data.get("avg_logprob", float("nan")),
            compression_ratio=data.get("compression_ratio", float("nan")),
            no_speech_prob=data.get("no_speech_prob", float("nan")),
            words=data.get("words", []),
            speaker=data.get("speaker"),
        )
        if "words" in data:
            dict.__setitem__(segment, "words", segment.words)  # an empty list read keeps its key
        _keep_extra_keys(segment, data)
        return segment


@dataclass(repr=True, eq=True)
class Result(_DictView):
    """A whole transcript: full text, its segments, and the language code (``None`` if unknown).

    ``alignment_score`` (the geometric mean of the word probabilities) says how well the text fits the audio;
    ``low_confidence`` that it is below the threshold of the task that made the result (the text may not be what
    is said). Both are in the dict only when a score was computed (forced alignments, transcriptions with word
    timestamps). ``duration`` (seconds of audio, when known) is not part of openai's dict; TextGrid uses it.
    """

    _KEYS: ClassVar[tuple[str, ...]] = ("text", "segments", "language", "alignment_score", "low_confidence")
    _ABSENT: ClassVar[dict[str, Any]] = {"alignment_score": None, "low_confidence": False}
    _LINKED: ClassVar[dict[str, tuple[str, ...]]] = {"alignment_score": ("alignment_score", "low_confidence")}

    text: str
    segments: list[Segment]
    language: str | None = None
    duration: float | None = None
    alignment_score: float | None = None
    low_confidence: bool = False

    def _convert(self, name: str, value: Any) -> Any:
        if name == "segments":
            segments = value if isinstance(value, list) else list(value)
            if not all(isinstance(s, Segment) for s in segments):
                segments = [s if isinstance(s, Segment) else Segment.from_dict(s) for s in segments]
            _share_words_key(segments)
            return segments
        if name in ("duration", "alignment_score"):
            return None if value is None else float(value)
        if name == "low_confidence":
            return bool(value)
        return str(value) if name == "text" else value

    def _shown(self, key: str) -> bool:
        if key == "low_confidence":  # comes and goes with the score
            return getattr(self, "alignment_score", None) is not None
        return super()._shown(key)

    @property
    def words(self) -> list[Word]:
        """Every word of every segment, in order."""
        return [word for segment in self.segments for word in segment.words]

    @property
    def has_words(self) -> bool:
        """Whether word timestamps are present (then every segment's dict gets a ``words`` key)."""
        return any(segment.words for segment in self.segments)

    def flag_low_probability(self, threshold: float) -> int:
        """Mark the words whose probability is below ``threshold`` (``low_probability``, written to JSON) and
        unmark the others; returns how many are marked. Words without a probability (NaN) are not marked."""
        if not 0.0 <= threshold <= 1.0:
            raise ResultError(f"a probability threshold must be between 0 and 1, got {threshold}")
        for word in self.words:
            word.low_probability = word.probability < threshold
        return sum(word.low_probability for word in self.words)

    def drop_low_probability(self) -> int:
        """Leave out the words marked ``low_probability`` (see :meth:`flag_low_probability`); returns how many.

        A segment that loses words gets its text and span from the words it keeps (its ``tokens`` stay the
        decoder's); a segment left without words goes, and the ids and the result's text follow.
        """
        before = len(self.words)
        kept = []
        for segment in self.segments:
            if not any(word.low_probability for word in segment.words):
                kept.append(segment)
                continue
            segment.words = [word for word in segment.words if not word.low_probability]
            if segment.words:
                segment.text = "".join(word.word for word in segment.words)
                segment.start, segment.end = segment.words[0].start, segment.words[-1].end
                kept.append(segment)
        for number, segment in enumerate(kept):
            segment.id = number
        if len(kept) != len(self.segments) or len(self.words) != before:
            self.segments = kept
            self.text = "".join(segment.text for segment in kept)
        return before - len(self.words)

    def to_dict(self) -> dict[str, Any]:
        """openai-whisper's ``transcribe()`` result dict, as plain ``dict``\\ s and lists (JSON-serialisable)."""
        _share_words_key(self.segments)
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """Read a result dict as written by ``to_dict`` or openai-whisper's ``transcribe()``."""
        segments = [s if isinstance(s, Segment) else Segment.from_dict(s) for s in data.get("segments", [])]
        text = data.get("text")
        if text is None:
            text = "".join(segment.text for segment in segments)
        result = cls(
            text=text,
            segments=segments,
            language=data.get("language"),
            alignment_score=data.get("alignment_score"),
            low_confidence=data.get("low_confidence", False),
        )
        _keep_extra_keys(result, data)
        return result

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


def _share_words_key(segments: list[Segment]) -> None:
    """openai's schema: every segment has a ``words`` key when any has words, none when none has."""
    with_words = any(segment.words for segment in segments)
    for segment in segments:
        if with_words:
            dict.__setitem__(segment, "words", segment.words)
        else:
            dict.pop(segment, "words", None)
