"""Cache what the word-level global decode experiments (benchmarks/precision_segment.py) need, per model and
utterance: the alignment heads' scores, the token probabilities, the clip's log-mel frames and encoder states
(one encoder + one decoder pass each, exactly as ``align`` runs one clip). Written to /tmp/segment-cache/MODEL.pkl.

    PYTHONPATH=src .venv/bin/python benchmarks/precision_segment_cache.py --models tiny.en
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_caches, manifest  # noqa: E402
from whisper_align.checkpoints import load_model  # noqa: E402
from whisper_align.checkpoints.tokenizers import get_tokenizer  # noqa: E402
from whisper_align.frontend.audio import load_audio  # noqa: E402
from whisper_align.results.manifest import load_manifest  # noqa: E402
from whisper_align.tasks.align import clip_pass, prepare_text  # noqa: E402

CACHE = Path("/tmp/segment-cache")


def capture(name: str) -> list[dict]:
    model = load_model(name)
    model.boundary_refiner = None
    tokenizer = get_tokenizer(model)
    items = []
    for set_name in ("timit-dev", "festival"):
        for index, u in enumerate(load_manifest(manifest(set_name))):
            if set_name == "festival" and index % 3 == 2:
                continue
            samples = load_audio(u.audio)
            tokens = prepare_text(tokenizer, u.text)
            run = clip_pass(model, tokenizer, samples, tokens)
            qk, probs, mel, features, n_positions = run.qk, run.probs, run.mel, run.features, run.n_positions
            items.append(
                dict(
                    set=set_name,
                    index=index,
                    id=u.id,
                    speaker=u.speaker,
                    reference=u.words,
                    duration=len(samples) / 16000,
                    tokens=tokens,
                    probs=probs,
                    qk=qk.float().numpy(),
                    mel=mel[:, : 2 * n_positions].float().numpy(),
                    states=features[0, :n_positions].float().numpy(),
                )
            )
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en"])
    build_caches(capture, CACHE, parser.parse_args().models, len)


if __name__ == "__main__":
    main()
