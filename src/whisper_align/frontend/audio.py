"""Audio in, log-mel spectrogram out: decoding (PyAV), the mel filterbank and Whisper's log-mel features.

Everything downstream works on 16 kHz mono float32 samples in [-1, 1]. Files are decoded with PyAV (FFmpeg's
libraries, no ``ffmpeg`` binary needed), downmixed and resampled to 16-bit mono at 16 kHz in one step — the same
conversion openai-whisper asks the ffmpeg command line for — then scaled to float32. Mono WAVs already at 16 kHz
(most speech corpora: 8-, 16-, 24- or 32-bit PCM, 32- or 64-bit float) skip FFmpeg: their samples are read directly
and rounded to 16 bits as FFmpeg rounds them, which gives the very same values.

NaN or infinite samples are refused (:class:`AudioError`) wherever audio comes in: arrays, float WAVs read
directly, and float samples decoded by FFmpeg, which are checked before FFmpeg's conversion to 16 bits would
silently turn them into full-scale values (NaN and +inf both become -1.0).

The features are exactly openai-whisper's: a 400-point STFT with a 160-sample hop (100 frames a second), an
80- or 128-band Slaney mel filterbank (computed here, equal to ``librosa.filters.mel``), log10, a dynamic range
clipped to 8 (i.e. 80 dB) below the loudest value, and the affine map ``(x + 4) / 4``.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import AudioError, DamagedAudioWarning
from .byte_shift import byte_shifted_spans, repair_byte_shift

if TYPE_CHECKING:  # PyAV is imported only when a file needs FFmpeg
    from av import AudioStream
    from av.container import InputContainer

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH = 30  # seconds of audio the encoder sees at once
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000 samples in a 30-second chunk
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames in a chunk
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 mel frames a second (10 ms each)
N_SAMPLES_PER_TOKEN = HOP_LENGTH * 2  # the encoder's second convolution has stride 2
TOKENS_PER_SECOND = SAMPLE_RATE // N_SAMPLES_PER_TOKEN  # 50 audio positions a second (20 ms each)

# WAV format tags (the `wFormatTag` of a `fmt ` chunk); an extensible header names one of the first two in its
# subformat GUID, whose first two bytes are the tag.
_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# (format tag, bits per sample) of the mono WAVs read without FFmpeg
_DIRECT_WAV_FORMATS = {(1, 8), (1, 16), (1, 24), (1, 32), (3, 32), (3, 64)}
# FFmpeg's decoded sample formats that can hold NaN or infinity
_FLOAT_SAMPLE_FORMATS = {"flt", "fltp", "dbl", "dblp"}

# A 2-D array with more rows than this is taken to be (samples, channels) by mistake, not (channels, samples).
_MAX_CHANNELS = 16

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


# ---- loading ---------------------------------------------------------------------------------------------------


def load_audio(
    source: str | Path | np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE, *, repair: bool = True
) -> np.ndarray:
    """Return ``source`` as a 1-D float32 array of mono samples at ``sample_rate`` Hz (16 kHz for Whisper).

    ``source`` is either a path to any file FFmpeg can decode (WAV, FLAC, MP3, M4A, OGG, video with an audio
    track, ...), which is decoded, downmixed and resampled, or samples already at ``sample_rate`` Hz:

    * a 1-D array or tensor is used as is (float data should be in [-1, 1]; integer data is scaled by its
      type's range, e.g. int16 by 1/32768);
    * a 2-D one is read as (channels, samples) and the channels are averaged.

    Arrays are never resampled: pass a file, or resample yourself, if yours is at another rate.
    Raises :class:`AudioError` for a missing or undecodable file, no samples, or NaN/infinite samples (in an
    array, or in a file's float samples before they are converted). Silence is allowed (see :func:`is_silent`);
    what to do with it is the caller's decision.

    A mono 16-bit WAV whose samples are read one byte off from some point on (a byte lost or added in its data,
    see :mod:`~whisper_align.frontend.byte_shift`) gives a :class:`DamagedAudioWarning` naming the span; with
    ``repair`` (the default) that span is read one byte later, which gives the recording's own samples back.
    """
    if isinstance(source, (str, Path)):
        audio = _decode_file(Path(source), sample_rate, repair)
        what = f"'{source}'"
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        _check_finite(source, "the audio array", rate=None)  # before a downmix could hide which channel it was in
        audio = _array_to_mono(source)
        what = "the audio array"
    else:
        raise AudioError(
            f"cannot read audio from a {type(source).__name__}; pass a file path, a numpy array or a torch tensor"
        )
    if audio.size == 0:
        raise AudioError(f"{what} contains no audio samples; give audio that is at least a few frames long")
    if not np.isfinite(audio).all():  # finite float64 values beyond float32's range became infinite
        raise AudioError(f"{what} has samples far outside [-1, 1], too large for float32; scale it to [-1, 1]")
    return audio


def _check_finite(samples: np.ndarray | torch.Tensor, what: str, rate: int | None, offset: int | None = None) -> None:
    """Raise :class:`AudioError` if ``samples`` (any shape, samples along the last axis) hold NaN or infinity.

    The message says where the first bad sample is (in seconds when ``rate`` is known) so the user can find the
    damage. ``offset`` is given when ``samples`` is one block of a longer signal (the samples before it): then
    the message cannot count the bad samples of the whole signal and does not try.
    """
    if isinstance(samples, torch.Tensor):
        if not samples.is_floating_point() or bool(torch.isfinite(samples.detach()).all()):
            return  # (checked where the tensor is: only a damaged one is copied to the CPU)
        bad = (~torch.isfinite(samples.detach())).to("cpu").numpy()
    elif np.issubdtype(samples.dtype, np.floating):
        bad = ~np.isfinite(samples)
        if not bad.any():
            return
    else:
        return
    first = int(np.flatnonzero(bad.reshape(-1, bad.shape[-1]).any(axis=0))[0]) if bad.ndim else 0
    first += offset or 0
    where = f"{first / rate:.3f} s" if rate else f"sample {first}"
    how_many = "" if offset is not None else f"{int(bad.sum())} of them, "
    raise AudioError(
        f"{what} contains NaN or infinite samples ({how_many}the first at {where}); the audio is damaged or came "
        "from a broken float computation: re-export it, or replace those samples (e.g. with numpy.nan_to_num)"
    )


def _decode_file(path: Path, sample_rate: int, repair: bool = True) -> np.ndarray:
    if not path.exists():
        raise AudioError(f"audio file '{path}' does not exist; check the path")
    if path.is_dir():
        raise AudioError(f"'{path}' is a folder, not an audio file")
    samples = _read_plain_wav(path, sample_rate, repair)
    if samples is not None:
        return samples

    import av  # imported here: only compressed or resampled input needs FFmpeg's libraries

    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise AudioError(f"'{path}' has no audio stream; give a file that contains sound")
            chunks = _decode_stream(container, container.streams.audio[0], path, sample_rate)
    except AudioError:
        raise
    except av.error.FFmpegError as error:
        raise AudioError(
            f"could not decode '{path}' as audio ({error.__class__.__name__}: {error}); "
            "check that it is an audio or video file FFmpeg can read and that it is not truncated"
        ) from error
    except (OSError, ValueError) as error:  # permission denied, unsupported sample layouts, ...
        raise AudioError(f"could not read '{path}': {error}") from error
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def _decode_stream(container: InputContainer, stream: AudioStream, path: Path, sample_rate: int) -> list[np.ndarray]:
    """Decode ``stream`` to 16-bit mono chunks at ``sample_rate``, refusing non-finite float samples on the way.

    The check runs on the decoder's own frames: the conversion to 16 bits clamps NaN and infinity to full
    scale, after which they can no longer be told from loud sound.
    """
    import av

    # s16 output makes libswresample scale the downmix so it cannot clip (stereo -> (L + R) / 2), exactly what
    # `ffmpeg -ac 1 -acodec pcm_s16le` does for openai-whisper; a float output would sum channels at 0.707 each.
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    decoded = 0  # samples per channel so far, at the stream's own rate
    for frame in container.decode(stream):
        if frame.format.name in _FLOAT_SAMPLE_FORMATS:
            samples = frame.to_ndarray()  # planar: (channels, samples); packed: (1, samples * channels)
            if frame.format.is_packed:
                samples = samples.reshape(-1, frame.layout.nb_channels).T
            _check_finite(samples, f"'{path}'", rate=frame.sample_rate, offset=decoded)
        decoded += frame.samples
        frame.pts = None  # let the resampler run on sample counts, not on possibly broken timestamps
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    return chunks


@dataclass(frozen=True)
class _WavHeader:
    """What a RIFF/WAVE header says about its samples: where they are and how they are stored."""

    format_tag: int  # 1: integer PCM, 3: IEEE float (an extensible header's subformat); others are left to FFmpeg
    channels: int
    sample_rate: int
    bits: int
    data_offset: int  # where the `data` chunk's samples start in the file
    data_size: int  # the bytes the `data` chunk says it holds


def _read_wav_header(path: Path) -> _WavHeader | None:
    """Parse the chunks of a RIFF/WAVE file up to its `data` chunk; None if it is not one this can read."""
    try:
        with open(path, "rb") as file:
            riff = file.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:] != b"WAVE":
                return None
            fmt: bytes | None = None
            while True:
                chunk = file.read(8)
                if len(chunk) < 8:
                    return None
                chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if chunk_id == b"data":
                    return _parse_fmt_chunk(fmt, file.tell(), size) if fmt is not None else None
                if chunk_id == b"fmt ":
                    fmt = file.read(size)
                    file.seek(size % 2, 1)
                else:
                    file.seek(size + size % 2, 1)  # chunks are padded to an even length
    except OSError as error:
        raise AudioError(f"could not read '{path}': {error.strerror or error}") from error


def _parse_fmt_chunk(fmt: bytes, data_offset: int, data_size: int) -> _WavHeader | None:
    """The header a `fmt ` chunk describes (an extensible one's subformat as the tag); None if it is malformed."""
    if len(fmt) < 16:
        return None
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(fmt) < 40:
            return None
        valid_bits = struct.unpack("<H", fmt[18:20])[0]
        if valid_bits not in (0, bits):
            return None  # e.g. 20 significant bits in 24: left to FFmpeg
        tag = struct.unpack("<H", fmt[24:26])[0]
    if channels < 1 or bits % 8 or block_align != channels * bits // 8:
        return None
    return _WavHeader(tag, channels, rate, bits, data_offset, data_size)


def _read_plain_wav(path: Path, sample_rate: int, repair: bool = True) -> np.ndarray | None:
    """The samples of a mono PCM or float WAV already at ``sample_rate``, read without FFmpeg; else None.

    Speech corpora are mostly such files. The samples are rounded to 16 bits exactly as FFmpeg's conversion
    does (so both paths give the same values), several times faster and without PyAV's libraries. A header
    whose `data` size is 0, unknown or larger than the file (a truncated file) is left to FFmpeg, which reads
    what is there. Float samples are checked for NaN and infinity (:class:`AudioError`); 16-bit samples for a
    byte shift (:func:`_check_byte_shift`).
    """
    header = _read_wav_header(path)
    if header is None or (header.format_tag, header.bits) not in _DIRECT_WAV_FORMATS:
        return None
    if header.channels != 1 or header.sample_rate != sample_rate:
        return None
    width = header.bits // 8
    size = header.data_size
    if size == 0 or size % width or header.data_offset + size > path.stat().st_size:
        return None
    raw = np.fromfile(path, dtype=np.uint8, count=size, offset=header.data_offset)
    if header.format_tag == _WAVE_FORMAT_PCM and header.bits == 16:
        raw = _check_byte_shift(raw.view("<i2"), path, repair).view(np.uint8)
    return _wav_samples_to_float(raw, header, path)


def _check_byte_shift(pcm16: np.ndarray, path: Path, repair: bool) -> np.ndarray:
    """``pcm16`` as it should have been read if a span of it is read one byte off (and ``repair``), with a
    :class:`DamagedAudioWarning` saying where; otherwise ``pcm16`` as it is."""
    spans = byte_shifted_spans(pcm16)
    if not spans:
        return pcm16
    where = ", ".join(f"{start / SAMPLE_RATE:.2f}-{end / SAMPLE_RATE:.2f} s" for start, end in spans)
    done = (
        "read them one byte later, which gives the recording's own samples back (repair=False keeps them as they are)"
        if repair
        else "kept as they are (repair=False): the words there are unreliable"
    )
    warnings.warn(
        f"'{path}' is damaged: its 16-bit samples are read one byte off at {where} (a byte of its data was lost "
        f"or added, so that stretch plays as loud noise); {done}. Re-export or re-copy the file to fix it",
        DamagedAudioWarning,
        stacklevel=5,
    )
    return repair_byte_shift(pcm16, spans) if repair else pcm16


def _wav_samples_to_float(raw: np.ndarray, header: _WavHeader, path: Path) -> np.ndarray:
    """Little-endian WAV sample bytes -> float32 in [-1, 1), rounded to 16 bits as FFmpeg's s16 conversion does.

    Integer PCM keeps its top 16 bits (FFmpeg shifts right: floor); float is scaled by 32768, rounded to the
    nearest (ties to even, as lrintf) and clipped to the int16 range.
    """
    if header.format_tag == _WAVE_FORMAT_IEEE_FLOAT:
        values = raw.view("<f4" if header.bits == 32 else "<f8")
        _check_finite(values, f"'{path}'", rate=header.sample_rate)
        pcm16 = np.clip(np.rint(values * 32768.0), -32768, 32767)
    elif header.bits == 8:
        pcm16 = (raw.astype(np.int32) - 128) * 256  # unsigned 8-bit
    elif header.bits == 16:
        pcm16 = raw.view("<i2")
    elif header.bits == 24:
        triples = raw.reshape(-1, 3).astype(np.int32)
        pcm16 = (triples[:, 1] | (triples[:, 2] << 8)).astype(np.int16)  # the low byte is dropped
    else:
        pcm16 = raw.view("<i4") >> 16
    return pcm16.astype(np.float32) / 32768.0


def _array_to_mono(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().to("cpu")
        array = array.float().numpy() if array.is_floating_point() else array.numpy()
    if np.iscomplexobj(array) or array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise AudioError(f"audio samples must be real numbers, not {array.dtype}")
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        center = (int(info.max) + int(info.min) + 1) / 2  # 0 for signed types, 128 for uint8
        array = (array.astype(np.float64) - center) / (int(info.max) + 1 - center)
    if array.ndim == 2:
        if array.shape[0] > _MAX_CHANNELS:
            raise AudioError(
                f"a 2-D audio array must be (channels, samples), but this one is {tuple(array.shape)}; "
                "transpose it if it is (samples, channels)"
            )
        array = array.mean(axis=0)
    elif array.ndim != 1:
        raise AudioError(f"audio must be 1-D (samples) or 2-D (channels, samples), not {array.ndim}-D")
    with np.errstate(over="ignore"):  # values too large for float32 become inf: load_audio refuses them
        return np.ascontiguousarray(array, dtype=np.float32)


def is_silent(audio: np.ndarray | torch.Tensor, threshold: float = 1e-3) -> bool:
    """True when no sample's magnitude exceeds ``threshold`` (default 1e-3, i.e. -60 dBFS peak).

    Digital silence and the dither noise of an empty 16-bit recording are both silent at the default.
    """
    if isinstance(audio, torch.Tensor):
        peak = float(audio.detach().abs().max()) if audio.numel() else 0.0
    else:
        peak = float(np.abs(audio).max()) if np.size(audio) else 0.0
    return peak <= threshold


def pad_or_trim(array: ArrayT, length: int = N_SAMPLES, *, axis: int = -1) -> ArrayT:
    """Zero-pad at the end or cut ``array`` (numpy or torch) along ``axis`` to exactly ``length`` items."""
    size = array.shape[axis]
    if isinstance(array, torch.Tensor):
        if size > length:
            return array.narrow(axis, 0, length)
        if size < length:
            pad = [0, 0] * array.ndim
            pad[2 * (array.ndim - 1 - axis % array.ndim) + 1] = length - size  # F.pad lists the last dim first
            return F.pad(array, pad)
        return array
    if size > length:
        return np.take(array, np.arange(length), axis=axis)
    if size < length:
        widths = [(0, 0)] * array.ndim
        widths[axis] = (0, length - size)
        return np.pad(array, widths)
    return array


# ---- mel filterbank ----------------------------------------------------------------------------------------------


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic (27 mels per octave·log 6.4) above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear_step = 200.0 / 3
    log_start_hz, log_start_mel = 1000.0, 1000.0 / linear_step
    log_step = np.log(6.4) / 27.0
    return np.where(
        hz >= log_start_hz,
        log_start_mel + np.log(np.maximum(hz, 1e-10) / log_start_hz) / log_step,
        hz / linear_step,
    )


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear_step = 200.0 / 3
    log_start_hz, log_start_mel = 1000.0, 1000.0 / linear_step
    log_step = np.log(6.4) / 27.0
    return np.where(
        mel >= log_start_mel,
        log_start_hz * np.exp(log_step * (mel - log_start_mel)),
        mel * linear_step,
    )


@cache
def mel_filters(n_mels: int, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """The (n_mels, n_fft // 2 + 1) float32 matrix that maps a power spectrum to mel bands.

    Triangular filters evenly spaced on Slaney's mel scale from 0 Hz to the Nyquist frequency, each scaled to
    unit area (2 / bandwidth): exactly ``librosa.filters.mel(sr, n_fft, n_mels, htk=False, norm="slaney")``,
    which is what openai-whisper ships as ``mel_filters.npz``. The result is cached and read-only.
    """
    if n_mels < 1 or n_fft < 2 or sample_rate <= 0:
        raise ValueError(
            f"need n_mels >= 1, n_fft >= 2 and a positive sample rate, got {n_mels}, {n_fft}, {sample_rate}"
        )
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    # n_mels + 2 edges: filter i rises from edge i to edge i+1 and falls to edge i+2
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    widths = np.diff(edges_hz)
    offsets = edges_hz[:, None] - fft_hz[None, :]  # (n_mels + 2, n_freqs)
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


@cache
def _mel_filters_tensor(n_mels: int, device: torch.device) -> torch.Tensor:
    return torch.tensor(mel_filters(n_mels), device=device)


# ---- log-mel spectrogram -----------------------------------------------------------------------------------------


def log_mel_spectrogram(
    audio: str | Path | np.ndarray | torch.Tensor,
    n_mels: int = 80,
    padding: int = 0,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Whisper's input features: (n_mels, n_frames) for 1-D audio, (B, n_mels, n_frames) for a (B, samples) batch.

    ``audio`` is 16 kHz mono samples (or a path, read with :func:`load_audio`); NaN or infinite samples are an
    :class:`AudioError`. ``padding`` zero samples are appended first (openai-whisper pads by a full 30 s chunk so
    the last window is complete). There are
    ``(samples + padding) // 160`` frames: the STFT's last, half-empty frame is dropped, as openai-whisper does.
    Each item of a batch is clipped to 8 below its own maximum, so a batch gives the same numbers as its items
    one by one. The result is float32 on ``device`` (default: where a tensor input already is, else the CPU).
    """
    if isinstance(audio, (str, Path)):
        audio = load_audio(audio)
    if not isinstance(audio, torch.Tensor):
        audio = torch.from_numpy(np.asarray(audio, dtype=np.float32))
    _check_finite(audio, "the audio", rate=SAMPLE_RATE)  # NaN would spread through the STFT to every frame
    if audio.ndim not in (1, 2):
        raise AudioError(
            f"log_mel_spectrogram needs (samples,) or (batch, samples) audio, not shape {tuple(audio.shape)}"
        )
    if audio.shape[-1] + padding == 0:
        raise AudioError("log_mel_spectrogram got no audio samples")
    if device is not None:
        audio = audio.to(device)
    audio = audio.float()
    if padding > 0:
        audio = F.pad(audio, (0, padding))
    if audio.shape[-1] <= N_FFT // 2:
        raise AudioError(
            f"{audio.shape[-1]} samples are too few for a spectrogram (reflect padding needs more than {N_FFT // 2}); "
            "pad the audio"
        )

    window = torch.hann_window(N_FFT, device=audio.device)  # periodic, as torch's default
    stft = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = stft[..., :-1].abs() ** 2  # (..., n_freqs, frames)

    mel = _mel_filters_tensor(n_mels, audio.device) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - 8.0)
    return (log_spec + 4.0) / 4.0


__all__ = [
    "SAMPLE_RATE",
    "N_FFT",
    "HOP_LENGTH",
    "CHUNK_LENGTH",
    "N_SAMPLES",
    "N_FRAMES",
    "FRAMES_PER_SECOND",
    "N_SAMPLES_PER_TOKEN",
    "TOKENS_PER_SECOND",
    "load_audio",
    "is_silent",
    "pad_or_trim",
    "mel_filters",
    "log_mel_spectrogram",
]
