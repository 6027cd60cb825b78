"""``whisper-align transcribe``: speech to text with word timestamps, written as JSON, subtitles, TextGrid...

    whisper-align transcribe talk.mp3 --word-timestamps                 tiny.en, every format into .
    whisper-align transcribe a.wav b.wav --model base --language de --output-format srt --output-dir out
    whisper-align transcribe talk.wav --word-timestamps --output-format vtt --highlight-words
    whisper-align transcribe talk.wav --word_timestamps True --output_dir out     openai-whisper's spellings

Word timestamps come from the attention captured while decoding (no second decoder pass); see
:mod:`whisper_align.tasks.transcribe`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..errors import OutputError, WhisperAlignError
from . import postprocess_options
from .align import print_warnings, score_note
from .engine_options import add_engine_options, add_manifest_options, check_engine_options
from .openai_flags import accept_openai_spellings, optional_float, optional_int
from .output_options import add_output_options, apply_confidence, check_output_options, quality_warnings, warn

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


OPENAI_DIFFERENCES = """\
openai-whisper's spellings work too: --output_dir DIR, --word_timestamps True, --condition_on_previous_text False,
--beam_size None, --verbose False, and every other option of its CLI with underscores.

Defaults that differ from openai-whisper's CLI, and why:
  --model tiny.en      (openai: turbo) the bundled model: works offline, fast on a CPU
  --device cpu         (openai: cuda when available) pass --device cuda for a GPU
  --beam-size, --best-of  (openai: 5 and 5) greedy decoding, as openai-whisper's transcribe() function does: the
                       text our benchmarks check against openai-whisper's, and faster; pass --beam-size 5 --best-of 5
                       for its CLI's output
  --verbose            (openai: True) off: a progress bar instead of every segment; --verbose True prints them
  --output-format all  also writes a Praat TextGrid
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe audio, optionally with word timestamps",
        description="Transcribe audio files with a Whisper model (openai-whisper's long-form algorithm); with\n"
        "--word-timestamps, word times come from the attention captured while decoding.",
        epilog=OPENAI_DIFFERENCES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("audio", nargs="*", metavar="AUDIO", help="audio or video file(s) FFmpeg can read")
    add_manifest_options(parser)
    add_engine_options(parser)
    _add_model_options(parser)
    _add_decoding_options(parser)
    _add_fallback_options(parser)
    parser.add_argument("--output-dir", "-o", default=".", help="folder for the output files (default: .)")
    parser.add_argument(
        "--output-format", "-f", default="all", choices=[*OUTPUT_FORMATS, "all"], help="output format (default: all)"
    )
    add_output_options(parser)
    parser.add_argument(
        "--verbose", action="store_true", help="print each segment as it is decoded (default: a progress bar)"
    )
    parser.add_argument(
        "--png", action="store_true", help="also draw each file's waveform and words to NAME.png (matplotlib)"
    )
    postprocess_options.add_arguments(parser)
    accept_openai_spellings(parser)
    parser.set_defaults(func=run)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny.en", help="official name or checkpoint path (default: tiny.en)")
    parser.add_argument("--model-dir", default=None, help="where downloaded models are kept (default: ~/.cache)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--fp16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="decode in float16 on an accelerator (ignored on the CPU)",
    )
    parser.add_argument(
        "--threads", type=optional_int, default=0, help="torch CPU threads (default: 0, torch's own choice)"
    )
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


def _add_decoding_options(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--prepend-punctuations", default=None, help="marks merged into the next word")
    parser.add_argument("--append-punctuations", default=None, help="marks merged into the previous word")
    parser.add_argument(
        "--beam-size", type=optional_int, default=None, help="beams for temperature-0 decoding (default: greedy)"
    )
    parser.add_argument("--best-of", type=optional_int, default=None, help="samples for temperature > 0 (default: 1)")
    parser.add_argument("--patience", type=optional_float, default=None, help="beam-search patience")
    parser.add_argument("--length-penalty", type=optional_float, default=None, help="length penalty alpha")
    parser.add_argument(
        "--suppress-tokens", default="-1", help="comma-separated token ids never to sample (-1: non-speech symbols)"
    )
    parser.add_argument("--initial-prompt", default=None, help="text to condition the first window on")
    parser.add_argument(
        "--carry-initial-prompt",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="put the initial prompt before every window's previous text",
    )
    parser.add_argument(
        "--condition-on-previous-text",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="feed each window the text of the previous ones (default: yes)",
    )
    parser.add_argument("--clip-timestamps", default="0", help="start,end,... seconds of the parts to transcribe")


def _add_fallback_options(parser: argparse.ArgumentParser) -> None:
    """Temperature fallback and the no-speech and hallucination rules; ``None`` switches a threshold off."""
    parser.add_argument("--temperature", type=float, default=0.0, help="first sampling temperature (default 0)")
    parser.add_argument(
        "--temperature-increment-on-fallback",
        type=optional_float,
        default=0.2,
        help="temperature step on a failed window, up to 1.0 (0 or None: no fallback)",
    )
    parser.add_argument(
        "--compression-ratio-threshold",
        type=optional_float,
        default=2.4,
        help="a window whose text compresses better than this (gzip ratio) failed (default 2.4)",
    )
    parser.add_argument(
        "--logprob-threshold",
        type=optional_float,
        default=-1.0,
        help="a window whose mean token log-probability is below this failed (default -1.0)",
    )
    parser.add_argument(
        "--no-speech-threshold",
        type=optional_float,
        default=0.6,
        help="a failed window whose no-speech probability is above this is silence (default 0.6)",
    )
    parser.add_argument(
        "--hallucination-silence-threshold",
        type=optional_float,
        default=None,
        help="with --word-timestamps: skip silences longer than this (seconds) around a likely hallucination",
    )


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
    writer_options = check_output_options(args, args.word_timestamps)
    if args.hallucination_silence_threshold is not None and not args.word_timestamps:
        warn("--hallucination-silence-threshold needs word timestamps (--word-timestamps); ignoring it")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = load_model(args.model, args.device, download_root=args.model_dir)
    if args.int8:
        from ..model.int8 import quantize_int8

        model = quantize_int8(model)
    failed: list[str] = []
    for audio in args.audio:
        try:
            _transcribe_one(model, audio, args, output_dir, writer_options)
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


def _transcribe_one(  # noqa: ANN001
    model, audio: str, args: argparse.Namespace, output_dir: Path, writer_options: dict[str, Any]
) -> None:
    """Transcribe one file, mark its doubtful words and write it in the chosen formats, printing each path
    written (and on stderr any warning about the result)."""
    from ..results.writers import write_result

    transcribe = postprocess_options.transcriber(args)  # --vad: only the speech
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = transcribe(model, audio, verbose=True if args.verbose else False, **transcribe_options(args))
    print_warnings(caught)
    result = postprocess_options.apply(result, args, audio, vad_done=True)
    for message in quality_warnings(result):
        print(f"whisper-align: warning: {audio}: {message}", file=sys.stderr)
    apply_confidence(result, args)
    formats = OUTPUT_FORMATS if args.output_format == "all" else [args.output_format]
    stem = Path(audio).stem
    for fmt in formats:
        path = output_dir / f"{stem}.{fmt}"
        try:
            write_result(result, path, **writer_options)
        except OSError as error:
            raise OutputError(f"cannot write {os.fspath(path)!r}: {error.strerror or error}") from error
        print(path)
    if args.png:
        from ..results.viewer import write_png

        print(write_png(result, audio, output_dir / f"{stem}.png"))
    if result.alignment_score is not None:
        print(f"whisper-align: {audio}: {len(result.words)} words{score_note(result)}", file=sys.stderr)


def transcribe_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`~whisper_align.tasks.transcribe.transcribe`'s options from the command line (all but ``verbose``)."""
    from ..alignment.words import AlignmentConfig

    return dict(
        language=args.language,
        task=args.task,
        word_timestamps=args.word_timestamps,
        word_alignment=args.word_alignment,
        alignment_config=AlignmentConfig(mode=args.alignment_mode),
        prepend_punctuations=args.prepend_punctuations,
        append_punctuations=args.append_punctuations,
        beam_size=args.beam_size,
        best_of=args.best_of,
        patience=args.patience,
        length_penalty=args.length_penalty,
        suppress_tokens=args.suppress_tokens,
        fp16=args.fp16,
        temperature=_temperatures(args.temperature, args.temperature_increment_on_fallback),
        compression_ratio_threshold=args.compression_ratio_threshold,
        logprob_threshold=args.logprob_threshold,
        no_speech_threshold=args.no_speech_threshold,
        hallucination_silence_threshold=args.hallucination_silence_threshold,
        initial_prompt=args.initial_prompt,
        carry_initial_prompt=args.carry_initial_prompt,
        condition_on_previous_text=args.condition_on_previous_text,
        clip_timestamps=args.clip_timestamps,
        seek_to_last_word=args.seek_to_last_word,
        checked_int8_logits=args.fast_logits,
    )


def _run_manifest(args: argparse.Namespace) -> int:
    """``transcribe --manifest IN --out OUT``: every line into one resumable JSON-lines file, on either engine."""
    from .transcribe_manifest import run_manifest

    return run_manifest(args, transcribe_options(args))
