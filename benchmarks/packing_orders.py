"""Does a packed clip's alignment depend on what it is packed with? ``align --manifest`` over timit-dev in three
clip orders, with and without the two rules that keep packed clips to themselves (issue #10):

- ``isolate``: each clip's decoder reads only its own stretch of the window (``packing.ISOLATE_CLIPS``);
- ``realign``: a clip the model barely hears is aligned again in a window of its own
  (``align_corpus(realign=...)``, ``--no-realign``).

Orders: the two speaker halves of benchmarks/refine_cv.py, each its own manifest (what that benchmark packs), and
all 80 clips shuffled with seeds 1 and 2. Every variant is compared with one clip per window (``align``, which
packing cannot affect). All runs use the model's shipped boundary refinement, which was fitted on all of
timit-dev: the numbers compare packing variants with each other and with one clip per window under the same
refinement, not with other aligners (held-out figures: refine_cv.py). "worst clip" is the largest mean boundary
error of one clip; seconds are the wall time of the three orders together (indicative: 2 threads, one run).

    .venv/bin/python benchmarks/packing_orders.py [--models tiny.en base]

Writes benchmarks/results/packing_orders.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import align_utterances, manifest, speaker_halves, write_json  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.results.manifest import Utterance, load_manifest  # noqa: E402
from whisper_align.tasks import packing  # noqa: E402
from whisper_align.tasks.align import align  # noqa: E402

VARIANTS = {  # name: (isolate, realign)
    "shared (before)": (False, False),
    "isolate": (True, False),
    "isolate + realign (the default)": (True, True),
}


def orders(clips: list[Utterance]) -> dict[str, list[list[Utterance]]]:
    """{order name: the manifests it is made of}."""
    out = {"speaker halves": speaker_halves(clips)}
    for seed in (1, 2):
        shuffled = list(clips)
        random.Random(seed).shuffle(shuffled)
        out[f"shuffle {seed}"] = [shuffled]
    return out


def packed(model, manifests: list[list[Utterance]], realign: bool) -> dict[str, list[tuple[float, float]]]:  # noqa: ANN001
    """{id: [(start, end)]} from align_corpus over each manifest."""
    out: dict[str, list[tuple[float, float]]] = {}
    for clips in manifests:
        for clip, words in align_utterances(model, clips, realign=realign).items():
            out[clip] = [(w["start"], w["end"]) for w in words]
    return out


def errors(clips: list[Utterance], hyp: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    """Mean boundary error (ms) over all words and the worst clip's; clips whose word count differs count as the
    whole clip wrong (they never did in these runs)."""
    per_clip = []
    for u in clips:
        words = hyp[u.id]
        if len(words) != len(u.words):
            raise SystemExit(f"{u.id}: {len(words)} words aligned, {len(u.words)} in the reference")
        per_clip.append([abs(h[0] - r[1]) + abs(h[1] - r[2]) for h, r in zip(words, u.words)])
    every = np.concatenate(per_clip) / 2
    return {"mean_ms": float(every.mean() * 1000), "worst_clip_ms": float(max(np.mean(c) / 2 for c in per_clip) * 1000)}


def run_model(name: str) -> dict:
    model = load_model(name)
    clips = load_manifest(manifest("timit-dev"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = {u.id: [(w.start, w.end) for w in align(model, u.audio, u.text).words] for u in clips}
        result = {"one clip per window": errors(clips, alone), "variants": {}}
        for variant, (isolate, realign) in VARIANTS.items():
            packing.ISOLATE_CLIPS = isolate
            rows = {}
            started = time.perf_counter()
            for order, manifests in orders(clips).items():
                rows[order] = errors(clips, packed(model, manifests, realign))
            rows["seconds"] = time.perf_counter() - started
            result["variants"][variant] = rows
            print(name, variant, json.dumps(rows), flush=True)
    packing.ISOLATE_CLIPS = True
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    args = parser.parse_args()
    results = {name: run_model(name) for name in args.models}
    print(f"wrote {write_json('packing_orders', {'protocol': __doc__, 'args': vars(args), 'models': results})}")


if __name__ == "__main__":
    main()
