"""README result tables, generated from benchmarks/results/*.json so that the two cannot drift apart.

Each table in README.md's "Results" section sits between marker comments::

    <!-- results: throughput -->
    ...generated table and a one-line source note...
    <!-- /results -->

The name after ``results:`` is a key of :data:`TABLES` and, by the same name, the JSON file it reads
(``benchmarks/results/throughput.json``). One formatter per file renders the Markdown the README shows; under each
table a note names the JSON and the commit and time of its run (``machine.commit``, ``machine.when``).

    .venv/bin/python benchmarks/report.py            # print every table
    .venv/bin/python benchmarks/report.py --write    # rewrite the README's blocks in place
    .venv/bin/python benchmarks/report.py --check    # exit 1 and print a diff if a block differs from its JSON

Run ``--write`` after rerunning a benchmark; tests/test_readme_results.py runs ``--check``'s comparison.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # runs without installing the package

from whisper_align.errors import WhisperAlignError  # noqa: E402
from whisper_align.heads import ALIGNMENT_HEADS  # noqa: E402

README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- results: (?P<name>[^\s>]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL)

Json = dict[str, Any]


class ReportError(WhisperAlignError, ValueError):
    """A results block that cannot be generated: unknown name, missing or malformed JSON, unbalanced markers."""


# ---- number formatting -------------------------------------------------------------------------------------------


def pct(share: float) -> str:
    """A share as a percentage with one decimal: 0.4174 -> '41.7%'."""
    return f"{100 * share:.1f}%"


def ms(value: float) -> str:
    """Milliseconds with one decimal."""
    return f"{value:.1f}"


def times(ratio: float) -> str:
    """A speed ratio: 1.5616 -> '1.56×'."""
    return f"{ratio:.2f}×"


def realtime(factor: float) -> str:
    """A real-time factor: one decimal below 100, none from 100 up ('5.7', '616')."""
    return f"{factor:.1f}" if factor < 100 else f"{factor:.0f}"


def bold(text: str) -> str:
    """Markdown bold; an empty cell stays empty."""
    return f"**{text}**" if text else text


def markdown(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A compact Markdown table; the first ``left`` columns are left-aligned, the rest right-aligned."""
    separator = "|" + "|".join("---" if k < left else "---:" for k in range(len(header))) + "|"
    lines = ["|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|" for cells in [header, *rows]]
    return "\n".join([lines[0], separator, *lines[1:]])


def emphasize(values: list[list[float]], target: int, better: list[str | None]) -> list[bool]:
    """Which columns of row ``target`` to print bold: those where it is the best of ``values`` (ties count).

    ``better[k]`` is "low" or "high" for a column ranked that way, None for one never bold.
    """
    flags = []
    for k, direction in enumerate(better):
        column = [row[k] for row in values]
        flags.append(direction is not None and values[target][k] == (min if direction == "low" else max)(column))
    return flags


def scored_rows(
    labels: list[list[str]],
    numbers: list[list[float]],
    text: list[list[str]],
    target: int | None,
    better: list[str | None],
) -> list[list[str]]:
    """Table rows ``labels[i] + text[i]``, row ``target``'s cells bold where it is best (see :func:`emphasize`)."""
    flags = emphasize(numbers, target, better) if target is not None else [False] * len(better)
    return [
        label + [bold(c) if i == target and flag else c for c, flag in zip(cells, flags)]
        for i, (label, cells) in enumerate(zip(labels, text))
    ]


def source_note(name: str, data: Json) -> str:
    """'_From `benchmarks/results/NAME.json` (commit abc1234 / run 2026-11-26 04:33)_' from the JSON's machine block."""
    machine = data.get("machine", {})
    commit = machine.get("commit")
    if commit:
        sha, dirty = commit.removesuffix("+dirty"), commit.endswith("+dirty")
        commit_text = f"commit {sha[:7]}{'+dirty' if dirty else ''}"
    else:
        commit_text = "commit not recorded"
    when = machine.get("when")
    when_text = f"run {when[:16]}" if when else "run time not recorded"
    return f"_From `benchmarks/results/{name}.json` ({commit_text} / {when_text})_"


# ---- forced alignment accuracy (accuracy.py) ---------------------------------------------------------------------

TIMING = {
    "median_abs_ms": "median ms",
    "within_20ms": "≤20 ms",
    "within_50ms": "≤50 ms",
    "within_100ms": "≤100 ms",
    "within_200ms": "≤200 ms",
}  # a scored run's field -> its column header
TIMING_BETTER = ["low", "high", "high", "high", "high"]


def timing_cells(metrics: Json, keys: Iterable[str] = TIMING) -> tuple[list[float], list[str]]:
    """The mean and median error and within-N shares of a scored run: as numbers (for ranking) and as table text."""
    keys = list(keys)
    numbers = [metrics[key] for key in keys]
    return numbers, [ms(v) if key.endswith("_ms") else pct(v) for key, v in zip(keys, numbers)]


def accuracy_model_rows(model: str, metrics: Json) -> list[list[str]]:
    """One model's rows: openai and our conformance mode (one row when their scores are identical), then ours."""
    if metrics["openai"] == metrics["conformance"]:
        runs = {"openai-whisper / ours, conformance mode": metrics["openai"]}
    else:
        runs = {"openai-whisper `find_alignment`": metrics["openai"], "ours, conformance mode": metrics["conformance"]}
    runs["ours, default mode without time shift"] = metrics["default, no time shift"]
    runs["**ours, default mode**"] = metrics["default"]
    numbers, text = [], []
    for m in runs.values():
        timing_numbers, timing_text = timing_cells(m)
        numbers.append([m["start_mae_ms"], m["end_mae_ms"]] + timing_numbers)
        text.append([ms(m["start_mae_ms"]), ms(m["end_mae_ms"])] + timing_text)
    labels = [[model, label] for label in runs]
    return scored_rows(labels, numbers, text, target=len(runs) - 1, better=["low", "low"] + TIMING_BETTER)


def accuracy(data: Json) -> str:
    """accuracy_<set>.json: the scores of each aligner per model, and the conformance check under the table."""
    rows, conformance = [], []
    for key, result in data["results"].items():
        model = key.split("/")[0]
        rows += accuracy_model_rows(model, result["metrics"])
        c = result.get("conformance")
        if c:
            conformance.append(
                f"{model} {pct(c['within_20ms'])} of {c['words']} words "
                f"(max difference {1000 * c['max_difference_s']:.0f} ms)"
            )
    table = markdown(["model", "aligner", "start MAE ms", "end MAE ms", *TIMING.values()], rows, left=2)
    if not conformance:
        return table
    return (
        f"{table}\n\nConformance, words whose start and end are within 20 ms of openai-whisper's own "
        f"`find_alignment` on the same weights: {'; '.join(conformance)}."
    )


# ---- corpus throughput (throughput.py) ---------------------------------------------------------------------------

THROUGHPUT_LABELS = {
    "openai find_alignment loop": "openai-whisper `find_alignment` loop",
    "whisper-align, one clip per window": "ours, one clip per window",
    "whisper-align, packed windows": "**ours, clips packed into windows** (`align --manifest`)",
    "whisper-align, packed windows, fp16": "ours, clips packed into windows, float16",
}


def throughput(data: Json, seconds_decimals: int = 1) -> str:
    """throughput.json / throughput_cuda.json: time, speed-up and accuracy of each aligner on the whole set."""
    labels, numbers, text = [], [], []
    for row in data["rows"]:
        labels.append([THROUGHPUT_LABELS.get(row["contender"], row["contender"])])
        a = row["accuracy"]
        numbers.append([row["median_s"], row["realtime_factor"], row["speedup"], a["median_abs_ms"], a["within_50ms"]])
        text.append(
            [
                f"{row['median_s']:.{seconds_decimals}f}",
                realtime(row["realtime_factor"]),
                times(row["speedup"]),
                ms(a["median_abs_ms"]),
                pct(a["within_50ms"]),
            ]
        )
    target = next(
        (i for i, row in enumerate(data["rows"]) if row["contender"] == "whisper-align, packed windows"), None
    )
    rows = scored_rows(labels, numbers, text, target, better=["low", "high", "high", "low", "high"])
    return markdown(["aligner", "median s", "× real time", "speed-up", "median error ms", "≤50 ms"], rows)


# ---- the word-level global decode's variants (precision_segment.py) ----------------------------------------------


def precision_segment(data: Json) -> str:
    """precision_segment.json: every variant of the global decode tried, per model, on both held-out sets."""
    sets = ("timit-dev", "festival")
    header = ["model", "variant"]
    header += [f"{s} {column}" for column in ("mean ms", "median ms", "≤50 ms", "≤100 ms") for s in sets]
    rows = []
    for model, variants in data["models"].items():
        for name, scores in variants.items():
            cells = [ms(scores[s]["mean_ms"]) for s in sets] + [ms(scores[s]["median_ms"]) for s in sets]
            cells += [pct(scores[s]["within_50"]) for s in sets] + [pct(scores[s]["within_100"]) for s in sets]
            rows.append([model, name, *cells])
    return markdown(header, rows, left=2)


def packing_orders(data: Json) -> str:
    """packing_orders.json: packed error in three clip orders per variant, beside one clip per window."""
    order_names = ("speaker halves", "shuffle 1", "shuffle 2")
    header = ["model", "variant", *(f"{o} mean ms" for o in order_names), "worst clip ms (any order)", "seconds"]
    rows = []
    for model, result in data["models"].items():
        alone = result["one clip per window"]
        rows.append([model, "one clip per window (align)", *[ms(alone["mean_ms"])] * 3, ms(alone["worst_clip_ms"]), ""])
        for name, orders in result["variants"].items():
            worst = max(orders[o]["worst_clip_ms"] for o in order_names)
            cells = [ms(orders[o]["mean_ms"]) for o in order_names]
            rows.append([model, name, *cells, ms(worst), f"{orders['seconds']:.0f}"])
    return markdown(header, rows, left=2)


def char_forcing(data: Json) -> str:
    """char_forcing.json: raw alignment from BPE tokens and from characters, official and found heads, per set."""
    sets = data["sets"]
    header = ["model", "decoder input", "heads"]
    header += [f"{s} {column}" for column in ("mean ms", "median ms", "≤50 ms", "≤100 ms") for s in sets]
    rows = []
    for model, per_set in data["models"].items():
        first = per_set[sets[0]]
        for tokenization in first:
            for heads in first[tokenization]["pooled"]:
                m = [per_set[s][tokenization]["pooled"][heads] for s in sets]
                cells = [ms(x["mean_abs_ms"]) for x in m] + [ms(x["median_abs_ms"]) for x in m]
                cells += [pct(x["within_50ms"]) for x in m] + [pct(x["within_100ms"]) for x in m]
                rows.append([model, tokenization, heads, *cells])
    return markdown(header, rows, left=3)


def cut_recordings(data: Json) -> str:
    """cut_recordings.json / cut_recordings_packed.json: unheard words that escape the past_end flag and heard words
    wrongly flagged, per model and set, without and with ``unheard_tail``."""
    header = ["model", "set", "rule", "unheard words escaping the flag", "heard words flagged (cut clips)"]
    header += ["heard words flagged (complete clips)", "heard words' mean ms (cut clips)"]
    rows = []
    for model, per_set in data["models"].items():
        for set_name, variants in per_set.items():
            for variant, r in variants.items():
                escaped = f"{r['escaped']} of {r['unheard']} ({pct(r['escaped'] / r['unheard'])})"
                wrong = f"{r['wrongly_flagged_cut']} of {r['heard_cut']}"
                complete = f"{r['wrongly_flagged_complete']} of {r['heard_complete']}"
                rows.append([model, set_name, variant, escaped, wrong, complete, ms(r["heard_cut_mean_ms"])])
    return markdown(header, rows, left=3)


# ---- whole processes at default threads (whole_process.py) --------------------------------------------------------

WHOLE_PROCESS_TASKS = {
    "load": "import + load tiny.en",
    "transcribe": "transcribe {minutes:g} min, word timestamps",
    "align": "align {clips} short clips",
}


def whole_process(data: Json) -> str:
    """whole_process.json / whole_process_busy.json: each task's contenders, median seconds of a fresh process and
    the speed-up over the task's first contender (the reference) in the same run."""
    settings = data["settings"]
    rows = []
    for task, result in data["tasks"].items():
        label = WHOLE_PROCESS_TASKS.get(task, task).format(**settings)
        for k, row in enumerate(result["rows"]):
            name = row["contender"]
            cells = [label if k == 0 else "", name, f"{row['median_s']:.2f}", times(row["speedup"])]
            rows.append([bold(c) if name.startswith("whisper-align") and i > 1 else c for i, c in enumerate(cells)])
    return markdown(["task", "process", "median s", "speed-up"], rows, left=2)


# ---- long recordings (longform.py) -------------------------------------------------------------------------------


def longform(data: Json) -> str:
    """longform.json: one long recording aligned in one call against the same clips one by one."""
    duration, seconds = data["duration_s"], data["seconds"]
    _, long_text = timing_cells(data["long"])
    _, short_text = timing_cells(data["short"])
    rows = [
        [
            f"one {duration / 60:.0f}-minute recording",
            *long_text,
            f"{seconds:.1f} s ({duration / seconds:.0f}× real time)",
        ],
        ["the same clips one by one", *short_text, ""],
    ]
    return markdown([data["args"]["model"], *TIMING.values(), "time"], rows)


# ---- alignment heads on other speakers (heads_split.py) ----------------------------------------------------------


def _found_sizes(folds: list[dict], method: str) -> str:
    return head_count_range(len(f[method]["pairs"]) for f in folds)


def head_count_range(counts: Iterable[int]) -> str:
    """'8–9 heads' for the sizes of the sets found in each fold, '12 heads' when they agree."""
    sizes = list(counts)
    low, high = min(sizes), max(sizes)
    return f"{low} heads" if low == high else f"{low}–{high} heads"


def heads_labels(model: str, result: Json) -> dict[str, str]:
    """Table labels of heads_split's set names for ``model``, with the size of each set."""
    folds = list(result["folds"].values())
    layers, heads = len(folds[0]["supervised"]["head_scores"]), len(folds[0]["supervised"]["head_scores"][0])
    official = ALIGNMENT_HEADS.get(model)
    official_size = f" ({int(official.mask().sum())} heads)" if official is not None else ""
    return {
        f"official {model}": f"official{official_size}",
        f"official {model} + calibrated shift": "official + calibrated shift",
        "default (last half)": f"default: every head of the last half ({(layers - layers // 2) * heads})",
        "found (supervised)": f"**found, supervised** ({_found_sizes(folds, 'supervised')})",
        "found (unsupervised)": f"found, unsupervised ({_found_sizes(folds, 'unsupervised')})",
    }


def heads_split(data: Json) -> str:
    """heads_split.json: each head set scored on the speakers its search never heard, both halves pooled."""
    rows = []
    for model, result in data["models"].items():
        pooled = result["pooled"]["default"]
        names = list(pooled)
        labels = heads_labels(model, result)
        numbers, text = zip(*(timing_cells(pooled[name]) for name in names))
        target = names.index("found (supervised)") if "found (supervised)" in names else None
        rows += scored_rows(
            [[model, labels.get(name, name)] for name in names], list(numbers), list(text), target, TIMING_BETTER
        )
    return markdown(["model", "heads", *TIMING.values()], rows, left=2)


# ---- transcription (transcription.py) ----------------------------------------------------------------------------

TRANSCRIPTION_ROWS = {  # row name in the JSON: (label in the first set's rows, label in the later sets' rows)
    "openai": ("openai-whisper `transcribe(word_timestamps=True)`", "openai-whisper"),
    "ours (captured, default)": ("ours (timings from the attention captured while decoding)", "ours"),
    "ours int8 (captured, default)": ("ours, int8 weights (`--int8`)", "ours, int8 weights"),
}


def transcription_accuracy(data: Json) -> str:
    """transcription_accuracy.json: text agreement with openai-whisper, WER and word timing, per eval set."""
    keys = ["mean_abs_ms", "median_abs_ms", "within_50ms", "within_100ms", "within_200ms"]
    rows, models = [], []
    for i, (key, result) in enumerate(data["results"].items()):
        model, set_name = key.split("/")
        models.append(model)
        for name, row_labels in TRANSCRIPTION_ROWS.items():
            if name in result["text"]:
                text = result["text"][name]
                same = "" if name == "openai" else pct(text["text_equal_openai"])
                timing = timing_cells(result["metrics"][name], keys)[1]
                rows.append([row_labels[min(i, 1)], set_name, same, pct(text["wer"]), *timing])
    labels = {"mean_abs_ms": "mean ms", **TIMING}
    header = [" / ".join(dict.fromkeys(models)), "set", "text = openai's", "WER", *(labels[k] for k in keys)]
    return markdown(header, rows, left=2)


SPEED_LABELS = {  # contender name in the JSON -> label, in table order; the default row is printed bold
    "openai-whisper": "openai-whisper",
    "whisper-align": "**ours, {precision}** (the default)",
    "whisper-align, seek_to_last_word=True": "ours, {precision}, `seek_to_last_word=True` (openai's window rule)",
    "whisper-align, checked int8 logits": "ours, {precision}, checked int8 logits (`--fast-logits`)",
    "whisper-align int8": "ours, int8 weights (`--int8`)",
    "faster-whisper float32": "faster-whisper, float32",
    "faster-whisper int8": "faster-whisper, int8",
}
# Runs made while openai's window rule was the default named the contenders the other way round.
BEFORE_WORD_RULES = {
    "whisper-align": "whisper-align, seek_to_last_word=True",
    "whisper-align, seek_to_last_word=False": "whisper-align",
}


def today_names(names: Iterable[str]) -> dict[str, str]:
    """Each contender name of a speed run -> today's name for what it ran (see :data:`BEFORE_WORD_RULES`)."""
    names = list(names)
    old = "whisper-align, seek_to_last_word=False" in names
    return {name: BEFORE_WORD_RULES.get(name, name) if old else name for name in names}


def transcription_speed(data: Json, seconds_decimals: int = 1) -> str:
    """transcription_speed[_cuda].json: time with and without word timestamps, ratio to openai, overhead."""
    models = [key for key in data["results"] if key != "device"]
    if len(models) != 1:
        raise ValueError(f"one model per speed table, found {models}")
    result = data["results"][models[0]]
    names = today_names(result["word_timestamps_overhead"])
    overhead = {names[name]: value for name, value in result["word_timestamps_overhead"].items()}
    settings: dict[str, dict[bool, Json]] = {}
    for row in result["rows"]:
        settings.setdefault(names[row["contender"]], {})[row["word_timestamps"]] = row
    order = [name for name in SPEED_LABELS if name in settings] + [n for n in settings if n not in SPEED_LABELS]
    # transcribe() decodes in float16 on a GPU (DecodingOptions.fp16), in float32 on the CPU
    precision = "float32" if data["args"].get("device", "cpu") == "cpu" else "float16"
    rows = []
    for name in order:
        cells = []
        for row in (settings[name][False], settings[name][True]):
            ratio = "" if name == "openai-whisper" else f" ({times(row['speedup_vs_openai'])})"
            cells.append(f"{row['median_s']:.{seconds_decimals}f} s{ratio}")
        cells.append(f"{100 * overhead[name]:+.1f}%")
        label = SPEED_LABELS.get(name, name).format(precision=precision)
        rows.append([label] + [bold(c) if name == "whisper-align" else c for c in cells])
    runs = len(result["rows"][0]["seconds"])
    header = [
        "",
        "without word timestamps",
        "with word timestamps",
        f"word-timestamp overhead (median of {runs} pairs)",
    ]
    return markdown(header, rows)


# ---- GPU check (gpu_check.py) ------------------------------------------------------------------------------------


def precision(data: Json) -> str:
    """precision.json: the default boundaries and each refinement tried, per model, on timit-dev (speaker split,
    pooled) and festival (held-out clips); mean boundary error = mean of the start and end MAE."""
    sets = ("timit-dev", "festival")
    header = ["model", "method", *(f"{s} mean ms" for s in sets), *(f"{s} median ms" for s in sets)]
    header += [f"{s} ≤50 ms" for s in sets] + [f"{s} ≤100 ms" for s in sets]
    rows = []
    for model, methods in data["models"].items():
        for method, by_set in methods.items():
            if not all(s in by_set for s in sets):
                continue
            m = [by_set[s] for s in sets]
            rows.append(
                [model, method]
                + [ms((x["start_mae_ms"] + x["end_mae_ms"]) / 2) for x in m]
                + [ms(x["median_abs_ms"]) for x in m]
                + [pct(x["within_50ms"]) for x in m]
                + [pct(x["within_100ms"]) for x in m]
            )
    return markdown(header, rows, left=2)


def refine_cv(data: Json) -> str:
    """refine_cv.json: the default path with and without its boundary refinement, fitted on other speakers / clips
    by the library's own fit, scored one clip per window and packed (``align --manifest``)."""
    header = ["model", "set", "path", "mean ms", "median ms", "≤20 ms", "≤50 ms", "≤100 ms", "≤200 ms"]
    rows = []
    for model, sets in data["metrics"].items():
        for set_name, paths in sets.items():
            for path, m in paths.items():
                rows.append(
                    [model, set_name, path, ms(m["mean_ms"]), ms(m["median_abs_ms"])]
                    + [pct(m[f"within_{t}ms"]) for t in (20, 50, 100, 200)]
                )
    return markdown(header, rows, left=3)


def robustness(data: Json) -> str:
    """robustness.json: mean boundary error and the share within 50 ms of each method on degraded audio (noise,
    reverberation, telephone band, faster speech), the refinement fitted on clean clips of other speakers."""
    methods: list[str] = []  # the first row's, in its order: every row has the same
    rows = []
    for model, sets in data["metrics"].items():
        for set_name, conditions in sets.items():
            for condition, by_method in conditions.items():
                methods = methods or list(by_method)
                cells = [f"{ms(by_method[m]['mean_ms'])} / {pct(by_method[m]['within_50ms'])}" for m in methods]
                rows.append([model, set_name, condition, *cells])
    header = ["model", "set", "audio", *(f"{method}: mean ms / ≤50 ms" for method in methods)]
    return markdown(header, rows, left=3)


def gpu_check(data: Json) -> str:
    """gpu_check.json: word times and text on the GPU against the CPU, and the heads buffer's moves."""
    rows = [
        [
            name,
            str(r["boundaries"]),
            f"{r['max_diff_ms']:.0f}",
            pct(r["within_20ms_of_cpu"]),
            pct(r["transcript_equal_to_cpu"]),
        ]
        for name, r in data["agreement"].items()
    ]
    table = markdown(
        [
            "run",
            "word boundaries",
            "max difference from the CPU ms",
            "within 20 ms of the CPU",
            "transcripts equal to the CPU's",
        ],
        rows,
    )
    b = data["buffer"]
    checks = {
        "sparse": b["buffer_is_sparse"],
        "same heads after `.to()`": b["heads_same_after_to_cuda"],
        "after `.half()`": b["heads_same_after_half"],
        "after a state-dict round trip": b["heads_same_after_state_dict_round_trip"],
    }
    listed = ", ".join(f"{label}: {'yes' if ok else 'NO'}" for label, ok in checks.items())
    return f"{table}\n\nAlignment-heads buffer on `{b['buffer_device']}` ({data['device']}): {listed}."


def damaged_audio(data: Json) -> str:
    """damaged_audio.json: mean boundary error on the damaged clips and on all of timit-dev, unrepaired and
    repaired, then the detector's counts."""
    header = ["model", "aligner", "damaged clips, as read", "repaired", "all timit-dev, as read", "repaired"]
    rows = []
    for model, methods in data["alignment"].items():
        for method, m in methods.items():
            cells = [
                m[w][k] for k in ("damaged clips mean ms", "timit-dev mean ms") for w in ("unrepaired", "repaired")
            ]
            rows.append([model, method, *(ms(c) for c in cells)])
    table = markdown(header, rows, left=2)
    sizes = {"timit-dev": 80, "festival": 390}
    found = "; ".join(f"{s}: {len(clips)} of {sizes.get(s, '?')} clips" for s, clips in data["damaged"].items())
    alarms, made = data["false alarms"], data["damage made on purpose"]
    return (
        f"{table}\n\nMean boundary error in ms, one clip per window. Damaged WAVs found: {found}. "
        f"False alarms: {len(alarms['flagged'])} of {alarms['signals checked']:,} signals. Damage made on purpose: "
        f"found in {made['detected']} of {made['clips']} clips, repaired exactly in {made['repaired exactly']}."
    )


# ---- the README blocks -------------------------------------------------------------------------------------------

TABLES: dict[str, Callable[[Json], str]] = {
    "accuracy_timit-dev": accuracy,
    "accuracy_festival": accuracy,
    "throughput": throughput,
    "throughput_cuda": lambda data: throughput(data, seconds_decimals=2),
    "longform": longform,
    "heads_split": heads_split,
    "transcription_accuracy": transcription_accuracy,
    "transcription_speed": transcription_speed,
    "transcription_speed_cuda": lambda data: transcription_speed(data, seconds_decimals=2),
    "gpu_check": gpu_check,
    "precision": precision,
    "refine_cv": refine_cv,
    "precision_segment": precision_segment,
    "packing_orders": packing_orders,
    "char_forcing": char_forcing,
    "cut_recordings": cut_recordings,
    "cut_recordings_packed": cut_recordings,
    "robustness": robustness,
    "whole_process": whole_process,
    "whole_process_busy": whole_process,
    "damaged_audio": damaged_audio,
}


def render(name: str, results: Path = RESULTS) -> str:
    """The block ``name`` as the README should hold it: the table, a blank line, the source note."""
    if name not in TABLES:
        raise ReportError(
            f"README block {name!r} has no generator; known names: {', '.join(TABLES)}. "
            "Fix the name in its <!-- results: NAME --> marker."
        )
    path = results / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(
            f"{path} not found: run the benchmark that writes it, or remove the README block {name!r}"
        ) from None
    except json.JSONDecodeError as error:
        raise ReportError(f"{path} is not valid JSON ({error}); rerun the benchmark that writes it") from None
    try:
        table = TABLES[name](data)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ReportError(
            f"{path} lacks what the {name!r} table needs ({type(error).__name__}: {error}); "
            "rerun its benchmark or update benchmarks/report.py to the new layout"
        ) from None
    return f"{table}\n\n{source_note(name, data)}\n"


def regenerate(text: str, results: Path = RESULTS) -> str:
    """``text`` (a README) with every results block replaced by what its JSON gives."""
    if text.count("<!-- results:") != len(BLOCK.findall(text)):
        raise ReportError(
            "a <!-- results: NAME --> marker has no matching <!-- /results --> (or a block is "
            "nested); close every block before running the report"
        )
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name"), results) + m.group(4), text)


def check(readme: Path = README, results: Path = RESULTS) -> str:
    """A unified diff from the README's blocks to the generated ones; empty when they agree."""
    current = readme.read_text()
    wanted = regenerate(current, results)
    return "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            f"{readme.name} (now)",
            f"{readme.name} (from {results.name}/*.json)",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the README's results blocks in place")
    action.add_argument("--check", action="store_true", help="exit 1 with a diff if a block differs from its JSON")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        if args.check:
            diff = check(args.readme, args.results)
            print(diff or f"{args.readme}: every results block matches its JSON", end="" if diff else "\n")
            return 1 if diff else 0
        if args.write:
            text = args.readme.read_text()
            args.readme.write_text(regenerate(text, args.results))
            print(f"wrote {len(BLOCK.findall(text))} results blocks in {args.readme}")
            return 0
        for name in TABLES:
            print(f"<!-- results: {name} -->\n{render(name, args.results)}<!-- /results -->\n")
        return 0
    except (ReportError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
