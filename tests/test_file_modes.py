"""What users see of files and names: saved models get the permissions any new file would get (0666 less the
umask), not mkstemp's private 0600, a file written over keeps its mode, and ``dir(whisper_align)`` shows the API."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import make_model
from whisper_align.checkpoints import save_model
from whisper_align.files import replacing


@pytest.fixture
def umask() -> Iterator[None]:
    before = os.umask(0o022)
    yield
    os.umask(before)


def _modes(folder: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("fmt", ["openai", "ctranslate2", "huggingface"])
@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_models_follow_the_umask(tmp_path: Path, umask: None, fmt: str, mask: int, expected: int) -> None:
    os.umask(mask)
    target = tmp_path / ("model.pt" if fmt == "openai" else "model")
    save_model(make_model(), target, format=fmt)
    folder = target.parent if fmt == "openai" else target
    assert _modes(folder) == {expected}
    assert not [p for p in folder.rglob(".*.tmp")]  # no temporary file left behind


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask: None) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    target.chmod(0o640)
    save_model(make_model(), target, format="openai")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_bytes() != b"old"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_dir_lists_the_lazily_imported_public_api() -> None:
    import whisper_align

    names = dir(whisper_align)
    assert {"load_model", "align", "transcribe", "save_model", "Result", "heads", "__version__"} <= set(names)


def test_json_reports_heads_files_and_results_follow_the_umask(tmp_path: Path, umask: None) -> None:
    from whisper_align.heads import write_json_heads
    from whisper_align.heads.discovery import write_json_atomic
    from whisper_align.results.formats import write_result
    from whisper_align.results.types import Result, Segment, Word

    write_json_atomic(tmp_path / "report.json", {"a": float("nan")})
    write_json_heads(tmp_path / "config.json", [[0, 1]])
    result = Result(text=" hi", segments=[Segment(0, 0, 1.0, 2.0, " hi", words=[Word(" hi", 1.0, 2.0)])])
    write_result(result, tmp_path / "out.srt")
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {
        "report.json": 0o644,
        "config.json": 0o644,
        "out.srt": 0o644,
    }
