"""What every checkpoint reader hands back, before the heads policy of ``checkpoints.load_model`` is applied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model.whisper import Whisper


@dataclass
class LoadedCheckpoint:
    model: Whisper  # weights loaded, heads still at the default unless the state dict carried them
    heads: list[tuple[int, int]] | None  # heads found in the checkpoint's own metadata, if any
    tokenizer_file: Path | None  # tokenizer.json shipped beside the weights, if any
    name: str | None = None  # official model name, when the checkpoint is known to be an official one
    time_shift: float | None = None  # `alignment_time_shift` from the checkpoint's metadata (see calibration.py)
    refiner: dict[str, Any] | None = None  # `boundary_refiner` (RefineParams.to_dict()) from the metadata
