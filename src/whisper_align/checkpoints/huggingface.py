"""Hugging Face Transformers Whisper folders: read them into our :class:`Whisper`, and write ours out as one.

A folder holds ``config.json`` (the dimensions), the weights (``model.safetensors``, or shards listed in
``model.safetensors.index.json``, or the older ``pytorch_model.bin`` / ``pytorch_model.bin.index.json``),
``generation_config.json`` (whose ``alignment_heads`` is ``[[layer, head], ...]``) and usually ``tokenizer.json``.

Transformers names the same tensors as openai-whisper differently (``model.encoder.layers.0.fc1.weight`` is
``encoder.blocks.0.mlp.0.weight``); :func:`hf_to_openai_name` and :func:`openai_to_hf_name` translate, both
built from one table so they cannot disagree. ``proj_out.weight`` is the token embedding again (Whisper ties
them) and is dropped on reading after checking that it really is tied.

safetensors cannot hold sparse tensors, so :func:`write` never saves the ``alignment_heads`` buffer in
``model.safetensors``: the heads go to ``generation_config.json`` as pairs, where Transformers keeps them too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ModelLoadError
from ..files import replacing
from ..heads import AlignmentHeadsError, pairs_to_mask, read_json_heads
from ..model.whisper import ModelDimensions, ModelInfo, Whisper, sinusoids
from .common import LoadedCheckpoint, allocate, skeleton

CONFIG = "config.json"
GENERATION_CONFIG = "generation_config.json"
TOKENIZER = "tokenizer.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"
PYTORCH_INDEX = "pytorch_model.bin.index.json"

# ---- names -------------------------------------------------------------------------------------------------

# Outside the layers: Transformers name (without the leading "model.") -> openai name.
_TOP_NAMES = {
    "encoder.conv1.weight": "encoder.conv1.weight",
    "encoder.conv1.bias": "encoder.conv1.bias",
    "encoder.conv2.weight": "encoder.conv2.weight",
    "encoder.conv2.bias": "encoder.conv2.bias",
    "encoder.embed_positions.weight": "encoder.positional_embedding",
    "encoder.layer_norm.weight": "encoder.ln_post.weight",
    "encoder.layer_norm.bias": "encoder.ln_post.bias",
    "decoder.embed_tokens.weight": "decoder.token_embedding.weight",
    "decoder.embed_positions.weight": "decoder.positional_embedding",
    "decoder.layer_norm.weight": "decoder.ln.weight",
    "decoder.layer_norm.bias": "decoder.ln.bias",
}
# Inside layer N (``{encoder,decoder}.layers.N.`` -> ``{encoder,decoder}.blocks.N.``), before ".weight"/".bias".
_LAYER_NAMES = {
    "self_attn.q_proj": "attn.query",
    "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "encoder_attn.q_proj": "cross_attn.query",
    "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value",
    "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}
_LAYER_NAMES_BACK = {openai: hf for hf, openai in _LAYER_NAMES.items()}
_TOP_NAMES_BACK = {openai: hf for hf, openai in _TOP_NAMES.items()}
_HF_LAYER = re.compile(r"^(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_OPENAI_LAYER = re.compile(r"^(encoder|decoder)\.blocks\.(\d+)\.(.+)\.(weight|bias)$")
_TIED_OUTPUT = "proj_out.weight"


def hf_to_openai_name(name: str) -> str | None:
    """openai-whisper's name for a Transformers tensor name (with or without ``model.``), None if unknown."""
    name = name.removeprefix("model.")
    if name in _TOP_NAMES:
        return _TOP_NAMES[name]
    match = _HF_LAYER.match(name)
    if match and match.group(3) in _LAYER_NAMES:
        part, index, module, kind = match.groups()
        return f"{part}.blocks.{index}.{_LAYER_NAMES[module]}.{kind}"
    return None


def openai_to_hf_name(name: str) -> str:
    """The Transformers name (``WhisperForConditionalGeneration``, so with ``model.``) of an openai tensor name."""
    if name in _TOP_NAMES_BACK:
        return "model." + _TOP_NAMES_BACK[name]
    match = _OPENAI_LAYER.match(name)
    if match and match.group(3) in _LAYER_NAMES_BACK:
        part, index, module, kind = match.groups()
        return f"model.{part}.layers.{index}.{_LAYER_NAMES_BACK[module]}.{kind}"
    raise KeyError(f"no Transformers name for the Whisper tensor {name!r}")


def _few(names: Iterable[str], n: int = 5) -> str:
    names = sorted(names)
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


# ---- config <-> dimensions ---------------------------------------------------------------------------------

_DIMENSION_KEYS = {  # ModelDimensions field -> config.json key
    "n_mels": "num_mel_bins",
    "n_audio_ctx": "max_source_positions",
    "n_audio_state": "d_model",
    "n_audio_head": "encoder_attention_heads",
    "n_audio_layer": "encoder_layers",
    "n_vocab": "vocab_size",
    "n_text_ctx": "max_target_positions",
    "n_text_state": "d_model",
    "n_text_head": "decoder_attention_heads",
    "n_text_layer": "decoder_layers",
}


def dims_from_config(config: dict[str, Any], where: str = CONFIG) -> ModelDimensions:
    """The dimensions a Transformers Whisper ``config.json`` describes, refusing what our model cannot run."""
    model_type = config.get("model_type")
    if model_type is not None and model_type != "whisper":
        raise ModelLoadError(
            f"{where} says model_type {model_type!r}; only Hugging Face Whisper models ('whisper') load"
        )
    missing = sorted({key for key in _DIMENSION_KEYS.values() if key not in config})
    if missing:
        raise ModelLoadError(f"{where} lacks {', '.join(missing)}; it is not a Hugging Face Whisper config.json")
    values: dict[str, int] = {}
    for field, key in _DIMENSION_KEYS.items():
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ModelLoadError(f"{where}: {key} should be a positive integer, not {value!r}")
        values[field] = value
    d_model = values["n_audio_state"]
    # Our Whisper is exactly openai's architecture; refuse configs that describe a variant of it.
    for key in ("encoder_ffn_dim", "decoder_ffn_dim"):
        if config.get(key, 4 * d_model) != 4 * d_model:
            raise ModelLoadError(f"{where}: {key} is {config[key]}, but Whisper's MLP is 4 x d_model = {4 * d_model}")
    if config.get("activation_function", "gelu") != "gelu":
        raise ModelLoadError(f"{where}: activation_function {config['activation_function']!r} is not Whisper's 'gelu'")
    if config.get("scale_embedding", False):
        raise ModelLoadError(f"{where}: scale_embedding is true, which Whisper models never use")
    for field in ("n_audio_head", "n_text_head"):
        if d_model % values[field]:
            raise ModelLoadError(
                f"{where}: d_model {d_model} is not divisible by {_DIMENSION_KEYS[field]} {values[field]}"
            )
    return ModelDimensions(**values)


def _special_tokens(dims: ModelDimensions) -> dict[str, int] | None:
    """Ids of Whisper's special tokens, for a model with a real Whisper vocabulary (None for any other).

    The layout is the tokenizer's: end-of-text, start-of-transcript, one token per language, then translate,
    transcribe, start-of-LM, start-of-previous, no-speech, no-timestamps, timestamps.
    """
    if dims.n_vocab < 51864:
        return None
    multilingual = dims.n_vocab >= 51865
    num_languages = dims.n_vocab - 51765 - int(multilingual)
    eot = 50256 + int(multilingual)
    translate = eot + 2 + num_languages
    return {
        "eot": eot,
        "sot": eot + 1,
        "translate": translate,
        "transcribe": translate + 1,
        "sot_prev": translate + 3,
        "no_timestamps": translate + 5,
    }


def config_of(model: Whisper) -> dict[str, Any]:
    """The ``config.json`` Transformers needs to rebuild ``model`` as ``WhisperForConditionalGeneration``."""
    d = model.dims
    if d.n_audio_state != d.n_text_state:
        raise ModelLoadError(
            f"Transformers' Whisper has one d_model, but this model's encoder has width {d.n_audio_state} and its "
            f"decoder {d.n_text_state}; it cannot be written as a Hugging Face folder"
        )
    config: dict[str, Any] = {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "activation_function": "gelu",
        "d_model": d.n_audio_state,
        "encoder_layers": d.n_audio_layer,
        "encoder_attention_heads": d.n_audio_head,
        "encoder_ffn_dim": 4 * d.n_audio_state,
        "decoder_layers": d.n_text_layer,
        "decoder_attention_heads": d.n_text_head,
        "decoder_ffn_dim": 4 * d.n_text_state,
        "num_mel_bins": d.n_mels,
        "max_source_positions": d.n_audio_ctx,
        "max_target_positions": d.n_text_ctx,
        "vocab_size": d.n_vocab,
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "is_encoder_decoder": True,
        "torch_dtype": str(model.dtype).removeprefix("torch."),
    }
    tokens = _special_tokens(d)
    if tokens is not None:
        config.update(
            bos_token_id=tokens["eot"],
            eos_token_id=tokens["eot"],
            pad_token_id=tokens["eot"],
            decoder_start_token_id=tokens["sot"],
            begin_suppress_tokens=[220, tokens["eot"]],
        )
    else:  # an unusual vocabulary: say so, rather than let Transformers assume ids past its end
        config.update(bos_token_id=None, eos_token_id=None, pad_token_id=None, begin_suppress_tokens=None)
    return config


def generation_config_of(model: Whisper) -> dict[str, Any]:
    """``generation_config.json``: the alignment heads as pairs, plus the special token ids Transformers uses."""
    d = model.dims
    config: dict[str, Any] = {
        "alignment_heads": [list(pair) for pair in model.alignment_head_pairs()],
        "max_length": d.n_text_ctx,
    }
    if model.alignment_time_shift:
        config["alignment_time_shift"] = float(model.alignment_time_shift)
    if model.boundary_refiner is not None:
        config["boundary_refiner"] = model.boundary_refiner.to_dict()
    tokens = _special_tokens(d)
    if tokens is not None:
        config.update(
            bos_token_id=tokens["eot"],
            eos_token_id=tokens["eot"],
            pad_token_id=tokens["eot"],
            decoder_start_token_id=tokens["sot"],
            begin_suppress_tokens=[220, tokens["eot"]],
            no_timestamps_token_id=tokens["no_timestamps"],
            prev_sot_token_id=tokens["sot_prev"],
            is_multilingual=model.is_multilingual,
        )
        if model.is_multilingual:
            config["task_to_id"] = {"transcribe": tokens["transcribe"], "translate": tokens["translate"]}
    return config


# ---- reading -----------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}); fix or replace it") from exc
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path} holds a JSON {type(value).__name__}, not an object")
    return value


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own SafetensorError, and OSError for I/O
        raise ModelLoadError(f"cannot read {path}: {exc}; the file is damaged or not safetensors") from exc


def _load_pytorch(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights_only refusals all surface as different types
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelLoadError(f"{path} does not hold a plain state dict of tensors")
    return state


def _load_sharded(index_path: Path, load: Callable[[Path], dict[str, Tensor]]) -> dict[str, Tensor]:
    weight_map = _read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelLoadError(f"{index_path} has no 'weight_map' naming the shard files")
    state: dict[str, Tensor] = {}
    for shard in dict.fromkeys(weight_map.values()):  # unique, in order
        shard_path = index_path.parent / str(shard)
        if not shard_path.is_file():
            raise ModelLoadError(f"{index_path} lists the shard {shard}, which is not in {index_path.parent}")
        state.update(load(shard_path))
    return state


def read_weights(folder: Path) -> dict[str, Tensor]:
    """The folder's tensors under their Transformers names: safetensors first, then PyTorch pickles."""
    if (folder / SAFETENSORS).is_file():
        return _load_safetensors(folder / SAFETENSORS)
    if (folder / SAFETENSORS_INDEX).is_file():
        return _load_sharded(folder / SAFETENSORS_INDEX, _load_safetensors)
    if (folder / PYTORCH_BIN).is_file():
        return _load_pytorch(folder / PYTORCH_BIN)
    if (folder / PYTORCH_INDEX).is_file():
        return _load_sharded(folder / PYTORCH_INDEX, _load_pytorch)
    other = [name for name in ("tf_model.h5", "flax_model.msgpack") if (folder / name).is_file()]
    hint = f" (it has {', '.join(other)}: only PyTorch/safetensors weights are supported)" if other else ""
    raise ModelLoadError(
        f"{folder} has no weights{hint}: expected {SAFETENSORS}, {SAFETENSORS_INDEX}, {PYTORCH_BIN} or {PYTORCH_INDEX}"
    )


def to_state_dict(hf_state: dict[str, Tensor], dims: ModelDimensions, where: str) -> dict[str, Tensor]:
    """Rename Transformers tensors to openai's, checking that the set is exactly a Whisper model's."""
    state: dict[str, Tensor] = {}
    unknown: list[str] = []
    for name, tensor in hf_state.items():
        if name.removeprefix("model.") == _TIED_OUTPUT:
            continue  # checked against the token embedding below
        openai_name = hf_to_openai_name(name)
        if openai_name is None:
            unknown.append(name)
        else:
            state[openai_name] = tensor
    if unknown:
        raise ModelLoadError(
            f"{where} holds tensors a Whisper speech-to-text model does not have: {_few(unknown)}; "
            "is it another architecture (e.g. WhisperForAudioClassification)?"
        )
    # The encoder's position embedding is fixed sinusoids; supply it if a checkpoint left it out.
    state.setdefault("encoder.positional_embedding", sinusoids(dims.n_audio_ctx, dims.n_audio_state))

    output = hf_state.get(_TIED_OUTPUT, hf_state.get("model." + _TIED_OUTPUT))
    embedding = state.get("decoder.token_embedding.weight")
    if output is not None and embedding is not None and not torch.equal(output, embedding):
        raise ModelLoadError(
            f"{where}: proj_out.weight differs from the token embedding; this Whisper model has an untied output "
            "projection, which whisper-align's model (like openai's) does not support"
        )
    expected = set(_state_keys(dims))
    missing = expected - state.keys()
    if missing:
        raise ModelLoadError(
            f"{where} lacks tensors every Whisper model has: {_few(openai_to_hf_name(k) for k in missing)}; "
            "the checkpoint is incomplete or its config.json does not match it"
        )
    return state


def _state_keys(dims: ModelDimensions) -> list[str]:
    """Every openai tensor name of a model of ``dims`` (without the alignment_heads buffer)."""
    keys = list(_TOP_NAMES.values())
    for part, n_layer, cross in (("encoder", dims.n_audio_layer, False), ("decoder", dims.n_text_layer, True)):
        for index in range(n_layer):
            for hf_module, module in _LAYER_NAMES.items():
                if hf_module.startswith("encoder_attn") and not cross:
                    continue
                for kind in ("weight", "bias"):
                    if module.endswith(".key") and kind == "bias":
                        continue  # Whisper's key projections have no bias
                    keys.append(f"{part}.blocks.{index}.{module}.{kind}")
    return keys


def read_heads(folder: Path, config: dict[str, Any], dims: ModelDimensions) -> list[tuple[int, int]] | None:
    """Heads from ``generation_config.json``, else from ``config.json``; None if neither names any.

    Heads that do not fit the decoder are an :class:`AlignmentHeadsError` naming the file.
    """
    sources: list[tuple[str, Any]] = []
    if (folder / GENERATION_CONFIG).is_file():
        sources.append((str(folder / GENERATION_CONFIG), _read_json(folder / GENERATION_CONFIG)))
    sources.append((str(folder / CONFIG), config))
    for where, source in sources:
        try:
            pairs = read_json_heads(source)
            if pairs is None:
                continue
            pairs_to_mask(pairs, dims.n_text_layer, dims.n_text_head)  # validates the pairs against the decoder
        except AlignmentHeadsError as exc:
            raise AlignmentHeadsError(f"{where}: {exc}") from None
        return [(int(layer), int(head)) for layer, head in pairs]
    return None


def read(folder: str | os.PathLike[str], dtype: torch.dtype = torch.float32) -> LoadedCheckpoint:
    """Load a Hugging Face Transformers Whisper folder into a :class:`Whisper` of ``dtype``.

    The model keeps its default heads; the checkpoint's own (``generation_config.json``'s ``alignment_heads``,
    else ``config.json``'s) are returned in :attr:`LoadedCheckpoint.heads` for ``load_model`` to apply.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder; a Hugging Face Whisper model is a folder with {CONFIG}")
    if not (folder / CONFIG).is_file():
        raise ModelLoadError(f"{folder} has no {CONFIG}; it is not a Hugging Face Whisper model folder")
    config = _read_json(folder / CONFIG)
    dims = dims_from_config(config, str(folder / CONFIG))
    state = to_state_dict(read_weights(folder), dims, str(folder))

    model = allocate(skeleton(dims), dtype)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shapes that do not match config.json
        raise ModelLoadError(f"{folder}: the weights do not match its {CONFIG}: {exc}") from exc
    del state

    heads = read_heads(folder, config, dims)
    tokenizer = folder / TOKENIZER
    tokenizer_file = tokenizer if tokenizer.is_file() else None
    model.info = ModelInfo(
        path=str(folder),
        format="huggingface",
        tokenizer_file=str(tokenizer_file) if tokenizer_file else None,
    )
    generation = _read_json(folder / GENERATION_CONFIG) if (folder / GENERATION_CONFIG).is_file() else {}
    shift = generation.get("alignment_time_shift")
    return LoadedCheckpoint(
        model=model,
        heads=heads,
        tokenizer_file=tokenizer_file,
        time_shift=float(shift) if shift is not None else None,
        refiner=generation.get("boundary_refiner"),
    )


def _atomic_write(target: Path, write: Callable[[Path], object]) -> None:
    """Run ``write`` on a temporary file beside ``target``, then rename it over ``target``."""
    with replacing(target) as temp:
        write(temp)


def _write_json(target: Path, value: dict[str, Any]) -> None:
    _atomic_write(target, lambda temp: temp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8"))


def write(model: Whisper, folder: str | os.PathLike[str]) -> None:
    """Write ``model`` as a Transformers folder that ``WhisperForConditionalGeneration.from_pretrained`` loads.

    Files: ``config.json``, ``model.safetensors`` (weights in the model's dtype, without ``proj_out.weight``,
    which Transformers ties to the embedding, and without the sparse heads buffer), ``generation_config.json``
    (heads as pairs), and ``tokenizer.json`` copied from ``model.info.tokenizer_file`` when that is set.
    Each file is written to a temporary name and renamed into place.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = config_of(model)  # refuses models Transformers cannot describe before anything is written

    tokenizer_source = Path(model.info.tokenizer_file) if model.info.tokenizer_file else None
    if tokenizer_source is not None and not tokenizer_source.is_file():
        raise ModelLoadError(
            f"the model's tokenizer file {tokenizer_source} no longer exists; restore it or set "
            "model.info.tokenizer_file = None to write the folder without tokenizer.json"
        )

    tensors = {
        openai_to_hf_name(name): tensor.detach().to("cpu").contiguous()
        for name, tensor in model.state_dict().items()
        if name != "alignment_heads"
    }
    _atomic_write(folder / SAFETENSORS, lambda temp: save_file(tensors, str(temp), metadata={"format": "pt"}))
    _write_json(folder / CONFIG, config)
    _write_json(folder / GENERATION_CONFIG, generation_config_of(model))
    if tokenizer_source is not None:
        target = folder / TOKENIZER
        if not (target.exists() and target.resolve() == tokenizer_source.resolve()):
            _atomic_write(target, lambda temp: shutil.copyfile(tokenizer_source, temp))


__all__ = [
    "read",
    "write",
    "read_weights",
    "to_state_dict",
    "dims_from_config",
    "config_of",
    "generation_config_of",
    "hf_to_openai_name",
    "openai_to_hf_name",
]
