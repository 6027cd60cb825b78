"""Speed as a user times it: whole processes at the default thread count, contenders interleaved (issue #15).

Every measurement here is one fresh ``python`` process (interpreter start, imports, model load, work, writing
the result), with no thread setting, on the same weights (the bundled tiny.en: openai-whisper reads it from a
``.pt`` written by ``save_model``, faster-whisper from the very CTranslate2 folder we load). The contenders of a
task run one after another within a round, in a rotated order, and ``--runs`` rounds give medians, so load from
other processes hits all of them alike. Three tasks:

``load``
    ``import`` + load the model, nothing else.
``transcribe``
    ``--minutes`` of timit-dev clips joined with 0.5 s pauses (written as one WAV), transcribed with word
    timestamps, greedy (temperature 0 with the usual fallback), English. openai-whisper's and faster-whisper's
    Python APIs (beam_size=1), our CLI (``whisper-align transcribe ... --word_timestamps True``), also ``--int8``.
``align``
    Corpus alignment of timit-dev plus every 6th festival clip: our ``whisper-align align --manifest`` (packed, the
    default; ``--no-realign``, which leaves barely heard clips packed; and ``--no-pack``) against the loop an
    openai-whisper user writes (per clip: log-mel padded to 30 s, ``whisper.timing.find_alignment``).

With ``--busy N``, N other processes spin on the CPU throughout (a laptop or a shared box doing something else),
and the results go to ``whole_process_busy.json``.

The in-process figures at one thread (model loaded, nothing else running) come from throughput.py and
transcription.py; this script is the other setting the README shows.

    .venv/bin/python benchmarks/whole_process.py [--tasks load transcribe align] [--runs 3] [--minutes 3] [--busy N]

Writes benchmarks/results/whole_process.json (or whole_process_busy.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
CLI = str(Path(PYTHON).with_name("whisper-align"))
SAMPLE_RATE = 16000

# ---- what the reference contenders' processes run (each imports only what its library needs) ---------------------


def read_wav(path: str):  # noqa: ANN201 - numpy is imported by the child only
    import numpy as np

    with wave.open(path, "rb") as f:
        if f.getframerate() != SAMPLE_RATE or f.getnchannels() != 1 or f.getsampwidth() != 2:
            raise SystemExit(f"{path}: expected 16 kHz mono 16-bit PCM")
        data = f.readframes(f.getnframes())
    return np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768.0


def child_openai_load(pt: str) -> None:
    import whisper

    whisper.load_model(pt, device="cpu")


def child_openai_transcribe(pt: str, audio: str, out: str) -> None:
    import whisper

    model = whisper.load_model(pt, device="cpu")
    result = whisper.transcribe(model, read_wav(audio), word_timestamps=True, language="en", fp16=False)
    Path(out).write_text(json.dumps(result))


def child_openai_align(pt: str, manifest: str, out: str) -> None:
    import torch
    import whisper
    import whisper.timing
    import whisper.tokenizer

    model = whisper.load_model(pt, device="cpu")
    tokenizer = whisper.tokenizer.get_tokenizer(False, language="en", task="transcribe")
    lines = []
    for line in Path(manifest).read_text().splitlines():
        row = json.loads(line)
        mel = whisper.log_mel_spectrogram(torch.from_numpy(read_wav(row["audio"])), padding=whisper.audio.N_SAMPLES)
        tokens = tokenizer.encode(" " + row["text"].strip())
        with torch.no_grad():
            timings = whisper.timing.find_alignment(model, tokenizer, tokens, mel[:, :3000], mel.shape[-1] - 3000)
        words = [{"word": t.word, "start": float(t.start), "end": float(t.end)} for t in timings]
        lines.append(json.dumps({"id": row["id"], "words": words}))
    Path(out).write_text("\n".join(lines) + "\n")


def child_faster_load(folder: str, compute_type: str) -> None:
    from faster_whisper import WhisperModel

    WhisperModel(folder, device="cpu", compute_type=compute_type)


def child_faster_transcribe(folder: str, compute_type: str, audio: str, out: str) -> None:
    from faster_whisper import WhisperModel

    model = WhisperModel(folder, device="cpu", compute_type=compute_type)
    segments, _ = model.transcribe(audio, word_timestamps=True, language="en", beam_size=1)
    rows = [{"text": s.text, "words": [[w.word, w.start, w.end] for w in s.words or []]} for s in segments]
    Path(out).write_text(json.dumps(rows))


CHILDREN = {
    "openai-load": child_openai_load,
    "openai-transcribe": child_openai_transcribe,
    "openai-align": child_openai_align,
    "faster-load": child_faster_load,
    "faster-transcribe": child_faster_transcribe,
}


def child(name: str, *args: str) -> list[str]:
    """The command line that runs ``CHILDREN[name](*args)`` in a fresh process."""
    return [PYTHON, str(Path(__file__).resolve()), "--child", name, *args]


# ---- inputs --------------------------------------------------------------------------------------------------------


def prepare(work: Path, minutes: float) -> dict[str, str]:
    """Write the inputs every contender reads: the .pt, the long WAV and the corpus manifest (absolute paths)."""
    sys.path.insert(0, str(HERE))
    import numpy as np

    from common import manifest
    from transcription import long_audio
    from whisper_align import load_model, save_model
    from whisper_align.checkpoints.names import bundled_folders
    from whisper_align.results.manifest import load_manifest

    model = load_model("tiny.en")
    save_model(model, work / "tiny.en.pt", format="openai")
    folders = bundled_folders("tiny.en")
    assert folders, "the bundled tiny.en is not installed"

    samples = np.clip(long_audio(minutes) * 32768, -32768, 32767).astype(np.int16)
    with wave.open(str(work / "long.wav"), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(samples.tobytes())

    rows = [(u, "timit-dev") for u in load_manifest(manifest("timit-dev"))]
    rows += [(u, "festival") for u in load_manifest(manifest("festival"))[::6]]
    with open(work / "corpus.jsonl", "w") as f:
        for u, _ in rows:
            f.write(json.dumps({"id": u.id, "audio": str(u.audio), "text": u.text}) + "\n")
    return {
        "pt": str(work / "tiny.en.pt"),
        "ct2": str(folders[0]),
        "wav": str(work / "long.wav"),
        "corpus": str(work / "corpus.jsonl"),
        "clips": str(len(rows)),
        "audio_s": str(round(len(samples) / SAMPLE_RATE, 1)),
    }


def contenders(task: str, inputs: dict[str, str], out: str) -> dict[str, list[str]]:
    """{name: command line} for ``task``; ``out`` is where a command writes its result."""
    pt, ct2, wav, corpus = inputs["pt"], inputs["ct2"], inputs["wav"], inputs["corpus"]
    if task == "load":
        return {
            "openai-whisper": child("openai-load", pt),
            "faster-whisper float32": child("faster-load", ct2, "float32"),
            "faster-whisper int8": child("faster-load", ct2, "int8"),
            "whisper-align": [PYTHON, "-c", "import whisper_align; whisper_align.load_model('tiny.en')"],
        }
    if task == "transcribe":
        ours = [CLI, "transcribe", wav, "--model", "tiny.en", "--word_timestamps", "True", "--language", "en"]
        ours += ["--output_format", "json", "--output_dir", out, "--verbose", "False"]
        return {
            "openai-whisper": child("openai-transcribe", pt, wav, out + ".json"),
            "faster-whisper float32": child("faster-transcribe", ct2, "float32", wav, out + ".json"),
            "faster-whisper int8": child("faster-transcribe", ct2, "int8", wav, out + ".json"),
            "whisper-align": ours,
            "whisper-align --int8": [*ours, "--int8"],
            # libgomp's own spin count (what ours used before it set a short one): shows what the setting buys
            "whisper-align, GOMP_SPINCOUNT=300000": ["env", "GOMP_SPINCOUNT=300000", *ours],
        }
    if task == "align":
        ours = [CLI, "align", "--manifest", corpus, "--out", out + ".jsonl", "--model", "tiny.en"]
        return {
            "openai-whisper find_alignment loop": child("openai-align", pt, corpus, out + ".jsonl"),
            "whisper-align align --manifest": ours,
            "whisper-align align --manifest --int8": [*ours, "--int8"],
            "whisper-align align --manifest --no-realign": [*ours, "--no-realign"],
            "whisper-align align --manifest --no-pack": [*ours, "--no-pack"],
        }
    raise SystemExit(f"unknown task {task!r}")


# ---- timing --------------------------------------------------------------------------------------------------------


def timed(command: list[str], out: str) -> float:
    """Seconds one process takes, from start to exit; its output is removed first (ours resume otherwise)."""
    for path in (Path(out + ".jsonl"), Path(out + ".json")):
        path.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return seconds


def run_task(task: str, inputs: dict[str, str], runs: int, work: Path) -> dict:
    out = str(work / f"out-{task}")
    commands = contenders(task, inputs, out)
    names = list(commands)
    times: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        order = names[run % len(names) :] + names[: run % len(names)]
        for name in order:
            times[name].append(timed(commands[name], out))
            print(f"  {task} round {run + 1}: {name} {times[name][-1]:.2f} s", flush=True)
    reference = statistics.median(times[names[0]])
    rows = [
        {
            "contender": name,
            "median_s": statistics.median(times[name]),
            "runs_s": times[name],
            "speedup": reference / statistics.median(times[name]),
        }
        for name in names
    ]
    return {"reference": names[0], "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["load", "transcribe", "align"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=3.0, help="transcribe: minutes of audio")
    parser.add_argument("--busy", type=int, default=0, help="other processes spinning on the CPU meanwhile")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        CHILDREN[args.child[0]](*args.child[1:])
        return

    sys.path.insert(0, str(HERE))
    from common import write_json

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = prepare(work, args.minutes)
        busy = [subprocess.Popen([PYTHON, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            results = {}
            for task in args.tasks:
                results[task] = run_task(task, inputs, args.runs, work)
                for row in results[task]["rows"]:
                    print(f"{task:10s} {row['contender']:42s} {row['median_s']:7.2f} s  {row['speedup']:5.2f}x")
        finally:
            for process in busy:
                process.kill()
    settings = {
        "runs": args.runs,
        "minutes": args.minutes,
        "audio_s": float(inputs["audio_s"]),
        "clips": int(inputs["clips"]),
        "cores": os.cpu_count(),
        "busy": args.busy,
    }
    name = "whole_process_busy" if args.busy else "whole_process"
    print("wrote", write_json(name, {"settings": settings, "tasks": results}))


if __name__ == "__main__":
    main()
