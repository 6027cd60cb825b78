"""Every Python block of the README runs as written (issue #14): the file names it uses are made to exist (copies of
the bundled demo, an RTTM file, an openai-whisper model for the one-line heads recipe), nothing else is changed."""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import pytest

from support import DEMO_WAV, ROOT

pytestmark = pytest.mark.slow

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


def _setup(block: str, folder: Path, namespace: dict) -> None:
    """Create what ``block`` reads: audio, a diarization, earlier blocks' names, an openai-whisper model."""
    shutil.copy(DEMO_WAV, folder / "speech.wav")
    shutil.copy(DEMO_WAV, folder / "talk.mp3")  # FFmpeg/PyAV read by content, not by extension
    (folder / "talk.rttm").write_text(
        "SPEAKER talk 1 0.00 2.50 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
        "SPEAKER talk 1 2.50 9.00 <NA> <NA> SPEAKER_01 <NA> <NA>\n"
    )
    if "set_alignment_heads(torch.load" in block:
        import whisper

        import whisper_align as wa

        wa.save_model(wa.load_model("tiny.en"), folder / "model.pt")
        namespace["model"] = whisper.load_model(str(folder / "model.pt"), device="cpu")
        namespace["torch"] = __import__("torch")


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    pytest.importorskip("whisper")  # openai-whisper: a test reference, installed by `make setup`
    block = BLOCKS[index]
    namespace: dict = {}
    monkeypatch.chdir(tmp_path)
    # later blocks use names of the first (model, text): run the blocks before this one first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for earlier in BLOCKS[:index]:
            if "set_alignment_heads(torch.load" not in earlier:
                _setup(earlier, tmp_path, namespace)
                exec(compile(earlier, f"README block {BLOCKS.index(earlier)}", "exec"), namespace)
        _setup(block, tmp_path, namespace)
        exec(compile(block, f"README block {index}", "exec"), namespace)
    if "set_alignment_heads(torch.load" in block:
        import torch

        import whisper_align as wa

        ours = wa.load_model("tiny.en").alignment_heads.to_dense()
        assert torch.equal(namespace["model"].alignment_heads.to_dense().cpu(), ours)
    assert os.getcwd() == str(tmp_path)
