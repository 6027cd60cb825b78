"""`whisper-align eval`: the table and JSON it writes, --heads, and its argument and manifest errors."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import support
from whisper_align.checkpoints import save_model
from whisper_align.cli import main
from whisper_align.model.whisper import ModelDimensions, Whisper

SMALL = ModelDimensions(
    n_mels=80, n_audio_ctx=1500, n_audio_state=16, n_audio_head=2, n_audio_layer=1,
    n_vocab=51864, n_text_ctx=64, n_text_state=16, n_text_head=4, n_text_layer=2,
)  # fmt: skip
TIMIT = support.TIMIT
COLUMNS = [
    "utts",
    "ref words",
    "matched",
    "mean ms",
    "start MAE ms",
    "end MAE ms",
    "median ms",
    "<=20ms",
    "<=50ms",
    "<=100ms",
    "<=200ms",
    "P@50ms",
    "R@50ms",
    "F1@50ms",
]


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


def manifest(folder: Path, words: bool = True) -> Path:
    lines = []
    for i in range(2):
        write_wav(folder / f"a{i}.wav", 1.5 + i)
        entry = {"id": f"u{i}", "audio": f"a{i}.wav", "text": "Hello, there world."}
        if words:
            entry["words"] = [
                {"word": "hello", "start": 0.1, "end": 0.4},
                {"word": "there", "start": 0.45, "end": 0.8},
                {"word": "world", "start": 0.85, "end": 1.3},
            ]
        lines.append(json.dumps(entry))
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_eval_prints_a_table_and_writes_json(checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results" / "eval.json"
    code = main(
        [
            "eval",
            str(manifest(tmp_path)),
            "--model",
            str(checkpoint),
            "--json",
            str(out),
            "--per-utterance",
            "--heads",
            "[[0,1],[1,3]]",
            "--mode",
            "conformance",
            "--tolerance",
            "0.1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if "ref words" in line)
    assert [cell.strip() for cell in header.strip("|").split("|")][1:] == [
        c.replace("50ms", "100ms") if c[0] in "PRF" else c for c in COLUMNS
    ]
    assert "| u0" in printed and "| u1" in printed  # --per-utterance rows
    result = json.loads(out.read_text())
    assert result["heads"] == [[0, 1], [1, 3]] and result["mode"] == "conformance"
    metrics = result["metrics"]
    for key in (
        "n_utterances",
        "n_ref_words",
        "n_matched",
        "matched_share",
        "start_mae_ms",
        "end_mae_ms",
        "median_abs_ms",
        "within_20ms",
        "within_50ms",
        "within_100ms",
        "within_200ms",
        "precision",
        "recall",
        "f1",
        "utterances",
    ):
        assert key in metrics
    assert metrics["n_utterances"] == 2 and metrics["n_ref_words"] == 6 and metrics["matched_share"] == 1.0
    assert metrics["tolerance_ms"] == pytest.approx(100.0)
    assert set(metrics["utterances"]) == {"u0", "u1"}
    assert [p.name for p in out.parent.iterdir()] == ["eval.json"]  # no temporary file left


def test_eval_refuses_a_manifest_without_words(checkpoint: Path, tmp_path: Path, capsys) -> None:
    code = main(["eval", str(manifest(tmp_path, words=False)), "--model", str(checkpoint)])
    assert code == 2
    assert "no reference word times" in capsys.readouterr().err


def test_eval_rejects_heads_for_another_model(checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert main(["eval", str(manifest(tmp_path)), "--model", str(checkpoint), "--heads", "tiny.en"]) == 2
    assert "decoder layers" in capsys.readouterr().err
    assert main(["eval", str(manifest(tmp_path)), "--model", str(checkpoint), "--heads", "[[5,0]]"]) == 2
    assert "outside this model's decoder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message", [(["--tolerance", "-1"], "tolerance"), (["--mode", "fast"], "invalid choice")]
)
def test_eval_argument_errors(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "manifest.jsonl", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_eval_missing_manifest(capsys, tmp_path: Path) -> None:
    assert main(["eval", str(tmp_path / "nothing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not TIMIT.is_file(), reason="the timit-dev eval set is not at ../shared/eval")
def test_eval_tiny_en_on_three_timit_clips(tmp_path: Path, capsys) -> None:
    lines = TIMIT.read_text().splitlines()[:3]
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        entry["audio"] = str(TIMIT.parent / entry["audio"])
    small = tmp_path / "m.jsonl"
    small.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    out = tmp_path / "o.json"
    assert main(["eval", str(small), "--model", "tiny.en", "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["matched_share"] == 1.0 and metrics["within_200ms"] > 0.5
