"""openai-whisper's command line works as it is (issue #14, item 3): every option of its ``whisper`` CLI, spelled
its way (``--output_dir``, ``--word_timestamps True``, ``--beam_size None``), is read by ``whisper-align
transcribe`` to the same value openai-whisper's own parser reads, and ``--help`` lists each option once."""

from __future__ import annotations

import argparse

import pytest

import support
from whisper_align.cli import build_parser, main

whisper_transcribe = pytest.importorskip("whisper.transcribe")


class _Captured(Exception):
    pass


@pytest.fixture(scope="module")
def openai_parser() -> argparse.ArgumentParser:
    """openai-whisper's own CLI parser, caught as its ``cli()`` is about to parse (nothing is loaded)."""
    captured: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.parse_args

    def catch(self, *args, **kwargs):
        captured.append(self)
        raise _Captured

    argparse.ArgumentParser.parse_args = catch  # type: ignore[method-assign]
    try:
        with pytest.raises(_Captured):
            whisper_transcribe.cli()
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    return captured[0]


def ours(*args: str) -> argparse.Namespace:
    return build_parser().parse_args(["transcribe", "a.wav", *args])


def sample_values(action: argparse.Action) -> list[str]:
    """Values worth trying for one of openai's options: its default, and another of the right kind."""
    type_name = getattr(action.type, "__name__", "")
    if type_name == "str2bool":
        return ["True", "False"]
    if action.choices:
        return [str(action.default)] if action.default is not None else [sorted(action.choices)[0]]
    values = {"optional_int": ["None", "3"], "optional_float": ["None", "0.5"], "float": ["0.4"], "int": ["2"]}
    extra = values.get(type_name, ["some text"])
    return ([str(action.default)] if action.default is not None else []) + extra


def test_every_openai_option_reads_as_openai_reads_it(openai_parser):
    checked = 0
    for action in openai_parser._actions:
        option = next((s for s in action.option_strings if s.startswith("--")), None)
        if option is None or option == "--help":
            continue
        for value in sample_values(action):
            if option == "--model" and value not in ("tiny.en", "base"):
                value = "tiny.en"  # openai checks the name against its list; ours loads any name later
            theirs = openai_parser.parse_args(["a.wav", option, value])
            mine = ours(option, value)
            expected = getattr(theirs, action.dest)
            assert getattr(mine, action.dest) == expected, (option, value)
            mine_with_equals = ours(f"{option}={value}")
            assert getattr(mine_with_equals, action.dest) == expected, (option, value)
            checked += 1
    assert checked >= 40  # all of openai's options (27 in 20250625) with one or two values each


def test_openai_command_line_as_a_whole():
    args = ours(
        "--model", "base", "--output_dir", "out", "--output_format", "srt", "--verbose", "False",
        "--word_timestamps", "True", "--condition_on_previous_text", "False", "--beam_size", "None",
        "--temperature_increment_on_fallback", "None", "--highlight_words", "True", "--max_line_width", "42",
        "--max_line_count", "2", "--threads", "3", "--hallucination_silence_threshold", "2.5",
        "--clip_timestamps", "0,10", "--initial_prompt", "Hello.", "--fp16", "False",
    )  # fmt: skip
    assert (args.model, args.output_dir, args.output_format) == ("base", "out", "srt")
    assert args.word_timestamps and args.highlight_words and not args.verbose and not args.fp16
    assert args.condition_on_previous_text is False and args.beam_size is None
    assert args.temperature_increment_on_fallback is None
    assert (args.max_line_width, args.max_line_count, args.threads) == (42, 2, 3)
    assert (args.hallucination_silence_threshold, args.clip_timestamps, args.initial_prompt) == (2.5, "0,10", "Hello.")
    assert args.audio == ["a.wav"]


def test_our_flags_take_an_optional_true_or_false():
    assert ours("--word-timestamps").word_timestamps is True
    assert ours("--word-timestamps", "False").word_timestamps is False
    assert ours("--verbose", "True").verbose is True and ours("--verbose", "False").verbose is False
    flag_then_audio = build_parser().parse_args(["transcribe", "--word-timestamps", "b.wav", "c.wav"])
    assert flag_then_audio.word_timestamps and flag_then_audio.audio == ["b.wav", "c.wav"]
    assert ours("--no-condition-on-previous-text").condition_on_previous_text is False
    assert ours("--condition-on-previous-text=False").condition_on_previous_text is False
    assert build_parser().parse_args(["transcribe", "--", "--odd-name.wav"]).audio == ["--odd-name.wav"]


def test_bad_openai_spellings_are_usage_errors(capsys):
    for args in (["--word_timestamps"], ["--word_timestamps", "maybe"], ["--word-timestamps=yes"]):
        with pytest.raises(SystemExit) as exit_info:
            ours(*args)
        assert exit_info.value.code == 2
        assert "True or" in capsys.readouterr().err


def test_align_reads_openai_spellings_too():
    args = build_parser().parse_args(
        ["align", "a.wav", "--text", "x", "--max_line_width", "20", "--min_probability", "0.3", "--threads", "1"]
    )
    assert (args.max_line_width, args.min_probability, args.threads) == (20, 0.3, 1)


def test_help_lists_each_option_once_and_says_which_defaults_differ(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["transcribe", "--help"])
    text = capsys.readouterr().out
    assert "--output-dir" in text and "--output_dir" in text  # the second only in the note on spellings
    assert text.count("--output_dir") == 1 and "--word_timestamps" not in text.split("openai-whisper's spellings")[0]
    assert "Defaults that differ from openai-whisper's CLI" in text
    for option in ("--max-line-width", "--no-speech-threshold", "--logprob-threshold", "--min-probability"):
        assert text.count(option) >= 1


@pytest.mark.slow
def test_an_openai_command_line_transcribes(tmp_path, capsys, one_thread):
    code = main(
        [
            "transcribe", str(support.DEMO_WAV), "--word_timestamps", "True", "--output_dir", str(tmp_path),
            "--output_format", "vtt", "--highlight_words", "True", "--temperature_increment_on_fallback", "None",
            "--verbose", "True",
        ]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "-->" in captured.out  # --verbose True prints each segment as it is decoded
    vtt = (tmp_path / "demo.vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT") and "<u>" in vtt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.vtt"]
