"""Pictures for inspecting alignments: module-level functions only, each drawing onto a matplotlib Figure.

matplotlib is optional (``pip install whisper-align[plots]``): it is imported inside the functions, so the rest
of the package never needs it, and a missing install is a :class:`PlotDependencyError` saying what to install.
Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so no GUI backend is touched and
nothing global is left behind.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..errors import PlotDependencyError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _figure(**kwargs: Any) -> Figure:
    """A new matplotlib Figure (no pyplot), or a :class:`PlotDependencyError` if matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotDependencyError(
            "plotting needs matplotlib, which is not installed: pip install matplotlib "
            "(or pip install 'whisper-align[plots]')"
        ) from None
    return Figure(**kwargs)


def _save(fig: Figure, path: str | os.PathLike[str] | None) -> None:
    if path is not None:
        fig.savefig(os.fspath(path), dpi=fig.dpi, bbox_inches="tight")


def plot_heads_grid(
    mask: Any,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw alignment heads as a (decoder layer x head) grid, alignment heads filled; save to ``path`` if given.

    ``mask`` is a bool (layers, heads) array (see :mod:`whisper_align.heads`). Draws on ``ax`` if given,
    else on a new figure sized to the grid. Returns the figure.
    """
    from ..heads import AlignmentHeadsError

    array = np.asarray(mask, dtype=bool)
    if array.ndim != 2 or array.size == 0:
        raise AlignmentHeadsError(f"plot_heads_grid needs a 2-D (layers, heads) mask, got shape {array.shape}")
    n_layers, n_heads = array.shape
    if ax is None:
        fig = _figure(figsize=(max(3.0, 0.32 * n_heads + 1.5), max(2.0, 0.32 * n_layers + 1.2)), dpi=100)
        ax = fig.add_subplot()
    else:
        fig = cast("Figure", ax.figure)
    ax.imshow(array, cmap="Greys", vmin=0, vmax=1.25, interpolation="nearest", aspect="equal", origin="upper")
    # thin cell borders so empty cells are countable
    ax.set_xticks(np.arange(-0.5, n_heads, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n_layers, 1), minor=True)
    ax.grid(which="minor", color="0.8", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    step_x = max(1, n_heads // 20)
    step_y = max(1, n_layers // 16)
    ax.set_xticks(range(0, n_heads, step_x))
    ax.set_yticks(range(0, n_layers, step_y))
    ax.set_xlabel("head")
    ax.set_ylabel("decoder layer")
    count = int(array.sum())
    default = f"{count} alignment heads of {n_layers}x{n_heads}"
    ax.set_title(f"{title}: {default}" if title else default, fontsize=9)
    _save(fig, path)
    return fig


def plot_head_scores(
    scores: Any,
    path: str | os.PathLike[str] | None = None,
    chosen: Any = None,
    title: str | None = None,
    label: str = "score",
    ax: Axes | None = None,
) -> Figure:
    """Heat map of a per-head score over the (decoder layer x head) grid, chosen heads outlined.

    ``scores`` is a (layers, heads) array (NaN cells are left blank); ``chosen`` an optional bool mask of the
    same shape whose heads get a box. Each cell is labelled with its value. Returns the figure.
    """
    values = np.asarray(scores, dtype=float)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"plot_head_scores needs a 2-D (layers, heads) array, got shape {values.shape}")
    n_layers, n_heads = values.shape
    if ax is None:
        fig = _figure(figsize=(max(4.0, 0.55 * n_heads + 2.0), max(2.5, 0.45 * n_layers + 1.4)), dpi=100)
        ax = fig.add_subplot()
    else:
        fig = cast("Figure", ax.figure)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    image = ax.imshow(
        np.ma.masked_invalid(values),
        cmap="viridis",
        vmin=low,
        vmax=high if high > low else low + 1,
        interpolation="nearest",
        aspect="auto",
        origin="upper",
    )
    fig.colorbar(image, ax=ax, label=label, fraction=0.05)
    for layer in range(n_layers):
        for head in range(n_heads):
            if np.isfinite(values[layer, head]):
                bright = high > low and (values[layer, head] - low) / (high - low) > 0.6
                ax.text(
                    head,
                    layer,
                    f"{values[layer, head]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="black" if bright else "white",
                )
    if chosen is not None:
        mask = np.asarray(chosen, dtype=bool)
        if mask.shape != values.shape:
            raise ValueError(f"the chosen mask has shape {mask.shape}, the scores {values.shape}")
        from matplotlib.patches import Rectangle

        for layer, head in np.argwhere(mask):
            ax.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.set_xlabel("head")
    ax.set_ylabel("decoder layer")
    ax.set_title(title or f"{label} per head" + (" (chosen heads boxed)" if chosen is not None else ""), fontsize=9)
    _save(fig, path)
    return fig


def plot_alignment(
    matrix: Any,
    path: tuple[Any, Any] | None,
    ref_words: Any = None,
    hyp_words: Any = None,
    path_png: str | os.PathLike[str] | None = None,
    title: str | None = None,
    tokens_per_second: float = 50.0,
    ax: Axes | None = None,
) -> Figure:
    """An alignment matrix (token rows x time) with its DTW path and word boundaries.

    ``matrix`` is (tokens, frames), frames of 1/``tokens_per_second`` s; ``path`` is DTW's
    ``(text_indices, time_indices)`` (or None). ``ref_words`` / ``hyp_words`` are ``(word, start, end)``
    sequences (seconds): reference boundaries are drawn as solid green lines along the top with the words
    written there, hypothesis boundaries as dashed red lines. Saved to ``path_png`` if given.
    """
    values = np.asarray(matrix, dtype=float)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"plot_alignment needs a 2-D (tokens, frames) matrix, got shape {values.shape}")
    n_rows, n_frames = values.shape
    seconds = n_frames / tokens_per_second
    if ax is None:
        fig = _figure(figsize=(min(18.0, max(6.0, 2.0 * seconds + 2.0)), max(3.0, 0.22 * n_rows + 1.8)), dpi=100)
        ax = fig.add_subplot()
    else:
        fig = cast("Figure", ax.figure)
    ax.imshow(
        values,
        cmap="Blues",
        aspect="auto",
        origin="upper",
        interpolation="nearest",
        extent=(0.0, seconds, n_rows - 0.5, -0.5),
    )
    if path is not None:
        rows, cols = (np.asarray(p) for p in path)
        ax.plot((cols + 0.5) / tokens_per_second, rows, color="orange", linewidth=1.2, label="DTW path")
    for words, style, color, name in ((ref_words, "-", "green", "reference"), (hyp_words, "--", "red", "found")):
        first = True
        for word, start, end in words or ():
            for t in (start, end):
                ax.axvline(
                    float(t), color=color, linestyle=style, linewidth=0.8, alpha=0.8, label=name if first else None
                )
                first = False
            if color == "green":
                ax.text(
                    0.5 * (float(start) + float(end)),
                    -0.6,
                    str(word).strip(),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color="green",
                    clip_on=False,
                )
    ax.set_xlim(0.0, seconds)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("token row")
    if title:
        ax.set_title(title, fontsize=9, pad=14)
    if path is not None or ref_words or hyp_words:
        ax.legend(loc="lower left", fontsize=7)
    _save(fig, path_png)
    return fig


def waveform_envelope(samples: Any, rate: float, sample_rate: int = 16000) -> np.ndarray:
    """The (min, max) of ``samples`` over each bucket of ``1 / rate`` seconds: a (buckets, 2) float32 array.

    This is what a waveform drawing needs at a given resolution: one vertical stroke per bucket from its
    minimum to its maximum, so short clicks stay visible however far the picture is zoomed out. The last
    bucket may be shorter than the others; no samples give no buckets.
    """
    values = np.asarray(samples, dtype=np.float32).reshape(-1)
    if rate <= 0 or sample_rate <= 0:
        raise ValueError(f"need a positive bucket rate and sample rate, got {rate} and {sample_rate}")
    if values.size == 0:
        return np.zeros((0, 2), dtype=np.float32)
    edges = np.arange(0, values.size, max(1.0, sample_rate / rate)).astype(np.int64)
    edges = np.unique(edges)
    return np.stack([np.minimum.reduceat(values, edges), np.maximum.reduceat(values, edges)], axis=1)


def _word_rows(end: float, row_seconds: float, max_rows: int) -> tuple[int, float]:
    """How many rows of how many seconds a picture of ``end`` seconds gets (never more than ``max_rows``)."""
    rows = max(1, int(np.ceil(end / row_seconds - 1e-9)))
    if rows > max_rows:
        return max_rows, end / max_rows
    return rows, row_seconds if rows > 1 else max(end, 1e-3)


def plot_words(
    samples: Any,
    result: Any,
    path_png: str | os.PathLike[str] | None = None,
    sample_rate: int = 16000,
    title: str | None = None,
    row_seconds: float = 10.0,
    max_rows: int = 40,
) -> Figure:
    """A static picture of a recording and its words: the waveform in rows of ``row_seconds``, each word a
    shaded span with its text, coloured by probability (red low, green high); words past the end of the audio
    are red and hatched. ``result`` is a :class:`~whisper_align.results.types.Result`. A long recording gets
    at most ``max_rows`` rows (longer ones each); for hours of audio the HTML viewer reads better."""
    values = np.asarray(samples, dtype=np.float32).reshape(-1)
    words = list(result.words)
    duration = values.size / sample_rate
    end = max([duration, *(w.end for w in words)])
    rows, span = _word_rows(end, row_seconds, max_rows)
    fig = _figure(figsize=(14.0, 1.0 + 1.7 * rows), dpi=100)
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    rate = min(2000.0, 1400.0 / span)
    envelope = waveform_envelope(values, rate, sample_rate) if values.size else np.zeros((0, 2), np.float32)
    peak = float(np.abs(envelope).max()) if envelope.size else 0.0
    times = np.arange(len(envelope)) / rate
    for row, ax in enumerate(axes):
        ax.fill_between(times, envelope[:, 0], envelope[:, 1], color="#3b5b8c", linewidth=0.4, step="post")
        ax.set_xlim(row * span, (row + 1) * span)
        ax.set_ylim(-1.15 * (peak or 1.0), 1.6 * (peak or 1.0))
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=7)
        _draw_words(ax, [w for w in words if w.end >= row * span and w.start <= (row + 1) * span], peak or 1.0)
    axes[-1].set_xlabel("time (s)")
    heading = title or "words"
    if getattr(result, "low_confidence", False):
        heading += " (LOW CONFIDENCE: the transcript may not be what is said)"
    axes[0].set_title(heading, fontsize=9)
    fig.tight_layout()
    _save(fig, path_png)
    return fig


def _draw_words(ax: Axes, words: list[Any], peak: float) -> None:
    """Each word as a shaded span over the waveform and its text above it (alternating two heights)."""
    from matplotlib import colormaps

    colours = colormaps["RdYlGn"]
    for i, w in enumerate(words):
        probability = w.probability if np.isfinite(w.probability) else 0.5
        if w.past_end:
            ax.axvline(w.start, color="#c0392b", linewidth=2)
            ax.axvspan(w.start, w.end + 0.05, color="#c0392b", alpha=0.25, hatch="//", linewidth=0)
        else:
            ax.axvspan(w.start, w.end, color=colours(float(probability)), alpha=0.35, linewidth=0)
            ax.axvline(w.start, color="0.3", linewidth=0.5)
        ax.text(
            0.5 * (w.start + w.end),
            peak * (1.15 if i % 2 else 1.4),
            w.word.strip(),
            ha="center",
            va="center",
            fontsize=7,
            color="#8a1f11" if w.past_end else "black",
            clip_on=True,
        )


__all__ = [
    "PlotDependencyError",
    "plot_alignment",
    "plot_head_scores",
    "plot_heads_grid",
    "plot_words",
    "waveform_envelope",
]
