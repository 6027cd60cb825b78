"""Packed corpus alignment keeps each clip to itself: its decoder reads only its own stretch of the window
(``isolate`` in run_pieces), and a clip the model barely hears is aligned again in a window of its own.

Without the first, a clip packed beside another recording of the same sentence (TIMIT's SA prompts, any corpus of
read prompts) had its alignment heads follow the neighbour: most of its words collapsed onto its last frame.
Without the second, a barely-heard clip's words moved by hundreds of milliseconds with the manifest's order.
"""

from __future__ import annotations

import json
import warnings
import wave
from pathlib import Path

import numpy as np
import torch

import support
from whisper_align.checkpoints.tokenizers import get_tokenizer
from whisper_align.frontend.audio import N_SAMPLES, load_audio
from whisper_align.results.manifest import Utterance, load_manifest
from whisper_align.tasks import packing
from whisper_align.tasks import pieces as pieces_module
from whisper_align.tasks.align import align, prepare_text
from whisper_align.tasks.corpus import align_corpus
from whisper_align.tasks.pieces import Piece, isolation_mask, run_pieces


def test_isolation_mask_opens_each_region_its_margin_and_the_tail(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(pieces_module, "ISOLATION_MARGIN", 2)
    monkeypatch.setattr(pieces_module, "ISOLATION_TAIL", True)
    mask = isolation_mask([Piece(0, [1], 0, 10), Piece(0, [1], 20, 30)], 50)
    assert mask.shape == (2, 1, 1, 50)
    assert torch.nonzero(mask[0, 0, 0]).flatten().tolist() == list(range(0, 12)) + list(range(32, 50))
    assert torch.nonzero(mask[1, 0, 0]).flatten().tolist() == list(range(18, 50))
    monkeypatch.setattr(pieces_module, "ISOLATION_TAIL", False)
    assert torch.nonzero(isolation_mask([Piece(0, [1], 0, 10)], 50)[0, 0, 0]).flatten().tolist() == list(range(12))


def test_an_isolated_piece_reads_nothing_of_its_neighbours_stretch() -> None:
    """Changing the encoded audio of the second piece's stretch leaves the first piece's probabilities and scores
    exactly as they were when the pieces are isolated; without isolation it changes them."""
    model = support.make_window_model(2)
    tokenizer = get_tokenizer(model)
    pieces = [
        Piece(0, prepare_text(tokenizer, "one two three"), 0, 300),
        Piece(0, prepare_text(tokenizer, "four"), 600, 900),
    ]
    torch.manual_seed(0)
    features = torch.randn(1, 1500, model.dims.n_audio_state)
    changed = features.clone()
    lo, hi = 600 - pieces_module.ISOLATION_MARGIN, 900 + pieces_module.ISOLATION_MARGIN
    changed[:, lo:hi] = torch.randn(1, hi - lo, model.dims.n_audio_state)
    for isolate in (True, False):
        (qk, probs, _), _ = run_pieces(model, tokenizer, features, pieces, isolate=isolate)
        (qk2, probs2, _), _ = run_pieces(model, tokenizer, changed, pieces, isolate=isolate)
        assert torch.equal(qk, qk2) == isolate and (probs == probs2) == isolate


def _packed(model, clips: list[Utterance], folder: Path, texts: dict[str, str] | None = None) -> dict[str, list]:  # noqa: ANN001
    out = folder / "out.jsonl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        align_corpus(model, support.write_manifest(folder / "manifest.jsonl", clips, texts), out, progress=False)
    return {line["id"]: line["words"] for line in map(json.loads, out.read_text().splitlines())}


@support.needs_eval
def test_a_clip_packed_beside_the_same_sentence_keeps_its_words(tiny_en, tmp_path: Path) -> None:
    """falk0 and fvmh0 both read SA2 ("Don't ask me to carry an oily rag like that"); packed into one window
    (with other clips between, as a shuffled manifest put them), falk0's words used to follow fvmh0's audio from
    "me" on and the last seven words sat on its final frame. Now each word is near where it is alone."""
    by_id = {u.id: u for u in load_manifest(support.TIMIT)}
    order = ["dr2-marc0_si558", "dr3-falk0_sa2", "dr3-madc0_si737", "dr4-falr0_sx155", "dr1-fvmh0_sa2"]
    clips = [by_id[f"timit_nltk_{name}"] for name in order]
    packed = _packed(tiny_en, clips, tmp_path)
    for clip in (clips[1], clips[4]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alone = align(tiny_en, clip.audio, clip.text).words
        words = packed[clip.id]
        assert [w["word"] for w in words] == [w.word for w in alone]
        assert not any(w.get("past_end") for w in words)
        gaps = [abs(p[key] - getattr(w, key)) for p, w in zip(words, alone) for key in ("start", "end")]
        assert max(gaps) < 0.1 and float(np.mean(gaps)) < 0.02, (clip.id, max(gaps), float(np.mean(gaps)))


@support.needs_eval
def test_a_barely_heard_clip_is_aligned_as_if_alone(tiny_en, tmp_path: Path) -> None:
    """A clip given another clip's transcript (alignment score far below 0.03) gets exactly the words ``align``
    gives it alone, whatever it is packed with; its neighbours stay packed."""
    timit = load_manifest(support.TIMIT)
    clips = [u for u in timit if "mcpm0" in u.id][:4]
    wrong = {clips[1].id: clips[3].text}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = align(tiny_en, clips[1].audio, clips[3].text)
    assert alone.low_confidence
    expected = [[w.word, w.start, w.end, round(w.probability, 4)] for w in alone.words]
    for neighbours in ([clips[0], clips[1], clips[2]], [clips[2], clips[1], clips[3], clips[0]]):
        folder = tmp_path / str(len(neighbours))
        folder.mkdir()
        words = _packed(tiny_en, neighbours, folder, wrong)[clips[1].id]
        assert [[w["word"], w["start"], w["end"], w["probability"]] for w in words] == expected


def test_realign_false_keeps_barely_heard_clips_packed(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A random model hears nothing (every clip's score is near zero): with ``realign`` each clip of the packed
    window is aligned again alone, without it none is."""
    model = support.make_window_model(0)
    rng = np.random.default_rng(0)
    clips = []
    for k in range(3):
        path = tmp_path / f"c{k}.wav"
        with wave.open(str(path), "wb") as handle:
            handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(16000)
            handle.writeframes((3000 * rng.standard_normal(16000 * 2)).astype("<i2").tobytes())
        clips.append(Utterance(id=f"c{k}", audio=path, text="hello there"))
    calls: list[int] = []
    original = packing.align_long
    monkeypatch.setattr(packing, "align_long", lambda *a, **k: calls.append(1) or original(*a, **k))
    for realign, expected in ((True, 3), (False, 0)):
        calls.clear()
        folder = tmp_path / str(realign)
        folder.mkdir()
        out = folder / "out.jsonl"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            align_corpus(model, support.write_manifest(folder / "m.jsonl", clips), out, progress=False, realign=realign)
        assert len(calls) == expected
        assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["c0", "c1", "c2"]


@support.needs_eval
def test_unpacked_clips_get_exactly_the_words_align_gives(tiny_en, tmp_path: Path) -> None:
    """``--no-pack`` (``pack=False``) aligns each clip exactly as ``align`` does. It used to put each clip in a
    one-clip packed window, whose region ends one position later (a partial last 20 ms): sx450's "ignored" then
    started at 0.30 s instead of 0.29."""
    by_id = {u.id: u for u in load_manifest(support.TIMIT)}
    clips = [by_id["timit_nltk_dr4-maeb0_sx450"], by_id["timit_nltk_dr2-faem0_sx222"]]
    out = tmp_path / "out.jsonl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        align_corpus(tiny_en, support.write_manifest(tmp_path / "m.jsonl", clips), out, progress=False, pack=False)
        alone = {u.id: align(tiny_en, u.audio, u.text).words for u in clips}
    lines = {line["id"]: line["words"] for line in map(json.loads, out.read_text().splitlines())}
    for clip in clips:
        expected = [[w.word, w.start, w.end, round(w.probability, 4)] for w in alone[clip.id]]
        assert [[w["word"], w["start"], w["end"], w["probability"]] for w in lines[clip.id]] == expected


@support.needs_eval
def test_a_heard_packed_clip_is_not_taken_for_one_cut_short(tiny_en, tmp_path: Path) -> None:
    """In this window marc0_sx378's decoder gives ending the text after its first word ("I", heard faintly) a
    probability of 0.2, and the rest of the sentence had 0.9 of its expected speaking time left: the text-end
    sign of ``unheard_tail`` flagged eight heard words past the end. A run must now be squeezed harder than a
    fast speaker squeezes it (``UNHEARD_TEXT_END_SQUEEZE``); no word of a complete clip is flagged."""
    by_id = {u.id: u for u in load_manifest(support.TIMIT)}
    names = ["dr2-marc0_sx18", "dr2-marc0_sx198", "dr2-marc0_sx288", "dr2-marc0_sx378"]
    names += ["dr3-falk0_sa1", "dr3-falk0_sa2", "dr3-falk0_si1086", "dr3-falk0_si456"]
    clips = [by_id[f"timit_nltk_{name}"] for name in names]
    lengths = [len(load_audio(u.audio)) for u in clips]
    assert sum(lengths) + packing.GAP * (len(clips) - 1) <= N_SAMPLES  # one window
    packed = _packed(tiny_en, clips, tmp_path)
    assert [[w["word"].strip() for w in packed[u.id]] for u in clips] == [u.text.split() for u in clips]
    assert not [u.id for u in clips if any(w.get("past_end") for w in packed[u.id])]


@support.needs_eval
def test_a_clip_cut_short_gets_in_a_packed_window_the_flags_align_gives(tiny_en, tmp_path: Path) -> None:
    """falk0_si658 cut where "of" starts: alone, the decoder would end the text in place of "of" (probability
    0.47) and "of universality" is flagged past the end; packed, inside a window that goes on with other speech,
    it says so with 0.03 and "of" escaped with invented times. Its squeezed tail now has it aligned again alone."""
    by_id = {u.id: u for u in load_manifest(support.TIMIT)}
    cut_clip = by_id["timit_nltk_dr3-falk0_si658"]
    samples = load_audio(cut_clip.audio)[: int(cut_clip.words[-2][1] * 16000)]
    path = tmp_path / "cut.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(16000)
        handle.writeframes(np.round(samples * 32768).astype("<i2").tobytes())
    cut = Utterance(id="cut", audio=path, text=cut_clip.text)
    clips = [by_id["timit_nltk_dr2-marc0_si558"], cut, by_id["timit_nltk_dr3-madc0_si737"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = align(tiny_en, load_audio(path), cut.text).words
    assert [w.word.strip() for w in alone if w.past_end] == ["of", "universality."]
    words = _packed(tiny_en, clips, tmp_path)["cut"]
    expected = [[w.word, w.start, w.end, bool(w.past_end)] for w in alone]
    assert [[w["word"], w["start"], w["end"], bool(w.get("past_end"))] for w in words] == expected
