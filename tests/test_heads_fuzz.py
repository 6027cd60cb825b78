"""The heads codecs and Whisper.set_alignment_heads under hostile input: every failure an AlignmentHeadsError,
memory bounded by the decoder's shape, parsers linear, valid input still round-tripping.

The fuzz test runs a few thousand inputs of ``tools/fuzz_heads.py`` (which runs 100,000 on its own).
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from whisper_align import errors
from whisper_align import heads as H
from whisper_align.heads import AlignmentHeadsError

ROOT = Path(__file__).resolve().parents[1]


def _load_fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_heads", ROOT / "tools" / "fuzz_heads.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_heads", module)
    spec.loader.exec_module(module)
    return module


fuzz_heads = _load_fuzzer()
TINY = H.ALIGNMENT_HEADS["tiny"]


def _peak_bytes(call) -> tuple[int, BaseException | None]:
    """Peak Python-heap growth (bytes) while ``call`` runs, and what it raised."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    raised = None
    try:
        call()
    except BaseException as error:  # noqa: BLE001 - returned to the test
        raised = error
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, raised


# ---- fuzz ---------------------------------------------------------------------------------------------------


def test_fuzz_raises_only_alignment_heads_errors_and_never_a_wrong_result():
    start = time.perf_counter()
    report = fuzz_heads.run(2500, seed=1306)
    elapsed = time.perf_counter() - start
    assert report.untyped == [], report.untyped[:10]
    assert report.wrong == [], report.wrong[:10]
    assert report.n == 2500 and report.accepted + report.refused == 2500
    # every kind of input was tried, and both outcomes happen (the fuzzer is not refusing everything)
    assert set(report.kinds) == set(fuzz_heads.KINDS) and min(report.kinds.values()) >= 3
    assert report.accepted > 100 and report.refused > 1000
    assert elapsed < 60  # about 2 s on an idle machine


def test_fuzz_run_is_seeded():
    first, second = fuzz_heads.run(200, seed=7), fuzz_heads.run(200, seed=7)
    assert (first.kinds, first.accepted, first.refused) == (second.kinds, second.accepted, second.refused)


# ---- dumps: size, types, shapes --------------------------------------------------------------------------------


def test_gzip_bomb_is_refused_without_inflating_it():
    bomb = base64.b85encode(fuzz_heads.gzip_bomb(256))  # 256 MiB of zeros in a ~330 KB dump
    assert len(bomb) < 400_000
    peak, raised = _peak_bytes(lambda: H.gunzip_dump(bomb))
    assert isinstance(raised, AlignmentHeadsError) and "inflates to more than 1048576 bytes" in str(raised)
    assert peak < 16 << 20, peak  # base85-decoding the 0.33 MB dump (~9 MB) plus at most 1 MiB of output
    # for a given decoder the bound is its layers x heads (+ 4 KiB): a small bomb reaches the inflater...
    small = base64.b85encode(fuzz_heads.gzip_bomb(8))
    peak, raised = _peak_bytes(lambda: H.decode(small, 4, 6))
    assert isinstance(raised, AlignmentHeadsError) and "holds more than 4120 bytes" in str(raised)
    assert peak < 1 << 20, peak
    # ... and a big one is too long to even be base85-decoded
    with pytest.raises(AlignmentHeadsError, match="characters long, more than a dump of at most 4120 heads"):
        H.decode(bomb, 4, 6)


def test_multi_member_bomb_and_members_like_gzip_decompress():
    members = base64.b85encode(fuzz_heads.gzip_bomb(64, members=64))  # 64 members of 1 MiB each
    peak, raised = _peak_bytes(lambda: H.gunzip_dump(members))
    assert isinstance(raised, AlignmentHeadsError) and "more than" in str(raised) and peak < 8 << 20
    # several members, zero padding between them: read as gzip.decompress reads them
    mask = TINY.mask().tobytes()
    raw = fuzz_heads.gzip_member(mask[:10], flags=8 | 16) + b"\0\0" + fuzz_heads.gzip_member(mask[10:], flags=4)
    assert gzip.decompress(raw) == mask
    np.testing.assert_array_equal(H.decode(base64.b85encode(raw), 4, 6), TINY.mask())
    with pytest.raises(AlignmentHeadsError, match="not gzip data"):  # trailing garbage, as gzip.decompress
        H.decode(base64.b85encode(raw + b"junk"), 4, 6)


@pytest.mark.parametrize("dump", [10**12, None, 1.5, [1, 2], {"a": 1}, np.zeros(3), object()], ids=repr)
def test_dump_must_be_bytes_or_text(dump):
    start = time.perf_counter()
    with pytest.raises(AlignmentHeadsError, match="must be bytes or a str of base85 text"):
        H.decode(dump, 4, 6)
    with pytest.raises(AlignmentHeadsError, match="must be bytes or a str"):
        H.gzip_mtime(dump)
    assert time.perf_counter() - start < 1  # bytes(10**12) used to try to allocate a terabyte


def test_bytes_like_dumps_still_decode():
    text = TINY.dump.decode()
    for dump in (TINY.dump, bytearray(TINY.dump), memoryview(TINY.dump), text, f"  {text}\n"):
        np.testing.assert_array_equal(H.decode(dump, 4, 6), TINY.mask())
    assert H.gzip_mtime(bytearray(TINY.dump)) == TINY.mtime


@pytest.mark.parametrize(
    "count",
    [2**63, 10**12, 10**5000, 1025, 0, -1, True, 4.0, "4", None, np.uint64(2**63)],
    ids=["2**63", "10**12", "10**5000", "1025", "0", "-1", "True", "4.0", "'4'", "None", "uint64"],
)
def test_layer_and_head_counts_are_checked(count):
    for call in (
        lambda: H.decode(TINY.dump, count, 6),
        lambda: H.decode(TINY.dump, 4, count),
        lambda: H.pairs_to_mask([[1, 0]], count, 6),
        lambda: H.resolve_heads("1:0", 4, count),
    ):
        with pytest.raises(AlignmentHeadsError, match=r"must be a positive integer \(at most 1024\)"):
            call()


def test_counts_within_bounds_work():
    assert H.pairs_to_mask([[1023, 1023]], np.int64(1024), 1024).sum() == 1
    mask = np.zeros((1024, 3), bool)
    mask[1023, 2] = True
    np.testing.assert_array_equal(H.decode(H.encode(mask), 1024, 3), mask)
    with pytest.raises(AlignmentHeadsError, match="larger than any decoder"):
        H.encode(np.ones((1025, 1), bool))


# ---- the other codecs ------------------------------------------------------------------------------------------


def test_colon_pairs_fail_in_linear_time():
    for text in ["1:1" + " " * 20_000 + "x", "1:1 " * 20_000 + "x", "1:" + "1" * 20_000 + "x"]:
        start = time.perf_counter()
        with pytest.raises(AlignmentHeadsError):
            H.parse_colon_pairs(text)
        assert H.parse_pairs_text(text) is None
        assert time.perf_counter() - start < 1  # the old pattern took ~25 s for the first
    assert H.parse_colon_pairs(" 1 : 0 ,2:5; 3:4 4:1 ;\n") == [[1, 0], [2, 5], [3, 4], [4, 1]]
    for bad in ["1:0,,2:5", "1:0 , , 2:5", ":1", "1:0;;", "1:0 2"]:
        with pytest.raises(AlignmentHeadsError):
            H.parse_colon_pairs(bad)


def test_deep_json_and_huge_numbers(tmp_path):
    cases = [
        lambda: H.parse_pairs_text("[" * 100_000),
        lambda: H.parse_pairs_text("[[1" + "0" * 5000 + ", 0]]"),  # past Python's 4300-digit int limit
        lambda: H.from_whisper_cpp("{ {" + "1" * 5000 + ", 0} }"),
        lambda: H.parse_colon_pairs("1" * 5000 + ":0"),
        lambda: H.pairs_to_mask([[10**5000, 0]], 4, 6),  # its repr alone raises ValueError
    ]
    for call in cases:
        with pytest.raises(AlignmentHeadsError):
            call()
    deep = tmp_path / "generation_config.json"
    deep.write_text('{"alignment_heads": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(AlignmentHeadsError, match="not valid JSON"):
        H.read_json_heads(deep)
    with pytest.raises(AlignmentHeadsError, match="not valid JSON"):
        H.resolve_heads(str(tmp_path), 4, 6)
    with pytest.raises(AlignmentHeadsError, match="cannot update"):
        H.write_json_heads(deep, [[1, 0]])
    with pytest.raises(AlignmentHeadsError, match="cannot write"):
        H.write_json_heads(tmp_path / "missing-folder" / "config.json", [[1, 0]])


@pytest.mark.parametrize(
    "call",
    [
        lambda: H.resolve_heads(None, 4, 6),
        lambda: H.resolve_heads(b"tiny", 4, 6),
        lambda: H.from_whisper_cpp(5),
        lambda: H.parse_pairs_text(b"[[1, 0]]"),
        lambda: H.parse_colon_pairs(["1:0"]),
        lambda: H.official_heads(["tiny"]),
        lambda: H.whisper_cpp_preset(None),
        lambda: H.read_json_heads(5),
        lambda: H.read_json_heads([[1, 0]]),
        lambda: H.format_grid(TINY.mask(), on=1),
        lambda: H.pairs_to_mask(np.array(3), 4, 6),
        lambda: H.pairs_to_mask([np.array(3)], 4, 6),
        lambda: H.pairs_to_mask({"1": 0}, 4, 6),
        lambda: H.pairs_to_mask([[np.True_, 0]], 4, 6),
        lambda: H.encode([[1, 0], [1]]),
        lambda: H.encode(np.array([[object()]])),
    ],
)
def test_wrong_types_are_typed_errors(call):
    with pytest.raises(AlignmentHeadsError):
        call()


def test_predicates_and_matches_never_raise():
    assert H.is_official_name([1]) is False and H.is_official_name(None) is False and H.is_official_name("tiny")
    assert H.official_matches(object()) == [] and H.official_matches(np.zeros((4, 6))) == []
    assert H.official_matches(TINY.mask().astype(int)) == ["tiny"]


# ---- one error family -----------------------------------------------------------------------------------------


def test_alignment_heads_error_is_part_of_the_error_family():
    assert H.AlignmentHeadsError is errors.AlignmentHeadsError
    assert issubclass(AlignmentHeadsError, errors.WhisperAlignError) and issubclass(AlignmentHeadsError, ValueError)
    with pytest.raises(errors.WhisperAlignError):
        H.decode(b"", 4, 6)


def test_heads_module_works_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from whisper_align import heads as H\n"
        "print(H.mask_to_pairs(H.decode(H.ALIGNMENT_HEADS['tiny.en'].dump, 4, 6)))\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == H.ALIGNMENT_HEADS["tiny.en"].pairs()


# ---- the model ----------------------------------------------------------------------------------------------------


@pytest.fixture
def model():
    torch = pytest.importorskip("torch")
    from whisper_align.model.whisper import ModelDimensions, Whisper

    torch.manual_seed(0)
    return Whisper(ModelDimensions(4, 2, 4, 1, 1, 4, 2, 12, 6, 4))


@pytest.mark.parametrize(
    "dump",
    [None, 10**12, b"", b"ABzY8", H.ALIGNMENT_HEADS["base"].dump, base64.b85encode(fuzz_heads.gzip_bomb(8)), "é"],
    ids=lambda d: repr(d)[:20],
)
def test_set_alignment_heads_refuses_and_keeps_the_heads(model, dump):
    model.set_alignment_heads(TINY.dump)
    before = model.alignment_heads
    with pytest.raises(AlignmentHeadsError):
        model.set_alignment_heads(dump)
    assert model.alignment_heads is before
    assert model.alignment_head_pairs() == [tuple(p) for p in TINY.pairs()]


def test_set_alignment_heads_spec_behaviour_kept(model):
    model.set_alignment_heads(TINY.dump.decode())  # text works as well as bytes
    assert model.alignment_heads.is_sparse and model.alignment_heads.dtype.is_floating_point is False
    assert "alignment_heads" in model.state_dict()  # persistent buffer
    assert model.alignment_head_pairs() == [tuple(p) for p in TINY.pairs()]


def _junk_buffers():
    import torch

    out_of_range = torch.sparse_coo_tensor(
        torch.tensor([[9], [0]]), torch.tensor([True]), (4, 6), check_invariants=False
    )
    return {
        "list": [[1, 0]],
        "bytes": TINY.dump,
        "values 2": torch.full((4, 6), 2),
        "nan": torch.full((4, 6), float("nan")),
        "no head": torch.zeros(4, 6, dtype=torch.bool),
        "shape": torch.ones(6, 4, dtype=torch.bool),
        "sparse out of range": out_of_range,
    }


@pytest.mark.parametrize("name", ["list", "bytes", "values 2", "nan", "no head", "shape", "sparse out of range"])
def test_state_dict_heads_are_checked_before_any_weight_changes(model, name):
    import torch

    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["decoder.ln.weight"] = torch.full_like(state["decoder.ln.weight"], 7.0)
    state["alignment_heads"] = _junk_buffers()[name]
    heads = model.alignment_heads
    with pytest.raises(AlignmentHeadsError, match="the state dict's alignment_heads"):
        model.load_state_dict(state)
    assert model.alignment_heads is heads and not torch.equal(model.decoder.ln.weight, state["decoder.ln.weight"])


def test_state_dict_heads_in_any_valid_form_load(model):
    import torch

    mask = torch.from_numpy(TINY.mask())
    for heads in (mask, mask.to(torch.uint8), mask.float().to_sparse(), mask.to_sparse()):
        state = dict(model.state_dict())
        state["alignment_heads"] = heads
        model.set_alignment_heads(H.ALIGNMENT_HEADS["tiny.en"].dump)
        model.load_state_dict(state)
        assert model.alignment_head_pairs() == [tuple(p) for p in TINY.pairs()]
    state = {k: v for k, v in model.state_dict().items() if k != "alignment_heads"}
    model.load_state_dict(state)  # loading tolerant: the key may be missing


def test_pairs_far_outside_any_decoder_are_refused_before_printing(tmp_path):
    huge = [[1, 10**5000]]  # str() of this int raises ValueError
    for call in (
        lambda: H.to_whisper_cpp(huge),
        lambda: H.write_json_heads(tmp_path / "config.json", huge),
        lambda: H.read_json_heads({"alignment_heads": [[2**40, 0]]}),
        lambda: H.encode(np.ones((1, 1), bool), mtime=10**5000),
    ):
        with pytest.raises(AlignmentHeadsError):
            call()
    assert H.to_whisper_cpp([[-1, 2**31 - 1]]) == "{ {-1, 2147483647} }"  # checked against a shape only later
