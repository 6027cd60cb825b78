"""Pictures for inspecting alignments: module-level functions only, each drawing onto a matplotlib Figure.

matplotlib is optional (``pip install whisper-align[plots]``): it is imported inside the functions, so the rest
of the package never needs it, and a missing install is a :class:`PlotDependencyError` saying what to install.
Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so no GUI backend is touched and
nothing global is left behind.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import WhisperAlignError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class PlotDependencyError(WhisperAlignError, ImportError):
    """matplotlib, which plotting needs, is not installed."""


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
    from .heads import AlignmentHeadsError

    array = np.asarray(mask, dtype=bool)
    if array.ndim != 2 or array.size == 0:
        raise AlignmentHeadsError(f"plot_heads_grid needs a 2-D (layers, heads) mask, got shape {array.shape}")
    n_layers, n_heads = array.shape
    if ax is None:
        fig = _figure(figsize=(max(3.0, 0.32 * n_heads + 1.5), max(2.0, 0.32 * n_layers + 1.2)), dpi=100)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
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


__all__ = ["PlotDependencyError", "plot_heads_grid"]
