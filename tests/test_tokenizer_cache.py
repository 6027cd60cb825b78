"""The tokenizer's built spec is cached on disk (a cold-start cost, issue #15) without ever changing a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from whisper_align.checkpoints.tokenizers import bundled_tokenizer_file
from whisper_align.frontend import tokenizer as T
from whisper_align.frontend.tokenizer import Tokenizer

TEXT = " Hello, world! Don't split 'test' oddly: naïve façade, 1234 ... ok?"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WHISPER_ALIGN_CACHE", str(tmp_path / "cache"))
    T._load_vocabulary.cache_clear()
    yield tmp_path / "cache" / "tokenizers"
    T._load_vocabulary.cache_clear()


def load(multilingual: bool) -> Tokenizer:
    T._load_vocabulary.cache_clear()
    return Tokenizer.from_file(bundled_tokenizer_file(multilingual), multilingual=multilingual)


@pytest.mark.parametrize("multilingual", [False, True])
def test_a_cached_spec_gives_the_very_same_tokens(cache: Path, multilingual: bool, monkeypatch) -> None:
    first = load(multilingual)
    files = list(cache.glob("*.json"))
    assert len(files) == 1
    built = []
    monkeypatch.setattr(T, "_build_spec", lambda *a: built.append(1) or pytest.fail("rebuilt despite the cache"))
    second = load(multilingual)
    assert not built
    assert second.encode(TEXT) == first.encode(TEXT)
    assert second.decode(first.encode(TEXT)) == TEXT
    assert second._vocabulary.token_bytes == first._vocabulary.token_bytes


def test_a_damaged_cache_entry_is_rebuilt(cache: Path) -> None:
    expected = load(False).encode(TEXT)
    (entry,) = cache.glob("*.json")
    for damage in ('{"spec": "{}", "token_bytes": ["00"]}', "not json", '{"spec": 3}'):
        entry.write_text(damage)
        assert load(False).encode(TEXT) == expected
        assert entry.read_text() != damage  # written again, whole


def test_an_unwritable_cache_only_costs_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("WHISPER_ALIGN_CACHE", str(blocker))
    tokens = load(False).encode(TEXT)
    monkeypatch.setenv("WHISPER_ALIGN_CACHE", str(tmp_path / "writable"))
    assert load(False).encode(TEXT) == tokens
