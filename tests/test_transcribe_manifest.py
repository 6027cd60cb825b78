"""`transcribe --manifest IN --out OUT` in the single-process engine: one line per id, each the clip's own
transcription with word timestamps; bad lines become error lines; a rerun after a kill loses and duplicates
nothing (the file is byte-identical to an uninterrupted run's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from support import ROOT, TIMIT, TIMIT_DIR, needs_eval
from whisper_align.cli import main
from whisper_align.errors import TranscriptError
from whisper_align.tasks.transcribe import transcribe
from whisper_align.tasks.transcribe_corpus import SEED, transcribe_corpus

pytestmark = needs_eval

N_CLIPS = 4


def timit_lines(n: int) -> list[dict]:
    """``n`` timit-dev lines (from the second: the first is a damaged recording that decodes to one word), with
    absolute audio paths and without text or labels (not needed)."""
    lines = []
    for raw in TIMIT.read_text(encoding="utf-8").splitlines()[1 : n + 1]:
        entry = json.loads(raw)
        lines.append({"id": entry["id"], "audio": str(TIMIT_DIR / entry["audio"])})
    return lines


def seeded_transcribe(model, audio: str, **options):  # noqa: ANN001, ANN201
    """A clip transcribed by itself, seeded as a manifest run seeds each clip (fallback sampling draws)."""
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        return transcribe(model, audio, word_timestamps=True, **options)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """Four timit clips, with a missing file after the second and a line that is not JSON after the third."""
    lines = [json.dumps(line) for line in timit_lines(N_CLIPS)]
    lines.insert(2, json.dumps({"id": "gone", "audio": "no/such/file.wav"}))
    lines.insert(4, '{"id": "cut", "audio": ')
    path = tmp_path_factory.mktemp("manifest") / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(tiny_en, manifest, tmp_path_factory) -> bytes:
    """The output of one uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "out.jsonl"
    summary = transcribe_corpus(tiny_en, manifest, out, progress=False)
    assert (summary.aligned, summary.failed, summary.skipped) == (N_CLIPS, 2, 0)
    return out.read_bytes()


def test_each_line_is_its_clips_own_transcription_with_words(tiny_en, reference) -> None:
    records = [json.loads(line) for line in reference.decode("utf-8").splitlines()]
    clips = timit_lines(N_CLIPS)
    expected_ids = [clips[0]["id"], clips[1]["id"], "gone", clips[2]["id"], "line:5", clips[3]["id"]]
    assert [r["id"] for r in records] == expected_ids  # manifest order, one line each
    assert "does not exist" in records[2]["error"]
    assert "line 5: not valid JSON" in records[4]["error"]
    for clip in (clips[0], clips[3]):  # the same as transcribing the file by itself
        record = next(r for r in records if r["id"] == clip["id"])
        result = seeded_transcribe(tiny_en, clip["audio"])
        assert set(record) == {"id", "text", "language", "segments"}
        assert record["text"] == result.text and record["language"] == "en"
        words = [(w["word"], w["start"], w["end"]) for s in record["segments"] for w in s["words"]]
        assert words == [(w.word, w.start, w.end) for w in result.words]
        assert len(words) >= 5


def test_a_rerun_after_a_cut_mid_line_completes_the_file_byte_for_byte(tiny_en, manifest, reference, tmp_path):
    out = tmp_path / "out.jsonl"
    lines = reference.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # killed while writing line 4
    summary = transcribe_corpus(tiny_en, manifest, out, progress=False, retry_errors=False)
    assert (summary.skipped, summary.aligned, summary.failed) == (3, 2, 1)  # the kept "gone" error is not redone
    assert out.read_bytes() == reference


def test_a_killed_cli_run_resumes_without_losing_or_repeating_an_id(manifest, reference, tmp_path) -> None:
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "whisper_align.cli", "transcribe", "--manifest", str(manifest), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = out.read_bytes().count(b"\n")
    assert written >= 1
    assert main(["transcribe", "--manifest", str(manifest), "--out", str(out)]) == 1  # two lines are errors
    assert out.read_bytes() == reference


def test_text_is_optional_and_transcription_options_are_passed_on(tiny_en, tmp_path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(timit_lines(1)[0]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    transcribe_corpus(tiny_en, manifest, out, progress=False, language="en", beam_size=2)
    record = json.loads(out.read_text(encoding="utf-8"))
    beam = seeded_transcribe(tiny_en, timit_lines(1)[0]["audio"], language="en", beam_size=2)
    assert record["text"] == beam.text
    with pytest.raises(TranscriptError, match="word_timestamps"):
        transcribe_corpus(tiny_en, manifest, out, word_timestamps=False)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["transcribe"], "give AUDIO file(s) to transcribe, or --manifest"),
        (["transcribe", "--manifest", "MANIFEST"], "--manifest needs --out"),
        (["transcribe", "a.wav", "--manifest", "MANIFEST", "--out", "o.jsonl"], "drop the AUDIO files"),
        (["transcribe", "a.wav", "--engine", "ray"], "--engine ray runs a manifest"),
        (["transcribe", "a.wav", "--workers", "2"], "--workers only apply with --engine ray"),
    ],
)
def test_command_line_mistakes_are_named(argv, message, manifest, tmp_path, capsys) -> None:
    argv = [str(manifest) if a == "MANIFEST" else a for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
