"""The alignment viewer (``whisper-align view``, ``align --png``): the page's content and escaping, the embedded
audio, the errors, and the page itself in a real headless Chromium.

The browser tests drive Chromium over the DevTools protocol on a pipe (``--remote-debugging-pipe``), in real
time, so clicking a word really plays the audio and the test reads where playback paused. Chromium comes from
Debian (``tools/ensure_chromium.sh``, run by ``make setup``); without it these tests skip, which under
``CI=true`` is a failure (tests/conftest.py).
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import shutil
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support import DEMO_WAV, SAMPLES
from whisper_align.cli import main
from whisper_align.errors import AudioError, OutputError, OutputFormatError, ResultFileError
from whisper_align.frontend.audio import SAMPLE_RATE, load_audio
from whisper_align.results import viewer
from whisper_align.results.plots import waveform_envelope
from whisper_align.results.types import Result, Segment, Word

# words that would break a page that pasted them in unescaped (or replaced markers twice)
TRICKY = ["<b>bold</b>", "\"quoted\" & 'single'", "</script><script>alert(1)</script>", "__WA_DATA__", "a&amp;b"]


def make_result(duration: float, texts: list[str], step: float = 0.36, first: float = 0.25) -> Result:
    """Words of 0.3 s every ``step`` seconds from ``first``, probabilities from 0.05 up; two segments; the last
    word past the end of the audio (zero length at ``duration``), as a forced alignment marks it."""
    words = [
        Word(f" {text}", round(first + i * step, 3), round(first + i * step + 0.3, 3), round(0.05 + 0.9 * i / 15, 3))
        for i, text in enumerate(texts)
    ]
    words.append(Word(" unheard", duration, duration, 0.0, past_end=True))
    half = len(words) // 2
    segments = [
        Segment(i, 0, part[0].start, part[-1].end, "".join(w.word for w in part), words=part)
        for i, part in enumerate((words[:half], words[half:]))
    ]
    return Result(text="".join(s.text for s in segments), segments=segments, alignment_score=0.42, low_confidence=True)


@pytest.fixture(scope="module")
def demo_samples() -> np.ndarray:
    return load_audio(DEMO_WAV)


@pytest.fixture(scope="module")
def demo_result(demo_samples: np.ndarray) -> Result:
    texts = (SAMPLES / "demo.txt").read_text().split()[:10] + TRICKY
    return make_result(demo_samples.size / SAMPLE_RATE, texts)


def page_data(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="wa-data">(.*?)</script>', page, re.S)
    assert match, "the page has no data element"
    return json.loads(match.group(1))


# ---- the page's content, without a browser -----------------------------------------------------------------------


def test_page_is_self_contained_and_escapes_every_word(demo_result: Result, demo_samples: np.ndarray) -> None:
    page = viewer.render_viewer(demo_result, demo_samples, title='<i>"demo"</i> & co')
    data = page_data(page)  # the data element ends where the template ends it: no word closed it early
    assert [w[0] for w in data["words"]] == [w.word for w in demo_result.words]
    assert [w[1:3] for w in data["words"]] == [[w.start, w.end] for w in demo_result.words]
    assert data["words"][-1][4] is True and not any(w[4] for w in data["words"][:-1])
    assert page.count("</script>") == 2 and "<b>bold" not in page and "alert(1)" in page
    assert "<title>&lt;i&gt;&quot;demo&quot;&lt;/i&gt; &amp; co</title>" in page
    assert "http:" not in page and "https:" not in page  # (":" is not a base64 character)
    assert [url[:5] for url in re.findall(r'(?:src|href)="([^"]*)"', page)] == ["data:"]  # the audio, inline
    assert data["low_confidence"] is True and data["alignment_score"] == 0.42


def test_unknown_probability_is_null_not_nan(demo_samples: np.ndarray) -> None:
    result = Result(text=" a", segments=[Segment(0, 0, 0.1, 0.4, " a", words=[Word(" a", 0.1, 0.4)])])
    data = page_data(viewer.render_viewer(result, demo_samples))
    assert data["words"] == [[" a", 0.1, 0.4, None, False]]


def test_waveform_envelope_is_the_min_and_max_of_each_bucket() -> None:
    rng = np.random.default_rng(0)
    samples = rng.uniform(-1, 1, 16_000 * 2 + 123).astype(np.float32)
    envelope = waveform_envelope(samples, 100.0, 16_000)
    assert envelope.shape == (201, 2)  # 200 full buckets of 160 samples and a short last one
    for b in (0, 57, 199, 200):
        chunk = samples[b * 160 : (b + 1) * 160]
        assert envelope[b].tolist() == [chunk.min(), chunk.max()]
    rate, peaks = viewer.waveform_peaks(samples * 0.01)  # quiet audio is scaled up to fill the picture
    assert rate == viewer.PEAK_RATE and peaks.dtype == np.int8 and int(np.abs(peaks).max()) == 127


def test_long_recordings_get_coarser_peaks_and_opus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(viewer, "MAX_PEAK_BUCKETS", 1000)
    rate, peaks = viewer.waveform_peaks(np.zeros(16_000 * 20, np.float32))
    assert rate == 50.0 and peaks.shape == (1000, 2)
    short = np.zeros(int(16_000 * viewer.WAV_MAX_SECONDS), np.float32)
    assert viewer.encode_audio(short)[0] == "audio/wav"
    assert viewer.encode_audio(np.concatenate([short, short[:16]]))[0] == "audio/ogg"


def test_without_an_opus_encoder_long_audio_falls_back_to_wav(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_opus(pcm: np.ndarray, sample_rate: int) -> bytes:
        raise viewer._NoOpus("this PyAV build has no Opus encoder (test)")

    monkeypatch.setattr(viewer, "_encode_opus", no_opus)
    long = np.zeros(16_000 * 40, np.float32)
    with pytest.warns(UserWarning, match="embedding 16-bit WAV"):
        assert viewer.encode_audio(long)[0] == "audio/wav"
    with pytest.raises(OutputFormatError, match="--audio-format wav"):
        viewer.encode_audio(long, "opus")


def test_wav_keeps_every_sample(demo_samples: np.ndarray) -> None:
    mime, blob = viewer.encode_audio(demo_samples, "wav")
    with wave.open(io.BytesIO(blob)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16_000, 1, 2)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert mime == "audio/wav" and np.array_equal(pcm / 32768.0, demo_samples)


def test_opus_is_small_and_not_shifted_in_time(demo_samples: np.ndarray, tmp_path: Path) -> None:
    """A shift between the embedded audio and the original would play every word early or late."""
    clip = np.tile(demo_samples, 6)  # ~35 s: auto picks Opus
    mime, blob = viewer.encode_audio(clip)
    assert mime == "audio/ogg" and blob[:4] == b"OggS"
    assert len(blob) < 0.15 * clip.size * 2  # under 15% of 16-bit PCM
    (tmp_path / "a.ogg").write_bytes(blob)
    decoded = load_audio(tmp_path / "a.ogg")
    assert abs(decoded.size - clip.size) <= 16_000 * 0.01
    n = min(decoded.size, clip.size)
    lags = range(-80, 81)  # +-5 ms
    scores = [float(np.dot(clip[80 : n - 80], decoded[80 + lag : n - 80 + lag])) for lag in lags]
    assert abs(lags[int(np.argmax(scores))]) <= 16  # within 1 ms


# ---- reading inputs, errors ---------------------------------------------------------------------------------------


def test_load_result_reads_align_json_and_a_manifest_line(tmp_path: Path, demo_result: Result) -> None:
    path = tmp_path / "r.json"
    demo_result.write(path)
    loaded = viewer.load_result(path)
    assert [(w.word, w.start, w.end, w.past_end) for w in loaded.words] == [
        (w.word, w.start, w.end, w.past_end) for w in demo_result.words
    ]
    assert loaded.low_confidence and loaded.alignment_score == 0.42
    line = tmp_path / "line.json"
    line.write_text(json.dumps({"id": "x", "words": [{"word": " hi", "start": 0.5, "end": 0.9}]}))
    assert [(w.word, w.start, w.end) for w in viewer.load_result(line).words] == [(" hi", 0.5, 0.9)]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("{not json", "is not JSON"),
        ('{"id": "a", "words": []}\n{"id": "b", "words": []}\n', "JSON-lines"),
        ('{"text": "hi"}', "needs a 'segments' list"),
        ("[1, 2]", "needs a 'segments' list"),
        ('{"id": "a", "error": "audio missing"}', "error line"),
        ('{"segments": [{"start": 0, "end": 1}]}', "not a well-formed result"),
        ('{"words": [{"word": "a", "start": NaN, "end": 1}]}', "must be finite"),
        ('{"words": [{"word": "a", "start": 2, "end": 1}]}', "start <= end"),
    ],
)
def test_bad_result_files_are_refused_with_the_remedy(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ResultFileError, match=message):
        viewer.load_result(path)


def test_a_result_of_another_recording_is_refused(tmp_path: Path, demo_samples: np.ndarray) -> None:
    far = Result(text=" a", segments=[Segment(0, 0, 30.0, 30.5, " a", words=[Word(" a", 30.0, 30.5, 0.9)])])
    with pytest.raises(ResultFileError, match="audio is only 5.8"):
        viewer.write_viewer(far, demo_samples, tmp_path / "v.html")
    assert not (tmp_path / "v.html").exists()


def test_unwritable_output_and_bad_audio(tmp_path: Path, demo_result: Result, demo_samples: np.ndarray) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        viewer.write_viewer(demo_result, demo_samples, tmp_path / "missing" / "v.html")
    with pytest.raises(OutputError, match="is a folder"):
        viewer.write_viewer(demo_result, demo_samples, tmp_path)
    with pytest.raises(OutputFormatError, match="unknown audio format"):
        viewer.write_viewer(demo_result, demo_samples, tmp_path / "v.html", audio_format="mp3")
    existing = tmp_path / "keep.html"
    existing.write_text("old page")
    (tmp_path / "noise.wav").write_bytes(b"RIFF not really audio")
    with pytest.raises(AudioError):
        viewer.write_viewer(demo_result, tmp_path / "noise.wav", existing)
    assert existing.read_text() == "old page"  # nothing half-written
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_view_writes_the_page_and_reports_errors(
    tmp_path: Path, demo_result: Result, capsys: pytest.CaptureFixture[str]
) -> None:
    result_json = tmp_path / "demo.json"
    demo_result.write(result_json)
    assert main(["view", str(result_json), str(DEMO_WAV)]) == 0
    page = (tmp_path / "demo.html").read_text()  # default output: the result's name with .html
    assert [w[0] for w in page_data(page)["words"]] == [w.word for w in demo_result.words]
    assert f"wrote {tmp_path / 'demo.html'}: {len(demo_result.words)} words" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "nope.json"), str(DEMO_WAV), "-o", str(tmp_path / "x.html")]) == 2
    assert "nope.json' does not exist" in capsys.readouterr().err
    assert main(["view", str(result_json), str(tmp_path / "nope.wav"), "-o", str(tmp_path / "x.html")]) == 2
    assert "nope.wav" in capsys.readouterr().err and not (tmp_path / "x.html").exists()


def test_png_picture(tmp_path: Path, demo_result: Result) -> None:
    result_json = tmp_path / "demo.json"
    demo_result.write(result_json)
    assert main(["view", str(result_json), str(DEMO_WAV), "-o", str(tmp_path / "demo.png")]) == 0
    blob = (tmp_path / "demo.png").read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(blob[16:20], "big"), int.from_bytes(blob[20:24], "big")
    assert width > 1000 and 150 < height < 600  # one row for a 6-second clip


@pytest.mark.slow
def test_align_png_draws_the_alignment(tmp_path: Path) -> None:
    png, out = tmp_path / "demo.png", tmp_path / "demo.json"
    argv = ["align", str(DEMO_WAV), "--text-file", str(SAMPLES / "demo.txt"), "-o", str(out), "--png", str(png)]
    assert main(argv) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and len(viewer.load_result(out).words) == 15
    assert main([*argv[:-1], str(tmp_path / "no" / "x.png")]) == 2  # refused before aligning


# ---- the page in a real browser ----------------------------------------------------------------------------------


def find_chromium() -> str | None:
    names = [os.environ.get("WHISPER_ALIGN_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((found for name in names if name and (found := shutil.which(name))), None)


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fd 3 in, fd 4 out, NUL-separated JSON)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipes() -> None:  # in the child: the pipe ends on the descriptors Chromium expects
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
        flags += ["--remote-debugging-pipe", "--autoplay-policy=no-user-gesture-required", "--mute-audio"]
        flags += [f"--user-data-dir={profile}", "--window-size=1200,600", "about:blank"]
        self.process = subprocess.Popen(
            [binary, *flags],
            preexec_fn=wire_pipes,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.errors: list[str] = []  # uncaught exceptions and console errors of the pages

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            for reply in self._messages(deadline):
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
                self._note(reply)

    def _messages(self, deadline: float) -> Iterator[dict[str, Any]]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer within 30 s")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        while b"\0" in self._buffer:
            line, self._buffer = self._buffer.split(b"\0", 1)
            yield json.loads(line)

    def _note(self, event: dict[str, Any]) -> None:
        params = event.get("params", {})
        if event.get("method") == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params["exceptionDetails"])[:500])
        elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(json.dumps(params.get("args"))[:500])

    def open(self, url: str) -> str:
        """A new tab at ``url``, once its viewer script has run; returns the session to evaluate in."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Runtime.enable", session=session)
        self.send("Page.navigate", {"url": url}, session)
        for _ in range(200):
            if self.eval(session, "document.readyState === 'complete' && !!window.whisperAlignViewer"):
                return session
            time.sleep(0.05)
        raise TimeoutError(f"the viewer at {url} did not start; page errors: {self.errors}")

    def eval(self, session: str, expression: str) -> Any:
        reply = self.send(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}, session
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"page script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (tools/ensure_chromium.sh installs it from Debian)")
    chromium = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


# Scrolls word `i` into view as a user would, clicks it and waits (up to 5 s) for the pause; returns where the
# audio was right after the click, how often it started playing, and where it paused.
CLICK_WORD = """(async (i) => {
  const viewer = window.whisperAlignViewer, audio = viewer.audio;
  if (audio.readyState < 4) await new Promise(r => audio.addEventListener("canplaythrough", r, {once: true}));
  document.getElementById("scroller").scrollLeft = viewer.words[i].start * viewer.pps() - 100;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));  // the boxes follow the scroll
  let plays = 0;
  audio.addEventListener("play", () => plays++);
  const paused = new Promise(r => audio.addEventListener("pause", () => r(audio.currentTime), {once: true}));
  document.querySelector(`.word[data-index="${i}"]`).click();
  const afterClick = audio.currentTime;
  const pausedAt = await Promise.race([paused, new Promise(r => setTimeout(() => r(null), 5000))]);
  return {afterClick, plays, pausedAt, current: document.querySelector(".word.current").dataset.index};
})(%d)"""

SCROLL_TO_END = """(async () => {
  document.getElementById("scroller").scrollLeft = 1e9;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
})()"""

PAGE_STATE = """(() => {
  const boxes = [...document.querySelectorAll("#track .word")];
  const canvas = document.getElementById("wave");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0;
  for (let k = 0; k < pixels.length; k += 4) if (pixels[k + 2] > 100 && pixels[k] < 100) ink++;
  return {
    words: boxes.map(b => b.textContent),
    lefts: boxes.map(b => b.getBoundingClientRect().left),
    widths: boxes.map(b => b.getBoundingClientRect().width),
    classes: boxes.map(b => b.className),
    segments: document.querySelectorAll("#track .seg").length,
    ink, pps: window.whisperAlignViewer.pps(),
    duration: window.whisperAlignViewer.audio.duration,
    banner: document.getElementById("banner").textContent,
    scroll: [document.getElementById("scroller").scrollLeft, document.getElementById("scroller").clientWidth],
    scrollable: document.getElementById("scroller").scrollWidth > document.getElementById("scroller").clientWidth,
  };
})()"""


def near_view(result: Result, state: dict[str, Any]) -> list[str]:
    """The words the page should have boxes for: those within a view's width of the visible stretch."""
    (left, width), pps = state["scroll"], state["pps"]
    t0, t1 = (left - width) / pps, (left + 2 * width) / pps
    return [w.word.strip() for w in result.words if w.end >= t0 and w.start <= t1]


def check_click(browser: Chromium, session: str, word: Word, index: int) -> None:
    """Clicking word ``index`` starts the audio at its start, plays, and pauses at its end (never before)."""
    clicked = browser.eval(session, CLICK_WORD % index)
    assert clicked["current"] == str(index)
    assert clicked["afterClick"] == pytest.approx(word.start, abs=1e-3)
    assert clicked["plays"] == 1 and clicked["pausedAt"] is not None, clicked
    assert word.end - 0.005 <= clicked["pausedAt"] <= word.end + 0.05, (word, clicked)


def test_page_in_chromium_draws_every_word_and_plays_the_clicked_one(
    browser: Chromium, demo_result: Result, tmp_path: Path
) -> None:
    page = viewer.write_viewer(demo_result, DEMO_WAV, tmp_path / "demo.html")
    session = browser.open(page.as_uri())
    state = browser.eval(session, PAGE_STATE)
    words = demo_result.words
    assert state["words"] == [w.word.strip() for w in words]  # every word, in order, text intact
    assert state["segments"] == 2 and state["ink"] > 2000 and "Low confidence" in state["banner"]
    assert state["duration"] == pytest.approx(5.82, abs=0.01)
    origin = state["lefts"][0] - words[0].start * state["pps"]
    for w, left, width in zip(words, state["lefts"], state["widths"]):
        assert left - origin == pytest.approx(w.start * state["pps"], abs=1.0)
        assert width == pytest.approx(max(10.0 if w.past_end else 2.0, (w.end - w.start) * state["pps"]), abs=1.0)
    assert "past-end" in state["classes"][-1] and "low" in state["classes"][0] and "low" not in state["classes"][13]
    for index in (3, 12):  # a plain word and "</script><script>alert(1)</script>"
        check_click(browser, session, words[index], index)
    # the keyboard's next word is the one after the last clicked
    browser.eval(session, "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight'}))")
    after = browser.eval(session, "window.whisperAlignViewer.audio.currentTime")
    assert after == pytest.approx(words[13].start, abs=0.05)
    # a word past the end of the audio cannot be heard: clicking it moves there without playing
    last = len(words) - 1
    browser.eval(session, f"document.querySelector('.word[data-index=\"{last}\"]').click()")
    time.sleep(0.2)
    assert browser.eval(session, "window.whisperAlignViewer.audio.paused") is True
    assert browser.errors == []


def test_page_in_chromium_zooms_and_plays_opus(browser: Chromium, demo_samples: np.ndarray, tmp_path: Path) -> None:
    """A 35-second recording (Opus): zooming scales the boxes, and a word late in the file plays its span."""
    clip = np.tile(demo_samples, 6)
    duration = clip.size / SAMPLE_RATE
    result = make_result(duration, [f"w{i}" for i in range(90)], step=0.38)
    page = viewer.write_viewer(result, clip, tmp_path / "long.html")
    assert page_data(page.read_text())["duration"] == pytest.approx(duration)
    session = browser.open(page.as_uri())
    before = browser.eval(session, PAGE_STATE)
    assert before["scrollable"] and before["duration"] == pytest.approx(duration, abs=0.05)  # Opus: all of it
    shown = near_view(result, before)  # the boxes near the view only: a page of hours stays light
    assert before["words"] == shown == [w.word.strip() for w in result.words[: len(shown)]]
    assert 40 < len(shown) < len(result.words)
    browser.eval(session, "document.getElementById('zoom-in').click()")
    after = browser.eval(session, PAGE_STATE)
    assert after["pps"] == pytest.approx(2 * before["pps"]) and after["ink"] > 2000
    assert after["widths"][5] == pytest.approx(2 * before["widths"][5], abs=1.0)
    assert after["words"] == near_view(result, after)
    browser.eval(session, SCROLL_TO_END)
    end = browser.eval(session, PAGE_STATE)
    assert end["words"] == near_view(result, end) and end["words"][-1] == "unheard" and len(end["words"]) < 60
    for index in (70, 85):  # words at 26.8 s and 32.5 s
        check_click(browser, session, result.words[index], index)
    browser.eval(session, "document.dispatchEvent(new KeyboardEvent('keydown', {key: '0'}))")  # fit
    fit = browser.eval(session, PAGE_STATE)
    assert fit["pps"] == pytest.approx(fit["scroll"][1] / duration) and fit["words"] == [
        w.word.strip() for w in result.words
    ]
    assert browser.errors == []


@pytest.mark.slow
def test_transcribe_png(tmp_path: Path) -> None:
    argv = ["transcribe", str(DEMO_WAV), "--word-timestamps", "-f", "json", "-o", str(tmp_path), "--png"]
    assert main(argv) == 0
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "demo.json").is_file()
