"""What the boundary refinement costs (issue #10: the default path must stay within 15% of its speed without it).

Runs, interleaved and repeated, ``align_corpus`` (packed, as ``align --manifest``) over timit-dev clips and
``transcribe(word_timestamps=True)`` over a few of them joined into one recording, each with the refinement on
(the default) and off, on the same loaded model; reports the median seconds and the ratio.

    .venv/bin/python benchmarks/refine_speed.py [--model tiny.en] [--runs 3] [--clips 40]

Writes benchmarks/results/refine_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import manifest, write_json  # noqa: E402
from whisper_align.alignment.words import AlignmentConfig  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.frontend.audio import load_audio  # noqa: E402
from whisper_align.results.manifest import load_manifest  # noqa: E402
from whisper_align.tasks.corpus import align_corpus  # noqa: E402
from whisper_align.tasks.transcribe import transcribe  # noqa: E402


def corpus_run(model, path: Path, refine: bool) -> float:  # noqa: ANN001
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        align_corpus(model, path, Path(folder) / "out.jsonl", config=AlignmentConfig(refine=refine), progress=False)
        return time.perf_counter() - started


def transcribe_run(model, audio: np.ndarray, refine: bool) -> float:  # noqa: ANN001
    torch.manual_seed(0)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transcribe(model, audio, word_timestamps=True, alignment_config=AlignmentConfig(refine=refine))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clips", type=int, default=40)
    args = parser.parse_args()
    model = load_model(args.model)
    clips = load_manifest(manifest("timit-dev"))[: args.clips]
    audio = np.concatenate([np.concatenate([load_audio(u.audio), np.zeros(8000, np.float32)]) for u in clips[:12]])
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.jsonl"
        path.write_text("".join(json.dumps({"id": u.id, "audio": str(u.audio), "text": u.text}) + "\n" for u in clips))
        corpus_run(model, path, True)  # warm-up
        for _ in range(args.runs):
            for refine in (True, False):
                times.setdefault(f"align --manifest, refine={refine}", []).append(corpus_run(model, path, refine))
                times.setdefault(f"transcribe, refine={refine}", []).append(transcribe_run(model, audio, refine))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratios = {
        work: medians[f"{work}, refine=True"] / medians[f"{work}, refine=False"]
        for work in ("align --manifest", "transcribe")
    }
    for name, value in medians.items():
        print(f"{name:40s} {value:7.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times[name])})")
    for work, ratio in ratios.items():
        print(f"{work}: refined / unrefined time = {ratio:.3f}")
    payload = {
        "args": vars(args),
        "threads": torch.get_num_threads(),
        "seconds": times,
        "median_s": medians,
        "time_ratio": ratios,
        "audio_s": {"corpus": sum(len(load_audio(u.audio)) for u in clips) / 16000, "transcribe": len(audio) / 16000},
    }
    print(f"wrote {write_json('refine_speed', payload)}")


if __name__ == "__main__":
    main()
