"""Long-form forced alignment: one recording of 10+ minutes built from eval clips, against short-clip accuracy.

The recording concatenates labelled clips (timit-dev first, then festival until ``--minutes`` is reached) with
0.5-2.0 s of silence between them (seeded), shifting each clip's reference word times. Its whole transcript is
aligned in one call of ``whisper_align.align`` (30 s windows, see ``aligner.align_long``), then scored against
the shifted references and compared with aligning the same clips one by one. Peak resident memory is reported.

    .venv/bin/python benchmarks/longform.py [--model tiny.en] [--minutes 10]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import manifest, write_json  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.frontend.audio import SAMPLE_RATE, load_audio  # noqa: E402
from whisper_align.results.evaluation import format_table, score  # noqa: E402
from whisper_align.results.manifest import load_manifest
from whisper_align.tasks.align import align  # noqa: E402


def build(minutes: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    clips = load_manifest(manifest("timit-dev")) + load_manifest(manifest("festival"))
    pieces, texts, reference, chosen = [], [], [], []
    t = 0.0
    for u in clips:
        if t >= minutes * 60:
            break
        samples = load_audio(u.audio)
        gap = np.zeros(int(rng.uniform(0.5, 2.0) * SAMPLE_RATE), dtype=np.float32)
        pieces += [gap, samples]
        t += len(gap) / SAMPLE_RATE
        reference += [(word, start + t, end + t) for word, start, end in u.words]
        texts.append(u.text)
        chosen.append((u, samples))
        t += len(samples) / SAMPLE_RATE
    return np.concatenate(pieces), " ".join(texts), reference, chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()

    model = load_model(args.model)
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    audio, text, reference, chosen = build(args.minutes)
    start = time.perf_counter()
    result = align(model, audio, text, progress=True)
    elapsed = time.perf_counter() - start
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    long_metrics = score({"long": (reference, result.words)})

    short = {u.id: (u.words, align(model, samples, u.text).words) for u, samples in chosen}
    short_metrics = score(short)
    duration = len(audio) / SAMPLE_RATE
    table = format_table({f"one {duration / 60:.1f}-min recording": long_metrics, "same clips one by one": short_metrics})
    print(f"\n{len(chosen)} clips, {duration / 60:.1f} min, {len(text.split())} words; model {args.model}\n")
    print(table)
    print(f"\nlong-form alignment took {elapsed:.1f} s ({duration / elapsed:.1f}x realtime); peak RSS "
          f"{rss_peak:.0f} MB (after loading the model: {rss_model:.0f} MB; the audio itself is "
          f"{audio.nbytes / 2**20:.0f} MB)")
    path = write_json("longform", {
        "args": vars(args), "clips": len(chosen), "duration_s": duration, "seconds": elapsed,
        "peak_rss_mb": rss_peak, "rss_after_model_mb": rss_model,
        "long": long_metrics.to_dict(), "short": short_metrics.to_dict(), "table": table,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
