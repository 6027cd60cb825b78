"""Ray engine throughput against the single-process engine, on one machine: what Ray costs, and how it scales.

Aligns timit-dev + festival (one manifest of both, audio paths absolute) with tiny.en, ``--runs`` times each:

* the single-process engine (``align_corpus``, as ``align --manifest`` runs it), with torch's default threads
  and with one thread (the per-core figure a Ray worker is compared with);
* the Ray engine (``align_on_ray``, as ``align --manifest --engine ray`` runs it) with 1 and with 2 workers
  (one torch thread each), each run in a fresh local Ray (``ray.init(num_cpus=<cores>)``, shut down after).

Every Ray run's output file must equal the single-process one byte for byte (the benchmark stops otherwise).
A Ray run's time is split into starting Ray (``ray.init``), the time to the first block of results (workers
start, import torch, load the model) and the stream of results after it: ``steady × real time`` is the audio of
the blocks after the first over the time between the first and the last, the rate a long run settles at, from
which a large corpus can be estimated. The machine's load average is recorded (it may be shared).

    .venv/bin/python benchmarks/ray_engine.py [--runs 3] [--model tiny.en] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import manifest, write_json  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.engines import ray_run  # noqa: E402
from whisper_align.engines.ray_data import ModelSpec  # noqa: E402
from whisper_align.engines.ray_run import Cluster, align_on_ray  # noqa: E402
from whisper_align.frontend.audio import SAMPLE_RATE  # noqa: E402
from whisper_align.results.manifest import load_manifest  # noqa: E402
from whisper_align.tasks.corpus import align_corpus, estimated_samples  # noqa: E402

SETS = ("timit-dev", "festival")


def combined_manifest(folder: Path, limit: int | None = None) -> tuple[Path, dict[str, float]]:
    """One manifest of every clip of :data:`SETS` (the first ``limit``), and each clip's duration in seconds."""
    lines, durations = [], {}
    for name in SETS:
        for u in load_manifest(manifest(name)):
            if limit is not None and len(lines) >= limit:
                break
            lines.append(json.dumps({"id": u.id, "audio": str(u.audio), "text": u.text}))
            durations[u.id] = estimated_samples(u.audio) / SAMPLE_RATE
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, durations


def run_local(model_name: str, path: Path, out: Path, threads: int) -> dict:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        model = load_model(model_name)
        loaded = time.perf_counter()
        align_corpus(model, path, out, progress=False)
        end = time.perf_counter()
    finally:
        torch.set_num_threads(before)
    return {"total_s": end - start, "load_s": loaded - start}


def timed_blocks(original: Callable, arrivals: list[tuple[float, list[str]]]) -> Callable:
    """A stand-in for ray_run._run that notes when each block of results reaches the driver, and its ids."""

    def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        for results in original(*args, **kwargs):
            arrivals.append((time.perf_counter(), [r.id for r in results]))
            yield results

    return run


def run_ray(model_name: str, path: Path, out: Path, workers: int, durations: dict[str, float]) -> dict:
    import ray

    arrivals: list[tuple[float, list[str]]] = []
    original = ray_run._run
    ray_run._run = timed_blocks(original, arrivals)
    try:
        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        started = time.perf_counter()
        align_on_ray(path, out, ModelSpec(model_name), Cluster(workers=workers), progress=False)
        end = time.perf_counter()
    finally:
        ray.shutdown()
        ray_run._run = original
    first, last = arrivals[0][0], arrivals[-1][0]
    later_audio = sum(durations[i] for _, ids in arrivals[1:] for i in ids)
    return {
        "total_s": end - start,
        "init_s": started - start,
        "first_block_s": first - started,
        "blocks": len(arrivals),
        "arrivals_s": [round(t - started, 2) for t, _ in arrivals],  # each block's results, from ray.init's end
        "steady_realtime": later_audio / (last - first) if last > first else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--limit", type=int, help="only the first N clips (a quick check; writes no results)")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, durations = combined_manifest(folder, args.limit)
        audio_s = sum(durations.values())
        contenders: dict[str, Callable[[Path], dict]] = {
            f"single process, {torch.get_num_threads()} threads": lambda out: run_local(
                args.model, path, out, torch.get_num_threads()
            ),
            "single process, 1 thread": lambda out: run_local(args.model, path, out, 1),
        }
        for n in args.workers:
            contenders[f"Ray, {n} worker{'s' if n > 1 else ''}"] = lambda out, n=n: run_ray(
                args.model, path, out, n, durations
            )
        runs: dict[str, list[dict]] = {name: [] for name in contenders}
        reference: bytes | None = None
        for k in range(args.runs):
            for name, fn in contenders.items():
                out = folder / f"out-{k}-{len(runs[name])}-{name.replace(' ', '_').replace(',', '')}.jsonl"
                runs[name].append(fn(out))
                written = out.read_bytes()
                reference = reference or written
                if written != reference:
                    sys.exit(f"{name} wrote a different file than the single-process engine; stopping")
                print(f"run {k + 1}/{args.runs} {name}: {runs[name][-1]['total_s']:.1f} s", file=sys.stderr)
    load_after = os.getloadavg()
    rows = summarize(runs, audio_s)
    print_table(rows, len(durations), audio_s, args.runs, cores, load_before, load_after)
    payload = {
        "args": vars(args),
        "sets": list(SETS),
        "clips": len(durations),
        "audio_seconds": audio_s,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "identical_output": True,
        "rows": rows,
    }
    if args.limit is None:
        print(f"\nwrote {write_json('ray_engine', payload)}")


def summarize(runs: dict[str, list[dict]], audio_s: float) -> list[dict]:
    """Medians of each contender's runs; ``ratio`` is its throughput over the first contender's."""
    base = statistics.median(r["total_s"] for r in next(iter(runs.values())))
    rows = []
    for name, results in runs.items():
        median = statistics.median(r["total_s"] for r in results)
        row = {"contender": name, "runs": results, "median_s": median, "realtime_factor": audio_s / median}
        row["ratio"] = base / median
        for key in ("init_s", "first_block_s", "steady_realtime"):
            values = [r[key] for r in results if r.get(key) is not None]
            if values:
                row[f"median_{key}"] = statistics.median(values)
        rows.append(row)
    return rows


def print_table(rows, clips, audio_s, runs, cores, load_before, load_after) -> None:  # noqa: ANN001
    print(
        f"\ntimit-dev + festival: {clips} clips, {audio_s / 60:.1f} min of audio, {cores} cores, median of "
        f"{runs} runs; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n"
    )
    print("| engine | median s | × real time | vs single process | Ray start s | first block s | steady × rt |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [r.get("median_init_s"), r.get("median_first_block_s"), r.get("median_steady_realtime")]
        extra = " | ".join("" if v is None else f"{v:.1f}" for v in cells)
        print(f"| {r['contender']} | {r['median_s']:.1f} | {r['realtime_factor']:.1f} | {r['ratio']:.2f}× | {extra} |")


if __name__ == "__main__":
    main()
