"""Checkpoint formats (openai .pt, CTranslate2 model.bin, Hugging Face safetensors) and :func:`load_model`.

:func:`load_model` takes an official name or a path and picks the reader by what it finds:

* an official name ("tiny.en"): :func:`.names.resolve` finds or downloads it (cache, bundled package, openai);
* a folder with ``model.bin`` or ``model.bin.part1``: CTranslate2 (:mod:`.ctranslate2`);
* a folder with ``model.safetensors`` or ``pytorch_model.bin`` (or sharded): Hugging Face (:mod:`.huggingface`);
* a file: an openai-whisper ``.pt`` (:mod:`.openai`), or a CTranslate2 ``model.bin``.

Then the alignment heads, first found wins: the checkpoint's own metadata (``"checkpoint"``), else openai's
heads when the model is known to be official, by name or by the SHA-256 of its .pt (``"official"``), else every
head of the last half of the decoder (``"default"``, with a warning: alignment with those is much worse).
The model is never guessed from its size: a fine-tune of tiny.en has tiny.en's shape but not its heads.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from ..alignment.calibration import official_refiner, official_time_shift
from ..alignment.refine import RefineParams
from ..errors import ModelLoadError, RefineError
from ..heads import ALIGNMENT_HEADS, AlignmentHeadsError
from ..model.whisper import ModelInfo, Whisper
from . import names
from .common import LoadedCheckpoint

FORMATS = ("openai", "ctranslate2", "huggingface")
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "model.bin").is_file() or (path / "model.bin.part1").is_file():
            return "ctranslate2"
        if any((path / f).is_file() for f in _HF_WEIGHTS):
            return "huggingface"
        raise ModelLoadError(
            f"{path} is a folder but holds no model.bin / model.bin.part1 (CTranslate2) or model.safetensors / "
            "pytorch_model.bin (Hugging Face); point at a checkpoint folder or an openai .pt file"
        )
    if path.name == "model.bin" or path.name.startswith("model.bin.part"):
        return "ctranslate2"
    return "openai"


def _read(path: Path, fmt: str, dtype: torch.dtype) -> LoadedCheckpoint:
    if fmt == "ctranslate2":
        from . import ctranslate2

        folder = path if path.is_dir() else path.parent
        bundled = names.bundled_name(folder)
        if bundled is not None:
            names.verify_bundled(bundled)  # third-party files: checked against pinned hashes before first use
        loaded = ctranslate2.read(path, dtype=dtype, parts=names.split_parts(folder))
        loaded.name = loaded.name or bundled
        return loaded
    if fmt == "huggingface":
        from . import huggingface

        return huggingface.read(path, dtype=dtype)
    from . import openai

    return openai.read(path, dtype=dtype)


def load_model(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    download_root: str | os.PathLike[str] | None = None,
) -> Whisper:
    """Load a Whisper model by official name or checkpoint path, with its alignment heads; in eval mode.

    Weights stored in float16 are loaded into a ``dtype`` (default float32) model. ``model.info`` says where the
    model came from and where its heads came from (``heads_source``).
    """
    given = os.fspath(name_or_path)
    name: str | None = None
    if given in names.OFFICIAL_NAMES:  # names first, as openai-whisper does (a folder "base" may be anything)
        name = given
        path = names.resolve(given, download_root)
    else:
        path = Path(given).expanduser()
        if not path.exists():
            raise ModelLoadError(
                f"{given!r} is neither an existing file or folder nor a known model name; known names: "
                f"{', '.join(names.OFFICIAL_NAMES)}"
            )

    fmt = _detect_format(path)
    loaded = _read(path, fmt, dtype)
    model = loaded.model
    name = name or loaded.name

    if loaded.heads:
        try:
            model.set_alignment_head_pairs(loaded.heads)
        except AlignmentHeadsError as exc:
            raise ModelLoadError(f"{path}: the alignment heads it carries do not fit the model: {exc}") from exc
        heads_source = "checkpoint"
    elif name is not None and name in ALIGNMENT_HEADS:
        official = ALIGNMENT_HEADS[name]
        if (official.n_text_layer, official.n_text_head) != (model.dims.n_text_layer, model.dims.n_text_head):
            raise ModelLoadError(
                f"{path} was taken for {name}, whose decoder has {official.n_text_layer}x{official.n_text_head} "
                f"heads, but it has {model.dims.n_text_layer}x{model.dims.n_text_head}; the file is not {name}"
            )
        model.set_alignment_heads(official.dump)
        heads_source = "official"
    else:
        heads_source = "default"
        warnings.warn(
            f"{given} carries no alignment heads and is not a known official model, so every head of the last "
            f"half of the decoder is used; word timings will be rough. Find better heads with "
            f"`whisper-align heads find {given} --data MANIFEST`.",
            stacklevel=2,
        )

    model.info = ModelInfo(
        name=name,
        path=str(path),
        format=fmt,
        tokenizer_file=str(loaded.tokenizer_file) if loaded.tokenizer_file else None,
        heads_source=heads_source,
    )
    if name in ALIGNMENT_HEADS and model.alignment_head_pairs() == [tuple(p) for p in ALIGNMENT_HEADS[name].pairs()]:
        model.alignment_time_shift = official_time_shift(name)  # calibrated for exactly these heads
        model.boundary_refiner = official_refiner(name)  # fitted for exactly these heads and that shift
    elif heads_source == "checkpoint":
        if loaded.time_shift is not None:
            model.alignment_time_shift = loaded.time_shift  # measured by `heads find` for the heads it wrote
        if loaded.refiner is not None:
            model.boundary_refiner = _refiner(loaded.refiner, path)  # fitted by `heads refine` for these heads
    model = model.to(device=device, dtype=dtype)
    return model.eval()


def _refiner(data: object, path: Path) -> RefineParams:
    """The boundary refinement a checkpoint carries, checked; a damaged one is a :class:`ModelLoadError`."""
    try:
        if not isinstance(data, dict):
            raise RefineError(f"expected a JSON object, got {type(data).__name__}")
        return RefineParams.from_dict(data)
    except (RefineError, KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(
            f"{path}: its boundary refinement ('boundary_refiner') cannot be read ({error}); refit it with "
            "`whisper-align heads refine` or remove the key"
        ) from error


def save_model(
    model: Whisper,
    path: str | os.PathLike[str],
    format: str = "openai",
    dtype: torch.dtype | None = None,  # noqa: A002
) -> None:
    """Write ``model`` (weights and alignment heads) as an openai .pt file or a CTranslate2 / Hugging Face folder.

    ``dtype`` chooses the stored weights' type for CTranslate2 (float16 by default, or bfloat16, float32, int8);
    the other formats store the model's own dtype. A CTranslate2 folder opens in faster-whisper, whose word
    timestamps then use our heads; openai-whisper users apply a .pt's heads with
    ``model.set_alignment_heads(torch.load(path)["alignment_heads"])``.
    """
    if model.is_quantized:  # quantize_int8 released the float weights of the linear layers
        raise ValueError(
            "this model has int8 weights for fast CPU inference (quantize_int8) and no float weights "
            "left to save; save the model loaded without quantizing (save_model(..., dtype=torch.int8) "
            "writes int8 CTranslate2 weights)"
        )
    if dtype is not None and format != "ctranslate2":
        raise ValueError(
            f"dtype applies to CTranslate2 folders only; convert the model itself (model.to(dtype)) "
            f"before saving it as {format}"
        )
    if format == "openai":
        from . import openai

        openai.write(model, path)
    elif format == "ctranslate2":
        from . import ctranslate2

        ctranslate2.write(model, path, dtype=dtype or torch.float16)
    elif format == "huggingface":
        from . import huggingface

        huggingface.write(model, path)
    else:
        raise ValueError(f"unknown checkpoint format {format!r}; choose one of {', '.join(FORMATS)}")


__all__ = ["load_model", "save_model", "FORMATS", "LoadedCheckpoint"]
