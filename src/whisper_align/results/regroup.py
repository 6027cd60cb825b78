"""Regrouping a result's segments by its words: split at pauses, sentence ends and speaker changes, cut segments
that are too long at the best place, merge ones that are too short.

Whisper's segments follow its timestamp tokens, which often run on across sentences and pauses; subtitles and
reading want one sentence or phrase per segment. :func:`regroup` rebuilds the segments from the words (times and
words unchanged, only the grouping moves):

1. a new segment starts after a pause of at least ``max_gap`` seconds, after a word ending a sentence (one of
   ``punctuation``, before any closing quote or bracket) and where the speaker changes (when words have speakers);
2. a segment longer than ``max_words`` words or ``max_chars`` characters is cut, each piece as long as allowed but
   ending, where one is in its second half, after a comma-like mark (``clause_punctuation``) or the widest pause;
3. a segment of fewer than ``min_words`` words joins its neighbour across the shorter pause, unless that crosses a
   pause of ``max_gap``, a speaker change or makes a segment too long.

Segments keep openai-whisper's schema: ids renumbered from 0, ``seek`` and the decoder statistics copied from the
original segment that holds most of the new one's words, ``text`` the words joined, ``tokens`` the original
segments' tokens when the new segment is made of whole original segments (else empty: the words do not carry
their tokens). A segment without words (there are none when word timestamps were asked for) stays as it was.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

from ..errors import PostprocessError
from .speakers import majority_speaker
from .types import Result, Segment, Word

R = TypeVar("R", bound=Result)

SENTENCE_END = ".?!…。？！"
CLAUSE_END = ",;:，、；："
_CLOSERS = "\"'”’)]}»」』"

_Item = tuple[Word, int]  # a word and the index of the original segment it came from


@dataclasses.dataclass(frozen=True)
class _Rules:
    max_gap: float | None
    punctuation: str
    clause_punctuation: str
    max_words: int | None
    max_chars: int | None
    min_words: int
    by_speaker: bool

    def fits(self, items: Sequence[_Item]) -> bool:
        if self.max_words is not None and len(items) > self.max_words:
            return False
        return self.max_chars is None or len(_text(items).strip()) <= self.max_chars

    def ends_with(self, word: Word, marks: str) -> bool:
        body = word.word.rstrip().rstrip(_CLOSERS)
        return bool(body) and body[-1] in marks

    def hard_break(self, before: Word, after: Word) -> bool:
        """Whether ``after`` must start a segment: a long pause or another speaker (never merged across)."""
        if self.max_gap is not None and after.start - before.end >= self.max_gap:
            return True
        return self.by_speaker and None not in (before.speaker, after.speaker) and before.speaker != after.speaker


def _text(items: Sequence[_Item]) -> str:
    return "".join(word.word for word, _ in items)


def _check(max_gap: float | None, max_words: int | None, max_chars: int | None, min_words: int) -> None:
    if max_gap is not None and not (isinstance(max_gap, (int, float)) and math.isfinite(max_gap) and max_gap >= 0):
        raise PostprocessError(f"max_gap must be a number of seconds >= 0 (or None), not {max_gap!r}")
    for name, value in (("max_words", max_words), ("max_chars", max_chars)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise PostprocessError(f"{name} must be a whole number >= 1 (or None), not {value!r}")
    if isinstance(min_words, bool) or not isinstance(min_words, int) or min_words < 1:
        raise PostprocessError(f"min_words must be a whole number >= 1, not {min_words!r}")


def _split_at_breaks(run: list[_Item], rules: _Rules) -> list[list[_Item]]:
    groups: list[list[_Item]] = [[run[0]]]
    for previous, item in zip(run, run[1:]):
        before, after = previous[0], item[0]
        if rules.hard_break(before, after) or rules.ends_with(before, rules.punctuation):
            groups.append([])
        groups[-1].append(item)
    return groups


def _cut_preference(items: Sequence[_Item], k: int, rules: _Rules) -> tuple[bool, float, int]:
    """How good a cut before ``items[k]`` is: after a clause or sentence mark first, then the wider pause, then the
    later place (the longer piece)."""
    before, after = items[k - 1][0], items[k][0]
    marked = rules.ends_with(before, rules.clause_punctuation + rules.punctuation)
    return marked, round(after.start - before.end, 3), k  # pauses compared to the millisecond


def _cut_long(group: list[_Item], rules: _Rules) -> list[list[_Item]]:
    """Pieces of ``group`` that each fit the limits; each as long as allowed, but cut after a clause mark or the
    widest pause where one lies in the allowed piece's second half."""
    pieces: list[list[_Item]] = []
    rest = group
    while len(rest) > 1 and not rules.fits(rest):  # a single word too long for max_chars stays whole
        longest = 1  # the most words a piece may take (fitting is monotone: stop at the first that does not fit)
        while longest + 1 < len(rest) and rules.fits(rest[: longest + 1]):
            longest += 1
        candidates = range(max(1, (longest + 1) // 2), longest + 1)
        cut = max(candidates, key=functools.partial(_cut_preference, rest, rules=rules))
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return [*pieces, rest]


def _merge_short(groups: list[list[_Item]], rules: _Rules) -> list[list[_Item]]:
    """Join each group of fewer than ``min_words`` words to a neighbour (the one across the shorter pause) where
    the join crosses no hard break and fits the limits; repeated until nothing more can be joined."""
    groups = [list(g) for g in groups]
    index = 0
    while index < len(groups):
        if len(groups[index]) >= rules.min_words:
            index += 1
            continue
        options = []
        for other in (index - 1, index + 1):
            if 0 <= other < len(groups):
                first, second = sorted((index, other))
                left, right = groups[first][-1][0], groups[second][0][0]
                joined = groups[first] + groups[second]
                if not rules.hard_break(left, right) and rules.fits(joined):
                    options.append((right.start - left.end, first))
        if not options:
            index += 1
            continue
        _, first = min(options)
        groups[first : first + 2] = [groups[first] + groups[first + 1]]
        index = max(first - 1, 0)  # the joined group may still be short, or let a neighbour join it
    return groups


def _segment(items: list[_Item], sources: Sequence[Segment], new_id: int) -> Segment:
    counts = Counter(source for _, source in items)
    main = sources[max(counts, key=lambda s: (counts[s], -s))]
    used = sorted(counts)
    whole = all(counts[s] == len(sources[s].words) for s in used) and used == list(range(used[0], used[-1] + 1))
    words = [dataclasses.replace(word) for word, _ in items]
    return dataclasses.replace(
        main,
        id=new_id,
        seek=sources[items[0][1]].seek,
        start=words[0].start,
        end=words[-1].end,
        text=_text(items),
        tokens=[t for s in used for t in sources[s].tokens] if whole else [],
        words=words,
        speaker=majority_speaker(words),
    )


def regroup(
    result: R,
    *,
    max_gap: float | None = 0.5,
    punctuation: str = SENTENCE_END,
    clause_punctuation: str = CLAUSE_END,
    max_words: int | None = None,
    max_chars: int | None = None,
    min_words: int = 1,
    by_speaker: bool = True,
) -> R:
    """A copy of ``result`` whose segments are regrouped by its words (see the module's docstring for the rules).

    ``max_gap=None`` and ``punctuation=""`` turn those splits off; ``min_words=1`` merges nothing. The words, their
    order and times, and ``result.text`` are unchanged. A result without word timestamps is a
    :class:`PostprocessError`: regrouping needs them.
    """
    _check(max_gap, max_words, max_chars, min_words)
    if not result.has_words:
        raise PostprocessError(
            "regrouping needs word timestamps; transcribe with word_timestamps=True (--word-timestamps)"
        )
    rules = _Rules(max_gap, punctuation, clause_punctuation, max_words, max_chars, min_words, by_speaker)
    segments: list[Segment] = []

    def flush(run: list[_Item]) -> None:
        groups = [piece for group in _split_at_breaks(run, rules) for piece in _cut_long(group, rules)]
        for group in _merge_short(groups, rules):
            segments.append(_segment(group, result.segments, len(segments)))

    run: list[_Item] = []
    for index, segment in enumerate(result.segments):
        if segment.words:
            run.extend((word, index) for word in segment.words)
            continue
        if run:
            flush(run)
            run = []
        segments.append(dataclasses.replace(segment, id=len(segments)))
    if run:
        flush(run)
    return dataclasses.replace(result, segments=segments)


__all__ = ["CLAUSE_END", "SENTENCE_END", "regroup"]
