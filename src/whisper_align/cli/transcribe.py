"""``whisper-align transcribe``: speech to text with word timestamps, written as JSON, subtitles, TextGrid...

    whisper-align transcribe talk.mp3 --word-timestamps                 tiny.en, every format into .
    whisper-align transcribe a.wav b.wav --model base --language de --output-format srt --output-dir out
    whisper-align transcribe talk.wav --word-timestamps --output-format vtt --highlight-words

Word timestamps come from the attention captured while decoding (no second decoder pass); see
:mod:`whisper_align.tasks.transcribe`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import OutputError, WhisperAlignError
from . import postprocess_options
from .engine_options import add_engine_options, add_manifest_options, check_engine_options

OUTPUT_FORMATS = ["json", "srt", "vtt", "tsv", "txt", "TextGrid"]


def _temperatures(start: float, increment: float | None) -> tuple[float, ...]:
    """openai-whisper's CLI: start, start + increment, ... up to 1.0 (just ``start`` without an increment)."""
    if not increment:
        return (start,)
    values, t = [], start
    while t <= 1.0 + 1e-6:
        values.append(round(t, 6))
        t += increment
    return tuple(values) or (start,)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe audio, optionally with word timestamps",
        description="Transcribe audio files with a Whisper model (openai-whisper's long-form algorithm); with "
        "--word-timestamps, word times come from the attention captured while decoding.",
    )
    parser.add_argument("audio", nargs="*", metavar="AUDIO", help="audio or video file(s) FFmpeg can read")
    add_manifest_options(parser)
    add_engine_options(parser)
    parser.add_argument("--model", default="tiny.en", help="official name or checkpoint path (default: tiny.en)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="int8 weights: about 1.6x faster on the CPU, transcripts may differ in a few words",
    )
    parser.add_argument(
        "--fast-logits",
        action="store_true",
        help="greedy on a CPU: vocabulary projection in int8 with the possible winners recomputed in "
        "float32 (the float32 tokens, faster)",
    )
    parser.add_argument("--language", default=None, help="spoken language (code or name); default: detected")
    parser.add_argument("--task", default="transcribe", choices=["transcribe", "translate"])
    parser.add_argument("--word-timestamps", action="store_true", help="add word-level timestamps")
    parser.add_argument(
        "--word-alignment",
        default="captured",
        choices=["captured", "second_pass"],
        help="where word timings' attention comes from (default: captured while decoding)",
    )
    parser.add_argument(
        "--alignment-mode",
        default="default",
        choices=["default", "conformance"],
        help="word rules: the aligner's default, or openai-whisper's exact ones",
    )
    parser.add_argument(
        "--seek-to-last-word",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --word-timestamps, start the window after one that ends mid-segment at its last "
        "word's end, as openai-whisper does (default: only in conformance mode; otherwise "
        "where it would start without word timestamps)",
    )
    parser.add_argument("--beam-size", type=int, default=None, help="beams for temperature-0 decoding")
    parser.add_argument("--best-of", type=int, default=None, help="samples for temperature > 0")
    parser.add_argument("--patience", type=float, default=None, help="beam-search patience")
    parser.add_argument("--temperature", type=float, default=0.0, help="first sampling temperature (default 0)")
    parser.add_argument(
        "--temperature-increment-on-fallback",
        type=float,
        default=0.2,
        help="temperature step on a failed window, up to 1.0 (0: no fallback)",
    )
    parser.add_argument("--initial-prompt", default=None, help="text to condition the first window on")
    parser.add_argument(
        "--no-condition-on-previous-text",
        dest="condition_on_previous_text",
        action="store_false",
        help="do not feed each window the text of the previous ones",
    )
    parser.add_argument("--clip-timestamps", default="0", help="start,end,... seconds of the parts to transcribe")
    parser.add_argument("--output-dir", "-o", default=".", help="folder for the output files (default: .)")
    parser.add_argument(
        "--output-format", "-f", default="all", choices=[*OUTPUT_FORMATS, "all"], help="output format (default: all)"
    )
    parser.add_argument(
        "--highlight-words",
        action="store_true",
        help="srt/vtt: underline each word as it is spoken (needs --word-timestamps)",
    )
    parser.add_argument(
        "--png", action="store_true", help="also draw each file's waveform and words to NAME.png (matplotlib)"
    )
    parser.add_argument("--verbose", action="store_true", help="print each segment as it is decoded")
    postprocess_options.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Transcribe every AUDIO in turn. One that fails is reported on stderr and the rest still run; the exit
    status is 1 if any failed (a summary names them), 0 if all were written."""
    from ..checkpoints import load_model

    check_engine_options(args)
    if args.manifest or not args.audio:
        return _run_manifest(args)
    output_dir = Path(args.output_dir)
    _check_output_dir(output_dir)  # before the model loads
    if args.png:
        from ..results.viewer import check_png_output

        check_png_output(output_dir / "picture.png")
    if args.highlight_words and not args.word_timestamps:
        print("whisper-align: --highlight-words needs --word-timestamps; ignoring it", file=sys.stderr)
    model = load_model(args.model, args.device)
    if args.int8:
        from ..model.int8 import quantize_int8

        model = quantize_int8(model)
    failed: list[str] = []
    for audio in args.audio:
        try:
            _transcribe_one(model, audio, args, output_dir)
        except WhisperAlignError as error:
            print(f"whisper-align: error: {audio}: {error}", file=sys.stderr)
            failed.append(audio)
    if failed:
        print(
            f"whisper-align: transcribed {len(args.audio) - len(failed)} of {len(args.audio)} files; "
            f"failed: {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0


def _check_output_dir(folder: Path) -> None:
    """Create the output folder and make sure files can be written in it; :class:`OutputError` if not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".whisper-align.", suffix=".probe")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(
            f"cannot write in the output folder {os.fspath(folder)!r} ({error.strerror or error}); "
            "choose another with --output-dir"
        ) from error


def _transcribe_one(model, audio: str, args: argparse.Namespace, output_dir: Path) -> None:  # noqa: ANN001
    """Transcribe one file and write it in the chosen formats, printing each path written."""
    from ..results.writers import write_result

    transcribe = postprocess_options.transcriber(args)  # --vad: only the speech
    result = transcribe(model, audio, verbose=True if args.verbose else False, **transcribe_options(args))
    result = postprocess_options.apply(result, args, audio, vad_done=True)
    formats = OUTPUT_FORMATS if args.output_format == "all" else [args.output_format]
    stem = Path(audio).stem
    for fmt in formats:
        path = output_dir / f"{stem}.{fmt}"
        try:
            write_result(result, path, highlight_words=args.highlight_words and args.word_timestamps)
        except OSError as error:
            raise OutputError(f"cannot write {os.fspath(path)!r}: {error.strerror or error}") from error
        print(path)
    if args.png:
        from ..results.viewer import write_png

        print(write_png(result, audio, output_dir / f"{stem}.png"))


def transcribe_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`~whisper_align.tasks.transcribe.transcribe`'s options from the command line (all but ``verbose``)."""
    from ..alignment.words import AlignmentConfig

    return dict(
        language=args.language,
        task=args.task,
        word_timestamps=args.word_timestamps,
        word_alignment=args.word_alignment,
        alignment_config=AlignmentConfig(mode=args.alignment_mode),
        beam_size=args.beam_size,
        best_of=args.best_of,
        patience=args.patience,
        temperature=_temperatures(args.temperature, args.temperature_increment_on_fallback),
        initial_prompt=args.initial_prompt,
        condition_on_previous_text=args.condition_on_previous_text,
        clip_timestamps=args.clip_timestamps,
        seek_to_last_word=args.seek_to_last_word,
        checked_int8_logits=args.fast_logits,
    )


def _run_manifest(args: argparse.Namespace) -> int:
    """``transcribe --manifest IN --out OUT``: every line into one resumable JSON-lines file, on either engine."""
    from .transcribe_manifest import run_manifest

    return run_manifest(args, transcribe_options(args))
