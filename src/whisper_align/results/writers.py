"""Writing a :class:`~whisper_align.results.types.Result` — or an openai-style result dict — as JSON, SRT, WebVTT,
Praat TextGrid, TSV or plain text.

JSON, SRT, VTT, TSV and TXT match openai-whisper's ``whisper.utils`` writers byte for byte on the same result
(including how subtitles are cut into lines and cues by ``max_line_width`` / ``max_line_count`` /
``max_words_per_line``, and VTT's ``highlight_words``), so tools that read openai-whisper's files read ours;
openai-whisper's own writers also take our results as they are (they are its dicts). Where openai's output could
not be read back as meant, ours differs: a line break inside a text becomes a space, WebVTT cue text has no
``-->``, no subtitle cue is empty, overlaps the previous one or lasts less than 1 ms
(:func:`~whisper_align.results.formats.subtitle_cues` says how), and a time that is not a finite number is an
:class:`OutputFormatError` instead of a garbled file.
TextGrid is Praat's long text format with a ``words`` tier (and by default a ``segments`` tier) whose intervals
tile ``[0, duration]``; the silences between words are empty intervals.

Each ``write_<format>(result, file, **options)`` writes to an open text file. :func:`render` returns the text and
:func:`write_result` writes a path (format from its extension) atomically: a temporary file in the same folder,
then ``os.replace``, so a reader never sees half a file. The formats themselves live in
:mod:`whisper_align.results.formats`, which ``Result.render`` / ``Result.write`` use; this module first turns a
dict into a result.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any, TextIO

from ..errors import OutputFormatError
from . import formats
from .formats import Writer, format_for_path, format_timestamp, subtitle_cues
from .types import Result

ResultLike = Result | Mapping[str, Any]


def _as_result(result: ResultLike) -> Result:
    return result if isinstance(result, Result) else Result.from_dict(result)


def _taking_dicts(write: Writer) -> Writer:
    """The writer ``write``, taking an openai-style dict as well as a result."""

    @functools.wraps(write)
    def writer(result: ResultLike, file: TextIO, **options: Any) -> None:
        write(_as_result(result), file, **options)

    return writer


# the formats' writers, each taking a dict too; one table, so a new format needs no second list here
FORMATS: dict[str, Writer] = {name: _taking_dicts(write) for name, write in formats.FORMATS.items()}
write_json = FORMATS["json"]
write_txt = FORMATS["txt"]
write_tsv = FORMATS["tsv"]
write_srt = FORMATS["srt"]
write_vtt = FORMATS["vtt"]
write_textgrid = FORMATS["textgrid"]


def get_writer(fmt: str) -> Writer:
    """The writer function for a format name (``json srt vtt textgrid tsv txt``, any case)."""
    formats.get_writer(fmt)  # the same check, the same error for an unknown name
    return FORMATS[fmt.lower().lstrip(".")]


def render(result: ResultLike, fmt: str, **options: Any) -> str:
    """The result (or an openai-style dict) as text in format ``fmt``."""
    return formats.render(_as_result(result), fmt, **options)


def write_result(result: ResultLike, path: str | os.PathLike[str], **options: Any) -> str:
    """Write ``result`` to ``path`` in the format its extension names, atomically, and return the text written;
    an existing file keeps its permissions (see :func:`whisper_align.results.formats.write_result`)."""
    return formats.write_result(_as_result(result), path, **options)


__all__ = [
    "FORMATS",
    "OutputFormatError",
    "ResultLike",
    "format_for_path",
    "format_timestamp",
    "get_writer",
    "render",
    "subtitle_cues",
    "write_json",
    "write_result",
    "write_srt",
    "write_textgrid",
    "write_tsv",
    "write_txt",
    "write_vtt",
]
