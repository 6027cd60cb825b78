"""The alignment viewer: one self-contained HTML page (no network) showing a recording and its timed words.

The page (template ``viewer.html`` beside this module) draws the waveform on a canvas from min/max peaks
computed here, puts each word and segment in a box on a time axis, plays a word's span when it is clicked
(pausing at its end), and zooms (buttons, keys, ctrl+wheel) and scrolls for long recordings. Everything it
needs is embedded: the audio as a data URI (16 kHz 16-bit WAV for short clips, Opus in Ogg for longer ones,
which keeps an hour near 15 MB), the peaks and the words as JSON. Text is only ever inserted with
``textContent``, and the JSON is escaped so no word can end its script element.

:func:`write_viewer` writes the page, :func:`write_png` a static picture (matplotlib, see
:func:`whisper_align.results.plots.plot_words`); :func:`load_result` reads the JSON that ``align`` and
``transcribe`` write (openai-whisper's too, and an ``align --manifest`` output line).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import warnings
import wave
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError, OutputFormatError, PlotDependencyError, ResultFileError
from ..files import replacing
from ..frontend.audio import SAMPLE_RATE, load_audio
from .plots import plot_words, waveform_envelope
from .types import Result, Segment, Word

AUDIO_FORMATS = ("auto", "wav", "opus")
WAV_MAX_SECONDS = 30.0  # "auto" embeds WAV up to this length (lossless, exact timing), Opus beyond
OPUS_BITRATE = 24_000  # bits a second: clear speech at a tenth of 16-bit WAV's size
PEAK_RATE = 200.0  # waveform buckets a second (5 ms each) ...
MAX_PEAK_BUCKETS = 400_000  # ... but no more than this many in all (long files get coarser buckets)
LOW_PROBABILITY = 0.5  # words below this probability are outlined as doubtful
FIT_BELOW_SECONDS = 20.0  # recordings up to this long open zoomed to fit; longer ones at INITIAL_PPS
INITIAL_PPS = 80.0  # pixels a second for long recordings
PAST_AUDIO_TOLERANCE = 1.0  # seconds a word may start after the audio ends before the pair is refused

ResultSource = Result | Mapping[str, Any] | str | os.PathLike[str]
AudioSource = str | os.PathLike[str] | np.ndarray


# ---- reading and checking the inputs ---------------------------------------------------------------------------


def load_result(path: str | os.PathLike[str]) -> Result:
    """Read a result JSON written by ``align`` / ``transcribe`` (or openai-whisper), or one line of an
    ``align --manifest`` output (``{"id", "words"}``); :class:`ResultFileError` if it is none of these."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ResultFileError(f"the result file {os.fspath(path)!r} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ResultFileError(f"cannot read the result file {os.fspath(path)!r}: {reason}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        hint = " (a JSON-lines file: save the one line to show as its own .json file)" if "\n{" in text else ""
        raise ResultFileError(
            f"{os.fspath(path)!r} is not JSON ({error.msg} at line {error.lineno}){hint}; give the .json file "
            "that `whisper-align align -o x.json` or `transcribe -f json` wrote"
        ) from error
    return result_from_data(data, os.fspath(path))


def result_from_data(data: Any, where: str = "the result") -> Result:
    """A result from a parsed result dict (``segments``) or manifest output line (``words``), checked."""
    if isinstance(data, Mapping) and "error" in data and "words" not in data:
        raise ResultFileError(f"{where} is an error line ({data['error']}), not a result; align that clip again")
    if not isinstance(data, Mapping) or not ("segments" in data or "words" in data):
        raise ResultFileError(
            f"{where} is not a whisper-align result: it needs a 'segments' list (align/transcribe JSON) or a "
            "'words' list (an align --manifest output line)"
        )
    try:
        if "segments" in data:
            result = Result.from_dict(data)
        else:
            words = [Word.from_dict(w) for w in data["words"]]
            text = "".join(w.word for w in words)
            start, end = (words[0].start, words[-1].end) if words else (0.0, 0.0)
            result = Result(text=text, segments=[Segment(0, 0, start, end, text, words=words)])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ResultFileError(
            f"{where} is not a well-formed result ({type(error).__name__}: {error}); every segment needs start, "
            "end and text, every word word, start and end"
        ) from error
    check_result(result, where)
    return result


def check_result(result: Result, where: str = "the result") -> None:
    """:class:`ResultFileError` unless every word and segment time is finite and no span ends before it starts."""
    spans = [("segment", i, s.start, s.end, s.text) for i, s in enumerate(result.segments)]
    spans += [("word", i, w.start, w.end, w.word) for i, w in enumerate(result.words)]
    for kind, index, start, end, text in spans:
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start - 1e-6:
            raise ResultFileError(
                f"{where}: {kind} {index} ({text.strip()!r}) has the span [{start}, {end}]; times must be finite, "
                "non-negative seconds with start <= end"
            )


def check_matches_audio(result: Result, duration: float, where: str = "the result") -> None:
    """:class:`ResultFileError` when the result's words start well after the audio ends: they belong to
    another recording (a page of them would play the wrong sound, or silence)."""
    starts = [w.start for w in result.words] or [s.start for s in result.segments]
    latest = max(starts, default=0.0)
    if latest > duration + PAST_AUDIO_TOLERANCE:
        raise ResultFileError(
            f"{where} has words starting at {latest:.2f} s, but the audio is only {duration:.2f} s long; "
            "give the audio file this result was made from"
        )


def _load(result: ResultSource, audio: AudioSource) -> tuple[Result, np.ndarray, str]:
    """The checked result, the audio's 16 kHz samples and a default title for the page or picture."""
    if isinstance(result, Result):
        check_result(result)
        where = "the result"
    elif isinstance(result, Mapping):
        result = result_from_data(result)
        where = "the result"
    else:
        where = os.fspath(result)
        result = load_result(result)
    samples = load_audio(audio if isinstance(audio, np.ndarray) else Path(audio))
    check_matches_audio(result, samples.size / SAMPLE_RATE, where)
    title = Path(audio).name if not isinstance(audio, np.ndarray) else "alignment"
    return result, samples, title


# ---- the page --------------------------------------------------------------------------------------------------


def waveform_peaks(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[float, np.ndarray]:
    """The bucket rate and the int8 (min, max) pairs of ``samples`` the page draws its waveform from.

    Buckets are 1/``PEAK_RATE`` s, coarser when a recording would need more than ``MAX_PEAK_BUCKETS``. The
    values are scaled to the loudest sample, so a quiet recording still fills the picture.
    """
    duration = samples.size / sample_rate
    rate = min(PEAK_RATE, MAX_PEAK_BUCKETS / max(duration, 1e-9))
    envelope = waveform_envelope(samples, rate, sample_rate)
    peak = float(np.abs(envelope).max()) if envelope.size else 0.0
    scaled = np.round(envelope * (127.0 / peak)) if peak > 0 else np.zeros_like(envelope)
    return rate, np.clip(scaled, -127, 127).astype(np.int8)


def encode_audio(samples: np.ndarray, audio_format: str = "auto", sample_rate: int = SAMPLE_RATE) -> tuple[str, bytes]:
    """The audio to embed, as (MIME type, bytes): 16-bit WAV, or Opus in Ogg (``"auto"``: WAV up to
    ``WAV_MAX_SECONDS``, Opus beyond it, WAV with a warning if this PyAV has no Opus encoder)."""
    if audio_format not in AUDIO_FORMATS:
        raise OutputFormatError(f"unknown audio format {audio_format!r} for the viewer; use one of {AUDIO_FORMATS}")
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float32) * 32768.0), -32768, 32767).astype("<i2")
    wants_opus = audio_format == "opus" or (audio_format == "auto" and samples.size > WAV_MAX_SECONDS * sample_rate)
    if wants_opus:
        try:
            return "audio/ogg", _encode_opus(pcm, sample_rate)
        except _NoOpus as error:
            if audio_format == "opus":
                raise OutputFormatError(f"{error}; embed WAV instead (--audio-format wav)") from None
            warnings.warn(f"{error}; embedding 16-bit WAV, a larger page", stacklevel=2)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return "audio/wav", buffer.getvalue()


class _NoOpus(Exception):
    """This PyAV build cannot encode Opus."""


def _encode_opus(pcm: np.ndarray, sample_rate: int) -> bytes:
    """Mono 16-bit samples as Opus in an Ogg container (the page's audio for long recordings)."""
    import av

    try:
        av.codec.Codec("libopus", "w")
    except Exception as error:  # PyAV raises its own UnknownCodecError, whose module moved between versions
        raise _NoOpus(f"this PyAV build has no Opus encoder ({error})") from None
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        # complexity 4 with constrained VBR: about 8x faster than libopus's default 10 (an hour in ~20 s instead
        # of minutes) at nearly the same size; plenty for listening to words
        options = {"compression_level": "4", "vbr": "constrained"}
        stream = container.add_stream("libopus", rate=sample_rate, layout="mono", options=options)
        stream.bit_rate = OPUS_BITRATE
        step = 10 * sample_rate  # frames of 10 s: no second copy of a long recording at once
        for offset in range(0, pcm.size, step):
            frame = av.AudioFrame.from_ndarray(pcm[offset : offset + step].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = sample_rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def _page_data(result: Result, samples: np.ndarray) -> dict[str, Any]:
    """What the page's script reads: durations, peaks, words, segments and the display settings."""
    rate, peaks = waveform_peaks(samples)

    def number(value: float) -> float | None:  # JSON has no NaN: an unknown probability is null
        return round(float(value), 4) if math.isfinite(value) else None

    return {
        "duration": samples.size / SAMPLE_RATE,
        "peaks": {"rate": rate, "data": base64.b64encode(peaks.tobytes()).decode("ascii")},
        "words": [[w.word, w.start, w.end, number(w.probability), w.past_end] for w in result.words],
        "segments": [[s.text, s.start, s.end] for s in result.segments],
        "low_confidence": result.low_confidence,
        "alignment_score": None if result.alignment_score is None else number(result.alignment_score),
        "low_probability": LOW_PROBABILITY,
        "fit_below_seconds": FIT_BELOW_SECONDS,
        "initial_pps": INITIAL_PPS,
    }


def _script_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` survive outside escapes, so
    a word such as ``</script>`` stays a string."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_viewer(result: Result, samples: np.ndarray, title: str = "alignment", audio_format: str = "auto") -> str:
    """The viewer page for ``result`` over ``samples`` (16 kHz mono float32) as one HTML string."""
    mime, audio_bytes = encode_audio(samples, audio_format)
    fields = {
        "TITLE": html.escape(title),
        "AUDIO": f"data:{mime};base64," + base64.b64encode(audio_bytes).decode("ascii"),
        "DATA": _script_json(_page_data(result, samples)),
    }
    template = resources.files(__package__).joinpath("viewer.html").read_text(encoding="utf-8")
    # one pass, so a marker-like string inside a word is never replaced again
    return re.sub(r"__WA_([A-Z]+)__", lambda match: fields[match.group(1)], template)


# ---- writing ---------------------------------------------------------------------------------------------------


def _check_output(path: Path) -> None:
    """:class:`OutputError` (with the remedy) when ``path`` cannot be written: missing folder, a folder."""
    if path.is_dir():
        raise OutputError(f"the output {os.fspath(path)!r} is a folder; give a file name such as view.html")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {os.fspath(path)!r}: the folder {os.fspath(folder)!r} does not exist")


def _write_atomically(path: Path, write: Any) -> None:
    """Call ``write(temp_path)`` and move the file over ``path`` in one step; OS errors become OutputError."""
    _check_output(path)
    try:
        with replacing(path) as temp:
            write(temp)
    except OSError as error:
        raise OutputError(
            f"cannot write {os.fspath(path)!r}: {error.strerror or error}; choose another output path"
        ) from error


def write_viewer(
    result: ResultSource,
    audio: AudioSource,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    audio_format: str = "auto",
) -> Path:
    """Write the self-contained viewer page of ``result`` (a Result, a result dict or a result JSON path) over
    ``audio`` (a file any FFmpeg reads, or 16 kHz mono samples) to ``path``, atomically; return the path.

    ``audio_format`` is ``"auto"`` (WAV up to 30 s, Opus beyond), ``"wav"`` or ``"opus"``. Raises
    :class:`ResultFileError`, :class:`~whisper_align.errors.AudioError` or :class:`OutputError`, each saying
    what to do about it.
    """
    path = Path(path)
    _check_output(path)  # before decoding a long file
    loaded, samples, default_title = _load(result, audio)
    page = render_viewer(loaded, samples, title or default_title, audio_format)
    _write_atomically(path, lambda temp: temp.write_text(page, encoding="utf-8"))
    return path


def check_png_output(path: str | os.PathLike[str]) -> None:
    """Fail early, before any work, if a PNG cannot be written to ``path``: missing folder (:class:`OutputError`)
    or no matplotlib (:class:`PlotDependencyError`)."""
    _check_output(Path(path))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotDependencyError(
            "a PNG needs matplotlib, which is not installed: pip install 'whisper-align[plots]' (or write the HTML "
            "viewer instead: whisper-align view RESULT.json AUDIO -o view.html)"
        ) from None


def write_png(
    result: ResultSource, audio: AudioSource, path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Write a static PNG of ``audio``'s waveform with ``result``'s words (see ``plots.plot_words``) to
    ``path``, atomically; needs matplotlib (:class:`PlotDependencyError` otherwise)."""
    path = Path(path)
    _check_output(path)
    loaded, samples, default_title = _load(result, audio)
    figure = plot_words(samples, loaded, title=title or default_title)
    _write_atomically(path, lambda temp: figure.savefig(os.fspath(temp), format="png", dpi=figure.dpi))
    return path


__all__ = [
    "AUDIO_FORMATS",
    "ResultFileError",
    "check_matches_audio",
    "check_png_output",
    "check_result",
    "encode_audio",
    "load_result",
    "render_viewer",
    "result_from_data",
    "waveform_peaks",
    "write_png",
    "write_viewer",
]
