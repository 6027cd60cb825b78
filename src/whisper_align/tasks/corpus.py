"""Align a whole corpus: a JSON-lines manifest in, a JSON-lines file of timed words out.

Short clips are mostly padding when each gets its own 30 s window, so clips are *packed*: consecutive clips go
into one window, separated by a short silence, until it is full. The window is encoded once; every clip is a
:class:`~whisper_align.tasks.align.Piece` whose decoder reads only its own stretch of the window (``isolate``), so
the clips do not see each other's text or audio there (the encoder still hears its neighbours). A clip the model
barely hears, or one that looks cut short, is aligned again in a window of its own, as ``align`` does (see
:mod:`.packing`). Clips longer than a window go through :func:`~whisper_align.tasks.align.align_long`.

**Deterministic runs.** Since a clip's words depend a little on its neighbours, the packing *groups* are fixed by
the manifest alone: consecutive lines in manifest order, each clip's length read from its audio file's header,
whether or not the clip is already done. A resumed run re-aligns every group that has a missing id, whole, and
writes only the missing ids; so a clip gets byte-identical words whether the run was interrupted or not, and the
file ends in manifest order either way.

**Output** (see :mod:`whisper_align.corpus_output`): one line per manifest line, ``{"id", "words"}`` or
``{"id", "error"}``, appended and fsynced per group; a failed write is rolled back, a torn last line is repaired
on resume, a damaged line is reported with its number. Error lines (unreadable audio, text that does not fit, a
malformed manifest line under the id ``line:<n>``) are retried by the next run unless ``retry_errors=False``;
each id appears once in the file.
"""

from __future__ import annotations

import json
import math
import os
import wave
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..alignment.words import AlignmentConfig, WordTiming, resolve_config
from ..checkpoints.tokenizers import get_tokenizer
from ..errors import ManifestError, WhisperAlignError
from ..frontend.audio import N_SAMPLES, N_SAMPLES_PER_TOKEN, SAMPLE_RATE, load_audio
from ..frontend.tokenizer import Tokenizer
from ..model.whisper import Whisper
from ..results.manifest import ManifestProblem, Utterance, scan_manifest
from .align import align_long, check_fits, prepare_text
from .corpus_output import CorpusOutput, Record
from .packing import GAP, GAP_SECONDS, Window, align_packed_window, lay_out

_RESAMPLED_MARGIN = SAMPLE_RATE // 100  # header lengths of resampled or compressed audio may be a little short


@dataclass(frozen=True)
class CorpusEntry:
    """One manifest line as the corpus sees it: its place, the id its output line gets, and the utterance or,
    for a line that cannot be used, the reason."""

    index: int
    id: str
    utterance: Utterance | None
    problem: str | None = None


@dataclass
class _Clip:
    entry: CorpusEntry
    samples: np.ndarray
    tokens: list[int]


@dataclass
class CorpusSummary:
    """What a corpus run did. ``failures`` lists this run's error lines as (id, message); ``cut_short`` the ids
    of this run's clips whose audio ends before their transcript (words marked ``past_end``)."""

    aligned: int = 0
    skipped: int = 0  # already in the output (with words, or with an error kept because retry_errors=False)
    failed: int = 0
    kept_errors: int = 0  # error lines of an earlier run left in place (retry_errors=False)
    failures: list[tuple[str, str]] = field(default_factory=list)
    cut_short: list[str] = field(default_factory=list)


class ClipResult(NamedTuple):
    """One clip's outcome: its id, the error message (None when it worked) and its output line (no newline)."""

    id: str
    error: str | None
    line: str


@dataclass
class CorpusRun:
    """What aligning a group needs, set up once per run (or once per worker of a distributed run)."""

    model: Whisper
    tokenizer: Tokenizer
    config: AlignmentConfig
    pack: bool = True
    probabilities: bool = True
    realign: bool = True  # a barely heard or cut-looking packed clip is aligned again alone (see packing)

    @classmethod
    def create(
        cls,
        model: Whisper,
        language: str | None = None,
        config: AlignmentConfig | None = None,
        pack: bool = True,
        probabilities: bool = True,
        realign: bool = True,
    ) -> CorpusRun:
        """The run ``align_corpus`` makes of its arguments: the model's tokenizer and its resolved config."""
        tokenizer = get_tokenizer(model, language=language)
        config = resolve_config(config, model.alignment_time_shift)
        return cls(model, tokenizer, config, pack, probabilities, realign)


# ---- the plan: fixed by the manifest alone ---------------------------------------------------------------------


def manifest_entries(manifest: str | os.PathLike[str], *, text_required: bool = True) -> list[CorpusEntry]:
    """Every non-blank manifest line in order, a malformed one included (with its problem).

    A malformed line's output id is its own id when that can be read and no other line uses it, else
    ``line:<n>``. Raises :class:`ManifestError` for a missing or unreadable file, or one without any line.
    ``text_required=False`` reads a manifest to transcribe (lines need only ``id`` and ``audio``).
    """
    items = scan_manifest(manifest, text_required=text_required)
    if not items:
        raise ManifestError(f"manifest {os.fspath(manifest)!r} holds no utterances")
    counts: dict[str, int] = {}
    for item in items:
        if item.id is not None:
            counts[item.id] = counts.get(item.id, 0) + 1
    entries = []
    for index, item in enumerate(items):
        if isinstance(item, Utterance):
            entries.append(CorpusEntry(index, item.id, item))
            continue
        entry_id = item.id if item.id is not None and counts[item.id] == 1 else _line_id(item, counts)
        counts[entry_id] = counts.get(entry_id, 0) + 1
        entries.append(CorpusEntry(index, entry_id, None, item.message))
    return entries


def _line_id(problem: ManifestProblem, taken: dict[str, int]) -> str:
    entry_id = f"line:{problem.line}"
    while entry_id in taken:  # only if the manifest itself uses such ids
        entry_id += "+"
    return entry_id


def estimated_samples(path: Path) -> int:
    """The number of 16 kHz samples a clip will have, from its file's header (no decoding); 0 when unknown.

    Exact for WAV at 16 kHz; for other rates and formats rounded up by 10 ms. Only the packing plan uses this,
    so it has to be a function of the file alone, not exact: windows are laid out from the decoded samples.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            frames, rate = wav.getnframes(), wav.getframerate()
        if rate == SAMPLE_RATE:
            return frames
        return -(-frames * SAMPLE_RATE // rate) + _RESAMPLED_MARGIN
    except (wave.Error, EOFError, OSError, RuntimeError):  # RuntimeError: a chunk size past the end of the file
        pass
    if not path.is_file():
        return 0
    import av

    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                return 0
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
            else:
                return 0
    except (av.error.FFmpegError, OSError, ValueError):
        return 0
    return max(0, math.ceil(seconds * SAMPLE_RATE)) + _RESAMPLED_MARGIN


def plan_groups(
    entries: Iterable[CorpusEntry], pack: bool = True, estimate: Callable[[Path], int] = estimated_samples
) -> Iterator[list[CorpusEntry]]:
    """Consecutive entries whose clips fill one 30 s window (with 0.5 s gaps), by the lengths ``estimate`` gives.

    A clip longer than a window is a group of its own; lines without audio to measure (malformed, or a file
    whose length is unknown) join the group they fall in. Without ``pack`` every clip is its own group.
    """
    group: list[CorpusEntry] = []
    length = 0  # estimated samples of the group's clips and gaps
    for entry in entries:
        width = estimate(entry.utterance.audio) if entry.utterance is not None else 0
        if width and length and (width > N_SAMPLES or not pack or length + GAP + width > N_SAMPLES):
            yield group
            group, length = [], 0
        group.append(entry)
        if width > N_SAMPLES:
            yield group
            group, length = [], 0
        elif width:
            length += (GAP if length else 0) + width
    if group:
        yield group


# ---- aligning -------------------------------------------------------------------------------------------------


def error_line(clip_id: str, error: str) -> str:
    """The output line of a clip that failed: ``{"id", "error"}``."""
    return json.dumps({"id": clip_id, "error": error}, ensure_ascii=False)


def _words_line(clip_id: str, words: list[WordTiming]) -> str:
    """The output line of an aligned clip: ``{"id", "words"}``, times to the millisecond. A word the audio ends
    before carries ``"past_end": true`` (as in a result's JSON), so a truncated file is never read as heard."""
    rows = []
    for w in words:
        row = {
            "word": w.word,
            "start": round(w.start, 3),
            "end": round(w.end, 3),
            "probability": round(w.probability, 4),
        }
        rows.append({**row, "past_end": True} if w.past_end else row)
    return json.dumps({"id": clip_id, "words": rows}, ensure_ascii=False)


def _prepare(run: CorpusRun, entry: CorpusEntry) -> _Clip:
    """Audio and tokens of one entry; a typed error says why it cannot be aligned."""
    if entry.utterance is None:
        raise ManifestError(entry.problem or f"manifest line {entry.index + 1} cannot be used")
    samples = load_audio(entry.utterance.audio, repair=not run.config.conformance)
    tokens = prepare_text(run.tokenizer, entry.utterance.text)
    if len(samples) <= N_SAMPLES:
        check_fits(len(tokens), max(1, len(samples) // N_SAMPLES_PER_TOKEN), run.model, run.tokenizer)
    return _Clip(entry, samples, tokens)


def _align_item(run: CorpusRun, item: Window | _Clip) -> list[list | str]:
    """Words of each clip of a window (or of one long clip), or the error message for all of them."""
    try:
        if isinstance(item, _Clip):
            return [align_long(run.model, run.tokenizer, item.samples, item.tokens, run.config, run.probabilities)]
        return list(align_packed_window(run.model, run.tokenizer, item, run.config, run.probabilities, run.realign))
    except WhisperAlignError as error:
        return [str(error)] * (1 if isinstance(item, _Clip) else len(item.clips))


def align_group(run: CorpusRun, group: list[CorpusEntry], done: set[str]) -> list[ClipResult]:
    """The result of each entry of ``group`` (one packing group of :func:`plan_groups`) not in ``done``, in
    manifest order. Both engines, the single-process one and the Ray one, align their groups with this.

    The whole group is laid out and aligned as in a run from scratch (done clips included), so the missing
    clips get exactly the words an uninterrupted run gives them; windows without a missing clip are skipped.
    """
    results: dict[int, ClipResult] = {}
    clips: dict[int, _Clip] = {}
    for entry in group:
        if entry.id not in done:
            try:
                clips[entry.index] = _prepare(run, entry)
            except WhisperAlignError as error:
                results[entry.index] = ClipResult(entry.id, str(error), error_line(entry.id, str(error)))
    if clips:
        for entry in group:
            if entry.id in done:
                try:
                    clips[entry.index] = _prepare(run, entry)
                except WhisperAlignError:
                    pass  # it failed before too (or its input changed): it takes no place
        ordered = [clips[entry.index] for entry in group if entry.index in clips]
        for item in lay_out(ordered, run.pack):
            members = [item] if isinstance(item, _Clip) else item.clips
            if all(clip.entry.id in done for clip in members):
                continue
            for clip, words in zip(members, _align_item(run, item)):
                entry = clip.entry
                if entry.id not in done:
                    if isinstance(words, str):  # the clip failed: its error message
                        results[entry.index] = ClipResult(entry.id, words, error_line(entry.id, words))
                    else:
                        results[entry.index] = ClipResult(entry.id, None, _words_line(entry.id, words))
    return [results[index] for index in sorted(results)]


# ---- the run --------------------------------------------------------------------------------------------------


def settle_output(output: CorpusOutput, retry_errors: bool) -> dict[str, bool]:
    """Keep one line per id (words before errors), dropping error lines that will be retried; {id: has words}."""
    chosen = output.counted()
    keep = [r for r in output.records if chosen[r.id] is r and (r.ok or not retry_errors)]
    if len(keep) != len(output.records):
        output.rewrite(keep)
    return {r.id: r.ok for r in keep}


def put_in_manifest_order(output: CorpusOutput, entries: list[CorpusEntry]) -> None:
    """Rewrite the file in manifest order if a resumed run appended out of it; ids not in the manifest go last."""
    by_id: dict[str, Record] = {r.id: r for r in output.records}
    listed = {entry.id for entry in entries}
    order = [by_id[entry.id] for entry in entries if entry.id in by_id]
    order += [r for r in output.records if r.id not in listed]
    if order != output.records:
        output.rewrite(order)


def check_corpus_paths(manifest: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Fail early, before a model is loaded: the manifest must be readable and ``out`` writable and, if it
    exists, a result file of an earlier run (a torn last line is repaired). Raises the typed errors of
    :func:`align_corpus`."""
    manifest_entries(manifest)
    CorpusOutput.open(out).close()


def align_corpus(
    model: Whisper,
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    language: str | None = None,
    config: AlignmentConfig | None = None,
    pack: bool = True,
    probabilities: bool = True,
    progress: bool = True,
    retry_errors: bool = True,
    realign: bool = True,
) -> CorpusSummary:
    """Align every line of ``manifest`` ({"id", "audio", "text"}) and write the results to ``out`` (JSON lines).

    Lines: ``{"id", "words": [{"word", "start", "end", "probability"}]}`` with times in seconds from the start
    of the clip (``"past_end": true`` on a word the audio ends before), or ``{"id", "error"}`` (a malformed
    manifest line gets one too, under its id or ``line:<n>``).
    Ids already in ``out`` with words are skipped, so a rerun resumes, with the same words a single run gives;
    error lines are retried (unless ``retry_errors`` is False). ``realign=False`` keeps a packed clip the model
    barely hears, or whose end looks cut short, packed (faster; its words then depend on its neighbours, and
    words past the end of a cut clip escape the flag more often). The file ends with one line per id, in
    manifest order. Raises :class:`ManifestError` for an unreadable manifest, :class:`OutputError` when ``out``
    cannot be written (a failed write leaves no partial line) and :class:`DamagedOutputError` for an existing
    ``out`` with a line that is not a result.
    """
    entries = manifest_entries(manifest)
    run = CorpusRun.create(model, language, config, pack, probabilities, realign)

    def produce(done: set[str]) -> Iterator[list[ClipResult]]:
        for group in plan_groups(entries, pack):
            if not all(entry.id in done for entry in group):
                yield align_group(run, group, done)

    return write_results(entries, out, produce, retry_errors=retry_errors, progress=progress, desc="aligning")


def write_results(
    entries: list[CorpusEntry],
    out: str | os.PathLike[str],
    produce: Callable[[set[str]], Iterable[list[ClipResult]]],
    *,
    retry_errors: bool = True,
    progress: bool = True,
    desc: str = "aligning",
) -> CorpusSummary:
    """The resumable part of a corpus run, shared by every task and engine: settle ``out`` (one line per id,
    error lines dropped when ``retry_errors``), call ``produce`` with the ids already done, append each batch of
    results it yields (fsynced, all or nothing), then put the file in manifest order.

    ``produce`` may yield its batches in any order, each holding only ids that are not done, each id once.
    """
    from tqdm import tqdm

    with CorpusOutput.open(out) as output:
        written = settle_output(output, retry_errors)
        done = set(written)
        summary = CorpusSummary(skipped=sum(entry.id in done for entry in entries))
        summary.kept_errors = sum(written.get(entry.id) is False for entry in entries)
        bar = tqdm(total=len(entries) - summary.skipped, unit="clip", disable=not progress, desc=desc)
        for results in produce(done):
            output.append(result.line for result in results)
            for result in results:
                if result.error is None:
                    summary.aligned += 1
                    # read from the line: it is all a result carries back from either engine
                    if any(w.get("past_end") for w in json.loads(result.line).get("words", [])):
                        summary.cut_short.append(result.id)
                else:
                    summary.failed += 1
                    summary.failures.append((result.id, result.error))
            bar.update(len(results))
        bar.close()
        put_in_manifest_order(output, entries)
    return summary


def done_ids(out_path: str | os.PathLike[str]) -> set[str]:
    """Ids already written to ``out_path`` (with words or an error); a torn last line is repaired first."""
    if not Path(out_path).exists():
        return set()
    with CorpusOutput.open(out_path) as output:
        return {record.id for record in output.records}


__all__ = [
    "align_corpus",
    "align_group",
    "error_line",
    "put_in_manifest_order",
    "settle_output",
    "write_results",
    "ClipResult",
    "CorpusRun",
    "align_packed_window",
    "check_corpus_paths",
    "done_ids",
    "estimated_samples",
    "manifest_entries",
    "plan_groups",
    "CorpusEntry",
    "CorpusSummary",
    "GAP_SECONDS",
]
