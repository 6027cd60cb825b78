"""GPU check: on CUDA, in float32 and float16, whisper-align gives the CPU's word times and text.

Not a unit test (CI has no GPU): run it on a machine with one. It checks that the sparse ``alignment_heads``
buffer moves with the model and survives a state-dict round trip through the GPU, then aligns and transcribes
the first ``--limit`` clips of an eval set on the CPU (float32, the reference) and on the GPU (float32 and
float16), and reports how far the word times move and whether the text changes. Writes gpu_check.json.

    python benchmarks/gpu_check.py [--model tiny.en] [--set timit-dev] [--limit 20]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, manifest, write_json  # noqa: E402
from whisper_align import align, load_model, transcribe  # noqa: E402
from whisper_align.frontend.audio import load_audio  # noqa: E402
from whisper_align.results.evaluation import format_table, score  # noqa: E402
from whisper_align.results.manifest import load_manifest


def buffer_checks(model_name: str, device: str) -> dict:
    cpu = load_model(model_name)
    gpu = load_model(model_name, device=device)
    half = load_model(model_name, device=device).half()
    buffer = io.BytesIO()
    torch.save(gpu.state_dict(), buffer)
    buffer.seek(0)
    again = load_model(model_name)
    again.load_state_dict(torch.load(buffer, map_location="cpu", weights_only=True))
    return {
        "buffer_device": str(gpu.alignment_heads.device),
        "buffer_is_sparse": bool(gpu.alignment_heads.is_sparse),
        "heads_same_after_to_cuda": gpu.alignment_head_pairs() == cpu.alignment_head_pairs(),
        "heads_same_after_half": half.alignment_head_pairs() == cpu.alignment_head_pairs(),
        "heads_same_after_state_dict_round_trip": again.alignment_head_pairs() == cpu.alignment_head_pairs(),
    }


def word_time_differences(reference, other) -> np.ndarray:
    a = np.array([(w.start, w.end) for w in reference.words])
    b = np.array([(w.start, w.end) for w in other.words])
    if a.shape != b.shape:
        return np.full(max(len(a), len(b)) * 2, np.inf)
    return np.abs(a - b).reshape(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--set", default="timit-dev")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device here; this check needs one")

    checks = buffer_checks(args.model, args.device)
    for key, value in checks.items():
        print(f"{key}: {value}")

    models = {
        "cpu float32": load_model(args.model),
        f"{args.device} float32": load_model(args.model, device=args.device),
        f"{args.device} float16": load_model(args.model, device=args.device, dtype=torch.float16),
    }
    utterances = load_manifest(manifest(args.set))[: args.limit]
    aligned = {name: {} for name in models}
    texts = {name: {} for name in models}
    for u in utterances:
        audio = load_audio(u.audio)
        for name, model in models.items():
            aligned[name][u.id] = align(model, audio, u.text)
            texts[name][u.id] = transcribe(model, audio, temperature=0.0).text

    reference = "cpu float32"
    rows = {}
    for name in models:
        diffs = np.concatenate([word_time_differences(aligned[reference][i], aligned[name][i]) for i in aligned[name]])
        rows[name] = {
            "boundaries": int(diffs.size),
            "max_diff_ms": float(diffs.max() * 1000),
            "within_20ms_of_cpu": float(np.mean(diffs <= 0.020)),
            "transcript_equal_to_cpu": float(np.mean([texts[name][i] == texts[reference][i] for i in texts[name]])),
        }
    print(f"\n{args.model} on the first {len(utterances)} clips of {args.set}; {device_name(args.device)}\n")
    print(f"| {'run':16} | boundaries | max diff vs CPU ms | within 20 ms of CPU | transcript = CPU's |")
    print(f"|{'-' * 18}|-----------:|-------------------:|--------------------:|-------------------:|")
    for name, r in rows.items():
        print(
            f"| {name:16} | {r['boundaries']:10d} | {r['max_diff_ms']:18.1f} | {100 * r['within_20ms_of_cpu']:18.1f}% "
            f"| {100 * r['transcript_equal_to_cpu']:17.1f}% |"
        )
    accuracy = {name: score({u.id: (u.words, aligned[name][u.id].words) for u in utterances}) for name in models}
    print("\naccuracy against the reference boundaries:\n")
    print(format_table(accuracy))
    path = write_json(
        "gpu_check",
        {
            "args": vars(args),
            "device": device_name(args.device),
            "buffer": checks,
            "agreement": rows,
            "accuracy": {k: v.to_dict() for k, v in accuracy.items()},
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
