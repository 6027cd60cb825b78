"""``whisper-align heads refine``: fit the default mode's boundary refinement for a model on labelled speech.

    whisper-align heads refine my-model/ --data labelled.jsonl --write      store it in the checkpoint
    whisper-align heads refine tiny.en --data labelled.jsonl --out refine.json

The refinement learns where this model's heads put word boundaries against where the labelled manifest has them
(see :mod:`whisper_align.alignment.refine`). A part of the manifest (whole speakers when it names them) is held
out first: the refinement fitted on the rest is scored there against the unrefined default mode, so the printed
gain is one on speech it never saw; what is written is then fitted on everything. Run it after ``heads find``
when you change the heads: a refinement belongs to one head set and time shift.
"""

from __future__ import annotations

import argparse
import random
import sys
import warnings
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    refine = sub.add_parser(
        "refine",
        help="fit the boundary refinement for a model's heads from speech with word times",
        description=__doc__.split("\n\n")[2].replace("\n", " ") if __doc__ else None,
    )
    refine.add_argument("model", metavar="MODEL", help="official name or checkpoint path")
    refine.add_argument(
        "--data", required=True, metavar="MANIFEST", help="JSON-lines manifest (id, audio, text, words)"
    )
    refine.add_argument("--holdout", type=float, default=0.3, help="share held out to score the fit (0.3; 0: none)")
    refine.add_argument("--language", default=None, help="language of the text (multilingual models; default en)")
    refine.add_argument("--limit", type=int, default=None, help="use only the first N utterances")
    refine.add_argument("--seed", type=int, default=0, help="seed of the random held-out split")
    refine.add_argument("--write", action="store_true", help="store it in the checkpoint (needs a checkpoint path)")
    refine.add_argument("--out", metavar="FILE", help="also write the fitted parameters here (JSON)")
    refine.set_defaults(func=cmd_refine)


def split(utterances: list, share: float, seed: int) -> tuple[list, list]:
    """(fit, held out): whole speakers held out when the manifest names them, else single utterances."""
    if share <= 0:
        return utterances, []
    speakers = sorted({u.speaker for u in utterances if u.speaker})
    rng = random.Random(seed)
    if len(speakers) >= 2:
        rng.shuffle(speakers)
        held = set(speakers[: max(1, round(share * len(speakers)))])
        return [u for u in utterances if u.speaker not in held], [u for u in utterances if u.speaker in held]
    order = list(range(len(utterances)))
    rng.shuffle(order)
    held_idx = set(order[: max(1, round(share * len(utterances)))])
    fit = [u for k, u in enumerate(utterances) if k not in held_idx]
    return fit, [u for k, u in enumerate(utterances) if k in held_idx]


def _score(model, utterances: list, language: str | None) -> dict:  # noqa: ANN001
    """Default-mode metrics on ``utterances`` without and with the model's refinement."""
    from ..alignment.words import AlignmentConfig
    from ..results.evaluation import score
    from ..tasks.align import align

    out = {}
    for label, refine in (("unrefined", False), ("refined", True)):
        pairs = {}
        for u in utterances:
            words = align(model, u.audio, u.text, language=language, config=AlignmentConfig(refine=refine)).words
            pairs[u.id] = (u.words, [(w.word, w.start, w.end) for w in words])
        out[label] = score(pairs)
    return out


def cmd_refine(args: argparse.Namespace) -> int:
    from ..checkpoints import load_model
    from ..errors import RefineError
    from ..results.manifest import load_manifest
    from ..tasks.refiner_fit import fit_refiner

    if args.write and not Path(args.model).exists():
        raise RefineError(
            f"--write stores the refinement in a checkpoint, and {args.model!r} is a model name; save the model "
            "first (whisper_align.save_model(model, 'my-model.pt')) and pass that path, or use --out FILE"
        )
    utterances = [u for u in load_manifest(args.data) if u.words][: args.limit]
    if len(utterances) < 2:
        raise RefineError(f"{args.data} has fewer than two utterances with word times; give a labelled manifest")
    model = load_model(args.model)
    model.boundary_refiner = None  # fit against the unrefined default mode
    fit_part, held = split(utterances, args.holdout, args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alignment warnings about single clips would drown the report
        if held:
            model.boundary_refiner = fit_refiner(model, fit_part, language=args.language, progress=True)
            _report(_score(model, held, args.language), len(fit_part), len(held))
            model.boundary_refiner = None
        params = fit_refiner(model, utterances, language=args.language, progress=True)
    model.boundary_refiner = params
    if args.out:
        params.save(args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    if args.write:
        print(f"stored the refinement in {_store(model, Path(args.model))}", file=sys.stderr)
    return 0


def _report(metrics: dict, n_fit: int, n_held: int) -> None:
    print(f"fitted on {n_fit} utterances, scored on {n_held} held out:")
    print(f"{'':>10} {'mean ms':>8} {'median':>7} {'<=50ms':>7} {'<=100ms':>8}")
    for label, m in metrics.items():
        mean = 0.5 * (m.start_mae_ms + m.end_mae_ms)
        print(f"{label:>10} {mean:8.1f} {m.median_abs_ms:7.1f} {m.within[50]:7.1%} {m.within[100]:8.1%}")


def _store(model, path: Path) -> Path:  # noqa: ANN001
    """Store ``model.boundary_refiner`` where the checkpoint at ``path`` keeps its heads; returns the file."""
    from ..checkpoints import save_model
    from .checkpoint_metadata import metadata_file, rewrite_json

    if model.info.format == "openai":
        save_model(model, path, format="openai")
        return path
    target = metadata_file(model.info.format, path)
    if target is None:
        from ..errors import RefineError

        raise RefineError(f"cannot store a refinement in a {model.info.format!r} checkpoint")
    rewrite_json(target, lambda config: config.update(boundary_refiner=model.boundary_refiner.to_dict()))
    return target
