"""Packed windows can encode each clip as a sequence of its own (AudioEncoder ``starts``, packing.SEPARATE_CLIPS):
a clip's encoder output then does not depend on its neighbours' audio, and packed corpus alignment gives a clip
the words it gets alone."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import support
from whisper_align.model.whisper import ModelDimensions, Whisper
from whisper_align.results.manifest import load_manifest
from whisper_align.tasks import packing
from whisper_align.tasks.align import align
from whisper_align.tasks.corpus import align_corpus

SMALL = ModelDimensions(
    n_mels=80, n_audio_ctx=1500, n_audio_state=16, n_audio_head=2, n_audio_layer=2,
    n_vocab=51864, n_text_ctx=64, n_text_state=16, n_text_head=4, n_text_layer=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def model() -> Whisper:
    torch.manual_seed(3)
    model = Whisper(SMALL).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def test_segments_do_not_hear_each_other(model) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    mel = torch.randn(1, model.dims.n_mels, 3000)
    starts = [0, 400, 900]
    changed = mel.clone()
    changed[:, :, 900:1700] = torch.randn(1, model.dims.n_mels, 800)  # audio inside the second segment only
    with torch.inference_mode():
        before, after = model.embed_audio(mel, starts), model.embed_audio(changed, starts)
        joint_before, joint_after = model.embed_audio(mel), model.embed_audio(changed)
    assert torch.equal(before[:, :400], after[:, :400]) and torch.equal(before[:, 900:], after[:, 900:])
    assert not torch.equal(before[:, 400:900], after[:, 400:900])
    assert not torch.allclose(joint_before[:, :400], joint_after[:, :400])  # one sequence: everything hears it


def test_a_segment_does_not_depend_on_where_it_sits(model) -> None:  # noqa: ANN001
    """Positions restart at each segment: the same audio as the segment [400, 900) or as [600, 1100) of a window
    gives the same encoder output (the mel frames its convolutions read are equal)."""
    torch.manual_seed(1)
    content = torch.randn(1, model.dims.n_mels, 1003)  # mel frames 2 * start - 2 ... 2 * end: what the convs read
    first, second = torch.randn(1, model.dims.n_mels, 3000), torch.randn(1, model.dims.n_mels, 3000)
    first[:, :, 798:1801], second[:, :, 1198:2201] = content, content
    with torch.inference_mode():
        a = model.embed_audio(first, [0, 400, 900])[:, 400:900]
        b = model.embed_audio(second, [0, 600, 1100])[:, 600:1100]
        joint = model.embed_audio(second)[:, 600:1100]
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, joint, atol=1e-2)


@pytest.mark.parametrize("starts", [[], [5, 100], [0, 300, 300], [0, 1500], [0, 900, 400]])
def test_bad_segment_starts_are_refused(model, starts) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="segment starts"):
        model.embed_audio(torch.zeros(1, model.dims.n_mels, 3000), starts)


@support.needs_eval
def test_packed_clips_get_the_words_they_get_alone(tiny_en, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Speaker maeb0's clips packed as ``align --manifest`` packs them: each clip the model hears (alignment score
    of at least 0.03 alone) gets within a few frames of the words it gets alone (when the clips shared the
    encoder's attention, sx270's "aprons" started 118 ms early). Clips it barely hears (si1411, sx450) follow
    no such rule either way: their attention path is unstable, alone as much as packed."""
    monkeypatch.setattr(packing, "SEPARATE_CLIPS", True)  # off by default: see tasks/packing.py
    clips = [u for u in load_manifest(support.TIMIT) if "maeb0" in u.id]
    manifest = support.write_manifest(tmp_path / "manifest.jsonl", clips)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        align_corpus(tiny_en, manifest, tmp_path / "out.jsonl")
        alone = {u.id: align(tiny_en, u.audio, u.text) for u in clips}
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == [u.id for u in clips]
    gaps = []
    for line in lines:
        words = alone[line["id"]].words
        assert [w["word"] for w in line["words"]] == [w.word for w in words]
        if alone[line["id"]].alignment_score >= 0.03:
            gaps += [abs(p["start"] - w.start) for p, w in zip(line["words"], words)]
            gaps += [abs(p["end"] - w.end) for p, w in zip(line["words"], words)]
    assert len(gaps) > 100
    assert max(gaps) < 0.1 and float(np.mean(gaps)) < 0.01, (max(gaps), float(np.mean(gaps)))
