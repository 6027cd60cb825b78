"""``whisper-align eval``: align a labelled manifest's transcripts and score the word times against its references.

    whisper-align eval ../shared/eval/timit-dev/manifest.jsonl
    whisper-align eval manifest.jsonl --model base --heads '[[3,1],[4,2]]' --mode conformance --json out.json
    whisper-align eval manifest.jsonl --per-utterance --tolerance 0.02

Each utterance's text is force-aligned to its audio (:func:`whisper_align.tasks.align.align`: one window up to 30 s,
window by window beyond), then scored with :func:`whisper_align.results.evaluation.score` (median and mean errors,
shares within 20/50/100/200 ms, boundary precision/recall/F1 at ``--tolerance``).
"""

from __future__ import annotations

import argparse
import sys
import warnings


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 10.0:
        raise argparse.ArgumentTypeError(f"expected a tolerance in seconds, such as 0.05, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score word timings against a labelled manifest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("manifest", metavar="MANIFEST", help="JSON-lines manifest with id, audio, text and words")
    parser.add_argument("--model", default="tiny.en", help="official name or checkpoint path (default: tiny.en)")
    parser.add_argument(
        "--heads",
        metavar="SPEC",
        default=None,
        help="alignment heads to use instead of the model's: official name, dump, pairs, JSON file",
    )
    parser.add_argument(
        "--mode",
        choices=["default", "conformance"],
        default="default",
        help="word rules: the aligner's default, or openai-whisper's exact ones",
    )
    parser.add_argument("--language", default=None, help="language of the texts (multilingual models; default en)")
    parser.add_argument("--per-utterance", action="store_true", help="also print and store each utterance's scores")
    parser.add_argument("--json", metavar="OUT", help="write the metrics here (JSON, written atomically)")
    parser.add_argument(
        "--tolerance",
        type=_tolerance,
        default=0.05,
        help="seconds within which a boundary counts as a hit for precision/recall (0.05)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ..alignment.words import AlignmentConfig
    from ..checkpoints import load_model
    from ..checkpoints.tokenizers import get_tokenizer
    from ..errors import ManifestError, WhisperAlignError
    from ..heads import mask_to_pairs, resolve_heads
    from ..heads.discovery import write_json_atomic
    from ..results.evaluation import format_table, score
    from ..results.manifest import load_manifest
    from ..tasks.align import align

    utterances = load_manifest(args.manifest, check_audio=True)
    labelled = [u for u in utterances if u.words is not None]
    if not labelled:
        raise ManifestError(
            f"{args.manifest} has no reference word times: no line has a 'words' list "
            '([{"word", "start", "end"}, ...] in seconds), so there is nothing to score against'
        )
    model = load_model(args.model, device=args.device)
    if args.heads:
        mask = resolve_heads(args.heads, model.dims.n_text_layer, model.dims.n_text_head)
        model.set_heads_mask(torch.from_numpy(mask))
    heads_label = args.heads or model.info.heads_source
    tokenizer = get_tokenizer(model, language=args.language)
    config = AlignmentConfig(mode=args.mode)

    entries, failed = [], []
    for utterance in tqdm(labelled, desc="aligning", unit="utt"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. silent audio; it is scored like any other
                result = align(
                    model, str(utterance.audio), utterance.text, config=config, probabilities=False, tokenizer=tokenizer
                )
        except WhisperAlignError as error:  # one bad line should not lose the whole run
            failed.append({"id": utterance.id, "error": str(error)})
            result = None
        entries.append((utterance.id, utterance.words, result.words if result is not None else []))
    metrics = score(entries, tolerance=args.tolerance, per_utterance=args.per_utterance)

    print(
        f"{args.model} ({len(model.alignment_head_pairs())} alignment heads: {heads_label}), {args.mode} mode, "
        f"{len(labelled)} utterances"
        + (f" ({len(utterances) - len(labelled)} without words skipped)" if len(labelled) < len(utterances) else "")
    )
    print(format_table({args.model: metrics}))
    if args.per_utterance and metrics.utterances:
        print()
        print(format_table(metrics.utterances))
    for failure in failed:
        print(f"could not align {failure['id']}: {failure['error']}", file=sys.stderr)
    if args.json:
        payload = {
            "manifest": str(args.manifest),
            "model": args.model,
            "heads": mask_to_pairs(model.alignment_heads.to("cpu").to_dense().numpy()),
            "heads_source": heads_label,
            "mode": args.mode,
            "tolerance": args.tolerance,
            "metrics": metrics.to_dict(),
            "failed": failed,
        }
        write_json_atomic(args.json, payload)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
