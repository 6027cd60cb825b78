"""Where a checkpoint keeps its alignment metadata (heads, time shift, boundary refinement), and rewriting it.

An openai ``.pt`` holds them inside the file (the model is saved again); a CTranslate2 folder in ``config.json``
and a Hugging Face folder in ``generation_config.json``, which are read, changed and replaced atomically.
Used by ``heads find --write`` and ``heads refine --write``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..files import replacing

METADATA_FILES = {"ctranslate2": "config.json", "huggingface": "generation_config.json"}


def metadata_file(checkpoint_format: str | None, path: Path) -> Path | None:
    """The JSON file beside the checkpoint at ``path`` that holds its metadata, or None when the format keeps
    it elsewhere (openai: inside the .pt) or nowhere we can write."""
    name = METADATA_FILES.get(checkpoint_format or "")
    if name is None:
        return None
    return (path if path.is_dir() else path.parent) / name


def rewrite_json(path: Path, update: Callable[[dict[str, Any]], None]) -> None:
    """Read the JSON object at ``path`` (an empty one if there is no file), let ``update`` change it in place,
    and write it back atomically (a crash leaves the old file or the new one, never half of one)."""
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    update(config)
    with replacing(path) as temp:
        Path(temp).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


__all__ = ["METADATA_FILES", "metadata_file", "rewrite_json"]
