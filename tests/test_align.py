"""Forced alignment end to end on the bundled tiny.en: conformance with openai-whisper, long form, corpora, errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import support
from whisper_align.alignment.words import AlignmentConfig
from whisper_align.checkpoints import save_model
from whisper_align.checkpoints.tokenizers import get_tokenizer
from whisper_align.cli import main
from whisper_align.errors import AudioError, TranscriptError
from whisper_align.frontend.audio import N_SAMPLES, N_SAMPLES_PER_TOKEN, SAMPLE_RATE, load_audio
from whisper_align.heads import encode
from whisper_align.results.evaluation import score
from whisper_align.results.manifest import load_manifest
from whisper_align.tasks.align import Piece, align, prepare_text, run_pieces, window_mel, words_of_piece
from whisper_align.tasks.corpus import align_corpus

ROOT = Path(__file__).resolve().parent.parent
TIMIT = support.TIMIT
DEMO = ROOT / "samples" / "demo.wav"
needs_eval = pytest.mark.skipif(not TIMIT.is_file(), reason="../shared/eval is not here")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tiny_en):
    return tiny_en


@pytest.fixture(scope="module")
def clips():
    return load_manifest(TIMIT)[:12] if TIMIT.is_file() else []


def test_demo_words_follow_the_text_and_stay_inside_the_audio(model):
    text = (ROOT / "samples" / "demo.txt").read_text().strip()
    result = align(model, str(DEMO), text)
    duration = len(load_audio(DEMO)) / SAMPLE_RATE
    assert "".join(w.word for w in result.words).strip() == text
    starts = [w.start for w in result.words]
    ends = [w.end for w in result.words]
    assert all(0 <= s <= e <= duration for s, e in zip(starts, ends))
    assert all(e <= s2 for e, s2 in zip(ends, starts[1:]))  # monotone, no overlap
    assert all(0 < w.probability <= 1 for w in result.words)
    assert result.duration == pytest.approx(duration)


@needs_eval
def test_conformance_mode_reproduces_openai_find_alignment(model, clips):
    pytest.importorskip("whisper")
    import whisper.timing
    import whisper.tokenizer

    reference = _openai_model(model, whisper)
    ref_tokenizer = whisper.tokenizer.get_tokenizer(False)
    tokenizer = get_tokenizer(model)
    raw = AlignmentConfig(mode="conformance", prepend_punctuations="", append_punctuations="")
    gaps = []
    for u in clips[:6]:
        samples = load_audio(u.audio)
        tokens = prepare_text(tokenizer, u.text)
        mel = whisper.log_mel_spectrogram(torch.from_numpy(samples), padding=N_SAMPLES)
        with torch.no_grad():
            theirs = whisper.timing.find_alignment(
                reference, ref_tokenizer, tokens, mel[:, :3000], mel.shape[-1] - 3000
            )
        with torch.inference_mode():
            features = model.embed_audio(window_mel(model, samples)[None])
        n = len(samples) // N_SAMPLES_PER_TOKEN
        ((qk, probs, text_ends),) = run_pieces(model, tokenizer, features, [Piece(0, tokens, 0, n)])
        ours = words_of_piece(tokenizer, qk, tokens, probs, raw, 0.0)
        assert [w.word for w in ours] == [t.word for t in theirs if t.word]
        for a, b in zip(ours, [t for t in theirs if t.word]):
            gaps.append(max(abs(a.start - b.start), abs(a.end - b.end)))
            assert a.probability == pytest.approx(b.probability, abs=1e-3)
        # the probability of <|endoftext|> in each text token's place, over the text tokens and itself
        prefix = list(tokenizer.sot_sequence_including_notimestamps)
        with torch.no_grad():
            logits = reference.logits(torch.tensor([prefix + tokens]), reference.embed_audio(mel[None, :, :3000]))
        expected = logits[0, len(prefix) - 1 : -1, : tokenizer.eot + 1].softmax(-1)[:, tokenizer.eot]
        assert text_ends == pytest.approx(expected.tolist(), abs=1e-4)
    assert np.mean(np.array(gaps) <= 0.02) >= 0.99


def _openai_model(model, whisper, tmp=Path("/tmp")):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.pt"
        save_model(model, path, format="openai")
        reference = whisper.load_model(str(path), device="cpu")
    reference.set_alignment_heads(encode(model.alignment_heads.to_dense().numpy()))
    return reference


@needs_eval
def test_long_audio_aligns_window_by_window_close_to_the_references(model, clips):
    rng = np.random.default_rng(0)
    pieces, reference, texts, t = [], [], [], 0.0
    for u in clips:  # ~45 s: two windows and a bit
        gap = np.zeros(int(rng.uniform(0.5, 1.5) * SAMPLE_RATE), dtype=np.float32)
        samples = load_audio(u.audio)
        pieces += [gap, samples]
        t += len(gap) / SAMPLE_RATE
        reference += [(w[0], w[1] + t, w[2] + t) for w in u.words]
        t += len(samples) / SAMPLE_RATE
        texts.append(u.text)
    audio = np.concatenate(pieces)
    assert len(audio) > 1.4 * N_SAMPLES
    result = align(model, audio, " ".join(texts))
    metrics = score({"long": (reference, result.words)})
    assert metrics.matched_share == pytest.approx(1.0)  # every word aligned once, in order
    assert metrics.median_abs_ms < 150
    assert metrics.within[200] > 0.7
    times = [x for w in result.words for x in (w.start, w.end)]
    assert times == sorted(times) and times[-1] <= len(audio) / SAMPLE_RATE


@needs_eval
def test_corpus_packs_clips_resumes_and_reports_bad_lines(model, clips, tmp_path):
    manifest = tmp_path / "in.jsonl"
    lines = [{"id": u.id, "audio": str(u.audio), "text": u.text} for u in clips[:8]]
    lines.append({"id": "broken", "audio": str(tmp_path / "missing.wav"), "text": "hello"})
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out.jsonl"

    summary = align_corpus(model, manifest, out, progress=False)
    assert (summary.aligned, summary.failed) == (8, 1)
    rows = {json.loads(line)["id"]: json.loads(line) for line in out.read_text().splitlines()}
    assert "error" in rows["broken"] and "missing.wav" in rows["broken"]["error"]
    packed = score(
        {u.id: (u.words, [(w["word"], w["start"], w["end"]) for w in rows[u.id]["words"]]) for u in clips[:8]}
    )
    single = score({u.id: (u.words, align(model, u.audio, u.text).words) for u in clips[:8]})
    assert packed.matched_share == 1.0
    assert packed.median_abs_ms < single.median_abs_ms + 30  # packing several clips per window costs little accuracy

    # an interrupted run: the last line torn in half, two lines lost; a rerun completes exactly those
    kept = out.read_text().splitlines()[:6]
    out.write_text("\n".join(kept) + "\n" + kept[-1][:10])
    summary = align_corpus(model, manifest, out, progress=False)
    assert summary.skipped == 6 and summary.aligned + summary.failed == 3
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(x["id"] for x in lines)


def test_bad_input_gets_typed_errors(model, tmp_path):
    with pytest.raises(TranscriptError, match="empty"):
        align(model, str(DEMO), "   ")
    with pytest.raises(TranscriptError, match="more than"):
        align(model, np.zeros(SAMPLE_RATE, dtype=np.float32) + 0.01, "word " * 200)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError):
        align(model, str(bad), "hello")
    with pytest.raises(AudioError):
        align(model, np.zeros(0, dtype=np.float32), "hello")


def test_silent_audio_warns_and_still_gives_sane_times(model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = align(model, np.zeros(3 * SAMPLE_RATE, dtype=np.float32), "nothing to hear here")
    assert any("silent" in str(w.message) for w in caught)
    times = [x for w in result.words for x in (w.start, w.end)]
    assert all(np.isfinite(times)) and times == sorted(times) and 0 <= times[0] and times[-1] <= 3.0


def test_cli_align_writes_subtitles_and_demo_prints_words(tmp_path, capsys):
    out = tmp_path / "demo.srt"
    text = (ROOT / "samples" / "demo.txt").read_text().strip()
    assert main(["align", str(DEMO), "--text", text, "-o", str(out)]) == 0
    srt = out.read_text()
    assert srt.startswith("1\n00:00:0") and "-->" in srt and "weather" in srt
    assert main(["demo"]) == 0
    printed = capsys.readouterr().out
    assert "weather" in printed and "fire." in printed
    assert main(["align", str(DEMO)]) == 2  # no transcript: a clear error, not a traceback
    assert "--text" in capsys.readouterr().err


def test_cli_align_int8_gives_the_float_words_at_nearly_the_same_times(tmp_path, capsys):
    text = (ROOT / "samples" / "demo.txt").read_text().strip()
    words = {}
    for flag in ([], ["--int8"]):
        out = tmp_path / f"demo{len(flag)}.json"
        assert main(["align", str(DEMO), "--text", text, "-o", str(out), *flag]) == 0
        result = json.loads(out.read_text())
        words[bool(flag)] = [(w["word"], w["start"], w["end"]) for s in result["segments"] for w in s["words"]]
    assert [w for w, _, _ in words[True]] == [w for w, _, _ in words[False]]
    shifts = [abs(a - b) for (_, *x), (_, *y) in zip(words[True], words[False]) for a, b in zip(x, y)]
    assert np.median(shifts) <= 0.04  # int8 may move a boundary by a frame or two, not by words


def test_cli_manifest_packed_and_unpacked(tmp_path, capsys):
    text = (ROOT / "samples" / "demo.txt").read_text().strip()
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"c{i}", "audio": str(DEMO), "text": text}) + "\n" for i in range(2)))
    outputs = {}
    for flag in ([], ["--no-pack"]):
        out = tmp_path / f"out{len(flag)}.jsonl"
        assert main(["align", "--manifest", str(manifest), "--out", str(out), *flag]) == 0
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert [line["id"] for line in lines] == ["c0", "c1"]
        outputs[bool(flag)] = [[w["start"] for w in line["words"]] for line in lines]
    assert "aligned 2" in capsys.readouterr().out
    unpacked = outputs[True]
    assert unpacked[0] == unpacked[1]  # alone in its window, the same clip gives the same times
    for packed, alone in zip(outputs[False], unpacked):
        # Packing must not move the words (a wrong offset would move them all by seconds). Alone, the refinement
        # puts "the" (of "by the fire") on the vowel of "by", about 0.2 s early; packed, it is where the audio
        # says: so one word may differ by that much, the rest by a frame or two.
        differences = sorted(abs(a - b) for a, b in zip(packed, alone))
        assert len(packed) == len(alone) and differences[-1] < 0.3 and differences[-2] < 0.05


def test_package_level_functions_are_not_shadowed_by_their_modules():
    """`whisper_align.align` stays the function after every submodule has been imported."""
    import importlib
    import pkgutil

    import whisper_align

    for module in pkgutil.walk_packages(whisper_align.__path__, "whisper_align."):
        if not module.name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(module.name)
    for name in ("align", "transcribe", "load_model", "save_model", "align_corpus"):
        assert callable(getattr(whisper_align, name)), name
