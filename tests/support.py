"""Paths the tests share: the repository, the bundled samples and the labelled evaluation data.

The evaluation data lives outside the repository (``../shared/eval`` beside the checkout, or wherever
``WHISPER_ALIGN_EVAL`` points); it is never copied in.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DEMO_WAV = SAMPLES / "demo.wav"
EVAL = Path(os.environ.get("WHISPER_ALIGN_EVAL") or ROOT.parent / "shared" / "eval").resolve()
TIMIT_DIR = EVAL / "timit-dev"
TIMIT = TIMIT_DIR / "manifest.jsonl"
FESTIVAL = EVAL / "festival" / "manifest.jsonl"

needs_eval = pytest.mark.skipif(not TIMIT.is_file(), reason=f"the evaluation data is not at {EVAL}")
