"""What the word-level global decode costs on ``align --manifest`` (issue #10: the default path must stay within
15% of its speed without refinement): ``align_corpus`` over timit-dev clips, interleaved and repeated, without
refinement, refined boundary by boundary, and refined by the global decode (the default), on one loaded model.

    PYTHONPATH=src .venv/bin/python benchmarks/precision_segment_speed.py [--model tiny.en] [--runs 3] [--clips 40]

Prints the median seconds and the ratios to the unrefined time (nothing is written).
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
from common import manifest  # noqa: E402
from whisper_align.alignment.words import AlignmentConfig  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.results.manifest import load_manifest  # noqa: E402
from whisper_align.tasks.corpus import align_corpus  # noqa: E402

SETTINGS = {"unrefined": (False, True), "boundary by boundary": (True, False), "global decode": (True, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clips", type=int, default=40)
    args = parser.parse_args()
    model = load_model(args.model)
    clips = load_manifest(manifest("timit-dev"))[: args.clips]
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.jsonl"
        path.write_text("".join(json.dumps({"id": u.id, "audio": str(u.audio), "text": u.text}) + "\n" for u in clips))
        for run in range(args.runs + 1):  # the first round warms up
            names = list(SETTINGS)
            for name in names[run % 3 :] + names[: run % 3]:  # the order rotates: no setting always goes first
                refine, joint = SETTINGS[name]
                model.boundary_refiner.joint = joint
                started = time.perf_counter()
                config = AlignmentConfig(refine=refine)
                out = Path(folder) / f"out-{run}-{name.replace(' ', '-')}.jsonl"  # a fresh file: no resuming
                align_corpus(model, path, out, config=config, progress=False)
                if run:
                    times[name].append(time.perf_counter() - started)
    base = statistics.median(times["unrefined"])
    print(f"{args.model}, {args.clips} clips, {torch.get_num_threads()} thread(s)")
    for name, values in times.items():
        median = statistics.median(values)
        runs = ", ".join(f"{t:.2f}" for t in values)
        print(f"{name:22s} {median:6.2f} s  x{median / base:.3f}  (runs: {runs})")


if __name__ == "__main__":
    main()
