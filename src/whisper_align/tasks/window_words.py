"""Word timestamps for the segments of one decoded window, and openai-whisper's clean-ups that use them.

:func:`add_word_timestamps` takes the alignment heads' attention captured while the window was decoded (the rows
of its text tokens; see :class:`~whisper_align.tasks.decoding.DecodingOptions` ``capture_attention``), or, where capture
was impossible, runs one separate decoder pass as openai-whisper does; then the aligner's steps
(:func:`~whisper_align.alignment.attention.alignment_matrix`, :func:`~whisper_align.alignment.words.align_words`,
the punctuation merge) and openai's rules for overlong words at segment edges. :func:`skip_hallucinations` is
openai's ``hallucination_silence_threshold`` logic, which needs the word times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..alignment.attention import alignment_matrix
from ..alignment.word_refinement import RefineInputs, refine_timings
from ..alignment.words import (
    APPEND_PUNCTUATIONS,
    PREPEND_PUNCTUATIONS,
    TOKENS_PER_SECOND,
    AlignmentConfig,
    WordTiming,
    align_words,
    merge_punctuations,
    truncate_sentence_marks,
)
from ..frontend.audio import FRAMES_PER_SECOND, HOP_LENGTH, N_FRAMES, SAMPLE_RATE
from ..frontend.tokenizer import Tokenizer
from ..model.whisper import Whisper
from ..results.types import Segment, Word
from .decoding import DecodingResult
from .pieces import refine_inputs


@dataclass(frozen=True)
class DecodedWindow:
    """Where one decoded window lies: ``size`` mel frames from frame ``seek`` of audio ``content_frames`` long."""

    seek: int
    size: int
    content_frames: int

    @property
    def time_offset(self) -> float:
        return self.seek * HOP_LENGTH / SAMPLE_RATE

    @property
    def end_time(self) -> float:  # where a full 30 s window from ``seek`` would end
        return (self.seek + N_FRAMES) * HOP_LENGTH / SAMPLE_RATE

    @property
    def duration(self) -> float:
        return self.size * HOP_LENGTH / SAMPLE_RATE

    @property
    def content_duration(self) -> float:
        return self.content_frames * HOP_LENGTH / SAMPLE_RATE


def end_of_last_word(segments: list[Segment]) -> float | None:
    """End of the last word, else of the last segment (None without segments)."""
    for segment in reversed(segments):
        if segment.words:
            return segment.words[-1].end
    return segments[-1].end if segments else None


def add_word_timestamps(
    segments: list[Segment],
    spans: list[tuple[int, int]],
    result: DecodingResult,
    *,
    model: Whisper,
    tokenizer: Tokenizer,
    num_frames: int,
    use_capture: bool,
    config: AlignmentConfig,
    last_speech_timestamp: float,
) -> bool:
    """Give the segments of one window their words; True if a separate decoder pass was needed.

    One DTW runs over the text tokens of all the window's segments together (as openai-whisper's does), on the
    attention cropped to the window's real audio (``num_frames`` mel frames). The model's boundary refinement (if
    any) then moves the word boundaries, as in forced alignment.
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
        n_positions = num_frames // 2
        refine = None
        if result.mel is not None:  # the decoder's own text: no word of it is one the decoder did not expect
            refine = refine_inputs(model, result.mel, result.audio_features, 0, n_positions, text_given=False)
        alignment, median, longest = _word_timings(tokenizer, text_tokens, matrix, probs, config, num_frames, refine)
    _place_words(segments, per_segment, alignment, median, longest, last_speech_timestamp)
    return second_pass


def _captured_matrix(
    result: DecodingResult,
    spans: list[tuple[int, int]],
    tokenizer: Tokenizer,
    num_frames: int,
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
    matrix = alignment_matrix(
        attention[:, head_rows + rows + tail], num_frames // 2, config.medfilt_width, config.qk_scale
    )
    matrix = matrix[len(head_rows) : len(head_rows) + len(rows)]
    probs = [result.text_token_probs[p - begin] for p in positions]
    return matrix, probs


@torch.no_grad()
def _second_pass_matrix(
    model: Whisper,
    tokenizer: Tokenizer,
    text_tokens: list[int],
    audio_features: Tensor,
    num_frames: int,
    config: AlignmentConfig,
) -> tuple[Tensor, list[float]]:
    """openai-whisper's way: one decoder call over ``[sot sequence, <|notimestamps|>, text, EOT]``."""
    sot = list(tokenizer.sot_sequence)
    tokens = torch.tensor(
        [sot + [tokenizer.no_timestamps] + text_tokens + [tokenizer.eot]], device=audio_features.device
    )
    logits, scores = model.decoder(tokens, audio_features[None], qk_heads=model.alignment_heads_by_layer())
    assert logits is not None
    text_logits = logits[0, len(sot) : len(sot) + len(text_tokens), : tokenizer.eot].float()
    probs = text_logits.softmax(dim=-1)[torch.arange(len(text_tokens)), text_tokens].tolist()
    qk = torch.cat([scores[layer] for layer in sorted(scores)], dim=1)[0]
    matrix = alignment_matrix(qk, num_frames // 2, config.medfilt_width, config.qk_scale)[len(sot) : -1]
    return matrix, probs


def _word_timings(
    tokenizer: Tokenizer,
    text_tokens: list[int],
    matrix: Tensor,
    probs: list[float],
    config: AlignmentConfig,
    num_frames: int,
    refine: RefineInputs | None = None,
) -> tuple[list[WordTiming], float, float]:
    """The aligner's word rules on one window's matrix (rows: text tokens + 1): DTW, word times (seconds from the
    window start), openai's sentence-mark cap in conformance mode, punctuation merged. Also returns openai's
    median and maximum word durations, which the segment-boundary rules use."""
    words, word_tokens = tokenizer.split_to_word_tokens(text_tokens + [tokenizer.eot])
    duration = (num_frames // 2) / TOKENS_PER_SECOND
    timings = align_words(matrix.cpu().numpy(), words, word_tokens, probs, config, duration=duration)
    if refine is not None and config.refine and not config.conformance:
        refine_timings(timings, matrix.cpu().numpy(), refine, float(config.time_shift or 0.0), 0.0)
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
    segments: list[Segment],
    per_segment: list[list[int]],
    alignment: list[WordTiming],
    median: float,
    longest: float,
    last_speech_timestamp: float,
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
                words.append(
                    Word(
                        timing.word,
                        round(time_offset + timing.start, 2),
                        round(time_offset + timing.end, 2),
                        timing.probability,
                    )
                )
            taken += len(timing.tokens)
            index += 1
        if words:
            # after a pause, the first word(s) must not stretch back over the silence
            first_too_long = words[0].end - words[0].start > longest or (
                len(words) > 1 and words[1].end - words[0].start > longest * 2
            )
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


# ---- no overlaps (default mode) ---------------------------------------------------------------------------------


def clip_to_next_window(segments: list[Segment], next_start: float) -> None:
    """End the window's words and segments by ``next_start`` (seconds), where the next window starts, in place.

    A window that ends mid-segment keeps only its complete segments and the next window decodes again from their
    last timestamp; DTW over the whole window may still stretch their last words over the audio after it, which
    belongs to the next window's first segment (openai's rule of starting the next window at the last word's end
    avoids this, but moves the windows; see :mod:`whisper_align.tasks.transcribe`).
    """
    for segment in segments:
        for word in segment.words:
            word.start, word.end = min(word.start, next_start), min(word.end, next_start)
        segment.start, segment.end = min(segment.start, next_start), min(segment.end, next_start)


def keep_in_order(segments: list[Segment]) -> None:
    """Make words and segments follow one another, in place: each word starts at or after the previous word's end,
    each segment at or after the previous segment's end, and nothing ends before it starts. Catches the small
    overlaps that openai's segment-boundary rules can leave between a segment's first word and the word before."""
    word_end = segment_end = 0.0
    for segment in segments:
        for word in segment.words:
            word.start = max(word.start, word_end)
            word.end = word_end = max(word.end, word.start)
        segment.start = max(segment.start, segment_end)
        segment.end = segment_end = max(segment.end, segment.start)


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


def skip_hallucinations(
    current: list[Segment],
    threshold: float,
    window: DecodedWindow,
    single_timestamp_ending: bool,
    last_speech_timestamp: float,
) -> tuple[int, bool] | None:
    """openai-whisper's ``hallucination_silence_threshold``: drop anomalous segments surrounded by silence and
    seek past the silence. Returns (new seek, whether to redo the window from there) or None to keep the seek;
    may cut ``current`` short in place."""
    time_offset, window_end_time = window.time_offset, window.end_time
    seek: int | None = None
    if not single_timestamp_ending:
        last_word_end = end_of_last_word(current)
        if last_word_end is not None and last_word_end > time_offset:
            remaining = window_end_time - last_word_end
            seek = round(last_word_end * FRAMES_PER_SECOND) if remaining > threshold else window.seek + window.size
    first = next((s for s in current if s.words), None)
    if first is not None and _is_anomaly(first):
        gap = first.start - time_offset
        if gap > threshold:
            return window.seek + round(gap * FRAMES_PER_SECOND), True
    last_end = last_speech_timestamp
    for si, segment in enumerate(current):
        if not segment.words:
            continue
        if _is_anomaly(segment):
            following = next((s for s in current[si + 1 :] if s.words), None)
            next_start = following.words[0].start if following is not None else time_offset + window.duration
            silence_before = (
                segment.start - last_end > threshold or segment.start < threshold or segment.start - time_offset < 2.0
            )
            silence_after = (
                next_start - segment.end > threshold or _is_anomaly(following) or window_end_time - segment.end < 2.0
            )
            if silence_before and silence_after:
                seek = round(max(time_offset + 1, segment.start) * FRAMES_PER_SECOND)
                if window.content_duration - segment.end < threshold:
                    seek = window.content_frames
                del current[si:]
                break
        last_end = segment.end
    return None if seek is None else (seek, False)
