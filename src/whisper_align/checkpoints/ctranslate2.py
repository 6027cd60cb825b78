"""CTranslate2 Whisper checkpoints (faster-whisper's format), read and written without the ctranslate2 package.

A CTranslate2 model is a folder: ``model.bin`` (the weights; possibly split into ``model.bin.part1``,
``model.bin.part2``, ... that concatenate to one file), ``config.json`` (``alignment_heads`` as [layer, head]
pairs, token ids for decoding) and usually ``tokenizer.json``.

``model.bin`` holds named tensors and aliases (its binary layout: :mod:`.ctranslate2_bin`); this module maps
those names to openai-whisper's state dict and back. Quantized weights carry ``<name>_scale``: int8 rows were
stored as ``round(w · 127 / max|row|)`` with that per-row factor as the scale, int16 with one scalar scale; both
read back as ``w = q / scale``. Self-attention q, k, v projections are fused into one ``linear_0``, the
cross-attention's k, v into ``linear_1`` (its query is ``linear_0``, output ``linear_2``); Whisper's key
projections have no bias, so the fused biases hold zeros there. The output projection
``decoder/projection/weight`` is an alias of the token embedding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ModelLoadError
from ..files import replacing
from ..model.whisper import ModelDimensions, Whisper
from .common import LoadedCheckpoint, allocate, skeleton
from .ctranslate2_bin import (
    SPEC_NAME,
    RawModel,
    iter_model_bin,
    read_variables,
)

_GELU = 3  # CTranslate2's Activation.GELU


# ---- CTranslate2 names -> openai-whisper state dict ---------------------------------------------------------


def _dequantized(variables: dict[str, Tensor], name: str) -> Tensor:
    """The float value of ``name``, undoing int8/int16 quantization with its ``_scale`` variable."""
    value = variables[name]
    if value.is_floating_point():
        return value
    scale = variables.get(name + "_scale")
    if scale is None:
        raise ModelLoadError(f"quantized variable {name} ({value.dtype}) has no {name}_scale to dequantize it with")
    scale = scale.float()
    if scale.dim() == 1:
        scale = scale[:, None]
    return value.float() / scale


def _scalar(variables: dict[str, Tensor], name: str) -> int | None:
    value = variables.get(name)
    return None if value is None else int(value.reshape(-1)[0])


def _count_layers(variables: dict[str, Tensor], prefix: str) -> int:
    n = 0
    while any(k.startswith(f"{prefix}/layer_{n}/") for k in variables):
        n += 1
    return n


def _split_fused(
    variables: dict[str, Tensor], name: str, parts: list[str], target: str, state: dict[str, Tensor]
) -> None:
    """Split a fused projection ``name`` (weight and bias) into ``target.<part>``; key biases must be zero."""
    weight = _dequantized(variables, f"{name}/weight")
    bias = variables[f"{name}/bias"]
    for part, w, b in zip(parts, weight.chunk(len(parts)), bias.chunk(len(parts))):
        state[f"{target}.{part}.weight"] = w
        if part == "key":
            if torch.count_nonzero(b):
                raise ModelLoadError(
                    f"{name}/bias has a non-zero key bias; Whisper's key projections have none, so this "
                    "is not a Whisper model this reader understands"
                )
        else:
            state[f"{target}.{part}.bias"] = b


def _copy_linear(variables: dict[str, Tensor], name: str, target: str, state: dict[str, Tensor]) -> None:
    state[f"{target}.weight"] = _dequantized(variables, f"{name}/weight")
    state[f"{target}.bias"] = variables[f"{name}/bias"]


def _copy_norm(variables: dict[str, Tensor], name: str, target: str, state: dict[str, Tensor]) -> None:
    state[f"{target}.weight"] = variables[f"{name}/gamma"]
    state[f"{target}.bias"] = variables[f"{name}/beta"]


def to_state_dict(raw: RawModel, where: str = "model.bin") -> tuple[ModelDimensions, dict[str, Tensor]]:
    """Map CTranslate2 variables to openai-whisper's state-dict names and infer the model's dimensions."""
    if raw.spec != SPEC_NAME:
        raise ModelLoadError(f"{where} holds a CTranslate2 {raw.spec!r} model, not a Whisper model ({SPEC_NAME})")
    v = raw.variables
    try:
        settings = (("decoder/activation", _GELU), ("decoder/scale_embeddings", 0), ("decoder/pre_norm", 1))
        for setting, expected in settings:
            actual = _scalar(v, setting)
            if actual is not None and actual != expected:
                raise ModelLoadError(f"{where}: {setting} is {actual}, but Whisper uses {expected}")

        n_audio_layer = _count_layers(v, "encoder")
        n_text_layer = _count_layers(v, "decoder")
        conv1 = v["encoder/conv1/weight"]
        embedding = _dequantized(v, "decoder/embeddings/weight")
        n_audio_state, n_text_state = conv1.shape[0], embedding.shape[1]
        # Every Whisper has 64-dimensional heads; the spec stores the head counts, older files may not.
        n_audio_head = _scalar(v, "encoder/num_heads") or n_audio_state // 64
        n_text_head = _scalar(v, "decoder/num_heads") or n_text_state // 64
        dims = ModelDimensions(
            n_mels=conv1.shape[1],
            n_audio_ctx=v["encoder/position_encodings/encodings"].shape[0],
            n_audio_state=n_audio_state,
            n_audio_head=n_audio_head,
            n_audio_layer=n_audio_layer,
            n_vocab=embedding.shape[0],
            n_text_ctx=v["decoder/position_encodings/encodings"].shape[0],
            n_text_state=n_text_state,
            n_text_head=n_text_head,
            n_text_layer=n_text_layer,
        )

        projection = v.get("decoder/projection/weight")
        if projection is not None and raw.aliases.get("decoder/projection/weight") != "decoder/embeddings/weight":
            if not torch.equal(_dequantized(v, "decoder/projection/weight"), embedding):
                raise ModelLoadError(
                    f"{where}: decoder/projection/weight differs from the token embedding; Whisper ties the two"
                )

        state: dict[str, Tensor] = {
            "encoder.conv1.weight": conv1,
            "encoder.conv1.bias": v["encoder/conv1/bias"],
            "encoder.conv2.weight": v["encoder/conv2/weight"],
            "encoder.conv2.bias": v["encoder/conv2/bias"],
            "encoder.positional_embedding": v["encoder/position_encodings/encodings"],
            "decoder.token_embedding.weight": embedding,
            "decoder.positional_embedding": v["decoder/position_encodings/encodings"],
        }
        _copy_norm(v, "encoder/layer_norm", "encoder.ln_post", state)
        _copy_norm(v, "decoder/layer_norm", "decoder.ln", state)
        for side, n_layers in (("encoder", n_audio_layer), ("decoder", n_text_layer)):
            for i in range(n_layers):
                src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
                _copy_norm(v, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln", state)
                _split_fused(v, f"{src}/self_attention/linear_0", ["query", "key", "value"], f"{dst}.attn", state)
                _copy_linear(v, f"{src}/self_attention/linear_1", f"{dst}.attn.out", state)
                if side == "decoder":
                    _copy_norm(v, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln", state)
                    _copy_linear(v, f"{src}/attention/linear_0", f"{dst}.cross_attn.query", state)
                    _split_fused(v, f"{src}/attention/linear_1", ["key", "value"], f"{dst}.cross_attn", state)
                    _copy_linear(v, f"{src}/attention/linear_2", f"{dst}.cross_attn.out", state)
                _copy_norm(v, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln", state)
                _copy_linear(v, f"{src}/ffn/linear_0", f"{dst}.mlp.0", state)
                _copy_linear(v, f"{src}/ffn/linear_1", f"{dst}.mlp.2", state)
    except KeyError as exc:
        raise ModelLoadError(
            f"{where} lacks the variable {exc.args[0]}; it is not a standard Whisper model in CTranslate2 format"
        ) from exc
    return dims, state


# ---- the public reader / writer -------------------------------------------------------------------------------


def weight_files(folder: Path) -> list[Path]:
    """``model.bin``, or ``model.bin.part1``, ``.part2``, ... in order (the parts must all be in ``folder``)."""
    if (folder / "model.bin").is_file():
        return [folder / "model.bin"]
    parts: list[Path] = []
    while (folder / f"model.bin.part{len(parts) + 1}").is_file():
        parts.append(folder / f"model.bin.part{len(parts) + 1}")
    if not parts:
        raise ModelLoadError(
            f"{folder} has neither model.bin nor model.bin.part1; it is not a CTranslate2 model folder"
        )
    return parts


def load_state(model: Whisper, state: dict[str, Tensor], where: str) -> None:
    """``load_state_dict`` (strict), with torch's errors turned into a ModelLoadError."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{where}: the weights do not fit a Whisper model: {exc}") from exc


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} should hold a JSON object")
    return config


def read(
    path: str | os.PathLike[str], dtype: torch.dtype = torch.float32, parts: list[Path] | None = None
) -> LoadedCheckpoint:
    """Load a CTranslate2 Whisper folder (or its model.bin) into a :class:`Whisper` of ``dtype``.

    ``parts`` gives the model.bin pieces explicitly when they live in different folders (bundled packages).
    Heads come from config.json's ``alignment_heads`` when present.
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    if parts:
        files = list(parts)
    elif path.is_file() and path.name == "model.bin":
        files = [path]
    else:
        files = weight_files(folder)
    raw = read_variables(files)
    dims, state = to_state_dict(raw, str(files[0]))
    model = allocate(skeleton(dims), dtype)
    load_state(model, state, str(files[0]))
    del raw, state

    config = read_config(folder)
    heads = config.get("alignment_heads")
    pairs = [(int(layer), int(head)) for layer, head in heads] if heads else None
    tokenizer = folder / "tokenizer.json"
    shift = config.get("alignment_time_shift")
    return LoadedCheckpoint(
        model=model,
        heads=pairs,
        tokenizer_file=tokenizer if tokenizer.is_file() else None,
        time_shift=float(shift) if shift is not None else None,
        refiner=config.get("boundary_refiner"),
    )


def _variables_of(model: Whisper, dtype: torch.dtype) -> dict[str, Tensor]:
    """The model's weights under CTranslate2 names (the inverse of :func:`to_state_dict`)."""
    sd = {k: v.detach().to("cpu") for k, v in model.state_dict().items() if k != "alignment_heads"}
    d = model.dims
    out: dict[str, Tensor] = {
        "encoder/num_heads": torch.tensor(d.n_audio_head, dtype=torch.int16),
        "decoder/num_heads": torch.tensor(d.n_text_head, dtype=torch.int16),
        "decoder/activation": torch.tensor(_GELU, dtype=torch.int8),
        "decoder/alibi": torch.tensor(0, dtype=torch.int8),
        "decoder/alignment_heads": torch.tensor(1, dtype=torch.int16),
        "decoder/alignment_layer": torch.tensor(-1, dtype=torch.int16),
        "decoder/pre_norm": torch.tensor(1, dtype=torch.int8),
        "decoder/scale_embeddings": torch.tensor(0, dtype=torch.int8),
        "decoder/start_from_zero_embedding": torch.tensor(0, dtype=torch.int8),
        "encoder/conv1/weight": sd["encoder.conv1.weight"],
        "encoder/conv1/bias": sd["encoder.conv1.bias"],
        "encoder/conv2/weight": sd["encoder.conv2.weight"],
        "encoder/conv2/bias": sd["encoder.conv2.bias"],
        "encoder/position_encodings/encodings": sd["encoder.positional_embedding"],
        "decoder/embeddings/weight": sd["decoder.token_embedding.weight"],
        "decoder/position_encodings/encodings": sd["decoder.positional_embedding"],
    }

    def norm(src: str, dst: str) -> None:
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def linear(src: str, dst: str) -> None:
        out[f"{dst}/weight"], out[f"{dst}/bias"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def fused(src: str, parts: list[str], dst: str) -> None:
        out[f"{dst}/weight"] = torch.cat([sd[f"{src}.{p}.weight"] for p in parts])
        out[f"{dst}/bias"] = torch.cat(
            [torch.zeros_like(sd[f"{src}.value.bias"]) if p == "key" else sd[f"{src}.{p}.bias"] for p in parts]
        )

    norm("encoder.ln_post", "encoder/layer_norm")
    norm("decoder.ln", "decoder/layer_norm")
    for side, n_layers in (("encoder", d.n_audio_layer), ("decoder", d.n_text_layer)):
        for i in range(n_layers):
            src, dst = f"{side}.blocks.{i}", f"{side}/layer_{i}"
            norm(f"{src}.attn_ln", f"{dst}/self_attention/layer_norm")
            fused(f"{src}.attn", ["query", "key", "value"], f"{dst}/self_attention/linear_0")
            linear(f"{src}.attn.out", f"{dst}/self_attention/linear_1")
            if side == "decoder":
                norm(f"{src}.cross_attn_ln", f"{dst}/attention/layer_norm")
                linear(f"{src}.cross_attn.query", f"{dst}/attention/linear_0")
                fused(f"{src}.cross_attn", ["key", "value"], f"{dst}/attention/linear_1")
                linear(f"{src}.cross_attn.out", f"{dst}/attention/linear_2")
            norm(f"{src}.mlp_ln", f"{dst}/ffn/layer_norm")
            linear(f"{src}.mlp.0", f"{dst}/ffn/linear_0")
            linear(f"{src}.mlp.2", f"{dst}/ffn/linear_1")
    return {k: (t.to(dtype) if t.is_floating_point() else t).contiguous() for k, t in out.items()}


def _atomic_write(path: Path, chunks: Iterator[bytes] | bytes) -> None:
    with replacing(path) as temp, open(temp, "wb") as f:
        for chunk in [chunks] if isinstance(chunks, bytes) else chunks:
            f.write(chunk)


def _quantized_int8(variables: dict[str, Tensor]) -> dict[str, Tensor]:
    """CTranslate2's int8 scheme: each row of a projection or embedding matrix becomes round(w · 127 / max|row|),
    with that factor stored as ``<name>_scale``; everything else (norms, biases, convolutions, positions) stays
    float16. The inverse is :func:`_dequantized`."""
    out: dict[str, Tensor] = {}
    for name, t in variables.items():
        if name.endswith("/weight") and t.dim() == 2:
            scale = 127.0 / t.float().abs().amax(dim=1).clamp_min(1e-12)
            out[name] = torch.round(t.float() * scale[:, None]).clamp(-127, 127).to(torch.int8)
            out[name + "_scale"] = scale
        else:
            out[name] = t.to(torch.float16) if t.is_floating_point() else t
    return out


def _config(model: Whisper, decoding: dict[str, list[int]]) -> dict:
    """config.json: the decoding keys (the source folder's own when the model was read from CTranslate2, which
    win over the computed ones), the model's alignment heads, its time shift and its boundary refinement."""
    config: dict = dict(decoding)
    info = model.info
    if info.format == "ctranslate2" and info.path:
        source = Path(info.path)
        config.update(read_config(source if source.is_dir() else source.parent))
    config["alignment_heads"] = [list(pair) for pair in model.alignment_head_pairs()]
    config.pop("alignment_time_shift", None)
    if model.alignment_time_shift:
        config["alignment_time_shift"] = model.alignment_time_shift
    config.pop("boundary_refiner", None)
    if model.boundary_refiner is not None:
        config["boundary_refiner"] = model.boundary_refiner.to_dict()
    return config


def write(model: Whisper, path: str | os.PathLike[str], dtype: torch.dtype = torch.float16) -> None:
    """Write ``model`` as a CTranslate2 folder that CTranslate2 and faster-whisper open, with our heads.

    Files: model.bin; config.json (the model's alignment heads, which faster-whisper's word timestamps then use,
    and the token ids its decoding reads: see :mod:`.ctranslate2_files`); vocabulary.txt; tokenizer.json (the
    model's own, else the bundled one); preprocessor_config.json. ``dtype`` is float16 (as the official
    conversions), bfloat16, float32, or int8: per-row quantized projections and embeddings (a quarter of
    float32's size; what faster-whisper's ``int8`` loads fastest).
    """
    from .ctranslate2_files import companion_files

    if dtype not in (torch.float16, torch.float32, torch.bfloat16, torch.int8):
        raise ValueError(f"CTranslate2 weights are written as float16, bfloat16, float32 or int8, not {dtype}")
    folder = Path(path)
    decoding, files = companion_files(model, folder)
    if dtype == torch.int8:
        variables = _quantized_int8(_variables_of(model, torch.float32))
    else:
        variables = _variables_of(model, dtype)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(
        folder / "model.bin",
        iter_model_bin(variables, {"decoder/projection/weight": "decoder/embeddings/weight"}),
    )
    config = _config(model, decoding)
    _atomic_write(folder / "config.json", (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    for name, content in files.items():
        target = folder / name
        if isinstance(content, Path):
            if target.exists() and target.samefile(content):
                continue
            content = content.read_bytes()
        _atomic_write(target, content)


__all__ = ["read", "write", "read_variables", "to_state_dict", "weight_files", "RawModel"]
