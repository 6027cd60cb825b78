"""Corpus alignment throughput: ours (packed windows) against openai-whisper's find_alignment loop.

Both align the same manifest with the same weights, heads and CPU threads, in this process. The reference is
what a user of openai-whisper writes: per clip, the log-mel of the clip padded to 30 s, then
``whisper.timing.find_alignment`` (which runs the encoder and the decoder). Ours is
``corpus.align_corpus`` (clips packed into 30 s windows), and, for comparison, the same without packing.
Each is run ``--runs`` times; the table gives medians and the ratio to the reference. Accuracy of each run is
scored too, so speed is never bought with wrong times.

    .venv/bin/python benchmarks/throughput.py [--model tiny.en] [--set timit-dev] [--runs 3] [--device cuda]

On a GPU (``--device cuda``) both run there in float32, ours also in float16, and the results go to
``throughput_cuda.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, manifest, openai_model, synchronize, write_json  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.checkpoints.tokenizers import get_tokenizer  # noqa: E402
from whisper_align.frontend.audio import N_SAMPLES, load_audio  # noqa: E402
from whisper_align.results.evaluation import format_table, score  # noqa: E402
from whisper_align.results.manifest import load_manifest
from whisper_align.tasks.align import prepare_text  # noqa: E402
from whisper_align.tasks.corpus import align_corpus  # noqa: E402


def run_openai(reference, model, utterances) -> dict:
    import whisper
    import whisper.timing
    import whisper.tokenizer

    tokenizer = get_tokenizer(model)
    ref_tokenizer = whisper.tokenizer.get_tokenizer(
        model.is_multilingual,
        num_languages=model.num_languages,
        language="en" if model.is_multilingual else None,
        task="transcribe",
    )
    out = {}
    for u in utterances:
        audio = load_audio(u.audio)
        mel = whisper.log_mel_spectrogram(torch.from_numpy(audio), n_mels=reference.dims.n_mels, padding=N_SAMPLES)
        mel = mel.to(reference.device)
        tokens = prepare_text(tokenizer, u.text)
        with torch.no_grad():
            timings = whisper.timing.find_alignment(
                reference, ref_tokenizer, tokens, mel[:, :3000], mel.shape[-1] - 3000
            )
        out[u.id] = [(t.word, float(t.start), float(t.end)) for t in timings]
    synchronize(reference.device)
    return out


def run_ours(model, manifest_path: Path, pack: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        align_corpus(model, manifest_path, out, pack=pack, progress=False)
        lines = [json.loads(line) for line in out.read_text().splitlines()]
    synchronize(model.device)
    return {line["id"]: [(w["word"], w["start"], w["end"]) for w in line.get("words", [])] for line in lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--set", default="timit-dev")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    manifest_path = manifest(args.set)
    utterances = load_manifest(manifest_path)
    audio_seconds = sum(len(load_audio(u.audio)) for u in utterances) / 16000
    model = load_model(args.model)
    reference = openai_model(model)
    model = model.to(args.device)
    contenders = {
        "openai find_alignment loop": lambda: run_openai(reference, model, utterances),
        "whisper-align, one clip per window": lambda: run_ours(model, manifest_path, pack=False),
        "whisper-align, packed windows": lambda: run_ours(model, manifest_path, pack=True),
    }
    if reference is None:
        del contenders["openai find_alignment loop"]
    else:
        reference = reference.to(args.device)
    if model.device.type == "cuda":
        half = load_model(args.model, device=args.device, dtype=torch.float16)
        contenders["whisper-align, packed windows, fp16"] = lambda: run_ours(half, manifest_path, pack=True)
        for fn in list(contenders.values()):
            fn()  # warm-up: CUDA context, kernels and cuBLAS handles

    times: dict[str, list[float]] = {name: [] for name in contenders}
    accuracy = {}
    for run in range(args.runs):
        for name, fn in contenders.items():
            start = time.perf_counter()
            words = fn()
            times[name].append(time.perf_counter() - start)
            if run == 0:
                accuracy[name] = score({u.id: (u.words, words.get(u.id, [])) for u in utterances})
            print(f"run {run + 1}/{args.runs} {name}: {times[name][-1]:.2f} s", file=sys.stderr)

    base = statistics.median(times[next(iter(contenders))])
    rows = []
    where = device_name(model.device) if model.device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(
        f"\n{args.set}: {len(utterances)} clips, {audio_seconds / 60:.1f} min of audio, model {args.model}, "
        f"{where}, median of {args.runs} runs\n"
    )
    print(f"| {'contender':36} | {'median s':>8} | {'x realtime':>10} | {'speed-up':>8} |")
    print(f"|{'-' * 38}|{'-' * 10}:|{'-' * 12}:|{'-' * 10}:|")
    for name, ts in times.items():
        median = statistics.median(ts)
        rows.append(
            {
                "contender": name,
                "seconds": ts,
                "median_s": median,
                "speedup": base / median,
                "realtime_factor": audio_seconds / median,
                "accuracy": accuracy[name].to_dict(),
            }
        )
        print(f"| {name:36} | {median:8.2f} | {audio_seconds / median:10.1f} | {base / median:7.2f}x |")
    print("\naccuracy of each contender (first run):\n")
    print(format_table(accuracy))
    name = "throughput" if args.device == "cpu" else f"throughput_{model.device.type}"
    path = write_json(
        name,
        {"args": vars(args), "device": where, "clips": len(utterances), "audio_seconds": audio_seconds, "rows": rows},
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
