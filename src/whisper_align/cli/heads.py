"""``whisper-align heads``: show, decode, encode and convert alignment heads.

    whisper-align heads show tiny.en                       grid of the official heads (--png FILE for a picture)
    whisper-align heads show path/to/generation_config.json
    whisper-align heads decode 'ABzY8...' --shape 4x6      openai dump -> [[layer, head], ...]
    whisper-align heads encode '[[1,0],[2,5]]' --shape 4x6 pairs -> openai dump
    whisper-align heads convert tiny.en --to whisper-cpp   any form -> dump, pairs, hf, ct2 or whisper-cpp
    whisper-align heads list                               the official names, shapes and head counts
    whisper-align heads find MODEL --data MANIFEST         find heads for any model from labelled speech
    whisper-align heads refine MODEL --data MANIFEST       fit the boundary refinement for a model's heads

Every INPUT is anything :func:`whisper_align.heads.resolve_heads` reads. The decoder shape comes from
``--shape LxH`` or ``--model NAME``, else from the input itself where it fixes one (an official name, a dump whose
size only one official shape has, a folder with a Hugging Face config.json, pairs equal to an official set, or a
model checkpoint).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import heads as H
from ..heads import AlignmentHeadsError

FORMATS = ["dump", "pairs", "hf", "ct2", "whisper-cpp"]
# the file --write targets when it is given a folder
_CONFIG_FILE = {"hf": "generation_config.json", "ct2": "config.json"}


@dataclass
class Heads:
    mask: np.ndarray
    label: str  # where they came from, for messages
    official: H.OfficialHeads | None = None  # set when the input was an official name


# ---- argument parsing -----------------------------------------------------------------------------------------


def parse_shape(text: str) -> tuple[int, int]:
    """'4x6' -> (4, 6); for argparse."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×,]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise argparse.ArgumentTypeError(f"expected LAYERSxHEADS such as 4x6, got {text!r}")
    return int(match[1]), int(match[2])


def _add_shape_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--shape", type=parse_shape, metavar="LxH", help="decoder layers x heads, e.g. 4x6")
    group.add_argument("--model", metavar="NAME", help="take the decoder shape of this official model")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "heads",
        help="show, decode, encode and convert alignment heads",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="heads_command", required=True)

    show = sub.add_parser("show", help="print the heads as a layers x heads grid")
    show.add_argument("source", metavar="MODEL", help="official name, heads spec, JSON config, or model path")
    _add_shape_options(show)
    show.add_argument("--png", metavar="FILE", help="also draw the grid into this PNG")
    show.set_defaults(func=cmd_show)

    dec = sub.add_parser("decode", help="openai dump -> [[layer, head], ...]")
    dec.add_argument("dump", metavar="DUMP")
    _add_shape_options(dec)
    dec.set_defaults(func=cmd_decode)

    enc = sub.add_parser("encode", help="heads (pairs or any other form) -> openai dump")
    enc.add_argument("source", metavar="PAIRS", help="[[layer, head], ...], '1:0,2:5', a JSON config, ...")
    _add_shape_options(enc)
    enc.add_argument("--mtime", type=int, help="gzip header time (default: an official dump's if it matches, else 0)")
    enc.set_defaults(func=cmd_encode)

    conv = sub.add_parser("convert", help="any form -> dump, pairs, hf, ct2 or whisper-cpp")
    conv.add_argument("source", metavar="INPUT")
    conv.add_argument("--to", required=True, choices=FORMATS)
    _add_shape_options(conv)
    conv.add_argument("--write", metavar="CONFIG.json", help="with --to hf/ct2: set alignment_heads in this file")
    conv.add_argument("--mtime", type=int, help="with --to dump: gzip header time (see `heads encode`)")
    conv.set_defaults(func=cmd_convert)

    lst = sub.add_parser("list", help="the official model names with their shapes and heads")
    lst.set_defaults(func=cmd_list)

    find = sub.add_parser(
        "find",
        help="find alignment heads for a model from speech with word times (or, --unsupervised, just text)",
        description="Capture every head's cross-attention once per utterance, score heads alone and in sets, and "
        "choose a set: supervised (greedy forward selection on the training part, size chosen on a held-out part; "
        "objective (within 50 ms + within 100 ms)/2 - median error in s) or --unsupervised (agreement with the "
        "consensus of the best-behaved heads; reference times ignored). Compares the result with the official "
        "heads and the default last-half heads on the held-out part.",
    )
    find.add_argument("model", metavar="MODEL", help="official name or checkpoint path")
    find.add_argument("--data", required=True, metavar="MANIFEST", help="JSON-lines manifest (id, audio, text, words)")
    find.add_argument("--holdout", type=_fraction, default=0.3, help="share held out to choose the set size (0.3)")
    find.add_argument(
        "--split-by",
        choices=["auto", "speaker", "utterance"],
        default="auto",
        help="hold out whole speakers or single utterances (auto: speakers when the manifest has them)",
    )
    find.add_argument("--max-heads", type=_positive_int, default=12, help="largest set to consider (12)")
    find.add_argument("--unsupervised", action="store_true", help="choose heads without the reference times")
    find.add_argument("--mode", choices=["default", "conformance"], default="default", help="alignment word rules")
    find.add_argument("--language", default=None, help="language of the text (multilingual models; default en)")
    find.add_argument("--limit", type=_positive_int, default=None, help="use only the first N utterances")
    find.add_argument("--seed", type=int, default=0, help="seed of the random held-out split")
    find.add_argument(
        "--write",
        action="store_true",
        help="store the heads in the checkpoint (CT2 config.json, HF generation_config.json, or .pt)",
    )
    find.add_argument(
        "--png", metavar="FILE", help="head-score heat map; FILE_alignment.png: one utterance's alignment"
    )
    find.add_argument("--json", metavar="OUT", help="write the results here (JSON)")
    find.set_defaults(func=cmd_find)

    from . import heads_refine

    heads_refine.register(sub)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1), such as 0.3, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# ---- reading heads from any input --------------------------------------------------------------------------------


def _explicit_shape(args: argparse.Namespace) -> tuple[int, int] | None:
    if getattr(args, "shape", None):
        return args.shape
    if getattr(args, "model", None):
        return H.official_heads(args.model).shape
    return None


def _shape_from_hf_config(folder: Path) -> tuple[int, int] | None:
    """(decoder_layers, decoder_attention_heads) from a Hugging Face config.json in ``folder``, if present."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return int(config["decoder_layers"]), int(config["decoder_attention_heads"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _shape_from_official_pairs(pairs: list[list[int]]) -> tuple[int, int] | None:
    """The shape of the official model whose heads are exactly ``pairs``, if there is one."""
    wanted = sorted(map(list, {tuple(p) for p in pairs}))
    for official in H.ALIGNMENT_HEADS.values():
        if official.pairs() == wanted:
            return official.shape
    return None


def _load_checkpoint_heads(path: str) -> Heads:
    try:
        from ..checkpoints import load_model  # type: ignore[attr-defined]
    except ImportError:
        raise AlignmentHeadsError(
            f"{path} is not a JSON config with {H.JSON_KEY!r}, and reading heads from model files needs the "
            "checkpoint loaders, which this install lacks; give a JSON config, or a heads spec with --shape"
        ) from None
    model = load_model(path)
    pairs = [list(p) for p in model.alignment_head_pairs()]
    mask = H.pairs_to_mask(pairs, model.dims.n_text_layer, model.dims.n_text_head)
    return Heads(mask, f"{path} ({getattr(model.info, 'heads_source', 'checkpoint')} heads)")


def load_heads(source: str, shape: tuple[int, int] | None) -> Heads:
    """The heads ``source`` names, in the decoder ``shape`` if given, else in the shape the source fixes."""
    if shape is not None:
        official = None
        if H.is_official_name(source):
            official = H.official_heads(source)
        return Heads(H.resolve_heads(source, *shape), source, official)
    stripped = source.strip()
    if H.is_official_name(stripped):
        official = H.official_heads(stripped)
        return Heads(official.mask(), official.name, official)
    path = Path(source)
    if path.exists():
        is_json = path.is_dir() or path.suffix.lower() == ".json"
        pairs = H.read_json_heads(path) if is_json else None
        if pairs is None:
            return _load_checkpoint_heads(source)
        folder = path if path.is_dir() else path.parent
        found = _shape_from_hf_config(folder) or _shape_from_official_pairs(pairs)
        if found is None:
            raise AlignmentHeadsError(
                f"{source} gives alignment heads but not the decoder's shape; add --shape LAYERSxHEADS or --model NAME"
            )
        return Heads(H.pairs_to_mask(pairs, *found), source)
    pairs = H.parse_pairs_text(stripped)
    if pairs is not None:
        raise AlignmentHeadsError(
            "pairs do not say how many decoder layers and heads the model has; add --shape LAYERSxHEADS "
            "(e.g. --shape 4x6) or --model NAME"
        )
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]{0,30}", stripped) and not stripped.startswith("ABzY8"):
        H.official_heads(stripped)  # raises the unknown-name error, with a close match
    raw = H.gunzip_dump(stripped)
    found = H.official_shape_for_size(len(raw))
    if found is None:
        raise AlignmentHeadsError(
            f"the dump holds {len(raw)} heads, a size no official model has; add --shape LAYERSxHEADS"
        )
    print(f"(shape {found[0]}x{found[1]} taken from the dump's size; --shape overrides)", file=sys.stderr)
    return Heads(H.decode(stripped, *found), "dump")


def _mtime_for(heads: Heads, requested: int | None) -> int:
    """The gzip mtime for encoding: as asked, else the official dump's when the heads are official, else 0."""
    if requested is not None:
        return requested
    if heads.official is not None and heads.official.shape == heads.mask.shape:
        return heads.official.mtime
    matches = H.official_matches(heads.mask)
    return H.ALIGNMENT_HEADS[matches[0]].mtime if matches else 0


def _describe(heads: Heads) -> str:
    layers, n_heads = heads.mask.shape
    text = f"{heads.label}: {layers} decoder layers x {n_heads} heads, {int(heads.mask.sum())} alignment heads"
    matches = [m for m in H.official_matches(heads.mask) if m != heads.label]
    if matches:
        text += f" (same as official {', '.join(matches)})"
    return text


# ---- commands ------------------------------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    heads = load_heads(args.source, _explicit_shape(args))
    print(_describe(heads))
    print(H.format_grid(heads.mask))
    print("pairs:", json.dumps(H.mask_to_pairs(heads.mask)))
    if args.png:
        from ..results.plots import plot_heads_grid

        plot_heads_grid(heads.mask, args.png, title=heads.label)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    shape = _explicit_shape(args)
    heads = Heads(H.decode(args.dump, *shape), "dump") if shape else load_heads(args.dump, None)
    print(json.dumps(H.mask_to_pairs(heads.mask)))
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    heads = load_heads(args.source, _explicit_shape(args))
    print(H.encode(heads.mask, _mtime_for(heads, args.mtime)).decode("ascii"))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    if args.write and args.to not in _CONFIG_FILE:
        raise AlignmentHeadsError(f"--write needs --to hf or --to ct2 (a JSON config), not --to {args.to}")
    if args.mtime is not None and args.to != "dump":
        raise AlignmentHeadsError("--mtime only applies to --to dump")
    heads = load_heads(args.source, _explicit_shape(args))
    pairs = H.mask_to_pairs(heads.mask)
    if args.to == "dump":
        print(H.encode(heads.mask, _mtime_for(heads, args.mtime)).decode("ascii"))
    elif args.to == "pairs":
        print(json.dumps(pairs))
    elif args.to == "whisper-cpp":
        print(H.to_whisper_cpp(pairs))
        presets = sorted({H.whisper_cpp_preset(name) for name in H.official_matches(heads.mask)})
        if presets:
            print(f"(whisper.cpp also has these heads built in: -dtw {' / '.join(presets)})", file=sys.stderr)
    elif args.write:
        target = Path(args.write)
        if target.is_dir():
            target = target / _CONFIG_FILE[args.to]
        H.write_json_heads(target, pairs)
        print(f"set {H.JSON_KEY} in {target}", file=sys.stderr)
    else:
        print(json.dumps({H.JSON_KEY: pairs}))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for official in H.ALIGNMENT_HEADS.values():
        layers, n_heads = official.shape
        count = int(official.mask().sum())
        print(
            f"{official.name:<15} {layers:>2}x{n_heads:<3} {count:>3} heads  whisper.cpp -dtw "
            f"{H.whisper_cpp_preset(official.name)}"
        )
    return 0


# ---- heads find ------------------------------------------------------------------------------------------------


def cmd_find(args: argparse.Namespace) -> int:
    """``heads find``: capture, search, report, and optionally write and draw (see
    :mod:`whisper_align.heads.discovery`)."""
    import warnings

    from ..alignment.words import AlignmentConfig
    from ..checkpoints import load_model
    from ..checkpoints.tokenizers import get_tokenizer
    from ..errors import ManifestError
    from ..heads import discovery as D
    from ..results.manifest import load_manifest

    utterances = load_manifest(args.data, check_audio=True)[: args.limit]
    labelled = any(u.words for u in utterances)
    if not labelled and not args.unsupervised:
        raise ManifestError(
            f"{args.data} has no reference word times ('words'), which the supervised search needs; add them, or "
            "pass --unsupervised to choose heads from audio and text alone"
        )
    if args.write and not Path(args.model).exists():
        raise AlignmentHeadsError(
            f"--write stores the heads in the checkpoint, so MODEL must be a checkpoint path, not the name "
            f"{args.model!r}; copy or convert the model to a folder or .pt first"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*carries no alignment heads.*")
        model = load_model(args.model)
    current = model.alignment_heads.to("cpu").to_dense().numpy()
    captures = D.capture_attention(model, utterances, get_tokenizer(model, language=args.language), progress=True)
    config = AlignmentConfig(mode=args.mode)

    supervised = unsupervised = None
    if labelled:
        supervised = D.find_heads(
            captures, config, args.holdout, args.split_by, args.max_heads, seed=args.seed, progress=True
        )
        train_ids, held_ids = supervised.train_ids, supervised.heldout_ids
    else:
        train_ids, held_ids = [c.id for c in captures.captures], []
    if args.unsupervised:
        unsupervised = D.find_heads_unsupervised(captures, config, train_ids, args.max_heads, held_ids, progress=True)
    found = unsupervised or supervised
    assert found is not None

    L, Hn = captures.n_text_layer, captures.n_text_head
    _print_found(args.model, captures, found)
    payload: dict = {
        "model": args.model,
        "shape": [L, Hn],
        "mode": args.mode,
        "manifest": str(args.data),
        "skipped": captures.skipped,
        "found": found.to_dict(),
    }
    if supervised is not None and unsupervised is not None:
        payload["supervised"] = supervised.to_dict()
        payload["overlap_with_supervised"] = D.overlap(unsupervised.mask, supervised.mask)
        print(
            f"unsupervised vs supervised choice: {payload['overlap_with_supervised']['shared']} heads shared "
            f"(supervised: {json.dumps(supervised.pairs)})"
        )
    if labelled:
        payload.update(
            _compare_found(captures, config, supervised, unsupervised, current, held_ids, train_ids, args.mode)
        )

    if args.write:
        target = _write_found_heads(model, Path(args.model), found.pairs, found.time_shift)
        print(f"wrote the heads into {target}", file=sys.stderr)
    if args.png:
        _draw_find(captures, found, config, held_ids or train_ids, Path(args.png))
    if args.json:
        D.write_json_atomic(args.json, payload)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _compare_found(captures, config, supervised, unsupervised, current, held_ids, train_ids, mode) -> dict:  # noqa: ANN001
    """Word timing of the found sets against the reference ones, on the held-out part (or the training part)."""
    from ..heads import discovery as D
    from ..results.evaluation import format_table

    items = captures.items(config)
    where = held_ids or train_ids
    sets = {}
    if supervised is not None:
        sets["found (supervised)"] = captures.flat(supervised.mask)
    if unsupervised is not None:
        sets["found (unsupervised)"] = captures.flat(unsupervised.mask)
    sets.update(D.reference_sets(captures, current))
    metrics = D.compare_sets([i for i in items if i.id in set(where)], sets, config)
    part = f"held-out part ({len(held_ids)} utterances)" if held_ids else "training utterances (nothing held out)"
    print(f"\nword timing on the {part}, {mode} mode:")
    print(format_table(metrics))
    return {"comparison": {name: m.to_dict() for name, m in metrics.items()}, "heldout_ids": held_ids}


def _print_found(model_name: str, captures, found) -> None:  # noqa: ANN001
    """What ``heads find`` found: the grid, the pairs, the dump and the time shift."""
    L, Hn = captures.n_text_layer, captures.n_text_head
    print(
        f"{model_name}: {L} decoder layers x {Hn} heads; {len(captures.captures)} utterances captured"
        + (f", {len(captures.skipped)} skipped" if captures.skipped else "")
    )
    print(f"found {int(found.mask.sum())} alignment heads ({found.method}):")
    print(H.format_grid(found.mask))
    print("pairs:", json.dumps(found.pairs))
    print("openai dump:", found.dump)
    if found.time_shift is not None:
        basis = (
            "median signed error on the training part, negated"
            if found.method == "supervised"
            else "their median boundary moved to where the default last-half heads put it"
        )
        print(f"time shift for these heads: {found.time_shift:+.3f} s ({basis}; --write stores it)")


def _write_found_heads(model, path: Path, pairs: list[list[int]], time_shift: float | None) -> Path:  # noqa: ANN001
    """Store ``pairs`` (and the time shift measured for them, if any) where the checkpoint at ``path`` keeps its
    heads: CTranslate2 config.json, Hugging Face generation_config.json, or the .pt re-saved. Returns the file.
    A time shift or boundary refinement stored for the old heads is dropped: it would be wrong for these."""
    from .checkpoint_metadata import metadata_file, rewrite_json

    if model.info.format == "openai":
        from ..checkpoints import save_model

        model.set_alignment_head_pairs(pairs)  # resets the model's time shift and refinement (old heads')
        model.alignment_time_shift = float(time_shift or 0.0)
        save_model(model, path, format="openai")
        return path
    target = metadata_file(model.info.format, path)
    if target is None:
        raise AlignmentHeadsError(f"cannot write heads into a {model.info.format!r} checkpoint")
    H.write_json_heads(target, pairs)

    def update(config: dict) -> None:
        config.pop("alignment_time_shift", None)
        config.pop("boundary_refiner", None)
        if time_shift:
            config["alignment_time_shift"] = float(time_shift)

    rewrite_json(target, update)
    return target


def _draw_find(captures, found, config, ids: list[str], png: Path) -> None:  # noqa: ANN001
    """The head-score heat map into ``png`` and one utterance's alignment into ``<png stem>_alignment.png``."""
    from ..heads.scoring import dtw_path, set_matrix, word_times
    from ..results.plots import plot_alignment, plot_head_scores

    label = "single-head objective" if found.method == "supervised" else "agreement with consensus"
    plot_head_scores(
        found.head_scores, png, chosen=found.mask, label=label, title=f"{label} per head; chosen heads boxed"
    )
    item = next(i for i in captures.items(config) if i.id == ids[0])
    heads = captures.flat(found.mask)
    matrix = set_matrix(item, heads)
    second = png.with_name(f"{png.stem}_alignment{png.suffix or '.png'}")
    plot_alignment(
        matrix,
        dtw_path(matrix, config),
        item.reference,
        word_times(item, heads, config),
        second,
        title=f"{item.id}: found heads ({found.method})",
    )
    print(f"wrote {png} and {second}", file=sys.stderr)
