"""The look shared by every ftkit figure: palette, sizes, labels, and figure helpers.

``ftkit.viz.plots`` and ``ftkit.viz.model_plots`` draw with these, so every figure reads the
same way: Okabe-Ito colours, light grids, no top and right spines, small notebook-sized
figures closed from pyplot (a notebook shows the returned figure once).
"""
from __future__ import annotations

import contextlib
import io
from typing import Any

import matplotlib.pyplot as plt
from cycler import cycler
from matplotlib.figure import Figure

# Okabe & Ito (2008), "Color Universal Design": distinguishable with any common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")
GREY = "#8C8C8C"
STYLE = {
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.6, "font.size": 9, "axes.titlesize": 10, "axes.titleweight": "bold",
    "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8,
    "legend.frameon": False, "lines.linewidth": 1.8, "lines.markersize": 4, "figure.dpi": 100,
    "axes.prop_cycle": cycler(color=PALETTE),
}
PERCENT = ("accuracy", "f1", "precision", "recall", "source_accuracy", "forgetting")
LABELS = {
    "accuracy": "test accuracy (%)", "f1": "test macro-F1 (%)", "precision": "test macro precision (%)",
    "recall": "test macro recall (%)", "mse": "test MSE", "mae": "test MAE", "perplexity": "test perplexity",
    "loss": "test loss", "time_s": "wall time (s)", "samples_per_s": "throughput (samples/s)",
    "peak_memory_mb": "peak memory (MiB)", "trainable": "trainable parameters", "params": "parameters",
    "trainable %": "trainable parameters (%)", "source_accuracy": "source-task accuracy (%)",
    "forgetting": "forgetting (source accuracy drop, % points)",
}
LOSS_NAMES = {"classification": "cross-entropy", "regression": "MSE", "causal-lm": "cross-entropy per token"}


@contextlib.contextmanager
def style():
    with plt.rc_context(STYLE):
        yield


def new_figure(ncols: int = 1, width: float = 4.2, height: float = 3.0, **kwargs) -> tuple[Figure, Any]:
    fig = plt.figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, **kwargs)[0]
    return fig, axes


def done(fig: Figure) -> Figure:
    # Closed from pyplot's list of open figures: a notebook shows the returned figure once, not twice.
    plt.close(fig)
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """A figure as PNG bytes (for ``ipywidgets.Image``, files, HTML)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()



def percent_scale(name: str) -> float:
    return 100.0 if name.split("_", 1)[-1] in PERCENT or name in PERCENT else 1.0


def rows_of(result: Any) -> list[dict]:
    if hasattr(result, "rows"):
        return list(result.rows)
    if isinstance(result, dict) and "rows" in result:
        return list(result["rows"])
    if isinstance(result, (list, tuple)) and all(isinstance(r, dict) for r in result):
        return list(result)
    raise TypeError(f"Expected a result table (ft.compare), a ft Table or a list of row dicts; "
                    f"got {type(result).__name__}.")


def short(value: float) -> str:
    """12345 -> '12.3k', 0.912 -> '0.912', 91.2 -> '91.2'."""
    value = float(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"
