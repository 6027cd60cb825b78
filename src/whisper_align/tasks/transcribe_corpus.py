"""Transcribe a whole corpus: a JSON-lines manifest of ``{"id", "audio"}`` in, one JSON line per id out.

Each clip is transcribed on its own by :func:`~whisper_align.tasks.transcribe.transcribe` with word timestamps
(no packing: a clip's text must not depend on its neighbours). Output lines are
``{"id", "text", "language", "segments": [...]}``, each segment as openai-whisper writes it, with its ``words``;
or ``{"id", "error"}`` for a clip that failed or a malformed manifest line. The file follows the rules of
:func:`~whisper_align.tasks.corpus.align_corpus`: a rerun skips the ids already written (retrying error lines
unless ``retry_errors=False``), appends are all or nothing, and the file ends in manifest order, one line per id.
A ``text`` field in the manifest is allowed and ignored.

Sampling at a fallback temperature (a window whose greedy text failed the compression or log-probability checks)
draws random numbers: each clip is transcribed with torch's generator seeded afresh (:data:`SEED`, restored
afterwards), so a clip's line does not depend on the clips before it, on the worker that took it, or on whether
the run was resumed: every engine and every rerun writes the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import ManifestError, TranscriptError, WhisperAlignError
from ..model.whisper import Whisper
from .corpus import ClipResult, CorpusEntry, CorpusSummary, error_line, manifest_entries, write_results
from .transcribe import Transcription, transcribe

SEED = 0  # torch's seed for each clip's transcription

# options a manifest run sets itself: every clip gets word timestamps, and nothing is printed per clip
_FIXED_OPTIONS = ("verbose", "progress", "word_timestamps")


def transcription_line(clip_id: str, result: Transcription) -> str:
    """The output line of a transcribed clip: id, text, language and openai-whisper's segments with words."""
    segments = [segment.to_dict(include_words=True) for segment in result.segments]
    data = {"id": clip_id, "text": result.text, "language": result.language, "segments": segments}
    return json.dumps(data, ensure_ascii=False)


def check_options(options: dict[str, Any]) -> None:
    """Refuse options that a manifest run sets itself (:class:`TranscriptError`), before any work is done."""
    fixed = sorted(set(options) & set(_FIXED_OPTIONS))
    if fixed:
        raise TranscriptError(
            f"a manifest run sets {', '.join(fixed)} itself (word timestamps always, nothing printed); "
            "leave these options out"
        )


def transcribe_entry(
    model: Whisper, entry: CorpusEntry, options: dict[str, Any], audio: str | os.PathLike[str] | None = None
) -> ClipResult:
    """Transcribe one manifest entry; a malformed line or a clip that fails gives its error line instead.

    ``audio`` replaces the entry's own path (the Ray engine decodes audio given as bytes from a file of its
    own); ``options`` go to :func:`transcribe` (see :func:`check_options`). Both engines call this.
    """
    try:
        if entry.utterance is None:
            raise ManifestError(entry.problem or f"manifest line {entry.index + 1} cannot be used")
        source = os.fspath(audio if audio is not None else entry.utterance.audio)
        with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
            torch.manual_seed(SEED)
            result = transcribe(model, source, verbose=None, progress=False, word_timestamps=True, **options)
    except WhisperAlignError as error:
        return ClipResult(entry.id, str(error), error_line(entry.id, str(error)))
    return ClipResult(entry.id, None, transcription_line(entry.id, result))


def transcribe_corpus(
    model: Whisper,
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    retry_errors: bool = True,
    progress: bool = True,
    **options: Any,
) -> CorpusSummary:
    """Transcribe every line of ``manifest`` into ``out`` (see the module's docstring for the lines and rules).

    ``options`` are :func:`transcribe`'s (``language``, ``beam_size``, ``temperature``...), except those the run
    sets itself. The summary counts transcribed clips as ``aligned``. Raises what
    :func:`~whisper_align.tasks.corpus.align_corpus` raises for the manifest and the output file.
    """
    check_options(options)
    entries = manifest_entries(manifest, text_required=False)

    def produce(done: set[str]) -> Iterator[list[ClipResult]]:
        for entry in entries:
            if entry.id not in done:
                yield [transcribe_entry(model, entry, options)]

    return write_results(entries, out, produce, retry_errors=retry_errors, progress=progress, desc="transcribing")


def check_transcription_paths(manifest: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Fail early, before a model is loaded: a readable manifest, a writable ``out`` (see ``check_corpus_paths``)."""
    from .corpus_output import CorpusOutput

    manifest_entries(manifest, text_required=False)
    CorpusOutput.open(Path(out)).close()


__all__ = ["check_options", "check_transcription_paths", "transcribe_corpus", "transcribe_entry", "transcription_line"]
