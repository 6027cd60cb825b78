"""Corpus runs under faults: resuming gives the same words, malformed manifest lines, retried errors, a full disk,
damaged or unwritable output. Fast cases use a small random-weight model and synthetic audio (every result is
deterministic, which is all they need); the resume-after-a-torn-write case uses the bundled tiny.en on timit-dev."""

from __future__ import annotations

import errno
import json
import os
import wave
from pathlib import Path

import numpy as np
import pytest

import support
from whisper_align.errors import DamagedOutputError, ManifestError, OutputError
from whisper_align.model.whisper import Whisper
from whisper_align.results.manifest import Utterance, load_manifest, scan_manifest
from whisper_align.tasks.corpus import CorpusEntry, align_corpus, plan_groups
from whisper_align.tasks.corpus_output import CorpusOutput

TIMIT = support.TIMIT
SECONDS = [4.0, 7.5, 3.0, 9.0, 6.0, 2.5, 8.0, 5.0, 7.0, 3.5]  # 56 s: several packed windows


@pytest.fixture(scope="module")
def small_model() -> Whisper:
    return support.make_window_model(0)


def write_wav(path: Path, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    signal = 0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())


def synthetic_manifest(folder: Path) -> tuple[Path, list[str]]:
    """Ten clips of 2.5-9 s (56 s in all) with short texts; returns the manifest and its ids in order."""
    lines, ids = [], []
    for i, seconds in enumerate(SECONDS):
        write_wav(folder / f"c{i}.wav", seconds, i)
        ids.append(f"c{i}")
        lines.append(json.dumps({"id": f"c{i}", "audio": f"c{i}.wav", "text": f"number {i} says hello to the world"}))
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, ids


def ids_of(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


# ---- the plan -------------------------------------------------------------------------------------------------


def test_packing_groups_follow_manifest_order_and_clip_lengths() -> None:
    seconds = {"a": 10.0, "b": 12.0, "c": 7.0, "d": 40.0, "e": 29.5, "f": 1.0, "g": 0.0}
    entries = [CorpusEntry(i, name, Utterance(name, Path(name), "x")) for i, name in enumerate(seconds)]
    entries.insert(3, CorpusEntry(3, "line:4", None, "bad line"))
    groups = list(plan_groups(entries, estimate=lambda path: int(seconds[path.name] * 16000)))
    # a+b+c with two 0.5 s gaps is 30 s: full; the bad line joins the open group; d is too long for a window
    # and stands alone; e (29.5 s) leaves no room for a gap and f; g has no known length and joins f's group
    assert [[e.id for e in group] for group in groups] == [["a", "b", "c", "line:4"], ["d"], ["e"], ["f", "g"]]
    unpacked = list(plan_groups(entries, pack=False, estimate=lambda path: int(seconds[path.name] * 16000)))
    assert [[e.id for e in group] for group in unpacked] == [["a"], ["b"], ["c", "line:4"], ["d"], ["e"], ["f", "g"]]


# ---- resuming -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cut_line", [1, 3, 6])
def test_resume_after_a_cut_mid_line_gives_identical_output(small_model, tmp_path, cut_line) -> None:
    manifest, ids = synthetic_manifest(tmp_path)
    reference = tmp_path / "reference.jsonl"
    summary = align_corpus(small_model, manifest, reference, progress=False)
    assert (summary.aligned, summary.failed) == (10, 0) and ids_of(reference) == ids
    lines = reference.read_bytes().splitlines(keepends=True)
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"".join(lines[:cut_line]) + lines[cut_line][: len(lines[cut_line]) // 2])
    summary = align_corpus(small_model, manifest, out, progress=False)
    assert (summary.skipped, summary.aligned) == (cut_line, 10 - cut_line)
    assert out.read_bytes() == reference.read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(not TIMIT.is_file(), reason="the timit-dev eval set is not at ../shared/eval")
def test_tiny_en_resume_of_a_torn_timit_run_is_byte_identical(tmp_path) -> None:
    """16 timit-dev clips (two packed windows); the output is cut in the middle of the fifth line and resumed:
    every clip must get the same words as in the uninterrupted run (the first window is re-aligned whole)."""
    from whisper_align.checkpoints import load_model

    model = load_model("tiny.en")
    manifest = tmp_path / "timit16.jsonl"
    entries = [json.loads(line) for line in TIMIT.read_text().splitlines()[:16]]
    manifest.write_text(
        "".join(
            json.dumps({"id": e["id"], "audio": str(TIMIT.parent / e["audio"]), "text": e["text"]}) + "\n"
            for e in entries
        )
    )
    reference = tmp_path / "reference.jsonl"
    assert align_corpus(model, manifest, reference, progress=False).aligned == 16
    lines = reference.read_bytes().splitlines(keepends=True)
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"".join(lines[:4]) + lines[4][:25])
    summary = align_corpus(model, manifest, out, progress=False)
    assert (summary.skipped, summary.aligned, summary.failed) == (4, 12, 0)
    assert out.read_bytes() == reference.read_bytes()


# ---- the manifest ---------------------------------------------------------------------------------------------


def bad_manifest(folder: Path) -> Path:
    _, ids = synthetic_manifest(folder)
    good = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    rows = [
        json.dumps(good[0]).encode(),
        b'{"id": "broken", "audio": "c1.wav", "text": "no closing brace"',  # line 2: bad JSON, id unreadable
        json.dumps({"id": "notext", "audio": "c1.wav"}).encode(),  # line 3: missing key, id readable
        b'{"id": "latin", "audio": "c2.wav", "text": "caf\xe9"}',  # line 4: not UTF-8
        json.dumps(good[1]).encode(),
        b"",
        json.dumps(good[0]).encode(),  # line 7: a repeated id
        json.dumps(good[2]).encode(),
    ]
    path = folder / "bad.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


def test_malformed_manifest_lines_become_error_lines_and_the_rest_is_aligned(small_model, tmp_path) -> None:
    manifest = bad_manifest(tmp_path)
    out = tmp_path / "out.jsonl"
    summary = align_corpus(small_model, manifest, out, progress=False)
    assert (summary.aligned, summary.failed) == (3, 4)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == ["c0", "line:2", "notext", "latin", "c1", "line:7", "c2"]
    errors = {row["id"]: row["error"] for row in rows if "error" in row}
    assert "line 2: not valid JSON" in errors["line:2"]
    assert "line 3: missing required field 'text'" in errors["notext"]
    assert "line 4: not UTF-8 text (byte 0xe9" in errors["latin"]
    assert "line 7: id 'c0' already used on line 1" in errors["line:7"]
    assert all(row["words"] for row in rows if "words" in row)
    assert dict(summary.failures) == errors


def test_strict_manifest_reading_names_the_non_utf8_line(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"id": "a", "audio": "a.wav", "text": "x"}\n{"id": "b", "audio": "b.wav", "text": "\xff"}\n')
    with pytest.raises(ManifestError, match=r"line 2: not UTF-8 text \(byte 0xff at column 40\)"):
        load_manifest(path)
    first, second = scan_manifest(path)
    assert first.id == "a" and second.line == 2 and second.id == "b"


# ---- error lines ----------------------------------------------------------------------------------------------


def test_error_lines_are_retried_and_replaced_not_duplicated(small_model, tmp_path) -> None:
    manifest, ids = synthetic_manifest(tmp_path)
    reference = tmp_path / "reference.jsonl"
    align_corpus(small_model, manifest, reference, progress=False)
    hidden = tmp_path / "c4.wav"
    hidden.rename(tmp_path / "c4.hidden")
    out = tmp_path / "out.jsonl"
    summary = align_corpus(small_model, manifest, out, progress=False)
    assert summary.failures[0][0] == "c4" and "does not exist" in summary.failures[0][1] and summary.failed == 1

    kept = align_corpus(small_model, manifest, out, progress=False, retry_errors=False)
    assert (kept.skipped, kept.kept_errors, kept.aligned, kept.failed) == (10, 1, 0, 0)
    assert "error" in json.loads(out.read_text().splitlines()[4])

    (tmp_path / "c4.hidden").rename(hidden)
    summary = align_corpus(small_model, manifest, out, progress=False)
    assert (summary.skipped, summary.aligned, summary.failed) == (9, 1, 0)
    assert ids_of(out) == ids  # one line per id, in manifest order
    # c4 got the words of a run in which it never failed (its neighbours keep theirs: while c4 had no audio,
    # the plan had room for more of them in its window)
    assert out.read_text().splitlines()[4] == reference.read_text().splitlines()[4]


# ---- the output file ------------------------------------------------------------------------------------------


def test_a_full_disk_leaves_no_torn_line_and_the_rerun_completes(small_model, tmp_path, monkeypatch) -> None:
    manifest, ids = synthetic_manifest(tmp_path)
    reference = tmp_path / "reference.jsonl"
    align_corpus(small_model, manifest, reference, progress=False)
    out = tmp_path / "out.jsonl"
    real_write = os.write
    calls = []

    def full_disk(fd: int, data) -> int:  # noqa: ANN001
        if not out.exists() or os.fstat(fd).st_ino != out.stat().st_ino:
            return real_write(fd, data)
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, data)  # the first window's lines fit
        if len(calls) == 2:
            return real_write(fd, bytes(data[: len(data) // 2]))  # half of the next window's lines, then full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OutputError, match="out.jsonl") as caught:
        align_corpus(small_model, manifest, out, progress=False)
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(out)
    written = out.read_bytes()
    assert written and written.endswith(b"\n")
    assert reference.read_bytes().startswith(written)  # rolled back to the first window's complete lines
    align_corpus(small_model, manifest, out, progress=False)
    assert out.read_bytes() == reference.read_bytes()


@pytest.mark.parametrize(
    "line, problem",
    [
        (b'{"id": "c1", "words": [\n', "line 2: not valid JSON"),
        (b'["c1", []]\n', "line 2: expected a JSON object, got list"),
        (b'{"words": []}\n', "line 2: no string 'id'"),
        (b'{"id": "c1"}\n', "line 2: neither a 'words' list nor an 'error'"),
        (b'{"id": "c\xe91", "words": []}\n', "line 2: not UTF-8"),
    ],
)
def test_a_damaged_output_file_is_reported_with_its_line(small_model, tmp_path, line, problem) -> None:
    manifest, _ = synthetic_manifest(tmp_path)
    out = tmp_path / "out.jsonl"
    content = b'{"id": "c0", "words": []}\n' + line + b'{"id": "c2", "error": "x"}\n'
    out.write_bytes(content)
    with pytest.raises(DamagedOutputError, match=problem) as caught:
        align_corpus(small_model, manifest, out, progress=False)
    assert "delete that line" in str(caught.value) and str(out) in str(caught.value)
    assert out.read_bytes() == content  # nothing touched


def test_torn_and_unterminated_last_lines_are_repaired(tmp_path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id": "a", "words": []}\n{"id": "b", "wor')
    with CorpusOutput.open(out) as output:
        assert [r.id for r in output.records] == ["a"]
    assert out.read_bytes() == b'{"id": "a", "words": []}\n'
    out.write_bytes(b'{"id": "a", "words": []}\n{"id": "b", "error": "x"}')  # whole, only the newline lost
    with CorpusOutput.open(out) as output:
        assert [(r.id, r.ok) for r in output.records] == [("a", True), ("b", False)]
    assert out.read_bytes().endswith(b'"x"}\n')


def test_an_unwritable_output_location_is_a_typed_error(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot create the output folder") as caught:
        CorpusOutput.open(blocker / "sub" / "out.jsonl")
    assert caught.value.filename == str(blocker / "sub")
    with pytest.raises(OutputError, match="is a folder"):
        CorpusOutput.open(tmp_path)


def test_a_failed_append_is_rolled_back(tmp_path, monkeypatch) -> None:
    out = tmp_path / "out.jsonl"
    with CorpusOutput.open(out) as output:
        output.append(['{"id": "a", "words": []}'])
        real_write = os.write

        def half_then_full(fd: int, data) -> int:  # noqa: ANN001
            if len(data) > 10:
                return real_write(fd, bytes(data[:10]))
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", half_then_full)
        with pytest.raises(OutputError, match="nothing of this batch was kept"):
            output.append(['{"id": "b", "words": []}', '{"id": "c", "words": []}'])
        monkeypatch.undo()
        assert [r.id for r in output.records] == ["a"]
        output.append(['{"id": "d", "error": "x"}'])
    assert out.read_bytes() == b'{"id": "a", "words": []}\n{"id": "d", "error": "x"}\n'
