"""Audio loading, the mel filterbank and log-mel features, checked against librosa and openai-whisper."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import support
from whisper_align.errors import AudioError
from whisper_align.frontend import audio as A

REPO = Path(__file__).resolve().parents[1]
TIMIT = support.TIMIT_DIR / "audio"


def timit_files(n: int, intact: bool = False) -> list[Path]:
    """``n`` timit-dev WAVs spread over the set; ``intact``: only those none of whose samples are read one byte
    off (a quarter of them are: see test_byte_shift)."""
    from whisper_align.frontend.byte_shift import byte_shifted_spans

    files = sorted(TIMIT.glob("*/*.wav"))
    if intact:
        files = [p for p in files if not byte_shifted_spans(support.wav_ints(p))]
    if not files:
        pytest.skip(f"evaluation audio not found under {TIMIT}")
    return files[:: max(1, len(files) // n)][:n]


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """samples: (frames,) or (frames, channels) float in [-1, 1] -> 16-bit PCM WAV."""
    data = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1 if data.ndim == 1 else data.shape[1])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(data.tobytes())
    return path


def test_constants():
    assert (A.SAMPLE_RATE, A.N_FFT, A.HOP_LENGTH, A.CHUNK_LENGTH) == (16000, 400, 160, 30)
    assert (A.N_SAMPLES, A.N_FRAMES, A.FRAMES_PER_SECOND, A.TOKENS_PER_SECOND) == (480000, 3000, 100, 50)


# ---- mel filterbank ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_match_openai_asset_and_librosa(n_mels):
    import librosa
    import whisper

    ours = A.mel_filters(n_mels)
    assert ours.shape == (n_mels, 201) and ours.dtype == np.float32
    asset = Path(whisper.__file__).parent / "assets" / "mel_filters.npz"
    with np.load(asset) as shipped:
        np.testing.assert_allclose(ours, shipped[f"mel_{n_mels}"], rtol=0, atol=1e-7)
    reference = librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels, htk=False, norm="slaney")
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-7)


@pytest.mark.parametrize("n_mels, sample_rate, n_fft", [(40, 16000, 400), (64, 22050, 1024), (10, 8000, 256)])
def test_mel_filters_other_shapes_match_librosa(n_mels, sample_rate, n_fft):
    import librosa

    reference = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, htk=False, norm="slaney")
    np.testing.assert_allclose(A.mel_filters(n_mels, sample_rate, n_fft), reference, rtol=0, atol=1e-7)


def test_mel_filters_are_cached_and_read_only():
    first = A.mel_filters(80)
    assert A.mel_filters(80) is first
    with pytest.raises(ValueError):
        first[0, 0] = 1.0


# ---- log-mel spectrogram -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_openai_on_real_speech(n_mels):
    import whisper

    for path in timit_files(4):
        samples = A.load_audio(path)
        for padding in (0, A.N_SAMPLES):
            ours = A.log_mel_spectrogram(samples, n_mels, padding=padding)
            reference = whisper.log_mel_spectrogram(samples, n_mels, padding=padding)
            assert ours.shape == reference.shape == (n_mels, (len(samples) + padding) // A.HOP_LENGTH)
            assert ours.dtype == torch.float32
            assert (ours - reference).abs().max().item() < 1e-5


def test_log_mel_accepts_tensor_path_and_numpy_alike():
    import whisper

    path = timit_files(1)[0]
    samples = A.load_audio(path)
    from_numpy = A.log_mel_spectrogram(samples)
    torch.testing.assert_close(A.log_mel_spectrogram(torch.from_numpy(samples)), from_numpy, rtol=0, atol=0)
    torch.testing.assert_close(A.log_mel_spectrogram(path), from_numpy, rtol=0, atol=0)
    torch.testing.assert_close(A.log_mel_spectrogram(str(path), device="cpu"), from_numpy, rtol=0, atol=0)
    # float64 input is computed in float32, as openai-whisper does for its float32 audio
    torch.testing.assert_close(A.log_mel_spectrogram(samples.astype(np.float64)), from_numpy)
    assert (from_numpy - whisper.log_mel_spectrogram(samples)).abs().max() < 1e-5


def test_batched_log_mel_clips_each_item_to_its_own_maximum():
    rng = np.random.default_rng(0)
    loud = (rng.standard_normal(16000) * 0.5).astype(np.float32)
    quiet = (0.01 * np.sin(2 * np.pi * 500 * np.arange(16000) / 16000)).astype(np.float32)
    quiet[8000:] = 0.0  # digital silence: clamped at 1e-10, then lifted to (item max - 8)
    batch = A.log_mel_spectrogram(np.stack([loud, quiet]))
    assert batch.shape == (2, 80, 100)
    for i, item in enumerate((loud, quiet)):
        single = A.log_mel_spectrogram(item)
        torch.testing.assert_close(batch[i], single, rtol=0, atol=1e-6)
    # the silent half sits exactly 8 (log10) below the quiet item's own maximum, i.e. 2 after the (x + 4) / 4 map
    assert batch[1].min().item() == pytest.approx(batch[1].max().item() - 2.0, abs=1e-5)
    # (clipping to the whole batch's maximum, as openai-whisper's single max would, gives another floor)
    assert batch[1].min().item() != pytest.approx(batch[0].max().item() - 2.0, abs=0.1)


def test_log_mel_rejects_unusable_input():
    with pytest.raises(AudioError, match="too few"):
        A.log_mel_spectrogram(np.zeros(100, dtype=np.float32))
    with pytest.raises(AudioError, match="no audio"):
        A.log_mel_spectrogram(np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioError, match="shape"):
        A.log_mel_spectrogram(np.zeros((2, 2, 1000), dtype=np.float32))
    # padding makes even empty audio usable, as in openai-whisper
    assert A.log_mel_spectrogram(np.zeros(0, dtype=np.float32), padding=A.N_SAMPLES).shape == (80, A.N_FRAMES)


# ---- pad_or_trim -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [5, 10, 17])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_pad_or_trim_matches_openai(length, axis):
    import whisper

    array = np.arange(30, dtype=np.float32).reshape(3, 10)
    if axis == 0:
        array = array.T.copy()
    ours = A.pad_or_trim(array, length, axis=axis)
    np.testing.assert_array_equal(ours, whisper.pad_or_trim(array, length, axis=axis))
    assert ours.shape[axis] == length
    tensor = torch.from_numpy(array)
    torch.testing.assert_close(A.pad_or_trim(tensor, length, axis=axis), torch.from_numpy(ours))


def test_pad_or_trim_default_is_thirty_seconds():
    assert A.pad_or_trim(np.ones(10, dtype=np.float32)).shape == (A.N_SAMPLES,)
    assert A.pad_or_trim(torch.ones(A.N_SAMPLES + 5)).shape == (A.N_SAMPLES,)


# ---- load_audio --------------------------------------------------------------------------------------------------


def test_load_audio_reads_16k_wav_exactly():
    path = timit_files(1, intact=True)[0]
    with wave.open(str(path)) as f:
        assert f.getframerate() == 16000 and f.getnchannels() == 1
        expected = np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32768
    samples = A.load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    np.testing.assert_array_equal(samples, expected)


def test_plain_wavs_skip_ffmpeg_and_give_ffmpegs_samples(monkeypatch):
    files = timit_files(6, intact=True)  # (FFmpeg's path does not repair damaged ones)
    direct = [A.load_audio(path) for path in files]
    assert all(A._read_plain_wav(path, 16000) is not None for path in files)  # the fast path was taken
    monkeypatch.setattr(A, "_read_plain_wav", lambda path, rate, repair=True: None)  # force PyAV / FFmpeg
    for path, samples in zip(files, direct):
        np.testing.assert_array_equal(A.load_audio(path), samples)


def test_wavs_that_need_conversion_go_through_ffmpeg(tmp_path):
    tone = 0.5 * np.sin(np.linspace(0, 200, 8000))
    assert A._read_plain_wav(write_wav(tmp_path / "8k.wav", tone, 8000), 16000) is None
    assert A._read_plain_wav(write_wav(tmp_path / "st.wav", np.stack([tone, tone], 1), 16000), 16000) is None
    assert len(A.load_audio(tmp_path / "8k.wav")) == pytest.approx(16000, abs=32)  # resampled by FFmpeg
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(write_wav(tmp_path / "full.wav", tone, 16000).read_bytes()[:-1001])
    assert A._read_plain_wav(truncated, 16000) is None
    assert 7400 < len(A.load_audio(truncated)) < 8000  # FFmpeg reads what is there


def test_load_audio_resamples_and_downmixes(tmp_path):
    rate, seconds = 44100, 1.0
    t = np.arange(int(rate * seconds)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = 0.3 * np.sin(2 * np.pi * 440 * t)
    samples = A.load_audio(write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), rate))
    assert abs(len(samples) - 16000) <= 32
    # stereo -> mono is the average of the channels (as `ffmpeg -ac 1`), not their sum at -3 dB
    assert np.abs(samples[1000:-1000]).max() == pytest.approx(0.4, abs=0.01)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * 16000 / len(samples) == pytest.approx(440, abs=2)


def test_load_audio_reads_compressed_formats(tmp_path):
    import av

    path = tmp_path / "tone.flac"
    t = np.arange(22050) / 22050
    tone = (0.25 * np.sin(2 * np.pi * 300 * t) * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=22050, layout="mono")
        frame = av.AudioFrame.from_ndarray(tone[None, :], format="s16", layout="mono")
        frame.sample_rate = 22050
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    samples = A.load_audio(path)
    assert abs(len(samples) - 16000) <= 32
    assert np.abs(samples).max() == pytest.approx(0.25, abs=0.01)


def test_load_audio_file_errors(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        A.load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="folder"):
        A.load_audio(tmp_path)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioError, match="could not decode"):
        A.load_audio(garbage)
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match="could not decode|no audio stream"):
        A.load_audio(text)
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        A.load_audio(empty)


def test_load_audio_arrays():
    mono = np.linspace(-0.5, 0.5, 1000, dtype=np.float64)
    out = A.load_audio(mono)
    assert out.dtype == np.float32 and out.shape == (1000,)
    np.testing.assert_allclose(out, mono, atol=1e-7)
    stereo = np.stack([mono, np.zeros_like(mono)])
    np.testing.assert_allclose(A.load_audio(stereo), mono / 2, atol=1e-7)
    np.testing.assert_allclose(A.load_audio(torch.from_numpy(stereo)), mono / 2, atol=1e-7)
    pcm = np.array([-32768, 0, 16384], dtype=np.int16)
    np.testing.assert_allclose(A.load_audio(pcm), [-1.0, 0.0, 0.5])
    np.testing.assert_allclose(A.load_audio(torch.tensor(pcm)), [-1.0, 0.0, 0.5])
    silent = np.zeros(16000, dtype=np.float32)
    assert A.is_silent(A.load_audio(silent))  # silence is allowed


def test_load_audio_array_errors():
    with pytest.raises(AudioError, match="no audio samples"):
        A.load_audio(np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioError, match="NaN or infinite"):
        A.load_audio(np.array([0.0, np.nan], dtype=np.float32))
    with pytest.raises(AudioError, match="NaN or infinite"):
        A.load_audio(torch.tensor([0.0, float("inf")]))
    with pytest.raises(AudioError, match="transpose"):
        A.load_audio(np.zeros((16000, 2), dtype=np.float32))
    with pytest.raises(AudioError, match="3-D"):
        A.load_audio(np.zeros((1, 2, 100), dtype=np.float32))
    with pytest.raises(AudioError, match="real numbers"):
        A.load_audio(np.zeros(10, dtype=np.complex64))
    with pytest.raises(AudioError, match="file path"):
        A.load_audio([0.0, 0.1])  # type: ignore[arg-type]


def test_is_silent():
    assert A.is_silent(np.zeros(100, dtype=np.float32))
    assert A.is_silent(np.full(100, 1e-4, dtype=np.float32))
    assert not A.is_silent(np.full(100, 1e-2, dtype=np.float32))
    assert not A.is_silent(torch.full((100,), 1e-2))
    assert A.is_silent(np.full(100, 1e-2, dtype=np.float32), threshold=0.1)


# ---- the demo sample ---------------------------------------------------------------------------------------------


def test_demo_sample_is_small_clear_16k_speech():
    wav, txt = REPO / "samples" / "demo.wav", REPO / "samples" / "demo.txt"
    assert wav.stat().st_size < 200_000
    with wave.open(str(wav)) as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (16000, 1, 2)
    samples = A.load_audio(wav)
    assert 3.0 < len(samples) / A.SAMPLE_RATE < 8.0
    assert not A.is_silent(samples, threshold=0.1)
    lines = txt.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and len(lines[0].split()) >= 8
