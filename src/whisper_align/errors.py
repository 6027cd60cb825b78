"""The package's typed errors. Each message says what is wrong and what to do about it.

This module imports nothing of the package, so every module (``heads.py`` too, which must work without torch)
can raise these.
"""


class WhisperAlignError(Exception):
    """Base class of every error whisper-align raises on purpose."""


class ModelLoadError(WhisperAlignError, RuntimeError):
    """A model name or checkpoint that cannot be loaded (unknown name, offline, unreadable or unsupported file)."""


class AudioError(WhisperAlignError, ValueError):
    """Audio that cannot be read or used: missing, undecodable, empty."""


class TranscriptError(WhisperAlignError, ValueError):
    """A transcript that cannot be aligned: empty, untokenizable, or far longer than the audio can hold."""


class ManifestError(WhisperAlignError, ValueError):
    """A manifest line that is not valid JSON or lacks a required field."""


class AlignmentHeadsError(WhisperAlignError, ValueError):
    """Alignment heads that cannot be read or do not fit the model: bad dump, bad pairs, wrong shape, unknown name.

    Raised by :mod:`whisper_align.heads` (which re-exports it) and by ``Whisper.set_alignment_heads``.
    """
