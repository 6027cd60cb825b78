"""Shared helpers of the benchmark scripts: eval sets, openai-whisper reference models, JSON output."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
EVAL = Path(os.environ.get("WHISPER_ALIGN_EVAL", ROOT.parent / "shared" / "eval"))
RESULTS = ROOT / "benchmarks" / "results"


def manifest(name: str) -> Path:
    path = EVAL / name / "manifest.jsonl"
    if not path.is_file():
        sys.exit(f"eval set {name!r} not found at {path}; set WHISPER_ALIGN_EVAL to the folder holding it")
    return path


def speaker_halves(utterances: list) -> list[list]:
    """The utterances of timit-dev's two speaker halves (speakers sorted, alternating), in manifest order: the
    split every speaker-held-out benchmark here uses."""
    speakers = sorted({u.speaker for u in utterances})
    return [[u for u in utterances if u.speaker in set(speakers[k::2])] for k in (0, 1)]


def align_utterances(model, utterances, **options) -> dict[str, list[dict]]:  # noqa: ANN001
    """{id: words} from ``align_corpus`` (``align --manifest``) over a manifest of ``utterances`` in their order;
    ``options`` go to ``align_corpus``."""
    from whisper_align.tasks.corpus import align_corpus

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.jsonl"
        path.write_text(
            "".join(json.dumps({"id": u.id, "audio": str(u.audio), "text": u.text}) + "\n" for u in utterances)
        )
        align_corpus(model, path, Path(folder) / "out.jsonl", progress=False, **options)
        rows = [json.loads(line) for line in (Path(folder) / "out.jsonl").read_text().splitlines()]
    return {row["id"]: row["words"] for row in rows}


def openai_model(model):
    """openai-whisper's Whisper with the very same weights and heads as our ``model`` (None if not installed)."""
    try:
        import whisper
    except ImportError:
        return None
    from whisper_align.checkpoints import save_model
    from whisper_align.heads import encode

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        save_model(model, path, format="openai")
        reference = whisper.load_model(str(path), device="cpu")
    mask = model.alignment_heads.to_dense().numpy()
    reference.set_alignment_heads(encode(mask))
    return reference.float().eval()


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer read next measures it (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: str | torch.device) -> str:
    """The GPU's name for a CUDA device, else "CPU"."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def commit() -> str:
    """The code's git commit, with "+dirty" when the working tree differs from it (so a figure can be traced)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "benchmarks"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine() -> dict:
    return {
        "commit": commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write_json(name: str, payload: dict) -> Path:
    """Write results atomically to benchmarks/results/NAME.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def build_caches(capture, cache: Path, models: list[str], count) -> None:  # noqa: ANN001
    """Run ``capture(model_name)`` for each model at one thread (warnings silenced) and pickle what it returns to
    ``cache/<model>.pkl``; ``count(data)`` is the number of utterances, for the progress line."""
    import pickle
    import warnings

    cache.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for name in models:
        started = time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = capture(name)
        path = cache / f"{name}.pkl"
        with open(path, "wb") as handle:
            pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
        print(f"{name}: {count(data)} utterances in {time.time() - started:.0f} s -> {path}")
