"""Fit the boundary refinements shipped for the bundled models (src/whisper_align/alignment/refiners/NAME.json).

Fitted on every timit-dev utterance and on festival's clips 0, 3, 6, ... (never on festival's clips 1, 4, 7, ...,
which benchmarks/precision.py and benchmarks/refine_cv.py score), with each model's official heads and calibrated
time shift. Their accuracy on speakers they never heard is what benchmarks/refine_cv.py measures (fitted there on
half of timit-dev's speakers, scored on the other half).

    .venv/bin/python tools/fit_bundled_refiners.py --models tiny.en base
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.results.manifest import load_manifest  # noqa: E402
from whisper_align.tasks.refiner_fit import fit_refiner  # noqa: E402

OUT = ROOT / "src" / "whisper_align" / "alignment" / "refiners"


def eval_root() -> Path:
    import os

    return Path(os.environ.get("WHISPER_ALIGN_EVAL", ROOT.parent / "shared" / "eval"))


def training_utterances() -> list:
    timit = load_manifest(eval_root() / "timit-dev" / "manifest.jsonl")
    festival = [u for k, u in enumerate(load_manifest(eval_root() / "festival" / "manifest.jsonl")) if k % 3 == 0]
    return list(timit) + festival


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    utterances = training_utterances()
    for name in args.models:
        started = time.time()
        model = load_model(name)
        model.boundary_refiner = None  # fit on the unrefined default mode
        params = fit_refiner(model, utterances, progress=True)
        target = OUT / f"{name}.json"
        params.save(target)
        print(f"{name}: fitted on {len(utterances)} utterances in {time.time() - started:.0f} s -> {target}")


if __name__ == "__main__":
    main()
