"""Alignment heads, usable without a model or torch: the official heads of the 14 model names, openai's dump
format, pairs, and the forms other tools use (Hugging Face and CTranslate2 JSON, whisper.cpp).

``codec`` holds the official heads and the mask / dump / pairs conversions; ``formats`` the other tools' forms and
the any-form reader. Scoring heads and finding new ones (``scoring``, ``discovery``) need a model and torch, so they
are imported only by name (``whisper_align.heads.discovery``).
"""

from .codec import (
    ALIGNMENT_HEADS,
    MAX_TEXT_HEADS,
    MAX_TEXT_LAYERS,
    AlignmentHeadsError,
    OfficialHeads,
    decode,
    encode,
    gunzip_dump,
    gzip_mtime,
    is_official_name,
    mask_to_pairs,
    official_heads,
    official_matches,
    official_shape_for_size,
    pairs_to_mask,
)
from .formats import (
    JSON_KEY,
    find_json_heads_file,
    format_grid,
    from_whisper_cpp,
    parse_colon_pairs,
    parse_pairs_text,
    read_json_heads,
    resolve_heads,
    to_whisper_cpp,
    whisper_cpp_preset,
    write_json_heads,
)

__all__ = [
    "ALIGNMENT_HEADS",
    "AlignmentHeadsError",
    "JSON_KEY",
    "MAX_TEXT_HEADS",
    "MAX_TEXT_LAYERS",
    "OfficialHeads",
    "decode",
    "encode",
    "find_json_heads_file",
    "format_grid",
    "from_whisper_cpp",
    "gunzip_dump",
    "gzip_mtime",
    "is_official_name",
    "mask_to_pairs",
    "official_heads",
    "official_matches",
    "official_shape_for_size",
    "pairs_to_mask",
    "parse_colon_pairs",
    "parse_pairs_text",
    "read_json_heads",
    "resolve_heads",
    "to_whisper_cpp",
    "whisper_cpp_preset",
    "write_json_heads",
]
