"""The boundary refinement in the default path (issue #10): shipped with the bundled models, used by align,
packed corpus alignment and transcription, kept out of conformance mode, carried by every checkpoint format and
fitted by `whisper-align heads refine`."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from support import FESTIVAL, needs_eval
from whisper_align.alignment.words import AlignmentConfig
from whisper_align.checkpoints import load_model, save_model
from whisper_align.cli import main as cli_main
from whisper_align.errors import ModelLoadError
from whisper_align.results.evaluation import score
from whisper_align.results.manifest import load_manifest
from whisper_align.tasks.align import align
from whisper_align.tasks.transcribe import transcribe

pytestmark = [pytest.mark.slow, needs_eval]


def _festival(indices: range) -> list:
    clips = load_manifest(FESTIVAL)
    return [clips[k] for k in indices]


def _times(result) -> list[tuple[str, float, float]]:  # noqa: ANN001
    return [(w.word, w.start, w.end) for w in result.words]


def _quiet_align(model, u, **kw):  # noqa: ANN001, ANN003
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return align(model, u.audio, u.text, **kw)


def test_bundled_models_ship_a_refinement_for_their_official_heads(tiny_en):
    assert tiny_en.boundary_refiner is not None
    assert tiny_en.boundary_refiner.detectors is not None  # the encoder-state detector is part of it
    model = load_model("tiny.en")
    model.set_alignment_head_pairs([(2, 0), (3, 1)])  # other heads: the refinement belonged to the old ones
    assert model.boundary_refiner is None and model.alignment_time_shift == 0.0


def test_refinement_keeps_every_word_in_order_and_moves_boundaries(tiny_en):
    for u in _festival(range(1, 40, 9)):
        coarse = _times(_quiet_align(tiny_en, u, config=AlignmentConfig(refine=False)))
        refined = _times(_quiet_align(tiny_en, u))
        assert [w for w, _, _ in refined] == [w for w, _, _ in coarse]
        ends = [0.0] + [e for _, _, e in refined]
        starts = [s for _, s, _ in refined]
        assert all(a <= b + 1e-9 for a, b in zip(ends, starts)), "words overlap"
        assert all(s <= e for _, s, e in refined)
    assert refined != coarse


def test_refinement_is_more_precise_on_clips_it_was_not_fitted_on(tiny_en):
    """The shipped refinement saw festival clips 0, 3, 6, ... only; clips 1, 4, 7, ... are new to it."""
    test = _festival(range(1, 130, 9))
    pairs = {False: {}, True: {}}
    for u in test:
        for refine in (False, True):
            result = _quiet_align(tiny_en, u, config=AlignmentConfig(refine=refine))
            pairs[refine][u.id] = (u.words, _times(result))
    before, after = score(pairs[False]), score(pairs[True])
    assert after.median_abs_ms < 0.6 * before.median_abs_ms
    assert (after.start_mae_ms + after.end_mae_ms) < (before.start_mae_ms + before.end_mae_ms)
    assert after.within[50] > before.within[50] + 0.15


def test_conformance_mode_ignores_the_refinement(tiny_en):
    u = _festival(range(2, 3))[0]
    conformance = AlignmentConfig(mode="conformance")
    with_refiner = _times(_quiet_align(tiny_en, u, config=conformance))
    saved, tiny_en.boundary_refiner = tiny_en.boundary_refiner, None
    try:
        without = _times(_quiet_align(tiny_en, u, config=conformance))
    finally:
        tiny_en.boundary_refiner = saved
    assert with_refiner == without


@pytest.mark.parametrize("fmt", ["openai", "ctranslate2", "huggingface"])
def test_refinement_travels_in_every_checkpoint_format(tiny_en, tmp_path, fmt):
    model = load_model("tiny.en")
    model.set_alignment_head_pairs([(2, 0), (3, 1), (3, 2)])
    model.alignment_time_shift = -0.05
    model.boundary_refiner = tiny_en.boundary_refiner
    target = tmp_path / ("m.pt" if fmt == "openai" else "m")
    save_model(model, target, format=fmt, **({"dtype": torch.float32} if fmt == "ctranslate2" else {}))
    loaded = load_model(target)
    assert loaded.boundary_refiner is not None
    assert loaded.boundary_refiner.to_dict() == tiny_en.boundary_refiner.to_dict()
    assert loaded.alignment_time_shift == pytest.approx(-0.05)


def test_a_damaged_refinement_in_a_checkpoint_is_a_load_error(tiny_en, tmp_path):
    folder = tmp_path / "m"
    model = load_model("tiny.en")
    model.set_alignment_head_pairs([(2, 0), (3, 1)])
    model.boundary_refiner = tiny_en.boundary_refiner
    save_model(model, folder, format="ctranslate2", dtype=torch.float32)
    config = json.loads((folder / "config.json").read_text())
    config["boundary_refiner"]["start"]["weights"] = [1.0, 2.0]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="boundary_refiner"):
        load_model(folder)


def test_transcription_word_times_use_the_refinement(tiny_en):
    u = _festival(range(4, 5))[0]
    results = {}
    for refine in (False, True):
        torch.manual_seed(0)
        config = AlignmentConfig(refine=refine)
        results[refine] = transcribe(
            tiny_en, str(u.audio), word_timestamps=True, temperature=0.0, alignment_config=config
        )
    assert results[True].text == results[False].text
    words = {k: [(w.word, w.start, w.end) for s in r.segments for w in s.words] for k, r in results.items()}
    assert [w for w, _, _ in words[True]] == [w for w, _, _ in words[False]]
    assert words[True] != words[False]


def test_heads_refine_fits_stores_and_reloads(tiny_en, tmp_path, capsys):
    clips = _festival(range(0, 45, 3))
    manifest = tmp_path / "labelled.jsonl"
    rows = [
        {
            "id": u.id,
            "audio": str(u.audio),
            "text": u.text,
            "words": [dict(zip(("word", "start", "end"), w)) for w in u.words],
        }
        for u in clips
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = load_model("tiny.en")
    model.set_alignment_head_pairs([(2, 0), (3, 1), (3, 2), (3, 3)])
    checkpoint = tmp_path / "mine.pt"
    save_model(model, checkpoint)
    assert load_model(checkpoint).boundary_refiner is None
    assert cli_main(["heads", "refine", str(checkpoint), "--data", str(manifest), "--write"]) == 0
    out = capsys.readouterr().out
    assert "refined" in out and "unrefined" in out
    reloaded = load_model(checkpoint)
    assert reloaded.boundary_refiner is not None
    assert reloaded.alignment_head_pairs() == [(2, 0), (3, 1), (3, 2), (3, 3)]
    u = _festival(range(1, 2))[0]
    assert _times(_quiet_align(reloaded, u)) != _times(_quiet_align(reloaded, u, config=AlignmentConfig(refine=False)))


def test_heads_refine_write_needs_a_checkpoint_path(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("")
    assert cli_main(["heads", "refine", "tiny.en", "--data", str(manifest), "--write"]) == 2
    assert "save the model first" in capsys.readouterr().err


def test_packed_corpus_alignment_is_refined_too(tiny_en, tmp_path):
    from whisper_align.tasks.corpus import align_corpus

    clips = _festival(range(1, 25, 3))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"id": u.id, "audio": str(u.audio), "text": u.text}) + "\n" for u in clips))
    outs = {}
    for refine in (False, True):
        out = tmp_path / f"out-{refine}.jsonl"
        align_corpus(tiny_en, manifest, out, config=AlignmentConfig(refine=refine), progress=False)
        outs[refine] = {r["id"]: r["words"] for r in map(json.loads, out.read_text().splitlines())}
    pairs = {
        k: {u.id: (u.words, [(w["word"], w["start"], w["end"]) for w in v[u.id]]) for u in clips}
        for k, v in outs.items()
    }
    assert all(len(outs[True][u.id]) == len(outs[False][u.id]) for u in clips)
    assert score(pairs[True]).median_abs_ms < score(pairs[False]).median_abs_ms
    assert np.isfinite(score(pairs[True]).start_mae_ms)
    assert Path(manifest).is_file()
