"""Word-boundary precision on audio unlike the fitting data: does what was fitted on clean read speech (the
heads, the time shift, the boundary refinement) still help where the recording is noisy, reverberant,
band-limited or spoken faster?

Each test clip is degraded one way at a time and aligned three ways: openai-whisper's method (conformance
mode: official heads, no shift, no refinement), the default without its refinement, and the default. The
refinement is fitted on clean clips only, by the protocol of refine_cv.py (timit-dev speakers split in halves,
each half scored with a refinement fitted on the other half plus festival's clips 0, 3, 6, ...; festival's clips
1, 7, 13, ... scored with one fitted on all of timit-dev plus festival's 0, 3, 6, ...). One clip per window.

The degradations (seeded per clip, so every run sees the same audio):

- ``white 20 dB`` / ``white 10 dB``: white noise at that signal-to-noise ratio (over the whole clip);
- ``babble 10 dB``: three other test clips of the same set, summed and looped, at 10 dB;
- ``reverb``: convolved with a synthetic room (exponentially decaying noise, RT60 0.5 s, direct path first);
- ``telephone``: band-passed to 300-3400 Hz and sampled at 8 kHz, then back to 16 kHz;
- ``faster 1.15x``: resampled to play 15% faster (pitch up with it); the reference times are divided by 1.15.

    .venv/bin/python benchmarks/robustness.py [--models tiny.en base] [--limit N]

Prints a table and writes benchmarks/results/robustness.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402
from refine_cv import clip_words, fit_on, folds, mean_ms  # noqa: E402
from whisper_align.alignment.words import AlignmentConfig  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.checkpoints.tokenizers import get_tokenizer  # noqa: E402
from whisper_align.frontend.audio import SAMPLE_RATE, load_audio  # noqa: E402
from whisper_align.results.evaluation import score  # noqa: E402
from whisper_align.results.manifest import Utterance  # noqa: E402
from whisper_align.tasks.align import (  # noqa: E402
    align,
)

RESULT = Path(__file__).resolve().parent / "results" / "robustness.json"
ROWS = ("openai-whisper's method (conformance)", "default without refinement", "default")
FASTER = 1.15


def _rng(clip_id: str, salt: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{clip_id}/{salt}".encode()))


def _at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    power = np.mean(x**2) / max(np.mean(noise**2), 1e-12)
    return (x + noise * np.sqrt(power / 10 ** (snr_db / 10))).astype(np.float32)


def white(snr_db: float) -> Callable:
    def degrade(x: np.ndarray, clip_id: str, others: list[np.ndarray]) -> np.ndarray:
        return _at_snr(x, _rng(clip_id, "white").standard_normal(len(x)), snr_db)

    return degrade


def babble(x: np.ndarray, clip_id: str, others: list[np.ndarray]) -> np.ndarray:
    picks = _rng(clip_id, "babble").choice(len(others), size=min(3, len(others)), replace=False)
    noise = sum(np.resize(others[i] / (np.std(others[i]) + 1e-9), len(x)) for i in picks)
    return _at_snr(x, np.asarray(noise), 10.0)


def reverb(x: np.ndarray, clip_id: str, others: list[np.ndarray]) -> np.ndarray:
    t = np.arange(int(0.6 * SAMPLE_RATE)) / SAMPLE_RATE
    room = _rng(clip_id, "room").standard_normal(len(t)) * np.exp(-6.9 * t / 0.5)  # -60 dB at 0.5 s
    room[0] = 1.0 / 0.3  # a direct path well above the reflections
    wet = signal.fftconvolve(x, room)[: len(x)]
    return (wet * np.abs(x).max() / (np.abs(wet).max() + 1e-9)).astype(np.float32)


def telephone(x: np.ndarray, clip_id: str, others: list[np.ndarray]) -> np.ndarray:
    band = signal.butter(4, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    narrow = signal.resample_poly(signal.sosfilt(band, x), 1, 2)
    return signal.resample_poly(narrow, 2, 1)[: len(x)].astype(np.float32)


def faster(x: np.ndarray, clip_id: str, others: list[np.ndarray]) -> np.ndarray:
    return signal.resample_poly(x, 20, round(20 * FASTER)).astype(np.float32)


CONDITIONS: dict[str, tuple[Callable | None, float]] = {  # name -> (degradation, factor on reference times)
    "clean": (None, 1.0),
    "white 20 dB": (white(20.0), 1.0),
    "white 10 dB": (white(10.0), 1.0),
    "babble 10 dB": (babble, 1.0),
    "reverb": (reverb, 1.0),
    "telephone": (telephone, 1.0),
    f"faster {FASTER}x": (faster, 1 / FASTER),
}


def score_test(model, tokenizer, test: list[Utterance]) -> dict[str, dict[str, dict]]:  # noqa: ANN001
    """{condition: {row: {id: (reference, hypothesis)}}} over ``test``."""
    clean = {u.id: load_audio(u.audio) for u in test}
    out: dict[str, dict[str, dict]] = {c: {row: {} for row in ROWS} for c in CONDITIONS}
    for u in test:
        others = [clean[v.id] for v in test if v.id != u.id]
        for condition, (degrade, factor) in CONDITIONS.items():
            samples = clean[u.id] if degrade is None else degrade(clean[u.id], u.id, others)
            reference = [(w, s * factor, e * factor) for w, s, e in u.words or []]
            conformance = align(model, samples, u.text, config=AlignmentConfig(mode="conformance")).words
            words = clip_words(model, tokenizer, samples, u.text, [(False, True), (True, True)])
            hyps = ([(w.word, w.start, w.end) for w in conformance], words[False, True], words[True, True])
            for row, hyp in zip(ROWS, hyps):
                out[condition][row][u.id] = (reference, hyp)
    return out


def run_model(name: str, limit: int | None) -> dict:
    """Fit on each fold's clean clips (as ``fit_refiner`` does) and score its test clips under every condition."""
    model = load_model(name)
    tokenizer = get_tokenizer(model)
    clips: dict[str, object] = {}
    pairs: dict[str, dict[str, dict[str, dict]]] = {}
    for set_name, fit_part, test in folds(None):
        test = test[1::2] if set_name == "festival" else test  # festival 1, 7, 13, ...
        fit_part, test = fit_part[:limit], test[:limit]
        started = time.time()
        fit_on(model, fit_part, clips)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scored = score_test(model, tokenizer, test)
        for condition, rows in scored.items():
            for row, hyps in rows.items():
                pairs.setdefault(set_name, {}).setdefault(condition, {}).setdefault(row, {}).update(hyps)
        print(f"{name} {set_name}: {len(test)} clips in {time.time() - started:.0f} s", file=sys.stderr, flush=True)
    return {
        s: {c: {row: score(p) for row, p in rows.items()} for c, rows in conditions.items()}
        for s, conditions in pairs.items()
    }


def main() -> None:
    import report  # the README's table format (imported late: it puts this checkout's src/ first on the path)

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--limit", type=int, help="first N clips of each fit/test list (quick runs)")
    args = parser.parse_args()
    previous = json.loads(RESULT.read_text()).get("metrics", {}) if RESULT.is_file() else {}
    for name in args.models:  # each model written as soon as it is done, beside the others' last results
        results = run_model(name, args.limit)
        metrics = dict(previous)
        metrics[name] = {
            s: {c: {row: dict(m.to_dict(), mean_ms=mean_ms(m)) for row, m in rows.items()} for c, rows in cs.items()}
            for s, cs in results.items()
        }
        previous = metrics
        print(report.robustness({"metrics": {name: metrics[name]}}))
        payload = {"protocol": __doc__, "args": vars(args), "metrics": metrics}
        print(f"wrote {write_json('robustness', payload)}")


if __name__ == "__main__":
    main()
