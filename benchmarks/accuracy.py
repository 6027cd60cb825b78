"""Word-timing accuracy of forced alignment on the labelled eval sets.

For each model and eval set: openai-whisper's own ``find_alignment`` (the reference, same weights and heads),
our conformance mode, our default mode without and with the heads' calibrated time shift (the shift was measured
by calibrate.py on festival clips 0, 3, 6, ...; ``--offset 1`` keeps festival runs off those), scored against the
human/synthesiser word boundaries. Also checks conformance: the share of words whose start and end are within
20 ms of openai-whisper's.

    .venv/bin/python benchmarks/accuracy.py [--models tiny.en base] [--sets timit-dev festival] [--limit N]
                                            [--stride N] [--offset K]

Prints a table and writes benchmarks/results/accuracy_<sets>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import manifest, openai_model, write_json  # noqa: E402
from whisper_align.alignment.words import AlignmentConfig, resolve_config  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.checkpoints.tokenizers import get_tokenizer  # noqa: E402
from whisper_align.frontend.audio import N_SAMPLES, N_SAMPLES_PER_TOKEN, load_audio  # noqa: E402
from whisper_align.results.evaluation import format_table, score  # noqa: E402
from whisper_align.results.manifest import load_manifest
from whisper_align.tasks.align import Piece, prepare_text, run_pieces, window_mel, words_of_piece  # noqa: E402

MODES = {
    "conformance": AlignmentConfig(mode="conformance"),
    "default, no time shift": AlignmentConfig(time_shift=0.0),
    "default": AlignmentConfig(),  # the model's calibrated time shift
}


def openai_words(reference, tokenizer, samples: np.ndarray, tokens: list[int]) -> list[tuple[str, float, float]]:
    """openai-whisper's find_alignment + its punctuation merge, as its transcribe() applies them."""
    import whisper
    import whisper.timing

    mel = whisper.log_mel_spectrogram(torch.from_numpy(samples), n_mels=reference.dims.n_mels, padding=N_SAMPLES)
    n_frames = mel.shape[-1] - N_SAMPLES // 160
    with torch.no_grad():
        timings = whisper.timing.find_alignment(reference, tokenizer, tokens, mel[:, :3000], n_frames)
    whisper.timing.merge_punctuations(timings, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    return [(t.word, t.start, t.end) for t in timings if t.word]


def openai_raw(reference, tokenizer, samples, tokens):
    import whisper
    import whisper.timing

    mel = whisper.log_mel_spectrogram(torch.from_numpy(samples), n_mels=reference.dims.n_mels, padding=N_SAMPLES)
    with torch.no_grad():
        return whisper.timing.find_alignment(reference, tokenizer, tokens, mel[:, :3000], mel.shape[-1] - 3000)


def evaluate(
    model_name: str, set_name: str, limit: int | None, with_openai: bool, stride: int = 1, offset: int = 0
) -> dict:
    model = load_model(model_name)
    modes = {name: resolve_config(config, model.alignment_time_shift) for name, config in MODES.items()}
    tokenizer = get_tokenizer(model)
    reference = openai_model(model) if with_openai else None
    if reference is not None:
        import whisper.tokenizer

        ref_tokenizer = whisper.tokenizer.get_tokenizer(
            model.is_multilingual,
            num_languages=model.num_languages,
            language="en" if model.is_multilingual else None,
            task="transcribe",
        )
    utterances = load_manifest(manifest(set_name))[offset::stride][:limit]
    hyps: dict[str, dict] = {name: {} for name in (["openai"] if reference is not None else []) + list(modes)}
    gaps = []
    for i, u in enumerate(utterances):
        samples = load_audio(u.audio)
        tokens = prepare_text(tokenizer, u.text)
        with torch.inference_mode():
            features = model.embed_audio(window_mel(model, samples)[None])
        n_positions = max(1, len(samples) // N_SAMPLES_PER_TOKEN)
        ((qk, probs, _),) = run_pieces(model, tokenizer, features, [Piece(0, tokens, 0, n_positions)])
        for name, config in modes.items():
            words = words_of_piece(tokenizer, qk.float(), tokens, probs, config, 0.0)
            hyps[name][u.id] = (u.words, [(w.word, w.start, w.end) for w in words])
        if reference is not None:
            hyps["openai"][u.id] = (u.words, openai_words(reference, ref_tokenizer, samples, tokens))
            ours = [
                (w.start, w.end)
                for w in words_of_piece(
                    tokenizer,
                    qk.float(),
                    tokens,
                    probs,
                    AlignmentConfig(mode="conformance", append_punctuations="", prepend_punctuations=""),
                    0.0,
                )
            ]
            raw = [(t.start, t.end) for t in openai_raw(reference, ref_tokenizer, samples, tokens)]
            gaps += [max(abs(a[0] - b[0]), abs(a[1] - b[1])) for a, b in zip(ours, raw)]
        print(f"\r{model_name} {set_name}: {i + 1}/{len(utterances)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    metrics = {name: score(pairs) for name, pairs in hyps.items()}
    out = {
        "metrics": {name: m.to_dict() for name, m in metrics.items()},
        "table": format_table(metrics),
        "time_shift_s": model.alignment_time_shift,
    }
    if gaps:
        gaps_arr = np.array(gaps)
        out["conformance"] = {
            "words": len(gaps),
            "within_20ms": float((gaps_arr <= 0.02 + 1e-9).mean()),
            "max_difference_s": float(gaps_arr.max()),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--sets", nargs="+", default=["timit-dev", "festival"])
    parser.add_argument("--stride", type=int, default=1, help="every Nth utterance (all voices/speakers, less time)")
    parser.add_argument("--offset", type=int, default=0, help="start at utterance K (with --stride: other clips)")
    parser.add_argument("--limit", type=int, help="first N utterances of each set (quick runs)")
    parser.add_argument("--no-openai", action="store_true", help="skip the openai-whisper reference")
    args = parser.parse_args()
    results = {}
    for model_name in args.models:
        for set_name in args.sets:
            result = evaluate(model_name, set_name, args.limit, not args.no_openai, args.stride, args.offset)
            results[f"{model_name}/{set_name}"] = result
            print(f"\n## {model_name} on {set_name}\n\n{result['table']}")
            if "conformance" in result:
                c = result["conformance"]
                print(
                    f"conformance: {c['within_20ms']:.1%} of {c['words']} words within 20 ms of openai's "
                    f"find_alignment (max difference {c['max_difference_s'] * 1000:.0f} ms)"
                )
    path = write_json("accuracy_" + "_".join(args.sets), {"args": vars(args), "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
