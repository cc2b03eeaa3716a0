"""PNG plots for benchmark reports: learning curves, open-loop PSNR, throughput.

Figures are drawn with matplotlib's object API (`matplotlib.figure.Figure`, Agg canvas),
so no pyplot global state or interactive backend is touched. Every function takes
already-aggregated arrays; the aggregation lives in `benchmarks.report`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Band = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""(x, mean, low, high), all shaped (N,)."""

_PNG_METADATA = {"Software": None}  # no version string: identical inputs give identical files


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Render `fig` to a PNG at `path` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100, metadata=_PNG_METADATA)
    return path


def plot_bands(
    series: Mapping[str, Band], path: str | os.PathLike, title: str, xlabel: str, ylabel: str,
    markers: bool = False, vline: float | None = None,
) -> Path:
    """One line per entry of `series` (mean) with a shaded low-high band; writes a PNG.

    `vline`, when given, is drawn as a dashed grey vertical line at that x.
    """
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    for label, (x, mean, low, high) in series.items():
        single = len(x) == 1  # a lone point (e.g. a planner, evaluated once) needs a marker
        (line,) = ax.plot(x, mean, label=label, marker="o" if markers or single else None)
        if np.any(low != high):
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if vline is not None:
        ax.axvline(vline, color="grey", linestyle="--", linewidth=1)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_learning_curves(
    series: Mapping[str, Band], path: str | os.PathLike, title: str, budget: float | None = None,
) -> Path:
    """Mean real-env return against real steps, one line per method, min-max over seeds shaded.

    `budget` (the nominal real-step budget) is marked with a dashed vertical line.
    """
    return plot_bands(series, path, title, xlabel="real env steps", ylabel="mean return", vline=budget)


def plot_psnr(series: Mapping[str, Band], path: str | os.PathLike, title: str) -> Path:
    """Open-loop PSNR (dB) against prediction horizon, one line per method/model."""
    return plot_bands(series, path, title, xlabel="open-loop horizon (steps)", ylabel="PSNR (dB)",
                      markers=True)


def plot_throughput(
    labels: Sequence[str], imagined: Sequence[float], real: Sequence[float], path: str | os.PathLike,
) -> Path:
    """Grouped bars of imagined vs real env steps/s per label, on a log axis."""
    fig = Figure(figsize=(max(6.4, 1.2 * len(labels)), 4.0), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(labels))
    ax.bar(x - 0.2, imagined, width=0.4, label="imagined steps/s")
    ax.bar(x + 0.2, real, width=0.4, label="real env steps/s")
    ax.set_xticks(x, labels, fontsize="small", rotation=20, ha="right")
    if np.all(np.asarray(imagined) > 0) and np.all(np.asarray(real) > 0):
        ax.set_yscale("log")
    ax.set_ylabel("steps per second")
    ax.set_title("Imagination vs real env throughput")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
    return _save(fig, path)
