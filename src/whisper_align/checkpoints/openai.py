"""openai-whisper ``.pt`` checkpoints: ``{"dims": {...}, "model_state_dict": {...}}`` saved with ``torch.save``.

Read with ``torch.load(weights_only=True)`` (no pickled code runs). Heads may travel two ways: our writer stores
openai's dump at the top level (``"alignment_heads": bytes``), which openai-whisper ignores; a state dict saved
from our model may hold the ``alignment_heads`` buffer itself. openai's own files have neither: an official file
is recognised by its SHA-256, which is part of its download URL (see :mod:`.names`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import torch

from ..errors import ModelLoadError
from ..heads import AlignmentHeadsError, decode, encode, mask_to_pairs
from ..model import ModelDimensions, Whisper
from . import names
from .common import LoadedCheckpoint
from .ctranslate2 import load_state, new_model


def _load(path: Path) -> dict:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds (UnpicklingError, RuntimeError, EOFError...)
        raise ModelLoadError(
            f"cannot read {path} as a PyTorch checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "expected an openai-whisper .pt file"
        ) from exc
    if not isinstance(checkpoint, dict) or "dims" not in checkpoint or "model_state_dict" not in checkpoint:
        raise ModelLoadError(
            f"{path} is a PyTorch file but not an openai-whisper checkpoint (it needs the keys 'dims' and "
            "'model_state_dict')"
        )
    return checkpoint


def _dims(raw: object, path: Path) -> ModelDimensions:
    fields = [f.name for f in dataclasses.fields(ModelDimensions)]
    if not isinstance(raw, dict) or sorted(raw) != sorted(fields):
        raise ModelLoadError(f"{path}: 'dims' must have exactly the keys {fields}, got {raw!r}")
    return ModelDimensions(**{k: int(v) for k, v in raw.items()})


def read(path: str | os.PathLike[str], dtype: torch.dtype = torch.float32) -> LoadedCheckpoint:
    """Load an openai-whisper ``.pt`` into a :class:`Whisper` of ``dtype``."""
    path = Path(path)
    checkpoint = _load(path)
    dims = _dims(checkpoint["dims"], path)
    state = dict(checkpoint["model_state_dict"])
    model = new_model(dims, dtype)
    try:
        load_state(model, state, str(path))
    except AlignmentHeadsError as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc

    heads: list[tuple[int, int]] | None = None
    dump = checkpoint.get("alignment_heads")
    if dump is not None:
        try:
            mask = decode(dump, dims.n_text_layer, dims.n_text_head)
        except AlignmentHeadsError as exc:
            raise ModelLoadError(f"{path}: its 'alignment_heads' entry is unusable: {exc}") from exc
        heads = [(layer, head) for layer, head in mask_to_pairs(mask)]
    elif "alignment_heads" in state:
        heads = model.alignment_head_pairs()

    name = names.official_name_for_sha256(names.sha256_file(path))
    shift = checkpoint.get("alignment_time_shift")
    return LoadedCheckpoint(
        model=model, heads=heads, tokenizer_file=None, name=name, time_shift=float(shift) if shift is not None else None
    )


def write(model: Whisper, path: str | os.PathLike[str]) -> None:
    """Save ``model`` so that ``whisper.load_model(path)`` loads it, with our heads as a top-level dump.

    openai-whisper's ``load_state_dict`` is strict and its ``alignment_heads`` buffer is not persistent, so the
    buffer is left out of ``model_state_dict``; the heads go in ``"alignment_heads"`` (openai's dump format),
    which openai-whisper ignores and :func:`read` picks up. Written atomically (temporary file + rename).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items() if k != "alignment_heads"}
    heads = model.alignment_heads.to("cpu").to_dense().numpy()
    checkpoint = {"dims": dataclasses.asdict(model.dims), "model_state_dict": state, "alignment_heads": encode(heads)}
    if model.alignment_time_shift:
        checkpoint["alignment_time_shift"] = float(model.alignment_time_shift)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


__all__ = ["read", "write"]
