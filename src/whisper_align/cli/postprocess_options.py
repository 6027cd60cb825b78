"""Options shared by ``transcribe`` and ``align`` for what happens around the decoding: ``--vad`` (voice-activity
detection), ``--speakers RTTM`` (speaker per word and segment) and ``--regroup`` (segments rebuilt from the words).

``add_arguments(parser)`` adds them; ``transcriber(args)`` is the transcription function to call (it decodes only
the speech with ``--vad``); ``apply(result, args, audio)`` does the rest in order: words moved out of silence
(``align --vad``), speakers, then regrouping (which splits where the speaker changes).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import PostprocessError

_REGROUP_FLAGS = ("regroup_max_gap", "regroup_max_words", "regroup_max_chars", "regroup_min_words")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--vad``, ``--speakers`` and ``--regroup*`` options to ``parser``."""
    from ..frontend.vad import METHODS

    group = parser.add_argument_group("voice activity, speakers and regrouping")
    group.add_argument(
        "--vad",
        action="store_true",
        help="voice-activity detection: transcribe decodes only the speech (long audio cut at pauses) and keeps "
        "words out of silence; align ends words where speech ends",
    )
    group.add_argument(
        "--vad-method", choices=METHODS, default="auto", help="auto: Silero when installed, else energy (default)"
    )
    group.add_argument(
        "--speakers",
        metavar="RTTM",
        help="diarization (RTTM file): put a speaker on each word and segment; srt/vtt show it as [SPEAKER] text",
    )
    group.add_argument(
        "--regroup",
        action="store_true",
        help="rebuild segments from the words: split at pauses, sentence ends and speaker changes (needs word "
        "times); any --regroup-* option implies it",
    )
    group.add_argument("--regroup-max-gap", type=float, metavar="S", help="split at pauses of S seconds (0.5)")
    group.add_argument("--regroup-max-words", type=int, metavar="N", help="at most N words a segment")
    group.add_argument("--regroup-max-chars", type=int, metavar="N", help="at most N characters a segment")
    group.add_argument("--regroup-min-words", type=int, metavar="N", help="join segments of fewer than N words")


def _vad_options(args: argparse.Namespace) -> Any:
    from ..frontend.vad import VadOptions

    return VadOptions(method=args.vad_method)


def _regrouping(args: argparse.Namespace) -> bool:
    return bool(args.regroup) or any(getattr(args, name) is not None for name in _REGROUP_FLAGS)


def transcriber(args: argparse.Namespace) -> Callable[..., Any]:
    """The transcription function for these options: ``transcribe``, or ``transcribe_speech`` with ``--vad``.

    Options that cannot work are refused here, before any decoding: ``--regroup`` without
    ``--word-timestamps``, ``--vad`` with ``--clip-timestamps``.
    """
    if _regrouping(args) and not args.word_timestamps:
        raise PostprocessError("--regroup rebuilds segments from word times; add --word-timestamps")
    if not args.vad:
        from ..tasks.transcribe import transcribe

        return transcribe
    if args.clip_timestamps not in ("0", ""):
        raise PostprocessError("--vad chooses the parts to decode itself; drop --clip-timestamps")
    from ..tasks.speech import transcribe_speech

    return functools.partial(transcribe_speech, vad=_vad_options(args))


def check(args: argparse.Namespace) -> None:
    """Refuse these options where they do not apply (``align --manifest``) instead of ignoring them."""
    if getattr(args, "manifest", None) and (args.vad or args.speakers or _regrouping(args)):
        raise PostprocessError("--vad, --speakers and --regroup work on one AUDIO, not with --manifest")


def _speaker_turns(path: str, audio: str, args: argparse.Namespace) -> Any:
    """The RTTM's turns for ``audio``: its recording named like the audio file, or its only recording (then
    only when one audio file is processed, so that several files never get one file's speakers)."""
    from ..results.speakers import parse_rttm

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PostprocessError(f"cannot read the RTTM file {path!r}: {exc}") from exc
    recordings = parse_rttm(text, path)
    stem = Path(audio).stem
    if stem in recordings:
        return recordings[stem]
    several_inputs = isinstance(args.audio, list) and len(args.audio) > 1
    if len(recordings) == 1 and not several_inputs:
        return next(iter(recordings.values()))
    raise PostprocessError(
        f"{path} has no recording {stem!r} (it has {sorted(recordings)[:10]}); with several recordings or several "
        "audio files, each recording id (the second field of an RTTM line) must be its audio file's name"
    )


def apply(result: Any, args: argparse.Namespace, audio: str, *, vad_done: bool = False) -> Any:
    """``result`` after ``--vad`` (unless ``vad_done``: the transcriber already did it), ``--speakers`` and
    ``--regroup``, in that order."""
    if args.vad and not vad_done:
        from ..frontend.vad import speech_regions
        from ..tasks.speech import snap_to_speech

        result = snap_to_speech(result, speech_regions(audio, _vad_options(args)))
    if args.speakers:
        from ..results.speakers import assign_speakers

        result = assign_speakers(result, _speaker_turns(args.speakers, audio, args))
    if _regrouping(args):
        from ..results.regroup import regroup

        options = {
            "max_gap": args.regroup_max_gap if args.regroup_max_gap is not None else 0.5,
            "max_words": args.regroup_max_words,
            "max_chars": args.regroup_max_chars,
            "min_words": args.regroup_min_words if args.regroup_min_words is not None else 1,
        }
        result = regroup(result, **options)
    return result


__all__ = ["add_arguments", "apply", "check", "transcriber"]
