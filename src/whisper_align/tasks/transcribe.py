"""Long-form transcription with word timestamps taken from the decoding itself (no second decoder pass).

:func:`transcribe` is openai-whisper's ``transcribe()`` loop: 30-second windows advanced by ``seek``, segments cut
at timestamp-token pairs, temperature fallback on compression ratio and average log-probability, the no-speech
skip, ``clip_timestamps``, the prompt from earlier windows (reset after a hot temperature). Same weights and
options give the same tokens and segments.

Word timestamps differ in where the attention comes from: the decoder is asked for the alignment heads'
cross-attention at every step (:class:`~whisper_align.tasks.decoding.DecodingOptions` ``capture_attention``), so the
scores of the accepted tokens are already there when a window is done. Per window, the rows of its text tokens
(each row being the query that predicted that token, plus the last text token's row) go through the aligner's
steps — :func:`~whisper_align.alignment.attention.alignment_matrix`, then
:func:`~whisper_align.alignment.words.align_words` in the mode of ``alignment_config`` (the aligner's default
mode, or ``"conformance"`` for openai-whisper's rules) and the punctuation merge — followed by openai's
heuristics for long words at segment boundaries (all in :mod:`whisper_align.tasks.window_words`).
Where capture is impossible (a window whose decoding filled the whole text context) a separate pass over
``[sot sequence, <|notimestamps|>, text, EOT]`` is run for that window, as openai-whisper always does; the result's
``second_pass_windows`` counts such windows and a warning says so.

Options, beyond openai-whisper's: ``verbose`` None prints nothing, True prints each segment, False shows a
progress bar (in audio seconds); ``progress`` overrides whether the bar is shown. ``word_timestamps`` adds
``words`` to every segment, from the captured attention (``word_alignment="captured"``) or, like openai-whisper,
from a separate decoder pass per window (``"second_pass"``). ``alignment_config`` picks the word rules: by default
the aligner's default mode; ``AlignmentConfig(mode="conformance")`` gives openai-whisper's. Further
``decode_options`` (``patience``, ``length_penalty``, ``suppress_tokens``, ``suppress_blank``, ``fp16``,
``sample_len``, ``max_initial_timestamp``, ``prefix``...) go to :class:`DecodingOptions`.

Windows (``seek_to_last_word``): where the next window starts after one that ends mid-segment. openai-whisper,
with word timestamps, starts it at the last word's end (``seek_to_last_word=True``); without them, at the last
timestamp token (``False``). The default (None) follows the word rules: True in conformance mode, which
reproduces openai-whisper; False in the default mode, whose word times are not openai's, so its word-end rule
would not give openai's windows anyway. With False, asking for word timestamps does not move any window: no extra
windows are decoded (openai's rule adds one or two per few minutes of audio) and the text is that of a run without
word timestamps, except where word times empty a segment, which then leaves the next window's prompt.

No overlaps, and a confidence: in the default mode a window's words end by the next window's start and words and
segments follow one another; with word timestamps the result carries ``alignment_score`` and ``low_confidence``
(:mod:`whisper_align.tasks.transcription_result`).

The loop itself is small: a :class:`_State` says where the next window starts and holds the text so far, and
:func:`_transcribe_window` decodes one window and moves the state past it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from ..alignment.words import AlignmentConfig, resolve_config
from ..checkpoints.tokenizers import get_tokenizer
from ..errors import TranscriptError
from ..frontend.audio import (
    FRAMES_PER_SECOND,
    HOP_LENGTH,
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    load_audio,
    log_mel_spectrogram,
    pad_or_trim,
)
from ..frontend.tokenizer import LANGUAGES, TO_LANGUAGE_CODE, Tokenizer
from ..model.whisper import Whisper
from ..results.types import Segment
from .decoding import DecodingError, DecodingOptions, DecodingResult, DecodingTask, detect_language
from .transcription_result import LOW_CONFIDENCE_SCORE, Transcription, finish  # noqa: F401 (re-exported)
from .window_words import DecodedWindow as _Window
from .window_words import add_word_timestamps, clip_to_next_window, end_of_last_word, skip_hallucinations

WORD_ALIGNMENTS = ("captured", "second_pass")


def transcribe(
    model: Whisper,
    audio: str | np.ndarray | Tensor,
    *,
    verbose: bool | None = None,
    progress: bool | None = None,
    temperature: float | Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    compression_ratio_threshold: float | None = 2.4,
    logprob_threshold: float | None = -1.0,
    no_speech_threshold: float | None = 0.6,
    condition_on_previous_text: bool = True,
    initial_prompt: str | None = None,
    carry_initial_prompt: bool = False,
    word_timestamps: bool = False,
    word_alignment: str = "captured",
    alignment_config: AlignmentConfig | None = None,
    prepend_punctuations: str | None = None,
    append_punctuations: str | None = None,
    clip_timestamps: str | Sequence[float] = "0",
    hallucination_silence_threshold: float | None = None,
    seek_to_last_word: bool | None = None,
    language: str | None = None,
    task: str = "transcribe",
    beam_size: int | None = None,
    best_of: int | None = None,
    **decode_options: Any,
) -> Transcription:
    """Transcribe ``audio`` (a path, or 16 kHz mono samples) with ``model``; openai-whisper's options and result
    (the options are described in the module's docstring, "Options")."""
    _check_options(word_alignment, task)
    temperatures = _temperatures(temperature)
    language = _language_code(language, model) if language is not None else None

    config = _word_config(model, alignment_config, prepend_punctuations, append_punctuations)
    if isinstance(audio, (str, Path)):  # conformance hears a damaged file as openai-whisper would: unrepaired
        audio = load_audio(audio, repair=not config.conformance)
    mel = log_mel_spectrogram(audio, model.dims.n_mels, padding=N_SAMPLES)  # 30 s of silence to slice into
    content_frames = mel.shape[-1] - N_FRAMES
    if language is None:
        language = _detect_language(model, mel, verbose)
    if word_timestamps and task == "translate":
        warnings.warn("word-level timestamps on translations may not be reliable", stacklevel=2)
    settings = _Settings(
        tokenizer=get_tokenizer(model, language=language, task=task),
        decode_options=dict(decode_options, language=language, task=task, beam_size=beam_size, best_of=best_of),
        temperatures=temperatures,
        compression_ratio_threshold=compression_ratio_threshold,
        logprob_threshold=logprob_threshold,
        no_speech_threshold=no_speech_threshold,
        word_timestamps=word_timestamps,
        capture=word_timestamps and word_alignment == "captured",
        config=config,
        seek_to_last_word=config.mode == "conformance" if seek_to_last_word is None else seek_to_last_word,
        hallucination_silence_threshold=hallucination_silence_threshold,
        condition_on_previous_text=condition_on_previous_text,
        carry_initial_prompt=carry_initial_prompt,
        verbose=verbose,
    )
    state = _State.start(
        settings.tokenizer, initial_prompt, model.dims.n_text_ctx, _seek_clips(clip_timestamps, content_frames)
    )
    duration = content_frames * HOP_LENGTH / SAMPLE_RATE
    with _progress_bar(duration, progress if progress is not None else verbose is False) as bar:
        while (window := state.next_window(content_frames)) is not None:
            _transcribe_window(model, mel, window, state, settings)
            bar.update((min(content_frames, state.seek) - window.seek) / FRAMES_PER_SECOND)

    return finish(
        state.segments,
        text=settings.tokenizer.decode(state.tokens[len(state.initial_prompt_tokens) :]),
        language=language,
        duration=duration,
        word_alignment=word_alignment if word_timestamps else None,
        second_pass_windows=state.second_pass_windows,
        in_order=word_timestamps and not config.conformance,  # conformance mode keeps openai-whisper's times
    )


# ---- one run's settings and state ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    """What :func:`transcribe` resolved from its options, fixed for the whole run."""

    tokenizer: Tokenizer
    decode_options: dict[str, Any]  # DecodingOptions fields common to every window (no prompt, no temperature)
    temperatures: list[float]
    compression_ratio_threshold: float | None
    logprob_threshold: float | None
    no_speech_threshold: float | None
    word_timestamps: bool
    capture: bool  # word timings from the attention captured while decoding
    config: AlignmentConfig
    seek_to_last_word: bool
    hallucination_silence_threshold: float | None
    condition_on_previous_text: bool
    carry_initial_prompt: bool
    verbose: bool | None


@dataclass
class _State:
    """Where the loop stands: the next window's start (``seek``, in mel frames), the text so far and the prompt."""

    seek_clips: list[tuple[int, int]]
    initial_prompt_tokens: list[int]
    remaining_prompt_length: int  # room for earlier text after a carried initial prompt
    clip_index: int = 0
    seek: int = 0
    tokens: list[int] = field(default_factory=list)  # the initial prompt, then every segment's tokens
    segments: list[Segment] = field(default_factory=list)
    prompt_reset_since: int = 0  # the prompt uses tokens[prompt_reset_since:] only
    last_speech_timestamp: float = 0.0
    second_pass_windows: int = 0

    @classmethod
    def start(
        cls, tokenizer: Tokenizer, initial_prompt: str | None, n_text_ctx: int, seek_clips: list[tuple[int, int]]
    ) -> _State:
        prompt = tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt is not None else []
        return cls(
            seek_clips=seek_clips,
            initial_prompt_tokens=prompt,
            tokens=list(prompt),
            remaining_prompt_length=n_text_ctx // 2 - 1 - len(prompt),
            seek=seek_clips[0][0],
        )

    def next_window(self, content_frames: int) -> _Window | None:
        """The next window to decode (inside the current clip of ``clip_timestamps``), or None when done."""
        while self.clip_index < len(self.seek_clips):
            clip_start, clip_end = self.seek_clips[self.clip_index]
            self.seek = max(self.seek, clip_start)
            if self.seek < clip_end:
                size = min(N_FRAMES, content_frames - self.seek, clip_end - self.seek)
                return _Window(seek=self.seek, size=size, content_frames=content_frames)
            self.clip_index += 1
            if self.clip_index < len(self.seek_clips):
                self.seek = self.seek_clips[self.clip_index][0]
        return None

    def prompt(self, carry_initial_prompt: bool) -> list[int]:
        """The previous-text prompt for the next window: the text since the last reset, or, with
        ``carry_initial_prompt``, the initial prompt followed by as much recent text as fits."""
        if carry_initial_prompt:
            ignored = max(len(self.initial_prompt_tokens), self.prompt_reset_since)
            return self.initial_prompt_tokens + self.tokens[ignored:][-self.remaining_prompt_length :]
        return self.tokens[self.prompt_reset_since :]

    def commit(self, current: list[Segment], temperature: float, condition_on_previous_text: bool) -> None:
        """Append a window's segments; a hot decode (or no conditioning) resets the prompt after them."""
        for s in current:  # an instantaneous or empty segment keeps its times but loses its content
            if s.start == s.end or s.text.strip() == "":
                s.text, s.tokens, s.words = "", [], []
        for s in current:
            s.id = len(self.segments)
            self.segments.append(s)
        self.tokens.extend(t for s in current for t in s.tokens)
        if not condition_on_previous_text or temperature > 0.5:
            self.prompt_reset_since = len(self.tokens)  # a hot decode is not worth conditioning on


# ---- one window -------------------------------------------------------------------------------------------------


def _transcribe_window(model: Whisper, mel: Tensor, window: _Window, state: _State, settings: _Settings) -> None:
    """Decode one window, cut it into segments, time their words, and move ``state`` past it."""
    tokenizer = settings.tokenizer
    mel_segment = pad_or_trim(mel[:, window.seek : window.seek + window.size], N_FRAMES).to(model.device)
    result = _decode_with_fallback(model, mel_segment, state.prompt(settings.carry_initial_prompt), settings)
    if _is_silence(result, settings):
        state.seek += window.size  # silence: skip the whole window
        return
    tokens = result.tokens
    input_stride = N_FRAMES // model.dims.n_audio_ctx  # mel frames per audio position: 2
    time_precision = input_stride * HOP_LENGTH / SAMPLE_RATE  # seconds per timestamp step: 0.02
    spans, single_timestamp_ending, state.seek = _split_segments(
        tokens, tokenizer.timestamp_begin, window.seek, window.size, window.duration, time_precision, input_stride
    )
    current = [
        Segment(
            id=0,
            seek=window.seek,
            start=window.time_offset + start,
            end=window.time_offset + end,
            text=tokenizer.decode([t for t in tokens[a:b] if t < tokenizer.eot]),
            tokens=tokens[a:b],
            temperature=result.temperature,
            avg_logprob=result.avg_logprob,
            compression_ratio=result.compression_ratio,
            no_speech_prob=result.no_speech_prob,
        )
        for (a, b), (start, end) in spans
    ]
    if settings.word_timestamps:
        redo = _time_words(
            model, current, [span for span, _ in spans], result, window, single_timestamp_ending, state, settings
        )
        if redo:
            return
    if settings.verbose:
        for s in current:
            print(f"[{_format_time(s.start)} --> {_format_time(s.end)}] {s.text}")
    state.commit(current, result.temperature, settings.condition_on_previous_text)


def _time_words(
    model: Whisper,
    current: list[Segment],
    spans: list[tuple[int, int]],
    result: DecodingResult,
    window: _Window,
    single_timestamp_ending: bool,
    state: _State,
    settings: _Settings,
) -> bool:
    """Give the window's segments their words and apply the word-based seek rules; True if the window must be
    decoded again from the new ``state.seek`` (a hallucination was skipped at its start)."""
    used_second_pass = add_word_timestamps(
        current,
        spans,
        result,
        model=model,
        tokenizer=settings.tokenizer,
        num_frames=window.size,
        use_capture=settings.capture,
        config=settings.config,
        last_speech_timestamp=state.last_speech_timestamp,
    )
    state.second_pass_windows += int(used_second_pass and settings.capture)
    if settings.seek_to_last_word and not single_timestamp_ending:
        last_word_end = end_of_last_word(current)
        if last_word_end is not None and last_word_end > window.time_offset:
            state.seek = round(last_word_end * FRAMES_PER_SECOND)
    if settings.hallucination_silence_threshold is not None:
        skip_to = skip_hallucinations(
            current,
            settings.hallucination_silence_threshold,
            window,
            single_timestamp_ending,
            state.last_speech_timestamp,
        )
        if skip_to is not None:
            state.seek, restart = skip_to
            if restart:
                return True
    if not settings.config.conformance and state.seek < window.seek + window.size:
        clip_to_next_window(current, state.seek / FRAMES_PER_SECOND)
    last_word_end = end_of_last_word(current)
    if last_word_end is not None:
        state.last_speech_timestamp = last_word_end
    return False


def _decode_with_fallback(
    model: Whisper, mel_segment: Tensor, prompt: list[int], settings: _Settings
) -> DecodingResult:
    """Decode at each temperature in turn until the result is neither too repetitive nor too unlikely (or is
    silence), as openai-whisper does."""
    result: DecodingResult | None = None
    for t in settings.temperatures:
        kwargs = dict(settings.decode_options, prompt=prompt)
        if t > 0:  # sampling: no beams
            kwargs.pop("beam_size", None)
            kwargs.pop("patience", None)
        else:  # greedy / beams: no best_of
            kwargs.pop("best_of", None)
        kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "language"}
        opts = DecodingOptions(**kwargs, temperature=t, capture_attention=settings.capture)
        result = DecodingTask(model, opts, settings.tokenizer).run(mel_segment[None])[0]
        ratio, floor = settings.compression_ratio_threshold, settings.logprob_threshold
        too_repetitive = ratio is not None and result.compression_ratio > ratio
        too_unlikely = floor is not None and result.avg_logprob < floor
        silence = (
            settings.no_speech_threshold is not None
            and result.no_speech_prob > settings.no_speech_threshold
            and too_unlikely
        )
        if silence or not (too_repetitive or too_unlikely):
            break
    assert result is not None  # temperatures is not empty
    return result


def _is_silence(result: DecodingResult, settings: _Settings) -> bool:
    """openai's no-speech rule: likely silence, unless the text itself is likely enough."""
    if settings.no_speech_threshold is None or result.no_speech_prob <= settings.no_speech_threshold:
        return False
    return settings.logprob_threshold is None or result.avg_logprob <= settings.logprob_threshold


# ---- options, windows and segments --------------------------------------------------------------------------------


def _check_options(word_alignment: str, task: str) -> None:
    if word_alignment not in WORD_ALIGNMENTS:
        raise DecodingError(f"word_alignment {word_alignment!r} is unknown; use one of {', '.join(WORD_ALIGNMENTS)}")
    if task not in ("transcribe", "translate"):
        raise DecodingError(f"task {task!r} is unknown; use 'transcribe' or 'translate'")


def _temperatures(temperature: float | Sequence[float]) -> list[float]:
    temperatures = [float(temperature)] if isinstance(temperature, (int, float)) else [float(t) for t in temperature]
    if not temperatures or any(t < 0 for t in temperatures):
        raise DecodingError(f"temperature {temperature!r} must be a number >= 0 or a non-empty sequence of them")
    return temperatures


def _word_config(
    model: Whisper, config: AlignmentConfig | None, prepend_punctuations: str | None, append_punctuations: str | None
) -> AlignmentConfig:
    """The word rules asked for, with the model's calibrated time shift and any punctuation overrides."""
    config = resolve_config(config, model.alignment_time_shift)
    if prepend_punctuations is not None:
        config = replace(config, prepend_punctuations=prepend_punctuations)
    if append_punctuations is not None:
        config = replace(config, append_punctuations=append_punctuations)
    return config


def _detect_language(model: Whisper, mel: Tensor, verbose: bool | None) -> str:
    if not model.is_multilingual:
        return "en"
    _, probs = detect_language(model, pad_or_trim(mel, N_FRAMES).to(model.device), get_tokenizer(model))
    language = max(probs, key=probs.get)
    if verbose is not None:
        print(f"Detected language: {LANGUAGES.get(language, language).title()}")
    return language


def _language_code(language: str, model: Whisper) -> str:
    key = language.lower().strip()
    code = key if key in LANGUAGES else TO_LANGUAGE_CODE.get(key)
    if code is None:
        raise TranscriptError(f"unknown language {language!r}; use a code such as 'en' or a name such as 'english'")
    if not model.is_multilingual and code != "en":
        raise TranscriptError(f"this model is English-only; it cannot transcribe language {code!r}")
    return code


def _seek_clips(clip_timestamps: str | Sequence[float], content_frames: int) -> list[tuple[int, int]]:
    """``"start,end,start,end,..."`` seconds (the last end defaulting to the end of the audio) -> mel-frame pairs."""
    if isinstance(clip_timestamps, str):
        try:
            clip_timestamps = [float(t) for t in clip_timestamps.split(",")] if clip_timestamps.strip() else []
        except ValueError:
            raise DecodingError(
                f"clip_timestamps {clip_timestamps!r} is not a comma-separated list of seconds"
            ) from None
    points = [round(t * FRAMES_PER_SECOND) for t in clip_timestamps] or [0]
    if len(points) % 2 == 1:
        points.append(content_frames)
    return list(zip(points[::2], points[1::2]))


def _split_segments(
    tokens: list[int],
    timestamp_begin: int,
    seek: int,
    segment_size: int,
    segment_duration: float,
    time_precision: float,
    input_stride: int,
) -> tuple[list[tuple[tuple[int, int], tuple[float, float]]], bool, int]:
    """Cut a window's tokens into segments at timestamp pairs, as openai-whisper does.

    Returns ``[((first, end) token span, (start, end) seconds from the window start)]``, whether the tokens end
    in a single timestamp (no speech after it: the whole window is consumed), and the next ``seek``: after the
    window, or at the last complete segment's end timestamp, leaving an unfinished segment for the next window.
    """
    is_ts = [t >= timestamp_begin for t in tokens]
    single_timestamp_ending = is_ts[-2:] == [False, True]
    cuts = [i for i in range(1, len(tokens)) if is_ts[i - 1] and is_ts[i]]
    spans: list[tuple[tuple[int, int], tuple[float, float]]] = []
    if cuts:
        if single_timestamp_ending:
            cuts.append(len(tokens))
        last = 0
        for cut in cuts:
            start = (tokens[last] - timestamp_begin) * time_precision
            end = (tokens[cut - 1] - timestamp_begin) * time_precision
            spans.append(((last, cut), (start, end)))
            last = cut
        if single_timestamp_ending:
            seek += segment_size
        else:
            seek += (tokens[last - 1] - timestamp_begin) * input_stride
    else:
        duration = segment_duration
        timestamps = [t for t in tokens if t >= timestamp_begin]
        if timestamps and timestamps[-1] != timestamp_begin:  # one timestamp, not <|0.00|>: use it as the end
            duration = (timestamps[-1] - timestamp_begin) * time_precision
        spans.append(((0, len(tokens)), (0.0, duration)))
        seek += segment_size
    return spans, single_timestamp_ending, seek


def _format_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return (f"{hours:02d}:" if hours else "") + f"{minutes:02d}:{secs:02d}.{ms:03d}"


def _progress_bar(total_seconds: float, enabled: bool) -> Any:
    import tqdm

    return tqdm.tqdm(
        total=round(total_seconds, 2),
        unit="s",
        disable=not enabled,
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]",
    )


__all__ = ["transcribe", "Transcription", "WORD_ALIGNMENTS", "LOW_CONFIDENCE_SCORE"]
