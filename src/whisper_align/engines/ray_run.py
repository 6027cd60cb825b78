"""Run a manifest on Ray: a local Ray on this machine, or a cluster (``address``), with the single-process
engine's output file and rules.

The driver (this process) reads the manifest, plans the packing groups (from the audio files' headers, as
``align --manifest`` does), and turns every group that still has a missing id into rows of a Ray dataset, whole
groups per block. Workers (:class:`~whisper_align.engines.ray_data.RayAligner` /
:class:`~whisper_align.engines.ray_data.RayTranscriber` actors, each with its own model) take one block per call.
The driver streams the results back and appends them per block with the single-process engine's writer
(:func:`~whisper_align.tasks.corpus.write_results`): each id once, all-or-nothing appends, a rerun resumes, the
file ends in manifest order. So both engines write the same file, byte for byte.

Audio paths must be readable where the workers run (a shared file system on a cluster); the manifest's paths
are made absolute first. Each worker asks Ray for ``cpus_per_worker`` CPUs (0.5 by default: a whole CPU each
would leave Ray none for its own tasks on a small machine, and the run would stall) and ``num_gpus`` GPUs, and
decodes with one torch thread on the CPU.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .. import errors
from ..alignment.words import AlignmentConfig
from ..errors import EngineError, WhisperAlignError
from ..tasks.corpus import ClipResult, CorpusEntry, CorpusSummary, manifest_entries, plan_groups, write_results
from ..tasks.transcribe_corpus import check_options
from .ray_data import ModelSpec, RayAligner, RayTranscriber

GROUPS_PER_BLOCK = 4  # packing groups (30 s windows) per block: one worker call, one append to the output
CLIPS_PER_BLOCK = 4  # clips per block when transcribing

_COLUMNS = ["id", "audio", "text", "problem", "done", "group", "group_size"]


@dataclass(frozen=True)
class Cluster:
    """Where a Ray run goes and how wide: ``address`` of a running cluster (None: start a local Ray on this
    machine), ``workers`` model actors (None: one per CPU, or per ``num_gpus`` share of the GPUs), GPUs and
    CPUs that each worker asks Ray for."""

    address: str | None = None
    workers: int | None = None
    num_gpus: float = 0.0
    cpus_per_worker: float = 0.5

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise EngineError(f"--workers must be at least 1, got {self.workers}")
        if self.num_gpus < 0 or self.cpus_per_worker <= 0:
            raise EngineError("GPUs per worker must be >= 0 and CPUs per worker > 0")


def align_on_ray(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: ModelSpec,
    cluster: Cluster = Cluster(),
    *,
    language: str | None = None,
    config: AlignmentConfig | None = None,
    pack: bool = True,
    probabilities: bool = True,
    retry_errors: bool = True,
    progress: bool = True,
    realign: bool = True,
) -> CorpusSummary:
    """``align_corpus`` on Ray: the same lines in ``out``, the same resume rules, the same errors for the
    manifest and the output; :class:`EngineError` when Ray is missing or the cluster cannot run the workers."""
    entries = manifest_entries(manifest)
    kwargs = dict(
        model=model, language=language, config=config, pack=pack, probabilities=probabilities, realign=realign
    )

    def produce(done: set[str]) -> Iterator[list[ClipResult]]:
        tables = _group_tables(entries, done, pack)
        if tables:
            yield from _run(tables, RayAligner, kwargs, model, cluster)

    return write_results(entries, out, produce, retry_errors=retry_errors, progress=progress, desc="aligning")


def transcribe_on_ray(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: ModelSpec,
    cluster: Cluster = Cluster(),
    *,
    retry_errors: bool = True,
    progress: bool = True,
    **options: Any,
) -> CorpusSummary:
    """``transcribe_corpus`` on Ray (``options`` are :func:`~whisper_align.tasks.transcribe.transcribe`'s)."""
    check_options(options)
    entries = manifest_entries(manifest, text_required=False)

    def produce(done: set[str]) -> Iterator[list[ClipResult]]:
        missing = [entry for entry in entries if entry.id not in done]
        tables = [_table(missing[k : k + CLIPS_PER_BLOCK]) for k in range(0, len(missing), CLIPS_PER_BLOCK)]
        if tables:
            yield from _run(tables, RayTranscriber, dict(options, model=model), model, cluster)

    return write_results(entries, out, produce, retry_errors=retry_errors, progress=progress, desc="transcribing")


# ---- the dataset ---------------------------------------------------------------------------------------------------


def _group_tables(entries: list[CorpusEntry], done: set[str], pack: bool) -> list[Any]:
    """Arrow tables of :data:`GROUPS_PER_BLOCK` whole packing groups each, for the groups with a missing id."""
    pending = [group for group in plan_groups(entries, pack) if not all(entry.id in done for entry in group)]
    tables = []
    for k in range(0, len(pending), GROUPS_PER_BLOCK):
        rows = [
            (entry, entry.id in done, number, len(group))
            for number, group in enumerate(pending[k : k + GROUPS_PER_BLOCK], start=k)
            for entry in group
        ]
        tables.append(_table([row[0] for row in rows], [row[1:] for row in rows]))
    return tables


def _table(entries: list[CorpusEntry], grouping: list[tuple[bool, int, int]] | None = None) -> Any:
    """One block: the entries' rows (absolute audio paths), with their (done, group, group size) if given."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {
        "id": [entry.id for entry in entries],
        "audio": [os.fspath(entry.utterance.audio) if entry.utterance else None for entry in entries],
        "text": [entry.utterance.text if entry.utterance else None for entry in entries],
        "problem": [entry.problem for entry in entries],
    }
    types = [pa.string()] * 4 + [pa.bool_(), pa.int64(), pa.int64()]
    if grouping is not None:
        for name, values in zip(_COLUMNS[4:], zip(*grouping)):
            columns[name] = list(values)
    else:
        types = types[:4]
    schema = pa.schema(list(zip(_COLUMNS, types))[: len(columns)])
    return pa.table(columns, schema=schema)


# ---- running it ----------------------------------------------------------------------------------------------------


def _run(
    tables: list[Any], worker: type, kwargs: dict[str, Any], model: ModelSpec, cluster: Cluster
) -> Iterator[list[ClipResult]]:
    """Map the blocks with ``worker`` actors and yield each block's results as they come back."""
    with _session(cluster) as ray:
        workers = min(_workers(ray, model, cluster), len(tables))  # a worker without a block would idle
        dataset = ray.data.from_arrow(tables).map_batches(
            worker,
            fn_constructor_kwargs=kwargs,
            batch_size=None,  # one call per block: blocks hold whole packing groups
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cluster.cpus_per_worker,
            **({"num_gpus": cluster.num_gpus} if cluster.num_gpus else {}),
        )
        batches = dataset.select_columns(["id", "error", "line"]).iter_batches(batch_size=None, batch_format="numpy")
        with _worker_errors(ray):
            for batch in batches:
                # a block without errors has a column of nulls, which may come back as NaN: only a string is one
                yield [
                    ClipResult(str(i), e if isinstance(e, str) else None, str(line))
                    for i, e, line in zip(batch["id"], batch["error"], batch["line"])
                ]


@contextmanager
def _session(cluster: Cluster) -> Iterator[Any]:
    """Ray, initialised for this run (and shut down after) unless the caller already did; Ray Data kept quiet."""
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise EngineError(
            f"the Ray engine needs ray[data] ({error}); install it with: pip install 'whisper-align[ray]'"
        ) from error
    started = not ray.is_initialized()
    if started:
        _init(ray, cluster)
    context = ray.data.DataContext.get_current()
    before = (context.enable_progress_bars, context.print_on_execution_start)
    context.enable_progress_bars, context.print_on_execution_start = False, False
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its notes (progress bars off, idle workers) are not the user's business
    try:
        yield ray
    finally:
        context.enable_progress_bars, context.print_on_execution_start = before
        logger.setLevel(level)
        if started:
            ray.shutdown()


def _init(ray: Any, cluster: Cluster) -> None:
    quiet: dict[str, Any] = dict(logging_level=logging.WARNING, log_to_driver=False)
    try:
        if cluster.address:
            ray.init(address=cluster.address, **quiet)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {cluster.address!r}" if cluster.address else "a local Ray"
        raise EngineError(
            f"could not start or join {where}: {error}; check the address (`ray status` on the head node "
            "prints it) or run without --address for a local Ray"
        ) from error


def _workers(ray: Any, model: ModelSpec, cluster: Cluster) -> int:
    """The number of workers, checked against what the cluster has (a run asking for more would wait forever)."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if model.device.startswith("cuda") and not cluster.num_gpus:
        raise EngineError("a CUDA device needs GPUs for the workers: give --num-gpus (GPUs per worker, e.g. 1)")
    workers = cluster.workers
    if workers is None:
        workers = int(gpus // cluster.num_gpus) if cluster.num_gpus else int(cpus)
    need_cpus, need_gpus = workers * cluster.cpus_per_worker, workers * cluster.num_gpus
    if workers < 1 or need_cpus > cpus + 1e-9 or need_gpus > gpus + 1e-9:
        raise EngineError(
            f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs; {max(workers, 1)} workers need "
            f"{max(need_cpus, cluster.cpus_per_worker):g} CPUs and {need_gpus or cluster.num_gpus:g} GPUs: "
            "ask for fewer workers (--workers) or add nodes"
        )
    return workers


@contextmanager
def _worker_errors(ray: Any) -> Iterator[None]:
    """A worker's own whisper-align error is raised here as the same type (Ray passes it on as text); any other
    failure of the run becomes an :class:`EngineError`."""
    try:
        yield
    except WhisperAlignError:
        raise
    except Exception as error:
        lines = str(error).strip().splitlines()
        last = lines[-1] if lines else type(error).__name__
        match = re.fullmatch(r"whisper_align\.errors\.(\w+): (.+)", last)
        kind = getattr(errors, match.group(1), None) if match else None
        if match and isinstance(kind, type) and issubclass(kind, WhisperAlignError):
            raise kind(match.group(2)) from error
        raise EngineError(
            f"the Ray run failed: {last}; the results written so far are kept: fix the cause and rerun to resume"
        ) from error


__all__ = ["Cluster", "align_on_ray", "transcribe_on_ray", "CLIPS_PER_BLOCK", "GROUPS_PER_BLOCK"]
