"""Write tests/data/golden_timit.json: the words whisper-align gives today on a few timit-dev clips (issue #15).

tests/test_output_identity.py reruns the same two jobs and compares with this file:

- ``align``: ``whisper-align align --manifest`` (packed, the default, float32) over 12 clips, the first 4
  undamaged ones of each of 3 speakers: every word with start, end and probability as the CLI writes them;
- ``transcribe``: ``transcribe(model, audio, word_timestamps=True)`` (float32, English) on 3 of those clips: the
  text and every word with start and end rounded to the ms, probability to 4 decimals.

Rerun this only when a change is *meant* to move words (a new alignment rule, a new default), and commit the new
file with that change; a change meant only to make things faster must pass the test with the file as it is:

    .venv/bin/python tools/golden_outputs.py

Everything runs at one torch thread (the sums of a product can be split differently at other thread counts).
The evaluation data is read from ``../shared/eval`` beside the checkout (or ``WHISPER_ALIGN_EVAL``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden_timit.json"
EVAL = Path(os.environ.get("WHISPER_ALIGN_EVAL") or ROOT.parent / "shared" / "eval").resolve()
MANIFEST = EVAL / "timit-dev" / "manifest.jsonl"
MODEL = "tiny.en"
SPEAKERS, PER_SPEAKER, TRANSCRIBED = 3, 4, 3


def looks_damaged(audio: Path) -> bool:
    """Whether the WAV's samples are read one byte off somewhere (:mod:`whisper_align.frontend.byte_shift`; a
    quarter of timit-dev's WAVs). ``load_audio`` repairs them; the golden clips leave them out all the same, as they
    did before the repair existed, so that the golden words stay those of the clips first chosen."""
    import warnings

    import numpy as np

    from whisper_align.frontend.audio import load_audio
    from whisper_align.frontend.byte_shift import byte_shifted_spans

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning is the point here
        samples = load_audio(str(audio), repair=False)
    return bool(byte_shifted_spans(np.round(samples * 32768).astype(np.int16)))


def clips(manifest: Path = MANIFEST) -> list[dict[str, str]]:
    """The clips, in manifest order: the first ``PER_SPEAKER`` undamaged clips of each of the first ``SPEAKERS``
    speakers (sorted by name) that have that many, as manifest lines {"id", "audio" (absolute), "text"}."""
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    chosen: list[dict[str, str]] = []
    for speaker in sorted({row["speaker"] for row in rows}):
        clean = [r for r in rows if r["speaker"] == speaker and not looks_damaged(manifest.parent / r["audio"])]
        if len(clean) >= PER_SPEAKER:
            chosen += clean[:PER_SPEAKER]
        if len(chosen) == SPEAKERS * PER_SPEAKER:
            break
    return [{"id": r["id"], "audio": str((manifest.parent / r["audio"]).resolve()), "text": r["text"]} for r in chosen]


def transcribed(chosen: list[dict[str, str]]) -> list[dict[str, str]]:
    """The clips also transcribed: the third one of each speaker (the first one or two are "sa" sentences,
    the same for every speaker)."""
    return chosen[2::PER_SPEAKER][:TRANSCRIBED]


def run_align(chosen: list[dict[str, str]], int8: bool = False) -> dict[str, list[list[Any]]]:
    """``whisper-align align --manifest`` over ``chosen`` (in this process, through the CLI's own entry point):
    {id: [[word, start, end, probability], ...]} as the output file holds them."""
    from whisper_align.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        manifest, out = Path(tmp) / "clips.jsonl", Path(tmp) / "out.jsonl"
        manifest.write_text("".join(json.dumps(c) + "\n" for c in chosen))
        args = ["align", "--manifest", str(manifest), "--out", str(out), "--model", MODEL, "--threads", "1"]
        if main([*args, "--int8"] if int8 else args) != 0:
            raise SystemExit(f"whisper-align align --manifest failed on {manifest}")
        lines = [json.loads(line) for line in out.read_text().splitlines()]
    return {
        line["id"]: [[w["word"], w["start"], w["end"], w.get("probability")] for w in line["words"]] for line in lines
    }


def run_transcribe(chosen: list[dict[str, str]], model: Any) -> dict[str, dict[str, Any]]:
    """``transcribe(word_timestamps=True)`` on each clip: {id: {"text", "words": [[word, start, end, prob]]}}."""
    from whisper_align.tasks.transcribe import transcribe

    results = {}
    for clip in chosen:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = transcribe(model, clip["audio"], word_timestamps=True, language="en")
        words = [[w.word, round(w.start, 3), round(w.end, 3), round(w.probability, 4)] for w in result.words]
        results[clip["id"]] = {"text": result.text, "words": words}
    return results


def cpu_kind() -> str:
    """The vector instructions torch's CPU kernels use here (e.g. AVX2): float sums round the same way only on
    the same kind, so the float32 outputs are byte-identical only there."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def golden() -> dict[str, Any]:
    """What the golden file holds, computed now with the float32 model."""
    from whisper_align.checkpoints import load_model

    chosen = clips()
    return {
        "about": "whisper-align's words on timit-dev clips; regenerate with: python tools/golden_outputs.py",
        "model": MODEL,
        "cpu": cpu_kind(),
        "align": run_align(chosen),
        "transcribe": run_transcribe(transcribed(chosen), load_model(MODEL)),
    }


def dumps(data: dict[str, Any]) -> str:
    """JSON with one word a line, so that a regenerated file's diff shows which words moved."""

    def words(items: list[Any], indent: str) -> str:
        return "[\n" + ",\n".join(indent + json.dumps(w, ensure_ascii=False) for w in items) + "\n" + indent[:-1] + "]"

    align = ",\n".join(f"  {json.dumps(k)}: {words(v, '   ')}" for k, v in data["align"].items())
    transcribed = ",\n".join(
        f'  {json.dumps(k)}: {{"text": {json.dumps(v["text"], ensure_ascii=False)}, '
        f'"words": {words(v["words"], "   ")}}}'
        for k, v in data["transcribe"].items()
    )
    head = {k: v for k, v in data.items() if k not in ("align", "transcribe")}
    text = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
    text += f',\n "align": {{\n{align}\n }},\n "transcribe": {{\n{transcribed}\n }}\n}}\n'
    assert json.loads(text) == data
    return text


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    if not MANIFEST.is_file():
        sys.exit(f"timit-dev not found at {MANIFEST}; set WHISPER_ALIGN_EVAL to the folder holding it")
    import torch

    torch.set_num_threads(1)
    data = golden()
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(dumps(data))
    n_align = sum(len(words) for words in data["align"].values())
    n_transcribe = sum(len(clip["words"]) for clip in data["transcribe"].values())
    print(f"wrote {GOLDEN}: {n_align} aligned words on {len(data['align'])} clips, {n_transcribe} transcribed words")


if __name__ == "__main__":
    main()
