"""whisper-align: exact word-level timestamps from Whisper models through their cross-attention alignment heads.

The public API, imported on first use (so `import whisper_align.heads` and the CLI start without loading torch):

- ``load_model(name_or_path)``, ``save_model(model, path, format=...)``, ``quantize_int8(model)`` (fast CPU)
- ``align(model, audio, text)`` -> :class:`Result`; ``align_corpus(model, manifest, out)``
- ``transcribe(model, audio, word_timestamps=True)`` -> :class:`Result`; ``transcribe_speech`` (only the speech
  a voice-activity detector finds), ``speech_regions(audio)``, ``snap_to_speech(result, regions)``
- ``regroup(result, ...)`` (segments by pauses, punctuation, length), ``assign_speakers(result, turns_or_rttm)``
- ``heads``: the official heads and the dump / pairs / whisper.cpp codecs
- ``AlignmentConfig``, ``Word``, ``Segment``, ``Result``
- ``write_viewer(result, audio, "view.html")``: a self-contained page to see and hear the alignment
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

__version__ = "0.1.0"


def _spin_briefly() -> None:
    """Have torch's OpenMP threads sleep soon when they wait, unless the user chose otherwise.

    libgomp's threads spin for a long time at every barrier by default. On a machine whose cores are all
    busy with something else too (a laptop, a shared box), a small decoding step's threads then wait for a thread
    that is not running, and transcription runs several times slower than on one thread. A short spin keeps the
    speed on an idle machine (benchmarks/whole_process.py measures both). It must be set before torch loads
    libgomp, so it only applies when torch is not imported yet.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("GOMP_SPINCOUNT", "1000")


_spin_briefly()

_LAZY = {
    "load_model": "checkpoints",
    "save_model": "checkpoints",
    "quantize_int8": "model.int8",
    "align": "tasks.align",
    "align_corpus": "tasks.corpus",
    "transcribe": "tasks.transcribe",
    "transcribe_speech": "tasks.speech",
    "snap_to_speech": "tasks.speech",
    "speech_regions": "frontend.vad",
    "VadOptions": "frontend.vad",
    "regroup": "results.regroup",
    "assign_speakers": "results.speakers",
    "read_rttm": "results.speakers",
    "AlignmentConfig": "alignment.words",
    "Word": "results.types",
    "Segment": "results.types",
    "Result": "results.types",
    "write_viewer": "results.viewer",
    "load_audio": "frontend.audio",
    "DamagedAudioWarning": "errors",
}
__all__ = [*_LAZY, "heads", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "heads":
        return importlib.import_module(f"{__name__}.heads")
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'whisper_align' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API too, though it is imported on first use (so tab completion and ``dir()`` show it)."""
    return sorted({*globals(), *__all__})
