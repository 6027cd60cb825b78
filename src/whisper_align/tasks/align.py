"""Forced alignment of a known transcript: every word gets a start, an end and a probability.

The unit of work is a *piece*: a run of text tokens aligned against a region of one 30-second window. A window
is encoded once; all of its pieces then go through the decoder together as one batch (their cross-attention
keys and values are computed once and shared), and only the alignment heads' scores come back. Each piece's
scores are cropped to its own region before the softmax, so pieces in one window never see each other.

- short audio (up to 30 s): one window, one piece;
- long audio: :func:`align_long` walks the recording window by window, choosing for each window a stretch of the
  transcript that surely covers it, and commits only the words that end well inside the window (see there);
- many short clips (``corpus.py``): several clips are packed into one window, one piece each.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from torch import Tensor

from ..alignment.confidence import LOW_CONFIDENCE_SCORE, alignment_score
from ..alignment.words import (
    AlignmentConfig,
    WordTiming,
    merge_punctuations,
    resolve_config,
    widen_empty_words,
)
from ..checkpoints.tokenizers import get_tokenizer
from ..errors import TranscriptError
from ..frontend.audio import (
    N_SAMPLES,
    N_SAMPLES_PER_TOKEN,
    SAMPLE_RATE,
    TOKENS_PER_SECOND,
    is_silent,
    load_audio,
)
from ..frontend.tokenizer import Tokenizer
from ..model.whisper import Whisper
from ..results.types import Result, Segment, Word
from .pieces import (  # noqa: F401 (re-exported)
    WINDOW_POSITIONS,
    ClipPass,
    Piece,
    clip_pass,
    refine_inputs,
    run_pieces,
    window_mel,
    words_of_piece,
)

# ---- public API -------------------------------------------------------------------------------------------------


# terminal escape sequences (colours, cursor moves, titles): CSI, OSC and two-character forms
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def clean_text(text: object) -> str:
    """The transcript with terminal escape sequences and control characters removed, words separated by single
    spaces.

    Control characters (NUL, escapes such as ``"\x1b[31m"``, a byte-order mark) are never speech, and the
    tokenizer would copy them into the output words; whitespace of any kind (newlines, tabs) separates words.
    Raises :class:`TranscriptError` when ``text`` is not a ``str`` (bytes must be decoded by the caller, who
    knows their encoding).
    """
    if not isinstance(text, str):
        hint = " (decode it first, e.g. data.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
        raise TranscriptError(f"the transcript must be a str, got {type(text).__name__}{hint}")
    text = _ESCAPES.sub("", text)
    kept = "".join(c for c in text if c.isspace() or (unicodedata.category(c) != "Cc" and c != "\ufeff"))
    return " ".join(kept.split())


def prepare_text(tokenizer: Tokenizer, text: str) -> list[int]:
    """Tokens of a transcript, as Whisper would have emitted them (leading space, single spaces), after
    :func:`clean_text`."""
    clean = clean_text(text)
    if not clean:
        raise TranscriptError("the transcript is empty; give the words spoken in the audio")
    return tokenizer.encode(" " + clean)


def align(
    model: Whisper,
    audio: str | np.ndarray | Tensor,
    text: str,
    *,
    language: str | None = None,
    config: AlignmentConfig | None = None,
    probabilities: bool = True,
    progress: bool = False,
    tokenizer: Tokenizer | None = None,
) -> Result:
    """Align ``text`` to ``audio`` and return a :class:`Result` with one segment holding timed words.

    ``audio`` is a path (any format FFmpeg reads), or 16 kHz mono samples. Audio longer than 30 s is aligned
    window by window (:func:`align_long`). ``config`` picks the mode (``AlignmentConfig(mode="conformance")``
    reproduces openai-whisper's ``find_alignment``); its ``time_shift`` defaults to the model's calibrated one.

    Every word of ``text`` comes out once, in order (hyphenated words as Whisper splits them: "semi",
    "-heights"). ``text`` must be a ``str``; control characters are dropped (:func:`clean_text`). The result
    carries ``alignment_score`` and ``low_confidence`` (see :func:`alignment_score`; needs ``probabilities``)
    and flags words the audio ends before (``Word.past_end``). Silent audio, text that does not seem to match
    and audio that ends before the text each raise a ``UserWarning``.
    """
    text = clean_text(text)  # a transcript of the wrong type fails before the audio is decoded
    config = resolve_config(config, model.alignment_time_shift)
    samples = load_audio(audio, repair=not config.conformance)  # openai-whisper would not repair a damaged file
    silent = is_silent(samples)
    if silent:
        warnings.warn("the audio is silent: the word times will be spread arbitrarily", stacklevel=2)
    tokenizer = tokenizer or get_tokenizer(model, language=language)
    tokens = prepare_text(tokenizer, text)
    duration = len(samples) / SAMPLE_RATE
    if len(samples) <= N_SAMPLES:
        timings = align_short(model, tokenizer, samples, tokens, config, probabilities)
    else:
        timings = align_long(model, tokenizer, samples, tokens, config, probabilities, progress=progress)
    if not config.conformance:  # conformance keeps openai's times, empty words included
        widen_empty_words(enforce_monotone(timings, duration), config.min_word_duration, 0.0, duration)
    result = make_result(timings, tokens, duration, tokenizer, scored=probabilities)
    if not silent:  # on silence every word is unheard: the warning above says it all
        warn_about(result)
    return result


def warn_about(result: Result) -> None:
    """``UserWarning``s for what the caller should know about a forced alignment: words past the audio's end
    and a low alignment score."""
    unheard = [w for w in result.words if w.past_end]
    if unheard:
        names = " ".join(w.word.strip() for w in unheard[:6]) + (" ..." if len(unheard) > 6 else "")
        warnings.warn(
            f"the last {len(unheard)} word(s) of the transcript ({names}) were not heard before the audio ends at "
            f"{result.duration:.2f} s: they sit at its end with zero length, flagged past_end. Check that the "
            "recording is not cut short and that the text belongs to it",
            stacklevel=3,
        )
    if result.low_confidence:
        warnings.warn(
            f"the transcript may not match the audio: alignment score {result.alignment_score:.4f} (geometric "
            f"mean word probability) is below {LOW_CONFIDENCE_SCORE}; the word times are unreliable. Check that "
            "the text is what is said in this recording",
            stacklevel=3,
        )


def check_fits(n_tokens: int, n_positions: int, model: Whisper, tokenizer: Tokenizer) -> None:
    """Refuse text that cannot fit: more tokens than the decoder holds, or than the audio has positions."""
    room = model.dims.n_text_ctx - len(tokenizer.sot_sequence_including_notimestamps) - 1
    if n_tokens > room or n_tokens > n_positions:
        seconds = n_positions / TOKENS_PER_SECOND
        raise TranscriptError(
            f"the transcript has {n_tokens} tokens, more than {seconds:.1f} s of audio can hold "
            f"(at most {min(room, n_positions)} tokens per 30 s window); check that the text belongs to this audio"
        )


def align_short(
    model: Whisper,
    tokenizer: Tokenizer,
    samples: np.ndarray,
    tokens: list[int],
    config: AlignmentConfig,
    probabilities: bool = True,
) -> list[WordTiming]:
    """Align up to 30 s of audio against the whole transcript in one piece."""
    check_fits(len(tokens), max(1, len(samples) // N_SAMPLES_PER_TOKEN), model, tokenizer)
    return align_window(model, tokenizer, samples, tokens, config, probabilities, 0.0)


def align_window(
    model: Whisper,
    tokenizer: Tokenizer,
    chunk: np.ndarray,
    tokens: list[int],
    config: AlignmentConfig,
    probabilities: bool,
    time_offset: float,
    merge: bool = True,
    ends_audio: bool = True,
) -> list[WordTiming]:
    """Encode one window of up to 30 s and align ``tokens`` against all of its real audio
    (``merge``: see :func:`words_of_piece`; ``ends_audio``: the window holds the end of the recording)."""
    run = clip_pass(model, tokenizer, chunk, tokens, probabilities)
    refine = refine_inputs(model, run.mel, run.features[0], 0, run.n_positions, ends_audio, text_ends=run.text_ends)
    return words_of_piece(tokenizer, run.qk.float().cpu(), tokens, run.probs, config, time_offset, merge, refine)


def group_starts(words: Sequence[str], word_tokens: Sequence[Sequence[int]], config: AlignmentConfig) -> np.ndarray:
    """For each word of the tokenizer's split, whether it begins a word of the output (after punctuation merging).

    ``merge_punctuations`` glues a closing mark ('.', ',') onto the word before it and an opening one onto the
    word after it, so the output has fewer words than the split. Long-form alignment cuts the transcript only
    where this is True, so that merging each committed stretch and merging the whole transcript agree.
    """
    timings = [WordTiming(w, list(t), 0.0, 0.0, 0.0) for w, t in zip(words, word_tokens)]
    merge_punctuations(timings, config.prepend_punctuations, config.append_punctuations)
    boundaries = set(np.cumsum([0] + [len(t.tokens) for t in timings if t.word]).tolist())
    raw = np.cumsum([0] + [len(t) for t in word_tokens])[:-1]
    return np.array([int(x) in boundaries for x in raw], dtype=bool)


def _words_for_window(
    words: Sequence[str],
    word_tokens: Sequence[Sequence[int]],
    starts: np.ndarray,
    done: int,
    budget: float,
    room: int,
    last_window: bool,
) -> int:
    """End (exclusive) of the run of words from ``done`` that fits ``budget`` characters (of the words'
    texts) and ``room`` tokens, ended at a whole output word (``starts``, see :func:`group_starts`) except in
    the last window, which must take every word left."""
    end, n_tok, chars = done, 0, 0.0
    while end < len(words) and chars < budget and n_tok + len(word_tokens[end]) <= room:
        n_tok += len(word_tokens[end])
        chars += len(words[end])
        end += 1
    if end == done:
        raise TranscriptError(
            f"the word {words[done].strip()!r} has {len(word_tokens[done])} tokens, more than the decoder holds "
            f"({room}); check the transcript"
        )
    if last_window and end < len(words):
        raise TranscriptError(
            f"{len(words) - end} words of the transcript are left over: the last window of audio (up to 30 s) "
            f"holds {room} tokens; check that the text belongs to this audio"
        )
    if not last_window:
        end = max((k for k in range(done + 1, end + 1) if starts[k]), default=end)
    return end


def _commit_count(timings: Sequence[WordTiming], starts: np.ndarray, cutoff: float) -> int:
    """How many of a window's words to commit: the longest prefix that ends by ``cutoff`` and stops at the end
    of an output word (``starts[k]``: word ``k`` of the window begins one; ``starts[len(timings)]`` is True).

    If no whole output word ends by ``cutoff``, the first one is taken when it starts before ``cutoff``
    (progress on dense speech), else none (the next window starts later)."""
    inside = 0
    while inside < len(timings) and timings[inside].end <= cutoff:
        inside += 1
    take = max((k for k in range(inside + 1) if starts[k]), default=0)
    if take == 0 and timings and timings[0].start < cutoff:
        take = next((k for k in range(1, len(timings) + 1) if starts[k]), len(timings))
    return take


def align_long(
    model: Whisper,
    tokenizer: Tokenizer,
    samples: np.ndarray,
    tokens: list[int],
    config: AlignmentConfig,
    probabilities: bool = True,
    progress: bool = False,
    commit_margin: float = 6.0,
    report: Callable[[float], None] | None = None,
) -> list[WordTiming]:
    """Align a transcript to audio of any length, 30 s window by 30 s window.

    How the text is split: the words are tokenized once. Each window starts where the first uncommitted word
    is expected (just before the previous window's first uncommitted word started) and is given the next run
    of words that *surely* covers it: the words up to 1.5x the window at the speaking rate measured so far
    (chars per second; the transcript's average to start with), capped by the decoder context. The surplus
    words are squeezed by DTW into the end of the window, so only words that end at least ``commit_margin``
    seconds before the window's end are committed (all of them in the last window). Memory holds one window.

    Windows are aligned and committed in the tokenizer's words (one timing per word, so ``done`` indexes the
    transcript exactly), cut only between output words; punctuation is merged once at the end. Every word of
    the transcript comes out exactly once, in order.
    """
    from tqdm import tqdm

    duration = len(samples) / SAMPLE_RATE
    words, word_tokens = tokenizer.split_to_word_tokens(tokens)
    starts = np.append(group_starts(words, word_tokens, config), True)
    n_chars = np.array([len(w) for w in words], dtype=float)
    rate = max(n_chars.sum() / duration, 1.0)  # characters per second
    room = model.dims.n_text_ctx - len(tokenizer.sot_sequence_including_notimestamps) - 1
    window_s = N_SAMPLES / SAMPLE_RATE

    committed: list[WordTiming] = []
    seek = 0.0  # seconds
    done = 0  # words of the split committed
    bar = tqdm(total=round(duration), unit="s", disable=not progress, desc="aligning")
    while done < len(words):
        start_sample = int(seek * SAMPLE_RATE)
        chunk = samples[start_sample : start_sample + N_SAMPLES]
        last_window = start_sample + N_SAMPLES >= len(samples)
        budget = np.inf if last_window else 1.5 * window_s * rate
        end = _words_for_window(words, word_tokens, starts, done, budget, room, last_window)
        piece_tokens = [t for wt in word_tokens[done:end] for t in wt]
        if last_window:
            check_fits(len(piece_tokens), max(1, len(chunk) // N_SAMPLES_PER_TOKEN), model, tokenizer)
        timings = align_window(
            model, tokenizer, chunk, piece_tokens, config, probabilities, seek, merge=False, ends_audio=last_window
        )
        if not last_window:  # surplus words are squeezed at a window's end on purpose: only the last one tells
            for t in timings:
                t.past_end = False
        cutoff = seek + len(chunk) / SAMPLE_RATE - (0 if last_window else commit_margin)
        take = len(timings) if last_window else _commit_count(timings, starts[done : end + 1], cutoff)
        committed.extend(timings[:take])
        if take:
            spoken = committed[-1].end - committed[len(committed) - take].start
            if spoken > 1.0:
                rate = 0.5 * rate + 0.5 * n_chars[done : done + take].sum() / spoken
        done += take
        if done < len(words):
            next_start = timings[take].start if take < len(timings) else cutoff
            seek = max(seek + 1.0, min(next_start - 0.5, cutoff))
            if report:
                report(seek)
            bar.update(round(seek) - bar.n)
    bar.update(bar.total - bar.n)
    bar.close()
    merge_punctuations(committed, config.prepend_punctuations, config.append_punctuations)
    return enforce_monotone([t for t in committed if t.word], duration)


def enforce_monotone(timings: list[WordTiming], duration: float) -> list[WordTiming]:
    """Clamp times into [0, duration] so that each word ends no earlier than it starts and starts no earlier
    than the previous word ends."""
    last = 0.0
    for t in timings:
        start = min(max(float(t.start), last), duration)
        end = min(max(float(t.end), start), duration)
        t.start, t.end = start, end
        last = end
    return timings


def make_result(
    timings: list[WordTiming], tokens: list[int], duration: float, tokenizer: Tokenizer, scored: bool = True
) -> Result:
    """Timed words -> an openai-style result with one segment (or none if nothing was aligned), with its
    :func:`alignment_score` when ``scored`` (the word probabilities were computed)."""

    def ms(x: float) -> float:  # rounded to the millisecond, never past the end of the audio
        return min(round(float(x), 3), duration)

    words = [
        Word(t.word, ms(t.start), ms(t.end), float(t.probability), past_end=t.past_end)
        for t in enforce_monotone(timings, duration)
        if t.word
    ]
    language = tokenizer.language or "en"
    if not words:
        return Result(text="", segments=[], language=language, duration=duration)
    text = "".join(w.word for w in words)
    probs = [w.probability for w in words]
    segment = Segment(
        id=0,
        seek=0,
        start=words[0].start,
        end=words[-1].end,
        text=text,
        tokens=list(tokens),
        temperature=0.0,
        avg_logprob=float(np.mean(np.log(np.clip(probs, 1e-12, 1.0)))),
        compression_ratio=0.0,
        no_speech_prob=0.0,
        words=words,
    )
    score = alignment_score(probs) if scored else None
    low = score is not None and score < LOW_CONFIDENCE_SCORE
    return Result(text, [segment], language, duration, alignment_score=score, low_confidence=low)


__all__ = [
    "align",
    "align_short",
    "align_long",
    "Piece",
    "run_pieces",
    "clip_pass",
    "ClipPass",
    "words_of_piece",
    "prepare_text",
    "clean_text",
    "alignment_score",
    "LOW_CONFIDENCE_SCORE",
]
