"""The tokenizer over tokenizer.json, checked id for id against openai-whisper's tiktoken tokenizer."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

import support
from whisper_align.checkpoints import tokenizers
from whisper_align.checkpoints.tokenizers import bundled_tokenizer_file, get_tokenizer
from whisper_align.errors import ModelLoadError, TranscriptError
from whisper_align.frontend import tokenizer as T
from whisper_align.frontend.tokenizer import Tokenizer
from whisper_align.model.whisper import ModelDimensions, Whisper

whisper_tokenizer = pytest.importorskip("whisper.tokenizer")

KINDS = [(False, 99), (True, 99), (True, 100)]  # English-only, multilingual, large-v3's 100 languages
EVAL = support.EVAL


def bundled(multilingual: bool) -> Path:
    path = bundled_tokenizer_file(multilingual)
    if path is None:
        pytest.skip("the bundled weight packages (whisper-align[bundled]) are not installed")
    return path


def ours(multilingual: bool, num_languages: int = 99, **kwargs) -> Tokenizer:
    return Tokenizer.from_file(bundled(multilingual), multilingual=multilingual, num_languages=num_languages, **kwargs)


def reference(multilingual: bool, num_languages: int = 99, **kwargs):
    return whisper_tokenizer.get_tokenizer(multilingual, num_languages=num_languages, **kwargs)


# Random text: words with punctuation and contractions, and runs of characters from many scripts.
WORDS = (
    "the quick brown fox jumps over lazy dog don't it's we'll can't Hello World Mr. Dr. e.g. 3.14 1,000 $5 50% "
    "rock'n'roll co-operate naïve café Zürich O'Brien (aside) [music] U.S.A. #1 re-enter"
).split()
CHARS = (
    list(string.ascii_letters * 3 + string.digits + string.punctuation + "      \n\t")
    + list("éèüößñçàÆøå—–“”‘’…«»¿¡")
    + list("你好世界我们中文日本語こんにちはカタカナ한국어ภาษาไทยພາສາລາວမြန်မာ")
    + ["😀", "👍🏽", "🎵", "♪", "♫", "\u200b", "e\u0301"]
)


def random_sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 14)):
            if rng.random() < 0.5:
                parts.append(rng.choice(WORDS) + rng.choice(["", "", ",", ".", "!", "?", "...", " -", "'", '"']))
            else:
                parts.append("".join(rng.choice(CHARS) for _ in range(rng.randint(1, 8))))
        sentence = ("" if rng.random() < 0.2 else " ").join(parts)
        sentences.append((" " if rng.random() < 0.7 else "") + sentence)
    return sentences


def eval_texts() -> list[str]:
    return [json.loads(line)["text"] for path in sorted(EVAL.glob("*/manifest.jsonl")) for line in open(path)]


# ---- special tokens ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("multilingual, num_languages", KINDS)
def test_special_tokens_match_openai(multilingual, num_languages):
    mine, theirs = ours(multilingual, num_languages), reference(multilingual, num_languages)
    for name in ["eot", "sot", "sot_prev", "sot_lm", "no_speech", "no_timestamps", "timestamp_begin",
                 "transcribe", "translate", "sot_sequence", "sot_sequence_including_notimestamps"]:  # fmt: skip
        assert getattr(mine, name) == getattr(theirs, name), name
    assert mine.special_tokens == theirs.special_tokens  # every name, languages and timestamps included
    # openai-whisper's order comes from a set; ours is the id order
    assert mine.all_language_tokens == tuple(sorted(theirs.all_language_tokens))
    assert set(mine.all_language_codes) == set(theirs.all_language_codes)
    assert mine.all_language_codes == tuple(T.LANGUAGES)[:num_languages]
    for code in ["en", "de", "ja", "su"] + (["yue"] if num_languages == 100 else []):
        assert mine.language_token(code) == theirs.to_language_token(code)
    assert mine.non_speech_tokens == theirs.non_speech_tokens
    assert mine.n_vocab == 51864 + int(multilingual) + (num_languages - 99)


@pytest.mark.parametrize("language, task", [("en", "transcribe"), ("de", "translate"), ("Japanese", None),
                                            (None, "translate"), ("castilian", "transcribe")])  # fmt: skip
def test_sot_sequence_matches_openai(language, task):
    mine = ours(True, language=language, task=task)
    theirs = reference(True, language=language, task=task)
    assert mine.sot_sequence == theirs.sot_sequence
    assert mine.language == theirs.language and mine.task == theirs.task


def test_english_only_has_no_language_or_task():
    tok = ours(False, language="english", task="transcribe")
    assert tok.language is None and tok.task is None and tok.sot_sequence == (50257,)
    with pytest.raises(TranscriptError, match="English-only"):
        ours(False, language="de")
    with pytest.raises(TranscriptError, match="cannot 'translate'"):
        ours(False, task="translate")


def test_language_errors():
    with pytest.raises(TranscriptError, match="unknown language"):
        ours(True, language="klingon")
    with pytest.raises(TranscriptError, match="99 languages"):
        ours(True, language="yue")  # only large-v3's vocabulary has Cantonese
    assert ours(True, 100, language="cantonese").language_token() == 50358
    with pytest.raises(TranscriptError, match="unknown task"):
        ours(True, task="summarize")


# ---- BPE ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("multilingual", [False, True])
def test_every_token_has_tiktokens_bytes(multilingual):
    mine = ours(multilingual)
    encoding = reference(multilingual).encoding
    table = mine._vocabulary.token_bytes
    assert len(table) == mine.eot
    assert all(table[i] == encoding.decode_single_token_bytes(i) for i in range(mine.eot))


@pytest.mark.parametrize("multilingual", [False, True])
def test_encode_matches_tiktoken(multilingual):
    mine, theirs = ours(multilingual), reference(multilingual)
    texts = random_sentences(400, seed=int(multilingual)) + eval_texts()
    texts += [" test", "<|endoftext|> <|en|> <|0.00|>", "", " ", "  \n\n\t x", "a" * 300]
    for text in texts:
        ids = mine.encode(text)
        assert ids == theirs.encode(text, disallowed_special=()), text
        assert mine.decode(ids) == text


def test_multilingual_merges_are_repaired():
    # the bundled multilingual tokenizer.json lacks the merge "Ġ t": read naively, " test" becomes " " + "test"
    assert ours(True).encode(" test") == [1500]
    assert ours(True).encode(" the") == reference(True).encode(" the")


@pytest.mark.parametrize("multilingual", [False, True])
def test_decode(multilingual):
    mine, theirs = ours(multilingual), reference(multilingual)
    ids = [*mine.sot_sequence_including_notimestamps, mine.timestamp_begin, *mine.encode(" Hello, wörld!"),
           mine.timestamp_begin + 54, mine.eot]  # fmt: skip
    assert mine.decode(ids) == " Hello, wörld!"
    assert mine.decode_with_timestamps(ids) == theirs.decode_with_timestamps(ids)
    assert mine.decode_with_timestamps(ids).endswith("<|0.00|> Hello, wörld!<|1.08|><|endoftext|>")
    assert mine.decode(mine.encode(" 你好")[:1]) == theirs.decode(mine.encode(" 你好")[:1])  # U+FFFD, as tiktoken
    with pytest.raises(TranscriptError, match="outside this vocabulary"):
        mine.decode([mine.n_vocab])


def test_encode_errors():
    tok = ours(False)
    with pytest.raises(TranscriptError, match="surrogate"):
        tok.encode("bad \ud800 text")
    with pytest.raises(TranscriptError, match="must be a str"):
        tok.encode(b"bytes")  # type: ignore[arg-type]


# ---- words -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("multilingual, language", [(False, None), (True, "en"), (True, "zh"), (True, "ja"),
                                                    (True, "th"), (True, "de")])  # fmt: skip
def test_split_to_word_tokens_matches_openai(multilingual, language):
    mine, theirs = ours(multilingual, language=language), reference(multilingual, language=language)
    for text in random_sentences(150, seed=7):
        tokens = theirs.encode(text, disallowed_special=()) + [theirs.eot]  # as alignment splits them
        words, word_tokens = mine.split_to_word_tokens(tokens)
        assert (words, word_tokens) == theirs.split_to_word_tokens(tokens), text
        assert [t for group in word_tokens for t in group] == tokens


def test_split_examples():
    tok = ours(True, language="en")
    words, _ = tok.split_to_word_tokens(tok.encode(" Hello, world! It's naïve.") + [tok.eot])
    assert words == [" Hello", ",", " world", "!", " It's", " naïve", ".", "<|endoftext|>"]
    chinese = ours(True, language="zh")
    assert chinese.split_to_word_tokens(chinese.encode("你好世界"))[0] == ["你好", "世界"]  # whole tokens
    words, groups = chinese.split_to_word_tokens(chinese.encode("龘靐齉"))  # each character spans two tokens
    assert words == ["龘", "靐", "齉"] and [len(g) for g in groups] == [2, 2, 2]


@pytest.mark.parametrize("multilingual, language", [(False, None), (True, "zh")])
def test_split_on_arbitrary_tokens_keeps_every_token(multilingual, language):
    """Random ids (broken UTF-8 included): equal to openai-whisper wherever it works, and never losing a token."""
    mine, theirs = ours(multilingual, language=language), reference(multilingual, language=language)
    rng = random.Random(3)
    compared = 0
    for _ in range(600):
        tokens = [rng.choice([rng.randrange(128, 256), rng.randrange(mine.eot), rng.randrange(mine.n_vocab)])
                  for _ in range(rng.randint(1, 16))]  # fmt: skip
        words, word_tokens = mine.split_to_word_tokens(tokens)
        assert [t for group in word_tokens for t in group] == tokens
        assert len(words) == len(word_tokens)
        try:
            expected = theirs.split_to_word_tokens(tokens)
        except IndexError:  # openai-whisper fails on some invalid UTF-8
            continue
        if sum(map(len, expected[1])) == len(tokens):  # ... and drops trailing tokens on some
            assert (words, word_tokens) == expected
            compared += 1
    assert compared > 400


# ---- get_tokenizer -----------------------------------------------------------------------------------------------


def tiny_model(n_vocab: int) -> Whisper:
    dims = ModelDimensions(n_mels=80, n_audio_ctx=8, n_audio_state=8, n_audio_head=2, n_audio_layer=1,
                           n_vocab=n_vocab, n_text_ctx=8, n_text_state=8, n_text_head=2, n_text_layer=2)  # fmt: skip
    return Whisper(dims)


@pytest.mark.parametrize("n_vocab, multilingual, num_languages", [(51864, False, 99), (51865, True, 99),
                                                                  (51866, True, 100)])  # fmt: skip
def test_get_tokenizer_follows_the_model(n_vocab, multilingual, num_languages):
    bundled(multilingual)
    tok = get_tokenizer(tiny_model(n_vocab), language="de" if multilingual else None)
    assert (tok.multilingual, tok.num_languages, tok.n_vocab) == (multilingual, num_languages, n_vocab)
    assert tok.sot_sequence == reference(multilingual, num_languages, language="de").sot_sequence


def test_get_tokenizer_uses_the_models_own_file_and_checks_it(tmp_path):
    model = tiny_model(51865)
    model.info.tokenizer_file = str(bundled(False))  # an English vocabulary for a multilingual model
    with pytest.raises(ModelLoadError, match="English-only vocabulary"):
        get_tokenizer(model)
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{not json")
    model.info.tokenizer_file = str(broken)
    with pytest.raises(ModelLoadError, match="not a BPE tokenizer.json"):
        get_tokenizer(model)
    model.info.tokenizer_file = str(tmp_path / "missing.json")
    with pytest.raises(ModelLoadError, match="does not exist"):
        get_tokenizer(model)


def test_get_tokenizer_without_any_file(monkeypatch):
    monkeypatch.setattr(tokenizers, "bundled_tokenizer_file", lambda multilingual: None)
    with pytest.raises(ModelLoadError, match=r"whisper-align\[bundled\]"):
        get_tokenizer(tiny_model(51864))
