"""The command line under faults: a corpus run killed with SIGKILL and resumed, output locations checked before the
model loads, exit statuses, and `transcribe` going on after an input that fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import support
import whisper_align.cli.align as cli_align
from whisper_align.checkpoints import save_model
from whisper_align.cli import main
from whisper_align.model.whisper import ModelDimensions, Whisper

ROOT = Path(__file__).resolve().parents[1]
TIMIT = support.TIMIT
DEMO = ROOT / "samples" / "demo.wav"
SMALL = ModelDimensions(
    n_mels=80, n_audio_ctx=1500, n_audio_state=16, n_audio_head=2, n_audio_layer=1,
    n_vocab=51864, n_text_ctx=64, n_text_state=16, n_text_head=4, n_text_layer=2,
)  # fmt: skip


def write_wav(path: Path, seconds: float) -> None:
    t = np.arange(int(16000 * seconds)) / 16000
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes((0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = Whisper(SMALL)
    with torch.no_grad():
        model.decoder.positional_embedding.normal_()
    path = tmp_path_factory.mktemp("model") / "small.pt"
    save_model(model, path)
    return path


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading a model fail loudly: the checks under test must come before it."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the paths were checked")

    monkeypatch.setattr(cli_align, "load", refuse)
    monkeypatch.setattr("whisper_align.checkpoints.load_model", refuse)


def small_manifest(folder: Path, lines: list[str] | None = None) -> Path:
    write_wav(folder / "a.wav", 2.0)
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines or [json.dumps({"id": "a", "audio": "a.wav", "text": "hello world"})]) + "\n")
    return path


# ---- align --manifest -----------------------------------------------------------------------------------------


def test_an_output_path_under_a_file_fails_before_the_model_loads(tmp_path, no_model, capsys) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    code = main(["align", "--manifest", str(small_manifest(tmp_path)), "--out", str(blocker / "out.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot create the output folder" in err and str(blocker) in err
    assert "Traceback" not in err
    code = main(["align", "--manifest", str(small_manifest(tmp_path)), "--out", str(tmp_path)])
    assert code == 2 and "is a folder" in capsys.readouterr().err


def test_a_damaged_output_fails_before_the_model_loads(tmp_path, no_model, capsys) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a", "words": []}\n42\n{"id": "b", "words": []}\n')
    code = main(["align", "--manifest", str(small_manifest(tmp_path)), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"{out}, line 2: expected a JSON object, got int" in err
    assert main(["align", "--manifest", str(tmp_path / "none.jsonl"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_failed_manifest_lines_give_exit_status_1_and_are_named(tmp_path, checkpoint, capsys) -> None:
    manifest = small_manifest(
        tmp_path,
        [
            json.dumps({"id": "a", "audio": "a.wav", "text": "hello world"}),
            '{"id": "b", "audio": "a.wav"',
            json.dumps({"id": "c", "audio": "missing.wav", "text": "hello"}),
        ],
    )
    out = tmp_path / "out.jsonl"
    code = main(["align", "--manifest", str(manifest), "--out", str(out), "--model", str(checkpoint)])
    captured = capsys.readouterr()
    assert code == 1
    assert "aligned 1, already done 0, failed 2" in captured.out
    assert "failed line:2: " in captured.err and "line 2: not valid JSON" in captured.err
    assert "failed c: " in captured.err and "missing.wav" in captured.err
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a", "line:2", "c"]
    # kept rather than retried: still a failed corpus
    code = main(
        ["align", "--manifest", str(manifest), "--out", str(out), "--model", str(checkpoint), "--no-retry-errors"]
    )
    captured = capsys.readouterr()
    assert code == 1 and "already done 3, failed 0" in captured.out and "2 error lines" in captured.err


def test_stray_os_errors_are_reported_without_a_traceback(monkeypatch, capsys) -> None:
    def broken(args: object) -> int:
        raise PermissionError(13, "Permission denied", "/somewhere/file")

    monkeypatch.setattr("whisper_align.cli.transcribe.run", broken)
    assert main(["transcribe", "x.wav"]) == 2
    assert capsys.readouterr().err.strip() == "whisper-align: error: /somewhere/file: Permission denied"


# ---- a real run, killed and resumed ---------------------------------------------------------------------------


def run_cli(args: list[str], log: Path) -> subprocess.Popen:
    """``python -m whisper_align.cli ARGS`` on this checkout's sources, stdout and stderr into ``log``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "whisper_align.cli", *args], env=env, stdout=handle, stderr=subprocess.STDOUT
        )


@pytest.mark.slow
@pytest.mark.skipif(not TIMIT.is_file(), reason="the timit-dev eval set is not at ../shared/eval")
def test_a_corpus_run_killed_with_sigkill_resumes_to_the_same_bytes(tmp_path) -> None:
    """16 timit-dev clips (two packed windows), a malformed line and a clip without audio, aligned by tiny.en in
    a subprocess: once uninterrupted, once killed as soon as the first lines are out and then rerun."""
    entries = [json.loads(line) for line in TIMIT.read_text().splitlines()[:16]]
    rows = [json.dumps({"id": e["id"], "audio": str(TIMIT.parent / e["audio"]), "text": e["text"]}) for e in entries]
    rows.insert(3, '{"id": "torn", "audio": "x.wav", "te')
    rows.insert(12, json.dumps({"id": "gone", "audio": str(tmp_path / "gone.wav"), "text": "nothing here"}))
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    reference, out = tmp_path / "reference.jsonl", tmp_path / "out.jsonl"

    logs = [tmp_path / f"run{i}.log" for i in range(3)]
    done = run_cli(["align", "--manifest", str(manifest), "--out", str(reference)], logs[0])
    assert done.wait(timeout=600) == 1, logs[0].read_text()

    killed = run_cli(["align", "--manifest", str(manifest), "--out", str(out)], logs[1])
    deadline = time.monotonic() + 600
    while killed.poll() is None and time.monotonic() < deadline:
        if out.exists() and b"\n" in out.read_bytes():
            killed.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    assert killed.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    written = out.read_bytes().count(b"\n")
    assert 0 < written < len(rows)

    resumed = run_cli(["align", "--manifest", str(manifest), "--out", str(out)], logs[2])
    assert resumed.wait(timeout=600) == 1, logs[2].read_text()
    assert f"failed 2 -> {out}" in logs[2].read_text()  # the two error lines were retried
    assert out.read_bytes() == reference.read_bytes()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == [e["id"] for e in entries[:3]] + ["line:4"] + [
        e["id"] for e in entries[3:11]
    ] + ["gone"] + [e["id"] for e in entries[11:]]


# ---- transcribe -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_transcribe_goes_on_after_a_failed_input_and_exits_1(tmp_path, capsys) -> None:
    empty = tmp_path / "empty.wav"
    write_wav(empty, 0.0)
    code = main(["transcribe", str(empty), str(DEMO), "--output-dir", str(tmp_path / "out"), "-f", "json"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"whisper-align: error: {empty}: " in err
    assert f"transcribed 1 of 2 files; failed: {empty}" in err
    result = json.loads((tmp_path / "out" / "demo.json").read_text())
    assert "weather" in result["text"].lower()
    assert not (tmp_path / "out" / "empty.json").exists()


def test_transcribe_checks_the_output_folder_before_the_model_loads(tmp_path, no_model, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["transcribe", str(DEMO), "--output-dir", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot write in the output folder" in err and str(blocker / "out") in err
