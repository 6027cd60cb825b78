"""Variants of the word-level global decode (issue #10, alignment/segment_decode.py), scored on what the
refinement never saw, from cached model passes (benchmarks/precision_segment_cache.py) so that each variant
costs seconds.

Protocol exactly as benchmarks/refine_cv.py's "one clip per window" rows: timit-dev speakers split alternately
into halves, each scored with a refinement fitted (``refine.fit``, radius 25) on the other half plus festival's
clips 0, 3, ...; festival's clips 1, 4, ... scored with one fitted on all of timit-dev plus festival's 0, 3, ...
The output words are what ``align`` returns for a clip (punctuation merged, monotone, empty words widened) and
are scored by ``whisper_align.results.evaluation.score``. The duration prior's constants (ChainSettings) were
fitted on festival's clips 0, 3, ... only (``log seconds = -2.803 + 1.065 log letters``, sd 0.357).

    PYTHONPATH=src .venv/bin/python benchmarks/precision_segment_cache.py --models tiny.en
    PYTHONPATH=src .venv/bin/python benchmarks/precision_segment.py --model tiny.en

Writes benchmarks/results/precision_segment.json (fitted refinements are cached in /tmp/segment-cache).
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from whisper_align.alignment.boundary_features import word_activations  # noqa: E402
from whisper_align.alignment.refine import LabelledClip, RefineParams, fit, frame_tracks, refine_boundaries  # noqa: E402
from whisper_align.alignment.segment_decode import ChainSettings, decode_chain  # noqa: E402
from whisper_align.alignment.word_refinement import lagging_tail, refinable  # noqa: E402
from whisper_align.alignment.words import (  # noqa: E402
    AlignmentConfig,
    WordTiming,
    align_words,
    merge_punctuations,
    resolve_config,
    widen_empty_words,
)
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.checkpoints.tokenizers import get_tokenizer  # noqa: E402
from whisper_align.frontend.audio import TOKENS_PER_SECOND  # noqa: E402
from whisper_align.results.evaluation import score  # noqa: E402
from whisper_align.tasks.align import enforce_monotone  # noqa: E402
from whisper_align.tasks.pieces import piece_matrix  # noqa: E402
from whisper_align.tasks.refiner_fit import DEFAULT_RADIUS, _targets  # noqa: E402

CACHE = Path("/tmp/segment-cache")
Variant = Callable[["Prepared", RefineParams], "tuple[np.ndarray, np.ndarray] | None"]


@dataclass
class Prepared:
    """One cached utterance aligned without refinement: its words before punctuation merging, the words the
    refinement moves (``chosen``) and those words as a LabelledClip."""

    item: dict
    timings: list[WordTiming]
    chosen: list[int]
    clip: LabelledClip

    def letters(self) -> list[int]:
        return [sum(c.isalnum() for c in self.timings[k].word) for k in self.chosen]


def prepare(name: str, past_end: bool | str = False) -> list[Prepared]:
    """Every cached utterance of ``name``; with ``past_end`` the words flagged past the end are refined too, with
    ``past_end="lagging"`` only where ``lagging_tail`` (the default since) calls them a lagging path."""
    model = load_model(name)
    tokenizer = get_tokenizer(model)
    config = resolve_config(AlignmentConfig(refine=False), model.alignment_time_shift)
    with open(CACHE / f"{name}.pkl", "rb") as handle:
        items = pickle.load(handle)
    out = []
    for it in items:
        qk = torch.from_numpy(it["qk"])
        matrix = piece_matrix(tokenizer, qk, config).numpy()
        words, word_tokens = tokenizer.split_to_word_tokens(it["tokens"] + [tokenizer.eot])
        timings = align_words(
            matrix, words, word_tokens, it["probs"], config, duration=qk.shape[-1] / TOKENS_PER_SECOND
        )
        heard = [k for k, w in enumerate(timings) if any(c.isalnum() for c in w.word)]
        move = past_end is True or (past_end == "lagging" and lagging_tail(timings, qk.shape[-1] / TOKENS_PER_SECOND))
        chosen = [k for k in heard if move or refinable(timings[k])]
        bounds = np.concatenate([[0], np.cumsum([len(w.tokens) for w in timings])])
        reference = [(str(w[0]), float(w[1]), float(w[2])) for w in it["reference"]]
        true_starts, true_ends = _targets(timings, chosen, reference)
        mel = it["mel"].astype(np.float64)
        rows = [(int(bounds[k]), int(bounds[k + 1])) for k in chosen]
        activation = word_activations(matrix, rows, float(config.time_shift), mel.shape[1])
        coarse = [np.array([getattr(timings[k], side) for k in chosen]) for side in ("start", "end")]
        clip = LabelledClip(mel, *coarse, true_starts, true_ends, activation, it["states"].astype(np.float64))
        out.append(Prepared(it, timings, chosen, clip))
    return out


def folds(preps: list[Prepared]) -> list[tuple[str, list[Prepared], list[Prepared]]]:
    """(set, fit, test) triples of benchmarks/refine_cv.py's protocol."""
    timit = [p for p in preps if p.item["set"] == "timit-dev"]
    festival = [p for p in preps if p.item["set"] == "festival"]
    fest_fit = [p for p in festival if p.item["index"] % 3 == 0]
    fest_test = [p for p in festival if p.item["index"] % 3 == 1]
    speakers = sorted({p.item["speaker"] for p in timit})
    halves = [set(speakers[0::2]), set(speakers[1::2])]
    out = []
    for a, b in ((0, 1), (1, 0)):
        fit_part = [p for p in timit if p.item["speaker"] in halves[a]] + fest_fit
        out.append(("timit-dev", fit_part, [p for p in timit if p.item["speaker"] in halves[b]]))
    out.append(("festival", timit + fest_fit, fest_test))
    return out


def fitted(name: str, preps: list[Prepared]) -> list[RefineParams]:
    """Each fold's refinement (cached under /tmp/segment-cache)."""
    path = CACHE / f"{name}-params-base-r{DEFAULT_RADIUS}.pkl"
    if path.exists():
        with open(path, "rb") as handle:
            return pickle.load(handle)
    params = [fit([p.clip for p in part], radius=DEFAULT_RADIUS) for _, part, _ in folds(preps)]
    with open(path, "wb") as handle:
        pickle.dump(params, handle)
    return params


def output(prep: Prepared, times: tuple[np.ndarray, np.ndarray] | None) -> list[tuple[str, float, float]]:
    """The words as ``align`` returns them, with the chosen words' times replaced by ``times``."""
    timings = copy.deepcopy(prep.timings)
    if times is not None:
        for k, start, end in zip(prep.chosen, *times):
            timings[k].start, timings[k].end = float(start), float(end)
    merge_punctuations(timings)
    words = [t for t in timings if t.word]
    duration = prep.item["duration"]
    widen_empty_words(enforce_monotone(words, duration), 0.04, 0.0, duration)
    return [(w.word, round(w.start, 3), round(w.end, 3)) for w in words]


def evaluate(preps: list[Prepared], params: list[RefineParams], variant: Variant) -> dict[str, dict[str, float]]:
    pairs: dict[str, dict] = {}
    for (set_name, _, test), p in zip(folds(preps), params):
        for prep in test:
            words = output(prep, variant(prep, p))
            pairs.setdefault(set_name, {})[prep.item["id"]] = (prep.item["reference"], words)
    out = {}
    for set_name, rows in pairs.items():
        m = score(rows)
        out[set_name] = dict(
            mean_ms=0.5 * (m.start_mae_ms + m.end_mae_ms),
            median_ms=m.median_abs_ms,
            within_50=m.within[50],
            within_100=m.within[100],
            within_200=m.within[200],
        )
    return out


def per_boundary(prep: Prepared, p: RefineParams) -> tuple[np.ndarray, np.ndarray]:
    c = prep.clip
    return refine_boundaries(p, frame_tracks(c.mel), c.starts, c.ends, c.activation, c.states)


def chain(**settings: float) -> Variant:
    chosen = ChainSettings(**settings)  # type: ignore[arg-type]

    def run(prep: Prepared, p: RefineParams) -> tuple[np.ndarray, np.ndarray]:
        c = prep.clip
        return decode_chain(p, frame_tracks(c.mel), c.starts, c.ends, prep.letters(), c.activation, c.states, chosen)

    return run


ORDER_ONLY = dict(anchor=1.0, duration_weight=0.0, gap_weight=0.0)
VARIANTS: dict[str, Variant] = {
    "unrefined": lambda prep, p: None,
    "refined boundary by boundary (the default before)": per_boundary,
    "chain, order only, band 25, Laplace 20": chain(**ORDER_ONLY, band=25, prior_scale=20),
    "chain, order only, band 80, Laplace 20": chain(**ORDER_ONLY, band=80, prior_scale=20),
    "chain, order only, band 80, Laplace 40": chain(**ORDER_ONLY, band=80, prior_scale=40),
    "+ duration prior (weight 1)": chain(anchor=1.0, band=80, prior_scale=40, gap_weight=0.0),
    "+ gap prior (weight 1), no duration prior": chain(
        anchor=1.0, band=80, prior_scale=40, duration_weight=0.0, gap_weight=1
    ),
    "+ duration 1 + gap 1": chain(anchor=1.0, band=80, prior_scale=40, gap_weight=1),
    "duration 2, gap 0.5, band 80, Laplace 80": chain(anchor=1.0, band=80, prior_scale=80, duration_weight=2),
    "... fitted offset prior at half weight": chain(anchor=0.5, band=80, prior_scale=80, duration_weight=2),
    "... without the fitted offset prior": chain(band=80, prior_scale=80, duration_weight=2),
    "no offset prior, duration 1, band 80, Laplace 200": chain(band=80),
    "no offset prior, duration 1, band 120, Laplace 200 (kept)": chain(),
    "kept, gap weight 1": chain(gap_weight=1),
    "kept, duration weight 1.5": chain(duration_weight=1.5),
    "kept, band 150, Laplace 300, duration 1.5": chain(band=150, prior_scale=300, duration_weight=1.5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        preps = prepare(args.model)
        with_past_end = prepare(args.model, past_end=True)
        lagging = prepare(args.model, past_end="lagging")
    params = fitted(args.model, preps)
    results = {}
    runs = [(name, preps, variant) for name, variant in VARIANTS.items()]
    runs.append(("kept, also moving words flagged past_end (dropped: see README)", with_past_end, chain()))
    runs.append(("kept, moving words flagged past_end where lagging_tail says so (the default)", lagging, chain()))
    for name, data, variant in runs:
        started = time.time()
        results[name] = evaluate(data, params, variant)
        cells = " | ".join(
            f"{s}: mean {m['mean_ms']:.1f} median {m['median_ms']:.1f} ≤50 {m['within_50']:.1%} "
            f"≤100 {m['within_100']:.1%}"
            for s, m in results[name].items()
        )
        print(f"{name}: {cells} ({time.time() - started:.0f} s)", flush=True)
    path = Path(__file__).resolve().parent / "results" / "precision_segment.json"
    models = json.loads(path.read_text()).get("models", {}) if path.is_file() else {}
    models[args.model] = results  # beside the other models' last results
    print(f"wrote {write_json('precision_segment', {'protocol': __doc__, 'models': models})}")


if __name__ == "__main__":
    main()
