"""Options shared by ``transcribe`` and ``align`` about what is written: subtitle layout and word confidence.

Layout (srt and vtt, with word timestamps): ``--max-line-width``, ``--max-line-count``, ``--max-words-per-line``
and ``--highlight-words``, as openai-whisper's CLI has them (:func:`~whisper_align.results.formats.subtitle_cues`).

Confidence: every word carries its probability (JSON ``"probability"``). ``--min-probability P`` marks the words
below ``P`` (``"low_probability": true`` in JSON; the subtitles are unchanged), and ``--filter-low-probability``
drops the marked words from every format (a segment's text is rebuilt from the words it keeps). Independently,
the tasks warn when the text does not fit the audio (a low ``alignment_score``), and :func:`quality_warnings`
when words collapsed to zero length.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import OutputFormatError
from ..results.types import Result
from .openai_flags import optional_int

# Zero-length words in a share at least this large (and at least COLLAPSE_MIN_WORDS of them) get a warning.
# Measured with tiny.en on timit-dev's 80 clips transcribed one by one (default mode): clips with any zero-length
# word have one (at most 11% of a 9-word clip), while repetition loops put dozens at one instant.
COLLAPSE_SHARE = 0.1
COLLAPSE_MIN_WORDS = 2
LAYOUT_OPTIONS = ("max_line_width", "max_line_count", "max_words_per_line", "highlight_words")


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """The layout and confidence options (see the module docstring)."""
    layout = parser.add_argument_group("subtitles (srt, vtt; need word timestamps)")
    layout.add_argument(
        "--highlight-words", action="store_true", help="underline each word as it is spoken (srt and vtt)"
    )
    layout.add_argument(
        "--max-line-width", type=optional_int, default=None, help="most characters in a line before it breaks"
    )
    layout.add_argument(
        "--max-line-count",
        type=optional_int,
        default=None,
        help="most lines in a cue (with --max-line-width; cues then ignore segment boundaries)",
    )
    layout.add_argument(
        "--max-words-per-line",
        type=optional_int,
        default=None,
        help="most words in a cue (no effect with --max-line-width)",
    )
    confidence = parser.add_argument_group("word confidence")
    confidence.add_argument(
        "--min-probability",
        type=probability,
        default=None,
        metavar="P",
        help='mark words whose probability is below P ("low_probability": true in JSON) and count them on stderr',
    )
    confidence.add_argument(
        "--filter-low-probability",
        action="store_true",
        help="with --min-probability: leave the marked words out of every output (segment texts are rebuilt)",
    )


def check_output_options(args: argparse.Namespace, word_timestamps: bool) -> dict[str, Any]:
    """The writer options asked for, after openai-whisper's checks: layout needs word timestamps (a warning, and
    the option is ignored) and some options do nothing together. ``--filter-low-probability`` without
    ``--min-probability`` is an :class:`OutputFormatError`."""
    if args.filter_low_probability and args.min_probability is None:
        raise OutputFormatError("--filter-low-probability drops the words below --min-probability P: give P too")
    options = {name: getattr(args, name) for name in LAYOUT_OPTIONS}
    if not word_timestamps:
        for name, value in options.items():
            if value:
                warn(f"--{name.replace('_', '-')} needs word timestamps (--word-timestamps); ignoring it")
        return {"highlight_words": False}
    if options["max_line_count"] and not options["max_line_width"]:
        warn("--max-line-count has no effect without --max-line-width")
    if options["max_words_per_line"] and options["max_line_width"]:
        warn("--max-words-per-line has no effect with --max-line-width")
    return options


def reject_with_manifest(args: argparse.Namespace) -> None:
    """:class:`OutputFormatError` for layout or confidence options given with ``align --manifest``, whose JSON
    lines have neither (they would be ignored without a word)."""
    given = [name for name in (*LAYOUT_OPTIONS, "min_probability", "filter_low_probability") if getattr(args, name)]
    if given:
        names = ", ".join("--" + name.replace("_", "-") for name in given)
        raise OutputFormatError(f"{names} do(es) not apply to --manifest runs (JSON lines); align one file for them")


def apply_confidence(result: Result, args: argparse.Namespace) -> None:
    """Mark (and with ``--filter-low-probability`` drop) the words below ``--min-probability``, saying how many."""
    if args.min_probability is None:
        return
    total = len(result.words)
    marked = result.flag_low_probability(args.min_probability)
    if args.filter_low_probability:
        result.drop_low_probability()
        note(f"{marked} of {total} words below probability {args.min_probability:g} left out")
    else:
        note(f'{marked} of {total} words below probability {args.min_probability:g} marked "low_probability"')


def quality_warnings(result: Result) -> list[str]:
    """Warnings about a result whose words collapsed to zero length (the low alignment score has its own, from
    the task that made the result)."""
    messages = []
    words = [w for w in result.words if not w.past_end]
    collapsed = [w for w in words if w.end <= w.start]
    if len(collapsed) >= COLLAPSE_MIN_WORDS and len(collapsed) >= COLLAPSE_SHARE * len(words):
        shown = ", ".join(f"{w.word.strip()!r} at {w.start:.2f} s" for w in collapsed[:4])
        more = f" and {len(collapsed) - 4} more" if len(collapsed) > 4 else ""
        messages.append(
            f"{len(collapsed)} of {len(words)} words collapsed to zero length ({shown}{more}): their times are "
            "guesses, often from repeated or misheard text"
        )
    return messages


def warn(message: str) -> None:
    print(f"whisper-align: warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    print(f"whisper-align: {message}", file=sys.stderr)


__all__ = [
    "add_output_options",
    "apply_confidence",
    "check_output_options",
    "quality_warnings",
    "reject_with_manifest",
]
