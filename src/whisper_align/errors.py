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


class OutputError(WhisperAlignError, OSError):
    """An output location that cannot be written: a missing or read-only folder, a full disk, a folder where a
    file should be. The message names the path; ``errno`` and ``filename`` are set when an OS call failed."""

    def __str__(self) -> str:  # OSError would print "[Errno N] None: filename" once errno is set
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class DamagedOutputError(WhisperAlignError, ValueError):
    """An existing output file that a resumed run cannot read: a line that is not one of its results."""
