"""Speakers from a diarization, put on a result's words and segments.

A diarization is a list of turns ``(start, end, speaker)`` in seconds, from any tool, or an RTTM file (what
pyannote and most diarization tools write): one turn a line,
``SPEAKER <recording> <channel> <start> <duration> <NA> <NA> <speaker> <NA> <NA>``.

Each word gets the speaker whose turns overlap it longest; a word no turn overlaps (a pause in the diarization)
gets the speaker of the nearest turn, and a zero-length word the speaker of a turn containing it. Each segment
gets the speaker who holds most of its words' time (by count when its words have no length); a segment without
words is treated like a word. Diarization turns may overlap (two people talking at once): the longer overlap wins.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np

from ..errors import PostprocessError
from .types import Result, Segment, Word

R = TypeVar("R", bound=Result)

_RTTM_FORM = "SPEAKER <recording> <channel> <start> <duration> <NA> <NA> <speaker> <NA> <NA>"


class SpeakerTurn(NamedTuple):
    """One stretch of a diarization: ``speaker`` talks from ``start`` to ``end`` (seconds)."""

    start: float
    end: float
    speaker: str


# ---- reading turns -----------------------------------------------------------------------------------------------


def _rttm_turn(fields: list[str], where: str) -> tuple[str, SpeakerTurn]:
    if len(fields) < 8:
        raise PostprocessError(f"{where}: {len(fields)} fields, an RTTM speaker line has 10: {_RTTM_FORM}")
    try:
        start, duration = float(fields[3]), float(fields[4])
    except ValueError:
        raise PostprocessError(
            f"{where}: start {fields[3]!r} and duration {fields[4]!r} must be numbers of seconds ({_RTTM_FORM})"
        ) from None
    if not (math.isfinite(start) and math.isfinite(duration)) or start < 0 or duration < 0:
        raise PostprocessError(f"{where}: start {start} and duration {duration} must be finite and not negative")
    return fields[1], SpeakerTurn(start, start + duration, fields[7])


def parse_rttm(text: str, source: str = "RTTM") -> dict[str, list[SpeakerTurn]]:
    """The speaker turns of RTTM ``text``, by recording id, each list sorted by start.

    Blank lines and comments (``#`` or ``;;``) are skipped, and so are records of other types (RTTM's older
    ``SPKR-INFO``, ``LEXEME``...); a SPEAKER line that cannot be read is a :class:`PostprocessError` naming
    ``source`` and the line number.
    """
    recordings: dict[str, list[SpeakerTurn]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";;")) or fields[0].upper() != "SPEAKER":
            continue
        recording, turn = _rttm_turn(fields, f"{source} line {number}")
        recordings.setdefault(recording, []).append(turn)
    if not recordings:
        raise PostprocessError(f"{source} has no SPEAKER lines; each turn is a line '{_RTTM_FORM}'")
    return {name: sorted(turns) for name, turns in recordings.items()}


def read_rttm(path: str | os.PathLike[str], recording: str | None = None) -> list[SpeakerTurn]:
    """The turns of one recording in an RTTM file.

    ``recording`` picks it when the file holds several (their ids are the second field, usually the audio file's
    name without extension); a file of one recording needs none.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PostprocessError(f"cannot read the RTTM file {os.fspath(path)!r}: {exc}") from exc
    recordings = parse_rttm(text, os.fspath(path))
    if recording is not None and recording in recordings:
        return recordings[recording]
    if len(recordings) == 1 and recording is None:
        return next(iter(recordings.values()))
    raise PostprocessError(
        f"{os.fspath(path)} holds recordings {sorted(recordings)[:10]}; "
        + (f"none is {recording!r}" if recording is not None else "say which one")
        + " (the id is the second field of each line)"
    )


def as_turns(turns: Iterable[Sequence[object]]) -> list[SpeakerTurn]:
    """``(start, end, speaker)`` items as sorted :class:`SpeakerTurn` s, each checked (numbers, start <= end)."""
    checked = []
    for index, item in enumerate(turns):
        try:
            start, end, speaker = item
            start, end = float(start), float(end)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise PostprocessError(f"speaker turn {index} is {item!r:.60}; give (start, end, speaker)") from None
        if not (math.isfinite(start) and math.isfinite(end)) or not 0 <= start <= end:
            raise PostprocessError(f"speaker turn {index} runs from {start} to {end}; need 0 <= start <= end")
        checked.append(SpeakerTurn(start, end, str(speaker)))
    if not checked:
        raise PostprocessError("no speaker turns given; give (start, end, speaker) items or an RTTM file")
    return sorted(checked)


# ---- assigning -----------------------------------------------------------------------------------------------------


class _Turns:
    """The turns as arrays, for overlap and distance queries."""

    def __init__(self, turns: list[SpeakerTurn]):
        self.starts = np.array([t.start for t in turns])
        self.ends = np.array([t.end for t in turns])
        self.names = sorted({t.speaker for t in turns})
        self.index = np.array([self.names.index(t.speaker) for t in turns])

    def speaker_of(self, start: float, end: float) -> str:
        """Longest total overlap; for a zero-length span, a turn containing it; else the nearest turn."""
        if end > start:
            overlap = np.clip(np.minimum(end, self.ends) - np.maximum(start, self.starts), 0.0, None)
        else:
            overlap = ((self.starts <= start) & (start <= self.ends)).astype(float)
        per_speaker = np.bincount(self.index, weights=overlap, minlength=len(self.names))
        if per_speaker.max() > 0:
            return self.names[int(per_speaker.argmax())]
        distance = np.maximum(self.starts - end, 0.0) + np.maximum(start - self.ends, 0.0)
        return self.names[int(self.index[int(distance.argmin())])]


def majority_speaker(words: Sequence[Word]) -> str | None:
    """The speaker who holds most of ``words``' time (by count if they have none); None if none has a speaker."""
    time: dict[str, float] = {}
    count: dict[str, int] = {}
    for word in words:
        if word.speaker is not None:
            time[word.speaker] = time.get(word.speaker, 0.0) + max(word.end - word.start, 0.0)
            count[word.speaker] = count.get(word.speaker, 0) + 1
    if not count:
        return None
    totals = time if any(time.values()) else count
    return max(totals, key=lambda name: totals[name])  # first among equals: the order words name them


def assign_speakers(
    result: R, turns: str | os.PathLike[str] | Iterable[Sequence[object]], *, recording: str | None = None
) -> R:
    """A copy of ``result`` with a ``speaker`` on every word and segment, from ``turns``: an RTTM file (with
    ``recording`` to pick one of several) or ``(start, end, speaker)`` items."""
    if isinstance(turns, (str, os.PathLike)):
        listed = read_rttm(turns, recording)
    else:
        listed = as_turns(turns)
    table = _Turns(listed)
    segments: list[Segment] = []
    for segment in result.segments:
        words = [dataclasses.replace(w, speaker=table.speaker_of(w.start, w.end)) for w in segment.words]
        speaker = majority_speaker(words) if words else table.speaker_of(segment.start, segment.end)
        segments.append(dataclasses.replace(segment, words=words, speaker=speaker))
    return dataclasses.replace(result, segments=segments)


__all__ = ["SpeakerTurn", "as_turns", "assign_speakers", "majority_speaker", "parse_rttm", "read_rttm"]
