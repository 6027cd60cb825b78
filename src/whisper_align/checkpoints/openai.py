"""openai-whisper ``.pt`` checkpoints: ``{"dims": {...}, "model_state_dict": {...}}`` saved with ``torch.save``.

Read with ``torch.load(weights_only=True)`` (no pickled code runs). Heads may travel two ways: our writer stores
openai's dump at the top level (``"alignment_heads": bytes``, exactly what openai-whisper's
``set_alignment_heads`` takes); a state dict saved from our model may hold the ``alignment_heads`` buffer itself.
openai-whisper's ``load_model`` ignores the top-level key (for a path it always falls back to the last half of
the decoder), so its users apply our heads in one line::

    model = whisper.load_model("model.pt")
    model.set_alignment_heads(torch.load("model.pt")["alignment_heads"])

openai's own files carry no heads: an official file is recognised by its SHA-256, which is part of its download
URL (see :mod:`.names`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError
from ..files import replacing
from ..heads import MAX_TEXT_HEADS, MAX_TEXT_LAYERS, AlignmentHeadsError, decode, encode, mask_to_pairs
from ..model.whisper import ModelDimensions, Whisper
from . import names
from .common import LoadedCheckpoint, allocate, skeleton
from .ctranslate2 import load_state

_REMEDY = "the file is damaged, truncated or not an openai-whisper .pt checkpoint: download or save it again"
_MAX_DIMENSION = 1 << 20  # far above any Whisper's (n_vocab 51866); keeps a bad 'dims' from sizing a huge model


def _reason(exc: BaseException) -> str:
    """One short line saying why torch.load failed (its messages may be empty, or pages of advice)."""
    if isinstance(exc, pickle.UnpicklingError):
        return "its pickle data is invalid, or holds something other than tensors and plain values"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0].split('. ')[0][:200]}" if lines else type(exc).__name__


def _load(path: Path) -> dict:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise ModelLoadError(f"{path} is empty (0 bytes); {_REMEDY}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds (UnpicklingError, RuntimeError, EOFError...)
        raise ModelLoadError(f"cannot read {path} as a PyTorch checkpoint ({_reason(exc)}); {_REMEDY}") from exc
    if not isinstance(checkpoint, dict) or "dims" not in checkpoint or "model_state_dict" not in checkpoint:
        raise ModelLoadError(
            f"{path} is a PyTorch file but not an openai-whisper checkpoint (it needs the keys 'dims' and "
            "'model_state_dict')"
        )
    return checkpoint


def _dims(raw: object, path: Path) -> ModelDimensions:
    """``dims`` as :class:`ModelDimensions`: exactly its fields, each a positive int a Whisper could have."""
    fields = [f.name for f in dataclasses.fields(ModelDimensions)]
    if not isinstance(raw, dict) or set(raw) != set(fields):
        shown = list(raw)[:12] if isinstance(raw, dict) else type(raw).__name__
        raise ModelLoadError(f"{path}: 'dims' must have exactly the keys {fields}, got {shown!r}; {_REMEDY}")
    bounds = {"n_text_layer": MAX_TEXT_LAYERS, "n_text_head": MAX_TEXT_HEADS}
    for key in fields:
        value, bound = raw[key], bounds.get(key, _MAX_DIMENSION)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
            raise ModelLoadError(f"{path}: dims[{key!r}] must be an integer from 1 to {bound}, got {value!r:.40}")
    dims = ModelDimensions(**{key: raw[key] for key in fields})
    for state, head in (("n_audio_state", "n_audio_head"), ("n_text_state", "n_text_head")):
        if getattr(dims, state) % getattr(dims, head):
            raise ModelLoadError(
                f"{path}: dims {state}={getattr(dims, state)} is not divisible by {head}={getattr(dims, head)}; "
                f"{_REMEDY}"
            )
    return dims


def _state(raw: object, skeleton: Whisper, path: Path) -> dict[str, torch.Tensor]:
    """The state dict, its tensors' shapes checked against a model without storage (``skeleton``, on the meta
    device) before a model of that size is allocated: a 'dims' that lies cannot make the loader allocate more
    than the weights the file holds."""
    if not isinstance(raw, dict) or not all(isinstance(key, str) for key in raw):
        raise ModelLoadError(f"{path}: 'model_state_dict' must map tensor names to tensors; {_REMEDY}")
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items() if k != "alignment_heads"}
    wrong = [
        f"{key} {tuple(value.shape)} (dims say {expected[key]})"
        for key, value in raw.items()
        if key in expected and isinstance(value, torch.Tensor) and tuple(value.shape) != expected[key]
    ]
    if wrong:
        raise ModelLoadError(f"{path}: the weights do not match its 'dims': {'; '.join(wrong[:3])}; {_REMEDY}")
    return dict(raw)


def _time_shift(value: object, path: Path) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelLoadError(f"{path}: 'alignment_time_shift' must be a finite number of seconds, got {value!r:.40}")
    return float(value)


def read(path: str | os.PathLike[str], dtype: torch.dtype = torch.float32) -> LoadedCheckpoint:
    """Load an openai-whisper ``.pt`` into a :class:`Whisper` of ``dtype``.

    Anything wrong with the file (empty, truncated, not a checkpoint, dims that do not match the weights, bad
    metadata) is a :class:`ModelLoadError` naming the file and the problem.
    """
    path = Path(path)
    checkpoint = _load(path)
    dims = _dims(checkpoint["dims"], path)
    shapes = skeleton(dims)
    state = _state(checkpoint["model_state_dict"], shapes, path)
    shift = _time_shift(checkpoint.get("alignment_time_shift"), path)
    model = allocate(shapes, dtype)
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
    refiner = checkpoint.get("boundary_refiner")
    return LoadedCheckpoint(model=model, heads=heads, tokenizer_file=None, name=name, time_shift=shift, refiner=refiner)


def write(model: Whisper, path: str | os.PathLike[str]) -> None:
    """Save ``model`` so that ``whisper.load_model(path)`` loads it, with our heads as a top-level dump.

    openai-whisper's ``load_state_dict`` is strict and its ``alignment_heads`` buffer is not persistent, so the
    buffer is left out of ``model_state_dict``; the heads go in ``"alignment_heads"`` (openai's dump format, as
    bytes), which :func:`read` picks up and openai-whisper users apply with
    ``model.set_alignment_heads(torch.load(path)["alignment_heads"])``. Written atomically (temporary file +
    rename).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items() if k != "alignment_heads"}
    heads = model.alignment_heads.to("cpu").to_dense().numpy()
    checkpoint: dict[str, Any] = {
        "dims": dataclasses.asdict(model.dims),
        "model_state_dict": state,
        "alignment_heads": encode(heads),
    }
    if model.alignment_time_shift:
        checkpoint["alignment_time_shift"] = float(model.alignment_time_shift)
    if model.boundary_refiner is not None:
        checkpoint["boundary_refiner"] = model.boundary_refiner.to_dict()
    with replacing(path) as temp, open(temp, "wb") as f:
        torch.save(checkpoint, f)


__all__ = ["read", "write"]
