"""Transcription with word timestamps: ours against openai-whisper's ``transcribe()``, same weights and heads.

Two parts, chosen with ``--part``:

``accuracy``
    Every clip of each eval set (festival: every ``--stride``-th, all three voices) is transcribed greedily
    (temperature 0.0, conditioning on earlier text as by default) with word timestamps by openai-whisper and by
    :func:`whisper_align.tasks.transcribe.transcribe` in its default mode (attention captured while decoding, the
    aligner's default word rules) and, unless ``--no-conformance``, in conformance mode (openai's word rules).
    Both get the very same float32 samples (:func:`whisper_align.frontend.audio.load_audio`), so decoding is identical.
    Reported: the share of clips whose text equals openai's exactly, the WER of each against the manifest text
    (normalised with :func:`~whisper_align.results.evaluation.normalize_words`, word-level Levenshtein, pooled over
    clips), and the word-timing scores of each against the labelled boundaries
    (:func:`~whisper_align.results.evaluation.score`, :func:`~whisper_align.results.evaluation.format_table`).

``speed``
    timit-dev clips joined with 0.5 s of silence into ``--minutes`` of audio (built in memory, see
    :func:`long_audio`), transcribed greedily with and without
    word timestamps by each contender (ours, openai-whisper, faster-whisper when importable), ``--runs`` times
    in this process with the same torch threads, contenders interleaved within each run so that load from other
    processes hits them alike; an untimed warm-up call per contender first (numba compiles openai's DTW).
    Reports medians, the realtime factor, the ratio to openai in the same setting and each implementation's
    word-timestamp overhead. Our contenders: the float32 model as a user gets it (default word rules, so word
    timestamps leave the windows where they fall without them), the same with ``seek_to_last_word=True``
    (openai's rule: after a window that ends mid-segment, the next starts at the last word's end, which adds a
    window now and then), with checked int8 logits, and the int8 model. On a shared machine ``--threads 1``
    gives steadier numbers.

    .venv/bin/python benchmarks/transcription.py --part accuracy [--models tiny.en] [--sets timit-dev festival]
                                                 [--stride 3] [--limit N] [--no-conformance]
    .venv/bin/python benchmarks/transcription.py --part speed [--models tiny.en] [--minutes 3] [--runs 3]

With the int8 rows (``--no-int8`` skips them) the same runs use :func:`whisper_align.model.int8.quantize_int8` on
a second copy of the model: faster on the CPU, not the same arithmetic, so its text is compared with openai's too.

Writes benchmarks/results/transcription_accuracy.json or transcription_speed.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "src"))  # runs without installing the package
from common import device_name, manifest, openai_model, synchronize, write_json  # noqa: E402
from whisper_align.alignment.words import AlignmentConfig  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.errors import DamagedAudioWarning  # noqa: E402
from whisper_align.frontend.audio import SAMPLE_RATE, load_audio  # noqa: E402
from whisper_align.model.int8 import quantize_int8  # noqa: E402
from whisper_align.results.evaluation import format_table, normalize_words, score  # noqa: E402
from whisper_align.results.manifest import Utterance, load_manifest
from whisper_align.tasks.transcribe import transcribe  # noqa: E402

TimedWords = list[tuple[str, float, float]]

OURS_MODES = {
    "ours (captured, default)": AlignmentConfig(),
    "ours (captured, conformance)": AlignmentConfig(mode="conformance"),
}
INT8_ROW = "ours int8 (captured, default)"  # quantize_int8: faster on the CPU, not the same arithmetic
DEFAULT_STRIDES = {"festival": 3}  # festival is 390 clips; every 3rd still covers all three voices


# ---- shared ------------------------------------------------------------------------------------------------------


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions, insertions and deletions all cost 1)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1]


def openai_transcribe(reference, audio: np.ndarray, word_timestamps: bool) -> dict:
    """openai-whisper's ``transcribe()`` as a user calls it, greedy only; float32 on the CPU, float16 on a GPU
    (its default there, and ours)."""
    import whisper

    fp16 = reference.device.type != "cpu"
    return whisper.transcribe(reference, audio, temperature=0.0, word_timestamps=word_timestamps, fp16=fp16)


def openai_words(result: dict) -> TimedWords:
    return [(w["word"], float(w["start"]), float(w["end"])) for s in result["segments"] for w in s.get("words", [])]


def load_reference(model) -> Any:
    reference = openai_model(model)
    if reference is None:
        sys.exit("openai-whisper (import whisper) is not installed; both parts compare against it")
    return reference


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, first column left-aligned, the others right-aligned (as format_table's)."""
    widths = [max(len(row[k]) for row in [header] + rows) for k in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |"

    separator = "|" + "|".join(("-" * (w + 1) + ":") if k else "-" * (w + 2) for k, w in enumerate(widths)) + "|"
    return "\n".join([line(header), separator] + [line(row) for row in rows])


# ---- part 1: accuracy ------------------------------------------------------------------------------------------


def evaluate(
    models: dict,
    reference,
    model_name: str,
    set_name: str,
    utterances: list[Utterance],
    modes: dict[str, AlignmentConfig],
) -> dict:
    """``modes`` maps a row name to the alignment config it runs with, ``models`` a row name to its model."""
    names = ["openai"] + list(modes)
    texts: dict[str, dict[str, str]] = {name: {} for name in names}
    words: dict[str, dict[str, tuple[TimedWords, TimedWords]]] = {name: {} for name in names}
    second_pass_windows = {name: 0 for name in modes}
    threads = torch.get_num_threads()
    for i, u in enumerate(utterances):
        audio = load_audio(u.audio)
        torch.set_num_threads(threads)  # numba's OpenMP layer (openai's DTW) resets it to all cores on first use
        with torch.no_grad():
            ref_result = openai_transcribe(reference, audio, word_timestamps=True)
        texts["openai"][u.id] = ref_result["text"]
        words["openai"][u.id] = (u.words or [], openai_words(ref_result))
        for name, config in modes.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a second-pass window is counted below instead
                ours = transcribe(models[name], audio, temperature=0.0, word_timestamps=True, alignment_config=config)
            second_pass_windows[name] += ours.second_pass_windows
            texts[name][u.id] = ours.text
            words[name][u.id] = (u.words or [], [(w.word, w.start, w.end) for w in ours.words])
        print(f"\r{model_name} {set_name}: {i + 1}/{len(utterances)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    ref_word_count = sum(len(normalize_words(u.text)) for u in utterances)
    text_rows: dict[str, dict] = {}
    for name in names:
        errors = sum(edit_distance(normalize_words(u.text), normalize_words(texts[name][u.id])) for u in utterances)
        same = sum(texts[name][u.id] == texts["openai"][u.id] for u in utterances)
        differing = [
            {"id": u.id, "openai": texts["openai"][u.id], "ours": texts[name][u.id]}
            for u in utterances
            if texts[name][u.id] != texts["openai"][u.id]
        ]
        text_rows[name] = {
            "utterances": len(utterances),
            "text_equal_openai": same / len(utterances),
            "word_errors": errors,
            "ref_words": ref_word_count,
            "wer": errors / ref_word_count,
            "differing": differing,
        }
        if name in second_pass_windows:
            text_rows[name]["second_pass_windows"] = second_pass_windows[name]
    metrics = {name: score(words[name]) for name in names}
    text_table = markdown_table(
        ["", "utts", "text == openai", "ref words", "word errors", "WER"],
        [
            [
                name,
                str(r["utterances"]),
                f"{100 * r['text_equal_openai']:.1f}%",
                str(r["ref_words"]),
                str(r["word_errors"]),
                f"{100 * r['wer']:.2f}%",
            ]
            for name, r in text_rows.items()
        ],
    )
    return {
        "text": text_rows,
        "text_table": text_table,
        "metrics": {n: m.to_dict() for n, m in metrics.items()},
        "timing_table": format_table(metrics),
    }


def run_accuracy(args: argparse.Namespace) -> None:
    modes = dict(OURS_MODES)
    if args.no_conformance:
        del modes["ours (captured, conformance)"]
    if not args.no_int8:
        modes[INT8_ROW] = AlignmentConfig()
    results = {}
    for model_name in args.models:
        model = load_model(model_name)
        reference = load_reference(model)
        models = {name: model for name in modes}
        if INT8_ROW in modes:
            models[INT8_ROW] = quantize_int8(load_model(model_name))
        for set_name in args.sets:
            stride = args.stride if args.stride is not None else DEFAULT_STRIDES.get(set_name, 1)
            utterances = load_manifest(manifest(set_name))[::stride][: args.limit]
            result = evaluate(models, reference, model_name, set_name, utterances, modes)
            result["stride"] = stride
            results[f"{model_name}/{set_name}"] = result
            print(f"\n## {model_name} on {set_name} ({len(utterances)} clips, stride {stride}, greedy)\n")
            print(result["text_table"] + "\n")
            print(result["timing_table"])
            for name, row in result["text"].items():
                for d in row["differing"][:3]:
                    print(f"  {name} differs on {d['id']}: openai {d['openai']!r} / ours {d['ours']!r}")
    path = write_json("transcription_accuracy", {"args": vars(args), "results": results})
    print(f"\nwrote {path}")


# ---- part 2: speed ---------------------------------------------------------------------------------------------


def long_audio(minutes: float, gap_s: float = 0.5) -> np.ndarray:
    """timit-dev clips joined with ``gap_s`` of silence until at least ``minutes`` of audio (repeating the set
    if it is too short), trimmed to exactly that length. The quarter of them whose WAVs are read one byte off
    are repaired by ``load_audio`` (runs before 2026-12-02 left them out: unrepaired, greedy decoding of them
    fell into repetition loops, which timed hallucinations rather than transcription)."""
    utterances = load_manifest(manifest("timit-dev"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedAudioWarning)
        clips = [load_audio(u.audio) for u in utterances]
    target = int(minutes * 60 * SAMPLE_RATE)
    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    total, index = 0, 0
    while total < target:
        clip = clips[index % len(clips)]
        pieces += [clip, gap]
        total += len(clip) + len(gap)
        index += 1
    return np.concatenate(pieces)[:target]


Contender = Callable[[np.ndarray, bool], tuple[str, int]]  # (audio, word_timestamps) -> (text, segments)


def faster_whisper_contender(model_name: str, compute_type: str = "float32") -> Contender | None:
    """faster-whisper with the same CTranslate2 weights (the folder our loader reads, so no download), greedy on
    the CPU in ``compute_type`` (None if faster-whisper is not importable or the model is not a local CT2 folder)."""
    try:
        import faster_whisper
    except ImportError:
        return None
    from whisper_align.checkpoints import names

    folder = Path(names.resolve(model_name))
    if not (folder / "model.bin").exists():
        return None
    fw = faster_whisper.WhisperModel(
        str(folder), device="cpu", compute_type=compute_type, cpu_threads=torch.get_num_threads()
    )

    def run(audio: np.ndarray, word_timestamps: bool) -> tuple[str, int]:
        segments, _ = fw.transcribe(audio, beam_size=1, temperature=0.0, word_timestamps=word_timestamps, language="en")
        texts = [s.text for s in segments]  # the generator does the work
        return "".join(texts), len(texts)

    return run


def ours_contender(model, **options: Any) -> Contender:
    """Our ``transcribe()``, greedy, with ``options``; waits for the device before the clock stops."""

    def run(samples: np.ndarray, word_timestamps: bool) -> tuple[str, int]:
        result = transcribe(model, samples, temperature=0.0, word_timestamps=word_timestamps, **options)
        synchronize(model.device)
        return result.text, len(result.segments)

    return run


def speed_contenders(args: argparse.Namespace, model_name: str, model: Any, reference: Any) -> dict[str, Contender]:
    """openai-whisper and every variant of ours (and faster-whisper where importable) that ``--only`` keeps."""

    def openai(samples: np.ndarray, word_timestamps: bool) -> tuple[str, int]:
        with torch.no_grad():
            result = openai_transcribe(reference, samples, word_timestamps)
        synchronize(reference.device)
        return result["text"], len(result["segments"])

    contenders: dict[str, Contender] = {"openai-whisper": openai, "whisper-align": ours_contender(model)}
    cpu = args.device == "cpu"  # int8 kernels are CPU-only
    if cpu and not args.no_int8:
        contenders["whisper-align int8"] = ours_contender(quantize_int8(load_model(model_name)))
    contenders["whisper-align, seek_to_last_word=True"] = ours_contender(model, seek_to_last_word=True)
    if cpu:
        contenders["whisper-align, checked int8 logits"] = ours_contender(model, checked_int8_logits=True)
    for compute_type in ("float32", "int8"):
        wanted = not args.only or f"faster-whisper {compute_type}" in args.only
        fw = faster_whisper_contender(model_name, compute_type) if cpu and wanted else None
        if fw is not None:
            contenders[f"faster-whisper {compute_type}"] = fw
        else:
            print("faster-whisper is not importable (or has no local CT2 folder); skipped", file=sys.stderr)
    if args.only:
        contenders = {k: v for k, v in contenders.items() if k == "openai-whisper" or k in args.only}
    return contenders


Setting = tuple[str, bool]  # (contender, word timestamps)


def time_contenders(
    contenders: dict[str, Contender], audio: np.ndarray, runs: int
) -> tuple[dict[Setting, list[float]], dict[Setting, list[float]], dict[Setting, tuple[str, int]]]:
    """Each contender with and without word timestamps, ``runs`` rounds after a warm-up: wall seconds, this
    process's CPU seconds, and each setting's last output (text, segment count)."""
    settings = [(name, wt) for name in contenders for wt in (False, True)]
    times: dict[Setting, list[float]] = {key: [] for key in settings}
    cpu_times: dict[Setting, list[float]] = {key: [] for key in settings}
    outputs: dict[Setting, tuple[str, int]] = {}
    threads = torch.get_num_threads()
    warm_up = audio[: 5 * SAMPLE_RATE]
    for name in contenders:
        contenders[name](warm_up, True)
    for run in range(runs):
        for name, wt in settings:
            # numba's OpenMP layer (openai's DTW) resets torch's thread count to all cores on first use
            torch.set_num_threads(threads)
            start, start_cpu = time.perf_counter(), time.process_time()
            outputs[(name, wt)] = contenders[name](audio, wt)
            times[(name, wt)].append(time.perf_counter() - start)
            cpu_times[(name, wt)].append(time.process_time() - start_cpu)
            print(f"run {run + 1}/{runs} {name} word_timestamps={wt}: {times[(name, wt)][-1]:.2f} s", file=sys.stderr)
    return times, cpu_times, outputs


def speed_rows(
    times: dict[Setting, list[float]],
    cpu_times: dict[Setting, list[float]],
    outputs: dict[Setting, tuple[str, int]],
    seconds: float,
) -> tuple[list[dict], list[list[str]]]:
    """One JSON row and one table row per setting, each against openai-whisper in the same setting."""
    medians = {key: statistics.median(ts) for key, ts in times.items()}
    rows, table = [], []
    for name, wt in times:
        median = medians[(name, wt)]
        ratio = medians[("openai-whisper", wt)] / median
        rows.append(
            {
                "contender": name,
                "word_timestamps": wt,
                "seconds": times[(name, wt)],
                "median_s": median,
                "cpu_seconds": cpu_times[(name, wt)],
                "median_cpu_s": statistics.median(cpu_times[(name, wt)]),
                "realtime_factor": seconds / median,
                "speedup_vs_openai": ratio,
                "segments": outputs[(name, wt)][1],
                "text_equal_openai": outputs[(name, wt)][0] == outputs[("openai-whisper", wt)][0],
            }
        )
        table.append([name, "yes" if wt else "no", f"{median:.2f}", f"{seconds / median:.1f}", f"{ratio:.2f}x"])
    return rows, table


def paired_overhead(series: dict[Setting, list[float]], name: str) -> float:
    """The cost of word timestamps, paired within each run (the two settings ran back to back), median over runs:
    steadier than a ratio of medians when the machine's speed drifts between runs."""
    return statistics.median(w / wo - 1 for w, wo in zip(series[(name, True)], series[(name, False)]))


def speed_of_model(args: argparse.Namespace, model_name: str) -> dict:
    """One model's speed results (and the tables, printed)."""
    model = load_model(model_name)
    reference = load_reference(model).to(args.device)
    model = model.to(args.device)
    audio = long_audio(args.minutes)
    seconds = len(audio) / SAMPLE_RATE
    threads = torch.get_num_threads()
    contenders = speed_contenders(args, model_name, model, reference)
    times, cpu_times, outputs = time_contenders(contenders, audio, args.runs)
    rows, table = speed_rows(times, cpu_times, outputs, seconds)
    # CPU time too: on a shared machine other tenants slow the wall clock (steal, turbo), much less the CPU
    # seconds of a one-thread run
    overhead = {name: paired_overhead(times, name) for name in contenders}
    overhead_cpu = {name: paired_overhead(cpu_times, name) for name in contenders}
    speed_table = markdown_table(
        ["contender", "word timestamps", "median s", "x realtime", "ratio vs openai same setting"], table
    )
    overhead_table = markdown_table(
        ["contender", "word timestamps overhead, wall % (median of paired runs)", "same, CPU time %"],
        [[name, f"{100 * o:+.1f}%", f"{100 * overhead_cpu[name]:+.1f}%"] for name, o in overhead.items()],
    )
    print(
        f"\n## {model_name}: {seconds / 60:.1f} min of timit-dev speech, {threads} torch threads, "
        f"median of {args.runs} runs\n"
    )
    print(speed_table + "\n")
    print(overhead_table)
    for row in rows:
        if not row["text_equal_openai"]:
            wt = row["word_timestamps"]
            print(
                f"note: {row['contender']} (word timestamps {wt}) text differs from "
                f"openai's ({row['segments']} segments against {outputs[('openai-whisper', wt)][1]})"
            )
    return {
        "audio_seconds": seconds,
        "torch_threads": threads,
        "rows": rows,
        "word_timestamps_overhead": overhead,
        "word_timestamps_overhead_cpu": overhead_cpu,
        "speed_table": speed_table,
        "overhead_table": overhead_table,
    }


def run_speed(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {model_name: speed_of_model(args, model_name) for model_name in args.models}
    name = "transcription_speed" if args.device == "cpu" else f"transcription_speed_{torch.device(args.device).type}"
    if args.only:  # a partial run does not overwrite the full table
        name += "_only"
    if args.device != "cpu":
        results["device"] = device_name(args.device)
    path = write_json(name, {"args": vars(args), "results": results})
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["accuracy", "speed"], required=True)
    parser.add_argument("--models", nargs="+", default=["tiny.en"])
    parser.add_argument("--sets", nargs="+", default=["timit-dev", "festival"], help="accuracy: eval sets")
    parser.add_argument("--stride", type=int, help="accuracy: every Nth clip (default 3 for festival, else 1)")
    parser.add_argument("--limit", type=int, help="accuracy: first N clips of each set (quick runs)")
    parser.add_argument("--no-conformance", action="store_true", help="accuracy: skip our conformance-mode row")
    parser.add_argument("--no-int8", action="store_true", help="skip our int8 model (quantize_int8; CPU only)")
    parser.add_argument("--only", nargs="+", help="speed: run just these contenders (and openai-whisper)")
    parser.add_argument("--minutes", type=float, default=3.0, help="speed: minutes of audio")
    parser.add_argument("--runs", type=int, default=3, help="speed: runs per contender and setting")
    parser.add_argument("--device", default="cpu", help="speed: cpu or cuda")
    parser.add_argument("--threads", type=int, help="torch threads for everything (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.part == "accuracy":
        run_accuracy(args)
    else:
        run_speed(args)


if __name__ == "__main__":
    main()
