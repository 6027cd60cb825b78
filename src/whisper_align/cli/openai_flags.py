"""openai-whisper's command-line spellings, accepted by ``whisper-align transcribe`` and ``align``.

openai-whisper's CLI writes options with underscores (``--output_dir``, ``--word_timestamps True``), takes
``True``/``False`` after on/off options and ``None`` for "no value" (``--beam_size None``); ours uses dashes and
bare flags (``--output-dir``, ``--word-timestamps``). :func:`accept_openai_spellings` makes a subcommand's parser
read both, without listing the underscore twins in ``--help``:

- ``--name_with_underscores`` is the option ``--name-with-underscores``, or the on/off option whose destination is
  ``name_with_underscores`` (``--condition_on_previous_text`` is ``--condition-on-previous-text``);
- an on/off option followed by ``True`` or ``False`` (or written ``--flag=True``) is switched on or off: spelled
  openai's way it must have the value, as in openai-whisper; spelled ours, the value is optional, so
  ``--verbose False`` and ``--word-timestamps talk.wav`` both work;
- :func:`optional_int` and :func:`optional_float` read ``None`` as no value, for options whose openai twin does.

The translation runs on the arguments before argparse sees them (see :func:`translate`), so argparse's errors,
abbreviations and ``--help`` stay as they are.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

BOOL_WORDS = {"True": True, "False": False, "true": True, "false": False}
NONE_WORDS = frozenset({"None", "none"})


def optional_int(text: str) -> int | None:
    """An ``int``, or None for ``None`` (openai-whisper's ``optional_int``)."""
    return None if text in NONE_WORDS else int(text)


def optional_float(text: str) -> float | None:
    """A ``float``, or None for ``None`` (openai-whisper's ``optional_float``)."""
    return None if text in NONE_WORDS else float(text)


def accept_openai_spellings(parser: argparse.ArgumentParser) -> None:
    """Let ``parser`` (a subcommand's) read openai-whisper's spellings of its options (see the module docstring).

    argparse hands a subcommand its arguments through the subparser's ``parse_known_args``, so that is where the
    translation goes in; the parser object is otherwise unchanged.
    """
    parse_known_args = parser.parse_known_args

    def translated(args: Sequence[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        return parse_known_args(None if args is None else translate(parser, list(args)), namespace)

    parser.parse_known_args = translated  # type: ignore[method-assign,assignment]


def translate(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """``args`` with openai-whisper's spellings of ``parser``'s options turned into ours."""
    out: list[str] = []
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        if token == "--":
            return out + args[index - 1 :]
        name, equals, value = token.partition("=")
        has_value = bool(equals)
        action = _find(parser, name) if token.startswith("--") else None
        if action is None:
            out.append(token)
            continue
        if action.nargs != 0:  # an option that takes a value: only its name changes
            canonical = _canonical(action, name)
            out.append(f"{canonical}={value}" if has_value else canonical)
            continue
        openai_spelling = name not in action.option_strings
        if not has_value and index < len(args) and args[index] in BOOL_WORDS:
            value, has_value = args[index], True
            index += 1
        if not has_value:
            if openai_spelling:
                parser.error(f"{name} takes a value as in openai-whisper: {name} True or {name} False")
            out.append(_canonical(action, name))
        elif value not in BOOL_WORDS:
            parser.error(f"{name} expects True or False, not {value!r}")
        else:
            out.extend(_switch(action, BOOL_WORDS[value]))
    return out


def _find(parser: argparse.ArgumentParser, name: str) -> argparse.Action | None:
    """The action an option name means: as written, with dashes for underscores, or by its destination."""
    known = parser._option_string_actions  # argparse's own table of option strings
    for candidate in (name, name.replace("_", "-")):
        if candidate in known:
            return known[candidate]
    dest = name.lstrip("-")
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return action
    return None


def _canonical(action: argparse.Action, name: str) -> str:
    """The option string to hand argparse: ``name`` if it is one of the action's, else its first long one."""
    if name in action.option_strings:
        return name
    dashed = name.replace("_", "-")
    if dashed in action.option_strings:
        return dashed
    return next(s for s in action.option_strings if s.startswith("--"))


def _switch(action: argparse.Action, on: bool) -> list[str]:
    """The arguments that set an on/off ``action`` to ``on`` (none when that is what it is without them)."""
    if isinstance(action, argparse.BooleanOptionalAction):
        positive = next(s for s in action.option_strings if s.startswith("--") and not s.startswith("--no-"))
        return [positive if on else "--no-" + positive[2:]]
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        sets = isinstance(action, argparse._StoreTrueAction)
        return [_canonical(action, "")] if on == sets else []
    return [_canonical(action, "")] if on else []  # another flag (count, help...): True means "give it"


__all__ = ["BOOL_WORDS", "accept_openai_spellings", "optional_float", "optional_int", "translate"]
