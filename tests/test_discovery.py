"""Head discovery: per-head matrices, the selection logic on synthetic heads whose quality is known, splits,
capture on a small random model, the `heads find` CLI; and (slow) tiny.en on a few TIMIT clips, including a
3-layer stand-in whose official heads would be out of range."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import support
from whisper_align.alignment.attention import alignment_matrix
from whisper_align.alignment.words import AlignmentConfig
from whisper_align.checkpoints import load_model, save_model
from whisper_align.cli import main
from whisper_align.heads import ALIGNMENT_HEADS
from whisper_align.heads import discovery as D
from whisper_align.heads.scoring import (
    GreedyStep,
    Item,
    SetScore,
    choose_size,
    evaluate_set,
    greedy_forward,
    head_matrices,
    score_errors,
    single_head_scores,
    unsupervised_ranking,
    word_times,
)
from whisper_align.model.whisper import ModelDimensions, Whisper
from whisper_align.results.manifest import load_manifest

CONFIG = AlignmentConfig()
TIMIT = support.TIMIT


# ---- synthetic heads -------------------------------------------------------------------------------------------


def synthetic_item(rng: np.random.Generator, index: int, n_heads: int, good: set[int], late: set[int]) -> Item:
    """An utterance whose ``good`` heads light up exactly each word's reference span, ``late`` heads the span
    moved 12 frames (240 ms) later, and the other heads are noise."""
    n_words = int(rng.integers(4, 8))
    words, word_tokens, reference = [], [], []
    frame = int(rng.integers(5, 20))
    spans = []
    for k in range(n_words):
        length = int(rng.integers(10, 30))
        spans.append((frame, frame + length))
        words.append(f" w{k}x{index}")
        word_tokens.append([1000 + k] * int(rng.integers(1, 3)))
        reference.append((f"w{k}x{index}", frame / 50, (frame + length) / 50))
        frame += length + int(rng.integers(0, 8))
    n_frames = frame + int(rng.integers(10, 25))
    words.append("<|endoftext|>")
    word_tokens.append([50256])
    rows = sum(len(t) for t in word_tokens)

    def lit(shift: int) -> np.ndarray:
        m = np.zeros((rows, n_frames))
        r = 0
        for (s, e), tokens in zip(spans, word_tokens):
            for _ in tokens:
                m[r, min(s + shift, n_frames - 1) : min(e + shift, n_frames)] = 2.0
                r += 1
        m[r, min(spans[-1][1] + shift, n_frames - 1) :] = 2.0
        return m

    matrices = rng.normal(size=(n_heads, rows, n_frames))
    for h in good:
        matrices[h] = lit(0) + 0.3 * matrices[h]
    for h in late:
        matrices[h] = lit(12) + 0.3 * matrices[h]
    return Item(
        f"u{index}", words, word_tokens, matrices.astype(np.float32), n_frames / 50, reference, speaker=f"s{index % 4}"
    )


@pytest.fixture(scope="module")
def synthetic() -> tuple[list[Item], set[int], set[int]]:
    rng = np.random.default_rng(0)
    good, late = {2, 7, 9}, {4}
    return [synthetic_item(rng, i, 12, good, late) for i in range(12)], good, late


def test_head_matrices_average_to_the_alignment_matrix() -> None:
    torch.manual_seed(0)
    qk = torch.randn(5, 9, 40) * 3
    per_head = head_matrices(qk, 33, 7, 1.0)
    assert per_head.shape == (5, 9, 33)
    torch.testing.assert_close(per_head.mean(0), alignment_matrix(qk, 33, 7, 1.0))
    torch.testing.assert_close(per_head[[1, 3]].mean(0), alignment_matrix(qk[[1, 3]], 33, 7, 1.0))


def test_good_heads_score_best_alone(synthetic) -> None:
    items, good, late = synthetic
    scores = single_head_scores(items, 12, CONFIG)
    ranked = sorted(range(12), key=lambda h: -scores[h].objective)
    assert set(ranked[:3]) == good
    assert all(scores[h].within_50 > 0.75 and scores[h].within_100 > 0.95 for h in good)
    assert scores[next(iter(late))].within_100 < 0.1  # 240 ms late: the right shape in the wrong place
    assert ranked[3] in late  # but its median error (240 ms) is still below the noise heads'


def test_greedy_forward_adds_the_good_heads_first_and_choose_size_stops_there(synthetic) -> None:
    items, good, _ = synthetic
    train, held = items[:8], items[8:]
    steps = greedy_forward(train, held, range(12), 6, CONFIG)
    assert len(steps) == 6
    assert [len(s.heads) for s in steps] == list(range(1, 7))
    assert steps[0].heads[0] in good
    for a, b in zip(steps, steps[1:]):
        assert b.heads[: len(a.heads)] == a.heads  # prefixes: one head added per step
    chosen = choose_size(steps)
    assert set(chosen.heads) <= good
    assert chosen.heldout is not None and chosen.heldout.within_50 > 0.8
    assert evaluate_set(held, list(good), CONFIG).objective > evaluate_set(held, list(range(12)), CONFIG).objective


def test_choose_size_prefers_the_smallest_set_within_tolerance() -> None:
    def step(n: int, held_within: float) -> GreedyStep:
        s = SetScore(10, 20.0, held_within, held_within)
        return GreedyStep(tuple(range(n)), n - 1, s, s)

    steps = [step(1, 0.5), step(2, 0.8), step(3, 0.801), step(4, 0.7)]
    assert len(choose_size(steps).heads) == 2
    assert len(choose_size(steps, tolerance=0.0).heads) == 3
    with pytest.raises(ValueError):
        choose_size([])


def test_time_shift_undoes_a_late_set(synthetic) -> None:
    items, good, late = synthetic
    from whisper_align.heads.scoring import median_offset

    assert median_offset(items, sorted(good), CONFIG) == pytest.approx(0.0, abs=0.03)
    assert median_offset(items, sorted(late), CONFIG) == pytest.approx(0.24, abs=0.03)  # 12 frames late


def test_anchor_shift_moves_a_set_onto_the_anchor_without_references(synthetic) -> None:
    items, good, late = synthetic
    from whisper_align.heads.scoring import anchor_shift

    blind = [Item(i.id, i.words, i.word_tokens, i.matrices, i.duration) for i in items]  # no references
    assert anchor_shift(blind, sorted(late), sorted(good), CONFIG) == pytest.approx(-0.24, abs=0.03)
    assert anchor_shift(blind, sorted(good), sorted(late), CONFIG) == pytest.approx(0.24, abs=0.03)
    assert anchor_shift(blind, sorted(good), sorted(good), CONFIG) == 0.0


def test_score_errors_and_objective() -> None:
    s = score_errors(np.array([0.01, -0.04, 0.06, 0.2]))
    assert s.n_boundaries == 4 and s.within_50 == 0.5 and s.within_100 == 0.75
    assert s.median_ms == pytest.approx(50.0)
    assert s.objective == pytest.approx(0.625 - 0.05)
    assert score_errors(np.zeros(0)).objective == -np.inf


def test_unsupervised_ranking_finds_the_agreeing_heads_without_references(synthetic) -> None:
    items, good, late = synthetic
    blind = [Item(i.id, i.words, i.word_tokens, i.matrices, i.duration) for i in items]  # no references
    ranking = unsupervised_ranking(blind, 12, CONFIG, max_heads=6)
    assert set(ranking.order[:3]) == good
    assert set(ranking.chosen) == good
    others = [h for h in range(12) if h not in good]
    assert min(ranking.agreement[h] for h in good) > max(ranking.agreement[h] for h in others) + 0.2
    assert ranking.set_agreement[2] > max(0.6, ranking.set_agreement[3])  # adding the late head hurts


def test_word_times_need_a_head() -> None:
    rng = np.random.default_rng(1)
    item = synthetic_item(rng, 0, 3, {0}, set())
    with pytest.raises(ValueError, match="at least one head"):
        word_times(item, [], CONFIG)


def test_split_by_speaker_keeps_speakers_apart(synthetic) -> None:
    items, _, _ = synthetic
    train, held = D.split_ids(items, 0.3, "speaker", seed=3)
    speaker = {i.id: i.speaker for i in items}
    assert held and train and not {speaker[i] for i in train} & {speaker[i] for i in held}
    assert sorted(train + held) == sorted(i.id for i in items)
    assert D.split_ids(items, 0.3, "auto", seed=3) == (train, held)
    assert D.split_ids(items, 0.0) == ([i.id for i in items], [])
    train_u, held_u = D.split_ids(items, 0.25, "utterance")
    assert len(held_u) == 3 and len(train_u) == 9
    with pytest.raises(ValueError, match="holdout"):
        D.split_ids(items, 1.0)
    no_speaker = [Item(i.id, i.words, i.word_tokens, i.matrices, i.duration, i.reference) for i in items]
    with pytest.raises(D.ManifestError, match="speaker"):
        D.split_ids(no_speaker, 0.3, "speaker")
    assert len(D.split_ids(no_speaker, 0.3, "auto")[1]) == 4  # falls back to utterances


def test_write_json_atomic_writes_standard_json(tmp_path: Path) -> None:
    path = D.write_json_atomic(tmp_path / "sub" / "out.json", {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None]}
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]


# ---- a small random model end to end ---------------------------------------------------------------------------

SMALL = ModelDimensions(
    n_mels=80, n_audio_ctx=1500, n_audio_state=16, n_audio_head=2, n_audio_layer=1,
    n_vocab=51864, n_text_ctx=64, n_text_state=16, n_text_head=4, n_text_layer=3,
)  # fmt: skip


def write_wav(path: Path, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    signal = 0.3 * np.sin(2 * np.pi * (200 + 100 * seed) * t) + 0.05 * rng.normal(size=t.shape)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes((np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())


def write_manifest(folder: Path, n: int = 4, words: bool = True) -> Path:
    lines = []
    for i in range(n):
        write_wav(folder / f"a{i}.wav", 1.5 + 0.25 * i, i)
        entry = {"id": f"u{i}", "audio": f"a{i}.wav", "text": "hello there world", "speaker": f"s{i % 2}"}
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


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = Whisper(SMALL)
    with torch.no_grad():
        model.decoder.positional_embedding.normal_()
    path = tmp_path_factory.mktemp("small") / "small.pt"
    save_model(model, path)
    return path


def test_capture_holds_every_head_and_matches_run_pieces(small_checkpoint: Path, tmp_path: Path) -> None:
    from whisper_align.checkpoints.tokenizers import get_tokenizer
    from whisper_align.frontend.audio import load_audio
    from whisper_align.tasks.align import Piece, prepare_text, run_pieces, window_mel

    model = load_model(small_checkpoint)
    utterances = load_manifest(write_manifest(tmp_path, 2))
    captures = D.capture_attention(model, utterances)
    assert captures.n_heads == 12 and len(captures.captures) == 2 and not captures.skipped
    capture = captures.captures[0]
    tokenizer = get_tokenizer(model)
    tokens = prepare_text(tokenizer, utterances[0].text)
    samples = load_audio(utterances[0].audio)
    n_positions = len(samples) // 160 // 2
    assert capture.scores.dtype == torch.float16
    assert capture.scores.shape == (
        12,
        len(tokenizer.sot_sequence_including_notimestamps) + len(tokens) + 1,
        n_positions,
    )
    with torch.inference_mode():
        features = model.embed_audio(window_mel(model, samples)[None])
    ((qk, _, _),) = run_pieces(model, tokenizer, features, [Piece(0, tokens, 0, n_positions)], False, heads=[(2, 1)])
    torch.testing.assert_close(capture.scores[2 * 4 + 1].float(), qk[0], atol=2e-2, rtol=2e-3)
    # any head set's word times equal the aligner's own for those heads
    items = captures.items(CONFIG)
    assert items[0].matrices.shape == (12, len(tokens) + 1, n_positions)
    assert [w[0] for w in word_times(items[0], [5, 6], CONFIG)] == [" hello", " there", " world"]


def test_capture_skips_long_clips_and_fails_when_nothing_is_left(small_checkpoint: Path, tmp_path: Path) -> None:
    write_wav(tmp_path / "long.wav", 31.0, 0)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "x", "audio": "long.wav", "text": "hi"}) + "\n")
    model = load_model(small_checkpoint)
    with pytest.warns(UserWarning, match="skipped"), pytest.raises(D.ManifestError, match="no utterance"):
        D.capture_attention(model, load_manifest(tmp_path / "m.jsonl"))


def test_cli_find_on_a_random_model_writes_heads_into_the_pt(small_checkpoint: Path, tmp_path: Path, capsys) -> None:
    manifest = write_manifest(tmp_path, 4)
    pt = tmp_path / "model.pt"
    pt.write_bytes(small_checkpoint.read_bytes())
    out, png = tmp_path / "found.json", tmp_path / "scores.png"
    code = main(
        [
            "heads",
            "find",
            str(pt),
            "--data",
            str(manifest),
            "--max-heads",
            "3",
            "--write",
            "--json",
            str(out),
            "--png",
            str(png),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "openai dump:" in printed and "default (last half)" in printed and "found (supervised)" in printed
    result = json.loads(out.read_text())
    pairs = result["found"]["pairs"]
    assert 1 <= len(pairs) <= 3 and all(0 <= l < 3 and 0 <= h < 4 for l, h in pairs)
    assert result["heldout_ids"] and set(result["comparison"]) >= {"found (supervised)", "default (last half)"}
    reloaded = load_model(pt)
    assert [list(p) for p in reloaded.alignment_head_pairs()] == pairs  # --write re-saved the .pt
    assert reloaded.alignment_time_shift == pytest.approx(result["found"]["time_shift"] or 0.0)
    assert png.stat().st_size > 0 and (tmp_path / "scores_alignment.png").stat().st_size > 0


def test_cli_find_unsupervised_needs_no_words(small_checkpoint: Path, tmp_path: Path, capsys) -> None:
    manifest = write_manifest(tmp_path, 3, words=False)
    assert (
        main(["heads", "find", str(small_checkpoint), "--data", str(manifest), "--unsupervised", "--max-heads", "2"])
        == 0
    )
    assert "found" in capsys.readouterr().out
    assert main(["heads", "find", str(small_checkpoint), "--data", str(manifest)]) == 2
    assert "--unsupervised" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--holdout", "1.5"], "share in [0, 1)"),
        (["--max-heads", "0"], "positive integer"),
        (["--split-by", "gender"], "invalid choice"),
    ],
)
def test_cli_find_argument_errors(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["heads", "find", "tiny.en", "--data", str(tmp_path / "m.jsonl"), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_find_write_needs_a_path_and_data_must_exist(tmp_path: Path, capsys) -> None:
    manifest = write_manifest(tmp_path, 1)
    assert main(["heads", "find", "tiny.en", "--data", str(manifest), "--write"]) == 2
    assert "checkpoint path" in capsys.readouterr().err
    assert main(["heads", "find", "tiny.en", "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---- real weights ----------------------------------------------------------------------------------------------

needs_timit = pytest.mark.skipif(not TIMIT.is_file(), reason="the timit-dev eval set is not at ../shared/eval")


@pytest.fixture(scope="module")
def timit8() -> list:
    utterances = load_manifest(TIMIT)
    by_speaker: dict[str, list] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    return [u for speaker in sorted(by_speaker)[:4] for u in by_speaker[speaker][:2]]  # 4 speakers x 2


@pytest.mark.slow
@needs_timit
def test_find_on_eight_timit_clips_beats_the_default_heads(tiny_en: Whisper, timit8: list) -> None:
    captures = D.capture_attention(tiny_en, timit8)
    found = D.find_heads(captures, holdout=0.25, max_heads=6)
    assert 1 <= found.mask.sum() <= 6 and found.heldout_ids
    sets = {"found": captures.flat(found.mask), **D.reference_sets(captures)}
    assert "official tiny.en" in sets
    held = [i for i in captures.items(CONFIG) if i.id in set(found.heldout_ids)]
    metrics = D.compare_sets(held, sets, CONFIG)
    assert metrics["found"].within[100] >= metrics["default (last half)"].within[100]
    assert metrics["found"].median_abs_ms < 150


@pytest.mark.slow
@needs_timit
def test_three_layer_stand_in_gets_heads_in_range(tiny_en: Whisper, timit8: list) -> None:
    dims = ModelDimensions(**{**tiny_en.dims.__dict__, "n_text_layer": 3})
    small = Whisper(dims)
    state = {k: v for k, v in tiny_en.state_dict().items() if not k.startswith("decoder.blocks.3.")}
    state.pop("alignment_heads")
    small.load_state_dict(state)
    small.info.tokenizer_file = tiny_en.info.tokenizer_file
    small.eval()
    official = ALIGNMENT_HEADS["tiny.en"].pairs()
    assert any(layer >= 3 for layer, _ in official)  # the official set would not fit this decoder
    captures = D.capture_attention(small, timit8[:6])
    found = D.find_heads(captures, holdout=0.3, max_heads=4)
    assert found.mask.shape == (3, 6) and 1 <= found.mask.sum() <= 4
    unsupervised = D.find_heads_unsupervised(captures, max_heads=4)
    assert unsupervised.mask.shape == (3, 6) and unsupervised.mask.any()
    small.set_alignment_head_pairs(found.pairs)  # usable as the model's heads
    held = [i for i in captures.items(CONFIG) if i.reference is not None]
    metrics = D.compare_sets(held, {"found": captures.flat(found.mask)}, CONFIG)
    assert metrics["found"].within[200] > 0.5


def test_cli_find_write_sets_the_ctranslate2_config(small_checkpoint: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "ct2"
    save_model(load_model(small_checkpoint), folder, format="ctranslate2")
    manifest = write_manifest(tmp_path, 3)
    assert (
        main(["heads", "find", str(folder), "--data", str(manifest), "--max-heads", "2", "--write", "--holdout", "0"])
        == 0
    )
    capsys.readouterr()
    config = json.loads((folder / "config.json").read_text())
    reloaded = load_model(folder)
    assert [list(p) for p in reloaded.alignment_head_pairs()] == config["alignment_heads"]
    assert reloaded.info.heads_source == "checkpoint" and 1 <= len(config["alignment_heads"]) <= 2


def test_writing_found_heads_drops_the_old_heads_shift_and_refinement(small_checkpoint: Path, tmp_path: Path) -> None:
    from whisper_align.cli.heads import _write_found_heads

    folder = tmp_path / "ct2"
    save_model(load_model(small_checkpoint), folder, format="ctranslate2")
    model = load_model(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(alignment_time_shift=0.03, boundary_refiner={"fitted": "for the old heads"})
    (folder / "config.json").write_text(json.dumps(config))
    assert _write_found_heads(model, folder, [[1, 2]], None) == folder / "config.json"
    written = json.loads((folder / "config.json").read_text())
    assert written["alignment_heads"] == [[1, 2]]
    assert "boundary_refiner" not in written and "alignment_time_shift" not in written
    _write_found_heads(model, folder, [[0, 1]], 0.02)
    assert json.loads((folder / "config.json").read_text())["alignment_time_shift"] == 0.02
