"""Where ``--int8`` transcription time goes, against float32, on whole_process.py's recording (issue #15).

The recording is the one ``whole_process.py --tasks transcribe`` times: ``--minutes`` of timit-dev clips joined
with 0.5 s pauses (:func:`transcription.long_audio`). Each variant runs :func:`whisper_align.tasks.transcribe`
in this process exactly as the CLI calls it (word timestamps, English, default temperature fallback), at the
default thread count, and the run is instrumented from outside (wrapped functions; nothing in the library
changes) to count and time:

- load (``load_model``) and quantize (``quantize_int8``) seconds;
- windows, decode attempts per window and why each fallback happened (compression ratio above 2.4, average
  log-probability below -1; a window that ends as no-speech stops falling back), decoder calls (steps);
- seconds in the encoder, in decoding (attempts minus their encoder time), in word alignment
  (``add_word_timestamps``) and the rest of the loop.

Variants: ``float32``, ``int8`` (what ``--int8`` does now) and any of :data:`EXTRA` given with ``--variants``.
Each variant runs ``--runs`` times interleaved; times are medians, counts come from the first run (greedy
decoding at temperature 0 is deterministic; sampled fallbacks are not, so their counts may differ by run).

    .venv/bin/python benchmarks/int8_breakdown.py [--minutes 3] [--runs 2] [--variants float32 int8]

Writes benchmarks/results/int8_breakdown.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "src"))
import whisper_align  # noqa: E402, F401  (first: it sets libgomp's short spin before torch loads, as the CLI does)
from common import write_json  # noqa: E402
from transcription import long_audio  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.model import int8  # noqa: E402
from whisper_align.tasks import decoding, transcribe  # noqa: E402

COMPRESSION, LOGPROB, NO_SPEECH = 2.4, -1.0, 0.6  # transcribe()'s default thresholds

# extra variants: name -> keyword arguments of quantize_int8 (only those the current code accepts run)
EXTRA: dict[str, dict[str, Any]] = {}


class Meter:
    """Counters and timers filled by the wrapped functions during one transcription."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"encoder": 0.0, "decode_attempts": 0.0, "word_alignment": 0.0}
        self.attempts: list[dict[str, Any]] = []
        self.decoder_calls = 0


@contextmanager
def instrumented(meter: Meter):  # noqa: ANN201
    """Wrap the encoder, the decoder, a decode attempt and word alignment so that ``meter`` sees them."""
    saved: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        saved.append((owner, name, original))
        setattr(owner, name, make(original))

    def timed(key: str) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            def inner(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    meter.seconds[key] += time.perf_counter() - start

            return inner

        return make

    def counted(original: Any) -> Any:
        def inner(*args: Any, **kwargs: Any) -> Any:
            meter.decoder_calls += 1
            return original(*args, **kwargs)

        return inner

    def attempt(original: Any) -> Any:
        def inner(self: decoding.DecodingTask, mel: Any) -> Any:
            start = time.perf_counter()
            results = original(self, mel)
            meter.seconds["decode_attempts"] += time.perf_counter() - start
            r = results[0]
            meter.attempts.append(
                {
                    "temperature": r.temperature,
                    "tokens": len(r.tokens),
                    "compression_ratio": r.compression_ratio,
                    "avg_logprob": r.avg_logprob,
                    "no_speech_prob": r.no_speech_prob,
                    "text": r.text,
                }
            )
            return results

        return inner

    wrap(decoding.DecodingTask, "run", attempt)
    wrap(transcribe, "add_word_timestamps", timed("word_alignment"))
    from whisper_align.model.whisper import AudioEncoder, TextDecoder

    wrap(AudioEncoder, "forward", timed("encoder"))
    wrap(TextDecoder, "forward", counted)
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def windows(attempts: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group the decode attempts by window: each window starts with a temperature-0 attempt."""
    grouped: list[list[dict[str, Any]]] = []
    for a in attempts:
        if a["temperature"] == 0 or not grouped:
            grouped.append([])
        grouped[-1].append(a)
    return grouped


def fallback_reasons(attempt: dict[str, Any]) -> list[str]:
    """Why transcribe() did not accept this attempt (empty: accepted)."""
    too_repetitive = attempt["compression_ratio"] > COMPRESSION
    too_unlikely = attempt["avg_logprob"] < LOGPROB
    if attempt["no_speech_prob"] > NO_SPEECH and too_unlikely:
        return []
    return ["compression_ratio"] * too_repetitive + ["avg_logprob"] * too_unlikely


def one_run(variant: str, audio: np.ndarray) -> dict[str, Any]:
    """Load (and quantize), transcribe ``audio`` with word timestamps, and return the breakdown."""
    start = time.perf_counter()
    model = load_model("tiny.en")
    loaded = time.perf_counter()
    if variant != "float32":
        int8.quantize_int8(model, **EXTRA.get(variant, {}))
    quantized = time.perf_counter()
    meter = Meter()
    with instrumented(meter), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        begin = time.perf_counter()
        result = transcribe.transcribe(model, audio, word_timestamps=True, language="en")
        total = time.perf_counter() - begin
    grouped = windows(meter.attempts)
    reasons: dict[str, int] = {}
    for group in grouped:
        for a in group[:-1]:
            for reason in fallback_reasons(a) or ["other"]:
                reasons[reason] = reasons.get(reason, 0) + 1
    decoding_s = meter.seconds["decode_attempts"] - meter.seconds["encoder"]
    return {
        "seconds": {
            "load": loaded - start,
            "quantize": quantized - loaded,
            "transcribe": total,
            "encoder": meter.seconds["encoder"],
            "decoding": decoding_s,
            "word_alignment": meter.seconds["word_alignment"],
            "rest": total - meter.seconds["decode_attempts"] - meter.seconds["word_alignment"],
        },
        "windows": len(grouped),
        "attempts": len(meter.attempts),
        "fallbacks": len(meter.attempts) - len(grouped),
        "fallback_reasons": reasons,
        "attempts_per_window": [len(g) for g in grouped],
        "fallback_windows": [
            {"window": i, "attempts": [{k: v for k, v in a.items() if k != "text"} for a in g], "text": g[0]["text"]}
            for i, g in enumerate(grouped)
            if len(g) > 1
        ],
        "decoder_calls": meter.decoder_calls,
        "tokens_sampled": sum(a["tokens"] for a in meter.attempts),
        "words": sum(len(s.words or []) for s in result.segments),
        "text": result.text,
    }


def summary_line(variant: str, run: dict[str, Any]) -> str:
    s = run["seconds"]
    return (
        f"{variant:18s} load {s['load']:.2f} quant {s['quantize']:.2f} transcribe {s['transcribe']:.2f} "
        f"(enc {s['encoder']:.2f} dec {s['decoding']:.2f} words {s['word_alignment']:.2f} rest {s['rest']:.2f}) "
        f"windows {run['windows']} fallbacks {run['fallbacks']} {run['fallback_reasons']} "
        f"calls {run['decoder_calls']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=["float32", "int8"])
    parser.add_argument("--out", default="int8_breakdown")
    args = parser.parse_args()
    audio = long_audio(args.minutes)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    for r in range(args.runs):
        for variant in args.variants[r % len(args.variants) :] + args.variants[: r % len(args.variants)]:
            runs[variant].append(one_run(variant, audio))
            print(f"run {r + 1}: " + summary_line(variant, runs[variant][-1]), flush=True)
    reference = runs[args.variants[0]][0]["text"].split()
    results = {}
    for variant, done in runs.items():
        first = dict(done[0])
        first["seconds"] = {k: statistics.median(d["seconds"][k] for d in done) for k in first["seconds"]}
        first["seconds_runs"] = [d["seconds"] for d in done]
        words = first.pop("text").split()
        first["text_equal_to_first_variant"] = words == reference
        first["text_words"] = len(words)
        results[variant] = first
        print("median  " + summary_line(variant, first))
    import torch  # (already loaded by whisper_align, after it set the spin count)

    settings = {"minutes": args.minutes, "runs": args.runs, "threads": torch.get_num_threads()}
    print("wrote", write_json(args.out, {"settings": settings, "variants": results}))


if __name__ == "__main__":
    main()
