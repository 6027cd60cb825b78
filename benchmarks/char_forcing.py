"""Character-level teacher forcing (issue #10, idea 2) against the usual BPE tokens, heads found the same way.

"Whisper has an internal word aligner" (arXiv 2509.09987) feeds the transcript to the decoder one character per
token and reads the alignment from the heads that follow the characters. This probe asks whether that gives
better raw word boundaries than the BPE tokens we feed today, with everything else equal:

- the transcript goes in as BPE tokens (``prepare_text``) or as characters (each word's first character with
  its leading space, then one token per further character; a character that is not one token keeps its bytes'
  tokens); both give the same words;
- every head's attention is captured once per clip and tokenization (one encoder and one decoder pass);
- heads are found (``discovery.find_heads``, supervised, with its time shift) on clips they are then not scored
  on: timit-dev's speaker halves (as heads_split.py splits them), both directions, the two test halves pooled;
  festival's clips 0, 3, 6, ... to find, 1, 4, 7, ... to score; the official heads are scored too, unshifted;
- scoring is the raw alignment of the default mode (DTW over the heads' attention, no boundary refinement:
  the shipped refinement was fitted on BPE-token attention, so it would favour the tokens).

    .venv/bin/python benchmarks/char_forcing.py [--models tiny.en base] [--sets timit-dev festival] [--limit N]

Writes benchmarks/results/char_forcing.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from common import manifest, speaker_halves, write_json  # noqa: E402
from whisper_align.alignment.words import AlignmentConfig  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.heads import discovery as D  # noqa: E402
from whisper_align.heads.scoring import word_times  # noqa: E402
from whisper_align.results.evaluation import format_table, score  # noqa: E402
from whisper_align.results.manifest import load_manifest  # noqa: E402
from whisper_align.tasks.align import clean_text  # noqa: E402


def character_tokens(tokenizer, text: str) -> list[int]:  # noqa: ANN001
    """The transcript one character per token: " w", "o", "r", "d" for each word (bytes' tokens where a
    character is not a token of its own; a contraction's ending as BPE gives it)."""
    tokens: list[int] = []
    for word in clean_text(text).split():
        head, apostrophe, tail = word[1:].partition("'")
        for piece in [" " + word[0], *head]:
            tokens += tokenizer.encode(piece)
        if apostrophe:  # a contraction's ending ("'ll", "'s") as BPE gives it, so that "we'll" stays one word
            tokens += tokenizer.encode(apostrophe + tail)
    return tokens


def capture(model, utterances: list, tokenization: str) -> D.CaptureSet:  # noqa: ANN001
    """Every head's attention per clip, from BPE tokens or from characters."""
    if tokenization == "characters":
        return D.capture_attention(model, utterances, text_tokens=character_tokens)
    return D.capture_attention(model, utterances)


def folds_of(set_name: str, utterances: list) -> list[tuple[list[str], list[str]]]:
    """(fit ids, test ids) per fold: timit-dev's speaker halves both ways; festival's clips 0, 3, 6, ... to fit
    and 1, 4, 7, ... to score (the refine_cv protocol)."""
    if set_name == "festival":
        return [([u.id for u in utterances[0::3]], [u.id for u in utterances[1::3]])]
    a, b = ([u.id for u in half] for half in speaker_halves(utterances))
    return [(a, b), (b, a)]


def run_set(model, set_name: str, utterances: list, max_heads: int) -> dict:  # noqa: ANN001
    """Both tokenizations on one labelled set: heads found on each fold's fit ids, scored on its test ids."""
    config = AlignmentConfig(refine=False)
    out: dict = {}
    for tokenization in ("tokens", "characters"):
        started = time.time()
        needed = {i for fit, test in folds_of(set_name, utterances) for i in fit + test}
        captures = capture(model, [u for u in utterances if u.id in needed], tokenization)
        official = next(v for k, v in D.reference_sets(captures).items() if k.startswith("official"))
        rows: dict[str, list] = {"official": [], "found (supervised)": []}
        found = []
        for fit, test_ids in folds_of(set_name, utterances):
            heads = D.find_heads(captures.subset(fit), config, holdout=0.3, split_by="auto", max_heads=max_heads)
            found.append(heads.pairs)
            shifted = dataclasses.replace(config, time_shift=heads.time_shift or 0.0)
            test = captures.subset(test_ids).items(config)
            rows["official"] += [(i.id, i.reference, word_times(i, official, config)) for i in test]
            rows["found (supervised)"] += [
                (i.id, i.reference, word_times(i, captures.flat(heads.mask), shifted)) for i in test
            ]
        metrics = {k: score(v) for k, v in rows.items()}
        print(f"\n{model.info.name}, {set_name}, {tokenization} ({time.time() - started:.0f} s), test parts pooled:")
        print(format_table(metrics))
        out[tokenization] = {
            "found_heads": found,
            "pooled": {k: m.to_dict() for k, m in metrics.items()},
            "seconds": time.time() - started,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--sets", nargs="+", default=["timit-dev", "festival"])
    parser.add_argument("--max-heads", type=int, default=12)
    parser.add_argument("--limit", type=int, default=None, help="first N utterances of each set only (a quick look)")
    args = parser.parse_args()
    results: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.models:
            model = load_model(name)
            results[name] = {
                set_name: run_set(model, set_name, load_manifest(manifest(set_name))[: args.limit], args.max_heads)
                for set_name in args.sets
            }
    path = write_json(
        "char_forcing",
        {
            "sets": args.sets,
            "protocol": "timit-dev: speaker halves, heads found on one and scored on the other, both directions "
            "pooled; festival: heads found on clips 0, 3, 6, ..., scored on 1, 4, 7, ...; raw alignment (no "
            "boundary refinement)",
            "models": results,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
