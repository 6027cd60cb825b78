"""The transcription loop's window and prompt rules, without weights: where the next window starts, what the
prompt holds, when it resets."""

from __future__ import annotations

from whisper_align.results.types import Segment
from whisper_align.tasks.transcribe import _seek_clips, _split_segments, _State


class _Tok:  # the two things _State.start needs from a tokenizer
    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text.strip()]


def _state(clips: list[tuple[int, int]], prompt: str | None = None) -> _State:
    return _State.start(_Tok(), prompt, n_text_ctx=16, seek_clips=clips)  # type: ignore[arg-type]


def _segment(start: float, end: float, text: str, tokens: list[int]) -> Segment:
    return Segment(id=0, seek=0, start=start, end=end, text=text, tokens=tokens)


def test_windows_walk_each_clip_and_skip_the_gaps() -> None:
    state = _state(_seek_clips("1,12,20", content_frames=4000))  # 1-12 s, then 20 s to the end
    window = state.next_window(content_frames=4000)
    assert (window.seek, window.size) == (100, 1100)  # inside the first clip only
    state.seek = 1200
    window = state.next_window(content_frames=4000)
    assert (window.seek, window.size) == (2000, 2000)  # the second clip, to the end of the audio
    state.seek = 4000
    assert state.next_window(content_frames=4000) is None


def test_prompt_is_the_text_since_the_last_reset() -> None:
    state = _state([(0, 3000)])
    state.commit([_segment(0, 1, " a", [1, 2])], temperature=0.0, condition_on_previous_text=True)
    assert state.prompt(carry_initial_prompt=False) == [1, 2]
    state.commit([_segment(1, 2, " b", [3])], temperature=0.8, condition_on_previous_text=True)  # hot: reset
    assert state.prompt(carry_initial_prompt=False) == []
    state.commit([_segment(2, 3, " c", [4])], temperature=0.0, condition_on_previous_text=True)
    assert state.prompt(carry_initial_prompt=False) == [4]
    assert [s.id for s in state.segments] == [0, 1, 2]


def test_a_carried_initial_prompt_stays_in_front_of_recent_text() -> None:
    state = _state([(0, 3000)], prompt="xy")  # initial prompt tokens [120, 121]; room: 16 // 2 - 1 - 2 = 5
    for t in range(10):
        state.commit([_segment(t, t + 1, " w", [t])], temperature=0.0, condition_on_previous_text=True)
    assert state.prompt(carry_initial_prompt=True) == [120, 121, 5, 6, 7, 8, 9]
    assert state.prompt(carry_initial_prompt=False) == [120, 121, *range(10)]


def test_empty_or_instantaneous_segments_lose_their_text() -> None:
    state = _state([(0, 3000)])
    state.commit([_segment(1, 1, " gone", [7]), _segment(1, 2, "  ", [8])], 0.0, True)
    assert [(s.text, s.tokens) for s in state.segments] == [("", []), ("", [])]
    assert state.prompt(carry_initial_prompt=False) == []


def test_segments_are_cut_at_timestamp_pairs_and_the_next_window_starts_at_the_last_complete_one() -> None:
    ts = 1000  # timestamp_begin: token ts + k means k * 0.02 s
    tokens = [ts + 0, 5, 6, ts + 50, ts + 50, 7, ts + 100, ts + 100, 8]  # two complete segments, one unfinished
    spans, single_ending, seek = _split_segments(tokens, ts, 0, 3000, 30.0, 0.02, 2)
    assert [span for span, _ in spans] == [(0, 4), (4, 7)]
    assert [times for _, times in spans] == [(0.0, 1.0), (1.0, 2.0)]
    assert not single_ending and seek == 200  # the unfinished segment is decoded again from 2.0 s
