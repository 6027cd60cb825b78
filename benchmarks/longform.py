"""Long-form forced alignment: one recording of 10+ minutes built from eval clips, against short-clip accuracy.

The recording concatenates labelled clips (timit-dev first, then festival until ``--minutes`` is reached) with
0.5-2.0 s of silence between them (seeded), shifting each clip's reference word times. Its whole transcript is
aligned in one call of ``whisper_align.align`` (30 s windows, see ``aligner.align_long``), then scored against
the shifted references and compared with aligning the same clips one by one. Peak resident memory is reported.

Word count and order are checked first, for the long run and for every clip alone: the output words, joined,
must give back the transcript, and there must be exactly as many as the transcript has words (as Whisper splits
them: "semi-heights" is "semi" + "-heights"). The timing score matches words and ignores extras, so a duplicated
or lost word would not show there; here it makes the run fail (exit status 1, after writing the results).

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
from whisper_align.alignment.words import AlignmentConfig  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.checkpoints.tokenizers import get_tokenizer  # noqa: E402
from whisper_align.frontend.audio import SAMPLE_RATE, load_audio  # noqa: E402
from whisper_align.results.evaluation import format_table, score  # noqa: E402
from whisper_align.results.manifest import load_manifest  # noqa: E402
from whisper_align.tasks.align import align, group_starts, prepare_text  # noqa: E402


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


def check_words(result, text: str, tokenizer) -> dict:  # noqa: ANN001
    """Word count and order of ``result`` against its transcript ``text``: extra, missing or reordered words
    show as ``ok: False``. Also counts the words flagged past the end and those of zero length."""
    words = result.words
    expected = int(
        group_starts(*tokenizer.split_to_word_tokens(prepare_text(tokenizer, text)), AlignmentConfig()).sum()
    )
    same_text = "".join(w.word for w in words) == " " + " ".join(text.split())
    return {
        "ok": same_text and len(words) == expected,
        "words": len(words),
        "expected": expected,
        "text_identical": same_text,
        "in_order": all(a.start <= a.end <= b.start for a, b in zip(words, words[1:])),
        "past_end": sum(w.past_end for w in words),
        "zero_length": sum(w.end <= w.start for w in words),
        "low_confidence": bool(result.low_confidence),
    }


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
    tokenizer = get_tokenizer(model)
    long_check = check_words(result, text, tokenizer)

    short, short_checks = {}, []
    for u, samples in chosen:
        clip = align(model, samples, u.text)
        short[u.id] = (u.words, clip.words)
        short_checks.append(check_words(clip, u.text, tokenizer))
    short_metrics = score(short)
    short_check = {
        "ok": all(c["ok"] for c in short_checks),
        "clips_failing": sum(not c["ok"] for c in short_checks),
        **{key: sum(c[key] for c in short_checks) for key in ("words", "expected", "past_end", "zero_length")},
        "low_confidence_clips": sum(c["low_confidence"] for c in short_checks),
    }
    duration = len(audio) / SAMPLE_RATE
    table = format_table(
        {f"one {duration / 60:.1f}-min recording": long_metrics, "same clips one by one": short_metrics}
    )
    print(f"\n{len(chosen)} clips, {duration / 60:.1f} min, {len(text.split())} words; model {args.model}\n")
    print(table)
    for name, check in (("long recording", long_check), ("clips one by one", short_check)):
        verdict = "OK" if check["ok"] else "FAILED (extra, missing or reordered words)"
        print(
            f"word check, {name}: {check['words']} words for {check['expected']} in the transcript: {verdict}; "
            f"{check['past_end']} flagged past the end, {check['zero_length']} of zero length"
        )
    print(
        f"\nlong-form alignment took {elapsed:.1f} s ({duration / elapsed:.1f}x realtime); peak RSS "
        f"{rss_peak:.0f} MB (after loading the model: {rss_model:.0f} MB; the audio itself is "
        f"{audio.nbytes / 2**20:.0f} MB)"
    )
    path = write_json(
        "longform",
        {
            "args": vars(args),
            "clips": len(chosen),
            "duration_s": duration,
            "seconds": elapsed,
            "peak_rss_mb": rss_peak,
            "rss_after_model_mb": rss_model,
            "long": long_metrics.to_dict(),
            "short": short_metrics.to_dict(),
            "table": table,
            "word_check": {"long": long_check, "short": short_check},
        },
    )
    print(f"wrote {path}")
    if not (long_check["ok"] and short_check["ok"]):
        sys.exit("word count or order is wrong: see the word check above")


if __name__ == "__main__":
    main()
