"""The building blocks of Whisper's encoder and decoder: layers that run in the input's dtype, the kv-cache, and
attention that can hand over the pre-softmax scores of chosen heads.

Weights may keep *derived forms* (a transposed copy, a fused q/k/v product, an int8 packing) for fast CPU
inference; :class:`DerivedForms` makes each once and remakes it when its weight changes.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input and parameter dtypes (openai-whisper computes it in
    float32 too, but with float16 parameters that only works on a GPU)."""

    def forward(self, x: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).type(x.dtype)


class Linear(nn.Linear):
    """``nn.Linear`` computing in the input's dtype.

    ``column_major=True`` stores the (out, in) weight as the transpose of a contiguous (in, out) matrix: the same
    parameter (shape, values, state-dict entry), but a one-row product against it runs about twice as fast in
    PyTorch's CPU kernels when ``out`` is the larger side (the MLP's widening layer: 322 -> 155 µs a decoding step
    for tiny.en); for the narrowing layer the row-major layout is the faster one. Moves and casts keep the layout.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, column_major: bool = False):
        super().__init__(in_features, out_features, bias)
        if column_major:
            self.weight = nn.Parameter(self.weight.detach().t().contiguous().t())

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)


class Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        # A meta tensor has no values to initialise, and meta-device normal_ imports torch's compiler stack
        # (seconds); checkpoints are built on "meta" and then loaded.
        if not self.weight.is_meta:
            super().reset_parameters()


class Conv1d(nn.Conv1d):
    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return super()._conv_forward(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))


def sinusoids(length: int, channels: int, max_timescale: float = 10000) -> Tensor:
    """The encoder's fixed sinusoidal position embedding, shape (length, channels).

    Computed on the CPU even inside a ``torch.device("meta")`` block: meta-device math imports torch's
    compiler stack, which would double the time of loading a model."""
    assert channels % 2 == 0
    log_timescale_increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2, device="cpu"))
    scaled_time = torch.arange(length, device="cpu")[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class DerivedForms:
    """A cache of tensors derived from a module's weights (a transposed copy, a fused or int8 packing), each made
    once and remade when a source weight is replaced or changed in place: sources are held by weak reference (a
    replaced weight may reuse the old one's memory) and their version counters. Pickling drops the cache."""

    _derived: dict[str, tuple[tuple[tuple[weakref.ref, int], ...], Any, Any]]

    def _derived_form(self, kind: str, sources: tuple[Tensor, ...], variant: Any, make: Callable[[], Any]) -> Any:
        store = self.__dict__.setdefault("_derived", {})
        cached = store.get(kind)
        if (
            cached is None
            or cached[1] != variant
            or len(cached[0]) != len(sources)
            or any(ref() is not t or version != t._version for (ref, version), t in zip(cached[0], sources))
        ):
            cached = (tuple((weakref.ref(t), t._version) for t in sources), variant, make())
            store[kind] = cached
        return cached[2]

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_derived": {}}  # type: ignore[dict-item, misc]


def _inference_on_cpu(*weights: Tensor) -> bool:
    """Whether derived copies may stand in for ``weights``: on the CPU, and no gradient to deliver to them."""
    return all(w.device.type == "cpu" for w in weights) and not (
        torch.is_grad_enabled() and any(w.requires_grad for w in weights)
    )


@dataclass
class KVCache:
    """Keys and values of past decoder steps (self-attention) and of the audio (cross-attention), per layer.

    Self-attention keys/values live in buffers ``self_kv[i]`` (B, capacity, D) of which the first
    ``self_len[i]`` positions are filled: :meth:`extend` writes each call's new tokens in place (doubling the
    buffer when full) instead of concatenating a new (B, T, D) tensor per layer per step, which on the CPU cost
    more than the self-attention itself. ``cross_kv[i]`` (B, H, S, D/H, see :meth:`MultiHeadAttention.project_audio`)
    is computed once per audio. :meth:`reorder` selects batch rows, for beam search.
    """

    self_kv: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)
    self_len: dict[int, int] = field(default_factory=dict)
    cross_kv: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)

    @property
    def offset(self) -> int:
        """Number of tokens already in the cache."""
        return self.self_len.get(0, 0)

    def extend(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new tokens' keys and values (B, n_new, D) of ``layer``; return all of them so far (views)."""
        n, n_new = self.self_len.get(layer, 0), k.shape[1]
        buffers = self.self_kv.get(layer)
        if buffers is None or buffers[0].shape[1] < n + n_new:
            capacity = max(n + n_new, 2 * buffers[0].shape[1] if buffers is not None else 0)
            grown = tuple(x.new_empty(x.shape[0], capacity, x.shape[2]) for x in (k, v))
            if buffers is not None:
                for old, new in zip(buffers, grown):
                    new[:, :n] = old[:, :n]
            buffers = self.self_kv[layer] = grown  # type: ignore[assignment]
        assert buffers is not None
        buffers[0][:, n : n + n_new] = k
        buffers[1][:, n : n + n_new] = v
        self.self_len[layer] = n + n_new
        return buffers[0][:, : n + n_new], buffers[1][:, : n + n_new]

    def reorder(self, index: Tensor) -> None:
        for store in (self.self_kv, self.cross_kv):
            for layer, (k, v) in store.items():
                store[layer] = (k[index], v[index])

    def crop(self, length: int) -> None:
        """Forget every cached token after the first ``length``."""
        for layer, n in self.self_len.items():
            self.self_len[layer] = min(n, length)


class MultiHeadAttention(DerivedForms, nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = Linear(n_state, n_state)
        self.key = Linear(n_state, n_state, bias=False)
        self.value = Linear(n_state, n_state)
        self.out = Linear(n_state, n_state)

    def _split(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, H, T, D/H); already split (4-d): as it is
        return x if x.dim() == 4 else x.view(*x.shape[:2], self.n_head, -1).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        kv: tuple[Tensor, Tensor] | None = None,
        mask: Tensor | None = None,
        qk_heads: list[int] | None = None,
        q: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``x`` to keys/values ``kv`` (already projected, shape (B, T, D)); self-attention if None.

        Returns the output and, if ``qk_heads`` is given, the scaled pre-softmax scores of those heads,
        shape (B, len(qk_heads), T_query, T_key), in float32. ``q`` may hold the query projection of ``x``
        (see :meth:`project_self`).
        """
        q = self._split(self.query(x) if q is None else q)
        k, v = kv if kv is not None else (self.key(x), self.value(x))
        k, v = self._split(k), self._split(v)
        qk = None
        if q.shape[-2] == 1 and mask is None:
            # one decoding step: the attention written out, so the scores asked for come with it instead of a
            # second pass over those heads' keys (on a CPU that pass costs as much as the attention); written out
            # with or without them, so capturing scores never changes a step's arithmetic
            scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
            out = (scores.softmax(dim=-1) @ v.float()).to(q.dtype)
            qk = scores[:, qk_heads] if qk_heads else None
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            if qk_heads:  # (several rows at once: the prompt, or a teacher-forced alignment pass)
                qk = self.head_scores(q, k, qk_heads)
        out = self.out(out.transpose(1, 2).flatten(2))
        return out, qk

    def project_self(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Query, key and value projections of ``x`` (B, T, D) for self-attention.

        On the CPU (inference) one product against a fused, transposed (D, 3D) copy of the three weights: for a
        decoding step's single row that is one memory-bound pass instead of three short ones (0.65 ms less per
        tiny.en token, for a copy of 3·D² floats per layer). Elsewhere, the three layers.
        """
        layers = (self.query, self.key, self.value)
        if (
            not all(type(layer) is Linear for layer in layers)
            or not _inference_on_cpu(*(layer.weight for layer in layers))
            or x.dtype != self.query.weight.dtype
        ):
            return self.query(x), self.key(x), self.value(x)  # (int8 layers, see quantize.py: their own kernels)
        weights = (self.query.weight, self.key.weight, self.value.weight)
        biases = (self.query.bias, self.value.bias)

        def fuse() -> tuple[Tensor, Tensor]:
            zeros = torch.zeros_like(biases[0])  # the key has no bias
            return (
                torch.cat([w.detach() for w in weights]).T.contiguous(),
                torch.cat([biases[0].detach(), zeros, biases[1].detach()]),
            )

        weight, bias = self._derived_form("qkv", weights + biases, x.dtype, fuse)
        q, k, v = torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight).view(*x.shape[:-1], 3, -1).unbind(-2)
        return q, k, v

    def project_audio(self, audio_features: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of the audio for cross-attention, split by head and contiguous, (B, H, S, D/H).

        Computed once per window and read at every decoding step: the contiguous per-head layout makes each
        step's attention about 1.8x faster on the CPU than the strided view of (B, S, D) would.
        """
        k, v = self.key(audio_features), self.value(audio_features)
        return self._split(k).contiguous(), self._split(v).contiguous()

    def head_scores(self, q: Tensor, k: Tensor, heads: list[int]) -> Tensor:
        """The scaled pre-softmax scores of ``heads``, float32 (B, len(heads), T_query, T_key), from split queries
        and keys (B, H, T, D/H).

        Keys that every row shares (one window's audio expanded over the rows, see
        :meth:`~whisper_align.model.whisper.TextDecoder.shared_audio_cache`) are multiplied once for all rows'
        queries instead of being copied per row.
        """
        scale = q.shape[-1] ** -0.5
        if k.shape[0] == 1 or k.stride(0) != 0:
            return (q[:, heads].float() @ self.keys_of_heads(k, heads)) * scale
        rows, _, n_query, _ = q.shape
        queries = q[:, heads].float().transpose(0, 1).reshape(len(heads), rows * n_query, -1)
        scores = (queries @ self.keys_of_heads(k[:1], heads)[0]) * scale  # (heads, rows * T_query, T_key)
        return scores.view(len(heads), rows, n_query, -1).transpose(0, 1)

    def keys_of_heads(self, k: Tensor, heads: list[int]) -> Tensor:
        """The keys of ``heads`` as float32 (B, len(heads), D/H, T), ready to multiply queries with."""
        return self._split(k)[:, heads].float().transpose(-1, -2).contiguous()


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int, cross_attention: bool = False):
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = LayerNorm(n_state)
        self.cross_attn = MultiHeadAttention(n_state, n_head) if cross_attention else None
        self.cross_attn_ln = LayerNorm(n_state) if cross_attention else None
        n_mlp = n_state * 4
        self.mlp = nn.Sequential(Linear(n_state, n_mlp, column_major=True), nn.GELU(), Linear(n_mlp, n_state))
        self.mlp_ln = LayerNorm(n_state)


def pack_int8(weight: Tensor, bias: Tensor | None) -> torch.ScriptObject:
    """Per-row symmetric int8 weights, packed for ``quantized::linear_dynamic``."""
    weight = weight.detach().float().cpu()
    scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
    with warnings.catch_warnings():  # torch flags its quantized-tensor constructors as deprecated; they still work
        warnings.simplefilter("ignore")
        q = torch.quantize_per_channel(weight, scales, torch.zeros_like(scales, dtype=torch.long), 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(q, None if bias is None else bias.detach().float().cpu())
