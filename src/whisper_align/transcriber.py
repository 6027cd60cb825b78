"""Long-form transcription with word timestamps taken from the decoding itself (no second decoder pass).

:func:`transcribe` is openai-whisper's ``transcribe()`` loop: 30-second windows advanced by ``seek``, segments cut
at timestamp-token pairs, temperature fallback on compression ratio and average log-probability, the no-speech
skip, ``clip_timestamps``, the prompt from earlier windows (reset after a hot temperature). Same weights and
options give the same tokens and segments.

Word timestamps differ in where the attention comes from: the decoder is asked for the alignment heads'
cross-attention at every step (:class:`~whisper_align.decoding.DecodingOptions` ``capture_attention``), so the
scores of the accepted tokens are already there when a window is done. Per window, the rows of its text tokens
(each row being the query that predicted that token, plus the last text token's row) go through the aligner's
steps — :func:`~whisper_align.alignment.attention.alignment_matrix`, then
:func:`~whisper_align.alignment.words.align_words` in the mode of ``alignment_config`` (the aligner's default
mode, or ``"conformance"`` for openai-whisper's rules) and the punctuation merge — followed by openai's
heuristics for long words at segment boundaries (all in :mod:`whisper_align.word_timestamps`).
Where capture is impossible (a window whose decoding filled the whole text context) a separate pass over
``[sot sequence, <|notimestamps|>, text, EOT]`` is run for that window, as openai-whisper always does; the result's
``second_pass_windows`` counts such windows and a warning says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
from torch import Tensor

from .alignment.words import AlignmentConfig, resolve_config
from .audio import FRAMES_PER_SECOND, HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE, log_mel_spectrogram, pad_or_trim
from .decoding import DecodingError, DecodingOptions, DecodingResult, DecodingTask, detect_language
from .errors import TranscriptError
from .model import Whisper
from .tokenizer import LANGUAGES, get_tokenizer
from .types import Result, Segment
from .word_timestamps import add_word_timestamps, end_of_last_word, skip_hallucinations

WORD_ALIGNMENTS = ("captured", "second_pass")


@dataclass
class Transcription(Result):
    """A :class:`Result` that also says how its word timings were obtained."""

    word_alignment: str | None = None  # "captured" or "second_pass" as asked; None without word timestamps
    second_pass_windows: int = 0  # windows whose word timings needed a separate decoder pass anyway


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
    """Transcribe ``audio`` (a path, or 16 kHz mono samples) with ``model``; openai-whisper's options and result.

    ``verbose``: None prints nothing, True prints each segment, False shows a progress bar (in audio seconds);
    ``progress`` overrides whether the bar is shown. ``word_timestamps`` adds ``words`` to every segment, from
    the captured attention (``word_alignment="captured"``) or, like openai-whisper, from a separate decoder pass
    per window (``"second_pass"``). ``alignment_config`` picks the word rules: by default the aligner's default
    mode; ``AlignmentConfig(mode="conformance")`` gives openai-whisper's. Further ``decode_options``
    (``patience``, ``length_penalty``, ``suppress_tokens``, ``suppress_blank``, ``fp16``, ``sample_len``,
    ``max_initial_timestamp``, ``prefix``...) go to :class:`DecodingOptions`.

    Where the next window starts after one that ends mid-segment: openai-whisper, with word timestamps, starts
    it at the last word's end (``seek_to_last_word=True``); without them, at the last timestamp token
    (``False``). The default (None) follows the word rules: True in conformance mode, which reproduces
    openai-whisper; False in the default mode, whose word times are not openai's, so its word-end rule would not
    give openai's windows anyway. With False, asking for word timestamps does not move any window: no extra
    windows are decoded (openai's rule adds one or two per few minutes of audio) and the text is that of a run
    without word timestamps, except where word times empty a segment, which then leaves the next window's prompt.
    """
    if word_alignment not in WORD_ALIGNMENTS:
        raise DecodingError(f"word_alignment {word_alignment!r} is unknown; use one of {', '.join(WORD_ALIGNMENTS)}")
    if task not in ("transcribe", "translate"):
        raise DecodingError(f"task {task!r} is unknown; use 'transcribe' or 'translate'")
    temperatures = [float(temperature)] if isinstance(temperature, (int, float)) else [float(t) for t in temperature]
    if not temperatures or any(t < 0 for t in temperatures):
        raise DecodingError(f"temperature {temperature!r} must be a number >= 0 or a non-empty sequence of them")
    if language is not None:
        language = _language_code(language)
        if not model.is_multilingual and language != "en":
            raise TranscriptError(f"this model is English-only; it cannot transcribe language {language!r}")

    mel = log_mel_spectrogram(audio, model.dims.n_mels, padding=N_SAMPLES)  # 30 s of silence to slice into
    content_frames = mel.shape[-1] - N_FRAMES
    content_duration = content_frames * HOP_LENGTH / SAMPLE_RATE

    if language is None:
        if model.is_multilingual:
            _, probs = detect_language(model, pad_or_trim(mel, N_FRAMES).to(model.device), get_tokenizer(model))
            language = max(probs, key=probs.get)
            if verbose is not None:
                print(f"Detected language: {LANGUAGES.get(language, language).title()}")
        else:
            language = "en"
    tokenizer = get_tokenizer(model, language=language, task=task)
    options = dict(decode_options, language=language, task=task, beam_size=beam_size, best_of=best_of)
    if word_timestamps and task == "translate":
        warnings.warn("word-level timestamps on translations may not be reliable", stacklevel=2)
    capture = word_timestamps and word_alignment == "captured"
    config = resolve_config(alignment_config, model.alignment_time_shift)  # the model's calibrated time shift
    if prepend_punctuations is not None:
        config = replace(config, prepend_punctuations=prepend_punctuations)
    if append_punctuations is not None:
        config = replace(config, append_punctuations=append_punctuations)
    if seek_to_last_word is None:
        seek_to_last_word = config.mode == "conformance"

    seek_clips = _seek_clips(clip_timestamps, content_frames)
    input_stride = N_FRAMES // model.dims.n_audio_ctx  # mel frames per audio position: 2
    time_precision = input_stride * HOP_LENGTH / SAMPLE_RATE  # seconds per timestamp step: 0.02

    all_tokens: list[int] = []
    all_segments: list[Segment] = []
    prompt_reset_since = 0
    initial_prompt_tokens = tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt is not None else []
    all_tokens.extend(initial_prompt_tokens)
    remaining_prompt_length = model.dims.n_text_ctx // 2 - 1 - len(initial_prompt_tokens)
    second_pass_windows = 0

    def decode_with_fallback(segment: Tensor) -> DecodingResult:
        result: DecodingResult | None = None
        for t in temperatures:
            kwargs = dict(options)
            if t > 0:  # sampling: no beams
                kwargs.pop("beam_size", None)
                kwargs.pop("patience", None)
            else:  # greedy / beams: no best_of
                kwargs.pop("best_of", None)
            kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "language"}
            opts = DecodingOptions(**kwargs, temperature=t, capture_attention=capture)
            result = DecodingTask(model, opts, tokenizer).run(segment[None])[0]
            too_repetitive = compression_ratio_threshold is not None and result.compression_ratio > compression_ratio_threshold
            too_unlikely = logprob_threshold is not None and result.avg_logprob < logprob_threshold
            silence = (no_speech_threshold is not None and result.no_speech_prob > no_speech_threshold
                       and too_unlikely)
            if silence or not (too_repetitive or too_unlikely):
                break
        assert result is not None  # temperatures is not empty
        return result

    show_bar = progress if progress is not None else verbose is False
    clip_idx, seek = 0, seek_clips[0][0]
    last_speech_timestamp = 0.0
    with _progress_bar(content_duration, show_bar) as bar:
        while clip_idx < len(seek_clips):
            clip_start, clip_end = seek_clips[clip_idx]
            seek = max(seek, clip_start)
            if seek >= clip_end:
                clip_idx += 1
                if clip_idx < len(seek_clips):
                    seek = seek_clips[clip_idx][0]
                continue
            time_offset = seek * HOP_LENGTH / SAMPLE_RATE
            window_end_time = (seek + N_FRAMES) * HOP_LENGTH / SAMPLE_RATE
            segment_size = min(N_FRAMES, content_frames - seek, clip_end - seek)
            segment_duration = segment_size * HOP_LENGTH / SAMPLE_RATE
            mel_segment = pad_or_trim(mel[:, seek : seek + segment_size], N_FRAMES).to(model.device)

            if carry_initial_prompt:
                ignored = max(len(initial_prompt_tokens), prompt_reset_since)
                options["prompt"] = initial_prompt_tokens + all_tokens[ignored:][-remaining_prompt_length:]
            else:
                options["prompt"] = all_tokens[prompt_reset_since:]

            result = decode_with_fallback(mel_segment)
            tokens = result.tokens
            if no_speech_threshold is not None and result.no_speech_prob > no_speech_threshold:
                if logprob_threshold is None or result.avg_logprob <= logprob_threshold:
                    seek += segment_size  # silence: skip the whole window
                    continue

            previous_seek = seek
            spans, single_timestamp_ending, seek = _split_segments(
                tokens, tokenizer.timestamp_begin, seek, segment_size, segment_duration, time_precision, input_stride
            )
            current = [
                Segment(id=0, seek=previous_seek, start=time_offset + start, end=time_offset + end,
                        text=tokenizer.decode([t for t in tokens[a:b] if t < tokenizer.eot]), tokens=tokens[a:b],
                        temperature=result.temperature, avg_logprob=result.avg_logprob,
                        compression_ratio=result.compression_ratio, no_speech_prob=result.no_speech_prob)
                for (a, b), (start, end) in spans
            ]

            if word_timestamps:
                used_second_pass = add_word_timestamps(
                    current, [span for span, _ in spans], result, model=model, tokenizer=tokenizer,
                    num_frames=segment_size, use_capture=capture, config=config,
                    last_speech_timestamp=last_speech_timestamp,
                )
                second_pass_windows += int(used_second_pass and capture)
                if seek_to_last_word and not single_timestamp_ending:
                    last_word_end = end_of_last_word(current)
                    if last_word_end is not None and last_word_end > time_offset:
                        seek = round(last_word_end * FRAMES_PER_SECOND)
                if hallucination_silence_threshold is not None:
                    skip_to = skip_hallucinations(
                        current, hallucination_silence_threshold, single_timestamp_ending, time_offset,
                        window_end_time, segment_duration, content_duration, content_frames,
                        previous_seek, segment_size, last_speech_timestamp,
                    )
                    if skip_to is not None:
                        seek, restart = skip_to
                        if restart:
                            continue
                last_word_end = end_of_last_word(current)
                if last_word_end is not None:
                    last_speech_timestamp = last_word_end

            if verbose:
                for s in current:
                    print(f"[{_format_time(s.start)} --> {_format_time(s.end)}] {s.text}")

            for s in current:  # an instantaneous or empty segment keeps its times but loses its content
                if s.start == s.end or s.text.strip() == "":
                    s.text, s.tokens, s.words = "", [], []
            for s in current:
                s.id = len(all_segments)
                all_segments.append(s)
            all_tokens.extend(t for s in current for t in s.tokens)
            if not condition_on_previous_text or result.temperature > 0.5:
                prompt_reset_since = len(all_tokens)  # a hot decode is not worth conditioning on
            bar.update((min(content_frames, seek) - previous_seek) / FRAMES_PER_SECOND)

    if second_pass_windows:
        warnings.warn(
            f"{second_pass_windows} window(s) filled the decoder's context, so their word timings came from a "
            "separate decoder pass instead of the captured attention", stacklevel=2,
        )
    return Transcription(
        text=tokenizer.decode(all_tokens[len(initial_prompt_tokens):]),
        segments=all_segments,
        language=language,
        duration=content_duration,
        word_alignment=word_alignment if word_timestamps else None,
        second_pass_windows=second_pass_windows,
    )


# ---- windows and segments ---------------------------------------------------------------------------------------


def _language_code(language: str) -> str:
    from .tokenizer import TO_LANGUAGE_CODE

    key = language.lower().strip()
    code = key if key in LANGUAGES else TO_LANGUAGE_CODE.get(key)
    if code is None:
        raise TranscriptError(f"unknown language {language!r}; use a code such as 'en' or a name such as 'english'")
    return code


def _seek_clips(clip_timestamps: str | Sequence[float], content_frames: int) -> list[tuple[int, int]]:
    """``"start,end,start,end,..."`` seconds (the last end defaulting to the end of the audio) -> mel-frame pairs."""
    if isinstance(clip_timestamps, str):
        try:
            clip_timestamps = [float(t) for t in clip_timestamps.split(",")] if clip_timestamps.strip() else []
        except ValueError:
            raise DecodingError(f"clip_timestamps {clip_timestamps!r} is not a comma-separated list of seconds") from None
    points = [round(t * FRAMES_PER_SECOND) for t in clip_timestamps] or [0]
    if len(points) % 2 == 1:
        points.append(content_frames)
    return list(zip(points[::2], points[1::2]))


def _split_segments(
    tokens: list[int], timestamp_begin: int, seek: int, segment_size: int, segment_duration: float,
    time_precision: float, input_stride: int,
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


# ---- output -----------------------------------------------------------------------------------------------------


def _format_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return (f"{hours:02d}:" if hours else "") + f"{minutes:02d}:{secs:02d}.{ms:03d}"


def _progress_bar(total_seconds: float, enabled: bool) -> Any:
    import tqdm

    return tqdm.tqdm(total=round(total_seconds, 2), unit="s", disable=not enabled,
                     bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")


__all__ = ["transcribe", "Transcription", "WORD_ALIGNMENTS"]
