"""The Ray engine on a real local Ray (``ray.init(num_cpus=2)``, one session for the module): it writes the
single-process engine's file byte for byte (so the same words, to the millisecond), bad rows become error
rows, and a rerun after an interrupted run loses and duplicates nothing.

Ray starts slowly (tens of seconds on a busy 2-core machine), so the module runs only three Ray jobs: the CLI
from scratch, a resume, and a transcription. The map_batches classes' row handling is checked in this process.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from support import TIMIT, TIMIT_DIR, needs_eval
from whisper_align.cli import main
from whisper_align.engines import ray_run
from whisper_align.engines.ray_data import ModelSpec, RayAligner, RayTranscriber
from whisper_align.engines.ray_run import Cluster, align_on_ray, transcribe_on_ray
from whisper_align.errors import EngineError, ModelLoadError
from whisper_align.tasks.corpus import align_corpus
from whisper_align.tasks.transcribe_corpus import transcribe_corpus

ray = pytest.importorskip("ray", reason="the dev extra installs ray[data]")  # under CI=true a skip fails

pytestmark = needs_eval

N_CLIPS = 10  # timit clips of about 3 s: two packing groups


def timit_clips(n: int, first: int = 1) -> list[dict]:
    """timit-dev lines from the ``first`` (the very first is a damaged recording), with absolute audio paths."""
    lines = []
    for raw in TIMIT.read_text(encoding="utf-8").splitlines()[first : first + n]:
        entry = json.loads(raw)
        lines.append({"id": entry["id"], "audio": str(TIMIT_DIR / entry["audio"]), "text": entry["text"]})
    return lines


def write_manifest(path: Path, lines: list[dict | str]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture
def one_group_per_block(monkeypatch) -> None:
    """Blocks of one packing group, so that the two groups go to two workers and may come back in any order."""
    monkeypatch.setattr(ray_run, "GROUPS_PER_BLOCK", 1)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """Ten clips, with a missing audio file after the third and a line that is not JSON after the seventh."""
    lines: list[dict | str] = list(timit_clips(N_CLIPS))
    lines.insert(3, {"id": "gone", "audio": "no/such.wav", "text": "nothing here"})
    lines.insert(8, '{"id": "cut", "audio": ')
    return write_manifest(tmp_path_factory.mktemp("manifest") / "manifest.jsonl", lines)


@pytest.fixture(scope="module")
def reference(tiny_en, manifest, tmp_path_factory) -> bytes:
    """The single-process engine's output for the manifest."""
    out = tmp_path_factory.mktemp("local") / "out.jsonl"
    align_corpus(tiny_en, manifest, out, progress=False)
    return out.read_bytes()


def test_the_cli_on_ray_writes_the_single_process_file(ray_session, one_group_per_block, manifest, reference, tmp_path):
    out = tmp_path / "ray.jsonl"
    argv = ["align", "--manifest", str(manifest), "--out", str(out), "--engine", "ray", "--workers", "2"]
    assert main(argv) == 1  # two lines are errors
    assert out.read_bytes() == reference  # every word, start and end (ms) and probability, in manifest order
    records = [json.loads(line) for line in reference.splitlines()]
    assert len(records) == N_CLIPS + 2 and len({r["id"] for r in records}) == N_CLIPS + 2
    assert "does not exist" in records[3]["error"] and "line 9: not valid JSON" in records[8]["error"]
    assert sum(len(r.get("words", [])) for r in records) > 60


def test_a_resumed_ray_run_loses_and_repeats_nothing(ray_session, one_group_per_block, manifest, reference, tmp_path):
    lines = reference.splitlines(keepends=True)
    # what a killed Ray run leaves: blocks in the order they finished (here the second group's first), one
    # group cut in the middle, and half a line being written
    kept = lines[8:11] + lines[:2]
    out = tmp_path / "ray.jsonl"
    out.write_bytes(b"".join(kept) + lines[5][:40])
    summary = align_on_ray(manifest, out, ModelSpec("tiny.en"), Cluster(workers=2), progress=False)
    assert summary.skipped == 4  # the error line kept ("line:9") is retried and fails again
    assert (summary.aligned, summary.failed) == (N_CLIPS + 2 - 4 - 2, 2)
    assert out.read_bytes() == reference


def test_transcription_on_ray_matches_the_single_process_engine(ray_session, tiny_en, tmp_path) -> None:
    clips = [{"id": c["id"], "audio": c["audio"]} for c in timit_clips(3, first=20)]
    manifest = write_manifest(tmp_path / "m.jsonl", [*clips[:2], {"id": "gone", "audio": "x.wav"}, clips[2]])
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    transcribe_corpus(tiny_en, manifest, local, progress=False)
    summary = transcribe_on_ray(manifest, remote, ModelSpec("tiny.en"), Cluster(workers=2), progress=False)
    assert (summary.aligned, summary.failed) == (3, 1)
    assert remote.read_bytes() == local.read_bytes()
    ids = [json.loads(line)["id"] for line in remote.read_text().splitlines()]
    assert ids == [clips[0]["id"], clips[1]["id"], "gone", clips[2]["id"]]


def test_a_cluster_too_small_for_the_workers_is_refused_before_anything_runs(ray_session, manifest, tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(EngineError, match="has 2 CPUs and 0 GPUs"):
        align_on_ray(manifest, out, ModelSpec("tiny.en"), Cluster(workers=8), progress=False)
    with pytest.raises(EngineError, match="needs GPUs"):
        align_on_ray(manifest, out, ModelSpec("tiny.en", device="cuda"), Cluster(workers=1), progress=False)
    assert not out.exists() or out.read_bytes() == b""


# ---- the map_batches classes, in this process -----------------------------------------------------------------


@pytest.fixture(scope="module")
def aligner() -> RayAligner:
    return RayAligner("tiny.en", threads=None)


def test_audio_as_bytes_gives_the_words_of_the_file_and_bad_bytes_an_error_row(aligner, tiny_en, tmp_path) -> None:
    first, second = timit_clips(2, first=30)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF....WAVEnot really audio")
    manifest = write_manifest(tmp_path / "m.jsonl", [first, {"id": "bad", "audio": str(garbage), "text": "x"}, second])
    align_corpus(tiny_en, manifest, tmp_path / "local.jsonl", progress=False)
    local = (tmp_path / "local.jsonl").read_text().splitlines()

    batch = {
        "id": [first["id"], "bad", second["id"]],
        "audio": [Path(first["audio"]).read_bytes(), garbage.read_bytes(), Path(second["audio"]).read_bytes()],
        "text": [first["text"], "x", second["text"]],
    }
    rows = aligner(batch)
    assert list(rows["id"]) == [first["id"], "bad", second["id"]]
    assert [rows["line"][0], rows["line"][2]] == [local[0], local[2]]  # packed as the manifest run packs them
    assert rows["error"][0] is None and rows["words"][0] == json.loads(local[0])["words"]
    assert "<the audio bytes of bad>" in rows["error"][1] and str(tmp_path) not in rows["error"][1]
    assert rows["words"][1] is None and json.loads(rows["line"][1]) == {"id": "bad", "error": rows["error"][1]}


def test_rows_without_audio_or_text_and_manifest_problems_become_error_rows(aligner) -> None:
    clip = timit_clips(1)[0]
    batch = {
        "id": ["a", "b", "c", "d"],
        "audio": [None, clip["audio"], clip["audio"], clip["audio"]],
        "text": [clip["text"], None, clip["text"], clip["text"]],
        "problem": [None, None, "m.jsonl, line 3: not valid JSON", None],
        "done": [False, False, False, True],
    }
    rows = aligner(batch)
    assert list(rows["id"]) == ["a", "b", "c"]  # "d" was only context
    assert "no 'audio'" in rows["error"][0] and "no 'text'" in rows["error"][1]
    assert rows["error"][2] == "m.jsonl, line 3: not valid JSON"


def test_a_packing_group_cut_by_the_batching_is_refused(aligner) -> None:
    clips = timit_clips(2)
    batch = {
        "id": [c["id"] for c in clips],
        "audio": [c["audio"] for c in clips],
        "text": [c["text"] for c in clips],
        "group": [7, 7],
        "group_size": [3, 3],
    }
    with pytest.raises(EngineError, match="packing group 7 reached this batch with 2 of its 3 clips"):
        aligner(batch)


def test_the_transcriber_takes_bytes_and_writes_the_single_process_line(tiny_en, tmp_path) -> None:
    clip = timit_clips(1, first=40)[0]
    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": clip["id"], "audio": clip["audio"]}])
    transcribe_corpus(tiny_en, manifest, tmp_path / "local.jsonl", progress=False)
    rows = RayTranscriber("tiny.en", threads=None)({"id": [clip["id"]], "audio": [Path(clip["audio"]).read_bytes()]})
    line = (tmp_path / "local.jsonl").read_text().strip()
    assert rows["line"][0] == line and rows["error"][0] is None
    assert rows["text"][0] == json.loads(line)["text"] and len(rows["words"][0]) >= 3


# ---- mistakes named before any work ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--address", "auto"], "--address only apply with --engine ray"),
        (["--num-gpus", "1"], "--num-gpus only apply with --engine ray"),
        (["--engine", "ray", "--model", "no-such-model"], "neither an existing file or folder nor a known model"),
        (["--engine", "ray", "--int8", "--num-gpus", "1"], "int8 weights run on the CPU only"),
    ],
)
def test_command_line_mistakes_are_named(extra, message, manifest, tmp_path, capsys) -> None:
    argv = ["align", "--manifest", str(manifest), "--out", str(tmp_path / "o.jsonl"), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_without_ray_installed_the_engine_says_how_to_install_it(manifest, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(EngineError, match=r"pip install 'whisper-align\[ray\]'"):
        align_on_ray(manifest, tmp_path / "o.jsonl", ModelSpec("tiny.en"), progress=False)
    with pytest.raises(ModelLoadError):
        ModelSpec("no/such/model.pt")
