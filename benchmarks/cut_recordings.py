"""Recordings cut short: are the words the audio does not hold flagged ``past_end``, and only those?

Every timit-dev clip (but the 4 whose labels split a hyphenated word) and every 6th festival clip (from the
second: 1, 7, 13, ...) is aligned whole and cut where its word at 30, 60 and 85% starts, with ``align`` (one clip,
the default mode), once with :func:`~whisper_align.alignment.word_refinement.unheard_tail` and once without.
Counted over the transcript words (they match the labels one to one):

- unheard words (those from the cut on) that escape the flag: they get invented times inside the audio;
- heard words wrongly flagged: on cut clips, and on the complete clips (where every word is heard);
- the heard words' mean boundary error on the cut clips (a wrongly flagged word counts with its time at the end).

    .venv/bin/python benchmarks/cut_recordings.py [--models tiny.en base] [--every 6]

Writes benchmarks/results/cut_recordings.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, manifest, write_json  # noqa: E402

CUTS = (0.3, 0.6, 0.85)
RESULT = Path(__file__).resolve().parent / "results" / "cut_recordings.json"


def clip_versions(utterance, load_audio, sample_rate: int):  # noqa: ANN001, ANN201
    """(cut share or None, samples, index of the first unheard word) for the complete clip and each cut."""
    full = load_audio(utterance.audio)
    yield None, full, len(utterance.words)
    for share in CUTS:
        cut = max(1, int(len(utterance.words) * share))
        if cut < len(utterance.words):
            yield share, full[: int(utterance.words[cut][1] * sample_rate)], cut


def score_set(model, utterances, rule: bool) -> dict:  # noqa: ANN001
    """The counts and heard-word error over every version of ``utterances``, with or without the rule."""
    import whisper_align.alignment.word_refinement as word_refinement
    from whisper_align.frontend.audio import SAMPLE_RATE, load_audio
    from whisper_align.tasks.align import align

    word_refinement.UNHEARD_TAIL = rule
    names = ["clips", "cut_clips", "unheard", "escaped", "heard_cut", "wrongly_flagged_cut", "heard_complete"]
    counts = {"texts": len(utterances), **dict.fromkeys(names, 0), "wrongly_flagged_complete": 0}
    errors = []
    for u in utterances:
        for share, samples, cut in clip_versions(u, load_audio, SAMPLE_RATE):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                words = align(model, samples, u.text).words
            if [w.word.strip() for w in words] != u.text.split():
                raise SystemExit(f"{u.id}: the words do not match the transcript's")  # never silently skipped
            counts["clips"] += 1
            counts["cut_clips"] += share is not None
            for i, (w, (_, start, end)) in enumerate(zip(words, u.words)):
                if share is None:
                    counts["heard_complete"] += 1
                    counts["wrongly_flagged_complete"] += w.past_end
                elif i >= cut:
                    counts["unheard"] += 1
                    counts["escaped"] += not w.past_end
                else:
                    counts["heard_cut"] += 1
                    counts["wrongly_flagged_cut"] += w.past_end
                    errors.append((abs(w.start - start) + abs(w.end - end)) / 2)
    word_refinement.UNHEARD_TAIL = True
    return {**counts, "heard_cut_mean_ms": 1000 * float(np.mean(errors))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--every", type=int, default=6, help="festival: every Nth clip, from the second")
    args = parser.parse_args()

    from whisper_align import load_model
    from whisper_align.results.manifest import load_manifest

    sets = {
        "timit-dev": load_manifest(manifest("timit-dev")),
        "festival": load_manifest(manifest("festival"))[1 :: args.every],
    }
    sets = {name: [u for u in us if len(u.text.split()) == len(u.words)] for name, us in sets.items()}
    for name in args.models:  # each model written as soon as it is done, beside the others' last results
        model = load_model(name)
        rows: dict = {}
        for set_name, utterances in sets.items():
            for rule in (False, True):
                row = score_set(model, utterances, rule)
                rows.setdefault(set_name, {})["with unheard_tail" if rule else "without"] = row
                print(name, set_name, "rule" if rule else "no rule", row, flush=True)
        results = json.loads(RESULT.read_text()).get("models", {}) if RESULT.is_file() else {}
        payload = {"machine": machine(), "settings": {"cuts": list(CUTS), "festival_every": args.every}}
        print(write_json("cut_recordings", {**payload, "models": {**results, name: rows}}))


if __name__ == "__main__":
    main()
