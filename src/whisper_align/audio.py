"""Audio in, log-mel spectrogram out: decoding (PyAV), the mel filterbank and Whisper's log-mel features.

Everything downstream works on 16 kHz mono float32 samples in [-1, 1]. Files are decoded with PyAV (FFmpeg's
libraries, no ``ffmpeg`` binary needed), downmixed and resampled to 16-bit mono at 16 kHz in one step — the same
conversion openai-whisper asks the ffmpeg command line for — then scaled to float32. Mono 16-bit WAVs already at
16 kHz (most speech corpora) skip FFmpeg: their samples are read directly, which gives the very same values.

The features are exactly openai-whisper's: a 400-point STFT with a 160-sample hop (100 frames a second), an
80- or 128-band Slaney mel filterbank (computed here, equal to ``librosa.filters.mel``), log10, a dynamic range
clipped to 8 (i.e. 80 dB) below the loudest value, and the affine map ``(x + 4) / 4``.
"""

from __future__ import annotations

import wave
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from .errors import AudioError

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH = 30  # seconds of audio the encoder sees at once
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000 samples in a 30-second chunk
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames in a chunk
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 mel frames a second (10 ms each)
N_SAMPLES_PER_TOKEN = HOP_LENGTH * 2  # the encoder's second convolution has stride 2
TOKENS_PER_SECOND = SAMPLE_RATE // N_SAMPLES_PER_TOKEN  # 50 audio positions a second (20 ms each)

# A 2-D array with more rows than this is taken to be (samples, channels) by mistake, not (channels, samples).
_MAX_CHANNELS = 16

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


# ---- loading ---------------------------------------------------------------------------------------------------


def load_audio(source: str | Path | np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Return ``source`` as a 1-D float32 array of mono samples at ``sample_rate`` Hz (16 kHz for Whisper).

    ``source`` is either a path to any file FFmpeg can decode (WAV, FLAC, MP3, M4A, OGG, video with an audio
    track, ...), which is decoded, downmixed and resampled, or samples already at ``sample_rate`` Hz:

    * a 1-D array or tensor is used as is (float data should be in [-1, 1]; integer data is scaled by its
      type's range, e.g. int16 by 1/32768);
    * a 2-D one is read as (channels, samples) and the channels are averaged.

    Arrays are never resampled: pass a file, or resample yourself, if yours is at another rate.
    Raises :class:`AudioError` for a missing or undecodable file, no samples, or NaN/infinite samples.
    Silence is allowed (see :func:`is_silent`); what to do with it is the caller's decision.
    """
    if isinstance(source, (str, Path)):
        audio = _decode_file(Path(source), sample_rate)
        what = f"'{source}'"
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        audio = _array_to_mono(source)
        what = "the audio array"
    else:
        raise AudioError(
            f"cannot read audio from a {type(source).__name__}; pass a file path, a numpy array or a torch tensor"
        )
    if audio.size == 0:
        raise AudioError(f"{what} contains no audio samples; give audio that is at least a few frames long")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{what} contains NaN or infinite samples; clean the signal before aligning it")
    return audio


def _decode_file(path: Path, sample_rate: int) -> np.ndarray:
    if not path.exists():
        raise AudioError(f"audio file '{path}' does not exist; check the path")
    if path.is_dir():
        raise AudioError(f"'{path}' is a folder, not an audio file")
    samples = _read_plain_wav(path, sample_rate)
    if samples is not None:
        return samples

    import av  # imported here: only compressed or resampled input needs FFmpeg's libraries

    # s16 output makes libswresample scale the downmix so it cannot clip (stereo -> (L + R) / 2), exactly what
    # `ffmpeg -ac 1 -acodec pcm_s16le` does for openai-whisper; a float output would sum channels at 0.707 each.
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise AudioError(f"'{path}' has no audio stream; give a file that contains sound")
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler run on sample counts, not on possibly broken timestamps
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
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


def _read_plain_wav(path: Path, sample_rate: int) -> np.ndarray | None:
    """The samples of a mono 16-bit PCM WAV already at ``sample_rate``, read without FFmpeg; else None.

    Speech corpora are mostly such files. For them FFmpeg's conversion is the identity (int16 / 32768), so this
    gives the same samples, several times faster and without PyAV's libraries.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getcomptype()) != (
                1, 2, sample_rate, "NONE"
            ):
                return None
            n_frames = wav.getnframes()
            data = wav.readframes(n_frames)
    except (wave.Error, EOFError):
        return None  # not a RIFF/WAVE PCM file (or a header that wave can't read): FFmpeg decides
    if len(data) != 2 * n_frames:
        return None  # truncated: let FFmpeg read what is there, as openai-whisper would
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


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


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
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


@lru_cache(maxsize=None)
def mel_filters(n_mels: int, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """The (n_mels, n_fft // 2 + 1) float32 matrix that maps a power spectrum to mel bands.

    Triangular filters evenly spaced on Slaney's mel scale from 0 Hz to the Nyquist frequency, each scaled to
    unit area (2 / bandwidth): exactly ``librosa.filters.mel(sr, n_fft, n_mels, htk=False, norm="slaney")``,
    which is what openai-whisper ships as ``mel_filters.npz``. The result is cached and read-only.
    """
    if n_mels < 1 or n_fft < 2 or sample_rate <= 0:
        raise ValueError(f"need n_mels >= 1, n_fft >= 2 and a positive sample rate, got {n_mels}, {n_fft}, {sample_rate}")
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


@lru_cache(maxsize=None)
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

    ``audio`` is 16 kHz mono samples (or a path, read with :func:`load_audio`). ``padding`` zero samples are
    appended first (openai-whisper pads by a full 30 s chunk so the last window is complete). There are
    ``(samples + padding) // 160`` frames: the STFT's last, half-empty frame is dropped, as openai-whisper does.
    Each item of a batch is clipped to 8 below its own maximum, so a batch gives the same numbers as its items
    one by one. The result is float32 on ``device`` (default: where a tensor input already is, else the CPU).
    """
    if isinstance(audio, (str, Path)):
        audio = load_audio(audio)
    if not isinstance(audio, torch.Tensor):
        audio = torch.from_numpy(np.asarray(audio, dtype=np.float32))
    if audio.ndim not in (1, 2):
        raise AudioError(f"log_mel_spectrogram needs (samples,) or (batch, samples) audio, not shape {tuple(audio.shape)}")
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
