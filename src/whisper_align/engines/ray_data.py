"""Callable classes for Ray Data's ``Dataset.map_batches``: align or transcribe a dataset of clips.

Both load their model once, in ``__init__`` (once per actor), and take batches in the ``"numpy"`` format:

* :class:`RayAligner`: rows ``{"id", "audio", "text"}`` -> rows ``{"id", "error", "line", "words"}``;
* :class:`RayTranscriber`: rows ``{"id", "audio"}`` -> rows
  ``{"id", "error", "line", "text", "language", "segments", "words"}``.

``audio`` is a file path (as a string, readable where the actor runs) or the file's bytes (e.g. the ``bytes`` of
``ray.data.read_binary_files``). ``line`` is exactly the JSON line the single-process engine writes for the clip
(``align --manifest`` / ``transcribe --manifest``); the other columns are its fields, ``None`` where the line
has none (a block whose rows all worked may hand its ``error`` column on as nulls, read back as None or NaN:
a row failed exactly when its ``error`` is a string). A bad row (unreadable audio, text that does not fit, a
malformed manifest line given as ``problem``) becomes a row with its ``error`` message, the one the
single-process engine writes, instead of failing the job.

Packing (alignment): clips go into 30 s windows exactly as in ``align --manifest``, through the same function
(:func:`~whisper_align.tasks.corpus.align_group`). The packing groups come from an optional ``group`` column
(consecutive rows with the same value form one group, as :func:`~whisper_align.tasks.corpus.plan_groups` laid
them out; ``group_size`` lets the actor check that no group was cut by the batching), or, without it, are planned
over the batch's rows as ``align --manifest`` plans the same lines. Rows with ``done`` set are only their group's
context, as in a resumed run: they are laid out, and get no output row. :mod:`whisper_align.engines.ray_run`
builds such datasets from a manifest so that a Ray run gives the single-process run's words to the byte.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..alignment.words import AlignmentConfig
from ..errors import EngineError, ModelLoadError, QuantizationError
from ..model.whisper import Whisper
from ..results.manifest import Utterance
from ..tasks.corpus import ClipResult, CorpusEntry, CorpusRun, align_group, plan_groups
from ..tasks.transcribe_corpus import check_options, transcribe_entry

Batch = Mapping[str, Any]  # column name -> numpy array (Ray Data's "numpy" batch format) or list


@dataclass(frozen=True)
class ModelSpec:
    """The model a worker loads, by name: official name or checkpoint path, alignment heads, device, int8.

    On a CUDA device the weights are loaded in float16; on the CPU in float32 (or int8 with ``int8``).
    Obvious mistakes (int8 on a GPU, a path that does not exist) raise at construction, on the driver.
    """

    name: str = "tiny.en"
    heads: str | None = None
    device: str = "cpu"
    int8: bool = False

    def __post_init__(self) -> None:
        from ..checkpoints.names import OFFICIAL_NAMES

        if self.int8 and not self.device.startswith("cpu"):
            raise QuantizationError(f"int8 weights run on the CPU only, not on {self.device}; drop --int8 there")
        if self.name not in OFFICIAL_NAMES and not Path(self.name).expanduser().exists():
            raise ModelLoadError(
                f"{self.name!r} is neither an existing file or folder nor a known model name; known names: "
                f"{', '.join(OFFICIAL_NAMES)}"
            )

    def load(self) -> Whisper:
        """Load the model, apply the heads and int8 weights (what ``whisper-align align`` does with its flags)."""
        from ..checkpoints import load_model
        from ..heads import resolve_heads

        dtype = torch.float16 if torch.device(self.device).type == "cuda" else torch.float32
        model = load_model(self.name, device=self.device, dtype=dtype)
        if self.heads:
            mask = resolve_heads(self.heads, model.dims.n_text_layer, model.dims.n_text_head)
            model.set_alignment_head_pairs([tuple(p) for p in zip(*mask.nonzero())])
        if self.int8:
            from ..model.int8 import quantize_int8

            model = quantize_int8(model)
        return model


def _spec(model: ModelSpec | str) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else ModelSpec(model)


class RayAligner:
    """Forced alignment of a batch of clips, for ``map_batches`` (see the module's docstring for the columns).

    ``model`` is a :class:`ModelSpec` or a model name; ``language``, ``config`` (an
    :class:`~whisper_align.alignment.words.AlignmentConfig`, e.g. its conformance mode), ``pack``,
    ``probabilities`` and ``realign`` are ``align --manifest``'s; ``threads`` is the actor's
    torch threads (one per actor is the fastest use of a CPU's cores: run as many actors as cores).
    """

    def __init__(
        self,
        model: ModelSpec | str = "tiny.en",
        *,
        language: str | None = None,
        config: AlignmentConfig | None = None,
        pack: bool = True,
        probabilities: bool = True,
        threads: int | None = 1,
        realign: bool = True,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.pack = pack
        self.run = CorpusRun.create(_spec(model).load(), language, config, pack, probabilities, realign)

    def __call__(self, batch: Batch) -> dict[str, np.ndarray]:
        """One output row per input row that is not ``done``, in input order."""
        with tempfile.TemporaryDirectory(prefix="whisper-align-") as folder:
            entries, masks = _entries(batch, Path(folder), text_required=True)
            done = {entries[k].id for k in range(len(entries)) if _flag(batch, "done", k)}
            results = []
            for group in _groups(batch, entries, self.pack):
                results.extend(align_group(self.run, group, done))
        results = [_unmask(result, masks) for result in results]
        return _columns(results, words=[_field(result, "words") for result in results])


class RayTranscriber:
    """Transcription with word timestamps of a batch of clips, one by one, for ``map_batches``.

    ``options`` are :func:`~whisper_align.tasks.transcribe.transcribe`'s (``language``, ``beam_size``,
    ``temperature``, ...), as ``transcribe --manifest`` passes them; ``model`` and ``threads`` as for
    :class:`RayAligner`.
    """

    def __init__(self, model: ModelSpec | str = "tiny.en", *, threads: int | None = 1, **options: Any) -> None:
        check_options(options)
        if threads:
            torch.set_num_threads(threads)
        self.options = options
        self.model = _spec(model).load()

    def __call__(self, batch: Batch) -> dict[str, np.ndarray]:
        """One output row per input row that is not ``done``, in input order."""
        with tempfile.TemporaryDirectory(prefix="whisper-align-") as folder:
            entries, masks = _entries(batch, Path(folder), text_required=False)
            results = [
                transcribe_entry(self.model, entry, self.options)
                for k, entry in enumerate(entries)
                if not _flag(batch, "done", k)
            ]
        results = [_unmask(result, masks) for result in results]
        parsed = [json.loads(result.line) for result in results]
        segments = [line.get("segments") for line in parsed]
        return _columns(
            results,
            text=[line.get("text") for line in parsed],
            language=[line.get("language") for line in parsed],
            segments=segments,
            words=[None if s is None else [w for segment in s for w in segment.get("words", [])] for s in segments],
        )


# ---- rows in, rows out --------------------------------------------------------------------------------------------


def _value(batch: Batch, column: str, k: int) -> Any:
    """Row ``k`` of ``column`` as a plain Python value; None when the column is missing or the value null."""
    values = batch.get(column)
    if values is None:
        return None
    value = values[k]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):  # a column of nulls may arrive as NaN
        return None
    return value


def _flag(batch: Batch, column: str, k: int) -> bool:
    return bool(_value(batch, column, k))


def _entries(batch: Batch, folder: Path, text_required: bool) -> tuple[list[CorpusEntry], dict[str, str]]:
    """The batch's rows as corpus entries (position = index); audio given as bytes is written to ``folder``.

    Also returns {temporary path: what to call it in messages} for those bytes.
    """
    if "id" not in batch:
        raise EngineError(f"the batch has no 'id' column (columns: {', '.join(batch)}); give each row an id")
    entries: list[CorpusEntry] = []
    masks: dict[str, str] = {}
    for k in range(len(batch["id"])):
        clip_id = str(_value(batch, "id", k))
        problem, audio, text = _value(batch, "problem", k), _value(batch, "audio", k), _value(batch, "text", k)
        if problem:
            pass
        elif not isinstance(audio, (str, bytes, bytearray)) or not audio:
            problem = f"row {clip_id!r}: no 'audio' (give a file path or the file's bytes)"
        elif text_required and not isinstance(text, str):
            problem = f"row {clip_id!r}: no 'text' to align (give the transcript as a string)"
        if problem:
            entries.append(CorpusEntry(k, clip_id, None, str(problem)))
            continue
        if isinstance(audio, (bytes, bytearray)):
            path = folder / str(k)
            path.write_bytes(bytes(audio))
            masks[os.fspath(path)] = f"<the audio bytes of {clip_id}>"
        else:
            path = Path(audio)
        entries.append(CorpusEntry(k, clip_id, Utterance(clip_id, path, text if isinstance(text, str) else "")))
    return entries, masks


def _groups(batch: Batch, entries: list[CorpusEntry], pack: bool) -> Iterator[list[CorpusEntry]]:
    """The packing groups: runs of equal ``group`` values, checked against ``group_size``; else planned here."""
    if batch.get("group") is None:
        yield from plan_groups(entries, pack)
        return
    start = 0
    for k in range(1, len(entries) + 1):
        if k < len(entries) and _value(batch, "group", k) == _value(batch, "group", start):
            continue
        expected = _value(batch, "group_size", start)
        if expected is not None and expected != k - start:
            raise EngineError(
                f"packing group {_value(batch, 'group', start)} reached this batch with {k - start} of its "
                f"{expected} clips; map with batch_size=None over blocks that hold whole groups "
                "(whisper_align.engines.ray_run builds such datasets)"
            )
        yield entries[start:k]
        start = k


def _unmask(result: ClipResult, masks: dict[str, str]) -> ClipResult:
    """Name audio given as bytes in an error message instead of its temporary file."""
    if result.error is None:
        return result
    error, line = result.error, result.line
    for path, label in masks.items():
        if path in error:
            error = error.replace(path, label)
            line = line.replace(path, json.dumps(label, ensure_ascii=False)[1:-1])
    return ClipResult(result.id, error, line)


def _field(result: ClipResult, name: str) -> Any:
    return None if result.error is not None else json.loads(result.line).get(name)


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array (np.array would turn equal-length lists into a 2-D array)."""
    array = np.empty(len(values), dtype=object)
    for k, value in enumerate(values):
        array[k] = value
    return array


def _columns(results: list[ClipResult], **extra: Sequence[Any]) -> dict[str, np.ndarray]:
    columns = {
        "id": _objects([result.id for result in results]),
        "error": _objects([result.error for result in results]),
        "line": _objects([result.line for result in results]),
    }
    columns.update({name: _objects(values) for name, values in extra.items()})
    return columns


__all__ = ["ModelSpec", "RayAligner", "RayTranscriber"]
