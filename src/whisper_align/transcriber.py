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
heuristics for long words at segment boundaries.
Where capture is impossible (a window whose decoding filled the whole text context) a separate pass over
``[sot sequence, <|notimestamps|>, text, EOT]`` is run for that window, as openai-whisper always does; the result's
``second_pass_windows`` counts such windows and a warning says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from .alignment.attention import alignment_matrix
from .alignment.words import (APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS, TOKENS_PER_SECOND, AlignmentConfig,
                              WordTiming, align_words, merge_punctuations, resolve_config,
                              truncate_sentence_marks)
from .audio import FRAMES_PER_SECOND, HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE, log_mel_spectrogram, pad_or_trim
from .decoding import DecodingError, DecodingOptions, DecodingResult, DecodingTask, detect_language
from .errors import TranscriptError
from .model import Whisper
from .tokenizer import LANGUAGES, Tokenizer, get_tokenizer
from .types import Result, Segment, Word

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

    With word timestamps, a window that ends mid-segment is followed by one starting at its last word's end
    (as in openai-whisper), so captured timings can shift later windows by a frame or two relative to openai's.
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
                used_second_pass = _add_word_timestamps(
                    current, [span for span, _ in spans], result, model=model, tokenizer=tokenizer,
                    num_frames=segment_size, use_capture=capture, config=config,
                    last_speech_timestamp=last_speech_timestamp,
                )
                second_pass_windows += int(used_second_pass and capture)
                if not single_timestamp_ending:
                    last_word_end = _last_end(current)
                    if last_word_end is not None and last_word_end > time_offset:
                        seek = round(last_word_end * FRAMES_PER_SECOND)
                if hallucination_silence_threshold is not None:
                    skip_to = _skip_hallucinations(
                        current, hallucination_silence_threshold, single_timestamp_ending, time_offset,
                        window_end_time, segment_duration, content_duration, content_frames,
                        previous_seek, segment_size, last_speech_timestamp,
                    )
                    if skip_to is not None:
                        seek, restart = skip_to
                        if restart:
                            continue
                last_word_end = _last_end(current)
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


def _last_end(segments: list[Segment]) -> float | None:
    """End of the last word, else of the last segment (None without segments)."""
    for segment in reversed(segments):
        if segment.words:
            return segment.words[-1].end
    return segments[-1].end if segments else None


# ---- word timestamps --------------------------------------------------------------------------------------------


def _add_word_timestamps(
    segments: list[Segment], spans: list[tuple[int, int]], result: DecodingResult, *, model: Whisper,
    tokenizer: Tokenizer, num_frames: int, use_capture: bool, config: AlignmentConfig, last_speech_timestamp: float,
) -> bool:
    """Give the segments of one window their words; True if a separate decoder pass was needed.

    One DTW runs over the text tokens of all the window's segments together (as openai-whisper's does), on the
    attention cropped to the window's real audio (``num_frames`` mel frames).
    """
    if not segments:
        return False
    eot = tokenizer.eot
    per_segment = [[t for t in s.tokens if t < eot] for s in segments]
    text_tokens = [t for tokens in per_segment for t in tokens]
    second_pass = False
    alignment: list[WordTiming] = []
    median = longest = 0.0
    if text_tokens:
        found = _captured_matrix(result, spans, tokenizer, num_frames, config) if use_capture else None
        if found is None:
            second_pass = True
            found = _second_pass_matrix(model, tokenizer, text_tokens, result.audio_features, num_frames, config)
        matrix, probs = found
        alignment, median, longest = _word_timings(tokenizer, text_tokens, matrix, probs, config, num_frames)
    _place_words(segments, per_segment, alignment, median, longest, last_speech_timestamp)
    return second_pass


def _captured_matrix(
    result: DecodingResult, spans: list[tuple[int, int]], tokenizer: Tokenizer, num_frames: int,
    config: AlignmentConfig,
) -> tuple[Tensor, list[float]] | None:
    """The alignment matrix of the kept text tokens from the attention captured while decoding (None if absent).

    Row choice mirrors openai's second pass, whose matrix rows are the queries that predicted each text token
    (the no-timestamps token, then text tokens) and the last text token: here the predecessor of each text token
    in the decoded sequence (a timestamp or the previous text token) and the last text token. The sot-sequence
    rows and the row after the last text token (openai's EOT row) join the per-token normalisation, then go.
    """
    attention = result.attention
    if attention is None:
        return None
    eot, begin = tokenizer.eot, len(result.initial_tokens)
    positions = [begin + i for a, b in spans for i in range(a, b) if result.tokens[i] < eot]
    if attention.shape[1] != begin + len(result.tokens) or not positions:
        return None
    sot_index = result.initial_tokens.index(tokenizer.sot)
    head_rows = list(range(sot_index, begin))
    rows = [p - 1 for p in positions] + [positions[-1]]
    tail = [positions[-1] + 1] if positions[-1] + 1 < attention.shape[1] else []
    matrix = alignment_matrix(attention[:, head_rows + rows + tail], num_frames // 2, config.medfilt_width, config.qk_scale)
    matrix = matrix[len(head_rows) : len(head_rows) + len(rows)]
    probs = [result.text_token_probs[p - begin] for p in positions]
    return matrix, probs


@torch.no_grad()
def _second_pass_matrix(
    model: Whisper, tokenizer: Tokenizer, text_tokens: list[int], audio_features: Tensor, num_frames: int,
    config: AlignmentConfig,
) -> tuple[Tensor, list[float]]:
    """openai-whisper's way: one decoder call over ``[sot sequence, <|notimestamps|>, text, EOT]``."""
    sot = list(tokenizer.sot_sequence)
    tokens = torch.tensor([sot + [tokenizer.no_timestamps] + text_tokens + [tokenizer.eot]], device=audio_features.device)
    logits, scores = model.decoder(tokens, audio_features[None], qk_heads=model.alignment_heads_by_layer())
    assert logits is not None
    text_logits = logits[0, len(sot) : len(sot) + len(text_tokens), : tokenizer.eot].float()
    probs = text_logits.softmax(dim=-1)[torch.arange(len(text_tokens)), text_tokens].tolist()
    qk = torch.cat([scores[layer] for layer in sorted(scores)], dim=1)[0]
    matrix = alignment_matrix(qk, num_frames // 2, config.medfilt_width, config.qk_scale)[len(sot) : -1]
    return matrix, probs


def _word_timings(
    tokenizer: Tokenizer, text_tokens: list[int], matrix: Tensor, probs: list[float], config: AlignmentConfig,
    num_frames: int,
) -> tuple[list[WordTiming], float, float]:
    """The aligner's word rules on one window's matrix (rows: text tokens + 1): DTW, word times (seconds from the
    window start), openai's sentence-mark cap in conformance mode, punctuation merged. Also returns openai's
    median and maximum word durations, which the segment-boundary rules use."""
    words, word_tokens = tokenizer.split_to_word_tokens(text_tokens + [tokenizer.eot])
    duration = (num_frames // 2) / TOKENS_PER_SECOND
    timings = align_words(matrix.cpu().numpy(), words, word_tokens, probs, config, duration=duration)
    if config.conformance:
        median, longest = truncate_sentence_marks(timings)
    else:
        durations = np.array([t.end - t.start for t in timings])
        durations = durations[durations.nonzero()]
        median = min(0.7, float(np.median(durations))) if len(durations) else 0.0
        longest = 2 * median
    merge_punctuations(timings, config.prepend_punctuations, config.append_punctuations)
    return timings, median, longest


def _place_words(
    segments: list[Segment], per_segment: list[list[int]], alignment: list[WordTiming], median: float,
    longest: float, last_speech_timestamp: float,
) -> None:
    """openai-whisper's hand-out of a window's words to its segments, then its reconciliation of word and segment
    boundaries (a first word stretched over a pause is cut back; an overlong first/last word yields to the
    segment's timestamp, otherwise the segment takes its words' span)."""
    time_offset = segments[0].seek * HOP_LENGTH / SAMPLE_RATE
    index = 0
    for segment, text_tokens in zip(segments, per_segment):
        taken, words = 0, []
        while index < len(alignment) and taken < len(text_tokens):
            timing = alignment[index]
            if timing.word:
                words.append(Word(timing.word, round(time_offset + timing.start, 2),
                                  round(time_offset + timing.end, 2), timing.probability))
            taken += len(timing.tokens)
            index += 1
        if words:
            # after a pause, the first word(s) must not stretch back over the silence
            first_too_long = words[0].end - words[0].start > longest or (
                len(words) > 1 and words[1].end - words[0].start > longest * 2)
            if words[0].end - last_speech_timestamp > median * 4 and first_too_long:
                if len(words) > 1 and words[1].end - words[1].start > longest:
                    boundary = max(words[1].end / 2, words[1].end - longest)
                    words[0].end = words[1].start = boundary
                words[0].start = max(0, words[0].end - longest)
            # trust the segment's timestamps over an overlong first or last word
            if segment.start < words[0].end and segment.start - 0.5 > words[0].start:
                words[0].start = max(0, min(words[0].end - median, segment.start))
            else:
                segment.start = words[0].start
            if segment.end > words[-1].start and segment.end + 0.5 < words[-1].end:
                words[-1].end = max(words[-1].start + median, segment.end)
            else:
                segment.end = words[-1].end
            last_speech_timestamp = segment.end
        segment.words = words


# ---- hallucinations over silence --------------------------------------------------------------------------------

_PUNCTUATION = PREPEND_PUNCTUATIONS + APPEND_PUNCTUATIONS


def _word_anomaly(word: Word) -> float:
    """How implausible a word looks: improbable, very short or very long."""
    duration = word.end - word.start
    score = 1.0 if word.probability < 0.15 else 0.0
    if duration < 0.133:
        score += (0.133 - duration) * 15
    if duration > 2.0:
        score += duration - 2.0
    return score


def _is_anomaly(segment: Segment | None) -> bool:
    if segment is None or not segment.words:
        return False
    words = [w for w in segment.words if w.word not in _PUNCTUATION][:8]
    score = sum(_word_anomaly(w) for w in words)
    return score >= 3 or score + 0.01 >= len(words)


def _skip_hallucinations(
    current: list[Segment], threshold: float, single_timestamp_ending: bool, time_offset: float,
    window_end_time: float, segment_duration: float, content_duration: float, content_frames: int,
    previous_seek: int, segment_size: int, last_speech_timestamp: float,
) -> tuple[int, bool] | None:
    """openai-whisper's ``hallucination_silence_threshold``: drop anomalous segments surrounded by silence and
    seek past the silence. Returns (new seek, whether to redo the window from there) or None to keep the seek;
    may cut ``current`` short in place."""
    seek: int | None = None
    if not single_timestamp_ending:
        last_word_end = _last_end(current)
        if last_word_end is not None and last_word_end > time_offset:
            remaining = window_end_time - last_word_end
            seek = round(last_word_end * FRAMES_PER_SECOND) if remaining > threshold else previous_seek + segment_size
    first = next((s for s in current if s.words), None)
    if first is not None and _is_anomaly(first):
        gap = first.start - time_offset
        if gap > threshold:
            return previous_seek + round(gap * FRAMES_PER_SECOND), True
    last_end = last_speech_timestamp
    for si, segment in enumerate(current):
        if not segment.words:
            continue
        if _is_anomaly(segment):
            following = next((s for s in current[si + 1 :] if s.words), None)
            next_start = following.words[0].start if following is not None else time_offset + segment_duration
            silence_before = (segment.start - last_end > threshold or segment.start < threshold
                              or segment.start - time_offset < 2.0)
            silence_after = (next_start - segment.end > threshold or _is_anomaly(following)
                             or window_end_time - segment.end < 2.0)
            if silence_before and silence_after:
                seek = round(max(time_offset + 1, segment.start) * FRAMES_PER_SECOND)
                if content_duration - segment.end < threshold:
                    seek = content_frames
                del current[si:]
                break
        last_end = segment.end
    return None if seek is None else (seek, False)


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
