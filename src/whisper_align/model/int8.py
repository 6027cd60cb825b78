"""int8 weights for the CPU: every linear layer and the vocabulary projection, dynamically quantized.

On a CPU, decoding a small Whisper is bound by how fast the weights stream from memory: each token reads every
decoder weight and the whole vocabulary projection (80 MB for tiny.en in float32). int8 weights are a quarter of
that, and the encoder's large products run on int8 kernels too. This is what faster-whisper's default
``compute_type="int8"`` does on the CPU (through CTranslate2); here it goes through PyTorch's own quantized
kernels (fbgemm/x86): weights int8 with one scale per output row, activations quantized per call.

The price is numerical: outputs differ from float32 by about 1-2 % of their range, so a transcript may differ
from the float32 one in a few words. ``benchmarks/transcription.py`` measures how often (text equal to
openai-whisper's float32 transcript, WER and word-timing error) and how much faster it is.

    model = quantize_int8(load_model("tiny.en"))   # in place; CPU only; for inference, not for saving
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import QuantizationError
from .layers import Linear, pack_int8
from .whisper import Whisper


def _linear(x: Tensor, packed: torch.ScriptObject, where: str, bias: Tensor | None = None) -> Tensor:
    """``x @ W.T + b`` on the int8 kernel, activations quantized with one scale per row of ``x``.

    ``quantized::linear_dynamic`` quantizes its whole input with one scale. For a decoding step (one row) that is
    a per-row scale already; for the encoder's 1,500 rows it is one scale for all of them, set by the loudest
    row, and quiet rows keep only a few levels (the encoder output then differs from float32's by about 17%
    of its norm on speech, enough to send tiny.en into a repetition loop that the temperature fallback decodes
    three more times; int8_breakdown.py). So several rows are first divided by their own largest magnitude,
    which gives every row the kernel's full range, and the products are scaled back: about half that error,
    for about a tenth more encoder time. ``bias`` must be the bias packed into ``packed`` (the kernel adds it
    to the scaled-down product, so it is taken out before scaling back).
    """
    if x.device.type != "cpu":
        raise QuantizationError(
            f"{where} has int8 weights, which run on the CPU only, but got a tensor on "
            f"{x.device}; load the model again without quantizing to use {x.device}"
        )
    shape = x.shape
    rows = x.reshape(-1, shape[-1]).float()
    # reduce_range: 7-bit activations. Without VNNI (AVX2 only, such as this project's AMD EPYC) fbgemm sums
    # pairs of 8-bit products in 16 bits, which 8-bit activations can overflow (a test shows the error).
    if rows.shape[0] == 1:
        y = torch.ops.quantized.linear_dynamic(rows.contiguous(), packed, True)
    else:
        scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny)
        y = torch.ops.quantized.linear_dynamic(rows / scale, packed, True)
        if bias is not None:
            y.sub_(bias)
        y.mul_(scale)
        if bias is not None:
            y.add_(bias)
    return y.reshape(*shape[:-1], y.shape[-1]).to(x.dtype)


class Int8Linear(nn.Module):
    """A drop-in for :class:`whisper_align.model.whisper.Linear` holding int8 weights."""

    def __init__(self, weight: Tensor, bias: Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self._packed = pack_int8(weight, bias)
        self._bias = None if bias is None else bias.detach().float().cpu().clone()

    def forward(self, x: Tensor) -> Tensor:
        return _linear(x, self._packed, "this linear layer", self._bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, Int8Linear) for m in model.modules())


def quantize_int8(model: Whisper) -> Whisper:
    """Replace, in place, every linear layer of ``model`` (encoder and decoder) and its vocabulary projection by
    int8 versions, and return it. The model must be on the CPU; convolutions, layer norms, embeddings and the
    alignment heads are unchanged. Its float weights of those layers are released, so the model can no longer be
    saved: keep (or reload) the float model for that."""
    if model.device.type != "cpu":
        raise QuantizationError(
            f"int8 weights run on the CPU only; this model is on {model.device}: call "
            "quantize_int8 before moving it, or use float16 on an accelerator"
        )
    if is_quantized(model):
        return model
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Linear):
                setattr(parent, name, Int8Linear(child.weight, child.bias))
    # the token embedding stays float32 for the lookup; its tied output projection gets an int8 copy
    model.decoder.output = Int8Linear(model.decoder.token_embedding.weight)
    return model


__all__ = ["Int8Linear", "QuantizationError", "is_quantized", "quantize_int8"]
