"""The tensor-level alignment against openai-whisper's timing.py, on made-up matrices."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from whisper_align.alignment import (
    AlignmentConfig,
    WordTiming,
    align_words,
    alignment_matrices,
    alignment_matrix,
    dtw,
    dtw_subsequence,
    median_filter,
    merge_punctuations,
    refine_word_times,
    truncate_sentence_marks,
    words_from_path,
)
from whisper_align.errors import AudioError

timing = pytest.importorskip("whisper.timing")


# ---- attention -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1,), (2,), (3,), (4,), (9,), (5, 17), (3, 4, 30), (2, 3, 5, 40)])
@pytest.mark.parametrize("width", [1, 3, 5, 7, 9])
def test_median_filter_equals_openai(shape: tuple[int, ...], width: int) -> None:
    gen = torch.Generator().manual_seed(hash((shape, width)) % 2**31)
    x = torch.randn(shape, generator=gen)
    if len(shape) > 2 and width == 7:
        x = x.round()  # ties
    assert torch.equal(median_filter(x, width), timing.median_filter(x, width))


def test_median_filter_with_nans_orders_them_as_openai() -> None:
    x = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    x[0, 10] = x[2, 3] = float("nan")
    expected = timing.median_filter(x, 7)
    assert torch.equal(median_filter(x, 7).isnan(), expected.isnan())
    assert torch.equal(median_filter(x, 7).nan_to_num(), expected.nan_to_num())


def test_median_filter_rejects_even_width() -> None:
    with pytest.raises(ValueError, match="odd"):
        median_filter(torch.zeros(10), 4)


def _openai_matrix(qk: torch.Tensor, num_frames: int, medfilt_width: int = 7, qk_scale: float = 1.0) -> torch.Tensor:
    """find_alignment's lines from the stacked head scores to the head-averaged matrix."""
    weights = qk[:, :, : num_frames // 2]
    weights = (weights * qk_scale).softmax(dim=-1)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = (weights - mean) / std
    weights = timing.median_filter(weights, medfilt_width)
    return weights.mean(axis=0)


@pytest.mark.parametrize("seed", range(6))
def test_alignment_matrix_equals_openai(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    heads, tokens, positions = 1 + seed % 4, 5 + seed, 60
    qk = torch.randn(heads, tokens, positions, generator=gen) * 3
    num_frames = [2 * positions, 2 * positions + 7, 37, 5, 8, 85][seed]  # incl. beyond the end (capped)
    scale, width = [(1.0, 7), (0.5, 7), (1.0, 3), (2.0, 1), (1.0, 7), (1.3, 5)][seed]
    ours = alignment_matrix(qk, num_frames // 2, medfilt_width=width, qk_scale=scale)
    ref = _openai_matrix(qk, num_frames, width, scale)
    assert ours.shape == (tokens, min(num_frames // 2, positions))
    assert torch.equal(ours, ref)


def test_alignment_matrix_crops_before_softmax() -> None:
    qk = torch.zeros(1, 3, 10)
    qk[:, :, 5:] = 50.0  # huge scores in the padding must not drain the real positions
    out = alignment_matrix(qk, 5)
    assert out.shape == (3, 5) and torch.isfinite(out).all()


def test_alignment_matrix_degenerate_and_bad_input() -> None:
    assert torch.equal(alignment_matrix(torch.zeros(2, 4, 8), 8), torch.zeros(4, 8))  # no NaN from std 0
    with pytest.raises(AudioError):
        alignment_matrix(torch.zeros(2, 4, 8), 0)
    with pytest.raises(ValueError, match="shape"):
        alignment_matrix(torch.zeros(4, 8), 4)


def test_alignment_matrices_batched() -> None:
    gen = torch.Generator().manual_seed(3)
    qk = torch.randn(3, 2, 9, 50, generator=gen)
    lengths, n_tokens = [50, 23, 4], [9, 6, 7]
    out = alignment_matrices(qk, lengths, n_tokens)
    for b in range(3):
        expected = _openai_matrix(qk[b, :, : n_tokens[b]], 2 * lengths[b])
        assert torch.equal(out[b], expected)
    with pytest.raises(ValueError, match="one per item"):
        alignment_matrices(qk, [50, 23])


# ---- DTW -------------------------------------------------------------------------------------------------


def _random_costs(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1234)
    costs = []
    for k in range(count):
        n, m = int(rng.integers(1, 30)), int(rng.integers(1, 70))
        if k % 3 == 0:
            costs.append(rng.standard_normal((n, m)))
        elif k % 3 == 1:
            costs.append(rng.integers(-2, 3, size=(n, m)).astype(np.float64))  # many ties
        else:
            costs.append(rng.integers(0, 2, size=(n, m)) * 0.1)  # ties, inexact in float32
    costs.append(np.zeros((5, 9)))  # all ties
    costs.append(rng.standard_normal((40, 12)))  # more tokens than frames
    return costs


def test_dtw_equals_openai_dtw_cpu() -> None:
    for cost in _random_costs(90):
        expected = timing.dtw_cpu(cost)
        text_indices, time_indices = dtw(cost)
        np.testing.assert_array_equal(text_indices, expected[0])
        np.testing.assert_array_equal(time_indices, expected[1])


def test_dtw_equals_openai_on_an_alignment_like_matrix() -> None:
    gen = torch.Generator().manual_seed(7)
    matrix = alignment_matrix(torch.randn(6, 25, 300, generator=gen) * 4, 300)
    cost = -matrix.double().numpy()
    expected = timing.dtw(-matrix)
    np.testing.assert_array_equal(np.stack(dtw(cost)), expected)


def test_dtw_rejects_bad_costs() -> None:
    with pytest.raises(ValueError, match="NaN"):
        dtw(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        dtw(np.zeros((0, 3)))


def _path_cost(cost: np.ndarray, ti: np.ndarray, si: np.ndarray) -> float:
    return float(cost[ti, si].sum())


def test_dtw_subsequence_is_a_valid_cheapest_path() -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        n, m = int(rng.integers(1, 6)), int(rng.integers(1, 9))
        cost = rng.standard_normal((n, m)) + 0.3
        ti, si = dtw_subsequence(cost)
        assert ti[0] == 0 and ti[-1] == n - 1
        assert set(np.diff(ti)) <= {0, 1} and set(np.diff(si)) <= {0, 1}
        assert ((np.diff(ti) + np.diff(si)) > 0).all()
        best = _brute_force_subsequence(cost)
        assert _path_cost(cost, ti, si) == pytest.approx(best, abs=1e-4)


def _brute_force_subsequence(cost: np.ndarray) -> float:
    n, m = cost.shape
    acc = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            prev = [0.0] if i == 0 else []
            if i > 0:
                prev.append(acc[i - 1, j])
            if j > 0:
                prev.append(acc[i, j - 1])
            if i > 0 and j > 0:
                prev.append(acc[i - 1, j - 1])
            acc[i, j] = cost[i, j] + min(prev)
    return float(acc[n - 1].min())


def test_dtw_subsequence_skips_leading_and_trailing_frames() -> None:
    cost = np.ones((2, 10))
    cost[0, 3:5] = -1
    cost[1, 5:7] = -1
    ti, si = dtw_subsequence(cost)
    assert si[0] == 3 and si[-1] == 6
    ti, si = dtw(cost)
    assert si[0] == 0 and si[-1] == 9


# ---- words -----------------------------------------------------------------------------------------------


class _StubTokenizer:
    """What find_alignment needs of a tokenizer: a sot sequence, special ids and a fixed word split."""

    sot_sequence = (100, 101, 102)
    no_timestamps = 103
    eot = 99

    def __init__(self, words: list[str], word_tokens: list[list[int]]):
        self.words, self.word_tokens = words, word_tokens

    def split_to_word_tokens(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        assert tokens == [t for w in self.word_tokens for t in w]
        return list(self.words), [list(t) for t in self.word_tokens]


def _word_split(rng: np.random.Generator, n_words: int) -> tuple[list[str], list[list[int]]]:
    words, word_tokens, next_id = [], [], 0
    for k in range(n_words):
        n = int(rng.integers(1, 4))
        words.append(f" w{k}")
        word_tokens.append(list(range(next_id, next_id + n)))
        next_id += n
    return words + ["<|endoftext|>"], word_tokens + [[_StubTokenizer.eot]]


@pytest.mark.parametrize("seed", range(8))
def test_words_from_path_equals_find_alignment(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run openai's find_alignment on a fake model that yields our made-up scores, and compare the words."""
    rng = np.random.default_rng(seed)
    words, word_tokens = _word_split(rng, int(rng.integers(1, 7)))
    text_tokens = [t for w in word_tokens[:-1] for t in w]
    tok = _StubTokenizer(words, word_tokens)
    n_sot = len(tok.sot_sequence)
    n_in = n_sot + 1 + len(text_tokens) + 1
    positions, num_frames = 120, 2 * int(rng.integers(20, 121))
    qk = torch.from_numpy(rng.standard_normal((2, n_in, positions)).astype(np.float32) * 4)
    logits = torch.from_numpy(rng.standard_normal((n_in, 128)).astype(np.float32))
    openai_words = timing.find_alignment(
        _FakeModel(qk, logits), tok, text_tokens, torch.zeros(80, 2 * positions), num_frames
    )

    matrix = alignment_matrix(qk, num_frames // 2)[n_sot:-1]
    probs = logits[n_sot:, : tok.eot].softmax(-1)[np.arange(len(text_tokens)), text_tokens].tolist()
    text_indices, time_indices = dtw(-matrix.double().numpy())
    ours = words_from_path(words, word_tokens, text_indices, time_indices, probs)
    assert [(w.word, w.tokens, w.start, w.end, w.probability) for w in ours] == [
        (w.word, w.tokens, float(w.start), float(w.end), float(w.probability)) for w in openai_words
    ]
    conformance = align_words(matrix, words, word_tokens, probs, AlignmentConfig(mode="conformance"))
    assert [(w.start, w.end) for w in conformance] == [(w.start, w.end) for w in ours]


class _FakeModel:
    """Stands in for openai's Whisper inside find_alignment: the decoder's cross-attention hooks see ``qk``."""

    def __init__(self, qk: torch.Tensor, logits: torch.Tensor):
        self.qk, self._logits = qk, logits
        n_heads = qk.shape[0]
        self.dims = type("Dims", (), {"n_text_layer": 1})()
        self.device = torch.device("cpu")
        self.alignment_heads = torch.ones(1, n_heads, dtype=torch.bool).to_sparse()
        self.decoder = torch.nn.Module()
        self.decoder.blocks = torch.nn.ModuleList([torch.nn.Module()])
        self.decoder.blocks[0].cross_attn = torch.nn.Identity()

    def __call__(self, mel: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        # the hook stores outs[-1][0]: pass (out, qk[None]) through the cross-attention module
        self.decoder.blocks[0].cross_attn((None, self.qk[None]))
        return self._logits[None]


def test_words_from_path_only_eot_and_bad_input() -> None:
    assert words_from_path(["<|endoftext|>"], [[99]], np.array([0]), np.array([0]), []) == []
    with pytest.raises(ValueError, match="token rows"):
        words_from_path([" a", "<eot>"], [[1, 2], [99]], np.array([0, 1]), np.array([0, 1]), [0.5, 0.5])


def _openai_words(items: list[tuple[str, list[int], float, float]]) -> list[timing.WordTiming]:
    return [timing.WordTiming(w, t, s, e, 0.5) for w, t, s, e in items]


MERGE_CASES = [
    [" Hello", ",", " world", "."],
    [' "', "Hi", '"', " he", " said", "."],
    [" (", " a", ")", " b", " -", " c", "?", "!"],
    ["“", " quoted", "”", " ¿", " qué", "?"],
    [" a", " .", ". ", ".", " b", "、", " ", " '", " end", " '"],
    ["", "x", " ", "", " ("],
    [" only"],
    [],
]


@pytest.mark.parametrize("texts", MERGE_CASES)
def test_merge_punctuations_equals_openai(texts: list[str]) -> None:
    items = [(w, [k, k + 100], float(k), k + 0.5) for k, w in enumerate(texts)]
    ref = _openai_words(items)
    timing.merge_punctuations(ref, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    ours = [WordTiming(w, list(t), s, e, 0.5) for w, t, s, e in items]
    assert merge_punctuations(ours) is ours
    assert [(w.word, w.tokens, w.start, w.end) for w in ours] == [(w.word, w.tokens, w.start, w.end) for w in ref]


def test_truncate_sentence_marks_equals_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catch add_word_timestamps' alignment right before it merges punctuation, and compare."""
    items = [(" Yes", [1], 0.0, 0.3), (".", [2], 0.3, 2.9), (" Then", [3], 2.9, 5.0), (" go", [4], 5.0, 5.2),
             ("?", [5], 5.2, 5.3), (" Now", [6], 5.3, 5.3)]  # fmt: skip
    seen: list[list[timing.WordTiming]] = []
    monkeypatch.setattr(timing, "find_alignment", lambda *a, **k: _openai_words(items))
    monkeypatch.setattr(timing, "merge_punctuations", lambda words, *a: seen.append(copy.deepcopy(words)))
    segments = [{"tokens": [1, 2, 3, 4, 5, 6], "seek": 0, "start": 0.0, "end": 5.3}]
    timing.add_word_timestamps(
        segments=segments, model=None, tokenizer=type("T", (), {"eot": 99})(), mel=None, num_frames=0,
        last_speech_timestamp=0.0,
    )  # fmt: skip
    ours = [WordTiming(w, t, s, e, 0.5) for w, t, s, e in items]
    median, maximum = truncate_sentence_marks(ours)
    assert median == pytest.approx(0.3) and maximum == pytest.approx(0.6)
    assert [(w.start, w.end) for w in ours] == [(w.start, w.end) for w in seen[0]]
    assert ours[1].end == pytest.approx(0.9) and ours[2].start == pytest.approx(4.4)


# ---- the default mode's refinement -----------------------------------------------------------------------


def _check_invariants(words: list[WordTiming], offset: float, duration: float) -> None:
    previous_end = offset
    for w in words:
        assert np.isfinite(w.start) and np.isfinite(w.end)
        assert offset <= w.start <= w.end <= offset + duration + 1e-9
        assert w.start >= previous_end - 1e-9
        previous_end = w.end


@pytest.mark.parametrize("seed", range(25))
def test_refinement_invariants_on_random_input(seed: int) -> None:
    rng = np.random.default_rng(seed)
    words, word_tokens = _word_split(rng, int(rng.integers(1, 9)))
    n_rows = sum(len(t) for t in word_tokens)
    n_frames = int(rng.integers(1, 200))
    matrix = rng.standard_normal((n_rows, n_frames)) * rng.choice([0.0, 1.0, 5.0])
    if seed % 5 == 0:
        matrix[rng.random(matrix.shape) < 0.1] = np.nan  # refine must still give finite times
    probs = rng.random(n_rows - 1).tolist()
    offset = float(rng.choice([0.0, 12.34]))
    config = AlignmentConfig(
        peak_fraction=float(rng.random()), min_pause=float(rng.choice([0.0, 0.04, 0.2])), time_shift=0.0
    )
    text_indices, time_indices = dtw_subsequence(-np.nan_to_num(matrix))
    base = words_from_path(words, word_tokens, text_indices, time_indices, probs)
    refined = refine_word_times(base, matrix, text_indices, time_indices, config, time_offset=offset)
    assert [w.word for w in refined] == words[:-1]
    _check_invariants(refined, offset, n_frames / 50)
    for b, r in zip(base, refined):  # trimming only shrinks the DTW span
        assert b.start + offset - 1e-9 <= r.start and r.end <= b.end + offset + 1e-9
    if seed % 5 != 0:
        for mode in ("default", "conformance"):
            shifted = AlignmentConfig(mode=mode, time_shift=float(rng.choice([-0.3, 0.0, 0.3])))
            got = align_words(matrix, words, word_tokens, probs, shifted, duration=n_frames / 50)
            _check_invariants(got, 0.0, n_frames / 50)


def _synthetic_pause_matrix() -> tuple[np.ndarray, list[str], list[list[int]]]:
    """Rows: 3 one-token words + end of text. Frames (20 ms): 0-19 silence, w0 20-39, w1 40-59, pause 60-99,
    w2 100-129, silence 130-159. Each word's row is high while it is heard; the next row rises a little early."""
    words = [" one", " two", " three", "<|endoftext|>"]
    word_tokens = [[1], [2], [3], [99]]
    m = np.full((4, 160), -0.5)
    m[0, 20:40] = 3.0
    m[1, 40:60] = 3.0
    m[2, 100:130] = 3.0
    m[3, 130:] = 3.0
    m[1, 60:95] = 0.0  # the pause: nothing is heard, but "two"'s row is a bit above its floor
    m[2, 95:100] = 1.0
    return m, words, word_tokens


def test_refinement_opens_a_gap_at_a_pause_and_skips_leading_silence() -> None:
    matrix, words, word_tokens = _synthetic_pause_matrix()
    probs = [0.9, 0.8, 0.7]
    ours = align_words(matrix, words, word_tokens, probs, AlignmentConfig(time_shift=0.0))
    shifted = align_words(matrix, words, word_tokens, probs, AlignmentConfig(time_shift=-0.06))
    assert [w.start for w in shifted] == pytest.approx([w.start - 0.06 for w in ours])
    conformance = align_words(matrix, words, word_tokens, probs, AlignmentConfig(mode="conformance"))
    assert [w.word for w in ours] == [" one", " two", " three"]
    _check_invariants(ours, 0.0, 3.2)
    # openai: words touch and the first starts at 0
    assert conformance[0].start == 0.0 and conformance[1].end == conformance[2].start
    # ours: the first word starts at the speech, "two" ends at the pause, "three" starts after it
    assert ours[0].start == pytest.approx(0.4)
    assert ours[1].end == pytest.approx(1.2)
    assert ours[2].start >= 1.9 and ours[1].end < ours[2].start
    assert ours[2].end == pytest.approx(2.6)
    # with openai's full-length path, the refinement alone trims the leading silence
    full_path = align_words(matrix, words, word_tokens, probs, AlignmentConfig(free_ends=False, time_shift=0.0))
    assert full_path[0].start == pytest.approx(0.4)
    assert full_path[1].end == pytest.approx(1.2)


def test_alignment_config_validates() -> None:
    with pytest.raises(ValueError, match="mode"):
        AlignmentConfig(mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="odd"):
        AlignmentConfig(medfilt_width=4)
    with pytest.raises(ValueError, match="peak_fraction"):
        AlignmentConfig(peak_fraction=1.5)
