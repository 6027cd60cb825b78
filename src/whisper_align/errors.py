"""Every error whisper-align raises on purpose, under one base class. Each message says what is wrong and what
to do about it. This module imports nothing, so every module (``heads`` too, which must work without torch) may
import it."""


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


class DecodingError(WhisperAlignError, ValueError):
    """Decoding options that cannot work together or a model that cannot do what was asked."""


class QuantizationError(WhisperAlignError, RuntimeError):
    """A model that cannot be quantized, or a quantized model asked to do what only a float model can."""


class OutputFormatError(WhisperAlignError, ValueError):
    """An output path or format name that no writer handles, or an option no writer knows."""


class ResultError(WhisperAlignError, ValueError):
    """An operation on a result given an argument it cannot use (a probability threshold outside [0, 1])."""


class PlotDependencyError(WhisperAlignError, ImportError):
    """matplotlib, which plotting needs, is not installed."""


class OutputError(WhisperAlignError, OSError):
    """An output location that cannot be written: a missing or read-only folder, a full disk, a folder where a
    file should be. The message names the path; ``errno`` and ``filename`` are set when an OS call failed."""

    def __str__(self) -> str:  # OSError would print "[Errno N] None: filename" once errno is set
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class DamagedOutputError(WhisperAlignError, ValueError):
    """An existing output file that a resumed run cannot read: a line that is not one of its results."""


class AlignmentHeadsError(WhisperAlignError, ValueError):
    """Alignment heads that cannot be read or do not fit the model: bad dump, bad pairs, wrong shape, unknown name.

    Raised by :mod:`whisper_align.heads` (which re-exports it) and by ``Whisper.set_alignment_heads``.
    """


class RefineError(WhisperAlignError, ValueError):
    """Inputs or parameters of the boundary refinement that do not fit together (shape, kind, version)."""


class ResultFileError(WhisperAlignError, ValueError):
    """A saved result that cannot be used: a missing or unreadable file, not JSON, not a result with segments or
    words, broken word times, or words far past the end of the audio it is shown with."""


class PostprocessError(WhisperAlignError, ValueError):
    """Input or options of a step after decoding that cannot work: regrouping a result without word timestamps,
    a malformed speaker (RTTM) line, a voice-activity detector that is not installed or given bad settings."""


class EngineError(WhisperAlignError, RuntimeError):
    """A distributed run that cannot start or go on: Ray not installed, a cluster that cannot be reached or lacks
    the workers' resources, a worker that failed. Results written so far are kept; a rerun resumes."""


class DamagedAudioWarning(UserWarning):
    """Audio whose file is damaged in a way whisper-align recognises (16-bit samples read one byte off after a
    lost or added byte) and, unless told not to, undoes; the message says where and what was done."""
