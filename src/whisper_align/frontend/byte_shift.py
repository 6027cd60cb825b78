"""16-bit PCM read one byte off: finding and undoing it.

A WAV whose `data` lost or gained one byte somewhere (a bad copy, a converter that wrote binary data as text)
is read, from that byte on, with every sample made of the high byte of one sample and the low byte of the next.
The model then hears full-scale noise where the speech was; words there get times hundreds of milliseconds off
with nothing to say why. The damage has a clear signature, and it can be undone exactly: read from one byte
later, those samples are the recording's own again (one sample is lost or doubled at each such byte).

The signature, per 10 ms block: in a 16-bit recording read correctly the high byte follows the waveform (it
changes little from one sample to the next) and the low byte looks random, and in quiet sound the high byte is
0 or -1 throughout; read one byte off, the two swap roles. Blocks that show neither (noise in both bytes, or
near-silence) are given the state of the blocks around them; where the state
changes, the exact sample is the one that makes the waveform smoothest on both sides.
"""

from __future__ import annotations

import numpy as np

BLOCK = 160  # samples per judged block: 10 ms at 16 kHz
# A block is read one byte off when its high byte changes this much from sample to sample on average (a random
# byte changes by about 85) and at least RATIO times as much as its low byte; read correctly, the other way round.
RANDOM_BYTE_CHANGE = 24.0
RATIO = 4.0
# A span read one byte off needs this many such blocks (50 ms): fewer are not trusted.
MIN_SHIFTED_BLOCKS = 5


def byte_shifted_spans(pcm16: np.ndarray) -> list[tuple[int, int]]:
    """The spans ``[start, end)`` (sample indices) of ``pcm16`` (mono int16, as read from the file) whose samples
    are read one byte off; empty for a recording read correctly."""
    pcm16 = np.ascontiguousarray(pcm16, dtype="<i2")
    if pcm16.size < BLOCK * MIN_SHIFTED_BLOCKS or not pcm16.view(np.uint8)[0::2].any():
        return []  # too short to judge, or 8-bit audio stored in 16 bits (its low bytes are all zero)
    states = _block_states(pcm16)
    if (states > 0).sum() < MIN_SHIFTED_BLOCKS:
        return []
    filled = _fill_unclear(states)
    even, odd = pcm16.astype(np.int32), _read_one_byte_later(pcm16).astype(np.int32)
    spans = []
    for first, last in _runs(filled > 0):
        if (states[first:last] > 0).sum() < MIN_SHIFTED_BLOCKS:
            continue
        start = 0 if first == 0 else _switch(even, odd, first, states, shifted_after=True)
        end = len(pcm16) if last == len(filled) else _switch(even, odd, last, states, shifted_after=False)
        spans.append((start, end))
    return spans


def repair_byte_shift(pcm16: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """``pcm16`` with the samples of ``spans`` read one byte later (the recording's own samples)."""
    out = pcm16.copy()
    odd = _read_one_byte_later(pcm16)
    for start, end in spans:
        out[start:end] = odd[start:end]
    return out


def _read_one_byte_later(pcm16: np.ndarray) -> np.ndarray:
    """The int16 samples that start at byte 1 instead of 0 (the last one, which has a single byte, is 0)."""
    raw = np.ascontiguousarray(pcm16, dtype="<i2").view(np.uint8)
    out = np.zeros(len(pcm16), dtype="<i2")
    out[:-1] = raw[1:-1].view("<i2")
    return out


def _block_states(pcm16: np.ndarray) -> np.ndarray:
    """Per block: +1 read one byte off, -1 read correctly, 0 cannot tell (quiet, or noise in both bytes)."""
    n = len(pcm16) // BLOCK * BLOCK
    raw = np.ascontiguousarray(pcm16[:n], dtype="<i2").view(np.uint8)
    low = raw[0::2].view(np.int8).astype(np.int16).reshape(-1, BLOCK)
    high = raw[1::2].view(np.int8).astype(np.int16).reshape(-1, BLOCK)
    low_change = np.abs(np.diff(low, axis=1)).mean(axis=1)
    high_change = np.abs(np.diff(high, axis=1)).mean(axis=1)
    shifted = (high_change >= RANDOM_BYTE_CHANGE) & (high_change >= RATIO * low_change)
    correct = (low_change >= RANDOM_BYTE_CHANGE) & (low_change >= RATIO * high_change)
    # Quiet sound (under 1/128 of full scale) read correctly has high bytes of 0 or -1 only; read one byte off,
    # its low bytes are (the high bytes of the sound), while the high bytes are not.
    low_sign, high_sign = _sign_bytes_only(low), _sign_bytes_only(high)
    shifted |= low_sign & ~high_sign
    correct |= high_sign & ~low_sign
    return shifted.astype(np.int8) - correct.astype(np.int8)


def _sign_bytes_only(bytes_: np.ndarray) -> np.ndarray:
    """Per row: whether every byte is 0 or -1 (the high byte of a sample under 1/128 of full scale)."""
    return ((bytes_ == 0) | (bytes_ == -1)).all(axis=1)


def _fill_unclear(states: np.ndarray) -> np.ndarray:
    """Each unclear block (0) takes the state of the nearest clear block before it (after it at the start);
    ``states`` holds at least one clear block."""
    clear = np.flatnonzero(states)
    index = np.searchsorted(clear, np.arange(len(states)), side="right") - 1
    return states[clear[np.maximum(index, 0)]]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[first, last)`` block ranges where ``mask`` holds."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _switch(even: np.ndarray, odd: np.ndarray, block: int, states: np.ndarray, shifted_after: bool) -> int:
    """The sample where the reading changes near ``block`` (the first block of the new state): searched from the
    last clear block of the old state to the end of the first clear block of the new one, it is the sample that
    makes the waveform smoothest, read correctly on one side and one byte later on the other."""
    clear = np.flatnonzero(states)
    before = clear[clear < block]
    after = clear[clear >= block]
    lo = int(before[-1]) * BLOCK if before.size else 0
    hi = min((int(after[0]) + 1) * BLOCK if after.size else len(even), len(even))
    first, second = (even, odd) if shifted_after else (odd, even)
    steps_first = np.abs(np.diff(first[lo:hi]))
    steps_second = np.abs(np.diff(second[lo:hi]))
    # cost of switching before sample lo + k: first's steps up to k, second's steps from k on
    cost = np.concatenate([[0], np.cumsum(steps_first)]) + np.concatenate([np.cumsum(steps_second[::-1])[::-1], [0]])
    return lo + int(np.argmin(cost))
