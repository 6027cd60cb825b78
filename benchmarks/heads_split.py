"""Found alignment heads vs official and default ones, on speakers the search never saw.

timit-dev's 8 speakers are split into two halves of 4 (sorted speaker ids, alternating). On one half the heads are
found twice, supervised (``discovery.find_heads``: greedy selection, size chosen on a held-out speaker of that
half) and unsupervised (``discovery.find_heads_unsupervised``: reference times ignored); on the other half four
sets are scored: official, default (every head of the last half of the decoder), found-supervised and
found-unsupervised. Both directions are run (find on A, test on B; find on B, test on A), and the two test halves
pooled give every utterance once. Attention is captured once per model and utterance, so everything after that
reuses it. The sets are chosen in the default alignment mode and scored in it and in conformance mode.

Time shifts (default mode): each set is scored with the shift a user gets with it. The official heads are scored
without and with the model's calibrated shift (measured on festival, another data set); the supervised set with the
shift ``find_heads`` measured on its own finding half; the unsupervised set with the label-free shift
``find_heads_unsupervised`` measured on its finding half (its median boundary moved to the default set's); the
default set without one.

    .venv/bin/python benchmarks/heads_split.py [--models tiny.en base] [--limit N]

Writes benchmarks/results/heads_split.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from common import manifest, write_json  # noqa: E402
from whisper_align.alignment.words import AlignmentConfig  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.heads import discovery as D  # noqa: E402
from whisper_align.heads.scoring import word_times  # noqa: E402
from whisper_align.results.evaluation import format_table, score  # noqa: E402
from whisper_align.results.manifest import load_manifest


def run_model(name: str, utterances: list, max_heads: int) -> dict:
    model = load_model(name)
    started = time.time()
    captures = D.capture_attention(model, utterances, progress=True)
    capture_s = time.time() - started
    speakers = sorted({u.speaker for u in utterances})
    halves = {"A": set(speakers[0::2]), "B": set(speakers[1::2])}
    ids = {k: [u.id for u in utterances if u.speaker in v] for k, v in halves.items()}
    config = AlignmentConfig()
    modes = {"default": config, "conformance": AlignmentConfig(mode="conformance")}

    folds, hypotheses = {}, {mode: {} for mode in modes}
    for find_on, test_on in (("A", "B"), ("B", "A")):
        part = captures.subset(ids[find_on])
        supervised = D.find_heads(part, config, holdout=0.3, split_by="auto", max_heads=max_heads)
        unsupervised = D.find_heads_unsupervised(part, config, max_heads=max_heads)
        sets = {
            **D.reference_sets(captures),
            "found (supervised)": captures.flat(supervised.mask),
            "found (unsupervised)": captures.flat(unsupervised.mask),
        }
        test = captures.subset(ids[test_on])
        fold = {
            "find_on": sorted(halves[find_on]),
            "test_on": sorted(halves[test_on]),
            "supervised": supervised.to_dict(),
            "unsupervised": unsupervised.to_dict(),
            "overlap": D.overlap(supervised.mask, unsupervised.mask),
            "metrics": {},
        }
        official = next(k for k in sets if k.startswith("official"))
        sets = {
            official: sets[official],
            f"{official} + calibrated shift": sets[official],
            **{k: v for k, v in sets.items() if k != official},
        }
        shifts = {
            f"{official} + calibrated shift": model.alignment_time_shift,
            "found (supervised)": supervised.time_shift or 0.0,
            "found (unsupervised)": unsupervised.time_shift or 0.0,
        }
        for mode, cfg in modes.items():
            metrics = {}
            for set_name, heads in sets.items():
                set_cfg = cfg if cfg.conformance else dataclasses.replace(cfg, time_shift=shifts.get(set_name, 0.0))
                rows = [(item.id, item.reference, word_times(item, heads, set_cfg)) for item in test.items(cfg)]
                metrics[set_name] = score(rows)
                hypotheses[mode].setdefault(set_name, []).extend(rows)
            fold["metrics"][mode] = {k: m.to_dict() for k, m in metrics.items()}
            if mode == "default":
                print(
                    f"\n{name}: found on {find_on} {sorted(halves[find_on])}, tested on {test_on}; supervised "
                    f"{supervised.pairs} (shift {supervised.time_shift}), unsupervised {unsupervised.pairs}"
                )
                print(format_table(metrics))
        folds[f"find {find_on} -> test {test_on}"] = fold

    pooled = {mode: {k: score(v) for k, v in per_set.items()} for mode, per_set in hypotheses.items()}
    for mode, rows in pooled.items():
        print(f"\n{name}, both test halves pooled ({len(captures.captures)} utterances), {mode} mode:")
        print(format_table(rows))
    return {
        "capture_seconds": capture_s,
        "skipped": captures.skipped,
        "folds": folds,
        "pooled": {mode: {k: m.to_dict() for k, m in rows.items()} for mode, rows in pooled.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--max-heads", type=int, default=12)
    parser.add_argument("--limit", type=int, default=None, help="first N utterances only (a quick look)")
    args = parser.parse_args()
    utterances = load_manifest(manifest("timit-dev"))[: args.limit]
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.models:
            results[name] = run_model(name, utterances, args.max_heads)
    path = write_json(
        "heads_split",
        {
            "eval_set": "timit-dev",
            "n_utterances": len(utterances),
            "objective": "(within 50 ms + within 100 ms) / 2 - median error (s)",
            "models": results,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
