"""The Whisper module: the persistent alignment-heads buffer, the kv-cache, and the cross-attention scores.

Small random-weight models; openai-whisper's own Whisper is the reference for the forward pass.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import gzip
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from support import DIMS, make_model
from whisper_align.heads import AlignmentHeadsError
from whisper_align.model.whisper import KVCache, Whisper


def dense(model: Whisper) -> torch.Tensor:
    return model.alignment_heads.to("cpu").to_dense()


def openai_dump(mask: np.ndarray) -> bytes:
    return base64.b85encode(gzip.compress(mask.astype(bool).tobytes()))


CUSTOM = np.zeros((DIMS.n_text_layer, DIMS.n_text_head), dtype=bool)
CUSTOM[1, 2] = CUSTOM[2, 0] = CUSTOM[3, 3] = True


@pytest.fixture(scope="module")
def model() -> Whisper:
    return make_model()


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    mel = torch.randn(2, DIMS.n_mels, 2 * DIMS.n_audio_ctx, generator=g)
    tokens = torch.randint(0, DIMS.n_vocab, (2, 7), generator=g)
    return mel, tokens


# ---- the alignment-heads buffer -------------------------------------------------------------------------------


def test_heads_buffer_is_in_state_dict_and_defaults_to_last_half() -> None:
    m = make_model()
    assert "alignment_heads" in m.state_dict()
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[2:] = True
    assert m.alignment_heads.is_sparse
    assert torch.equal(dense(m), expected)


def test_set_alignment_heads_matches_the_spec_steps() -> None:
    m = make_model()
    dump = openai_dump(CUSTOM)
    m.set_alignment_heads(dump)
    manual = (
        torch.from_numpy(np.frombuffer(gzip.decompress(base64.b85decode(dump)), dtype=bool).copy())
        .reshape(DIMS.n_text_layer, DIMS.n_text_head)
        .to_sparse()
    )
    got = m.alignment_heads
    assert got.is_sparse and got.dtype == torch.bool
    assert torch.equal(got.coalesce().indices(), manual.coalesce().indices())
    assert torch.equal(got.coalesce().values(), manual.coalesce().values())
    assert m.alignment_head_pairs() == [(1, 2), (2, 0), (3, 3)]
    assert m.alignment_heads_by_layer() == {1: [2], 2: [0], 3: [3]}
    assert torch.equal(m.state_dict()["alignment_heads"].to_dense(), torch.from_numpy(CUSTOM))


def test_set_alignment_heads_rejects_a_dump_of_the_wrong_shape() -> None:
    m = make_model()
    with pytest.raises(AlignmentHeadsError, match="4 decoder layers x 4 heads"):
        m.set_alignment_heads(openai_dump(np.ones((2, 3), dtype=bool)))
    assert torch.equal(dense(m)[2:], torch.ones(2, 4, dtype=torch.bool))  # unchanged


def test_heads_survive_moves_and_casts() -> None:
    m = make_model()
    m.set_alignment_heads(openai_dump(CUSTOM))
    m.to("cpu")
    assert torch.equal(dense(m), torch.from_numpy(CUSTOM))
    m.half()
    assert m.dtype == torch.float16
    assert m.alignment_heads.dtype == torch.bool
    assert torch.equal(dense(m), torch.from_numpy(CUSTOM))
    meta = copy.deepcopy(m).to("meta")  # must not fail, even though sparse bool has no meta kernel everywhere
    assert meta.device.type == "meta"


def test_state_dict_round_trips_through_torch_save_weights_only() -> None:
    m = make_model()
    m.set_alignment_heads(openai_dump(CUSTOM))
    buffer = io.BytesIO()
    torch.save(m.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = make_model(seed=5)
    fresh.load_state_dict(state)
    assert torch.equal(dense(fresh), torch.from_numpy(CUSTOM))
    assert torch.equal(fresh.decoder.token_embedding.weight, m.decoder.token_embedding.weight)


def test_load_state_dict_without_the_key_keeps_configured_heads() -> None:
    source = make_model(seed=3)
    state = {k: v for k, v in source.state_dict().items() if k != "alignment_heads"}
    m = make_model()
    m.set_alignment_heads(openai_dump(CUSTOM))
    result = m.load_state_dict(state, strict=True)  # an official checkpoint: no alignment_heads key
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert torch.equal(dense(m), torch.from_numpy(CUSTOM))
    assert torch.equal(m.encoder.conv1.weight, source.encoder.conv1.weight)


def test_load_state_dict_with_a_dense_key_sets_heads() -> None:
    state = make_model(seed=3).state_dict()
    state["alignment_heads"] = torch.from_numpy(CUSTOM)  # dense bool works too
    m = make_model()
    m.load_state_dict(state)
    assert m.alignment_heads.is_sparse
    assert torch.equal(dense(m), torch.from_numpy(CUSTOM))


def test_load_state_dict_with_wrong_shaped_heads_fails_clearly() -> None:
    state = make_model().state_dict()
    state["alignment_heads"] = torch.ones(3, 4, dtype=torch.bool).to_sparse()
    with pytest.raises(AlignmentHeadsError, match=r"\(3, 4\).*4 layers x 4 heads"):
        make_model().load_state_dict(state)


# ---- running the model ----------------------------------------------------------------------------------------


def test_forward_matches_openai_whisper(model: Whisper, inputs: tuple[torch.Tensor, torch.Tensor]) -> None:
    whisper = pytest.importorskip("whisper")
    reference = whisper.model.Whisper(whisper.model.ModelDimensions(**dataclasses.asdict(DIMS))).eval()
    reference.load_state_dict({k: v for k, v in model.state_dict().items() if k != "alignment_heads"})
    mel, tokens = inputs
    with torch.no_grad():
        ours_audio = model.embed_audio(mel)
        torch.testing.assert_close(ours_audio, reference.embed_audio(mel), rtol=0, atol=1e-5)
        torch.testing.assert_close(model(mel, tokens), reference(mel, tokens), rtol=0, atol=1e-4)


def test_kv_cache_incremental_decoding_equals_a_full_pass(model: Whisper, inputs) -> None:
    mel, tokens = inputs
    with torch.no_grad():
        audio = model.embed_audio(mel)
        full, full_scores = model.decoder(tokens, audio, qk_heads={1: [0, 3], 3: [2]})
        cache = KVCache()
        steps = [tokens[:, :3], tokens[:, 3:4], tokens[:, 4:6], tokens[:, 6:]]  # several tokens after a prefix too
        pieces, score_pieces = [], []
        for step in steps:
            logits, scores = model.decoder(step, audio, cache=cache, qk_heads={1: [0, 3], 3: [2]})
            pieces.append(logits)
            score_pieces.append(scores)
        assert cache.offset == tokens.shape[1]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-5)
    for layer in (1, 3):
        torch.testing.assert_close(torch.cat([s[layer] for s in score_pieces], dim=2), full_scores[layer])


def test_scores_after_a_cache_reorder_give_the_uncached_scores(model: Whisper, inputs) -> None:
    """Several rows at once (the prompt's path) and one row (a decoding step's written-out attention)."""
    mel, tokens = inputs
    heads = {1: [0, 3], 3: [2]}
    with torch.no_grad():
        audio = model.embed_audio(mel)
        _, expected = model.decoder(tokens[[1, 1]], audio[[1, 1]], qk_heads=heads)
        for n_new in (tokens.shape[1] - 4, 1):
            cache = KVCache()
            model.decoder(tokens[:, :4], audio, cache=cache, qk_heads=heads)
            cache.reorder(torch.tensor([1, 1]))
            _, scores = model.decoder(tokens[[1, 1], 4 : 4 + n_new], audio[[1, 1]], cache=cache, qk_heads=heads)
            for layer in heads:
                torch.testing.assert_close(scores[layer], expected[layer][:, :, 4 : 4 + n_new], rtol=0, atol=1e-5)


def test_logit_positions_project_only_those_positions(model: Whisper, inputs) -> None:
    mel, tokens = inputs
    with torch.no_grad():
        audio = model.embed_audio(mel)
        full, _ = model.decoder(tokens, audio)
        some, _ = model.decoder(tokens, audio, logit_positions=[1, tokens.shape[1] - 1])
    assert some.shape == (2, 2, DIMS.n_vocab)
    torch.testing.assert_close(some, full[:, [1, -1]], rtol=0, atol=1e-6)


def test_a_logit_mask_projects_those_positions_flat_row_by_row(model: Whisper, inputs) -> None:
    mel, tokens = inputs
    mask = torch.zeros(tokens.shape, dtype=torch.bool)
    mask[0, [1, 2]] = True
    mask[1, [tokens.shape[1] - 1]] = True
    with torch.no_grad():
        audio = model.embed_audio(mel)
        full, _ = model.decoder(tokens, audio)
        some, _ = model.decoder(tokens, audio, logit_positions=mask)
    assert some.shape == (3, DIMS.n_vocab)
    torch.testing.assert_close(some, torch.stack([full[0, 1], full[0, 2], full[1, -1]]), rtol=0, atol=1e-5)


def test_scores_against_one_window_shared_by_the_rows_equal_those_of_copied_rows(model: Whisper, inputs) -> None:
    """The shared cache's keys are one window expanded over the rows: its head scores are computed once for all
    rows' queries, and must be what every row gets from a copy of its own."""
    mel, tokens = inputs
    heads = {1: [0, 3], 3: [2]}
    with torch.no_grad():
        audio = model.embed_audio(mel)[:1]
        rows = tokens[[0, 1, 1]]
        shared = model.decoder.shared_audio_cache(audio, 3)
        assert shared.cross_kv[1][0].stride(0) == 0  # expanded, not copied: the shared path runs
        _, got = model.decoder(rows, audio.expand(3, -1, -1), cache=shared, qk_heads=heads)
        _, want = model.decoder(rows, audio.repeat(3, 1, 1), qk_heads=heads)
    for layer in heads:
        torch.testing.assert_close(got[layer], want[layer], rtol=0, atol=1e-5)


def test_vocabulary_projection_follows_the_embedding_when_it_changes() -> None:
    model = make_model(seed=3)
    decoder = model.decoder
    with torch.no_grad():  # inference, where the copy is used
        first = decoder.vocabulary_projection(torch.float32)
        assert first.is_contiguous() and first.shape == (DIMS.n_text_state, DIMS.n_vocab)
        torch.testing.assert_close(first, decoder.token_embedding.weight.T, rtol=0, atol=0)
        assert decoder.vocabulary_projection(torch.float32) is first  # made once, not per step
        decoder.token_embedding.weight.mul_(2.0)  # an in-place edit (fine-tuning, a loader's copy_) ...
        torch.testing.assert_close(
            decoder.vocabulary_projection(torch.float32), decoder.token_embedding.weight.T, rtol=0, atol=0
        )  # ... is seen
        decoder.token_embedding.weight = torch.nn.Parameter(torch.randn(DIMS.n_vocab, DIMS.n_text_state))
        torch.testing.assert_close(
            decoder.vocabulary_projection(torch.float32), decoder.token_embedding.weight.T, rtol=0, atol=0
        )  # and so is a replaced one


def test_kv_cache_reorder_and_crop(model: Whisper, inputs) -> None:
    mel, tokens = inputs
    with torch.no_grad():
        audio = model.embed_audio(mel)
        cache = KVCache()
        model.decoder(tokens[:, :5], audio, cache=cache)
        cache.crop(3)
        assert cache.offset == 3
        after_crop = model.decoder(tokens[:, 3:], audio, cache=cache)[0]
        torch.testing.assert_close(after_crop, model.decoder(tokens, audio)[0][:, 3:], rtol=0, atol=1e-5)

        cache = KVCache()
        model.decoder(tokens[:, :4], audio, cache=cache)
        cache.reorder(torch.tensor([1, 1]))
        swapped = model.decoder(tokens[[1, 1], 4:], audio, cache=cache)[0]
        reference = model.decoder(tokens[[1, 1]], audio[[1, 1]])[0][:, 4:]
        torch.testing.assert_close(swapped, reference, rtol=0, atol=1e-5)


def test_qk_scores_are_the_cross_attention_softmax_inputs(model: Whisper, inputs) -> None:
    """Recompute each layer's cross-attention from its captured input and check scores and output agree."""
    mel, tokens = inputs
    captured: dict[int, dict[str, torch.Tensor]] = {}
    hooks = []
    for i, block in enumerate(model.decoder.blocks):
        store = captured.setdefault(i, {})
        hooks.append(block.cross_attn_ln.register_forward_hook(lambda m, a, out, s=store: s.__setitem__("x", out)))
        hooks.append(block.cross_attn.register_forward_hook(lambda m, a, out, s=store: s.__setitem__("out", out[0])))
    try:
        with torch.no_grad():
            audio = model.embed_audio(mel)
            all_heads = {i: list(range(DIMS.n_text_head)) for i in range(DIMS.n_text_layer)}
            _, scores = model.decoder(tokens, audio, qk_heads=all_heads)
            _, some = model.decoder(tokens, audio, qk_heads={2: [3, 1]})
    finally:
        for hook in hooks:
            hook.remove()

    d_head = DIMS.n_text_state // DIMS.n_text_head
    for i, block in enumerate(model.decoder.blocks):
        attn = block.cross_attn
        with torch.no_grad():
            q = attn.query(captured[i]["x"]).view(2, -1, DIMS.n_text_head, d_head).transpose(1, 2)
            k = attn.key(audio).view(2, -1, DIMS.n_text_head, d_head).transpose(1, 2)
            v = attn.value(audio).view(2, -1, DIMS.n_text_head, d_head).transpose(1, 2)
            by_hand = q @ k.transpose(-1, -2) / d_head**0.5
            out = attn.out((F.softmax(by_hand, dim=-1) @ v).transpose(1, 2).flatten(2))
        assert scores[i].shape == (2, DIMS.n_text_head, tokens.shape[1], DIMS.n_audio_ctx)
        assert scores[i].dtype == torch.float32
        torch.testing.assert_close(scores[i], by_hand, rtol=0, atol=1e-5)
        torch.testing.assert_close(out, captured[i]["out"], rtol=0, atol=1e-5)  # they are the real softmax inputs
    torch.testing.assert_close(some[2], scores[2][:, [3, 1]])  # heads in the order asked for


def test_logits_false_skips_upper_layers_with_identical_scores(model: Whisper, inputs) -> None:
    mel, tokens = inputs
    calls = {i: 0 for i in range(DIMS.n_text_layer)}
    hooks = [
        block.attn_ln.register_forward_hook(lambda *a, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, block in enumerate(model.decoder.blocks)
    ]
    try:
        with torch.no_grad():
            audio = model.embed_audio(mel)
            logits, full = model.decoder(tokens, audio, qk_heads={0: [1], 1: [0, 2]})
            assert calls == {0: 1, 1: 1, 2: 1, 3: 1}
            none, partial = model.decoder(tokens, audio, qk_heads={0: [1], 1: [0, 2]}, logits=False)
            assert calls == {0: 2, 1: 2, 2: 1, 3: 1}  # layers 2 and 3 did not run
    finally:
        for hook in hooks:
            hook.remove()
    assert logits is not None and none is None
    assert sorted(partial) == [0, 1]
    for layer in (0, 1):
        assert torch.equal(partial[layer], full[layer])


def test_decoder_rejects_more_tokens_than_its_context(model: Whisper, inputs) -> None:
    mel, _ = inputs
    with torch.no_grad(), pytest.raises(ValueError, match="context"):
        model.decoder(torch.zeros(2, DIMS.n_text_ctx + 1, dtype=torch.long), model.embed_audio(mel))


def test_model_can_be_built_on_the_meta_device() -> None:
    """Loaders build on "meta" and fill in the weights, skipping the random init (the heads stay on the CPU)."""
    with torch.device("meta"):
        m = Whisper(DIMS)
    assert m.decoder.positional_embedding.is_meta
    assert torch.equal(dense(m)[2:], torch.ones(2, 4, dtype=torch.bool)) and not dense(m)[:2].any()


def test_a_model_that_has_decoded_still_pickles_and_copies() -> None:
    model = make_model(seed=4)
    with torch.no_grad():
        model.decoder.vocabulary_projection(torch.float32)  # what any CPU decoding leaves behind
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    twin = copy.deepcopy(model)
    for other in (restored, twin):
        torch.testing.assert_close(
            other.decoder.vocabulary_projection(torch.float32), model.decoder.token_embedding.weight.T, rtol=0, atol=0
        )


def test_logits_still_train_the_tied_embedding() -> None:
    model = make_model(seed=8)
    mel = torch.randn(1, DIMS.n_mels, 2 * DIMS.n_audio_ctx)
    tokens = torch.randint(0, DIMS.n_vocab, (1, 5))
    with torch.no_grad():
        model(mel, tokens)  # inference first: the CPU copy exists now
    model(mel, tokens).logsumexp(-1).sum().backward()
    grad = model.decoder.token_embedding.weight.grad
    assert grad is not None
    # rows of tokens never fed in get gradient only through the output projection
    unused = sorted(set(range(DIMS.n_vocab)) - set(tokens.flatten().tolist()))
    assert grad[unused].abs().sum() > 0


def test_fused_self_projections_equal_the_three_layers_and_follow_weight_edits() -> None:
    model = make_model(seed=5)
    attn = model.decoder.blocks[1].attn
    x = torch.randn(2, 3, DIMS.n_text_state)
    with torch.no_grad():
        separate = (attn.query(x), attn.key(x), attn.value(x))
        fused = attn.project_self(x)
        for got, want in zip(fused, separate):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
        attn.value.weight.mul_(-3.0)  # an in-place edit (a loader's copy_, fine-tuning) must reach the copy ...
        attn.key.weight = torch.nn.Parameter(torch.randn_like(attn.key.weight))  # ... and so must a new weight
        for got, want in zip(attn.project_self(x), (attn.query(x), attn.key(x), attn.value(x))):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
    q, k, v = attn.project_self(x)  # autograd recording: the layers themselves, so gradients reach them
    (q.sum() + k.sum() + v.sum()).backward()
    assert all(w.grad is not None for w in (attn.query.weight, attn.key.weight, attn.value.weight))


def test_mlp_widening_weights_are_stored_column_major_through_loads_moves_and_casts(tmp_path) -> None:
    """Same parameter, faster one-row products on the CPU (see model.Linear); the layout must survive."""
    model = make_model(seed=6)
    state = model.state_dict()
    with torch.device("meta"):  # how the loaders build a model before filling it in
        empty = Whisper(DIMS)
    loaded = empty.to_empty(device="cpu").to(torch.float64).to(torch.float32)
    loaded.load_state_dict(state)
    for m in (model, loaded):
        for block in list(m.encoder.blocks) + list(m.decoder.blocks):
            widen, narrow = block.mlp[0].weight, block.mlp[2].weight
            assert widen.shape == (4 * DIMS.n_text_state, DIMS.n_text_state) and widen.t().is_contiguous()
            assert narrow.is_contiguous()
    torch.testing.assert_close(
        loaded.decoder.blocks[0].mlp[0].weight, model.decoder.blocks[0].mlp[0].weight, rtol=0, atol=0
    )
    torch.save(state, tmp_path / "state.pt")  # and the saved tensor reads back with the same values
    again = torch.load(tmp_path / "state.pt", weights_only=True)
    assert torch.equal(again["decoder.blocks.0.mlp.0.weight"], state["decoder.blocks.0.mlp.0.weight"])


def test_kv_cache_grows_in_place_and_keeps_what_it_held(model: Whisper, inputs) -> None:
    mel, tokens = inputs
    with torch.no_grad():
        audio = model.embed_audio(mel)
        cache = KVCache()
        model.decoder(tokens[:, :2], audio, cache=cache)
        first = cache.self_kv[0][0]
        capacity = first.shape[1]
        outputs = [model.decoder(tokens[:, i : i + 1], audio, cache=cache)[0] for i in range(2, tokens.shape[1])]
        assert cache.offset == tokens.shape[1] and cache.self_kv[0][0].shape[1] >= tokens.shape[1] > capacity
        # one token per step, each step's logits as a full pass gives them
        torch.testing.assert_close(torch.cat(outputs, dim=1), model.decoder(tokens, audio)[0][:, 2:], rtol=0, atol=1e-5)
