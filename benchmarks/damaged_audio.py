"""WAVs read one byte off (``frontend/byte_shift.py``): which evaluation clips are damaged, whether the detector
ever fires on sound that is not, whether the repair gives the recording's samples back, and what it changes.

1. ``damaged``: every clip of timit-dev and festival the detector flags, with the spans it repairs.
2. ``false alarms``: the detector on sound it must leave alone: every festival clip and every timit-dev clip it
   does not flag, each as it is and under robustness.py's degradations (white noise at 20 and 10 dB, babble,
   reverb, telephone band, 15% faster), each scaled to peak 0.9 and then by 0.05, 1, 3 and 10 (quiet to heavily
   clipped); synthetic tones, chirp, square wave, noise, silence and a DC level; 8-bit audio stored in 16 bits.
3. ``damage made on purpose``: in every festival clip and every unflagged timit-dev clip, one byte dropped or
   added (alternately) at a seeded place in the middle half of its data, and in every fourth clip a second one
   later on (undoing the first: a damaged stretch in the middle); the repaired samples are compared with the
   original (all equal but the one or two samples each damaged byte touches).
4. ``alignment``: per model, the damaged timit-dev clips aligned from their files unrepaired (``repair=False``)
   and repaired (the default), one clip per window, with openai-whisper's method (conformance mode) and the
   default mode (its shipped refinement, fitted on all of timit-dev unrepaired and festival's 0, 3, 6, ...: so
   these are not held-out figures, they compare the two inputs under one fixed model); also the mean over all
   of timit-dev, where only the damaged clips change.

    .venv/bin/python benchmarks/damaged_audio.py [--models tiny.en base]

Writes benchmarks/results/damaged_audio.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import robustness  # noqa: E402
from common import manifest, write_json  # noqa: E402
from whisper_align.alignment.words import AlignmentConfig  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.frontend.audio import load_audio  # noqa: E402
from whisper_align.frontend.byte_shift import byte_shifted_spans, repair_byte_shift  # noqa: E402
from whisper_align.results.manifest import Utterance, load_manifest  # noqa: E402
from whisper_align.tasks.align import align  # noqa: E402

GAINS = (0.05, 1.0, 3.0, 10.0)


def pcm16(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="int16")[0]


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 32768), -32768, 32767).astype(np.int16)


def damaged(sets: dict[str, list[Utterance]]) -> dict[str, dict[str, list]]:
    """{set: {id: [[start s, end s], ...]}} of the clips the detector flags."""
    out: dict[str, dict[str, list]] = {}
    for name, clips in sets.items():
        out[name] = {}
        for u in clips:
            spans = byte_shifted_spans(pcm16(u.audio))
            if spans:
                out[name][u.id] = [[round(a / 16000, 3), round(b / 16000, 3)] for a, b in spans]
    return out


def synthetic_signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    return {
        "sine 100 Hz": 0.5 * np.sin(2 * np.pi * 100 * t),
        "sine 3 kHz": 0.5 * np.sin(2 * np.pi * 3000 * t),
        "sine 7.9 kHz": 0.9 * np.sin(2 * np.pi * 7900 * t),
        "square 220 Hz": 0.5 * np.sign(np.sin(2 * np.pi * 220 * t)),
        "chirp": 0.7 * np.sin(2 * np.pi * (50 + 1300 * t) * t),
        "white noise, full scale": rng.uniform(-1, 1, t.size),
        "white noise, -54 dB": rng.normal(0, 0.002, t.size),
        "silence": np.zeros(t.size),
        "DC 0.3": np.full(t.size, 0.3),
    }


def false_alarms(clean: dict[str, np.ndarray]) -> dict:
    """How many signals that are not damaged the detector flags (it should be none)."""
    checked, flagged = 0, []
    others = list(clean.values())[:3]
    for clip_id, x in clean.items():
        for condition, (degrade, _) in robustness.CONDITIONS.items():
            y = x if degrade is None else degrade(x, clip_id, others)
            y = y / max(1e-9, float(np.abs(y).max())) * 0.9
            for gain in GAINS:
                checked += 1
                if byte_shifted_spans(to_pcm16(y * gain)):
                    flagged.append(f"{clip_id} {condition} x{gain}")
    for name, y in synthetic_signals().items():
        checked += 1
        if byte_shifted_spans(to_pcm16(y)):
            flagged.append(name)
    for clip_id, x in list(clean.items())[:40]:  # 8-bit audio in 16 bits: the low bytes are all zero
        checked += 1
        eight_bit = np.clip(np.rint(x / max(1e-9, float(np.abs(x).max())) * 127), -128, 127).astype(np.int16) * 256
        if byte_shifted_spans(eight_bit.astype(np.int16)):
            flagged.append(f"{clip_id} 8-bit")
    return {"signals checked": checked, "flagged": flagged}


def damage(x: np.ndarray, rng: np.random.Generator, drop: bool, twice: bool) -> tuple[np.ndarray, list[int]]:
    """``x`` with one byte dropped or added in the middle half of its data (and, ``twice``, the opposite later);
    returns the damaged samples and the sample indices where the damage is."""
    raw = bytearray(x.astype("<i2").tobytes())
    first = int(rng.integers(len(raw) // 4, len(raw) // 2))
    places = [first] + ([int(rng.integers(first + 3200, 3 * len(raw) // 4))] if twice else [])
    for place, drops in sorted(zip(places, (drop, not drop)), reverse=True):  # later first: the earlier stays put
        if drops:
            del raw[place]
        else:
            raw.insert(place, int(rng.integers(256)))
    raw = raw[: len(raw) // 2 * 2]
    return np.frombuffer(bytes(raw), dtype="<i2"), sorted(p // 2 for p in places)


def wrong_samples(repaired: np.ndarray, original: np.ndarray, places: list[int]) -> int:
    """Samples of ``repaired`` that differ from ``original``, away from the damaged places, after lining the two
    up again at each place (a dropped byte loses one sample, an added one doubles one)."""
    bounds = [0, *places, len(original)]
    wrong = 0
    for a, b in zip(bounds, bounds[1:]):
        lo, hi = a + 2, b - 2  # the samples next to a damaged byte are not expected to come back
        if hi <= lo:
            continue
        best = min(
            int(np.sum(repaired[lo + s : hi + s] != original[lo:hi]))
            for s in (-1, 0, 1)
            if 0 <= lo + s and hi + s <= len(repaired)
        )
        wrong += best
    return wrong


def made_damage(clean: dict[str, np.ndarray]) -> dict:
    """Damage every clip on purpose and count the clips repaired exactly."""
    rng = np.random.default_rng(7)
    exact, found, failures = 0, 0, []
    for k, (clip_id, x) in enumerate(clean.items()):
        original = to_pcm16(x)
        broken, places = damage(original, rng, drop=k % 2 == 0, twice=k % 4 == 3)
        spans = byte_shifted_spans(broken)
        found += bool(spans)
        wrong = wrong_samples(repair_byte_shift(broken, spans), original, places)
        exact += wrong == 0
        if wrong:
            failures.append(f"{clip_id}: {wrong} samples")
    return {"clips": len(clean), "detected": found, "repaired exactly": exact, "not exact": failures}


def boundary_errors(words: list, reference: list) -> list[float]:
    if len(words) != len(reference):
        raise SystemExit(f"{len(words)} words aligned, {len(reference)} in the reference")
    return [(abs(w.start - r[1]) + abs(w.end - r[2])) / 2 * 1000 for w, r in zip(words, reference)]


def alignment(name: str, timit: list[Utterance], damaged_ids: set[str]) -> dict:
    """Mean boundary error (ms) over the damaged clips and over all of timit-dev, unrepaired and repaired."""
    model = load_model(name)
    modes = {"openai-whisper's method (conformance)": "conformance", "default": "default"}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, mode in modes.items():
            config = AlignmentConfig(mode=mode)
            errors: dict[str, dict[str, list[float]]] = {"unrepaired": {}, "repaired": {}}
            for u in timit:
                fixed = align(model, load_audio(u.audio), u.text, config=config).words
                errors["repaired"][u.id] = boundary_errors(fixed, u.words)
                if u.id in damaged_ids:
                    kept = align(model, load_audio(u.audio, repair=False), u.text, config=config).words
                    errors["unrepaired"][u.id] = boundary_errors(kept, u.words)
                else:
                    errors["unrepaired"][u.id] = errors["repaired"][u.id]
            out[label] = {
                which: {
                    "damaged clips mean ms": float(np.mean([e for i in damaged_ids for e in per_clip[i]])),
                    "timit-dev mean ms": float(np.mean([e for v in per_clip.values() for e in v])),
                }
                for which, per_clip in errors.items()
            }
            print(name, label, json.dumps(out[label]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    args = parser.parse_args()
    sets = {name: load_manifest(manifest(name)) for name in ("timit-dev", "festival")}
    found = damaged(sets)
    print(json.dumps({s: len(v) for s, v in found.items()}), flush=True)
    clean = {
        u.id: pcm16(u.audio).astype(np.float32) / 32768
        for name, clips in sets.items()
        for u in clips
        if u.id not in found[name]
    }
    results = {
        "damaged": found,
        "false alarms": false_alarms(clean),
        "damage made on purpose": made_damage(clean),
    }
    print(json.dumps({k: v for k, v in results.items() if k != "damaged"})[:2000], flush=True)
    results["alignment"] = {name: alignment(name, sets["timit-dev"], set(found["timit-dev"])) for name in args.models}
    print(f"wrote {write_json('damaged_audio', {'protocol': __doc__, 'args': vars(args), **results})}")


if __name__ == "__main__":
    main()
