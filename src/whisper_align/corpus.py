"""Align a whole corpus: a JSON-lines manifest in, a JSON-lines file of timed words out.

Short clips are mostly padding when each gets its own 30 s window, so clips are *packed*: consecutive clips go
into one window, separated by a short silence, until it is full. The window is encoded once; every clip is a
:class:`~whisper_align.aligner.Piece` whose attention is cropped to its own stretch of the window, so the clips do
not see each other's text. Clips longer than a window go through :func:`~whisper_align.aligner.align_long`.

Output is appended one line per clip and flushed after each window, so an interrupted run loses at most the
window in flight; a rerun reads the ids already written and skips them (a torn last line is cut off first).
Clips that fail (unreadable audio, text that does not fit) get a line with an ``"error"`` instead of ``"words"``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .aligner import Piece, align_long, check_fits, prepare_text, run_pieces, window_mel, words_of_piece
from .alignment.words import AlignmentConfig, resolve_config
from .audio import N_SAMPLES, N_SAMPLES_PER_TOKEN, SAMPLE_RATE, load_audio
from .errors import WhisperAlignError
from .evaluation import Utterance, load_manifest
from .model import Whisper
from .tokenizer import Tokenizer, get_tokenizer

GAP_SECONDS = 0.5  # silence between packed clips


@dataclass
class _Clip:
    utterance: Utterance
    samples: np.ndarray
    tokens: list[int]


@dataclass
class _Window:
    clips: list[_Clip] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # first sample of each clip in the window
    length: int = 0  # samples used so far

    def fits(self, n_samples: int, gap: int) -> bool:
        return self.length + (gap if self.clips else 0) + n_samples <= N_SAMPLES

    def add(self, clip: _Clip, gap: int) -> None:
        start = self.length + (gap if self.clips else 0)
        self.clips.append(clip)
        self.starts.append(start)
        self.length = start + len(clip.samples)

    def audio(self) -> np.ndarray:
        out = np.zeros(self.length, dtype=np.float32)
        for clip, start in zip(self.clips, self.starts):
            out[start : start + len(clip.samples)] = clip.samples
        return out


@dataclass
class CorpusSummary:
    aligned: int = 0
    skipped: int = 0  # already in the output
    failed: int = 0


def done_ids(out_path: Path) -> set[str]:
    """Ids already written to ``out_path``; a torn last line (an interrupted write) is cut off."""
    if not out_path.exists():
        return set()
    data = out_path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep < len(data):
        with open(out_path, "r+b") as f:
            f.truncate(keep)
    ids = set()
    for line in data[:keep].splitlines():
        if line.strip():
            ids.add(str(json.loads(line)["id"]))
    return ids


def _windows(clips: Iterator[_Clip], pack: bool, gap: int) -> Iterator[_Window | _Clip]:
    """Group clips into windows; a clip too long for a window comes out alone, as a _Clip."""
    window = _Window()
    for clip in clips:
        if len(clip.samples) > N_SAMPLES:
            yield clip
            continue
        if window.clips and (not pack or not window.fits(len(clip.samples), gap)):
            yield window
            window = _Window()
        window.add(clip, gap)
    if window.clips:
        yield window


def _line(clip_id: str, words: list | None = None, error: str | None = None) -> str:
    if error is not None:
        return json.dumps({"id": clip_id, "error": error}, ensure_ascii=False)
    rows = [
        {"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3), "probability": round(w.probability, 4)}
        for w in words or []
    ]
    return json.dumps({"id": clip_id, "words": rows}, ensure_ascii=False)


def align_packed_window(
    model: Whisper, tokenizer: Tokenizer, window: _Window, config: AlignmentConfig, probabilities: bool = True
) -> list[list]:
    """Align every clip of a packed window; returns each clip's words, times relative to the clip."""
    with torch.inference_mode():
        features = model.embed_audio(window_mel(model, window.audio())[None].to(model.device))
    pieces = []
    for clip, start in zip(window.clips, window.starts):
        first = start // N_SAMPLES_PER_TOKEN
        last = max(first + 1, -(-(start + len(clip.samples)) // N_SAMPLES_PER_TOKEN))
        pieces.append(Piece(0, clip.tokens, first, min(last, features.shape[1])))
    results = run_pieces(model, tokenizer, features, pieces, probabilities)
    out = []
    for clip, start, piece, (qk, probs) in zip(window.clips, window.starts, pieces, results):
        offset = (piece.first * N_SAMPLES_PER_TOKEN - start) / SAMPLE_RATE  # region start, relative to the clip
        words = words_of_piece(tokenizer, qk.float().cpu(), clip.tokens, probs, config, offset)
        duration = len(clip.samples) / SAMPLE_RATE
        for w in words:  # the region may reach one position past the clip: clamp
            w.start, w.end = min(max(w.start, 0.0), duration), min(max(w.end, 0.0), duration)
        out.append(words)
    return out


def align_corpus(
    model: Whisper,
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    language: str | None = None,
    config: AlignmentConfig | None = None,
    pack: bool = True,
    probabilities: bool = True,
    progress: bool = True,
) -> CorpusSummary:
    """Align every line of ``manifest`` ({"id", "audio", "text"}) and append results to ``out`` (JSON lines).

    Lines: ``{"id", "words": [{"word", "start", "end", "probability"}]}`` with times in seconds from the start
    of the clip, or ``{"id", "error"}``. Ids already in ``out`` are skipped, so a rerun resumes.
    """
    from tqdm import tqdm

    config = resolve_config(config, model.alignment_time_shift)
    tokenizer = get_tokenizer(model, language=language)
    utterances = load_manifest(manifest)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    finished = done_ids(out_path)
    todo = [u for u in utterances if u.id not in finished]
    summary = CorpusSummary(skipped=len(utterances) - len(todo))
    gap = int(GAP_SECONDS * SAMPLE_RATE)
    bar = tqdm(total=len(todo), unit="clip", disable=not progress, desc="aligning")

    with open(out_path, "a", encoding="utf-8") as sink:

        def emit(lines: list[str]) -> None:
            sink.write("".join(line + "\n" for line in lines))
            sink.flush()
            os.fsync(sink.fileno())
            bar.update(len(lines))

        def clips() -> Iterator[_Clip]:
            for u in todo:
                try:
                    samples = load_audio(u.audio)
                    tokens = prepare_text(tokenizer, u.text)
                    if len(samples) <= N_SAMPLES:
                        check_fits(len(tokens), max(1, len(samples) // N_SAMPLES_PER_TOKEN), model, tokenizer)
                except WhisperAlignError as error:
                    summary.failed += 1
                    emit([_line(u.id, error=str(error))])
                    continue
                yield _Clip(u, samples, tokens)

        for item in _windows(clips(), pack, gap):
            if isinstance(item, _Clip):
                try:
                    words = align_long(model, tokenizer, item.samples, item.tokens, config, probabilities)
                    emit([_line(item.utterance.id, words)])
                    summary.aligned += 1
                except WhisperAlignError as error:
                    summary.failed += 1
                    emit([_line(item.utterance.id, error=str(error))])
                continue
            results = align_packed_window(model, tokenizer, item, config, probabilities)
            emit([_line(clip.utterance.id, words) for clip, words in zip(item.clips, results)])
            summary.aligned += len(item.clips)
    bar.close()
    return summary


__all__ = ["align_corpus", "align_packed_window", "done_ids", "CorpusSummary", "GAP_SECONDS"]
