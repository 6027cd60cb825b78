"""The text formats of a :class:`~whisper_align.results.types.Result`: JSON, SRT, WebVTT, Praat TextGrid, TSV, text.

This module works on result objects only and imports nothing of the results but their type names, so
``Result.render`` / ``Result.write`` can use it; :mod:`whisper_align.results.writers` is the public door that also
takes openai-style dicts.

What each format guarantees (byte-for-byte openai-whisper for JSON, SRT, VTT, TSV, TXT; Praat's long TextGrid
format) is described in :mod:`whisper_align.results.writers`.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import OutputFormatError
from ..files import replacing

if TYPE_CHECKING:
    from .types import Result, Word


# ---------------------------------------------------------------------------------------------------------------
# timestamps


def format_timestamp(seconds: float, always_include_hours: bool = False, decimal_marker: str = ".") -> str:
    """``[HH:]MM:SS.mmm`` as openai-whisper prints it (hours only when non-zero unless asked; SRT uses ``,``)."""
    total_ms = round(seconds * 1000.0)
    if total_ms < 0:
        raise OutputFormatError(
            f"cannot format a negative timestamp ({seconds} s); word and segment times must be >= 0"
        )
    return _format_ms(total_ms, always_include_hours, decimal_marker)


def _format_ms(total_ms: int, always_include_hours: bool, decimal_marker: str) -> str:
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1_000)
    hours_part = f"{hours:02d}:" if always_include_hours or hours > 0 else ""
    return f"{hours_part}{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _check_times(result: Result) -> None:
    """:class:`OutputFormatError` unless every segment and word time is a finite number."""
    spans = [(f"segment {s.id}", s.start, s.end) for s in result.segments]
    spans += [(f"word {w.word!r}", w.start, w.end) for w in result.words]
    for what, start, end in spans:
        if not (math.isfinite(start) and math.isfinite(end)):
            raise OutputFormatError(
                f"{what} has a time that is not a finite number ({start} to {end} s); "
                "give it a start and end in seconds before writing the result"
            )


def _one_line(text: str) -> str:
    """``text`` with its line breaks turned into spaces: a word or segment must not break a row or a cue."""
    return " ".join(part for part in text.splitlines() if part)


# ---------------------------------------------------------------------------------------------------------------
# plain writers


def write_json(
    result: Result, file: TextIO, *, indent: int | None = None, ensure_ascii: bool = True, **options: Any
) -> None:
    """openai-whisper's result dict as JSON (``indent`` pretty-prints)."""
    _check_options(options)
    json.dump(result.to_dict(), file, indent=indent, ensure_ascii=ensure_ascii)


def write_txt(result: Result, file: TextIO, **options: Any) -> None:
    """One line per segment: its text without surrounding spaces."""
    _check_options(options)
    for segment in result.segments:
        file.write(_one_line(segment.text).strip() + "\n")


def write_tsv(result: Result, file: TextIO, *, word_level: bool = False, **options: Any) -> None:
    """``start<TAB>end<TAB>text`` rows with integer milliseconds, after a header row. One row per segment as
    openai-whisper writes, or one per word with ``word_level=True``."""
    _check_options(options)
    _check_times(result)
    rows = (
        [(w.start, w.end, w.word) for w in result.words]
        if word_level
        else [(s.start, s.end, s.text) for s in result.segments]
    )
    file.write("start\tend\ttext\n")
    for start, end, text in rows:
        file.write(f"{round(1000 * start)}\t{round(1000 * end)}\t{_one_line(text).strip().replace(chr(9), ' ')}\n")


# ---------------------------------------------------------------------------------------------------------------
# subtitles


def write_srt(
    result: Result,
    file: TextIO,
    *,
    max_line_width: int | None = None,
    max_line_count: int | None = None,
    max_words_per_line: int | None = None,
    highlight_words: bool = False,
    **options: Any,
) -> None:
    """SubRip: numbered cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm``. See :func:`subtitle_cues` for the options."""
    _check_options(options)
    cues = subtitle_cues(
        result,
        always_include_hours=True,
        decimal_marker=",",
        max_line_width=max_line_width,
        max_line_count=max_line_count,
        max_words_per_line=max_words_per_line,
        highlight_words=highlight_words,
    )
    for number, (start, end, text) in enumerate(cues, start=1):
        file.write(f"{number}\n{start} --> {end}\n{text}\n\n")


def write_vtt(
    result: Result,
    file: TextIO,
    *,
    max_line_width: int | None = None,
    max_line_count: int | None = None,
    max_words_per_line: int | None = None,
    highlight_words: bool = False,
    **options: Any,
) -> None:
    """WebVTT: a ``WEBVTT`` header then cues ``[HH:]MM:SS.mmm --> ...``. See :func:`subtitle_cues`. A cue's text
    never holds ``-->`` (WebVTT forbids it there; readers take the line for a timing line): it is written ``->``,
    as openai-whisper writes it in segment cues."""
    _check_options(options)
    file.write("WEBVTT\n\n")
    cues = subtitle_cues(
        result,
        always_include_hours=False,
        decimal_marker=".",
        max_line_width=max_line_width,
        max_line_count=max_line_count,
        max_words_per_line=max_words_per_line,
        highlight_words=highlight_words,
    )
    for start, end, text in cues:
        file.write(f"{start} --> {end}\n{text.replace('-->', '->')}\n\n")


def subtitle_cues(
    result: Result,
    *,
    always_include_hours: bool,
    decimal_marker: str,
    max_line_width: int | None = None,
    max_line_count: int | None = None,
    max_words_per_line: int | None = None,
    highlight_words: bool = False,
) -> Iterator[tuple[str, str, str]]:
    """(start, end, text) of each subtitle cue, following openai-whisper's ``SubtitlesWriter``.

    Without word timestamps each segment is one cue spanning the segment. With them, a cue spans its first word's
    start to its last word's end, and:

    - by default each segment is one cue; ``max_words_per_line`` cuts a segment into cues of that many words;
      ``max_line_width`` (characters) wraps a cue's text onto new lines;
    - with both ``max_line_width`` and ``max_line_count``, cues ignore segment boundaries: words flow into lines of
      at most that width, a cue holds at most that many lines, and a pause over 3 s starts a new cue;
    - ``highlight_words`` repeats each cue once per word with that word in ``<u>...</u>``, timed to the word (and
      the un-highlighted cue fills any gap between words).

    When speakers were assigned (``assign_speakers``), each cue starts with its speaker as ``[SPEAKER_00] ``: the
    segment's, or the one holding most of the cue's words' time.

    Every cue can be read back as it was meant, which openai-whisper's writers do not promise for every input
    (they agree byte for byte wherever theirs can): a line break inside a word or segment text becomes a space,
    a cue has no blank line and no cue is empty (an emptied segment gives none), and cues follow one another:
    each starts no earlier than the one before ends and lasts at least 1 ms (a zero-length word's cue gets
    1 ms, later cues moving by as much if they would overlap it). Times must be finite (:class:`OutputFormatError`).
    """
    _check_times(result)
    for start_ms, end_ms, text in _in_sequence(
        _timed_cues(result, max_line_width, max_line_count, max_words_per_line, highlight_words)
    ):
        yield (
            _format_ms(start_ms, always_include_hours, decimal_marker),
            _format_ms(end_ms, always_include_hours, decimal_marker),
            text,
        )


def _timed_cues(
    result: Result,
    max_line_width: int | None,
    max_line_count: int | None,
    max_words_per_line: int | None,
    highlight_words: bool,
) -> Iterator[tuple[int, int, str]]:
    """The cues in integer milliseconds as openai-whisper cuts them, without empty lines or empty cues."""
    if not result.has_words:
        for segment in result.segments:
            text = _one_line(segment.text).strip()
            if text:
                label = f"[{segment.speaker}] " if segment.speaker is not None else ""
                yield _ms(segment.start), _ms(segment.end), (label + text).replace("-->", "->")
        return

    words = iter(result.words)
    for cue in _word_cues(result, max_line_width, max_line_count, max_words_per_line):
        label = _speaker_label([next(words) for _ in cue])
        cue_text = _without_blank_lines("".join(text for text, _, _ in cue))
        if not cue_text.strip():
            continue
        cue_text = label + cue_text
        if not highlight_words:
            yield _ms(cue[0][1]), _ms(cue[-1][2]), cue_text
            continue
        previous_end = _ms(cue[0][1])
        for index, (_, start, end) in enumerate(cue):
            if _ms(start) > previous_end:  # the plain cue fills the gap before this word
                yield previous_end, _ms(start), cue_text
            underlined = "".join(_underline(text) if other == index else text for other, (text, _, _) in enumerate(cue))
            yield _ms(start), _ms(end), label + _without_blank_lines(underlined)
            previous_end = max(previous_end, _ms(end))


def _in_sequence(cues: Iterator[tuple[int, int, str]]) -> Iterator[tuple[int, int, str]]:
    """Cues that follow one another: each starts at or after the previous one's end (and at or after 0) and
    lasts at least 1 ms."""
    previous_end = 0
    for start, end, text in cues:
        start = max(start, previous_end)
        end = max(end, start + 1)
        yield start, end, text
        previous_end = end


def _speaker_label(words: list[Word]) -> str:
    """``"[NAME] "`` for the speaker holding most of ``words``' time, or ``""`` when they have no speakers."""
    time: dict[str, float] = {}
    for word in words:
        if word.speaker is not None:
            time[word.speaker] = time.get(word.speaker, 0.0) + max(word.end - word.start, 1e-6)
    return f"[{max(time, key=lambda name: time[name])}] " if time else ""


def _ms(seconds: float) -> int:
    return round(seconds * 1000.0)


def _without_blank_lines(text: str) -> str:
    if "\n" not in text:
        return text
    return "\n".join(line for line in text.split("\n") if line.strip())


def _underline(text: str) -> str:
    body = text.lstrip()
    return text[: len(text) - len(body)] + f"<u>{body}</u>"


def _word_cues(
    result: Result, max_line_width: int | None, max_line_count: int | None, max_words_per_line: int | None
) -> list[list[tuple[str, float, float]]]:
    """Group the words into cues of ``(text, start, end)``; a text starting with ``\\n`` begins a new line."""
    keep_segments = max_line_count is None or max_line_width is None
    width = max_line_width or 1000
    words_per_chunk = max_words_per_line or 1000

    cues: list[list[tuple[str, float, float]]] = []
    cue: list[tuple[str, float, float]] = []
    line_len, line_count = 0, 1
    last_start = result.words[0].start  # callers only come here when there are words
    for segment in result.segments:
        for chunk_start in range(0, len(segment.words), words_per_chunk):
            chunk = segment.words[chunk_start : chunk_start + words_per_chunk]
            for position, word in enumerate(chunk):
                text = _one_line(word.word)
                long_pause = not keep_segments and word.start - last_start > 3.0
                fits = line_len + len(text) <= width
                starts_chunk = position == 0 and bool(cue) and keep_segments
                if line_len > 0 and fits and not long_pause and not starts_chunk:
                    line_len += len(text)  # same line
                else:
                    text = text.strip()
                    new_cue = bool(cue) and max_line_count is not None and (long_pause or line_count >= max_line_count)
                    if new_cue or starts_chunk:
                        cues.append(cue)
                        cue, line_count = [], 1
                    elif line_len > 0:
                        line_count += 1
                        text = "\n" + text
                    line_len = len(text.strip())
                cue.append((text, word.start, word.end))
                last_start = word.start
    if cue:
        cues.append(cue)
    return cues


# ---------------------------------------------------------------------------------------------------------------
# Praat TextGrid

_MIN_INTERVAL = 0.001  # Praat needs positive-length intervals; a zero-length word is widened to 1 ms


def write_textgrid(
    result: Result, file: TextIO, *, duration: float | None = None, segments_tier: bool = True, **options: Any
) -> None:
    """Praat TextGrid (long text format) with a ``words`` tier and, unless ``segments_tier=False``, a
    ``segments`` tier.

    Intervals tile ``[0, xmax]``: gaps between words become empty intervals. ``xmax`` is ``duration`` (pass the
    audio's length) or, if that is shorter or not given, the last word/segment end. Times are written to the
    microsecond. Since an IntervalTier cannot overlap, a word starting before the previous one ends is clipped to
    start at that end, and a word left with no length is widened to 1 ms (pushing later words if needed).
    """
    _check_options(options)
    _check_times(result)
    res = result
    tiers = {"words": _tier_intervals([(_one_line(w.word).strip(), w.start, w.end) for w in res.words])}
    if segments_tier:
        tiers["segments"] = _tier_intervals([(_one_line(s.text).strip(), s.start, s.end) for s in res.segments])
    if duration is None:
        duration = res.duration
    xmax = max([_us(duration or 0.0)] + [intervals[-1][1] for intervals in tiers.values() if intervals])
    if xmax <= 0:
        xmax = _MIN_INTERVAL  # an empty result still needs a valid grid
    for intervals in tiers.values():
        end = intervals[-1][1] if intervals else 0.0
        if end < xmax:
            intervals.append((end, xmax, ""))

    lines = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        "xmin = 0 ",
        f"xmax = {_num(xmax)} ",
        "tiers? <exists> ",
        f"size = {len(tiers)} ",
        "item []: ",
    ]
    for tier_number, (name, intervals) in enumerate(tiers.items(), start=1):
        lines += [
            f"    item [{tier_number}]:",
            '        class = "IntervalTier" ',
            f"        name = {_quote(name)} ",
            "        xmin = 0 ",
            f"        xmax = {_num(xmax)} ",
            f"        intervals: size = {len(intervals)} ",
        ]
        for number, (start, end, text) in enumerate(intervals, start=1):
            lines += [
                f"        intervals [{number}]:",
                f"            xmin = {_num(start)} ",
                f"            xmax = {_num(end)} ",
                f"            text = {_quote(text)} ",
            ]
    file.write("\n".join(lines) + "\n")


def _tier_intervals(spans: list[tuple[str, float, float]]) -> list[tuple[float, float, str]]:
    """Non-overlapping positive-length intervals from ``spans``, with empty intervals in the gaps, from 0 to the
    last span's end (times rounded to the microsecond so that the written numbers meet exactly)."""
    intervals: list[tuple[float, float, str]] = []
    cursor = 0.0
    for text, start, end in spans:
        start = max(_us(start), cursor)
        end = max(_us(end), _us(start + _MIN_INTERVAL))
        if start > cursor:
            intervals.append((cursor, start, ""))
        intervals.append((start, end, text))
        cursor = end
    return intervals


def _us(seconds: float) -> float:
    return round(float(seconds), 6)


def _num(seconds: float) -> str:
    text = f"{seconds:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


# ---------------------------------------------------------------------------------------------------------------
# dispatch

Writer = Callable[..., None]

FORMATS: dict[str, Writer] = {
    "json": write_json,
    "srt": write_srt,
    "vtt": write_vtt,
    "textgrid": write_textgrid,
    "tsv": write_tsv,
    "txt": write_txt,
}

# Every writer accepts (and ignores) the options of the others, so one option set can serve several formats.
_ALL_OPTIONS = frozenset(
    {
        "indent",
        "ensure_ascii",
        "word_level",
        "max_line_width",
        "max_line_count",
        "max_words_per_line",
        "highlight_words",
        "duration",
        "segments_tier",
    }
)


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - _ALL_OPTIONS)
    if unknown:
        raise OutputFormatError(f"unknown writer option(s) {unknown}; known options: {sorted(_ALL_OPTIONS)}")


def get_writer(fmt: str) -> Writer:
    """The writer function for a format name (``json srt vtt textgrid tsv txt``, any case)."""
    try:
        return FORMATS[fmt.lower().lstrip(".")]
    except KeyError:
        raise OutputFormatError(f"unknown output format {fmt!r}; choose one of {sorted(FORMATS)}") from None


def format_for_path(path: str | os.PathLike[str]) -> str:
    """The format name that a path's extension selects (``talk.TextGrid`` -> ``"textgrid"``)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise OutputFormatError(
            f"cannot tell the output format of {os.fspath(path)!r} from its extension; "
            f"use one of {', '.join('.' + name if name != 'textgrid' else '.TextGrid' for name in FORMATS)}"
        )
    return suffix


def render(result: Result, fmt: str, **options: Any) -> str:
    """The result as text in format ``fmt``."""
    buffer = io.StringIO()
    get_writer(fmt)(result, buffer, **options)
    return buffer.getvalue()


def write_result(result: Result, path: str | os.PathLike[str], **options: Any) -> str:
    """Write ``result`` to ``path`` in the format its extension names, atomically, and return the text written.

    The text goes to a temporary file in the same folder, which then replaces ``path`` in one step; an existing
    file keeps its permissions, a new one gets what ``open()`` would give it.
    """
    path = Path(path)
    text = render(result, format_for_path(path), **options)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {os.fspath(path)!r}: folder {os.fspath(folder)!r} does not exist")
    with replacing(path) as temp:
        with open(temp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    return text
