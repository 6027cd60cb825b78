"""Whisper in PyTorch: encoder, decoder with a kv-cache, and the alignment-head buffer.

Parameter names match openai-whisper's ``model.py`` exactly, so a state dict moves between the two unchanged
(apart from our persistent ``alignment_heads`` buffer, see :meth:`Whisper.set_alignment_heads`).

Attention runs through ``scaled_dot_product_attention``. Alignment needs the cross-attention of a few heads
only, so the decoder can be asked for the pre-softmax scores (``q·kᵀ``) of chosen heads of chosen layers; those
are computed separately for just those heads, and decoding can stop after the highest layer that is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..alignment.refine import RefineParams
from ..heads import AlignmentHeadsError, decode
from .layers import (
    Conv1d,
    DerivedForms,
    Embedding,
    KVCache,
    LayerNorm,
    ResidualAttentionBlock,
    _inference_on_cpu,
    pack_int8,
    sinusoids,
)


@dataclass(frozen=True)
class ModelDimensions:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


@dataclass
class ModelInfo:
    """Where a loaded model came from; set by the checkpoint loaders, None for a model built by hand."""

    name: str | None = None  # official name ("tiny.en"), when known
    path: str | None = None  # the file or folder it was read from
    format: str = "none"  # "openai", "ctranslate2", "huggingface" or "none"
    tokenizer_file: str | None = None  # a tokenizer.json that belongs to the model, if it shipped one
    heads_source: str = "default"  # "checkpoint", "official" or "default"


class AudioEncoder(nn.Module):
    def __init__(self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
        super().__init__()
        self.conv1 = Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_ctx, n_state))
        self.positional_embedding: Tensor
        self.blocks: list[ResidualAttentionBlock] = nn.ModuleList(  # type: ignore[assignment]
            ResidualAttentionBlock(n_state, n_head) for _ in range(n_layer)
        )
        self.ln_post = LayerNorm(n_state)

    def forward(self, mel: Tensor, starts: Sequence[int] | None = None) -> Tensor:
        """mel (B, n_mels, 2·n_ctx) -> audio features (B, n_ctx, n_state).

        With ``starts`` (increasing positions, the first 0), the positions from each start to the next (the last
        to the end) are encoded as separate sequences: each gets the positional embeddings from 0 and attends
        only to itself. That is how a packed window's clips are encoded each as if it began a window of its own
        (see tasks/corpus.py); only the convolutions, which see one frame either side, cross the seams.
        """
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        if x.shape[1:] != self.positional_embedding.shape:
            raise ValueError(
                f"mel of {mel.shape[-1]} frames gives {x.shape[1]} audio positions; this encoder needs "
                f"{self.positional_embedding.shape[0]} "
                f"(pad or trim the mel to {2 * self.positional_embedding.shape[0]})"
            )
        edges = _segment_edges(starts, x.shape[1])
        if len(edges) == 2:
            return self._transform(x)
        return torch.cat([self._transform(x[:, lo:hi]) for lo, hi in zip(edges, edges[1:])], dim=1)

    def _transform(self, x: Tensor) -> Tensor:
        """The transformer over one sequence of conv outputs (B, T, n_state), positions counted from 0."""
        x = (x + self.positional_embedding[: x.shape[1]]).to(x.dtype)
        for block in self.blocks:
            x = x + block.attn(block.attn_ln(x))[0]
            x = x + block.mlp(block.mlp_ln(x))
        return self.ln_post(x)


def _segment_edges(starts: Sequence[int] | None, n_positions: int) -> list[int]:
    """[start_1 = 0, start_2, ..., n_positions] from the segment starts; a clear error for starts that do not
    partition the window."""
    if starts is None:
        return [0, n_positions]
    edges = [int(s) for s in starts] + [n_positions]
    if not starts or edges[0] != 0 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"segment starts must increase from 0 and stay below {n_positions}; got {list(starts)}")
    return edges


class TextDecoder(DerivedForms, nn.Module):
    def __init__(self, n_vocab: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
        super().__init__()
        self.token_embedding = Embedding(n_vocab, n_state)
        self.positional_embedding = nn.Parameter(torch.empty(n_ctx, n_state))
        self.blocks: list[ResidualAttentionBlock] = nn.ModuleList(  # type: ignore[assignment]
            ResidualAttentionBlock(n_state, n_head, cross_attention=True) for _ in range(n_layer)
        )
        self.ln = LayerNorm(n_state)
        self.output: nn.Module | None = None  # replaces the tied projection when set (int8, see quantize.py)

    def shared_audio_cache(self, audio_features: Tensor, batch: int, n_layers: int | None = None) -> KVCache:
        """A cache holding the cross-attention keys and values of one window's ``audio_features`` (1, ctx, state)
        for the first ``n_layers`` layers, computed once and shared (expanded, not copied) by ``batch`` rows."""
        cache = KVCache()
        for layer in range(len(self.blocks) if n_layers is None else n_layers):
            cross_attn = self.blocks[layer].cross_attn
            assert cross_attn is not None  # decoder blocks always attend to the audio
            k, v = cross_attn.project_audio(audio_features)
            cache.cross_kv[layer] = (k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
        return cache

    def forward(
        self,
        tokens: Tensor,
        audio_features: Tensor,
        cache: KVCache | None = None,
        qk_heads: dict[int, list[int]] | None = None,
        logits: bool = True,
        logit_positions: list[int] | Tensor | None = None,
        projection: Callable[[Tensor], Tensor] | None = None,
        audio_mask: Tensor | None = None,
    ) -> tuple[Tensor | None, dict[int, Tensor]]:
        """Run the decoder over ``tokens`` (B, T) attending to ``audio_features`` (B, S, D).

        With a ``cache``, ``tokens`` are the new tokens only and the cache is extended in place.
        ``qk_heads`` maps layer -> heads whose cross-attention scores to return, as {layer: (B, h, T, S)}.
        With ``logits=False`` the layers above the highest asked-for layer and the vocabulary projection
        are skipped (what alignment needs) and the first value returned is None. ``logit_positions`` limits the
        vocabulary projection (the costliest step of a small decoder) to those positions of ``tokens``: a list
        (the same positions of every row), or a (B, T) bool mask (the logits then come flat, (N, vocab), row by
        row); ``projection`` replaces it (see fast_logits.py). ``audio_mask`` (B, 1, 1, S), bool, limits which
        audio positions each row's cross-attention may read (the scores returned are those of every position).
        """
        qk_heads = qk_heads or {}
        offset = cache.offset if cache is not None else 0
        n_new = tokens.shape[-1]
        if offset + n_new > self.positional_embedding.shape[0]:
            raise ValueError(
                f"{offset + n_new} tokens exceed the decoder's context of {self.positional_embedding.shape[0]}"
            )
        x = self.token_embedding(tokens) + self.positional_embedding[offset : offset + n_new]
        x = x.to(audio_features.dtype)
        # causal mask over [cached tokens, new tokens]; a single new token sees everything
        mask = None
        if n_new > 1:
            mask = torch.ones(n_new, offset + n_new, dtype=torch.bool, device=x.device).tril(diagonal=offset)

        n_layers = len(self.blocks) if logits else (max(qk_heads) + 1 if qk_heads else len(self.blocks))
        scores: dict[int, Tensor] = {}
        for i, block in enumerate(self.blocks[:n_layers]):
            h = block.attn_ln(x)
            q, k, v = block.attn.project_self(h)
            if cache is not None:
                k, v = cache.extend(i, k, v)
            x = x + block.attn(h, kv=(k, v), mask=mask, q=q)[0]

            assert block.cross_attn is not None and block.cross_attn_ln is not None
            if cache is not None and i in cache.cross_kv:
                cross_kv = cache.cross_kv[i]
            else:
                cross_kv = block.cross_attn.project_audio(audio_features)
                if cache is not None:
                    cache.cross_kv[i] = cross_kv
            out, qk = block.cross_attn(block.cross_attn_ln(x), kv=cross_kv, mask=audio_mask, qk_heads=qk_heads.get(i))
            x = x + out
            if qk is not None:
                scores[i] = qk
            x = x + block.mlp(block.mlp_ln(x))

        if not logits:
            return None, scores
        if isinstance(logit_positions, Tensor):
            x = x[logit_positions]
        elif logit_positions is not None:
            x = x[:, logit_positions]
        x = self.ln(x)
        if self.output is not None:
            out = self.output(x)
        elif projection is not None:
            out = projection(x)
        else:
            out = x @ self.vocabulary_projection(x.dtype)
        return out.float(), scores

    def vocabulary_projection(self, dtype: torch.dtype) -> Tensor:
        """The (D, n_vocab) matrix from decoder states to logits: the token embedding, transposed.

        On the CPU this is a contiguous transposed copy, made once per weight (rebuilt if the weight is replaced
        or changed in place): a one-row product with the row-major embedding runs about 2.6x slower there, and
        for a small model that product is most of each decoding step. Elsewhere, and whenever autograd is
        recording for the weight, it is the transposed view itself.
        """
        weight = self.token_embedding.weight
        if not _inference_on_cpu(weight):
            self.__dict__.get("_derived", {}).pop("projection", None)
            return weight.to(dtype).T  # training: the gradient must reach the embedding
        return self._derived_form("projection", (weight,), dtype, lambda: weight.detach().to(dtype).T.contiguous())

    def int8_vocabulary(self) -> torch.ScriptObject:
        """The token embedding packed as int8 rows for ``quantized::linear_dynamic`` (CPU; see fast_logits.py),
        made once per weight like :meth:`vocabulary_projection`."""
        weight = self.token_embedding.weight
        return self._derived_form("int8", (weight,), None, lambda: pack_int8(weight.detach(), None))


def default_alignment_heads(n_text_layer: int, n_text_head: int) -> Tensor:
    """Every head of the last half of the decoder layers: openai-whisper's default for unknown models."""
    # on the CPU even inside a `with torch.device("meta")` block (sparse tensors have no meta kernel)
    heads = torch.zeros(n_text_layer, n_text_head, dtype=torch.bool, device="cpu")
    heads[n_text_layer // 2 :] = True
    return heads


def _heads_from_state(loaded: object, shape: tuple[int, int]) -> Tensor:
    """The dense bool mask a state dict's ``alignment_heads`` entry holds, checked against the decoder's ``shape``.

    Anything else (not a tensor, another shape, values other than 0/1, no head set, sparse indices out of
    range) is an :class:`AlignmentHeadsError` saying what to do.
    """
    where = "the state dict's alignment_heads"
    if not isinstance(loaded, Tensor):
        raise AlignmentHeadsError(
            f"{where} is a {type(loaded).__name__}, not a tensor; drop the key or give a bool tensor of shape {shape}"
        )
    if tuple(loaded.shape) != shape:
        raise AlignmentHeadsError(
            f"{where} has shape {tuple(loaded.shape)}, but this model's decoder has {shape[0]} layers x {shape[1]} "
            f"heads; drop the key or give heads of shape {shape}"
        )
    try:
        dense = loaded.detach().to("cpu")
        if dense.layout == torch.sparse_coo:
            indices = dense._indices()
            if indices.numel() and ((indices < 0).any() or (indices >= torch.tensor(shape)[:, None]).any()):
                raise AlignmentHeadsError(f"{where} is a sparse tensor with indices outside its shape {shape}")
        dense = dense.to_dense() if dense.layout != torch.strided else dense
    except (RuntimeError, NotImplementedError, TypeError) as error:
        raise AlignmentHeadsError(f"{where} cannot be read as a mask ({str(error)[:200]})") from None
    if dense.dtype != torch.bool:
        if dense.is_complex() or not ((dense == 0) | (dense == 1)).all():
            raise AlignmentHeadsError(f"{where} holds values other than 0 and 1; it must be a bool mask")
        dense = dense != 0
    if not dense.any():
        raise AlignmentHeadsError(f"{where} marks no head; drop the key or mark at least one head")
    return dense


class Whisper(nn.Module):
    alignment_heads: Tensor  # sparse bool (n_text_layer, n_text_head), a persistent buffer

    def __init__(self, dims: ModelDimensions):
        super().__init__()
        self.dims = dims
        self.encoder = AudioEncoder(
            dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer
        )
        self.decoder = TextDecoder(
            dims.n_vocab, dims.n_text_ctx, dims.n_text_state, dims.n_text_head, dims.n_text_layer
        )
        self.info = ModelInfo()
        # seconds the default alignment mode adds to word times for the current heads (alignment/calibration.py);
        # reset whenever the heads change, since it belongs to one head set
        self.alignment_time_shift = 0.0
        # the default mode's fitted boundary refinement for the current heads (alignment/refine.py), if any;
        # reset with the heads, like the shift
        self.boundary_refiner: RefineParams | None = None
        # Persistent, unlike openai-whisper's: the heads travel with the state dict (see the spec).
        self.register_buffer(
            "alignment_heads", default_alignment_heads(dims.n_text_layer, dims.n_text_head).to_sparse(), persistent=True
        )

    # ---- alignment heads -------------------------------------------------------------------------------------

    def set_alignment_heads(self, dump: bytes | str) -> None:
        """Set the alignment heads from openai's compact dump: base85 of gzip of a bool (layers, heads) array.

        Exactly the spec's steps (b85decode -> gzip.decompress -> frombuffer(bool) -> reshape -> to_sparse ->
        persistent buffer), with each step's failure turned into an :class:`AlignmentHeadsError` that says
        what is wrong and which shape this model has. ``dump`` is bytes or its ASCII text; the gzip data is
        inflated no further than this decoder's layers x heads bytes (plus a small margin), so a hostile dump
        cannot exhaust memory. On any error the model keeps the heads it had.
        """
        mask = decode(dump, self.dims.n_text_layer, self.dims.n_text_head)
        self.set_heads_mask(torch.from_numpy(mask))

    def set_alignment_head_pairs(self, pairs: list[tuple[int, int]] | list[list[int]]) -> None:
        """Set the alignment heads from ``[[layer, head], ...]`` (Hugging Face / CTranslate2 form)."""
        from ..heads import pairs_to_mask

        self.set_heads_mask(torch.from_numpy(pairs_to_mask(pairs, self.dims.n_text_layer, self.dims.n_text_head)))

    def set_heads_mask(self, mask: Tensor) -> None:
        """Set the alignment heads from a bool (n_text_layer, n_text_head) mask, already checked by the caller
        (the codec's readers check what comes from outside); resets the time shift, which belongs to the old heads."""
        device = self.alignment_heads.device
        heads = mask.to(torch.bool).to_sparse()
        try:
            heads = heads.to(device)
        except (RuntimeError, NotImplementedError):
            pass  # a device without sparse support: the mask stays on the CPU (it is only ever read as indices)
        self.register_buffer("alignment_heads", heads, persistent=True)
        self.alignment_time_shift = 0.0
        self.boundary_refiner = None

    def alignment_head_pairs(self) -> list[tuple[int, int]]:
        """The alignment heads as sorted (layer, head) pairs."""
        dense = self.alignment_heads.to("cpu").to_dense()
        return [(int(l), int(h)) for l, h in torch.nonzero(dense).tolist()]

    def alignment_heads_by_layer(self) -> dict[int, list[int]]:
        """{layer: [heads]} for :meth:`TextDecoder.forward`'s ``qk_heads``."""
        by_layer: dict[int, list[int]] = {}
        for layer, head in self.alignment_head_pairs():
            by_layer.setdefault(layer, []).append(head)
        return by_layer

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - torch's signature
        """Move/cast like any module, but never fail on the sparse heads buffer (e.g. MPS has no sparse bool)."""
        heads = self._buffers.pop("alignment_heads", None)
        try:
            super()._apply(fn, recurse)
        finally:
            if heads is not None:
                try:
                    heads = fn(heads)
                except (RuntimeError, NotImplementedError, TypeError):
                    pass
                self._buffers["alignment_heads"] = heads
        return self

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):  # noqa: ANN001,E501
        """Accept state dicts with or without ``alignment_heads`` (official checkpoints lack it).

        A present entry is checked before any weight is copied (a tensor of the decoder's shape, dense or sparse,
        bool or 0/1, at least one head), so a bad one raises :class:`AlignmentHeadsError` and changes nothing.
        """
        key = prefix + "alignment_heads"
        loaded = state_dict.pop(key, None)
        heads = None
        if loaded is not None:
            heads = _heads_from_state(loaded, (self.dims.n_text_layer, self.dims.n_text_head))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if key in missing_keys:
            missing_keys.remove(key)
        if heads is not None:
            self.set_heads_mask(heads)

    # ---- running the model -----------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.decoder.positional_embedding.device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.positional_embedding.dtype

    @property
    def is_quantized(self) -> bool:
        """True once :func:`~whisper_align.model.int8.quantize_int8` replaced the float layers (CPU inference only)."""
        return self.decoder.output is not None

    @property
    def is_multilingual(self) -> bool:
        return self.dims.n_vocab >= 51865

    @property
    def num_languages(self) -> int:
        return self.dims.n_vocab - 51765 - int(self.is_multilingual)

    def embed_audio(self, mel: Tensor, starts: Sequence[int] | None = None) -> Tensor:
        """Encoder output of a log-mel window; ``starts``: encode segments separately (see AudioEncoder)."""
        return self.encoder(mel.to(self.dtype), starts)

    def logits(self, tokens: Tensor, audio_features: Tensor, cache: KVCache | None = None) -> Tensor:
        return self.decoder(tokens, audio_features, cache=cache)[0]

    def forward(self, mel: Tensor, tokens: Tensor) -> Tensor:
        return self.logits(tokens, self.embed_audio(mel))


__all__ = ["ModelDimensions", "ModelInfo", "Whisper", "KVCache", "default_alignment_heads", "sinusoids"]
