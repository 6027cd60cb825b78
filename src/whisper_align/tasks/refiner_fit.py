"""Fit a model's boundary refinement (:mod:`whisper_align.alignment.refine`) on labelled speech.

Each labelled utterance (a manifest line with reference word times, up to 30 s) is aligned the way the default
mode aligns one clip, and what the refinement reads is kept: the clip's log-mel frames, its encoder states, the
alignment matrix's word activations and the coarse (unrefined) word times. Their reference times come from
matching the output words to the labelled ones, as ``whisper-align eval`` matches them. The fitted parameters
belong to the model's current heads and time shift: they learn to correct exactly those heads' boundaries.

    params = fit_refiner(model, load_manifest("train.jsonl"))
    model.boundary_refiner = params          # or `whisper-align heads refine MODEL --data train.jsonl --write`
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from ..alignment.boundary_features import word_activations
from ..alignment.refine import LabelledClip, RefineParams, fit
from ..alignment.word_refinement import refinable
from ..alignment.words import AlignmentConfig, WordTiming, align_words, merge_punctuations, resolve_config
from ..checkpoints.tokenizers import get_tokenizer
from ..errors import RefineError
from ..frontend.audio import N_SAMPLES, TOKENS_PER_SECOND, load_audio
from ..frontend.tokenizer import Tokenizer
from ..model.whisper import Whisper
from ..results.evaluation import match_words
from ..results.manifest import Utterance
from .align import prepare_text
from .pieces import clip_pass, piece_matrix

# the search radius (10 ms frames) of the refinement: the best of those tried in benchmarks/precision.py
DEFAULT_RADIUS = 25


def labelled_clip(model: Whisper, tokenizer: Tokenizer, utterance: Utterance, config: AlignmentConfig) -> LabelledClip:
    """One labelled utterance, aligned without refinement, as :func:`~whisper_align.alignment.refine.fit` takes it.

    ``config`` must be resolved (its ``time_shift`` set). Only words with letters or digits are kept; a word that
    no reference word matches gets NaN targets (it still shapes the neighbours' features)."""
    if not utterance.words:
        raise RefineError(f"utterance {utterance.id!r} has no reference word times to fit on")
    samples = load_audio(utterance.audio)
    if len(samples) > N_SAMPLES:
        raise RefineError(f"utterance {utterance.id!r} is longer than 30 s; fit on clips of at most 30 s")
    tokens = prepare_text(tokenizer, utterance.text)
    run = clip_pass(model, tokenizer, samples, tokens, probabilities=False)
    n_positions, mel = run.n_positions, run.mel
    matrix = piece_matrix(tokenizer, run.qk.float().cpu(), config).numpy()
    words, word_tokens = tokenizer.split_to_word_tokens(tokens + [tokenizer.eot])
    duration = n_positions / TOKENS_PER_SECOND
    timings = align_words(matrix, words, word_tokens, [0.0] * len(tokens), config, duration=duration)
    chosen = [k for k, w in enumerate(timings) if refinable(w)]
    bounds = np.concatenate([[0], np.cumsum([len(w.tokens) for w in timings])])
    reference = [(str(w[0]), float(w[1]), float(w[2])) for w in utterance.words]
    true_starts, true_ends = _targets(timings, chosen, reference)
    region_mel = mel[:, : 2 * n_positions].float().cpu().numpy().astype(np.float64)
    activation = word_activations(
        matrix,
        [(int(bounds[k]), int(bounds[k + 1])) for k in chosen],
        float(config.time_shift or 0.0),
        region_mel.shape[1],
    )
    return LabelledClip(
        region_mel,
        np.array([timings[k].start for k in chosen]),
        np.array([timings[k].end for k in chosen]),
        true_starts,
        true_ends,
        activation,
        run.features[0, :n_positions].float().cpu().numpy().astype(np.float64),
    )


def _targets(
    timings: Sequence[WordTiming], chosen: Sequence[int], reference: list[tuple[str, float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Reference start and end of each chosen word (NaN when unmatched), matching the words as they come out
    (punctuation merged); a word matched piece by piece takes its first piece's start and last piece's end."""
    merged = [dataclasses.replace(t, probability=float(k)) for k, t in enumerate(timings)]  # k survives merging
    merge_punctuations(merged)
    kept = [w for w in merged if w.word]
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    for i, j in match_words(reference, [(w.word, w.start, w.end) for w in kept]):
        k = int(kept[j].probability)
        starts.setdefault(k, reference[i][1])
        ends[k] = reference[i][2]
    return (
        np.array([starts.get(k, np.nan) for k in chosen], dtype=np.float64),
        np.array([ends.get(k, np.nan) for k in chosen], dtype=np.float64),
    )


def fit_refiner(
    model: Whisper,
    utterances: Iterable[Utterance],
    *,
    config: AlignmentConfig | None = None,
    radius: int = DEFAULT_RADIUS,
    language: str | None = None,
    progress: bool = False,
) -> RefineParams:
    """Fit a boundary refinement for ``model``'s current heads and time shift on labelled ``utterances``
    (those without reference times or longer than 30 s are skipped with a warning).

    Returns the parameters; set them as ``model.boundary_refiner`` to use them, or store them in the
    checkpoint (``whisper-align heads refine --write``)."""
    from tqdm import tqdm

    config = resolve_config(dataclasses.replace(config or AlignmentConfig(), refine=False), model.alignment_time_shift)
    if config.conformance:
        raise RefineError("the boundary refinement belongs to the default mode; fit it with mode='default'")
    tokenizer = get_tokenizer(model, language=language)
    clips, skipped = [], []
    for utterance in tqdm(list(utterances), disable=not progress, desc="aligning", unit="clip"):
        try:
            clips.append(labelled_clip(model, tokenizer, utterance, config))
        except RefineError as error:
            skipped.append(str(error))
    if skipped:
        warnings.warn(f"{len(skipped)} utterance(s) skipped, e.g.: {skipped[0]}", stacklevel=2)
    if not clips:
        raise RefineError("no labelled utterance could be used; give a manifest with reference word times")
    return fit(clips, radius=radius)


__all__ = ["fit_refiner", "labelled_clip", "DEFAULT_RADIUS"]
