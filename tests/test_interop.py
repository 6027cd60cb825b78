"""Checkpoints we write, opened by the real tools: faster-whisper (CTranslate2 folders) and openai-whisper (.pt).

Each carries a head set that is neither tiny.en's official one nor the last-half default, so a tool that ignored
our heads and fell back to its own would give different word times. The word times of both tools are compared
with each other on the same log-mel: the same heads give the same DTW path, other heads do not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import support
from whisper_align import load_model, save_model
from whisper_align.checkpoints import names
from whisper_align.checkpoints.ctranslate2_files import decoding_config, vocabulary_text
from whisper_align.checkpoints.tokenizers import get_tokenizer, vocabulary_tokens
from whisper_align.frontend.audio import load_audio
from whisper_align.model.whisper import Whisper

pytestmark = pytest.mark.slow

OUR_HEADS = [(1, 0), (1, 3), (2, 5), (3, 1)]  # tiny.en: neither official nor the default (layers 2-3, all heads)
TEXT = (support.SAMPLES / "demo.txt").read_text().strip()


@pytest.fixture(scope="module")
def model() -> Whisper:
    model = load_model("tiny.en")
    model.set_alignment_head_pairs(OUR_HEADS)
    return model


@pytest.fixture(scope="module")
def pt_file(model: Whisper, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pt") / "tiny.en.pt"
    save_model(model, path, format="openai")
    return path


@pytest.fixture(scope="module")
def ct2_folder(pt_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted from the .pt, which has no tokenizer or CTranslate2 config of its own to copy from."""
    model = load_model(pt_file)
    assert model.info.tokenizer_file is None and model.alignment_head_pairs() == OUR_HEADS
    folder = tmp_path_factory.mktemp("ct2") / "tiny.en-ct2"
    save_model(model, folder, format="ctranslate2", dtype=torch.float32)
    return folder


@pytest.fixture(scope="module")
def faster(ct2_folder: Path):
    faster_whisper = pytest.importorskip("faster_whisper")
    return faster_whisper.WhisperModel(str(ct2_folder), device="cpu", compute_type="float32", cpu_threads=2)


def openai_whisper(path: Path, apply_heads: bool):
    """openai-whisper's model from our .pt, with our heads applied by the one line the README gives, or not."""
    whisper = pytest.importorskip("whisper")
    model = whisper.load_model(str(path), device="cpu")
    if apply_heads:
        model.set_alignment_heads(torch.load(path)["alignment_heads"])
    return model


@pytest.fixture(scope="module")
def mel() -> tuple[torch.Tensor, int]:
    """openai-whisper's log-mel of the demo sample, padded to 30 s, and the number of frames of speech."""
    whisper = pytest.importorskip("whisper")
    audio = torch.from_numpy(load_audio(support.DEMO_WAV))
    return whisper.log_mel_spectrogram(whisper.pad_or_trim(audio)), len(audio) // 160


def openai_word_times(openai_model, mel: tuple[torch.Tensor, int]) -> list[tuple[str, float, float]]:
    import whisper

    tokenizer = whisper.tokenizer.get_tokenizer(multilingual=False)
    tokens = tokenizer.encode(" " + TEXT)
    words = whisper.timing.find_alignment(openai_model, tokenizer, tokens, mel[0], mel[1])
    return [(w.word, float(w.start), float(w.end)) for w in words]


def heads_of(openai_model) -> list[tuple[int, int]]:
    return [(int(l), int(h)) for l, h in torch.nonzero(openai_model.alignment_heads.to_dense()).tolist()]


# ---- the files beside model.bin ---------------------------------------------------------------------------------


def test_written_folder_has_what_ctranslate2_and_faster_whisper_read(model: Whisper, ct2_folder: Path) -> None:
    for name in ("model.bin", "config.json", "vocabulary.txt", "tokenizer.json", "preprocessor_config.json"):
        assert (ct2_folder / name).is_file(), name
    config = json.loads((ct2_folder / "config.json").read_text())
    assert config["alignment_heads"] == [list(pair) for pair in OUR_HEADS]
    assert {"lang_ids", "suppress_ids", "suppress_ids_begin"} <= set(config)
    preprocessor = json.loads((ct2_folder / "preprocessor_config.json").read_text())
    assert preprocessor["feature_size"] == 80 and preprocessor["chunk_length"] == 30
    assert len((ct2_folder / "vocabulary.txt").read_text(encoding="utf-8").splitlines()) == model.dims.n_vocab


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_vocabulary_and_token_ids_equal_ctranslate2s_own_conversion(name: str) -> None:
    """The bundled folders were made by CTranslate2's converter: what we compute must be what it wrote."""
    folders = names.bundled_folders(name)
    assert folders is not None, f"the bundled {name} is not installed (the `bundled` extra)"
    model = load_model(name)
    model.info.path = None  # computed from the tokenizer, not copied from the source folder's config
    official_vocabulary = (folders[0] / "vocabulary.txt").read_bytes()
    assert vocabulary_text(vocabulary_tokens(model)).rstrip(b"\n") == official_vocabulary.rstrip(b"\n")
    official = json.loads((folders[0] / "config.json").read_text())
    ours = decoding_config(get_tokenizer(model))
    assert ours["suppress_ids"] == official["suppress_ids"]
    assert ours["suppress_ids_begin"] == official["suppress_ids_begin"]
    if model.is_multilingual:  # the English-only conversion lists the multilingual ids (off by one), unused there
        assert ours["lang_ids"] == official["lang_ids"]


def test_model_without_a_whisper_vocabulary_is_saved_with_a_warning(tmp_path: Path) -> None:
    model = support.make_model()  # 60 tokens: no Whisper tokenizer fits
    with pytest.warns(UserWarning, match="faster-whisper cannot open it"):
        save_model(model, tmp_path / "ct2", format="ctranslate2")
    assert (tmp_path / "ct2" / "model.bin").is_file() and not (tmp_path / "ct2" / "vocabulary.txt").exists()
    assert load_model(tmp_path / "ct2").alignment_head_pairs() == model.alignment_head_pairs()


# ---- faster-whisper ---------------------------------------------------------------------------------------------


def test_faster_whisper_transcribes_our_folder_with_word_timestamps(faster) -> None:
    segments, info = faster.transcribe(str(support.DEMO_WAV), word_timestamps=True, beam_size=1)
    words = [word for segment in segments for word in segment.words]
    spoken = [w.word.strip(" ,.").lower() for w in words]
    assert spoken == [w.strip(",.").lower() for w in TEXT.split()]
    assert all(0 <= w.start <= w.end <= info.duration + 0.02 for w in words)
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))


def test_faster_whisper_aligns_with_our_heads(faster, pt_file: Path, mel) -> None:
    """faster-whisper's word times on our folder equal openai-whisper's with our heads applied, on the same
    log-mel, and differ from openai-whisper's with its default heads: it uses the heads we wrote."""
    import whisper
    from faster_whisper.tokenizer import Tokenizer

    tokenizer = Tokenizer(faster.hf_tokenizer, multilingual=False)
    tokens = whisper.tokenizer.get_tokenizer(multilingual=False).encode(" " + TEXT)
    encoded = faster.encode(mel[0].numpy())
    found = faster.find_alignment(tokenizer, [tokens], encoded, mel[1])[0]
    theirs = [(w["word"], float(w["start"]), float(w["end"])) for w in found]
    expected = openai_word_times(openai_whisper(pt_file, apply_heads=True), mel)
    default = openai_word_times(openai_whisper(pt_file, apply_heads=False), mel)

    assert [w for w, _, _ in theirs] == [w for w, _, _ in expected]
    assert "".join(w for w, _, _ in theirs).strip() == TEXT  # every word, punctuation split off
    assert np.allclose([t[1:] for t in theirs], [t[1:] for t in expected], atol=0.021)
    assert max(abs(a - b) for x, y in zip(theirs, default) for a, b in zip(x[1:], y[1:])) > 0.05


# ---- openai-whisper ---------------------------------------------------------------------------------------------


def test_openai_whisper_applies_our_heads_in_one_line(pt_file: Path) -> None:
    fallback = openai_whisper(pt_file, apply_heads=False)
    assert heads_of(fallback) == [(layer, head) for layer in (2, 3) for head in range(6)]  # it ignores ours
    assert heads_of(openai_whisper(pt_file, apply_heads=True)) == OUR_HEADS
    assert isinstance(torch.load(pt_file)["alignment_heads"], bytes)  # what its set_alignment_heads takes
