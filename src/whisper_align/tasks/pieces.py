"""Pieces: runs of text tokens aligned against regions of one encoded 30-second window, all of a window's pieces
going through the decoder together as one batch (the window's cross-attention keys and values computed once and
shared), each piece's attention cropped to its own region before the softmax so pieces never see each other.
Used by single clips, long recordings (``align``) and packed corpora (``corpus``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..alignment.attention import alignment_matrix
from ..alignment.word_refinement import RefineInputs, refine_timings
from ..alignment.words import (
    AlignmentConfig,
    WordTiming,
    align_words,
    merge_punctuations,
    truncate_sentence_marks,
)
from ..errors import TranscriptError
from ..frontend.audio import (
    N_FRAMES,
    N_SAMPLES,
    N_SAMPLES_PER_TOKEN,
    TOKENS_PER_SECOND,
    log_mel_spectrogram,
    pad_or_trim,
)
from ..frontend.tokenizer import Tokenizer
from ..model.whisper import Whisper

WINDOW_POSITIONS = N_FRAMES // 2  # 1500 encoder positions (20 ms each) in a 30 s window


@dataclass
class Piece:
    """Text tokens to align against positions [first, last) of window ``window``."""

    window: int
    tokens: list[int]
    first: int
    last: int


class PieceScores(NamedTuple):
    """What the decoder pass gives one piece. ``qk``: the heads' scores (heads, rows, positions of its region).
    ``probs``: each text token's probability, over the text tokens. ``text_ends``: for each text token, the
    probability that the text ends there instead (``<|endoftext|>`` in its place, over the text tokens and
    ``<|endoftext|>``): high where the decoder reads the audio as over. Both empty without probabilities."""

    qk: Tensor
    probs: list[float]
    text_ends: list[float]


def window_mel(model: Whisper, audio: np.ndarray) -> Tensor:
    """Log-mel of up to 30 s of audio, padded to the 3000 frames the encoder takes."""
    mel = log_mel_spectrogram(pad_or_trim(audio, N_SAMPLES), n_mels=model.dims.n_mels)
    return mel[:, :N_FRAMES]


def _head_order(
    model: Whisper, heads: Sequence[tuple[int, int]] | None = None
) -> tuple[dict[int, list[int]], list[tuple[int, int]]]:
    """{layer: heads} to ask the decoder for, and for each head its (layer, index in that list).

    ``heads`` defaults to the model's alignment heads; order follows sorted (layer, head)."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in sorted(set(map(tuple, heads))) if heads is not None else model.alignment_head_pairs():
        by_layer.setdefault(layer, []).append(head)
    order = [(layer, i) for layer in sorted(by_layer) for i in range(len(by_layer[layer]))]
    return by_layer, order


@torch.inference_mode()
def run_pieces(
    model: Whisper,
    tokenizer: Tokenizer,
    audio_features: Tensor,
    pieces: Sequence[Piece],
    probabilities: bool = True,
    heads: Sequence[tuple[int, int]] | None = None,
    isolate: bool = False,
) -> list[PieceScores]:
    """Decoder pass over ``pieces`` against encoded windows ``audio_features`` (W, S, D).

    Returns, per piece, the scores of ``heads`` (default: the alignment heads; in sorted (layer, head) order)
    as (heads, tokens, positions of its region) for the rows [sot sequence..., no_timestamps, text..., eot],
    and each text token's probability and probability of ending the text instead (:class:`PieceScores`; empty
    if not asked). Head discovery passes every head here.
    With ``isolate`` each piece's decoder reads only its own region of the audio (see :func:`isolation_mask`).
    """
    by_layer, order = _head_order(model, heads)
    prefix = list(tokenizer.sot_sequence_including_notimestamps)
    results: list[PieceScores | None] = [None] * len(pieces)
    for w in sorted({p.window for p in pieces}):
        members = [i for i, p in enumerate(pieces) if p.window == w]
        seqs = [prefix + pieces[i].tokens + [tokenizer.eot] for i in members]
        width = max(len(s) for s in seqs)
        # right-padding is harmless in a causal decoder: earlier positions never see it
        tokens = torch.tensor([s + [tokenizer.eot] * (width - len(s)) for s in seqs], device=model.device)
        if width > model.dims.n_text_ctx:
            raise TranscriptError(
                f"a stretch of {width} tokens does not fit the decoder's context of {model.dims.n_text_ctx}"
            )
        features = audio_features[w : w + 1]
        n_layers = model.dims.n_text_layer if probabilities else max(by_layer) + 1
        cache = model.decoder.shared_audio_cache(features, len(seqs), n_layers)
        mask = isolation_mask([pieces[i] for i in members], features.shape[1]) if isolate else None
        predicting = _text_predictions(len(prefix), [len(pieces[i].tokens) for i in members], width)
        logits, scores = model.decoder(
            tokens,
            features.expand(len(seqs), -1, -1),
            cache=cache,
            qk_heads=by_layer,
            logits=probabilities,
            logit_positions=predicting.to(model.device),
            projection=_text_projection(model, tokenizer),
            audio_mask=None if mask is None else mask.to(features.device),
        )
        qk = torch.stack([scores[layer][:, i] for layer, i in order], dim=1)  # (B, heads, T, S)
        row = 0  # the logits come flat: each piece's text predictions in turn
        for b, i in enumerate(members):
            piece, n_text = pieces[i], len(pieces[i].tokens)
            probs: list[float] = []
            ends: list[float] = []
            if logits is not None:
                rows = logits[row : row + n_text, : tokenizer.eot + 1].float()
                p = rows[:, : tokenizer.eot].softmax(dim=-1)
                probs = p[torch.arange(n_text), torch.tensor(piece.tokens)].tolist()
                ends = rows.softmax(dim=-1)[:, tokenizer.eot].tolist()
                row += n_text
            results[i] = PieceScores(qk[b, :, : len(seqs[b]), piece.first : piece.last], probs, ends)
    return results  # type: ignore[return-value]


def _text_predictions(n_prefix: int, n_texts: list[int], width: int) -> Tensor:
    """(rows, width) bool: the positions whose next-token logits predict a row's text tokens (the last prefix
    token and every text token but the last), the only logits a token's probability needs."""
    mask = torch.zeros(len(n_texts), width, dtype=torch.bool)
    for row, n_text in enumerate(n_texts):
        mask[row, n_prefix - 1 : n_prefix - 1 + n_text] = True
    return mask


def _text_projection(model: Whisper, tokenizer: Tokenizer) -> Callable[[Tensor], Tensor] | None:
    """The vocabulary projection limited to the text tokens (those before ``<|endoftext|>``), which is all a
    text token's probability is normalised over, and ``<|endoftext|>`` itself; ``None`` (the model's own) for a
    replaced output layer."""
    if model.decoder.output is not None:
        return None
    return lambda x: x @ model.decoder.vocabulary_projection(x.dtype)[:, : tokenizer.eot + 1]


ISOLATION_MARGIN = 5  # positions either side of a piece's region its decoder may also read (100 ms)
ISOLATION_TAIL = True  # ... and the window's silence after its last piece


def isolation_mask(pieces: Sequence[Piece], n_positions: int) -> Tensor:
    """(pieces, 1, 1, positions) bool: which audio positions each piece's decoder may read when the pieces of a
    window are isolated: its own region widened by :data:`ISOLATION_MARGIN`, and the padding after the last one.

    Without it the decoder of one packed clip reads its neighbours' audio too; where a neighbour says the same
    sentence (a corpus of read prompts) the alignment heads follow the neighbour and the clip's words collapse
    onto the end of its region."""
    mask = torch.zeros(len(pieces), 1, 1, n_positions, dtype=torch.bool)
    tail = max(p.last for p in pieces) + ISOLATION_MARGIN
    for row, piece in enumerate(pieces):
        mask[row, ..., max(0, piece.first - ISOLATION_MARGIN) : piece.last + ISOLATION_MARGIN] = True
        if ISOLATION_TAIL:
            mask[row, ..., tail:] = True
    return mask


@dataclass
class ClipPass:
    """One clip of up to 30 s through the model: its window's log-mel (n_mels x 3000 frames), the encoded window
    (1 x 1500 positions x D), and for its text over its ``n_positions`` real positions the heads' scores and the
    tokens' probabilities and text ends (as :func:`run_pieces` returns them for one piece)."""

    mel: Tensor
    features: Tensor
    qk: Tensor
    probs: list[float]
    n_positions: int
    text_ends: list[float]


def clip_pass(
    model: Whisper,
    tokenizer: Tokenizer,
    samples: np.ndarray,
    tokens: list[int],
    probabilities: bool = True,
    heads: Sequence[tuple[int, int]] | None = None,
) -> ClipPass:
    """Encode one clip of at most 30 s in its own window and run the decoder over ``tokens`` against its real
    audio: what aligning a clip, fitting a refinement and finding heads each start from."""
    n_positions = max(1, len(samples) // N_SAMPLES_PER_TOKEN)
    with torch.inference_mode():
        mel = window_mel(model, samples)
        features = model.embed_audio(mel[None].to(model.device))
    ((qk, probs, ends),) = run_pieces(
        model, tokenizer, features, [Piece(0, tokens, 0, n_positions)], probabilities, heads
    )
    return ClipPass(mel, features, qk, probs, n_positions, ends)


def refine_inputs(
    model: Whisper,
    mel: Tensor,
    audio_features: Tensor,
    first: int,
    last: int,
    ends_audio: bool = True,
    text_given: bool = True,
    text_ends: Sequence[float] = (),
) -> RefineInputs | None:
    """What the model's boundary refinement needs for the region [first, last) (20 ms positions) of one
    encoded window: that region's log-mel frames (``mel``: the window's, n_mels x frames) and encoder states
    (``audio_features``: the window's, positions x D). ``None`` when the model has no refinement.
    ``ends_audio``, ``text_given`` and ``text_ends`` (:class:`PieceScores`): see
    :class:`~whisper_align.alignment.word_refinement.RefineInputs`."""
    params = model.boundary_refiner
    if params is None:
        return None
    region_mel = mel[:, 2 * first : 2 * last].float().cpu().numpy()
    states = audio_features[first:last].float().cpu().numpy()
    return RefineInputs(params, region_mel, states, ends_audio, text_given, list(text_ends))


def piece_matrix(tokenizer: Tokenizer, qk: Tensor, config: AlignmentConfig) -> Tensor:
    """One piece's alignment matrix, rows from the no-timestamps token to the last text token (what
    :func:`~whisper_align.alignment.words.align_words` reads)."""
    matrix = alignment_matrix(qk, qk.shape[-1], config.medfilt_width, config.qk_scale)
    return matrix[len(tokenizer.sot_sequence) : -1]


def words_of_piece(
    tokenizer: Tokenizer,
    qk: Tensor,
    tokens: list[int],
    probs: list[float],
    config: AlignmentConfig,
    time_offset: float,
    merge: bool = True,
    refine: RefineInputs | None = None,
) -> list[WordTiming]:
    """Alignment-head scores of one piece -> timed words (seconds, ``time_offset`` added), punctuation merged.

    Without ``probs`` (probabilities not computed) every word's probability is 0. With ``merge=False`` the
    words are the tokenizer's split, one per word of ``tokenizer.split_to_word_tokens(tokens)``, so that a
    caller can index them by that split (long-form alignment merges once, over the whole transcript).
    ``refine`` (see :func:`refine_inputs`) moves the boundaries by the model's fitted refinement, in default
    mode when ``config.refine``.
    """
    matrix = piece_matrix(tokenizer, qk, config)
    words, word_tokens = tokenizer.split_to_word_tokens(tokens + [tokenizer.eot])
    timings = align_words(
        matrix.numpy(),
        words,
        word_tokens,
        probs or [0.0] * len(tokens),
        config,
        time_offset=time_offset,
        duration=qk.shape[-1] / TOKENS_PER_SECOND,
    )
    if config.conformance:
        truncate_sentence_marks(timings)  # openai's add_word_timestamps clean-up
    elif refine is not None and config.refine:
        refine_timings(timings, matrix.numpy(), refine, float(config.time_shift or 0.0), time_offset)
    if not merge:
        return timings
    merge_punctuations(timings, config.prepend_punctuations, config.append_punctuations)
    return [t for t in timings if t.word]
