"""Cache, per model and utterance, what the precision experiments need (one encoder + one decoder pass each).

For every utterance of timit-dev and festival: every decoder head's pre-softmax cross-attention scores (float16,
as ``discovery.capture_attention`` keeps them), the clip's log-mel frames (10 ms) and its encoder output (20 ms
positions), cropped to the real audio. Written to /tmp/precision-cache/MODEL.pkl (never into the repo).

    PYTHONPATH=src .venv/bin/python benchmarks/precision_cache.py --models tiny.en base
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from common import build_caches, manifest  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.checkpoints.tokenizers import get_tokenizer  # noqa: E402
from whisper_align.frontend.audio import HOP_LENGTH, load_audio  # noqa: E402
from whisper_align.results.manifest import load_manifest  # noqa: E402
from whisper_align.tasks.align import clip_pass, prepare_text  # noqa: E402

CACHE = Path("/tmp/precision-cache")
SETS = ("timit-dev", "festival")


def capture(name: str) -> dict:
    model = load_model(name)
    with torch.inference_mode():
        return _capture(model, name)


def _capture(model, name: str) -> dict:
    tokenizer = get_tokenizer(model)
    dims = model.dims
    heads = [(layer, head) for layer in range(dims.n_text_layer) for head in range(dims.n_text_head)]
    items = []
    for set_name in SETS:
        for index, utt in enumerate(load_manifest(manifest(set_name))):
            if set_name == "festival" and index % 3 == 2:
                continue  # neither fitted on nor scored (precision.py uses clips 0, 3, ... and 1, 4, ...)
            samples = load_audio(utt.audio)
            tokens = prepare_text(tokenizer, utt.text)
            n_frames = len(samples) // HOP_LENGTH
            run = clip_pass(model, tokenizer, samples, tokens, False, heads)
            qk, mel, features, n_positions = run.qk, run.mel, run.features, run.n_positions
            words, word_tokens = tokenizer.split_to_word_tokens(tokens + [tokenizer.eot])
            items.append(
                dict(
                    set=set_name,
                    index=index,
                    id=utt.id,
                    speaker=utt.speaker,
                    duration=len(samples) / 16000,
                    reference=utt.words,
                    scores=qk.to(torch.float16).numpy(),
                    n_sot=len(tokenizer.sot_sequence),
                    words=words,
                    word_tokens=word_tokens,
                    mel=mel[:, :n_frames].to(torch.float16).numpy(),
                    enc=features[0, :n_positions].to(torch.float16).numpy(),
                )
            )
    return dict(
        model=name,
        n_text_layer=dims.n_text_layer,
        n_text_head=dims.n_text_head,
        official=[layer * dims.n_text_head + head for layer, head in model.alignment_head_pairs()],
        time_shift=model.alignment_time_shift,
        items=items,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    build_caches(capture, CACHE, parser.parse_args().models, lambda data: len(data["items"]))


if __name__ == "__main__":
    main()
