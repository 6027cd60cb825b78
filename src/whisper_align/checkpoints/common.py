"""What every checkpoint reader hands back, before the heads policy of ``checkpoints.load_model`` is applied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..model.whisper import ModelDimensions, Whisper, default_alignment_heads


@dataclass
class LoadedCheckpoint:
    model: Whisper  # weights loaded, heads still at the default unless the state dict carried them
    heads: list[tuple[int, int]] | None  # heads found in the checkpoint's own metadata, if any
    tokenizer_file: Path | None  # tokenizer.json shipped beside the weights, if any
    name: str | None = None  # official model name, when the checkpoint is known to be an official one
    time_shift: float | None = None  # `alignment_time_shift` from the checkpoint's metadata (see calibration.py)
    refiner: dict[str, Any] | None = None  # `boundary_refiner` (RefineParams.to_dict()) from the metadata


def skeleton(dims: ModelDimensions) -> Whisper:
    """A Whisper of ``dims`` on the meta device: shapes only, no memory and no random init."""
    with torch.device("meta"):
        return Whisper(dims)


def allocate(skeleton: Whisper, dtype: torch.dtype = torch.float32) -> Whisper:
    """``skeleton`` given uninitialised CPU storage in ``dtype`` (every weight is about to be loaded), in the
    skeleton's memory layout (some weights are column-major on purpose, see ``Linear``), with the default heads.

    Not ``Module.to_empty``: its ``empty_like`` of a meta tensor imports torch's symbolic-shape machinery, which
    takes longer than reading the weights."""
    model = skeleton._apply(lambda t: torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device="cpu")).to(dtype)
    model.set_heads_mask(default_alignment_heads(model.dims.n_text_layer, model.dims.n_text_head))
    return model
