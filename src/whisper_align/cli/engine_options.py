"""Options of the manifest runs (``align --manifest``, ``transcribe --manifest``): which engine runs them, where,
and how wide; and the summary both print at the end.

    whisper-align align --manifest in.jsonl --out out.jsonl --engine ray                     a local Ray
    whisper-align align --manifest in.jsonl --out out.jsonl --engine ray --address HOST:6379 a running cluster
    whisper-align transcribe --manifest in.jsonl --out out.jsonl --engine ray --num-gpus 1   one GPU per worker
"""

from __future__ import annotations

import argparse
import sys

from ..errors import EngineError, TranscriptError

MAX_FAILURES_SHOWN = 10  # failed manifest lines named on stderr; all of them are in the output file
ENGINES = ("local", "ray")


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--engine``, and where and how wide a Ray run goes (``--address``, ``--workers``, ``--num-gpus``)."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="with --manifest: 'local' runs in this process; 'ray' spreads the clips over Ray workers "
        "(pip install 'whisper-align[ray]'), with the same output file",
    )
    parser.add_argument(
        "--address", help="with --engine ray: the Ray cluster to join (HOST:PORT, or 'auto'); default: a local Ray"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="with --engine ray: model workers, each with its own copy of the model (default: one per CPU, or "
        "per --num-gpus share of the GPUs)",
    )
    parser.add_argument(
        "--num-gpus",
        type=float,
        default=0.0,
        help="with --engine ray: GPUs per worker (fractions share a GPU, e.g. 0.5); workers then run on CUDA "
        "in float16",
    )


def add_manifest_options(parser: argparse.ArgumentParser) -> None:
    """``--manifest``, ``--out`` and ``--retry-errors`` of ``transcribe`` (``align`` has its own)."""
    parser.add_argument("--manifest", help="JSON lines with id and audio: transcribe them all into --out")
    parser.add_argument(
        "--out",
        help="with --manifest: JSON-lines output, one line per manifest line ({id, text, language, segments} "
        "with word timestamps, or {id, error}); a rerun resumes where it stopped",
    )
    parser.add_argument(
        "--retry-errors",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --manifest: transcribe again the ids whose line in --out is an error (default: yes). Exit "
        "status 1 if any line is an error",
    )


def check_engine_options(args: argparse.Namespace) -> None:
    """Refuse Ray's options without ``--engine ray``, and ``--engine ray`` without a manifest."""
    if args.engine != "ray":
        given = [flag for flag, value in (("--address", args.address), ("--workers", args.workers)) if value]
        if args.num_gpus:
            given.append("--num-gpus")
        if given:
            raise EngineError(f"{', '.join(given)} only apply with --engine ray; add --engine ray or drop them")
    elif not args.manifest:
        raise EngineError("--engine ray runs a manifest: give --manifest IN.jsonl --out OUT.jsonl")


def cluster(args: argparse.Namespace):  # noqa: ANN201 - returns engines.ray_run.Cluster
    """Where and how wide the Ray run goes, from the command line."""
    from ..engines.ray_run import Cluster

    return Cluster(address=args.address, workers=args.workers, num_gpus=args.num_gpus)


def model_spec(args: argparse.Namespace):  # noqa: ANN201 - returns engines.ray_data.ModelSpec
    """The model each Ray worker loads: the command line's, on CUDA when workers get GPUs."""
    from ..engines.ray_data import ModelSpec

    device = "cuda" if args.num_gpus and args.device == "cpu" else args.device
    return ModelSpec(args.model, heads=getattr(args, "heads", None), device=device, int8=args.int8)


def check_manifest_args(args: argparse.Namespace, inputs: str) -> None:
    """A manifest run takes its inputs from the manifest, and needs ``--out``."""
    if inputs:
        raise TranscriptError(f"--manifest takes audio (and text) from the manifest; drop {inputs}")
    if not args.out:
        raise TranscriptError("--manifest needs --out OUT.jsonl for the results")


def print_summary(summary, out: str, verb: str = "aligned") -> int:  # noqa: ANN001 - a tasks.corpus.CorpusSummary
    """Name the failures on stderr, print the counts; the exit status: 1 if any line is an error, else 0."""
    for clip_id, message in summary.failures[:MAX_FAILURES_SHOWN]:
        print(f"whisper-align: failed {clip_id}: {message}", file=sys.stderr)
    if len(summary.failures) > MAX_FAILURES_SHOWN:
        print(
            f"whisper-align: ... and {len(summary.failures) - MAX_FAILURES_SHOWN} more (their lines in "
            f'{out} hold an "error")',
            file=sys.stderr,
        )
    if summary.cut_short:
        shown = ", ".join(summary.cut_short[:MAX_FAILURES_SHOWN])
        more = len(summary.cut_short) - MAX_FAILURES_SHOWN
        print(
            f"whisper-align: warning: the audio ends before the transcript in {len(summary.cut_short)} of the clips "
            f"aligned ({shown}{f' and {more} more' if more > 0 else ''}); the words not heard are marked "
            f'"past_end" in {out}',
            file=sys.stderr,
        )
    if summary.kept_errors:
        print(
            f"whisper-align: {summary.kept_errors} error lines of earlier runs kept (--no-retry-errors)",
            file=sys.stderr,
        )
    print(f"{verb} {summary.aligned}, already done {summary.skipped}, failed {summary.failed} -> {out}")
    return 1 if summary.failed or summary.kept_errors else 0
