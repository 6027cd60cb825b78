"""The ``whisper-align`` command. Each subcommand group lives in its own module with a ``register(subparsers)``
that adds its parser and sets ``func``; nothing in the package imports this."""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import WhisperAlignError
from ..heads import AlignmentHeadsError

# one module per subcommand group, in the order `--help` lists them
SUBCOMMAND_MODULES = ["align", "heads", "transcribe", "evaluate", "view"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisper-align", description="Word-level timestamps from Whisper's cross-attention alignment heads."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit status: 0 done, 1 done but some inputs failed (each reported on stderr),
    2 stopped by an error (bad arguments or input, unwritable output), 130 interrupted."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (WhisperAlignError, AlignmentHeadsError) as error:
        print(f"whisper-align: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file the command could not read or write, not caught closer to it
        where = f"{error.filename}: " if error.filename else ""
        print(f"whisper-align: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("whisper-align: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
