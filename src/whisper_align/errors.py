"""The package's typed errors. Each message says what is wrong and what to do about it.

(``heads.AlignmentHeadsError`` lives in ``heads.py`` so that module imports nothing else of the package.)
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
