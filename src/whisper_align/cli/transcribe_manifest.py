"""``whisper-align transcribe --manifest IN --out OUT``: every manifest line transcribed, with word timestamps,
into one resumable JSON-lines file; in this process or, with ``--engine ray``, on Ray workers."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import TranscriptError
from .engine_options import check_manifest_args, cluster, model_spec, print_summary


def run_manifest(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """Check the arguments and paths (before any model loads), run, print the summary; exit 1 if a line failed.

    ``options`` are :func:`~whisper_align.tasks.transcribe.transcribe`'s, from the command line.
    """
    from ..tasks.transcribe_corpus import check_transcription_paths, transcribe_corpus

    if not args.manifest:
        raise TranscriptError("give AUDIO file(s) to transcribe, or --manifest IN.jsonl --out OUT.jsonl")
    check_manifest_args(args, "the AUDIO files" if args.audio else "")
    check_transcription_paths(args.manifest, args.out)
    options = {name: value for name, value in options.items() if name != "word_timestamps"}
    if args.engine == "ray":
        from ..engines.ray_run import transcribe_on_ray

        summary = transcribe_on_ray(
            args.manifest, args.out, model_spec(args), cluster(args), retry_errors=args.retry_errors, **options
        )
        return print_summary(summary, args.out, "transcribed")
    from ..checkpoints import load_model

    model = load_model(args.model, args.device)
    if args.int8:
        from ..model.int8 import quantize_int8

        model = quantize_int8(model)
    summary = transcribe_corpus(model, args.manifest, args.out, retry_errors=args.retry_errors, **options)
    return print_summary(summary, args.out, "transcribed")
