"""``whisper-align view``: a result and its audio as one self-contained HTML page (or a PNG picture).

whisper-align view speech.json speech.wav -o speech.html     click a word to hear it; zoom and scroll
whisper-align view speech.json speech.wav -o speech.png      a static picture (needs matplotlib)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "view",
        help="an HTML page (or PNG) of a result over its audio: click a word to hear it",
        description="Write one self-contained HTML page (no network needed) showing the waveform, the words and "
        "segments on a time axis (click one to play it; zoom with +/- or ctrl+wheel), or, with -o NAME.png, a "
        "static picture. RESULT is the JSON that align or transcribe wrote.",
    )
    parser.add_argument("result", metavar="RESULT", help="result JSON (align -o x.json, transcribe -f json)")
    parser.add_argument("audio", metavar="AUDIO", help="the audio the result was made from")
    parser.add_argument("-o", "--output", help="NAME.html (default: RESULT with .html) or NAME.png")
    parser.add_argument("--title", help="heading of the page (default: the audio's file name)")
    parser.add_argument(
        "--audio-format",
        choices=["auto", "wav", "opus"],
        default="auto",
        help="how the audio is embedded: auto (WAV up to 30 s, Opus beyond: a small page), wav, opus",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..results.viewer import load_result, write_png, write_viewer

    output = Path(args.output) if args.output else Path(args.result).with_suffix(".html")
    result = load_result(args.result)
    if output.suffix.lower() == ".png":
        write_png(result, args.audio, output, title=args.title)
    else:
        write_viewer(result, args.audio, output, title=args.title, audio_format=args.audio_format)
    note = "" if result.has_words else " (no word timestamps in the result: segments only)"
    print(f"wrote {output}: {len(result.words)} words{note}", file=sys.stderr)
    return 0
