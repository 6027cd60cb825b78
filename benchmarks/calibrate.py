"""Measure the time shift of a model's alignment heads (the values in alignment/calibration.py).

Aligns an eval set in the default mode *without* a shift and prints the median signed boundary error
(hypothesis - reference, starts and ends together); the calibrated shift is its negation. Measured on the
synthetic ``festival`` set so that ``timit-dev`` stays unseen for the accuracy table.

    .venv/bin/python benchmarks/calibrate.py [--models tiny.en base] [--set festival]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import manifest, write_json  # noqa: E402
from whisper_align.alignment.words import AlignmentConfig  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.checkpoints.tokenizers import get_tokenizer  # noqa: E402
from whisper_align.frontend.audio import N_SAMPLES_PER_TOKEN, load_audio  # noqa: E402
from whisper_align.results.evaluation import as_timed_words, match_words  # noqa: E402
from whisper_align.results.manifest import load_manifest
from whisper_align.tasks.align import Piece, prepare_text, run_pieces, window_mel, words_of_piece  # noqa: E402


def signed_errors(model_name: str, set_name: str, limit: int | None, stride: int = 1) -> np.ndarray:
    model = load_model(model_name)
    tokenizer = get_tokenizer(model)
    config = AlignmentConfig(time_shift=0.0)
    errors: list[float] = []
    utterances = load_manifest(manifest(set_name))[::stride][:limit]
    for i, u in enumerate(utterances):
        samples = load_audio(u.audio)
        tokens = prepare_text(tokenizer, u.text)
        with torch.inference_mode():
            features = model.embed_audio(window_mel(model, samples)[None])
        n = max(1, len(samples) // N_SAMPLES_PER_TOKEN)
        ((qk, probs, _),) = run_pieces(model, tokenizer, features, [Piece(0, tokens, 0, n)])
        hyp = as_timed_words(
            [(w.word, w.start, w.end) for w in words_of_piece(tokenizer, qk, tokens, probs, config, 0)]
        )
        ref = as_timed_words(u.words)
        for r, h in match_words(ref, hyp):
            errors += [hyp[h][1] - ref[r][1], hyp[h][2] - ref[r][2]]
        print(f"\r{model_name}: {i + 1}/{len(utterances)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return np.array(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--set", default="festival")
    parser.add_argument("--stride", type=int, default=1, help="every Nth utterance (all voices/speakers, less time)")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    rows = {}
    print("| model | boundaries | median signed error ms | mean ms | calibrated shift s |\n|---|---:|---:|---:|---:|")
    for name in args.models:
        errors = signed_errors(name, args.set, args.limit, args.stride)
        median = float(np.median(errors))
        rows[name] = {
            "boundaries": len(errors),
            "median_signed_error_s": median,
            "mean_signed_error_s": float(errors.mean()),
            "shift_s": round(-median, 3),
        }
        print(f"| {name} | {len(errors)} | {median * 1000:.1f} | {errors.mean() * 1000:.1f} | {-median:+.3f} |")
    path = write_json("calibration", {"args": vars(args), "models": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
