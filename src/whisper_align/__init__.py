"""whisper-align: exact word-level timestamps from Whisper models through their cross-attention alignment heads."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_model", "save_model", "__version__"]


def __getattr__(name: str) -> Any:
    # load_model / save_model imported on first use, so `import whisper_align.heads` (or the CLI) needn't load torch
    if name in ("load_model", "save_model"):
        from . import checkpoints

        return getattr(checkpoints, name)
    raise AttributeError(f"module 'whisper_align' has no attribute {name!r}")
