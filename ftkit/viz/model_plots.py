"""Figures of a model's state and predictions: confusion matrix, LR finder, trainable parameters, drift.

Like ``ftkit.viz.plots`` (same palette and style, from ``ftkit.viz.style``; same rules): each
function takes data, here the output of ``ft.evaluate``, ``ft.lr_find``, ``ft.trainable_summary`` or
``ft.weight_drift``, and returns a ``Figure`` without showing it.

Example:
    >>> ft.plot_confusion(ft.evaluate(model, data.test))  # doctest: +SKIP
    >>> ft.plot_lr_find(ft.lr_find(model, data.train))  # doctest: +SKIP
    >>> ft.plot_trainable(model)  # doctest: +SKIP
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..core.errors import UnknownNameError
from ..tuning.freeze import trainable_summary
from .style import PALETTE, done, new_figure, rows_of, short, style


def plot_confusion(metrics_or_matrix: Any, classes: Sequence[str] | None = None, *, normalize: bool = True,
                   title: str | None = None) -> Figure:
    """The confusion matrix (rows: true class, columns: predicted), from ``ft.evaluate`` or a matrix.

    ``normalize=True`` colours each row by the share of that true class (recall on the
    diagonal); the cells show counts.

    Example:
        >>> ft.plot_confusion(ft.evaluate(model, data.test))  # doctest: +SKIP
        >>> ft.plot_confusion(result.runs[0]["report"])  # doctest: +SKIP
    """
    source = metrics_or_matrix
    if isinstance(source, dict):
        if "confusion" not in source:
            raise UnknownNameError("This dict has no 'confusion'; pass the output of ft.evaluate (classification) or a matrix.")
        classes = classes or source.get("classes")
        source = source["confusion"]
    counts = np.asarray(source.tolist() if hasattr(source, "tolist") else source, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"A confusion matrix is square (true x predicted); got shape {counts.shape}.")
    n = counts.shape[0]
    classes = list(classes) if classes is not None else [str(i) for i in range(n)]
    if len(classes) != n:
        raise ValueError(f"{len(classes)} class names for a {n}x{n} confusion matrix.")
    shown = counts / np.maximum(counts.sum(1, keepdims=True), 1) * 100 if normalize else counts
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    side = min(2.4 + 0.42 * n, 9.0)
    with style():
        fig, (ax,) = new_figure(1, width=side + 0.9, height=side)
        image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=100 if normalize else None)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if shown[i, j] > 0.55 * shown.max() else "#222222")
        ax.set_xticks(range(n), classes, rotation=45 if max(map(len, classes)) > 3 else 0, ha="right"
                      if max(map(len, classes)) > 3 else "center")
        ax.set_yticks(range(n), classes)
        ax.grid(False)
        ax.set(xlabel="predicted class", ylabel="true class",
               title=title or f"Confusion matrix (accuracy {100 * accuracy:.1f}%)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class (%)" if normalize else "examples")
    return done(fig)


def plot_weight_drift(table: Any, value: str | None = None, *, title: str | None = None) -> Figure:
    """How far each layer group moved from its pre-trained weights: one bar per group, input -> output.

    ``table`` is the Table from ``ftkit.experiments.analysis.weight_drift`` (or any rows with a ``group``
    column and a number column), or a dict ``{label: table}`` for grouped bars (one colour
    per strategy). ``value`` names the number column (default: the first numeric one).

    Example:
        >>> ft.plot_weight_drift({"full": drift_full, "L2-SP": drift_l2sp})  # doctest: +SKIP
    """
    tables = dict(table) if isinstance(table, dict) and "rows" not in table else {"": table}
    data = {label: rows_of(t) for label, t in tables.items()}
    first = next(iter(data.values()))
    if not first:
        raise ValueError("The drift table has no rows.")
    group_key = next((k for k in ("group", "layer", "name", "module") if k in first[0]), None)
    if group_key is None:
        raise UnknownNameError(f"Expected a 'group' column (one row per layer group); the columns are {list(first[0])}.")
    numeric = [k for k, v in first[0].items() if isinstance(v, float) and k != group_key]
    preferred = [k for k in numeric if any(w in k for w in ("relative", "drift", "change", "distance"))]
    value = value or (preferred or numeric or [None])[0]
    if value is None or value not in first[0]:
        raise UnknownNameError(f"No number column {value!r} to plot; the columns are {list(first[0])}.")
    groups = list(dict.fromkeys(r[group_key] for rows in data.values() for r in rows))
    width = 0.8 / len(data)
    with style():
        fig_width = max(4.2, 0.45 * len(groups) * max(1, len(data) ** 0.5) + 1.5)
        fig, (ax,) = new_figure(1, width=fig_width, height=3.2)
        for i, (label, rows) in enumerate(data.items()):
            lookup = {r[group_key]: r.get(value) for r in rows}
            x = np.arange(len(groups)) + (i - (len(data) - 1) / 2) * width
            ax.bar(x, [lookup.get(g) or 0.0 for g in groups], width, color=PALETTE[i % len(PALETTE)],
                   label=label or None)
        ax.set_xticks(range(len(groups)), groups, rotation=30 if len(groups) > 4 else 0,
                      ha="right" if len(groups) > 4 else "center")
        unit = " (‖w − w₀‖ / ‖w₀‖)" if "relative" in value or value == "drift" else ""
        ax.set(xlabel="layer group (input → output)", ylabel=f"{value}{unit}",
               title=title or "Weight drift from the pre-trained weights")
        ax.grid(axis="x", visible=False)
        if len(data) > 1:
            ax.legend()
    return done(fig)


def plot_lr_find(result: Any, *, title: str | None = None) -> Figure:
    """The LR range test: loss against learning rate (log scale), with the suggestion marked.

    Example:
        >>> ft.plot_lr_find(ft.lr_find(model, data.train))  # doctest: +SKIP
    """
    get = (lambda k: result.get(k)) if isinstance(result, dict) else (lambda k: getattr(result, k, None))
    lrs, losses, raw = get("lrs"), get("losses"), get("raw_losses")
    if not lrs or not losses:
        raise ValueError("Expected the result of ft.lr_find (with lrs and losses); this one is empty.")
    suggestion, lr_min = get("suggestion"), get("lr_min")
    with style():
        fig, (ax,) = new_figure(1, width=4.8, height=3.2)
        if raw:
            ax.plot(lrs[: len(raw)], raw, color=PALETTE[0], alpha=0.25, linewidth=0.8, label="loss per batch")
        ax.plot(lrs, losses, color=PALETTE[0], label="smoothed loss")
        finite = [v for v in losses if math.isfinite(v)]
        low, top = min(finite), min(max(finite), finite[0] * 1.5 if finite[0] > 0 else max(finite))
        ax.set_ylim(low - 0.05 * (top - low + 1e-12), top + 0.05 * (top - low + 1e-12))
        if suggestion is not None and math.isfinite(suggestion):
            at = float(np.interp(math.log10(suggestion), np.log10(lrs), losses))
            ax.axvline(suggestion, color=PALETTE[3], linestyle="--", linewidth=1.2)
            ax.plot([suggestion], [at], "o", color=PALETTE[3], markersize=7,
                    label=f"suggestion {suggestion:.1e} (steepest descent)")
        if lr_min is not None and math.isfinite(lr_min):
            ax.axvline(lr_min, color=PALETTE[2], linestyle=":", linewidth=1.2, label=f"minimum / 10 = {lr_min:.1e}")
        ax.set_xscale("log")
        ax.set(title=title or "Learning-rate finder", xlabel="learning rate (log scale)",
               ylabel="training loss (smoothed)")
        ax.legend(loc="upper left")
    return done(fig)


def plot_trainable(model_or_summary: Any, *, log: bool | None = None, title: str | None = None) -> Figure:
    """Parameters per layer group, the trainable part in colour and the frozen part in grey.

    Takes a model (``ft.trainable_summary`` is called on it) or that summary's Table.

    Example:
        >>> ft.freeze_to(model, -2); ft.plot_trainable(model)  # doctest: +SKIP
    """
    if hasattr(model_or_summary, "named_parameters"):
        model_or_summary = trainable_summary(model_or_summary)
    rows = rows_of(model_or_summary)
    if not rows or not {"group", "params", "trainable"} <= set(rows[0]):
        raise UnknownNameError("Expected ft.trainable_summary(model) (rows with group, params, trainable) or a model.")
    groups = [r["group"] for r in rows]
    params = np.array([r["params"] for r in rows], dtype=float)
    trainable = np.array([r["trainable"] for r in rows], dtype=float)
    log = params.max() / max(params.min(), 1) > 100 if log is None else log
    total, share = params.sum(), 100 * trainable.sum() / max(params.sum(), 1)
    with style():
        fig, (ax,) = new_figure(1, width=5.0, height=max(2.2, 0.32 * len(rows) + 1.2))
        y = np.arange(len(rows))
        ax.barh(y, params, color="#D9D9D9", label="frozen")
        ax.barh(y, trainable, color=PALETTE[0], label="trainable")
        for yi, p, t in zip(y, params, trainable):
            ax.annotate(f"{short(t)} / {short(p)}", (p, yi), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7)
        ax.set_yticks(y, groups)
        ax.invert_yaxis()  # input at the top, the head at the bottom, as the network reads
        if log:
            ax.set_xscale("log")
        ax.set_xlim(right=params.max() * (8 if log else 1.3))
        ax.set(xlabel="parameters" + (" (log scale)" if log else ""), ylabel="layer group (input → head)",
               title=title or f"Trainable parameters: {short(trainable.sum())} of {short(total)} ({share:.3g}%)")
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower right")
    return done(fig)
