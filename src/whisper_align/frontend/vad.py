"""Voice-activity detection: where in a recording someone speaks, so that silence is skipped and long audio is cut
at pauses.

Two detectors give a speech score per short step of audio:

* ``"silero"``: the Silero VAD network (PyPI ``silero-vad``, the ``vad`` extra; its weights ship in the package;
  run through onnxruntime when that is installed, else TorchScript), a speech probability per 32 ms; speech
  starts where it reaches ``threshold`` and lasts until it falls below ``threshold - 0.15`` (Silero's own
  hysteresis);
* ``"energy"``: the level of 25 ms frames every 10 ms against the recording's own loud and quiet levels (its 95th
  and 10th percentiles): speech is above the higher of 35 dB below the loud level, 10 dB above the floor and
  -70 dBFS. Good on clean recordings and inserted silence, not on noise or music.

``"auto"`` uses Silero when it is installed, else the energy detector. Speech runs become regions: pauses shorter
than ``min_silence`` are bridged, regions shorter than ``min_speech`` dropped, and each region padded by ``pad``
on both sides (never past the audio or into its neighbour).

:func:`transcription_clips` turns regions into the stretches a transcription decodes: regions closer than
``max_pause`` share a clip while it stays within ``max_clip`` seconds (one 30-s window), and a region longer than
that is cut at its lowest score in the second half of each window. :func:`clip_to_speech` moves time spans (word
times) out of detected silence. This module works on samples and numbers only (no model, no results).
"""

from __future__ import annotations

import bisect
import importlib.util
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PostprocessError
from .audio import HOP_LENGTH, SAMPLE_RATE, load_audio

METHODS = ("auto", "silero", "energy")
_SILERO_STEP = 512  # samples per Silero decision at 16 kHz
_ENERGY_FRAME = 400  # 25 ms
_ENERGY_BELOW_LOUD_DB, _ENERGY_ABOVE_FLOOR_DB, _ENERGY_MIN_DB = 35.0, 10.0, -70.0

Span = tuple[float, float]


@dataclass(frozen=True)
class VadOptions:
    """How speech is detected (see the module's docstring); times in seconds."""

    method: str = "auto"
    threshold: float = 0.5  # Silero's speech probability
    min_silence: float = 0.3  # shorter pauses stay inside a region
    min_speech: float = 0.25  # shorter regions are dropped
    pad: float = 0.1  # added on both sides of a region
    max_pause: float = 2.0  # transcription: pauses at least this long are cut out, shorter ones decoded
    max_clip: float = 30.0  # transcription: the longest stretch decoded at once

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise PostprocessError(f"unknown voice-activity method {self.method!r}; choose one of {METHODS}")
        for name in ("min_silence", "min_speech", "pad", "max_pause"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise PostprocessError(f"VadOptions.{name} must be a number of seconds >= 0, not {value!r}")
        if not 0 < self.threshold < 1:
            raise PostprocessError(f"VadOptions.threshold is a probability between 0 and 1, not {self.threshold!r}")
        if not 1 <= self.max_clip <= 30:
            raise PostprocessError(f"VadOptions.max_clip must be 1 to 30 seconds (one window), not {self.max_clip!r}")


@dataclass(frozen=True)
class SpeechMap:
    """What a detector found: speech ``regions`` (seconds, sorted, apart), its ``scores`` (> 0 is speech) every
    ``step`` seconds, the audio's ``duration`` and the ``method`` that ran."""

    regions: list[Span]
    scores: np.ndarray
    step: float
    duration: float
    method: str


# ---- detectors ----------------------------------------------------------------------------------------------------


def silero_installed() -> bool:
    return importlib.util.find_spec("silero_vad") is not None


@lru_cache(maxsize=2)
def _silero_model(sequence: bool) -> Any:
    """Silero's network: the sequence ONNX form (one call per 16 s block) or the TorchScript one (one per step)."""
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad  # its import sets torch to one thread: undone below
    except ImportError as exc:
        raise PostprocessError(
            "the Silero voice-activity detector is not installed; `pip install 'whisper-align[vad]'`, or use "
            "method='energy'"
        ) from exc
    finally:
        torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its way of finding its weights is dated, not wrong
        return load_silero_vad(sequence=sequence)


def _silero_probabilities(samples: np.ndarray) -> np.ndarray:
    """Silero's speech probability every 32 ms. With onnxruntime, its sequence model (the same numbers, ~10x
    faster); else the TorchScript model step by step, on one thread (more threads only add hand-off time)."""
    audio = np.ascontiguousarray(samples, dtype=np.float32)
    if importlib.util.find_spec("onnxruntime") is not None:
        return np.asarray(_silero_model(True).audio_forward(audio, SAMPLE_RATE), dtype=np.float64)
    model = _silero_model(False)
    padded = torch.nn.functional.pad(torch.from_numpy(audio), (0, -len(audio) % _SILERO_STEP))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.reset_states()
        with torch.inference_mode():
            return np.array([float(model(chunk, SAMPLE_RATE)) for chunk in padded.split(_SILERO_STEP)])
    finally:
        model.reset_states()
        torch.set_num_threads(threads)


def _silero_scores(samples: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(speech mask, score = probability - threshold) per 32 ms, with Silero's hysteresis."""
    probs = _silero_probabilities(samples)
    mask = np.zeros(len(probs), dtype=bool)
    speaking = False
    for index, p in enumerate(probs):
        speaking = p >= threshold or (speaking and p >= threshold - 0.15)
        mask[index] = speaking
    return mask, probs - threshold


def _energy_scores(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(speech mask, dB above the threshold) per 10 ms frame."""
    padded = np.pad(samples.astype(np.float64), (0, _ENERGY_FRAME))
    n_frames = max(1, math.ceil(len(samples) / HOP_LENGTH))
    frames = np.lib.stride_tricks.sliding_window_view(padded, _ENERGY_FRAME)[::HOP_LENGTH][:n_frames]
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud, floor = np.percentile(level, 95), np.percentile(level, 10)
    threshold = max(loud - _ENERGY_BELOW_LOUD_DB, floor + _ENERGY_ABOVE_FLOOR_DB, _ENERGY_MIN_DB)
    return level > threshold, level - threshold


def _regions(mask: np.ndarray, step: float, duration: float, options: VadOptions) -> list[Span]:
    """Runs of ``mask`` as regions: short pauses bridged, short regions dropped, padding added."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    runs = [(start * step, min(end * step, duration)) for start, end in zip(edges[::2], edges[1::2])]
    bridged: list[Span] = []
    for start, end in runs:
        if bridged and start - bridged[-1][1] < options.min_silence:
            bridged[-1] = (bridged[-1][0], end)
        else:
            bridged.append((start, end))
    kept = [(start, end) for start, end in bridged if end - start >= options.min_speech]
    padded: list[Span] = []
    for start, end in kept:
        start, end = max(0.0, start - options.pad), min(duration, end + options.pad)
        if padded and start <= padded[-1][1]:
            padded[-1] = (padded[-1][0], end)
        else:
            padded.append((start, end))
    return [(round(float(start), 3), round(float(end), 3)) for start, end in padded]


def detect_speech(audio: str | Path | np.ndarray | torch.Tensor, options: VadOptions | None = None) -> SpeechMap:
    """Find the speech in ``audio`` (a path, or 16 kHz mono samples); audio that cannot be read (or has no
    samples) is an :class:`~whisper_align.errors.AudioError`."""
    options = options or VadOptions()
    samples = load_audio(audio)
    duration = len(samples) / SAMPLE_RATE
    method = options.method
    if method == "auto":
        method = "silero" if silero_installed() else "energy"
    if method == "silero":
        mask, scores = _silero_scores(samples, options.threshold)
        step = _SILERO_STEP / SAMPLE_RATE
    else:
        mask, scores = _energy_scores(samples)
        step = HOP_LENGTH / SAMPLE_RATE
    return SpeechMap(_regions(mask, step, duration, options), scores, step, duration, method)


def speech_regions(audio: str | Path | np.ndarray | torch.Tensor, options: VadOptions | None = None) -> list[Span]:
    """The (start, end) seconds of speech in ``audio``; see :func:`detect_speech`."""
    return detect_speech(audio, options).regions


# ---- using the regions --------------------------------------------------------------------------------------------


def _cut_long(region: Span, speech: SpeechMap, max_clip: float) -> list[Span]:
    """``region`` cut into pieces of at most ``max_clip`` s, each cut at the lowest score in its second half."""
    pieces: list[Span] = []
    start, end = region
    while end - start > max_clip:
        low = int(math.ceil((start + max_clip / 2) / speech.step))
        high = max(low + 1, int((start + max_clip) / speech.step))
        window = speech.scores[low:high]
        cut = (low + int(np.argmin(window))) * speech.step if len(window) else start + max_clip
        cut = min(max(cut, start + 1.0), start + max_clip)
        pieces.append((start, round(cut, 3)))
        start = round(cut, 3)
    pieces.append((start, end))
    return pieces


def transcription_clips(speech: SpeechMap, options: VadOptions | None = None) -> list[Span]:
    """The stretches to decode: speech regions, joined across pauses shorter than ``max_pause`` while a clip stays
    within ``max_clip``, and regions longer than ``max_clip`` cut at their quietest points."""
    options = options or VadOptions()
    pieces = [piece for region in speech.regions for piece in _cut_long(region, speech, options.max_clip)]
    clips: list[Span] = []
    for start, end in pieces:
        if clips and start - clips[-1][1] < options.max_pause and end - clips[-1][0] <= options.max_clip:
            clips[-1] = (clips[-1][0], end)
        else:
            clips.append((start, end))
    return clips


def _place(span: Span, regions: Sequence[Span], starts: list[float]) -> Span:
    start, end = span
    first = max(bisect.bisect_right(starts, start) - 1, 0)
    last = bisect.bisect_right(starts, end)
    best, best_overlap = None, 0.0
    for index in range(first, last):
        r_start, r_end = regions[index]
        if r_start <= start <= end <= r_end:
            return span  # inside one region (a zero-length span too)
        overlap = min(end, r_end) - max(start, r_start)
        if overlap > best_overlap:
            best, best_overlap = index, overlap
    if best is not None:
        r_start, r_end = regions[best]
        return max(start, r_start), min(end, r_end)
    after = bisect.bisect_right(starts, (start + end) / 2)  # the span lies in a pause: its nearer edge
    previous_end = regions[after - 1][1] if after > 0 else None
    next_start = regions[after][0] if after < len(regions) else None
    middle = (start + end) / 2
    if previous_end is not None and (next_start is None or middle - previous_end <= next_start - middle):
        return previous_end, previous_end
    assert next_start is not None
    return next_start, next_start


def clip_to_speech(spans: Sequence[Span], regions: Sequence[Span]) -> list[Span]:
    """``spans`` (in time order) moved out of the silence between ``regions``.

    A span inside a region stays; one that reaches into silence is clipped to the region it overlaps most (a word
    running on past the end of speech ends where speech ends); one wholly inside a pause becomes a zero-length
    span at the pause's nearer edge. The order is kept (starts never decrease, no span ends before it starts).
    Without regions the spans are returned unchanged.
    """
    if not regions:
        return list(spans)
    starts = [start for start, _ in regions]
    placed: list[Span] = []
    for span in spans:
        start, end = _place(span, regions, starts)
        if placed:
            start = max(start, placed[-1][0])
        placed.append((start, max(start, end)))
    return placed


__all__ = [
    "METHODS",
    "SpeechMap",
    "VadOptions",
    "clip_to_speech",
    "detect_speech",
    "silero_installed",
    "speech_regions",
    "transcription_clips",
]
