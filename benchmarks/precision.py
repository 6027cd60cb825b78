"""Word-boundary precision (issue #10): the default path's boundaries against learned refinements of them.

Protocol (nothing is scored on what fitted it):

* timit-dev: speakers sorted and split alternately into halves A and B (as heads_split.py); each half is scored
  with everything fitted on the other half (plus, where a row says so, festival's fitting clips); both test
  halves pooled.
* festival: fitted on clips 0, 3, 6, ... (the clips the official time shifts were calibrated on) and scored on
  clips 1, 4, 7, ...; rows that add timit-dev fit on all of it.

Every row starts from the default mode's words (official heads, calibrated shift, one clip per window). Run
benchmarks/precision_cache.py first (it caches attention, log-mel and encoder states in /tmp/precision-cache).

    PYTHONPATH=src .venv/bin/python benchmarks/precision.py [--models tiny.en base]

Writes benchmarks/results/precision.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from common import RESULTS, write_json  # noqa: E402
from whisper_align.alignment import refine as R  # noqa: E402
from whisper_align.alignment.words import AlignmentConfig, WordTiming, align_words, merge_punctuations  # noqa: E402
from whisper_align.heads import discovery as D  # noqa: E402
from whisper_align.heads.scoring import head_matrices  # noqa: E402
from whisper_align.results.evaluation import Metrics, match_words, score  # noqa: E402

CACHE = Path("/tmp/precision-cache")


@dataclass
class Prepared:
    """One utterance: the default mode's words and what the refinement needs, with reference targets."""

    id: str
    set: str
    index: int
    speaker: str
    words: list[WordTiming]  # before punctuation merging
    real: np.ndarray  # indices of words with letters or digits
    tracks: R.FrameTracks
    activation: np.ndarray  # (real words, frames)
    starts: np.ndarray  # coarse (default mode), real words
    ends: np.ndarray
    true_starts: np.ndarray  # NaN where the word is unmatched
    true_ends: np.ndarray
    reference: list
    enc: np.ndarray  # (positions, D) float16


def prepare(item: dict, heads: list[int], shift: float) -> Prepared:
    scores = torch.from_numpy(item["scores"][heads].astype(np.float32))
    matrix = head_matrices(scores, scores.shape[-1])[:, item["n_sot"] : -1].mean(dim=0).numpy()
    config = AlignmentConfig(time_shift=shift)
    n_text = sum(len(t) for t in item["word_tokens"]) - 1
    words = align_words(matrix, item["words"], item["word_tokens"], [0.0] * n_text, config, duration=item["duration"])
    real = np.array([k for k, w in enumerate(words) if any(c.isalnum() for c in w.word)], dtype=np.int64)
    bounds = np.pad(np.cumsum([len(w.tokens) for w in words]), (1, 0))
    tracks = R.frame_tracks(item["mel"].astype(np.float32))
    rows = [(int(bounds[k]), int(bounds[k + 1])) for k in real]
    activation = R.word_activations(matrix, rows, shift, tracks.n_frames)
    starts = np.array([words[k].start for k in real])
    ends = np.array([words[k].end for k in real])
    true_starts, true_ends = targets(words, real, item["reference"])
    return Prepared(
        item["id"],
        item["set"],
        item["index"],
        item["speaker"],
        words,
        real,
        tracks,
        activation,
        starts,
        ends,
        true_starts,
        true_ends,
        item["reference"],
        item["enc"],
    )


def hypothesis(words: list[WordTiming], real: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list:
    """(word, start, end) after putting new times on the real words, clamping the rest, merging punctuation."""
    out = copy.deepcopy(words)
    for k, s, e in zip(real, starts, ends):
        out[k].start, out[k].end = float(s), float(e)
    last = 0.0
    for w in out:
        w.start = max(w.start, last)
        w.end = max(w.end, w.start)
        last = w.end
    merge_punctuations(out)
    return [(w.word, w.start, w.end) for w in out if w.word]


def targets(words: list[WordTiming], real: np.ndarray, reference: list) -> tuple[np.ndarray, np.ndarray]:
    """Reference start/end of each real word (NaN when unmatched); a word matched piece by piece takes its first
    piece's start and last piece's end."""
    merged = copy.deepcopy(words)
    for k, w in enumerate(merged):
        w.probability = k  # remember the pre-merge index through the merge
    merge_punctuations(merged)
    kept = [w for w in merged if w.word]
    pairs = match_words(reference, [(w.word, w.start, w.end) for w in kept])
    starts, ends = {}, {}
    for i, j in pairs:
        k = int(kept[j].probability)
        starts.setdefault(k, reference[i][1])
        ends[k] = reference[i][2]
    ts = np.array([starts.get(int(k), np.nan) for k in real])
    te = np.array([ends.get(int(k), np.nan) for k in real])
    return ts, te


# ---- methods ----------------------------------------------------------------------------------------------------

Method = Callable[[list[Prepared], list[Prepared]], dict[str, tuple[np.ndarray, np.ndarray]]]


def baseline(train: list[Prepared], test: list[Prepared]) -> dict:
    return {p.id: (p.starts, p.ends) for p in test}


def reshift(train: list[Prepared], test: list[Prepared]) -> dict:
    """A global shift per boundary kind: the training median signed error removed."""
    ds = np.nanmedian(np.concatenate([p.starts - p.true_starts for p in train]))
    de = np.nanmedian(np.concatenate([p.ends - p.true_ends for p in train]))
    return {p.id: (p.starts - ds, p.ends - de) for p in test}


GROUPS = {
    "prior": [0, 1, 2],
    "level": list(range(3, 18)),
    "flux": [18, 19],
    "attention": [20, 21],
    "detector": [22],
}


def boundary_data(
    p: Prepared, kind: str, radius: int, columns: Sequence[int], detectors: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates and features of ``p``'s boundaries of one kind, features outside ``columns`` zeroed."""
    coarse = p.starts if kind == "start" else p.ends
    evidence = None
    if detectors:
        evidence = R.evidence_track(detectors[kind], p.enc.astype(np.float64), p.tracks.n_frames)
    frames, x = R.boundary_inputs(p.tracks, coarse, kind, radius, p.activation, evidence)
    mask = np.zeros(x.shape[-1], dtype=bool)
    mask[list(columns)] = True
    x[..., ~mask] = 0.0
    return frames, x


def fit_detectors(train: list[Prepared], l2: float) -> dict:
    """Start and end frame detectors on the training clips' encoder states."""
    states = np.concatenate([p.enc.astype(np.float64) for p in train])
    out = {}
    for kind in ("start", "end"):
        labels = np.concatenate(
            [R.position_labels(len(p.enc), p.true_starts if kind == "start" else p.true_ends) for p in train]
        )
        out[kind] = R.fit_frame_detector(states, labels, l2=l2)
    return out


def learned(
    groups: Sequence[str], radius: int = 15, l2: float = 1.0, rule: str = "median", detector_l2: float = 100.0
) -> Method:
    columns = [c for g in groups for c in GROUPS[g]]

    def method(train: list[Prepared], test: list[Prepared]) -> dict:
        detectors = fit_detectors(train, l2=detector_l2) if "detector" in groups else None
        # the scorer is fitted on out-of-fold evidence (in-sample detector output would be over-confident)
        train_detectors = {}
        if detectors:
            halves = [train[0::2], train[1::2]]
            for a, b in ((0, 1), (1, 0)):
                fitted = fit_detectors(halves[a], l2=detector_l2)
                train_detectors.update({p.id: fitted for p in halves[b]})
        models = {}
        for kind in ("start", "end"):
            xs, qs = [], []
            for p in train:
                frames, x = boundary_data(p, kind, radius, columns, train_detectors.get(p.id))
                truth = p.true_starts if kind == "start" else p.true_ends
                q = R.soft_targets(frames, np.nan_to_num(truth, nan=-1e9))
                xs.append(x)
                qs.append(q)
            models[kind] = R.fit_boundary_model(np.concatenate(xs), np.concatenate(qs), l2=l2)
        out = {}
        for p in test:
            times = []
            for kind in ("start", "end"):
                frames, x = boundary_data(p, kind, radius, columns, detectors)
                times.append(R.decode(frames, R.posterior(models[kind], frames, x), rule))
            out[p.id] = R.make_monotone(times[0], times[1], 0.02, p.tracks.n_frames / R.FRAMES_PER_SECOND)
        return out

    return method


# ---- protocol ---------------------------------------------------------------------------------------------------


def split(items: list) -> list[tuple[list, list]]:
    """(fit, test) item lists: timit halves both ways, then festival's clips 0, 3, ... -> 1, 4, ...
    (items have ``set``, ``index`` and ``speaker``, as cache entries and :class:`Prepared` do)."""
    get = (lambda x, k: x[k]) if isinstance(items[0], dict) else getattr
    timit = [p for p in items if get(p, "set") == "timit-dev"]
    fest = [p for p in items if get(p, "set") == "festival"]
    fest_fit = [p for p in fest if get(p, "index") % 3 == 0]
    fest_test = [p for p in fest if get(p, "index") % 3 == 1]
    speakers = sorted({get(p, "speaker") for p in timit})
    halves = [set(speakers[0::2]), set(speakers[1::2])]
    out = [
        ([p for p in timit if get(p, "speaker") in halves[a]], [p for p in timit if get(p, "speaker") in halves[b]])
        for a, b in ((0, 1), (1, 0))
    ]
    out.append((fest_fit, fest_test))
    return out


def folds(prepared: list[Prepared], with_festival: bool) -> list[tuple[list[Prepared], list[Prepared]]]:
    """(train, test) pairs of :func:`split`; ``with_festival`` adds the other set's fitting clips (festival's
    0, 3, ... to timit folds, all of timit to the festival fold)."""
    parts = split(prepared)
    if not with_festival:
        return parts
    fest_fit = parts[2][0]
    timit = parts[0][0] + parts[1][0]
    return [
        (parts[0][0] + fest_fit, parts[0][1]),
        (parts[1][0] + fest_fit, parts[1][1]),
        (fest_fit + timit, parts[2][1]),
    ]


def found_heads(data: dict, fold: int, fit_items: list[dict]) -> tuple[list[int], float]:
    """Heads found by ``discovery.find_heads`` on the fold's fitting clips (cached as JSON), and their shift."""
    path = CACHE / f"heads-{data['model']}-{fold}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return saved["heads"], saved["shift"]
    captures = D.CaptureSet(
        data["n_text_layer"],
        data["n_text_head"],
        [
            D.Capture(
                id=it["id"],
                scores=torch.from_numpy(it["scores"]),
                n_sot=it["n_sot"],
                words=it["words"],
                word_tokens=it["word_tokens"],
                duration=it["duration"],
                reference=it["reference"],
                speaker=it["speaker"],
            )
            for it in fit_items
        ],
    )
    found = D.find_heads(captures, AlignmentConfig(), holdout=0.3, split_by="auto", max_heads=12)
    heads = captures.flat(found.mask)
    path.write_text(json.dumps({"heads": heads, "shift": found.time_shift or 0.0}))
    return heads, found.time_shift or 0.0


def evaluate(
    prepared: list[Prepared], method: Method, with_festival: bool, per_fold: list[list[Prepared]] | None = None
) -> dict[str, Metrics]:
    """Score ``method`` on every fold; ``per_fold`` replaces ``prepared`` fold by fold (coarse times that
    were themselves fitted per fold, e.g. with found heads)."""
    rows: dict[str, list] = {"timit-dev": [], "festival": []}
    for k in range(3):
        train, test = folds(per_fold[k] if per_fold else prepared, with_festival)[k]
        refined = method(train, test)
        for p in test:
            s, e = refined[p.id]
            rows[p.set].append((p.id, p.reference, hypothesis(p.words, p.real, s, e)))
    return {name: score(r) for name, r in rows.items()}


def table(results: dict[str, dict[str, Metrics]], set_name: str) -> str:
    head = (
        f"{'method':44s} {'mean':>6s} {'start':>6s} {'end':>6s} {'median':>6s} "
        f"{'<=20':>5s} {'<=50':>5s} {'<=100':>5s} {'<=200':>5s}"
    )
    lines = [head]
    for name, by_set in results.items():
        m = by_set[set_name]
        mean = (m.start_mae_ms + m.end_mae_ms) / 2
        w = m.within
        lines.append(
            f"{name:44s} {mean:6.1f} {m.start_mae_ms:6.1f} {m.end_mae_ms:6.1f} {m.median_abs_ms:6.1f} "
            f"{w[20]:5.0%} {w[50]:5.0%} {w[100]:5.0%} {w[200]:5.0%}"
        )
    return "\n".join(lines)


ALL = ["prior", "level", "flux", "attention"]


def methods(only: Sequence[str] | None = None) -> dict[str, tuple[Method, bool, str]]:
    """Rows: label -> (method, fit on the other set too, coarse heads: "official" or "found")."""
    table = {
        "default (official heads, calibrated shift)": (baseline, False, "official"),
        "+ re-shift (train median)": (reshift, False, "official"),
        "+ refine: prior+level (pauses)": (learned(["prior", "level"]), False, "official"),
        "+ refine: prior+level+flux": (learned(["prior", "level", "flux"]), False, "official"),
        "+ refine: all (level+flux+attention)": (learned(ALL), False, "official"),
        "+ refine: all, fit +other set": (learned(ALL), True, "official"),
        "+ refine: all + encoder detector": (learned(ALL + ["detector"]), False, "official"),
        "+ refine: all + encoder detector, +other set": (learned(ALL + ["detector"]), True, "official"),
        "+ refine: all + encoder detector, radius 250 ms": (learned(ALL + ["detector"], radius=25), False, "official"),
        "found heads (other speakers), own shift": (baseline, False, "found"),
        "found heads + refine: all": (learned(ALL), False, "found"),
        "found heads + refine: all + detector, r250": (learned(ALL + ["detector"], radius=25), False, "found"),
        "found heads + refine: all + detector, r250, +other": (learned(ALL + ["detector"], radius=25), True, "found"),
    }
    return {k: v for i, (k, v) in enumerate(table.items()) if only is None or str(i) in only}


def mean_error(m: Metrics) -> float:
    return (m.start_mae_ms + m.end_mae_ms) / 2


def run_model(name: str, only: Sequence[str] | None = None) -> dict:
    with open(CACHE / f"{name}.pkl", "rb") as handle:
        data = pickle.load(handle)
    started = time.time()
    prepared = [prepare(item, data["official"], data["time_shift"]) for item in data["items"]]
    print(f"{name}: prepared {len(prepared)} utterances in {time.time() - started:.0f} s", flush=True)
    results = {}
    per_fold = None
    for label, (method, with_festival, coarse) in methods(only).items():
        started = time.time()
        if coarse == "found" and per_fold is None:
            per_fold = []
            parts = split(data["items"])
            for k in range(3):
                fit_items = parts[0 if k == 2 else k][0]
                # festival's fold reuses the heads found on timit half A (other voices; finding them on 130
                # festival clips took over 20 minutes on this machine's 2 shared cores)
                heads, shift = found_heads(data, 0 if k == 2 else k, fit_items)
                print(f"  fold {k}: found heads {heads}, shift {shift}", flush=True)
                per_fold.append([prepare(item, heads, shift) for item in data["items"]])
        results[label] = evaluate(prepared, method, with_festival, per_fold if coarse == "found" else None)
        m = results[label]
        print(
            f"  {label}: timit {mean_error(m['timit-dev']):.1f} ms, festival {mean_error(m['festival']):.1f} ms "
            f"({time.time() - started:.0f} s)",
            flush=True,
        )
        save(name, {label: {s: m.to_dict() for s, m in results[label].items()}})
    for set_name in ("timit-dev", "festival"):
        protocol = "speaker-split 2-fold, pooled" if set_name == "timit-dev" else "held-out clips 1,4,7,..."
        print(f"\n{name}, {set_name} ({protocol}):")
        print(table(results, set_name))
    return {label: {s: m.to_dict() for s, m in by_set.items()} for label, by_set in results.items()}


def save(name: str, rows: dict) -> None:
    """Merge ``rows`` of model ``name`` into benchmarks/results/precision.json, keeping rows run earlier (a copy
    also goes to the cache folder, so that a run writing the file meanwhile loses nothing)."""
    merged: dict = {}
    for previous in (CACHE / "precision-rows.json", RESULTS / "precision.json"):
        if previous.exists():
            for model, old in json.loads(previous.read_text()).get("models", {}).items():
                merged.setdefault(model, {}).update(old)
    merged.setdefault(name, {}).update(rows)
    (CACHE / "precision-rows.json").write_text(json.dumps({"models": merged}))
    write_json("precision", {"protocol": __doc__.split("Every row")[0].strip(), "models": merged})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--only", nargs="+", default=None, help="row numbers to run (a quick look)")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.models:
            run_model(name, args.only)  # each row is merged into precision.json as soon as it is scored
    print(f"\nwrote {RESULTS / 'precision.json'}")


if __name__ == "__main__":
    main()
