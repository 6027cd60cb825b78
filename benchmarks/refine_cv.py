"""Word-boundary precision of the default path with and without its boundary refinement, on what the refinement
never saw (issue #10). Runs the library's own code: ``fit_refiner`` to fit, ``align`` (one clip per window) and
``align_corpus`` (packed, as ``align --manifest`` runs) to score.

Protocol (as benchmarks/precision.py): timit-dev speakers sorted and split alternately into halves A and B; each
half is scored with a refinement fitted on the other half plus festival's clips 0, 3, 6, ...; festival's clips
1, 4, 7, ... are scored with one fitted on all of timit-dev plus festival's 0, 3, 6, ... (which is exactly what the
shipped refinement was fitted on, see tools/fit_bundled_refiners.py). Both timit halves are pooled.

    .venv/bin/python benchmarks/refine_cv.py [--models tiny.en base] [--limit N]

Prints a table and writes benchmarks/results/refine_cv.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import align_utterances, manifest, write_json  # noqa: E402
from whisper_align.alignment.refine import fit  # noqa: E402
from whisper_align.alignment.words import AlignmentConfig, resolve_config, widen_empty_words  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.checkpoints.tokenizers import get_tokenizer  # noqa: E402
from whisper_align.frontend.audio import SAMPLE_RATE, load_audio  # noqa: E402
from whisper_align.results.evaluation import Metrics, score  # noqa: E402
from whisper_align.results.manifest import Utterance, load_manifest  # noqa: E402
from whisper_align.tasks.align import (  # noqa: E402
    clip_pass,
    enforce_monotone,
    prepare_text,
    refine_inputs,
    words_of_piece,
)
from whisper_align.tasks.refiner_fit import DEFAULT_RADIUS, labelled_clip  # noqa: E402

RESULT = Path(__file__).resolve().parent / "results" / "refine_cv.json"
# row: (refine, packed, joint); joint: the word-level global decode (alignment/segment_decode.py), else the
# refinement boundary by boundary (the default before it)
ROWS = {
    "default without refinement, one clip per window": (False, False, True),
    "default without refinement, packed": (False, True, True),
    "refined boundary by boundary, one clip per window": (True, False, False),
    "refined boundary by boundary, packed": (True, True, False),
    "default (refined, global decode), one clip per window": (True, False, True),
    "default (refined, global decode), packed (align --manifest)": (True, True, True),
}
SETTINGS = sorted({(refine, joint) for refine, _, joint in ROWS.values()})


def folds(limit: int | None) -> list[tuple[str, list[Utterance], list[Utterance]]]:
    """(set, fit, test) triples of the protocol above."""
    timit = load_manifest(manifest("timit-dev"))
    festival = load_manifest(manifest("festival"))
    fest_fit, fest_test = festival[0::3], festival[1::3]
    speakers = sorted({u.speaker for u in timit})
    halves = [set(speakers[0::2]), set(speakers[1::2])]
    out = []
    for a, b in ((0, 1), (1, 0)):
        fit = [u for u in timit if u.speaker in halves[a]] + fest_fit
        out.append(("timit-dev", fit[:limit], [u for u in timit if u.speaker in halves[b]][:limit]))
    out.append(("festival", (timit + fest_fit)[:limit], fest_test[:limit]))
    return out


def packed_words(model, test: list[Utterance], config: AlignmentConfig) -> dict[str, list]:  # noqa: ANN001
    """{id: [(word, start, end)]} from ``align_corpus`` over a manifest of ``test``."""
    words = align_utterances(model, test, config=config)
    return {clip: [(w["word"], w["start"], w["end"]) for w in rows] for clip, rows in words.items()}


def clip_words(model, tokenizer, samples, text: str, settings) -> dict[tuple[bool, bool], list]:  # noqa: ANN001
    """{(refine, joint): [(word, start, end)]} for one clip, one clip per window as ``align`` gives them, with one
    encoder and decoder pass serving every setting."""
    tokens = prepare_text(tokenizer, text)
    run = clip_pass(model, tokenizer, samples, tokens)
    inputs = refine_inputs(model, run.mel, run.features[0], 0, run.n_positions, text_ends=run.text_ends)
    duration = len(samples) / SAMPLE_RATE
    out = {}
    for refine, joint in settings:
        model.boundary_refiner.joint = joint
        config = resolve_config(AlignmentConfig(refine=refine), model.alignment_time_shift)
        words = words_of_piece(tokenizer, run.qk.float(), tokens, run.probs, config, 0.0, refine=inputs)
        widen_empty_words(enforce_monotone(words, duration), config.min_word_duration, 0.0, duration)
        out[refine, joint] = [(w.word, round(w.start, 3), round(w.end, 3)) for w in words]  # as align() does
    return out


def single_words(model, test: list[Utterance]) -> dict[tuple[bool, bool], dict[str, list]]:  # noqa: ANN001
    """{(refine, joint): {id: [(word, start, end)]}} one clip per window (:func:`clip_words`)."""
    tokenizer = get_tokenizer(model)
    out: dict[tuple[bool, bool], dict[str, list]] = {setting: {} for setting in SETTINGS}
    for u in test:
        for setting, words in clip_words(model, tokenizer, load_audio(u.audio), u.text, SETTINGS).items():
            out[setting][u.id] = words
    return out


def score_fold(model, test: list[Utterance]) -> dict[str, dict]:  # noqa: ANN001
    """Each row's (reference, hypothesis) pairs on ``test``, keyed by row then utterance id."""
    out: dict[str, dict] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = single_words(model, test)
    for row, (refine, packed, joint) in ROWS.items():
        model.boundary_refiner.joint = joint
        words = packed_words(model, test, AlignmentConfig(refine=refine)) if packed else single[refine, joint]
        out[row] = {u.id: (u.words, words[u.id]) for u in test}
    return out


def fit_on(model, fit_part: list[Utterance], clips: dict[str, object]) -> None:  # noqa: ANN001
    """Give ``model`` a refinement fitted on ``fit_part`` as ``fit_refiner`` fits one: each fitting clip aligned
    once, unrefined (kept in ``clips`` by id, for the next fold), then ``refine.fit``."""
    model.boundary_refiner = None
    config = resolve_config(AlignmentConfig(refine=False), model.alignment_time_shift)
    tokenizer = get_tokenizer(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for u in fit_part:
            if u.id not in clips:
                clips[u.id] = labelled_clip(model, tokenizer, u, config)
        model.boundary_refiner = fit([clips[u.id] for u in fit_part], radius=DEFAULT_RADIUS)  # type: ignore[misc]


def run_model(name: str, limit: int | None) -> dict[str, dict[str, Metrics]]:
    """Fit (as ``fit_refiner`` does: each fitting clip aligned once, unrefined, then ``refine.fit``) and score
    every fold."""
    model = load_model(name)
    clips: dict[str, object] = {}  # id -> LabelledClip, shared by the folds
    pairs: dict[str, dict[str, dict]] = {}
    for set_name, fit_part, test in folds(limit):
        started = time.time()
        fit_on(model, fit_part, clips)
        for row, hyps in score_fold(model, test).items():
            pairs.setdefault(set_name, {}).setdefault(row, {}).update(hyps)
        print(
            f"{name} {set_name}: fitted on {len(fit_part)}, scored {len(test)} in {time.time() - started:.0f} s",
            file=sys.stderr,
        )
    return {s: {row: score(p) for row, p in rows.items()} for s, rows in pairs.items()}


def mean_ms(m: Metrics) -> float:
    """The literature's mean boundary error: the mean of start and end MAE."""
    return 0.5 * (m.start_mae_ms + m.end_mae_ms)


def table(results: dict[str, dict[str, dict[str, Metrics]]]) -> str:
    lines = [
        "| model | set | path | mean ms | median ms | ≤20 ms | ≤50 ms | ≤100 ms | ≤200 ms |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model, sets in results.items():
        for set_name, rows in sets.items():
            for row, m in rows.items():
                lines.append(
                    f"| {model} | {set_name} | {row} | {mean_ms(m):.1f} | {m.median_abs_ms:.1f} | "
                    f"{m.within[20]:.1%} | {m.within[50]:.1%} | {m.within[100]:.1%} | {m.within[200]:.1%} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--limit", type=int, help="first N utterances of each fit/test list (quick runs)")
    args = parser.parse_args()
    previous = RESULT.is_file() and json.loads(RESULT.read_text()).get("metrics", {})
    for name in args.models:  # each model written as soon as it is done, beside the others' last results
        results = {name: run_model(name, args.limit)}
        print(table(results))
        metrics = dict(previous or {})
        metrics[name] = {
            s: {row: dict(m.to_dict(), mean_ms=mean_ms(m)) for row, m in rows.items()}
            for s, rows in results[name].items()
        }
        previous = metrics
        payload = {"protocol": __doc__, "args": vars(args), "metrics": metrics}
        print(f"wrote {write_json('refine_cv', payload)}")


if __name__ == "__main__":
    main()
