"""Whisper's tokenizer, read from a ``tokenizer.json`` with the ``tokenizers`` library (no tiktoken needed).

Whisper's text vocabulary is byte-level BPE: GPT-2's for English-only models, a larger one for multilingual
models. After the BPE tokens come the special tokens, always in the same order, so their ids follow from the
end of the BPE vocabulary by arithmetic (this is how openai-whisper lays them out)::

    <|endoftext|> (eot)  <|startoftranscript|> (sot)  <|en|> <|zh|> ... (num_languages language tokens)
    <|translate|> <|transcribe|> <|startoflm|> <|startofprev|> <|nospeech|> <|notimestamps|>
    <|0.00|> <|0.02|> ... <|30.00|>  (1501 timestamp tokens)

eot is 50256 for English-only vocabularies and 50257 for multilingual ones; large-v3 has 100 languages
(adding Cantonese), older models 99. Only the BPE part is taken from ``tokenizer.json``; the special tokens there
(whose names vary between converters) are ignored.

The BPE merge list is rebuilt from the vocabulary's ranks rather than taken from the file: tiktoken, which
openai-whisper uses, may merge any two adjacent pieces whose concatenation is a token, lowest rank first, and
some converted ``tokenizer.json`` files lack merges (the multilingual one bundled with whisper-align misses its
first, ``Ġ t``, and so splits " test" into " " + "test"). With every split of every token listed as a merge,
ranked by the token's rank, ``tokenizers`` produces exactly tiktoken's ids.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterable
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import tokenizers

from ..errors import ModelLoadError, TranscriptError
from ..files import replacing, user_cache_dir

if TYPE_CHECKING:
    pass

# Language codes in the order of their tokens (the data is openai-whisper's).
LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek",
    "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk", "mt": "maltese",
    "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog", "mg": "malagasy",
    "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa", "ba": "bashkir",
    "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}  # fmt: skip

# Language name (and a few aliases) -> code.
TO_LANGUAGE_CODE: dict[str, str] = {
    **{name: code for code, name in LANGUAGES.items()},
    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb", "pushto": "ps",
    "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si", "castilian": "es", "mandarin": "zh",
}  # fmt: skip

# Languages written without spaces between words: their "words" are single characters (see split_to_word_tokens).
UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})

N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|>
TIMESTAMP_STEP = 0.02  # seconds per timestamp token


# ---- the BPE vocabulary ------------------------------------------------------------------------------------------


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE writes each byte as a printable character; map those characters back to bytes.

    Printable Latin-1 bytes stand for themselves; the others (controls, space, ...) are shifted to U+0100 onwards.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    char_to_byte = {chr(b): b for b in printable}
    shifted = 0
    for b in range(256):
        if b not in char_to_byte.values():
            char_to_byte[chr(256 + shifted)] = b
            shifted += 1
    return char_to_byte


class _Vocabulary:
    """The BPE part of a tokenizer.json: an encoder (``tokenizers``) and each token's bytes (for decoding).

    Building the encoder's spec (every split of every token) takes about a second of Python, so the result is
    kept in the user cache (``$WHISPER_ALIGN_CACHE/tokenizers``), keyed by the file's bytes; a missing,
    damaged or unwritable cache only costs that second again.
    """

    def __init__(self, path: Path, eot: int):
        try:
            raw = path.read_bytes()
        except FileNotFoundError as error:
            raise ModelLoadError(f"tokenizer file '{path}' does not exist") from error
        except OSError as error:
            raise ModelLoadError(f"cannot read tokenizer file '{path}': {error.strerror or error}") from error
        key = hashlib.sha256(raw + f"|eot={eot}|v{_CACHE_VERSION}".encode()).hexdigest()
        built = _read_cached(key, eot)
        if built is None:
            built = _build_spec(raw, path, eot)
            _write_cached(key, built)
        spec, self.token_bytes = built
        try:
            self.bpe = tokenizers.Tokenizer.from_str(spec)
        except Exception as error:  # tokenizers raises a bare Exception for bad specs
            raise ModelLoadError(f"the tokenizers library cannot read '{path}': {error}") from error


_CACHE_VERSION = 1


def _cache_file(key: str) -> Path:
    return user_cache_dir() / "tokenizers" / f"{key}.json"


def _read_cached(key: str, eot: int) -> tuple[str, list[bytes]] | None:
    try:
        data = json.loads(_cache_file(key).read_text(encoding="utf-8"))
        spec, token_bytes = data["spec"], [bytes.fromhex(h) for h in data["token_bytes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (spec, token_bytes) if isinstance(spec, str) and len(token_bytes) == eot else None


def _write_cached(key: str, built: tuple[str, list[bytes]]) -> None:
    spec, token_bytes = built
    target = _cache_file(key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with replacing(target) as temp:
            temp.write_text(json.dumps({"spec": spec, "token_bytes": [b.hex() for b in token_bytes]}), "utf-8")
    except OSError:
        pass  # no cache this time: the next load builds the spec again


def _build_spec(raw: bytes, path: Path, eot: int) -> tuple[str, list[bytes]]:
    """The ``tokenizers`` spec (JSON text) of the BPE part of tokenizer.json ``raw``, and each token's bytes."""
    try:
        spec = json.loads(raw.decode("utf-8"))
        vocab: dict[str, int] = spec["model"]["vocab"]
    except (ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(
            f"'{path}' is not a BPE tokenizer.json ({error.__class__.__name__}: {error}); "
            "give the tokenizer.json that came with the model"
        ) from error
    file_eot = vocab.get("<|endoftext|>", next(
        (t.get("id") for t in spec.get("added_tokens", []) if t.get("content") == "<|endoftext|>"), None
    ))  # fmt: skip
    if file_eot is not None and file_eot != eot:
        kinds = {50256: "English-only", 50257: "multilingual"}
        raise ModelLoadError(
            f"'{path}' is a {kinds.get(file_eot, 'different')} vocabulary (<|endoftext|> = {file_eot}), but the "
            f"model needs a {kinds.get(eot, 'different')} one (<|endoftext|> = {eot}); "
            "use the model's own tokenizer"
        )
    alphabet = _byte_level_alphabet()
    bpe_vocab = {piece: i for piece, i in vocab.items() if 0 <= i < eot and piece}
    token_bytes: list[bytes | None] = [None] * eot
    for piece, i in bpe_vocab.items():
        try:
            token_bytes[i] = bytes(alphabet[ch] for ch in piece)
        except KeyError as error:
            raise ModelLoadError(f"'{path}' is not a byte-level BPE vocabulary (token {piece!r})") from error
    missing = [i for i in range(256) if token_bytes[i] is None]
    if len(bpe_vocab) < 256 or missing:
        raise ModelLoadError(f"'{path}' lacks byte tokens {missing[:5]}...; it is not a Whisper vocabulary")

    # Every split of a token into two tokens is a merge, ranked by the token's rank (tiktoken's rule).
    merges = []
    for piece, rank in bpe_vocab.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in bpe_vocab and right in bpe_vocab:
                merges.append((rank, bpe_vocab[left], left, right))
    merges.sort()
    spec["model"]["vocab"] = bpe_vocab
    spec["model"]["merges"] = [[left, right] for _, _, left, right in merges]
    spec["added_tokens"] = []  # special tokens are never parsed out of text: plain BPE only
    spec["post_processor"] = None
    spec["normalizer"] = None
    spec["truncation"] = spec["padding"] = None
    return json.dumps(spec), [b if b is not None else b"" for b in token_bytes]


@lru_cache(maxsize=8)
def _load_vocabulary(path: str, eot: int) -> _Vocabulary:
    return _Vocabulary(Path(path), eot)


# ---- the tokenizer -----------------------------------------------------------------------------------------------


class Tokenizer:
    """Text <-> token ids for one Whisper vocabulary, plus its special tokens and Whisper's word splitting.

    Build it with :meth:`from_file` or :func:`get_tokenizer`. Multilingual tokenizers default to English
    transcription (openai-whisper's default); English-only ones have no language or task tokens.
    """

    def __init__(
        self,
        vocabulary: _Vocabulary,
        *,
        multilingual: bool,
        num_languages: int = 99,
        language: str | None = None,
        task: str | None = None,
    ):
        if not 1 <= num_languages <= len(LANGUAGES):
            raise ModelLoadError(f"num_languages must be between 1 and {len(LANGUAGES)}, not {num_languages}")
        self._vocabulary = vocabulary
        self.multilingual = multilingual
        self.num_languages = num_languages
        self.eot = 50257 if multilingual else 50256
        self.sot = self.eot + 1
        self.translate = self.sot + 1 + num_languages
        self.transcribe = self.translate + 1
        self.sot_lm = self.translate + 2
        self.sot_prev = self.translate + 3
        self.no_speech = self.translate + 4
        self.no_timestamps = self.translate + 5
        self.timestamp_begin = self.translate + 6
        self.n_vocab = self.timestamp_begin + N_TIMESTAMPS

        if multilingual:
            self.language: str | None = self._normalize_language(language or "en")
            self.task: str | None = task or "transcribe"
        else:
            if language is not None and self._normalize_language(language) != "en":
                raise TranscriptError(
                    f"this is an English-only model; it cannot handle language {language!r}. "
                    "Use a multilingual model, or language='en'"
                )
            if task not in (None, "transcribe"):
                raise TranscriptError(f"an English-only model cannot {task!r}; use task='transcribe'")
            self.language, self.task = None, None
        if self.task not in (None, "transcribe", "translate"):
            raise TranscriptError(f"unknown task {self.task!r}; use 'transcribe' or 'translate'")

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        multilingual: bool,
        num_languages: int = 99,
        language: str | None = None,
        task: str | None = None,
    ) -> Tokenizer:
        """Read the BPE vocabulary from ``path`` (a Hugging Face ``tokenizer.json``; cached per file)."""
        resolved = Path(path).expanduser().resolve()
        vocabulary = _load_vocabulary(str(resolved), 50257 if multilingual else 50256)
        return cls(vocabulary, multilingual=multilingual, num_languages=num_languages, language=language, task=task)

    # ---- special tokens ----------------------------------------------------------------------------------------

    def _normalize_language(self, language: str) -> str:
        """A language code or English name ("de", "German", "castilian") -> its code among this model's languages."""
        key = language.lower().strip()
        code = key if key in LANGUAGES else TO_LANGUAGE_CODE.get(key)
        if code is None:
            raise TranscriptError(
                f"unknown language {language!r}; use a code such as 'en' or 'de', or an English name such as 'german'"
            )
        if code not in self.all_language_codes:
            raise TranscriptError(
                f"this model knows {self.num_languages} languages, and {language!r} is not one of them"
            )
        return code

    def language_token(self, language: str | None = None) -> int:
        """The id of ``<|language|>`` (code or name; default: this tokenizer's language)."""
        language = language or self.language
        if language is None:
            raise TranscriptError("this tokenizer has no language; name one")
        return self.sot + 1 + self.all_language_codes.index(self._normalize_language(language))

    @cached_property
    def all_language_codes(self) -> tuple[str, ...]:
        return tuple(LANGUAGES)[: self.num_languages]

    @cached_property
    def all_language_tokens(self) -> tuple[int, ...]:
        return tuple(range(self.sot + 1, self.sot + 1 + self.num_languages))

    @cached_property
    def sot_sequence(self) -> tuple[int, ...]:
        """What the decoder is fed before any text: sot, then (multilingual only) the language and task tokens."""
        sequence = [self.sot]
        if self.language is not None:
            sequence.append(self.language_token(self.language))
        if self.task is not None:
            sequence.append(self.transcribe if self.task == "transcribe" else self.translate)
        return tuple(sequence)

    @cached_property
    def sot_sequence_including_notimestamps(self) -> tuple[int, ...]:
        return (*self.sot_sequence, self.no_timestamps)

    @cached_property
    def special_tokens(self) -> dict[str, int]:
        """Every special token's name -> id, e.g. ``"<|nospeech|>"`` and ``"<|1.08|>"``."""
        names = [
            "<|endoftext|>",
            "<|startoftranscript|>",
            *[f"<|{code}|>" for code in self.all_language_codes],
            "<|translate|>",
            "<|transcribe|>",
            "<|startoflm|>",
            "<|startofprev|>",
            "<|nospeech|>",
            "<|notimestamps|>",
            *[f"<|{i * TIMESTAMP_STEP:.2f}|>" for i in range(N_TIMESTAMPS)],
        ]
        return {name: self.eot + offset for offset, name in enumerate(names)}

    @cached_property
    def _special_bytes(self) -> list[bytes]:
        return [name.encode() for name in self.special_tokens]

    @cached_property
    def non_speech_tokens(self) -> tuple[int, ...]:
        """Tokens of symbols that mark non-speech (speaker tags, music, sound descriptions), to suppress in decoding.

        Same rule as openai-whisper: the token of each symbol, alone or after a space, when the symbol is a single
        token; the first token of the musical signs even when they take several (their UTF-8 starts are shared
        by harmless symbols only); and " -" and " '" (they may appear inside words but must not start them).
        """
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
        musical = set("♩♪♫♬♭♮♯")
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in symbols + sorted(musical):
            for tokens in (self.encode(symbol), self.encode(" " + symbol)):
                if len(tokens) == 1 or symbol in musical:
                    result.add(tokens[0])
        return tuple(sorted(result))

    # ---- text <-> ids ------------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text``; special-token names in the text are encoded as plain text, never as specials."""
        if not isinstance(text, str):
            raise TranscriptError(f"a transcript must be a str, not {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise TranscriptError(
                f"the transcript contains {text[error.start : error.end]!r} at character {error.start}, which is not "
                "valid Unicode text (an unpaired surrogate); fix the text's encoding"
            ) from error
        try:
            return self._vocabulary.bpe.encode(text, add_special_tokens=False).ids
        except Exception as error:  # tokenizers raises bare Exceptions
            raise TranscriptError(f"the transcript cannot be tokenized: {error}") from error

    def _bytes(self, ids: Iterable[int], *, specials: bool) -> bytes:
        token_bytes, special_bytes = self._vocabulary.token_bytes, self._special_bytes
        parts = []
        for token in ids:
            token = int(token)
            if 0 <= token < self.eot:
                parts.append(token_bytes[token])
            elif self.eot <= token < self.n_vocab:
                if specials:
                    parts.append(special_bytes[token - self.eot])
            else:
                raise TranscriptError(f"token id {token} is outside this vocabulary (0..{self.n_vocab - 1})")
        return b"".join(parts)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``, dropping special and timestamp tokens (ids >= eot); bad UTF-8 becomes U+FFFD."""
        return self._bytes(ids, specials=False).decode("utf-8", errors="replace")

    def decode_with_timestamps(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` with special tokens written by name, e.g. ``"<|0.00|> Hello<|1.08|>"``."""
        return self._bytes(ids, specials=True).decode("utf-8", errors="replace")

    # ---- words -------------------------------------------------------------------------------------------------

    def split_to_word_tokens(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        """Group ``tokens`` into words: (word strings, each word's token ids); every token lands in one word.

        For languages written without spaces (zh, ja, th, lo, my, yue) each complete Unicode character is a word;
        otherwise a word starts at a token that begins with a space, at punctuation and at special tokens.
        The same grouping as openai-whisper's, so word timings agree with it.
        """
        if self.language in UNSPACED_LANGUAGES:
            return self.split_tokens_on_unicode(tokens)
        return self.split_tokens_on_spaces(tokens)

    def split_tokens_on_unicode(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        """Cut after every token that completes a character: a multi-byte character split over tokens stays whole.

        A token run that decodes with U+FFFD is only closed if the whole text has U+FFFD at that place too, i.e.
        the bytes are invalid rather than an unfinished character. This is openai-whisper's rule; unlike its
        version, invalid UTF-8 never makes this one fail (IndexError) or drop trailing tokens: every token lands in
        a word.
        """
        full_text = self.decode_with_timestamps(tokens)
        replacement = "\ufffd"
        words: list[str] = []
        word_tokens: list[list[int]] = []
        current: list[int] = []
        offset = 0  # characters of full_text already assigned to words
        for token in tokens:
            current.append(token)
            text = self.decode_with_timestamps(current)
            if replacement not in text:
                complete = True
            else:
                position = offset + text.index(replacement)
                complete = position >= len(full_text) or full_text[position] == replacement
            if complete:
                words.append(text)
                word_tokens.append(current)
                current = []
                offset += len(text)
        if current:  # only after invalid UTF-8: keep the leftover tokens rather than lose them
            words.append(self.decode_with_timestamps(current))
            word_tokens.append(current)
        return words, word_tokens

    def split_tokens_on_spaces(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        """Join the character pieces of :meth:`split_tokens_on_unicode` into space-separated words."""
        words: list[str] = []
        word_tokens: list[list[int]] = []
        for piece, piece_tokens in zip(*self.split_tokens_on_unicode(tokens)):
            special = piece_tokens[0] >= self.eot
            with_space = piece.startswith(" ")
            # openai-whisper's test, kept as is for identical words: a substring of string.punctuation, so runs
            # like "!\"#" and whitespace-only pieces ("" after strip) count as punctuation too.
            punctuation = piece.strip() in string.punctuation
            if special or with_space or punctuation or not words:
                words.append(piece)
                word_tokens.append(list(piece_tokens))
            else:
                words[-1] += piece
                word_tokens[-1].extend(piece_tokens)
        return words, word_tokens

    def __repr__(self) -> str:
        kind = "multilingual" if self.multilingual else "English-only"
        return f"Tokenizer({kind}, num_languages={self.num_languages}, language={self.language!r}, task={self.task!r})"


__all__ = [
    "LANGUAGES",
    "TO_LANGUAGE_CODE",
    "UNSPACED_LANGUAGES",
    "Tokenizer",
]
