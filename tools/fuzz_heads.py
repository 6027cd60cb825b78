"""Fuzz the alignment-heads codecs (:mod:`whisper_align.heads`) and ``Whisper.set_alignment_heads``.

Every input is made from a seeded generator: openai's dumps and dumps of random masks with bits flipped, bytes
cut, inserted, deleted or duplicated (in the base85 text and in the gzip stream under it); gzip payloads of the
wrong size or with bytes other than 0/1, multi-member and with optional header fields; gzip bombs; random bytes
and text; dumps of the wrong type; wrong and huge layer/head counts; malformed [layer, head] pairs, JSON,
'layer:head' and whisper.cpp text; malformed masks and state-dict buffers.

Three things are counted:

* **non-typed errors**: anything raised other than ``AlignmentHeadsError`` (the only error bad heads may raise);
* **wrong results**: an input accepted but decoded differently from openai-whisper's own steps
  (``b85decode -> gzip.decompress -> frombuffer(bool)``), a valid input that failed to round-trip, or a model
  whose heads changed although setting them failed;
* the rest, accepted or refused with an ``AlignmentHeadsError``.

Usage::

    PYTHONPATH=src python tools/fuzz_heads.py --n 100000 [--seed 0]

Exits 1 when there is any non-typed error or wrong result. ``tests/test_heads_fuzz.py`` runs a few thousand inputs
of the same generator on every test run.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import resource
import struct
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from whisper_align import heads as H
from whisper_align.heads import AlignmentHeadsError

SHAPES = [(4, 6), (6, 8), (2, 3), (1, 1), (32, 20)]  # the models set_alignment_heads is tried on (torch only)
B85_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~"
JUNK_COUNTS: list[Any] = [
    0, -1, -(2**63), 2**31, 2**63, 2**64 + 6, 10**12, 10**5000, True, False, 1.0, 4.5, float("nan"), float("inf"),
    "4", b"4", None, [4], (4,), np.int64(-3), np.uint64(2**63), np.float32(4), np.bool_(True), 1025, 1 << 40,
    complex(4, 0), object(),
]  # fmt: skip
JUNK_VALUES: list[Any] = [
    *JUNK_COUNTS, "", "tiny", "ABzY8", b"", bytearray(b"ABzY8"), memoryview(b"x"), [], {}, {"a": 1}, set(),
    np.array(3), np.zeros((2, 2)), np.array(["a"]), Ellipsis, type, lambda: 0, range(3), iter([1, 2]),
]  # fmt: skip

# kind of input -> how often it is drawn; the model kinds need torch (set_alignment_heads, load_state_dict)
KINDS = {
    "dump-b85": 3.0, "dump-gzip": 3.0, "payload": 2.0, "bomb": 0.2, "shape": 1.0, "dump-type": 0.5, "random": 1.5,
    "text": 2.0, "pairs": 1.5, "mask": 1.0, "roundtrip": 0.7, "json-file": 0.1,
    "model-dump": 3.0, "model-pairs": 1.0, "state-dict": 0.7,
}  # fmt: skip
MODEL_KINDS = ("model-dump", "model-pairs", "state-dict")


@dataclass
class Case:
    """One fuzz input: ``call`` runs it; ``check`` validates an accepted result (raises AssertionError if wrong)."""

    kind: str
    call: Callable[[], Any]
    check: Callable[[Any], None] | None = None
    must_succeed: bool = False
    unchanged: Callable[[], None] | None = None  # after a refusal: asserts nothing was modified


@dataclass
class Report:
    n: int = 0
    accepted: int = 0
    refused: int = 0
    untyped: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        return (
            f"{self.n} inputs: {self.accepted} accepted, {self.refused} refused with AlignmentHeadsError, "
            f"{len(self.untyped)} non-typed errors, {len(self.wrong)} wrong results"
        )


# ---- references ---------------------------------------------------------------------------------------------


def openai_decode(dump: bytes | str, n_layer: int, n_head: int) -> np.ndarray:
    """openai-whisper's set_alignment_heads steps on numpy (only called on inputs our decode accepted)."""
    data = dump.strip().encode("ascii") if isinstance(dump, str) else bytes(dump).strip()
    raw = gzip.decompress(base64.b85decode(data))
    assert len(raw) == n_layer * n_head, f"accepted a dump of {len(raw)} bytes for {n_layer}x{n_head}"
    values = np.frombuffer(raw, dtype=np.uint8)
    assert values.max() <= 1 and values.any(), "accepted a dump with bytes other than 0/1 or no head"
    return values.astype(bool).reshape(n_layer, n_head)


def _expect_mask(expected: np.ndarray) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        assert isinstance(result, np.ndarray) and result.dtype == bool, type(result)
        assert result.shape == expected.shape and np.array_equal(result, expected), (result, expected)

    return check


# ---- input makers -------------------------------------------------------------------------------------------


def random_mask(rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    shape = shape or (int(rng.integers(1, 33)), int(rng.integers(1, 33)))
    mask = rng.random(shape) < rng.uniform(0.05, 0.6)
    mask[rng.integers(shape[0]), rng.integers(shape[1])] = True
    return mask


def mutate(rng: np.random.Generator, data: bytes, alphabet: bytes | None = None) -> bytes:
    """``data`` with one random edit: bit flips, a cut, an insertion, a deletion, a duplicated or replaced slice."""
    out = bytearray(data)

    def some(k: int) -> bytes:
        if alphabet is not None and rng.random() < 0.7:
            return bytes(alphabet[i] for i in rng.integers(len(alphabet), size=k))
        return rng.bytes(k)

    op = int(rng.integers(7))
    at = int(rng.integers(len(out) + 1))
    k = int(rng.integers(1, 9))
    if op == 0 and out:
        for _ in range(k % 3 + 1):
            i = int(rng.integers(len(out)))
            out[i] ^= 1 << int(rng.integers(8))
    elif op == 1:
        del out[at:]
    elif op == 2:
        out[at:at] = some(k)
    elif op == 3:
        del out[at : at + k]
    elif op == 4:
        out[at:at] = out[at : at + int(rng.integers(1, 64))] * int(rng.integers(1, 4))
    elif op == 5 and out:
        i = int(rng.integers(len(out)))
        out[i : i + 1] = some(1)
    else:
        out += some(k)
    return bytes(out)


def as_text(rng: np.random.Generator, data: bytes) -> bytes | str:
    """``data`` as given, or as str (latin-1, so mutated bytes may become non-ASCII), maybe padded with spaces."""
    if rng.random() < 0.5:
        return data
    text = data.decode("latin-1")
    return f" {text}\n" if rng.random() < 0.2 else text


def gzip_member(payload: bytes, flags: int = 0, mtime: int = 0, extra: bytes = b"") -> bytes:
    """One gzip member with the given header flags (FHCRC 2, FEXTRA 4, FNAME 8, FCOMMENT 16) filled in."""
    header = b"\x1f\x8b\x08" + bytes([flags]) + struct.pack("<I", mtime) + b"\x02\xff"
    if flags & 4:
        header += struct.pack("<H", len(extra)) + extra
    if flags & 8:
        header += b"name.bin\0"
    if flags & 16:
        header += b"a comment\0"
    if flags & 2:
        header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = compressor.compress(payload) + compressor.flush()
    return header + body + struct.pack("<II", zlib.crc32(payload), len(payload) & 0xFFFFFFFF)


def gzip_bomb(megabytes: int, members: int = 1) -> bytes:
    """A gzip stream of ``megabytes`` MiB of zeros in ~1 KiB per MiB: one full-flushed deflate block repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush()
    per = max(1, megabytes // members)
    crc = 0
    for _ in range(per):
        crc = zlib.crc32(bytes(1 << 20), crc)
    member = b"\x1f\x8b\x08\x00\0\0\0\0\x02\xff" + block * per + end + struct.pack("<II", crc, (per << 20) & 0xFFFFFFFF)
    return member * members


def random_payload(rng: np.random.Generator, n_layer: int, n_head: int) -> bytes:
    """Bytes that are almost a mask of (n_layer, n_head): the wrong size, values other than 0/1, or none set."""
    expected = n_layer * n_head
    size = int(rng.choice([0, 1, expected - 1, expected, expected + 1, 2 * expected, int(rng.integers(0, 6000))]))
    size = max(size, 0)
    roll = rng.random()
    if roll < 0.6:
        payload = (rng.random(size) < 0.3).astype(np.uint8)
        if size and rng.random() < 0.2:
            payload[rng.integers(size)] = rng.integers(2, 256)
    elif roll < 0.8:
        payload = np.zeros(size, np.uint8)
    else:
        payload = rng.integers(0, 256, size, dtype=np.uint8)
    return payload.tobytes()


def random_structure(rng: np.random.Generator, depth: int = 0) -> Any:
    """A random Python value built from junk scalars, lists, tuples, dicts and numpy arrays."""
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        scalar_roll = rng.random()
        if scalar_roll < 0.5:
            return int(rng.integers(-3, 40))
        return JUNK_VALUES[int(rng.integers(len(JUNK_VALUES)))]
    if roll < 0.75:
        items = [random_structure(rng, depth + 1) for _ in range(int(rng.integers(0, 5)))]
        return items if rng.random() < 0.7 else tuple(items)
    if roll < 0.85:
        return {"alignment_heads": random_structure(rng, depth + 1)}
    shape = tuple(int(s) for s in rng.integers(0, 4, size=int(rng.integers(0, 4))))
    dtype = rng.choice(["int64", "float64", "bool", "uint8", "object", "U2"])
    return np.zeros(shape, dtype=dtype) if dtype in ("object", "U2") else rng.integers(-1, 8, shape).astype(dtype)


# ---- cases --------------------------------------------------------------------------------------------------


class Fuzzer:
    """Makes seeded :class:`Case` s of every kind; models for ``set_alignment_heads`` when torch is importable."""

    def __init__(self, seed: int, with_models: bool = True):
        self.rng = np.random.default_rng(seed)
        self.dumps = [(o.dump, o.shape) for o in H.ALIGNMENT_HEADS.values()]
        self.bombs = [gzip_bomb(64), gzip_bomb(64, members=8), gzip_bomb(1) * 3]
        self.models = self._models() if with_models else {}
        self.tmp = Path(tempfile.mkdtemp(prefix="fuzz_heads."))
        names = [kind for kind in KINDS if self.models or kind not in MODEL_KINDS]
        self.makers: list[Callable[[], Case]] = [getattr(self, kind.replace("-", "_")) for kind in names]
        weights = np.array([KINDS[kind] for kind in names])
        self.weights = weights / weights.sum()

    @staticmethod
    def _models() -> dict[tuple[int, int], Any]:
        try:
            from whisper_align.model.whisper import ModelDimensions, Whisper
        except ImportError:
            return {}
        models = {}
        for n_layer, n_head in SHAPES:
            dims = ModelDimensions(
                n_mels=4, n_audio_ctx=2, n_audio_state=4, n_audio_head=1, n_audio_layer=1, n_vocab=4,
                n_text_ctx=2, n_text_state=2 * n_head, n_text_head=n_head, n_text_layer=n_layer,
            )  # fmt: skip
            models[(n_layer, n_head)] = Whisper(dims)
        return models

    def case(self) -> Case:
        return self.makers[int(self.rng.choice(len(self.makers), p=self.weights))]()

    # -- dumps --

    def _seed_dump(self) -> tuple[bytes, tuple[int, int]]:
        if self.rng.random() < 0.5:
            return self.dumps[int(self.rng.integers(len(self.dumps)))]
        mask = random_mask(self.rng)
        return H.encode(mask, int(self.rng.integers(0, 2**32))), mask.shape

    def _shape_near(self, shape: tuple[int, int]) -> tuple[int, int]:
        if self.rng.random() < 0.8:
            return shape
        return int(self.rng.integers(1, 40)), int(self.rng.integers(1, 40))

    def _decode_case(self, kind: str, dump: Any, shape: tuple[Any, Any]) -> Case:
        def check(result: Any) -> None:
            _expect_mask(openai_decode(dump, *shape))(result)

        return Case(kind, lambda: H.decode(dump, *shape), check)

    def _b85_dump(self) -> tuple[Any, tuple[int, int]]:
        dump, shape = self._seed_dump()
        for _ in range(int(self.rng.integers(1, 3))):
            dump = mutate(self.rng, dump, B85_ALPHABET)
        return as_text(self.rng, dump), self._shape_near(shape)

    def _gzip_dump(self) -> tuple[Any, tuple[int, int]]:
        dump, shape = self._seed_dump()
        raw = base64.b85decode(dump)
        for _ in range(int(self.rng.integers(1, 3))):
            raw = mutate(self.rng, raw)
        return as_text(self.rng, base64.b85encode(raw)), self._shape_near(shape)

    def _payload_dump(self) -> tuple[Any, tuple[int, int]]:
        shape = SHAPES[int(self.rng.integers(len(SHAPES)))]
        payload = random_payload(self.rng, *shape)
        flags = int(self.rng.choice([0, 0, 0, 2, 4, 8, 16, 30]))
        extra = self.rng.bytes(int(self.rng.integers(0, 50)))
        if self.rng.random() < 0.2 and len(payload) > 1:  # split over two members, maybe with zero padding
            cut = int(self.rng.integers(1, len(payload)))
            pad = b"\0" * int(self.rng.integers(0, 3))
            raw = gzip_member(payload[:cut], flags, extra=extra) + pad + gzip_member(payload[cut:])
        else:
            raw = gzip_member(payload, flags, int(self.rng.integers(0, 2**32)), extra)
        if self.rng.random() < 0.1:
            raw += self.rng.bytes(int(self.rng.integers(1, 12)))  # trailing garbage
        return as_text(self.rng, base64.b85encode(raw)), shape

    def _bomb_dump(self) -> tuple[Any, tuple[int, int]]:
        raw = self.bombs[int(self.rng.integers(len(self.bombs)))]
        return base64.b85encode(raw), SHAPES[int(self.rng.integers(len(SHAPES)))]

    def _junk_dump(self) -> tuple[Any, tuple[int, int]]:
        return JUNK_VALUES[int(self.rng.integers(len(JUNK_VALUES)))], (4, 6)

    def dump_b85(self) -> Case:
        return self._decode_case("dump-b85", *self._b85_dump())

    def dump_gzip(self) -> Case:
        return self._decode_case("dump-gzip", *self._gzip_dump())

    def payload(self) -> Case:
        return self._decode_case("payload", *self._payload_dump())

    def bomb(self) -> Case:
        dump, shape = self._bomb_dump()
        if self.rng.random() < 0.5:
            return Case("bomb", lambda: H.gunzip_dump(dump))
        return self._decode_case("bomb", dump, shape)

    def shape(self) -> Case:
        dump, shape = self._seed_dump()
        layers, heads = shape
        junk = JUNK_COUNTS[int(self.rng.integers(len(JUNK_COUNTS)))]
        bad = (junk, heads) if self.rng.random() < 0.5 else (layers, junk)
        target = self.rng.choice(["decode", "pairs", "resolve"])
        if target == "decode":
            return Case("shape", lambda: H.decode(dump, *bad))
        if target == "pairs":
            pairs = H.mask_to_pairs(H.decode(dump, *shape))
            return Case("shape", lambda: H.pairs_to_mask(pairs, *bad))
        return Case("shape", lambda: H.resolve_heads(dump.decode("ascii"), *bad))

    def dump_type(self) -> Case:
        junk, _ = self._junk_dump()
        target = [H.decode, H.gunzip_dump, H.gzip_mtime][int(self.rng.integers(3))]
        if target is H.decode:
            return Case("dump-type", lambda: H.decode(junk, 4, 6))
        return Case("dump-type", lambda: target(junk))

    # -- text and structures --

    def _random_text(self) -> str:
        roll = self.rng.random()
        if roll < 0.1:  # long runs that make backtracking regular expressions or recursive parsers slow
            unit = ["1:1", " ", "[", "{", "{ {1, 0}", "1:1 ", "0", "ABzY8"][int(self.rng.integers(8))]
            return unit * int(self.rng.integers(1000, 20000)) + ["x", "", "]", " 1:"][int(self.rng.integers(4))]
        pools = [B85_ALPHABET.decode(), "[]{},:; 0123456789-=\n\t", "tinybaselrgemdv.-_ ", "\xe9\u2028\0\ufeff\x85 1:0"]
        pool = pools[int(self.rng.integers(len(pools)))]
        length = int(self.rng.integers(0, 120))
        return "".join(pool[i] for i in self.rng.integers(len(pool), size=length))

    def random(self) -> Case:
        text = self._random_text()
        data: bytes | str = text.encode("utf-8", "surrogatepass") if self.rng.random() < 0.3 else text
        shape = SHAPES[int(self.rng.integers(len(SHAPES)))]
        targets: list[tuple[str, Callable[[], Any]]] = [
            ("decode", lambda: H.decode(data, *shape)),
            ("gunzip", lambda: H.gunzip_dump(data)),
            ("mtime", lambda: H.gzip_mtime(data)),
            ("resolve", lambda: H.resolve_heads(text, *shape)),
            ("pairs-text", lambda: H.parse_pairs_text(text)),
            ("cpp", lambda: H.from_whisper_cpp(text)),
            ("colon", lambda: H.parse_colon_pairs(text)),
            ("official", lambda: H.official_heads(text)),
            ("preset", lambda: H.whisper_cpp_preset(text)),
            ("is-official", lambda: H.is_official_name(data)),
        ]
        name, call = targets[int(self.rng.integers(len(targets)))]
        check = None
        if name == "decode":
            check = lambda result: _expect_mask(openai_decode(data, *shape))(result)  # noqa: E731
        elif name == "is-official":
            check = lambda result: self._is_bool(result)  # noqa: E731
        return Case("random", call, check)

    @staticmethod
    def _is_bool(result: Any) -> None:
        assert isinstance(result, bool), type(result)

    def _text_forms(self, mask: np.ndarray) -> list[str]:
        pairs = H.mask_to_pairs(mask)
        return [
            json.dumps(pairs),
            ",".join(f"{l}:{h}" for l, h in pairs),
            H.to_whisper_cpp(pairs),
            f"static const whisper_ahead x[] = {H.to_whisper_cpp(pairs)};",
            H.encode(mask).decode("ascii"),
            list(H.ALIGNMENT_HEADS)[int(self.rng.integers(len(H.ALIGNMENT_HEADS)))],
        ]

    def text(self) -> Case:
        shape = SHAPES[int(self.rng.integers(len(SHAPES)))]
        forms = self._text_forms(random_mask(self.rng, shape))
        spec = forms[int(self.rng.integers(len(forms)))].encode("utf-8")
        for _ in range(int(self.rng.integers(1, 4))):
            spec = mutate(self.rng, spec, b"[]{},:; 0123456789-=x")
        text = spec.decode("latin-1")
        target = self._shape_near(shape)

        def check(result: Any) -> None:
            assert isinstance(result, np.ndarray) and result.dtype == bool and result.shape == target
            assert result.any()

        return Case("text", lambda: H.resolve_heads(text, *target), check)

    def _pairs_input(self) -> Any:
        if self.rng.random() < 0.4:
            return random_structure(self.rng)
        pairs: list[Any] = H.mask_to_pairs(random_mask(self.rng, SHAPES[int(self.rng.integers(len(SHAPES)))]))
        i = int(self.rng.integers(len(pairs)))
        roll = self.rng.random()
        if roll < 0.3:
            pairs[i] = [pairs[i][0], JUNK_VALUES[int(self.rng.integers(len(JUNK_VALUES)))]]
        elif roll < 0.5:
            pairs[i] = pairs[i] + [0]
        elif roll < 0.6:
            pairs[i] = tuple(pairs[i])
        elif roll < 0.7:
            return np.array(pairs, dtype=self.rng.choice(["int64", "float64", "uint8", "object"]))
        elif roll < 0.8:
            pairs[i] = [int(self.rng.integers(-5, 40)), int(self.rng.integers(-5, 40))]
        return pairs

    def pairs(self) -> Case:
        value = self._pairs_input()
        shape = SHAPES[int(self.rng.integers(len(SHAPES)))]

        def check_mask(result: Any) -> None:
            expected = {(int(l), int(h)) for l, h in value}
            assert {tuple(p) for p in H.mask_to_pairs(result)} == expected and result.shape == shape

        def check_cpp(result: Any) -> None:
            assert H.from_whisper_cpp(result) == [[int(l), int(h)] for l, h in value]

        def check_json(result: Any) -> None:
            assert result is None or all(isinstance(v, int) for pair in result for v in pair)

        targets = [
            (lambda: H.pairs_to_mask(value, *shape), check_mask),
            (lambda: H.to_whisper_cpp(value), check_cpp),
            (lambda: H.read_json_heads({"alignment_heads": value}), check_json),
            (lambda: H.read_json_heads(value), None),
        ]
        call, check = targets[int(self.rng.integers(len(targets)))]
        return Case("pairs", call, check)

    def _mask_input(self) -> Any:
        roll = self.rng.random()
        if roll < 0.3:
            return random_structure(self.rng)
        shape = tuple(int(s) for s in self.rng.integers(0, 5, size=int(self.rng.integers(0, 4))))
        values = self.rng.integers(-1, 3, shape) if self.rng.random() < 0.3 else self.rng.integers(0, 2, shape)
        dtype = self.rng.choice(["bool", "uint8", "int64", "float32", "float64", "complex64", "object"])
        array = values.astype(dtype)
        if roll < 0.4:
            array = np.full(array.shape, np.nan)
        if roll > 0.9 and "torch" in sys.modules:
            import torch

            tensor = torch.from_numpy(values.astype("int64"))
            return tensor.to_sparse() if self.rng.random() < 0.5 else tensor
        return array if self.rng.random() < 0.7 else array.tolist()

    def mask(self) -> Case:
        value = self._mask_input()
        mtime = 0 if self.rng.random() < 0.8 else JUNK_COUNTS[int(self.rng.integers(len(JUNK_COUNTS)))]

        def check_encode(result: Any) -> None:
            array = np.asarray(value.to_dense() if hasattr(value, "to_dense") else value)
            np.testing.assert_array_equal(H.decode(result, *array.shape), array != 0)

        on = "X" if self.rng.random() < 0.8 else JUNK_VALUES[int(self.rng.integers(len(JUNK_VALUES)))]
        targets = [
            (lambda: H.encode(value, mtime), check_encode),
            (lambda: H.mask_to_pairs(value), None),
            (lambda: H.format_grid(value, on=on), None),
            (lambda: H.official_matches(value), lambda result: self._is_list(result)),
        ]
        call, check = targets[int(self.rng.integers(len(targets)))]
        return Case("mask", call, check)

    @staticmethod
    def _is_list(result: Any) -> None:
        assert isinstance(result, list), type(result)

    # -- valid inputs must round-trip --

    def roundtrip(self) -> Case:
        shape = SHAPES[int(self.rng.integers(len(SHAPES)))] if self.rng.random() < 0.5 else None
        mask = random_mask(self.rng, shape)
        mtime = int(self.rng.integers(0, 2**32))
        model = self.models.get(mask.shape)

        def call() -> None:
            dump = H.encode(mask, mtime)
            assert H.gzip_mtime(dump) == mtime
            np.testing.assert_array_equal(H.decode(dump, *mask.shape), mask)
            np.testing.assert_array_equal(openai_decode(dump, *mask.shape), mask)
            pairs = H.mask_to_pairs(mask)
            np.testing.assert_array_equal(H.pairs_to_mask(pairs, *mask.shape), mask)
            assert H.from_whisper_cpp(H.to_whisper_cpp(pairs)) == pairs
            assert H.read_json_heads({"alignment_heads": pairs}) == pairs
            for spec in self._text_forms(mask)[:5]:
                np.testing.assert_array_equal(H.resolve_heads(spec, *mask.shape), mask)
            if model is not None:
                model.set_alignment_heads(dump)
                assert model.alignment_head_pairs() == [tuple(p) for p in pairs]
                model.set_alignment_head_pairs(pairs)
                assert model.alignment_head_pairs() == [tuple(p) for p in pairs]

        return Case("roundtrip", call, must_succeed=True)

    def json_file(self) -> Case:
        pairs = H.mask_to_pairs(random_mask(self.rng, (4, 6)))
        text = json.dumps({"alignment_heads": pairs, "other": [1, 2]}).encode()
        for _ in range(int(self.rng.integers(0, 3))):
            text = mutate(self.rng, text, b'[]{},:" 0123456789')
        if self.rng.random() < 0.1:
            text = b'{"alignment_heads": ' + b"[" * 100000 + b"]" * 100000 + b"}"
        path = self.tmp / f"case{int(self.rng.integers(1 << 30))}.json"
        path.write_bytes(text)
        if self.rng.random() < 0.3:
            return Case("json-file", lambda: H.write_json_heads(path, self._pairs_input()))
        return Case("json-file", lambda: H.read_json_heads(path if self.rng.random() < 0.7 else self.tmp))

    # -- models --

    def _model(self) -> tuple[Any, tuple[int, int]]:
        shape = SHAPES[int(self.rng.integers(len(SHAPES)))]
        return self.models[shape], shape

    @staticmethod
    def _unchanged(model: Any) -> Callable[[], None]:
        """A check that the model still holds the very heads buffer it had (setting heads replaces the buffer)."""
        before = model.alignment_heads

        def check() -> None:
            assert model.alignment_heads is before, "a refused input changed the model's heads"

        return check

    def model_dump(self) -> Case:
        makers = [self._b85_dump, self._gzip_dump, self._payload_dump, self._junk_dump, self._bomb_dump]
        dump, shape = makers[int(self.rng.choice(5, p=[0.3, 0.3, 0.3, 0.05, 0.05]))]()
        if shape not in self.models or self.rng.random() < 0.1:
            model, shape = self._model()
        model = self.models[shape]

        def check(_: Any) -> None:
            expected = H.mask_to_pairs(openai_decode(dump, *shape))
            assert model.alignment_head_pairs() == [tuple(p) for p in expected]

        return Case("model-dump", lambda: model.set_alignment_heads(dump), check, unchanged=self._unchanged(model))

    def model_pairs(self) -> Case:
        model, shape = self._model()
        value = self._pairs_input()

        def check(_: Any) -> None:
            expected = sorted({(int(l), int(h)) for l, h in value})
            assert model.alignment_head_pairs() == expected

        return Case(
            "model-pairs", lambda: model.set_alignment_head_pairs(value), check, unchanged=self._unchanged(model)
        )

    def _buffer(self, shape: tuple[int, int]) -> Any:
        import torch

        roll = self.rng.random()
        if roll < 0.1:
            return JUNK_VALUES[int(self.rng.integers(len(JUNK_VALUES)))]
        dims = shape if roll < 0.7 else tuple(int(s) for s in self.rng.integers(0, 5, int(self.rng.integers(0, 4))))
        low, high = (0, 2) if self.rng.random() < 0.7 else (-1, 3)
        values = torch.from_numpy(self.rng.integers(low, high, dims))
        dtype = [torch.bool, torch.uint8, torch.int64, torch.float32, torch.float16][int(self.rng.integers(5))]
        tensor = values.to(dtype)
        if self.rng.random() < 0.1:
            tensor = tensor.float() * float("nan")
        return tensor.to_sparse() if self.rng.random() < 0.5 and tensor.dim() > 0 else tensor

    def state_dict(self) -> Case:
        model, shape = self._model()
        state = {k: v for k, v in model.state_dict().items() if k != "alignment_heads"}
        buffer = self._buffer(shape)
        state["alignment_heads"] = buffer
        unchanged = self._unchanged(model)

        def check(_: Any) -> None:
            if buffer is None:  # a None entry counts as no entry: the heads stay as they were
                unchanged()
                return
            dense = buffer.to_dense() if buffer.is_sparse else buffer
            expected = [tuple(p) for p in np.argwhere(dense.float().numpy() != 0).tolist()]
            assert model.alignment_head_pairs() == expected

        return Case("state-dict", lambda: model.load_state_dict(state), check, unchanged=unchanged)


# ---- running ------------------------------------------------------------------------------------------------

SLOW_S = 1.0  # one input taking longer than this is reported (a parser gone quadratic, a bomb inflated)


def _where(error: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "whisper_align" in f.filename]
    frame = (frames or traceback.extract_tb(error.__traceback__))[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def _describe(kind: str, error: BaseException) -> str:
    try:
        message = str(error).splitlines()[0][:160] if str(error) else ""
    except Exception:  # noqa: BLE001 - a message that cannot even be printed
        message = "<unprintable>"
    return f"{kind}: {type(error).__name__} at {_where(error)}: {message}"


def run_case(case: Case, report: Report) -> None:
    """Run one case and file its outcome in ``report``."""
    report.n += 1
    report.kinds[case.kind] += 1
    try:
        result = case.call()
    except AlignmentHeadsError as error:
        report.refused += 1
        if case.must_succeed:
            report.wrong.append(_describe(case.kind, error) + " (a valid input was refused)")
        if case.unchanged is not None:
            try:
                case.unchanged()
            except AssertionError as failure:
                report.wrong.append(f"{case.kind}: {failure}")
    except Exception as error:  # noqa: BLE001 - counting exactly these is the point
        if isinstance(error, AssertionError) and case.must_succeed:
            report.wrong.append(_describe(case.kind, error))
        else:
            report.untyped.append(_describe(case.kind, error))
    else:
        report.accepted += 1
        if case.check is not None:
            try:
                case.check(result)
            except Exception as failure:  # noqa: BLE001 - the reference itself refusing what we accepted
                report.wrong.append(_describe(case.kind, failure) + " (accepted, but the result is wrong)")


def run(n: int, seed: int = 0, with_models: bool = True) -> Report:
    """Fuzz ``n`` inputs made from ``seed``; the :class:`Report` lists every non-typed error and wrong result."""
    import shutil

    fuzzer = Fuzzer(seed, with_models)
    report = Report()
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else 0
    if torch is not None:
        torch.set_num_threads(1)  # tiny tensors: thread start-up would cost more than the work (restored below)
    try:
        for _ in range(n):
            case = fuzzer.case()
            start = time.perf_counter()
            run_case(case, report)
            elapsed = time.perf_counter() - start
            if elapsed > SLOW_S:
                report.wrong.append(f"{case.kind}: took {elapsed:.1f} s")
    finally:
        shutil.rmtree(fuzzer.tmp, ignore_errors=True)
        if torch is not None:
            torch.set_num_threads(threads)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="inputs to try (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-models", action="store_true", help="skip set_alignment_heads (no torch needed)")
    parser.add_argument("--show", type=int, default=10, help="examples of each problem to print (default 10)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report = run(args.n, args.seed, with_models=not args.no_models)
    elapsed = time.perf_counter() - start
    for title, problems in (("non-typed errors", report.untyped), ("wrong results", report.wrong)):
        for line, count in Counter(problems).most_common(args.show):
            print(f"{title}: {count} x {line}")
    print(f"kinds: {dict(sorted(report.kinds.items()))}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{report.summary()}; {elapsed:.1f} s, peak memory {peak:.0f} MiB")
    print(f"non-typed errors: {len(report.untyped)}")
    return 1 if report.untyped or report.wrong else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
