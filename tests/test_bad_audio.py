"""Bad audio in, correct words or a typed error out (issue #13).

A corpus of damaged, odd and valid-but-unusual files is generated from the bundled speech sample (samples/demo.wav
and its transcript) and run through ``whisper_align.align`` and the ``whisper-align align`` command. Each file must
give either the transcript's words, in order, inside the audio, with sane times (for faithful re-encodings of the
demo: within 0.1 s of the original's), or a typed error (``WhisperAlignError``) whose message names the problem;
the command must then exit non-zero with one ``error:`` line and no traceback.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import warnings
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import whisper_align as wa
from whisper_align.cli import main as cli_main
from whisper_align.errors import AudioError, WhisperAlignError
from whisper_align.frontend import audio as A
from whisper_align.model.whisper import Whisper

REPO = Path(__file__).resolve().parents[1]
DEMO_WAV, DEMO_TXT = REPO / "samples" / "demo.wav", REPO / "samples" / "demo.txt"
RATE = A.SAMPLE_RATE
TIME_TOLERANCE = 0.1  # seconds: a faithful re-encoding may move a word boundary by at most this much
# 8 kHz audio has no sound above 4 kHz: the boundary refinement reads loudness over the whole spectrum, so a word
# whose onset is a fricative may move a little more than on full-band copies of the same speech
NARROWBAND_TOLERANCE = 0.15
# The long-silence cases: a minute of digital zeros after the speech (3 windows), 45 s of them alone (2 windows).
# Both take the windowed long-audio path that goes wrong today; 5 minutes would cost ~20 s more CPU per run.
SILENCE_SECONDS = 60
ONLY_SILENCE_SECONDS = 45

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"  # KSDATAFORMAT_SUBTYPE_* after the tag

Timed = list[tuple[str, float, float]]  # (word without its leading space, start, end)


# ---- writing test files ------------------------------------------------------------------------------------------


def wav_bytes(
    raw: bytes,
    *,
    channels: int,
    rate: int,
    tag: int,
    bits: int,
    extensible: bool = False,
    valid_bits: int | None = None,
    data_size: int | None = None,
    before_data: bytes = b"",
) -> bytes:
    """A RIFF/WAVE file around ``raw`` sample bytes.

    ``extensible`` writes a WAVE_FORMAT_EXTENSIBLE header (``tag`` then goes into the subformat GUID, with
    ``valid_bits`` significant bits, default all); ``data_size`` overrides the size the data chunk claims;
    ``before_data`` is put between the fmt and data chunks (other chunks, as many writers add).
    """
    block = channels * bits // 8
    if extensible:
        valid = bits if valid_bits is None else valid_bits
        fmt = struct.pack("<HHIIHHHHI", _EXTENSIBLE, channels, rate, rate * block, block, bits, 22, valid, 0)
        fmt += struct.pack("<H", tag) + _GUID_TAIL
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    size = len(raw) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + before_data
    body += b"data" + struct.pack("<I", size) + raw
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pcm_bytes(samples: np.ndarray, bits: int) -> bytes:
    """Float samples in [-1, 1] ((frames,) or (frames, channels)) -> little-endian integer PCM of ``bits`` bits."""
    scale = 2 ** (bits - 1)
    ints = np.clip(np.round(samples * scale), -scale, scale - 1).astype(np.int64)
    if bits == 16:
        return ints.astype("<i2").tobytes()
    if bits == 24:
        flat = ints.reshape(-1)
        return np.stack([flat & 255, (flat >> 8) & 255, (flat >> 16) & 255], axis=1).astype(np.uint8).tobytes()
    raise ValueError(bits)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """16 kHz mono float -> ``rate`` Hz through FFmpeg's resampler (PyAV), as float in [-1, 1]."""
    import av

    frame = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None, :], format="flt", layout="mono")
    frame.sample_rate = RATE
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out)


def encode_mp3(samples: np.ndarray, path: Path) -> Path:
    """16 kHz mono samples as an MP3 file (PyAV's libmp3lame); skips the calling test where FFmpeg has no MP3
    encoder."""
    import av

    try:
        av.codec.Codec("libmp3lame", "w")
    except Exception:  # noqa: BLE001 - any failure to find the encoder means: no MP3 here
        pytest.skip("this FFmpeg build has no MP3 encoder (libmp3lame)")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libmp3lame", rate=RATE, layout="mono")
        stream.bit_rate = 64000
        frame = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None, :], format="fltp", layout="mono")
        frame.sample_rate = RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


# ---- the corpus --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One file of the corpus and what it must give.

    ``expect``: "same" = the transcript's words within TIME_TOLERANCE of the original file's; "words" = the
    transcript's words in order inside the audio, times unchecked (the file lost or distorted speech); "error" = an
    AudioError whose message matches ``match`` and names the file; "silence" = no words beyond the transcript's
    (see check_no_invented_words), or a typed error. ``duration`` (seconds), when given, is how long the decoded
    audio must be.
    """

    name: str
    build: Callable[[Path, np.ndarray], Path]
    expect: str
    match: str = ""
    duration: float | None = None


CASES: list[Case] = []


def case(expect: str, match: str = "", duration: float | None = None) -> Callable:
    """Register the decorated builder (folder, demo samples) -> file as a corpus case named after it."""

    def register(build: Callable[[Path, np.ndarray], Path]) -> Callable[[Path, np.ndarray], Path]:
        CASES.append(Case(build.__name__, build, expect, match, duration))
        return build

    return register


def mono_wav(samples: np.ndarray, rate: int = RATE, bits: int = 16) -> bytes:
    return wav_bytes(pcm_bytes(samples, bits), channels=1, rate=rate, tag=_PCM, bits=bits)


def float_wav(samples: np.ndarray, rate: int = RATE, bits: int = 32, extensible: bool = False) -> bytes:
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    raw = samples.astype("<f4" if bits == 32 else "<f8").tobytes()
    return wav_bytes(raw, channels=channels, rate=rate, tag=_FLOAT, bits=bits, extensible=extensible)


def damaged(samples: np.ndarray, value: float, at: int) -> np.ndarray:
    """``samples`` with 40 of them (2.5 ms at 16 kHz) from index ``at`` replaced by ``value``."""
    out = samples.astype(np.float64).copy()
    out[at : at + 40] = value
    return out


# unreadable or empty files: a typed error


@case("error", "could not decode")
def empty_file(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "empty.wav", b"")


@case("error", "no audio samples")
def header_only_wav(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "header_only.wav", wav_bytes(b"", channels=1, rate=RATE, tag=_PCM, bits=16))


@case("error", "could not decode")
def text_file_named_wav(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "notes.wav", b"this is not audio, only a text file\n" * 40)


@case("error", "could not decode|no audio")
def random_bytes(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "random.wav", np.random.default_rng(13).bytes(20000))


# non-finite float samples (FFmpeg alone would turn them into -1.0): a typed error naming the file and the place


@case("error", r"nan\.wav' contains NaN or infinite samples \(16000 of them, the first at 0\.000 s\)")
def all_nan_float32(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "nan.wav", float_wav(np.full(RATE, np.nan)))


@case("error", r"inf\.wav' contains NaN or infinite samples \(16000 of them")
def all_inf_float32(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "inf.wav", float_wav(np.full(RATE, np.inf)))


@case("error", r"nan_burst\.wav' .*\(40 of them, the first at 2\.000 s\)")
def nan_burst_float32(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "nan_burst.wav", float_wav(damaged(demo, np.nan, 2 * RATE)))


@case("error", r"ninf_burst\.wav' .*\(40 of them, the first at 1\.000 s\)")
def neg_inf_burst_float64_extensible(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "ninf_burst.wav", float_wav(damaged(demo, -np.inf, RATE), bits=64, extensible=True))


# ... also where FFmpeg decodes and converts: other rates, several channels (no count: decoding stops there)


@case("error", r"nan_48k\.wav' contains NaN or infinite samples \(the first at 2\.000 s\)")
def nan_burst_float32_stereo_48k(folder: Path, demo: np.ndarray) -> Path:
    left = resample(demo, 48000)
    right = damaged(left, np.nan, 96000)
    return write(folder / "nan_48k.wav", float_wav(np.stack([left, right], axis=1), rate=48000))


@case("error", r"inf_8k\.wav' contains NaN or infinite samples \(the first at 1\.543 s\)")
def inf_sample_float32_8k(folder: Path, demo: np.ndarray) -> Path:
    samples = resample(demo, 8000)
    samples[12345] = np.inf  # 1.543 s
    return write(folder / "inf_8k.wav", float_wav(samples, rate=8000))


# valid re-encodings of the demo: the same words at the same times


@case("same")
def pcm24(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "pcm24.wav", mono_wav(demo, bits=24))


@case("same")
def float32(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "float32.wav", float_wav(demo))


@case("same")
def float32_stereo_44k1(folder: Path, demo: np.ndarray) -> Path:
    samples = resample(demo, 44100)
    return write(folder / "float32_44k1.wav", float_wav(np.stack([samples, samples], axis=1), rate=44100))


@case("same")
def pcm24_stereo_48k_extensible(folder: Path, demo: np.ndarray) -> Path:
    samples = np.repeat(resample(demo, 48000)[:, None], 2, axis=1)
    raw = pcm_bytes(samples, 24)
    return write(folder / "pcm24_48k.wav", wav_bytes(raw, channels=2, rate=48000, tag=_PCM, bits=24, extensible=True))


@case("same")
def eight_channels(folder: Path, demo: np.ndarray) -> Path:
    raw = pcm_bytes(np.repeat(demo[:, None], 8, axis=1), 16)
    return write(folder / "8ch.wav", wav_bytes(raw, channels=8, rate=RATE, tag=_PCM, bits=16))


@case("same")
def rate_8k(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "8k.wav", mono_wav(resample(demo, 8000), rate=8000))


@case("same")
def rate_96k(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "96k.wav", mono_wav(resample(demo, 96000), rate=96000))


@case("same")
def mp3(folder: Path, demo: np.ndarray) -> Path:
    return encode_mp3(demo, folder / "demo.mp3")


# truncated files: what is there is read, and its real length (not the header's) is the audio's length

CUT_IN_SILENCE = 5.6  # seconds: after the demo's last word (which ends near 5.4 s), before its end (5.8 s)
CUT_IN_SPEECH = 3.0


@case("same", duration=CUT_IN_SILENCE)
def truncated_wav_in_silence(folder: Path, demo: np.ndarray) -> Path:
    kept = pcm_bytes(demo[: int(CUT_IN_SILENCE * RATE)], 16) + b"\x01"  # and half a sample
    raw = wav_bytes(kept, channels=1, rate=RATE, tag=_PCM, bits=16, data_size=2 * len(demo))
    return write(folder / "cut_in_silence.wav", raw)


@case("words", duration=CUT_IN_SPEECH)
def truncated_wav_in_speech(folder: Path, demo: np.ndarray) -> Path:
    kept = pcm_bytes(demo[: int(CUT_IN_SPEECH * RATE)], 16)
    raw = wav_bytes(kept, channels=1, rate=RATE, tag=_PCM, bits=16, data_size=2 * len(demo))
    return write(folder / "cut_in_speech.wav", raw)


@case("words")
def truncated_mp3(folder: Path, demo: np.ndarray) -> Path:
    encoded = encode_mp3(demo, folder / "uncut.mp3").read_bytes()
    return write(folder / "cut.mp3", encoded[: len(encoded) * 3 // 5 + 77])  # mid-frame, about 3.5 s in


# distorted but still speech


@case("words")
def clipped(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "clipped.wav", mono_wav(np.clip(demo * 40, -1, 1)))  # nearly a square wave at full scale


# [long silence] minutes of digital zeros, after the speech or alone: see check_no_invented_words


@case("silence")
def long_silence_after_speech(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "long_silence.wav", mono_wav(np.concatenate([demo, np.zeros(SILENCE_SECONDS * RATE)])))


@case("silence", duration=ONLY_SILENCE_SECONDS)
def only_silence(folder: Path, demo: np.ndarray) -> Path:
    return write(folder / "only_silence.wav", mono_wav(np.zeros(ONLY_SILENCE_SECONDS * RATE)))


# ---- fixtures and checks -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tiny_en: Whisper) -> Whisper:
    return tiny_en


@pytest.fixture(scope="module")
def demo() -> np.ndarray:
    with wave.open(str(DEMO_WAV)) as f:
        return np.frombuffer(f.readframes(f.getnframes()), "<i2") / 32768.0


@pytest.fixture(scope="module")
def transcript() -> str:
    return DEMO_TXT.read_text(encoding="utf-8").strip()


@pytest.fixture(scope="module")
def reference(model: Whisper, transcript: str) -> Timed:
    """The original demo.wav's words: what every faithful re-encoding must reproduce."""
    return [(w.word.strip(), w.start, w.end) for w in wa.align(model, str(DEMO_WAV), transcript).words]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, demo: np.ndarray) -> Callable[[Case], Path]:
    """Builds a case's file on first use (the API and the CLI tests share it)."""
    folder = tmp_path_factory.mktemp("bad_audio")
    built: dict[str, Path] = {}

    def get(case: Case) -> Path:
        if case.name not in built:
            built[case.name] = case.build(folder, demo)
        return built[case.name]

    return get


def check_words(words: Timed, transcript: str, duration: float) -> None:
    """The transcript's words, in order, each inside the audio with start <= end, and monotone in time."""
    assert [w for w, _, _ in words] == transcript.split()
    for word, start, end in words:
        assert 0.0 <= start <= end <= duration + 1e-3, (word, start, end, duration)
    for (_, start, end), (_, next_start, next_end) in zip(words, words[1:]):
        assert start <= next_start and end <= next_end and end <= next_start + 1e-6


def check_no_invented_words(words: Timed, transcript: str, duration: float) -> None:
    """[long silence] No words beyond the transcript's, in its order, inside the audio.

    This is the behaviour another engineer's aligner fix for #13 brings (align() warns about long silence and
    does not invent words); it fails where that fix is missing: over long silence the aligner (its windowed path,
    for audio over 30 s) emits words twice and the transcript's punctuation as words of its own (``'fire.',
    'fire.', '.'``).
    """
    expected = transcript.split()
    got = [w for w, _, _ in words]
    assert len(got) <= len(expected), f"{len(got) - len(expected)} words beyond the transcript: {got}"
    remaining = iter(expected)
    assert all(word in remaining for word in got), f"words not in the transcript, or out of order: {got}"
    for word, start, end in words:
        assert 0.0 <= start <= end <= duration + 1e-3, (word, start, end, duration)


def check_case(case: Case, words: Timed, duration: float, transcript: str, reference: Timed) -> None:
    """What ``case`` must give, once its file aligned to ``words`` over ``duration`` seconds of audio."""
    if case.duration is not None:
        assert duration == pytest.approx(case.duration, abs=0.01)
    if case.expect == "silence":
        check_no_invented_words(words, transcript, duration)  # [long silence] see check_no_invented_words
        return
    check_words(words, transcript, duration)
    if case.expect == "same":
        tolerance = NARROWBAND_TOLERANCE if "8k" in case.name else TIME_TOLERANCE
        for (word, start, end), (_, ref_start, ref_end) in zip(words, reference):
            # times are whole 10 ms frames: compare in milliseconds so that 0.15000000000000036 counts as 150 ms
            assert round(1000 * abs(start - ref_start)) <= round(1000 * tolerance), (word, start, ref_start)
            assert round(1000 * abs(end - ref_end)) <= round(1000 * tolerance), (
                word,
                (start, end),
                (ref_start, ref_end),
            )


# ---- the Python API ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_api(case: Case, model: Whisper, corpus: Callable[[Case], Path], transcript: str, reference: Timed) -> None:
    path = corpus(case)
    if case.expect == "error":
        with pytest.raises(AudioError, match=case.match) as caught:
            wa.align(model, str(path), transcript)
        assert path.name in str(caught.value)  # the message names the file
        return
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        try:
            result = wa.align(model, str(path), transcript)
        except WhisperAlignError:
            if case.expect == "silence":  # refusing silent audio outright is a correct answer too
                return
            raise
    if case.name == "only_silence":  # align() has always warned about audio that is all silence
        assert any("silent" in str(w.message) for w in caught_warnings)
    assert result.duration is not None
    check_case(case, [(w.word.strip(), w.start, w.end) for w in result.words], result.duration, transcript, reference)


def test_non_finite_arrays_are_refused_by_align_and_transcribe(
    model: Whisper, demo: np.ndarray, transcript: str
) -> None:
    samples = demo.astype(np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        damaged_samples = samples.copy()
        damaged_samples[RATE] = bad
        for audio in (damaged_samples, torch.from_numpy(damaged_samples), np.stack([samples, damaged_samples])):
            with pytest.raises(AudioError, match=r"NaN or infinite samples \(1 of them, the first at sample 16000\)"):
                wa.align(model, audio, transcript)
        with pytest.raises(AudioError, match="NaN or infinite"):
            wa.transcribe(model, torch.from_numpy(damaged_samples))  # straight to the spectrogram: checked there
    with pytest.raises(AudioError, match="too large for float32"):
        wa.align(model, np.full(RATE, 1e300), transcript)


# ---- the command line --------------------------------------------------------------------------------------------


def run_cli_in_process(
    args: list[str], model: Whisper, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """``whisper-align ARGS`` through the command's own entry point, with the module's model (saves a reload per
    case; test_cli_subprocess runs the real ``python -m whisper_align.cli``). An exception escaping the command
    is what a user would see as a traceback: it fails the test."""
    from whisper_align import checkpoints

    monkeypatch.setattr(checkpoints, "load_model", lambda *a, **k: model)
    capsys.readouterr()
    try:
        rc = cli_main(args)
    except SystemExit as exit_:  # argparse
        rc = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException as error:  # noqa: BLE001
        pytest.fail(f"the command let {type(error).__name__} escape (a traceback for the user): {error}")
    return rc, capsys.readouterr().err


def words_from_json(path: Path) -> Timed:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(w["word"].strip(), w["start"], w["end"]) for s in data["segments"] for w in s.get("words", [])]


def check_cli_error(match: str, path: Path, rc: int, stderr: str, out: Path) -> None:
    """A failed command: non-zero exit, one ``error:`` line that matches ``match`` and names the file, no output."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert rc != 0
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("whisper-align: error: "), stderr
    assert re.search(match, lines[0]) and path.name in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cli(
    case: Case,
    model: Whisper,
    corpus: Callable[[Case], Path],
    transcript: str,
    reference: Timed,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, out = corpus(case), tmp_path / "out.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a warning about silence is the command's business, not a failure
        rc, stderr = run_cli_in_process(
            ["align", str(path), "--text", transcript, "-o", str(out)], model, monkeypatch, capsys
        )
    if case.expect == "error" or (case.expect == "silence" and rc != 0):  # (refusing silence is fine too)
        check_cli_error(case.match, path, rc, stderr, out)
        return
    assert rc == 0 and "Traceback" not in stderr, stderr
    duration = len(A.load_audio(path)) / RATE
    check_case(case, words_from_json(out), duration, transcript, reference)


SUBPROCESS_CASES = ["nan_burst_float32", "pcm24_stereo_48k_extensible"]  # each costs a torch import


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_cli_subprocess(
    name: str, corpus: Callable[[Case], Path], transcript: str, reference: Timed, tmp_path: Path
) -> None:
    """The real ``python -m whisper_align.cli align`` (its own interpreter, model load and exit status)."""
    case = next(c for c in CASES if c.name == name)
    path, out = corpus(case), tmp_path / "out.json"
    paths = [str(REPO / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}  # this checkout's package, as the tests use
    proc = subprocess.run(
        [sys.executable, "-m", "whisper_align.cli", "align", str(path), "--text", transcript, "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if case.expect == "error":
        check_cli_error(case.match, path, proc.returncode, proc.stderr, out)
    else:
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        check_case(case, words_from_json(out), len(A.load_audio(path)) / RATE, transcript, reference)


# ---- the WAV reader that skips FFmpeg ----------------------------------------------------------------------------


def sample_bytes(tag: int, bits: int, n: int) -> bytes:
    """``n`` random mono samples in the given WAV format, with the values where rounding to 16 bits is delicate."""
    rng = np.random.default_rng(bits + tag)
    if tag == _FLOAT:
        values = rng.uniform(-1.2, 1.2, n)  # over-range float samples are legal and must clip, as in FFmpeg
        edges = [-1.0, 1.0, 0.0, 0.5, 1.5, 2.5, -0.5, -1.5, 32767.5, -32768.5, 32766.5, 40000.0, -40000.0]
        values[: len(edges)] = np.array(edges[:3] + [e / 32768 for e in edges[3:]])  # ties round to even
        return values.astype("<f4" if bits == 32 else "<f8").tobytes()
    if bits == 8:
        return rng.integers(0, 256, n).astype(np.uint8).tobytes()
    ints = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), n)
    ints[:4] = [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1, -1, 0]
    if bits == 24:
        return np.stack([ints & 255, (ints >> 8) & 255, (ints >> 16) & 255], axis=1).astype(np.uint8).tobytes()
    return ints.astype(f"<i{bits // 8}").tobytes()


@pytest.mark.parametrize("extensible", [False, True], ids=["plain", "extensible"])
@pytest.mark.parametrize(
    "tag, bits",
    [(_PCM, 8), (_PCM, 16), (_PCM, 24), (_PCM, 32), (_FLOAT, 32), (_FLOAT, 64)],
    ids=["u8", "s16", "s24", "s32", "f32", "f64"],
)
def test_direct_reader_gives_ffmpegs_samples(
    tag: int, bits: int, extensible: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = sample_bytes(tag, bits, 5000)
    path = write(
        tmp_path / "x.wav",
        wav_bytes(
            raw,
            channels=1,
            rate=RATE,
            tag=tag,
            bits=bits,
            extensible=extensible,
            before_data=b"LIST" + struct.pack("<I", 5) + b"INFOx\x00",
        ),
    )
    direct = A._read_plain_wav(path, RATE)
    assert direct is not None and direct.dtype == np.float32 and direct.shape == (5000,)  # FFmpeg was skipped
    monkeypatch.setattr(A, "_read_plain_wav", lambda *args: None)
    np.testing.assert_array_equal(A.load_audio(path), direct)  # bit for bit what FFmpeg's conversion gives


def test_direct_reader_leaves_other_wavs_to_ffmpeg(tmp_path: Path) -> None:
    tone = 0.5 * np.sin(np.arange(8000) / 5)
    pcm16 = pcm_bytes(tone, 16)
    others = {
        "stereo": wav_bytes(pcm_bytes(np.stack([tone, tone], 1), 16), channels=2, rate=RATE, tag=_PCM, bits=16),
        "8k": wav_bytes(pcm16, channels=1, rate=8000, tag=_PCM, bits=16),
        "20 of 24 bits": wav_bytes(
            pcm_bytes(tone, 24), channels=1, rate=RATE, tag=_PCM, bits=24, extensible=True, valid_bits=20
        ),
        "size unknown": wav_bytes(pcm16, channels=1, rate=RATE, tag=_PCM, bits=16, data_size=0xFFFFFFFF),
        "size 0": wav_bytes(pcm16, channels=1, rate=RATE, tag=_PCM, bits=16, data_size=0),
        "truncated": wav_bytes(pcm16, channels=1, rate=RATE, tag=_PCM, bits=16, data_size=len(pcm16) + 2),
        "odd bytes": wav_bytes(pcm16 + b"\x00", channels=1, rate=RATE, tag=_PCM, bits=16),
        "a-law": wav_bytes(pcm16[: len(pcm16) // 2], channels=1, rate=RATE, tag=0x0006, bits=8),
    }
    for name, data in others.items():
        path = write(tmp_path / f"{name}.wav", data)
        assert A._read_plain_wav(path, RATE) is None, name
        samples = A.load_audio(path)  # ... which reads them all
        assert len(samples) in (8000, 8000 * 2), (name, len(samples))
    for name, data in {"no fmt": b"RIFF\x04\x00\x00\x00WAVE", "text": b"RIFF and some text, not audio"}.items():
        assert A._read_plain_wav(write(tmp_path / f"{name}.wav", data), RATE) is None, name
