"""Recordings cut short: are the words the audio does not hold flagged ``past_end``, and only those?

Every timit-dev clip (but the 4 whose labels split a hyphenated word) and every 6th festival clip (from the
second: 1, 7, 13, ...) is aligned whole and cut where its word at 30, 60 and 85% starts, with ``align`` (one clip,
the default mode), once with :func:`~whisper_align.alignment.word_refinement.unheard_tail` and once without.
With ``--packed`` every version goes through one ``align --manifest`` run instead (clips packed into windows,
the complete clips first, then every 30% cut, and so on, so that a clip's neighbours say other sentences).
Counted over the transcript words (they match the labels one to one):

- unheard words (those from the cut on) that escape the flag: they get invented times inside the audio;
- heard words wrongly flagged: on cut clips, and on the complete clips (where every word is heard);
- the heard words' mean boundary error on the cut clips (a wrongly flagged word counts with its time at the end).

    .venv/bin/python benchmarks/cut_recordings.py [--models tiny.en base] [--every 6] [--packed]

Writes benchmarks/results/cut_recordings.json (``--packed``: cut_recordings_packed.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, manifest, write_json  # noqa: E402

CUTS = (0.3, 0.6, 0.85)
RESULTS = Path(__file__).resolve().parent / "results"


def cut_points(utterance) -> list[tuple[float | None, int]]:  # noqa: ANN001
    """(cut share or None, index of the first unheard word) for the complete clip and each cut."""
    points: list[tuple[float | None, int]] = [(None, len(utterance.words))]
    for share in CUTS:
        cut = max(1, int(len(utterance.words) * share))
        if cut < len(utterance.words):
            points.append((share, cut))
    return points


def clip_versions(utterance, load_audio, sample_rate: int):  # noqa: ANN001, ANN201
    """(cut share or None, samples) for the complete clip and each cut: a cut ends where its first unheard word
    starts."""
    full = load_audio(utterance.audio)
    for share, cut in cut_points(utterance):
        yield share, full if share is None else full[: int(utterance.words[cut][1] * sample_rate)]


def aligned_one_by_one(model, utterances) -> dict:  # noqa: ANN001
    """Every version's words, keyed (utterance id, cut share), each clip aligned alone with ``align``."""
    from whisper_align.frontend.audio import SAMPLE_RATE, load_audio
    from whisper_align.tasks.align import align

    out = {}
    for u in utterances:
        for share, samples in clip_versions(u, load_audio, SAMPLE_RATE):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                words = align(model, samples, u.text).words
            out[u.id, share] = [(w.word, w.start, w.end, w.past_end) for w in words]
    return out


def aligned_packed(model, utterances) -> dict:  # noqa: ANN001
    """Every version's words, keyed (utterance id, cut share), from one packed ``align_corpus`` run over WAVs of
    all versions: the complete clips first, then each cut share in turn."""
    import soundfile

    from whisper_align.frontend.audio import SAMPLE_RATE, load_audio
    from whisper_align.tasks.corpus import align_corpus

    with tempfile.TemporaryDirectory() as folder:
        versions: dict[float | None, list] = {}
        for u in utterances:
            for share, samples in clip_versions(u, load_audio, SAMPLE_RATE):
                versions.setdefault(share, []).append((f"{u.id}|{share}", samples, u.text))
        lines = []
        for n, (clip_id, samples, text) in enumerate(v for share in versions.values() for v in share):
            soundfile.write(f"{folder}/{n}.wav", samples, SAMPLE_RATE, subtype="FLOAT")
            lines.append(json.dumps({"id": clip_id, "audio": f"{n}.wav", "text": text}))
        Path(folder, "manifest.jsonl").write_text("\n".join(lines) + "\n")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = align_corpus(model, f"{folder}/manifest.jsonl", f"{folder}/out.jsonl", progress=False)
        if summary.failed:
            raise SystemExit(f"the packed run failed on {summary.failures}")
        rows = [json.loads(line) for line in Path(folder, "out.jsonl").read_text().splitlines()]
    out = {}
    for row in rows:
        uid, share = row["id"].split("|")
        words = [(w["word"], w["start"], w["end"], w.get("past_end", False)) for w in row["words"]]
        out[uid, None if share == "None" else float(share)] = words
    return out


def score_set(model, utterances, rule: bool, packed: bool = False) -> dict:  # noqa: ANN001
    """The counts and heard-word error over every version of ``utterances``, with or without the rule."""
    import whisper_align.alignment.word_refinement as word_refinement

    word_refinement.UNHEARD_TAIL = rule
    aligned = (aligned_packed if packed else aligned_one_by_one)(model, utterances)
    word_refinement.UNHEARD_TAIL = True
    names = ["clips", "cut_clips", "unheard", "escaped", "heard_cut", "wrongly_flagged_cut", "heard_complete"]
    counts = {"texts": len(utterances), **dict.fromkeys(names, 0), "wrongly_flagged_complete": 0}
    errors = []
    for u in utterances:
        for share, cut in cut_points(u):
            words = aligned[u.id, share]
            if [w[0].strip() for w in words] != u.text.split():
                raise SystemExit(f"{u.id}: the words do not match the transcript's")  # never silently skipped
            counts["clips"] += 1
            counts["cut_clips"] += share is not None
            for i, ((_, w_start, w_end, past_end), (_, start, end)) in enumerate(zip(words, u.words)):
                if share is None:
                    counts["heard_complete"] += 1
                    counts["wrongly_flagged_complete"] += past_end
                elif i >= cut:
                    counts["unheard"] += 1
                    counts["escaped"] += not past_end
                else:
                    counts["heard_cut"] += 1
                    counts["wrongly_flagged_cut"] += past_end
                    errors.append((abs(w_start - start) + abs(w_end - end)) / 2)
    return {**counts, "heard_cut_mean_ms": 1000 * float(np.mean(errors))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--every", type=int, default=6, help="festival: every Nth clip, from the second")
    parser.add_argument("--packed", action="store_true", help="one packed align --manifest run per set and rule")
    args = parser.parse_args()
    result = RESULTS / ("cut_recordings_packed.json" if args.packed else "cut_recordings.json")

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
                row = score_set(model, utterances, rule, args.packed)
                rows.setdefault(set_name, {})["with unheard_tail" if rule else "without"] = row
                print(name, set_name, "rule" if rule else "no rule", row, flush=True)
        results = json.loads(result.read_text()).get("models", {}) if result.is_file() else {}
        settings = {"cuts": list(CUTS), "festival_every": args.every, "packed": args.packed}
        print(write_json(result.stem, {"machine": machine(), "settings": settings, "models": {**results, name: rows}}))


if __name__ == "__main__":
    main()
