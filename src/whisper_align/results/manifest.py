"""Manifests: JSON lines of ``{"id", "audio", "text"}`` (labelled ones add ``"words"``), read strictly for
evaluation and head discovery, or leniently for a corpus run, where a bad line becomes a reported problem.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from .evaluation import TimedWord


@dataclass
class Utterance:
    """One manifest line: id, absolute audio path, transcript and, when labelled, reference word times."""

    id: str
    audio: Path
    text: str
    words: list[TimedWord] | None = None
    speaker: str | None = None
    duration: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


_REQUIRED = ("id", "audio", "text")
_KNOWN = set(_REQUIRED) | {"words", "speaker", "duration"}


@dataclass
class ManifestProblem:
    """A manifest line that cannot be used, as :func:`scan_manifest` reports it instead of raising.

    ``message`` names the file and the line; ``id`` is the line's id when one could be read (it may still be
    another line's id too: a repeated id is itself a problem), else None.
    """

    line: int
    message: str
    id: str | None = None


def load_manifest(path: str | os.PathLike[str], *, check_audio: bool = False) -> list[Utterance]:
    """Read a JSON-lines manifest: one object a line with ``id``, ``audio`` (a path relative to the manifest's
    folder, or absolute) and ``text``; optionally ``words`` (``[{"word", "start", "end"}]``, seconds),
    ``speaker`` and ``duration``; other fields land in ``extra``. Blank lines are skipped.

    Strict: raises :class:`ManifestError` naming the file and line for a missing file, text that is not UTF-8,
    bad JSON, a missing or mistyped field, a word with bad times, a repeated id, no utterances at all, or (with
    ``check_audio``) a missing audio file. (:func:`scan_manifest` reports bad lines instead of raising.)
    """
    utterances: list[Utterance] = []
    for number, item in _scan(Path(path)):
        if isinstance(item, ManifestProblem):
            raise ManifestError(item.message)
        if check_audio and not item.audio.is_file():
            where = f"{os.fspath(path)}, line {number}"
            raise ManifestError(f"{where}: audio file {os.fspath(item.audio)!r} does not exist")
        utterances.append(item)
    if not utterances:
        raise ManifestError(f"manifest {os.fspath(path)!r} holds no utterances")
    return utterances


def scan_manifest(path: str | os.PathLike[str], *, text_required: bool = True) -> list[Utterance | ManifestProblem]:
    """Every non-blank line of a manifest in file order: an :class:`Utterance`, or a :class:`ManifestProblem`
    for a line that :func:`load_manifest` would reject (including the second line of a repeated id).

    Lenient, for corpus runs that align the good lines and report the bad ones; raises :class:`ManifestError`
    only when the file itself cannot be read. Audio files are not checked. Without ``text_required`` (manifests
    to transcribe) a line may leave out ``text``; its utterance then has ``text=""``.
    """
    return [item for _, item in _scan(Path(path), text_required)]


def _scan(manifest: Path, text_required: bool = True) -> Iterator[tuple[int, Utterance | ManifestProblem]]:
    """(line number, utterance or problem) of each non-blank line; bytes are decoded per line, so that a line
    that is not UTF-8 is one problem with its number."""
    if not manifest.is_file():
        raise ManifestError(f"manifest {os.fspath(manifest)!r} does not exist or is not a file")
    folder = Path(os.path.abspath(manifest.parent))
    first_line: dict[str, int] = {}
    try:
        with open(manifest, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                where = f"{os.fspath(manifest)}, line {number}"
                try:
                    utterance = _utterance(_parse_line(raw, number, where), folder, where, text_required)
                except ManifestError as error:
                    yield number, ManifestProblem(number, str(error), _readable_id(raw))
                    continue
                if utterance.id in first_line:
                    message = f"{where}: id {utterance.id!r} already used on line {first_line[utterance.id]}"
                    yield number, ManifestProblem(number, message, utterance.id)
                    continue
                first_line[utterance.id] = number
                yield number, utterance
    except OSError as error:
        raise ManifestError(f"cannot read the manifest {os.fspath(manifest)!r}: {error.strerror}") from error


def _parse_line(raw: bytes, number: int, where: str) -> Any:
    """One manifest line's JSON value; a byte-order mark on the first line is allowed."""
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        raise ManifestError(
            f"{where}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column {error.start + 1}); "
            "save the manifest as UTF-8"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None


def _readable_id(raw: bytes) -> str | None:
    """The id of a rejected line when it can still be read (undecodable bytes elsewhere in the line are tolerated)."""
    try:
        entry = json.loads(raw.decode("utf-8", errors="replace").lstrip("\ufeff"))
    except json.JSONDecodeError:
        return None
    value = entry.get("id") if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value)
    return text if text and "\ufffd" not in text else None


def _utterance(entry: Any, folder: Path, where: str, text_required: bool = True) -> Utterance:
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    required = _REQUIRED if text_required else _REQUIRED[:2]
    for name in required:
        if name not in entry:
            raise ManifestError(f"{where}: missing required field {name!r} (each line needs {', '.join(required)})")
    if not isinstance(entry["id"], (str, int)) or isinstance(entry["id"], bool):
        raise ManifestError(f"{where}: field 'id' must be a string, got {entry['id']!r}")
    for name in ("audio", "text"):
        if name in entry and not isinstance(entry[name], str):
            raise ManifestError(f"{where}: field {name!r} must be a string, got {entry[name]!r}")
    if not entry["audio"]:
        raise ManifestError(f"{where}: field 'audio' is empty")

    words = None
    if entry.get("words") is not None:
        if not isinstance(entry["words"], list):
            raise ManifestError(f"{where}: field 'words' must be a list of {{word, start, end}} objects")
        words = [_word(item, k, where) for k, item in enumerate(entry["words"])]

    speaker = entry.get("speaker")
    duration = entry.get("duration")
    if duration is not None and (not _is_number(duration) or duration < 0):
        raise ManifestError(f"{where}: field 'duration' must be a non-negative number, got {duration!r}")
    return Utterance(
        id=str(entry["id"]),
        audio=Path(os.path.normpath(folder / entry["audio"])),
        text=entry.get("text", ""),
        words=words,
        speaker=None if speaker is None else str(speaker),
        duration=None if duration is None else float(duration),
        extra={key: value for key, value in entry.items() if key not in _KNOWN},
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _word(item: Any, index: int, where: str) -> TimedWord:
    label = f"{where}: words[{index}]"
    if not isinstance(item, dict):
        raise ManifestError(f"{label} must be an object with word, start, end; got {item!r}")
    for name in ("word", "start", "end"):
        if name not in item:
            raise ManifestError(f"{label} lacks {name!r}")
    if not isinstance(item["word"], str):
        raise ManifestError(f"{label}: 'word' must be a string, got {item['word']!r}")
    start, end = item["start"], item["end"]
    if not (_is_number(start) and _is_number(end)) or start < 0 or end < start:
        raise ManifestError(f"{label} ({item['word']!r}): need numbers 0 <= start <= end, got {start!r}, {end!r}")
    return item["word"], float(start), float(end)
