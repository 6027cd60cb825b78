"""Finding alignment heads for any Whisper model, from labelled (or only transcribed) speech.

Three stages:

1. **Capture** (:func:`capture_attention`): for each utterance, one encoder pass and one decoder pass over its
   transcript that returns the pre-softmax cross-attention scores of *every* head of every layer, cropped to
   the real audio and kept in float16. This is the only model work; clips longer than 30 s (or whose text
   does not fit) are skipped and listed.
2. **Scoring** (:mod:`whisper_align.heads.scoring`): any head set's alignment matrix is the mean of its heads'
   matrices, so word times for any set come from the captured scores alone.
3. **Selection**: supervised (:func:`find_heads`) scores each head alone, then grows a set greedily on the
   training utterances and picks its size on a held-out part (held out by speaker when the manifest names
   speakers, so the size is not fitted to voices it was trained on); unsupervised
   (:func:`find_heads_unsupervised`) ranks heads by how well they agree with the consensus of the best-behaved
   heads, needing no reference times. Both are compared with the official heads (for an official model) and
   the default last-half heads on the held-out part (:func:`compare_sets`).
"""

from __future__ import annotations

import json
import math
import os
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..alignment.words import AlignmentConfig
from ..checkpoints.tokenizers import get_tokenizer
from ..errors import AudioError, ManifestError, TranscriptError
from ..files import replacing
from ..frontend.audio import HOP_LENGTH, N_SAMPLES, SAMPLE_RATE, load_audio
from ..frontend.tokenizer import Tokenizer
from ..model.whisper import Whisper, default_alignment_heads
from ..results.evaluation import Metrics, TimedWord, score
from ..results.manifest import Utterance
from ..tasks.align import check_fits, clip_pass, prepare_text
from . import ALIGNMENT_HEADS, encode, mask_to_pairs
from .scoring import (
    GreedyStep,
    Item,
    SetScore,
    UnsupervisedRanking,
    anchor_shift,
    choose_size,
    greedy_forward,
    head_matrices,
    median_offset,
    single_head_scores,
    unsupervised_ranking,
    word_times,
)

# ---- capture ----------------------------------------------------------------------------------------------------


@dataclass
class Capture:
    """One utterance's cross-attention scores of every decoder head.

    ``scores`` is float16 (all heads, decoder input rows, audio positions): rows are the sot sequence, the
    no-timestamps token, the text tokens and eot; positions are the clip's real audio (20 ms each). Heads are in
    flat order ``layer * n_text_head + head``. ``words``/``word_tokens`` split ``text tokens + [eot]``.
    """

    id: str
    scores: Tensor
    n_sot: int
    words: list[str]
    word_tokens: list[list[int]]
    duration: float
    reference: list[TimedWord] | None = None
    speaker: str | None = None


@dataclass
class CaptureSet:
    """Captures of one model over a manifest, and the utterances that could not be captured (id, reason)."""

    n_text_layer: int
    n_text_head: int
    captures: list[Capture]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    model_name: str | None = None
    _items: dict[tuple[int, float], list[Item]] = field(default_factory=dict, repr=False)

    @property
    def n_heads(self) -> int:
        return self.n_text_layer * self.n_text_head

    def pair(self, flat: int) -> tuple[int, int]:
        return divmod(int(flat), self.n_text_head)

    def mask(self, flat_heads: Sequence[int]) -> np.ndarray:
        """A bool (layers, heads) mask of flat head indices."""
        mask = np.zeros(self.n_heads, dtype=bool)
        mask[list(flat_heads)] = True
        return mask.reshape(self.n_text_layer, self.n_text_head)

    def flat(self, mask: np.ndarray) -> list[int]:
        return [int(i) for i in np.flatnonzero(np.asarray(mask, dtype=bool).reshape(-1))]

    def subset(self, ids: Sequence[str]) -> CaptureSet:
        """The captures of the utterances ``ids`` only (e.g. one half of a split)."""
        wanted = set(ids)
        kept = [c for c in self.captures if c.id in wanted]
        return CaptureSet(self.n_text_layer, self.n_text_head, kept, list(self.skipped), self.model_name)

    def items(self, config: AlignmentConfig) -> list[Item]:
        """Every capture as a scoring :class:`Item` (per-head matrices for ``config``'s filter and scale)."""
        key = (config.medfilt_width, config.qk_scale)
        if key not in self._items:
            self._items[key] = [
                Item(
                    id=c.id,
                    words=c.words,
                    word_tokens=c.word_tokens,
                    matrices=head_matrices(c.scores, c.scores.shape[-1], *key)[:, c.n_sot : -1].numpy(),
                    duration=c.duration,
                    reference=c.reference,
                    speaker=c.speaker,
                )
                for c in self.captures
            ]
        return self._items[key]


def capture_attention(
    model: Whisper,
    utterances: Sequence[Utterance],
    tokenizer: Tokenizer | None = None,
    progress: bool = False,
    text_tokens: Callable[[Tokenizer, str], list[int]] = prepare_text,
) -> CaptureSet:
    """Every head's cross-attention scores for each utterance (one encoder and one decoder pass each).

    Utterances longer than 30 s, with unreadable audio or with text that cannot fit are skipped (see
    ``skipped``) with a warning; if none is left, a :class:`ManifestError` says why. ``text_tokens`` turns a
    transcript into the decoder's input (default: the BPE tokens Whisper itself would emit;
    benchmarks/char_forcing.py feeds characters).
    """
    from tqdm import tqdm

    tokenizer = tokenizer or get_tokenizer(model)
    dims = model.dims
    all_heads = [(layer, head) for layer in range(dims.n_text_layer) for head in range(dims.n_text_head)]
    result = CaptureSet(dims.n_text_layer, dims.n_text_head, [], model_name=model.info.name)
    for utterance in tqdm(utterances, desc="capturing attention", unit="utt", disable=not progress):
        try:
            samples = load_audio(utterance.audio)
            if len(samples) > N_SAMPLES:
                raise AudioError("longer than 30 s (heads are found on clips of one window)")
            tokens = text_tokens(tokenizer, utterance.text)
            n_positions = max(1, len(samples) // HOP_LENGTH // 2)
            check_fits(len(tokens), n_positions, model, tokenizer)
        except (AudioError, TranscriptError) as error:
            result.skipped.append((utterance.id, str(error)))
            continue
        qk = clip_pass(model, tokenizer, samples, tokens, probabilities=False, heads=all_heads).qk
        words, word_tokens = tokenizer.split_to_word_tokens(tokens + [tokenizer.eot])
        result.captures.append(
            Capture(
                id=utterance.id,
                scores=qk.to("cpu", torch.float16),
                n_sot=len(tokenizer.sot_sequence),
                words=words,
                word_tokens=word_tokens,
                duration=len(samples) / SAMPLE_RATE,
                reference=utterance.words,
                speaker=utterance.speaker,
            )
        )
    if result.skipped:
        warnings.warn(
            f"{len(result.skipped)} utterances skipped, e.g. {result.skipped[0][0]}: {result.skipped[0][1]}",
            stacklevel=2,
        )
    if not result.captures:
        raise ManifestError("no utterance could be used for head discovery (all were skipped; see the warnings)")
    return result


# ---- splitting ----------------------------------------------------------------------------------------------------


def split_ids(
    items: Sequence[Item | Utterance], holdout: float = 0.3, by: str = "auto", seed: int = 0
) -> tuple[list[str], list[str]]:
    """(training ids, held-out ids), about ``holdout`` of the utterances held out.

    ``by="speaker"`` holds out whole speakers (every utterance needs one); ``"utterance"`` single utterances;
    ``"auto"`` by speaker when every utterance names one and there are at least two speakers. ``holdout=0``
    holds out nothing. The split is random but fixed by ``seed``.
    """
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"--holdout must be in [0, 1), got {holdout}")
    if by not in ("auto", "speaker", "utterance"):
        raise ValueError(f"split by 'speaker', 'utterance' or 'auto', not {by!r}")
    ids = [item.id for item in items]
    speakers = [item.speaker for item in items]
    if by == "speaker" and any(s is None for s in speakers):
        raise ManifestError("--split-by speaker needs a 'speaker' on every manifest line; some lack one")
    distinct = sorted({s for s in speakers if s is not None})
    if by == "auto":
        by = "speaker" if None not in speakers and len(distinct) >= 2 else "utterance"
    if holdout == 0.0 or len(ids) < 2:
        return ids, []
    rng = random.Random(seed)
    if by == "utterance":
        order = ids[:]
        rng.shuffle(order)
        n_held = min(len(ids) - 1, max(1, round(holdout * len(ids))))
        held = set(order[:n_held])
    else:
        if len(distinct) < 2:
            raise ManifestError("holding out by speaker needs at least two speakers; use --split-by utterance")
        rng.shuffle(distinct)
        held_speakers: set[str] = set()
        for speaker in distinct[:-1]:  # always leave one speaker for training
            if sum(s in held_speakers for s in speakers) >= holdout * len(ids):
                break
            held_speakers.add(speaker)
        held = {i for i, s in zip(ids, speakers) if s in held_speakers}
    return [i for i in ids if i not in held], [i for i in ids if i in held]


def _subset(items: Sequence[Item], ids: Sequence[str]) -> list[Item]:
    wanted = set(ids)
    return [item for item in items if item.id in wanted]


# ---- comparisons --------------------------------------------------------------------------------------------------


def compare_sets(
    items: Sequence[Item], sets: Mapping[str, Sequence[int]], config: AlignmentConfig, tolerance: float = 0.05
) -> dict[str, Metrics]:
    """Full :func:`~whisper_align.results.evaluation.score` metrics of each named head set (flat indices) on
    ``items``."""
    labelled = [item for item in items if item.reference is not None]
    return {
        name: score([(i.id, i.reference or [], word_times(i, heads, config)) for i in labelled], tolerance=tolerance)
        for name, heads in sets.items()
    }


def reference_sets(captures: CaptureSet, current: np.ndarray | None = None) -> dict[str, list[int]]:
    """The sets to compare found heads with: the official heads (when the model is an official one and they fit)
    and every head of the decoder's last half; plus ``current`` (e.g. the checkpoint's) if different."""
    sets: dict[str, list[int]] = {}
    official = ALIGNMENT_HEADS.get(captures.model_name or "")
    if official is not None and official.shape == (captures.n_text_layer, captures.n_text_head):
        sets[f"official {official.name}"] = captures.flat(official.mask())
    default = default_alignment_heads(captures.n_text_layer, captures.n_text_head).numpy()
    sets["default (last half)"] = captures.flat(default)
    if current is not None:
        flat = captures.flat(current)
        if flat not in sets.values():
            sets["model's current heads"] = flat
    return sets


# ---- selection ----------------------------------------------------------------------------------------------------


@dataclass
class FoundHeads:
    """What a head search found: the set (mask, pairs, openai dump) and the evidence behind it."""

    method: str  # "supervised" or "unsupervised"
    mask: np.ndarray
    head_scores: np.ndarray  # (layers, heads): single-head objective (supervised) or agreement (unsupervised)
    train_ids: list[str]
    heldout_ids: list[str]
    steps: list[GreedyStep] = field(default_factory=list)
    ranking: UnsupervisedRanking | None = None
    # default mode only: seconds to add to this set's word times, what `--write` stores as
    # ``alignment_time_shift`` (see alignment/calibration.py). Supervised: minus its median signed error on the
    # training part; unsupervised: the shift that puts its median boundary where the default heads put it
    # (head_scoring.anchor_shift)
    time_shift: float | None = None

    @property
    def pairs(self) -> list[list[int]]:
        return mask_to_pairs(self.mask)

    @property
    def dump(self) -> str:
        return encode(self.mask).decode("ascii")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "method": self.method,
            "pairs": self.pairs,
            "dump": self.dump,
            "head_scores": _finite(self.head_scores.tolist()),
            "n_train": len(self.train_ids),
            "n_heldout": len(self.heldout_ids),
            "time_shift": self.time_shift,
        }
        if self.steps:
            data["greedy"] = [
                {
                    "heads": list(s.heads),
                    "added": s.added,
                    "train": _finite(s.train.to_dict()),
                    "heldout": _finite(s.heldout.to_dict()) if s.heldout else None,
                }
                for s in self.steps
            ]
        if self.ranking is not None:
            data["strength"] = _finite(self.ranking.strength.tolist())
            data["order"] = self.ranking.order
        return data


def _labelled(captures: CaptureSet, config: AlignmentConfig) -> list[Item]:
    items = [i for i in captures.items(config) if i.reference is not None]
    if not items:
        raise ManifestError(
            "the manifest has no reference word times ('words'), which supervised head search needs; add them, or "
            "use --unsupervised (audio and text only)"
        )
    return items


def find_heads(
    captures: CaptureSet,
    config: AlignmentConfig | None = None,
    holdout: float = 0.3,
    split_by: str = "auto",
    max_heads: int = 12,
    n_candidates: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> FoundHeads:
    """Supervised search: single-head scores on the training part, then greedy forward selection over the
    ``n_candidates`` best single heads (default: max(16, 2 * max_heads)), the size chosen on the held-out part.
    """
    from tqdm import tqdm

    config = config or AlignmentConfig()
    if max_heads < 1:
        raise ValueError(f"--max-heads must be at least 1, got {max_heads}")
    items = _labelled(captures, config)
    train_ids, held_ids = split_ids(items, holdout, split_by, seed)
    train, held = _subset(items, train_ids), _subset(items, held_ids)
    n = captures.n_heads
    with tqdm(total=n, desc="scoring single heads", disable=not progress) as bar:
        singles = single_head_scores(train, n, config, bar.update)
    objective = np.array([s.objective for s in singles])
    n_candidates = min(n, n_candidates or max(16, 2 * max_heads))
    candidates = [int(h) for h in np.argsort(-objective, kind="stable")[:n_candidates]]
    steps_total = sum(n_candidates - k for k in range(min(max_heads, n_candidates)))
    with tqdm(total=steps_total, desc="greedy selection", disable=not progress) as bar:
        steps = greedy_forward(train, held, candidates, max_heads, config, bar.update)
    chosen = choose_size(steps)
    shift = None if config.conformance else round(-median_offset(train, chosen.heads, config), 3)
    return FoundHeads(
        method="supervised",
        mask=captures.mask(chosen.heads),
        head_scores=objective.reshape(captures.n_text_layer, captures.n_text_head),
        train_ids=train_ids,
        heldout_ids=held_ids,
        steps=steps,
        time_shift=shift,
    )


def find_heads_unsupervised(
    captures: CaptureSet,
    config: AlignmentConfig | None = None,
    ids: Sequence[str] | None = None,
    max_heads: int = 12,
    heldout_ids: Sequence[str] = (),
    progress: bool = False,
) -> FoundHeads:
    """Unsupervised search (reference times ignored) over the utterances ``ids`` (default: all)."""
    from tqdm import tqdm

    config = config or AlignmentConfig()
    items = captures.items(config)
    if ids is not None:
        items = _subset(items, ids)
    with tqdm(total=captures.n_heads, desc="ranking heads (unsupervised)", disable=not progress) as bar:
        ranking = unsupervised_ranking(items, captures.n_heads, config, max_heads=max_heads, progress=bar.update)
    shift = None
    if not config.conformance:
        default = captures.flat(default_alignment_heads(captures.n_text_layer, captures.n_text_head).numpy())
        shift = round(anchor_shift(items, ranking.chosen, default, config), 3)
    return FoundHeads(
        method="unsupervised",
        mask=captures.mask(ranking.chosen),
        head_scores=ranking.agreement.reshape(captures.n_text_layer, captures.n_text_head),
        train_ids=[i.id for i in items],
        heldout_ids=list(heldout_ids),
        ranking=ranking,
        time_shift=shift,
    )


def overlap(a: np.ndarray, b: np.ndarray) -> dict[str, float | int]:
    """How alike two head masks are: shared heads, and their Jaccard index."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    shared, union = int((a & b).sum()), int((a | b).sum())
    return {"shared": shared, "jaccard": shared / union if union else 1.0}


# ---- output helpers -----------------------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None, so that the JSON is standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented standard JSON (NaN -> null), atomically (:func:`whisper_align.files.replacing`)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite(payload), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    with replacing(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return path


__all__ = [
    "Capture",
    "CaptureSet",
    "FoundHeads",
    "SetScore",
    "capture_attention",
    "compare_sets",
    "find_heads",
    "find_heads_unsupervised",
    "overlap",
    "reference_sets",
    "split_ids",
    "write_json_atomic",
]
