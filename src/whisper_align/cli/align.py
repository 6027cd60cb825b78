"""`whisper-align align` (one file or a whole manifest) and `whisper-align demo`."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..errors import TranscriptError, WhisperAlignError
from . import postprocess_options
from .engine_options import add_engine_options
from .openai_flags import accept_openai_spellings, optional_int
from .output_options import (
    add_output_options,
    apply_confidence,
    check_output_options,
    quality_warnings,
    reject_with_manifest,
)

DEFAULT_MODEL = "tiny.en"
REPO_SAMPLES = Path(__file__).resolve().parents[3] / "samples"


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="official name or path to a checkpoint (default: tiny.en)"
    )
    parser.add_argument("--heads", help="alignment heads to use instead of the model's: name, dump, pairs or file")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--threads", type=optional_int, default=0, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--int8", action="store_true", help="int8 weights: faster on the CPU, word times may move a little"
    )
    parser.add_argument("--language", help="language of the speech (multilingual models; default: en)")
    parser.add_argument(
        "--mode",
        choices=["default", "conformance"],
        default="default",
        help="'conformance' reproduces openai-whisper's find_alignment exactly",
    )


def load(args: argparse.Namespace):  # noqa: ANN201 - returns (model, AlignmentConfig)
    """The model (with --heads applied) and the alignment config named on the command line."""
    from ..alignment.words import AlignmentConfig
    from ..checkpoints import load_model
    from ..heads import resolve_heads

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = load_model(args.model, device=args.device)
    if args.heads:
        mask = resolve_heads(args.heads, model.dims.n_text_layer, model.dims.n_text_head)
        model.set_alignment_head_pairs([tuple(p) for p in zip(*mask.nonzero())])
    if args.int8:
        from ..model.int8 import quantize_int8

        model = quantize_int8(model)
    return model, AlignmentConfig(mode=args.mode)


def print_words(result) -> None:  # noqa: ANN001
    """A table of the words (start, end, probability); words past the end of the audio are marked."""
    print(f"{'start':>8} {'end':>8}  {'prob':>5}  word")
    for w in result.words:
        mark = "  (past the end of the audio)" if w.past_end else "  (low probability)" if w.low_probability else ""
        print(f"{w.start:8.2f} {w.end:8.2f}  {w.probability:5.2f}  {w.word.strip()}{mark}")


def run_manifest(args: argparse.Namespace) -> int:
    """``align --manifest IN --out OUT``: paths checked before the model loads; exit 1 if any line failed."""
    from ..tasks.corpus import align_corpus, check_corpus_paths
    from .engine_options import check_manifest_args, cluster, model_spec, print_summary

    check_manifest_args(args, "AUDIO/--text" if args.audio or args.text or args.text_file else "")
    reject_with_manifest(args)
    check_corpus_paths(args.manifest, args.out)
    if args.engine == "ray":
        from ..alignment.words import AlignmentConfig
        from ..engines.ray_run import align_on_ray

        spec, config = model_spec(args), AlignmentConfig(mode=args.mode)
        options = dict(
            language=args.language,
            config=config,
            pack=not args.no_pack,
            retry_errors=args.retry_errors,
            realign=args.realign,
        )
        return print_summary(align_on_ray(args.manifest, args.out, spec, cluster(args), **options), args.out)
    model, config = load(args)
    summary = align_corpus(
        model,
        args.manifest,
        args.out,
        language=args.language,
        config=config,
        pack=not args.no_pack,
        retry_errors=args.retry_errors,
        realign=args.realign,
    )
    return print_summary(summary, args.out)


def run_align(args: argparse.Namespace) -> int:
    from ..tasks.align import align
    from .engine_options import check_engine_options

    postprocess_options.check(args)
    check_engine_options(args)
    if args.manifest:
        if args.png:
            raise TranscriptError("--png draws one file's alignment; it does not go with --manifest")
        return run_manifest(args)

    if not args.audio:
        raise TranscriptError("give an AUDIO file (or --manifest IN.jsonl --out OUT.jsonl)")
    if (args.text is None) == (args.text_file is None):
        raise TranscriptError("give the transcript with exactly one of --text TEXT or --text-file FILE")
    text = args.text
    if args.text_file:
        try:
            text = Path(args.text_file).read_text(encoding="utf-8")
        except OSError as error:
            raise TranscriptError(f"cannot read the transcript {args.text_file}: {error.strerror}") from error
    if args.png:
        from ..results.viewer import check_png_output

        check_png_output(args.png)  # before the model loads
    writer_options = check_output_options(args, word_timestamps=True)
    model, config = load(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = align(model, args.audio, text, language=args.language, config=config, progress=True)
    print_warnings(caught)
    result = postprocess_options.apply(result, args, args.audio)
    for message in quality_warnings(result):
        print(f"whisper-align: warning: {message}", file=sys.stderr)
    apply_confidence(result, args)
    if args.output:
        result.write(args.output, **writer_options)
        print(f"wrote {args.output}: {len(result.words)} words{score_note(result)}", file=sys.stderr)
    else:
        print_words(result)
        print(f"{len(result.words)} words{score_note(result)}", file=sys.stderr)
    if args.png:
        from ..results.viewer import write_png

        write_png(result, args.audio, args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


def print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Each distinct warning whisper-align raised while aligning, on stderr as ``whisper-align: warning: ...``
    (without Python's file and line); warnings from other libraries are shown as Python would."""
    package = str(Path(__file__).resolve().parents[1])
    ours = [w for w in caught if str(Path(w.filename).resolve()).startswith(package)]
    for w in caught:
        if w not in ours:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    for message in dict.fromkeys(str(w.message) for w in ours):
        print(f"whisper-align: warning: {message}", file=sys.stderr)


def score_note(result) -> str:  # noqa: ANN001
    """``", alignment score 0.71"`` (plus a low-confidence mark), or nothing when there is no score."""
    if result.alignment_score is None:
        return ""
    return f", alignment score {result.alignment_score:.3f}" + (" (LOW CONFIDENCE)" if result.low_confidence else "")


def run_demo(args: argparse.Namespace) -> int:
    from ..tasks.align import align

    audio, text_file = REPO_SAMPLES / "demo.wav", REPO_SAMPLES / "demo.txt"
    if not audio.is_file() or not text_file.is_file():
        raise WhisperAlignError(f"the demo sample is not at {REPO_SAMPLES}; run the demo from a source checkout")
    text = text_file.read_text(encoding="utf-8").strip()
    model, config = load(args)
    print(
        f"model {args.model} ({model.info.format}, heads from {model.info.heads_source}: "
        f"{model.alignment_head_pairs()})"
    )
    print(f"audio {audio.name}: {text!r}\n")
    result = align(model, str(audio), text, config=config)
    print_words(result)
    if args.output:
        result.write(args.output)
        print(f"\nwrote {args.output}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "align",
        help="word timestamps for a known transcript",
        description="Align a transcript to audio (or every line of a manifest) and give each word a start and end.",
    )
    parser.add_argument("audio", nargs="?", help="audio file (any format FFmpeg reads)")
    parser.add_argument("--text", help="the transcript")
    parser.add_argument("--text-file", help="file holding the transcript")
    parser.add_argument("-o", "--output", help="write .json, .srt, .vtt, .TextGrid, .tsv or .txt (default: print)")
    parser.add_argument("--png", metavar="PATH", help="also draw the waveform and its words to a PNG (matplotlib)")
    parser.add_argument("--manifest", help="JSON lines with id, audio, text: align them all")
    parser.add_argument(
        "--out",
        help="with --manifest: JSON-lines output, one line per manifest line; a rerun "
        "resumes where it stopped, with the words an uninterrupted run gives",
    )
    parser.add_argument(
        "--retry-errors",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --manifest: align again the ids whose line in --out is an error (default: yes; "
        "--no-retry-errors keeps those lines). Exit status 1 if any line is an error",
    )
    parser.add_argument(
        "--no-pack",
        action="store_true",
        help="with --manifest: one clip per 30 s window (slower, slightly more accurate)",
    )
    parser.add_argument(
        "--realign",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --manifest: align a packed clip the model barely hears (alignment score < 0.03), or whose last "
        "words are squeezed into its end (cut short?), again in a window of its own, so its words are what align "
        "gives them (default: yes; --no-realign is faster)",
    )
    add_model_options(parser)
    postprocess_options.add_arguments(parser)
    add_engine_options(parser)
    add_output_options(parser)
    accept_openai_spellings(parser)
    parser.set_defaults(func=run_align)

    demo = subparsers.add_parser("demo", help="align the bundled sample with the bundled tiny.en")
    demo.add_argument("-o", "--output", help="also write the result (.json, .srt, .vtt, .TextGrid, ...)")
    add_model_options(demo)
    demo.set_defaults(func=run_demo)
