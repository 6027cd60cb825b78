"""Fit the boundary refinement (alignment/refine.py) on all labelled data and write its parameters as JSON.

Fits on every timit-dev utterance and festival's clips 0, 3, 6, ... (never on festival's 1, 4, 7, ... that
precision.py scores), starting from the default mode's words (official heads, calibrated shift), with
encoder-state detectors and a 250 ms radius (the best row of precision.py). Needs precision_cache.py's cache.

    PYTHONPATH=src .venv/bin/python benchmarks/fit_refine.py --model tiny.en --out refine-tiny.en.json
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from precision import CACHE, prepare  # noqa: E402
from whisper_align.alignment import refine as R  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--out", required=True, help="where to write the parameters (JSON)")
    parser.add_argument("--radius", type=int, default=25, help="search radius in 10 ms frames")
    args = parser.parse_args()
    with open(CACHE / f"{args.model}.pkl", "rb") as handle:
        data = pickle.load(handle)
    items = [it for it in data["items"] if it["set"] == "timit-dev" or it["index"] % 3 == 0]
    started = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = [prepare(it, data["official"], data["time_shift"]) for it in items]
    clips = [
        R.LabelledClip(
            it["mel"].astype(np.float64),
            p.starts,
            p.ends,
            p.true_starts,
            p.true_ends,
            p.activation,
            p.enc.astype(np.float64),
        )
        for it, p in zip(items, prepared)
    ]
    params = R.fit(clips, radius=args.radius)
    params.save(args.out)
    print(f"fitted on {len(clips)} clips in {time.time() - started:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
