"""Figures from data: learning curves, forgetting, strategy comparisons, data efficiency.

Every function takes data (a History, a result table, a metrics dict, rows of a Table),
never a trainer, and returns a matplotlib ``Figure`` without showing it: in a notebook the
returned figure displays once; in a script, ``fig.savefig("curves.png")``; for a widget,
``figure_png(fig)``. The colours are the Okabe-Ito palette, which stays distinct for the
common forms of colour blindness; line styles carry meaning too (solid = validation or
target, dashed = training or source), so the plots read in grey as well.

Here: training curves (``plot_history``, ``plot_forgetting``) and experiment results
(``plot_compare``, ``plot_data_efficiency``, ``plot_gap``). Pictures of a model's state and predictions
(``plot_confusion``, ``plot_lr_find``, ``plot_trainable``, ``plot_weight_drift``) are
written in ``ftkit.viz.model_plots`` and importable from here too; the shared look is in
``ftkit.viz.style``.

Example:
    >>> history = ft.fit(model, data.train, data.val, epochs=5)  # doctest: +SKIP
    >>> ft.plot_history(history)  # doctest: +SKIP
    >>> ft.plot_compare(ft.compare([ft.strategies.linear_probe(), ft.strategies.full()], model=name, data=data))  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from ..core.errors import UnknownNameError
from ..core.history import History
from ..core.schedules import SCHEDULES, lr_factor, warmup_steps
from .model_plots import plot_confusion, plot_lr_find, plot_trainable, plot_weight_drift
from .style import GREY, LABELS, LOSS_NAMES, PALETTE, done, figure_png, new_figure, percent_scale, rows_of, short, style

__all__ = ["PALETTE", "figure_png", "plot_bn_drift", "plot_compare", "plot_confusion", "plot_data_efficiency",
           "plot_forgetting", "plot_gap", "plot_history", "plot_lr_find", "plot_lr_schedules", "plot_trainable",
           "plot_weight_drift"]

# --- learning curves -------------------------------------------------------------------------


def _histories(data: Any) -> dict[str, History]:
    """A History, a list or dict of them, or a result table (its first seed per strategy) -> {label: History}."""
    if isinstance(data, History):
        return {data.info.get("label", "run"): data}
    if isinstance(data, dict) and all(isinstance(h, History) for h in data.values()):
        return dict(data)
    if hasattr(data, "runs"):  # a ResultTable
        out: dict[str, History] = {}
        for run in data.runs:
            label = run["strategy"] + (f" ({run['per_class']}/class)" if run.get("per_class") is not None else "")
            out.setdefault(label, run["history"])
        return out
    if isinstance(data, (list, tuple)) and data and all(isinstance(h, History) for h in data):
        return {h.info.get("label") or h.info.get("strategy", {}).get("name") or f"run {i + 1}": h
                for i, h in enumerate(data)}
    raise TypeError(f"Expected a History (from ft.fit), a list or dict of them, or a result table; "
                    f"got {type(data).__name__}.")


def _default_metric(task: str) -> str:
    return {"regression": "mae", "causal-lm": "perplexity"}.get(task, "accuracy")


def _step_positions(history: History) -> list[float]:
    """Each optimizer step's position in epochs (step 5 of 10 in epoch 2 -> 1.5)."""
    counts: dict[int, int] = {}
    for s in history.steps:
        counts[s["epoch"]] = counts.get(s["epoch"], 0) + 1
    seen: dict[int, int] = {}
    out = []
    for s in history.steps:
        seen[s["epoch"]] = seen.get(s["epoch"], 0) + 1
        out.append(s["epoch"] - 1 + seen[s["epoch"]] / counts[s["epoch"]])
    return out


def _phase_lines(ax, history: History) -> None:
    """Dotted vertical lines where a multi-phase run (two-phase training) switched phase."""
    epochs = history.epochs
    for before, after in zip(epochs, epochs[1:]):
        if before.get("phase") is not None and after.get("phase") != before.get("phase"):
            ax.axvline(before["epoch"], color=GREY, linestyle=":", linewidth=1)
            ax.text(before["epoch"], 0.99, f" phase {after['phase']}", transform=ax.get_xaxis_transform(),
                    va="top", fontsize=7, color=GREY)


def _present(history: Any, key: str) -> tuple[list, list]:
    """The epochs that recorded ``key`` and its values there (``fit(val_every=k)`` validates every k-th epoch)."""
    pairs = [(e["epoch"], e[key]) for e in history.epochs if e.get(key) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_history(history: Any, metric: str | None = None, *, lr: bool | None = None,
                 title: str | None = None) -> Figure:
    """Learning curves: train and validation loss (with the learning rate), and a validation metric.

    ``history`` is a History, a list or dict of Histories to overlay, or a result table
    (one run per strategy). The loss panel shows every step's loss faintly, each epoch's
    mean training loss dashed and the validation loss solid; the learning rate (the head's)
    is on a second axis for a single run (``lr=True`` forces it).

    Example:
        >>> ft.plot_history(history)  # doctest: +SKIP
        >>> ft.plot_history({"lr 1e-4": h1, "lr 1e-2": h2}, metric="f1")  # doctest: +SKIP
    """
    runs = _histories(history)
    if not all(h.epochs for h in runs.values()):
        raise ValueError("A History with no epochs has nothing to plot; train for at least one epoch.")
    task = next(iter(runs.values())).info.get("task", "classification")
    metric = metric or _default_metric(task)
    has_metric = any(f"val_{metric}" in e or f"train_{metric}" in e for h in runs.values() for e in h.epochs)
    single = len(runs) == 1
    lr = single if lr is None else lr
    with style():
        fig, axes = new_figure(2 if has_metric else 1)
        loss_ax = axes[0]
        for i, (label, h) in enumerate(runs.items()):
            color = PALETTE[i % len(PALETTE)]
            if single and h.steps:
                loss_ax.plot(_step_positions(h), [s["loss"] for s in h.steps], color=color, alpha=0.25,
                             linewidth=0.8, label="train loss (per step)")
            loss_ax.plot(*_present(h, "train_loss"), "o--", color=color, label="train")
            if any("val_loss" in e for e in h.epochs):
                loss_ax.plot(*_present(h, "val_loss"), "o-", color=color, label="validation")
            if has_metric:
                scale = percent_scale(metric)
                for prefix, fmt in (("train", "o--"), ("val", "o-")):
                    x, values = _present(h, f"{prefix}_{metric}")
                    if values:
                        axes[1].plot(x, [v * scale for v in values], fmt, color=color,
                                     label="validation" if prefix == "val" else "train")
            for ax in axes:
                _phase_lines(ax, h)
        loss_ax.set(title="Loss", xlabel="epoch", ylabel=f"loss ({LOSS_NAMES.get(task, 'loss')})")
        handles, labels = loss_ax.get_legend_handles_labels()
        if lr and any(h.steps for h in runs.values()):
            twin = loss_ax.twinx()
            for i, h in enumerate(runs.values()):
                twin.plot(_step_positions(h), [s["lr"] for s in h.steps], color=GREY if single else PALETTE[i],
                          linestyle=":", linewidth=1.2, label="learning rate")
            twin.set_ylabel("learning rate (head)", color=GREY)
            twin.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            twin.grid(False)
            twin.spines["right"].set_visible(True)
            more = twin.get_legend_handles_labels()
            handles, labels = handles + more[0][:1], labels + more[1][:1]
        if single:
            loss_ax.legend(handles, labels, loc="upper right")
            if has_metric:
                axes[1].legend(loc="lower right")
        else:  # one colour per run, one line style per split: a legend beside the panels
            keys = [Line2D([], [], color=PALETTE[i % len(PALETTE)], label=label) for i, label in enumerate(runs)]
            keys += [Line2D([], [], color=GREY, linestyle="--", label="train"),
                     Line2D([], [], color=GREY, linestyle="-", label="validation")]
            fig.legend(handles=keys, loc="outside right upper")
        if has_metric:
            unit = " (%)" if percent_scale(metric) == 100 else ""
            axes[1].set(title=metric.capitalize() if metric != "f1" else "Macro F1", xlabel="epoch",
                        ylabel=f"{metric}{unit}")
        for ax in axes:
            ax.xaxis.get_major_locator().set_params(integer=True)
        fig.suptitle(title or "Learning curves", fontweight="bold")
    return done(fig)


def plot_forgetting(history: Any, source: str = "source_accuracy", target: str = "val_accuracy", *,
                    title: str | None = None) -> Figure:
    """Forgetting over epochs: the source task's accuracy (dashed) against the target's validation accuracy.

    The epochs need a ``source_accuracy`` (``ft.compare(..., source=...)`` records it; in your
    own ``fit``, a callback can: ``lambda e, h, m: h.epochs[-1].update(source_accuracy=...)``).
    Epoch 0 is the pre-trained model when ``info["source_accuracy_before"]`` is known.

    Example:
        >>> ft.plot_forgetting(result)      # one colour per strategy  # doctest: +SKIP
    """
    runs = _histories(history)
    for label, h in runs.items():
        if not any(source in e for e in h.epochs):
            raise UnknownNameError(f"{label!r} has no {source!r} in its epochs, so there is no forgetting to plot. Record it: "
                           "ft.compare(..., source=source_data) does, or a fit callback that sets "
                           f"history.epochs[-1][{source!r}] after each epoch.")
    with style():
        fig, (ax,) = new_figure(1, width=5.0 if len(runs) == 1 else 7.0, height=3.2)
        for i, (label, h) in enumerate(runs.items()):
            color = PALETTE[i % len(PALETTE)]
            x = [e["epoch"] for e in h.epochs]
            # Epoch 0 is the pre-trained model: not the start of a run from scratch.
            scratch = h.info.get("strategy", {}).get("pretrained") is False
            before = None if scratch else h.info.get("source_accuracy_before")
            xs, ys = (([0] + x, [before] + [e.get(source) for e in h.epochs]) if before is not None
                      else (x, [e.get(source) for e in h.epochs]))
            ax.plot(xs, [None if v is None else 100 * v for v in ys], "o--", color=color)
            if any(target in e for e in h.epochs):
                ax.plot(x, [None if e.get(target) is None else 100 * e[target] for e in h.epochs], "o-", color=color)
            _phase_lines(ax, h)
        handles = [Line2D([], [], color=PALETTE[i % len(PALETTE)], label=label) for i, label in enumerate(runs)]
        handles += [Line2D([], [], color=GREY, linestyle="-", label="target (validation)"),
                    Line2D([], [], color=GREY, linestyle="--", label="source task")]
        if len(runs) > 1:
            fig.legend(handles=handles, loc="outside right upper")
        else:
            ax.legend(handles=handles[1:], loc="best")
        ax.set(title=title or "Forgetting: source task vs target task", xlabel="epoch (0 = pre-trained)",
               ylabel="accuracy (%)")
        ax.xaxis.get_major_locator().set_params(integer=True)
    return done(fig)


def plot_lr_schedules(schedules: Sequence[str] = ("constant", "step", "cosine", "onecycle"), *,
                      total_steps: int = 100, lr: float = 1e-3, warmup: int | float | None = None,
                      steps_per_epoch: int = 10, step_size: int = 0, gamma: float = 0.1,
                      title: str | None = None) -> Figure:
    """The learning rate at every optimizer step under each schedule, exactly as ``fit`` applies it.

    Each line is ``lr * ft.lr_factor(schedule, ...)(step)`` with the schedule's default warmup
    (``warmup=None``) or the one given, so the picture is the formula ``fit`` uses.

    Example:
        >>> ft.plot_lr_schedules(total_steps=200, lr=1e-3)
        <Figure size 700x300 with 1 Axes>
        >>> ft.plot_lr_schedules(["cosine"], warmup=0.2)
        <Figure size 700x300 with 1 Axes>
    """
    unknown = [s for s in schedules if s not in SCHEDULES]
    if unknown or not schedules:
        raise ValueError(f"schedules must be some of {SCHEDULES}; got {list(schedules)!r}.")
    if not isinstance(total_steps, int) or total_steps < 1 or not lr > 0:
        raise ValueError(f"total_steps must be a whole number >= 1 and lr > 0; got {total_steps!r} and {lr!r}.")
    steps = np.arange(total_steps)
    with style():
        fig, (ax,) = new_figure(1, width=7.0, height=3.0)
        for i, name in enumerate(schedules):
            w = warmup_steps(warmup, total_steps, name)
            f = lr_factor(name, total_steps, w, steps_per_epoch, step_size, gamma)
            label = name + (f" (warmup {w} steps)" if w else "")
            ax.plot(steps, [lr * f(int(s)) for s in steps], color=PALETTE[i % len(PALETTE)], label=label,
                    linestyle=("-", "--", "-.", ":")[i % 4])
        ax.set(title=title or "Learning-rate schedules", xlabel="optimizer step", ylabel="learning rate")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        fig.legend(loc="outside right upper")  # beside the axes: the curves fill the whole panel
    return done(fig)


def plot_bn_drift(tables: Any, value: str = "mean shift", *, title: str | None = None) -> Figure:
    """How far each BatchNorm layer's running statistics moved (``ft.bn_drift``), input to output.

    ``tables`` is one table from ``ft.bn_drift`` or a dict ``{label: table}`` for grouped
    bars, one colour per label; a label whose layers did not move at all says so in the legend.

    Example:
        >>> ft.plot_bn_drift({"bn='train'": ft.bn_drift(start, a), "bn='frozen'": ft.bn_drift(start, b)})  # doctest: +SKIP
    """
    data = {label: rows_of(t) for label, t in (tables.items() if isinstance(tables, dict) else [("", tables)])}
    first = next(iter(data.values()), [])
    if not first or "layer" not in first[0] or value not in first[0]:
        raise UnknownNameError(f"Expected tables from ft.bn_drift (rows with 'layer' and {value!r}).")
    layers = list(dict.fromkeys(r["layer"] for rows in data.values() for r in rows))
    width = 0.8 / len(data)
    with style():
        fig, (ax,) = new_figure(1, width=max(4.6, 0.42 * len(layers) + 1.6), height=3.2)
        for i, (label, rows) in enumerate(data.items()):
            lookup = {r["layer"]: r.get(value) or 0.0 for r in rows}
            still = not any(lookup.values())
            x = np.arange(len(layers)) + (i - (len(data) - 1) / 2) * width
            ax.bar(x, [lookup.get(name, 0.0) for name in layers], width, color=PALETTE[i % len(PALETTE)],
                   label=(label + "  (no change: 0)" if still else label) or None)
        ax.set_xticks(range(len(layers)), layers, rotation=45 if len(layers) > 3 else 0,
                      ha="right" if len(layers) > 3 else "center")
        unit = " (in starting std)" if value == "mean shift" else ""
        ax.set(xlabel="BatchNorm layer (input → output)", ylabel=value + unit,
               title=title or "BatchNorm running statistics: how far they moved")
        ax.grid(axis="x", visible=False)
        if any(data):
            ax.legend(loc="upper right")
    return done(fig)


# --- result tables -----------------------------------------------------------------------------


def plot_compare(result: Any, metric: str | Sequence[str] = "accuracy", *, title: str | None = None) -> Figure:
    """Bars per strategy with error bars (std over seeds); several metrics give panels side by side.

    Example:
        >>> ft.plot_compare(result)                                   # test accuracy  # doctest: +SKIP
        >>> ft.plot_compare(result, ["accuracy", "time_s", "trainable"])  # doctest: +SKIP
    """
    rows = rows_of(result)
    if any(r.get("per_class") is not None for r in rows) and len({r.get("strategy") for r in rows}) < len(rows):
        raise ValueError("This table has several rows per strategy (one per training-set size); "
                         "plot it with ft.plot_data_efficiency(result).")
    metrics = [metric] if isinstance(metric, str) else list(metric)
    for m in metrics:
        if not any(isinstance(r.get(m), (int, float)) for r in rows):
            raise UnknownNameError(f"No row has a number for {m!r}; the columns are {sorted({k for r in rows for k in r})}.")
    names = [str(r.get("strategy", i)) for i, r in enumerate(rows)]
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(rows))]
    y = np.arange(len(rows))
    with style():
        # Horizontal bars: strategy names stay readable, and panels share one column of names.
        fig, axes = new_figure(len(metrics), width=3.3, height=max(2.0, 0.36 * len(rows) + 1.1), sharey=True)
        for ax, m in zip(axes, metrics):
            scale = percent_scale(m)
            values = np.array([np.nan if r.get(m) is None else r[m] * scale for r in rows], dtype=float)
            errors = np.array([(r.get(f"{m}_std") or 0.0) * scale for r in rows], dtype=float)
            ax.barh(y, values, xerr=errors, color=colors, height=0.7, capsize=2.5, ecolor="#333333",
                    error_kw={"linewidth": 1})
            for yi, v, e in zip(y, values, errors):
                if np.isfinite(v):  # the value, just past the end of its error bar
                    ax.annotate(short(v), (v + e if v >= 0 else v - e, yi), xytext=(3 if v >= 0 else -3, 0),
                                textcoords="offset points", ha="left" if v >= 0 else "right", va="center",
                                fontsize=7)
            log = m in ("trainable", "params") and np.nanmax(values) / max(np.nanmin(values), 1) > 100
            if log:
                ax.set_xscale("log")
            low, high = np.nanmin(np.minimum(values - errors, 0)), np.nanmax(np.maximum(values + errors, 0))
            pad = (high - low) * 0.18 or 1.0
            ax.set_xlim(left=None if log else (low - pad if low < 0 else 0),
                        right=high * 6 if log else high + pad)
            if m in ("forgetting",) or low < 0:
                ax.axvline(0, color="#333333", linewidth=0.8)
            ax.set(xlabel=LABELS.get(m, m), title=LABELS.get(m, m).split(" (")[0].capitalize())
            ax.grid(axis="y", visible=False)
        axes[0].set_yticks(y, names)
        axes[0].set_ylabel("strategy")
        axes[0].invert_yaxis()  # the first strategy at the top, as in the table
        seeds = rows[0].get("seeds")
        spread = f" (mean ± std over {seeds} seeds)" if seeds and seeds > 1 else ""
        fig.suptitle(title or f"Strategies compared{spread}", fontweight="bold")
    return done(fig)


def plot_data_efficiency(result: Any, metric: str = "accuracy", *, title: str | None = None) -> Figure:
    """Score against training examples per class (log scale), one line per strategy, ± std as a band.

    Example:
        >>> ft.plot_data_efficiency(ft.data_efficiency([ft.strategies.scratch(), ft.strategies.full()], model=name, data=data))  # doctest: +SKIP
    """
    rows = [r for r in rows_of(result) if isinstance(r.get(metric), (int, float))]
    if not rows or "per_class" not in rows[0]:
        raise ValueError("Expected a table from ft.data_efficiency (rows with per_class and "
                         f"{metric!r}); ft.compare's table has one size only: use ft.plot_compare.")
    sized = [r for r in rows if r["per_class"] is not None]
    classes = sized[0]["train_size"] / sized[0]["per_class"] if sized else None
    scale = percent_scale(metric)
    with style():
        fig, (ax,) = new_figure(1, width=5.0, height=3.2)
        strategies = list(dict.fromkeys(r["strategy"] for r in rows))
        for i, name in enumerate(strategies):
            mine = [r for r in rows if r["strategy"] == name]
            x = np.array([r["per_class"] if r["per_class"] is not None else
                          (r["train_size"] / classes if classes else r["train_size"]) for r in mine], dtype=float)
            order = np.argsort(x)
            y = np.array([r[metric] for r in mine])[order] * scale
            err = np.array([r.get(f"{metric}_std") or 0.0 for r in mine])[order] * scale
            color = PALETTE[i % len(PALETTE)]
            ax.plot(x[order], y, "o-", color=color, label=name)
            ax.fill_between(x[order], y - err, y + err, color=color, alpha=0.18, linewidth=0)
        ticks = sorted({r["per_class"] for r in sized})
        full = sorted({r["train_size"] for r in rows if r["per_class"] is None})
        ax.set_xscale("log")
        tick_x = [float(t) for t in ticks] + [f / classes if classes else f for f in full]
        ax.set_xticks(tick_x, [str(t) for t in ticks] + [f"all\n({f:,})" for f in full])
        ax.minorticks_off()
        ax.set(title=title or f"Data efficiency: {LABELS.get(metric, metric).split(' (')[0]}",
               xlabel="training examples per class (log scale)", ylabel=LABELS.get(metric, metric))
        ax.legend(loc="lower right")
    return done(fig)


def plot_gap(gaps: Any, *, title: str | None = None) -> Figure:
    """The generalisation gap per setting: train accuracy and held-out accuracy joined by a line.

    ``gaps`` maps a setting's name to what ``ft.generalization_gap`` returned, or is a list
    of such dicts with a ``setting`` key, or is ``ft.compare(..., gap=True)``'s result (its
    test accuracy is the held-out one; bars show ± one standard deviation over seeds). The
    line's length is the gap; the first setting (the baseline) is marked by a dotted line
    at its held-out accuracy.

    Example:
        >>> ft.plot_gap({"baseline": ft.generalization_gap(m1, train, test), "dropout": ...})  # doctest: +SKIP
        >>> ft.plot_gap(ft.compare(strategies, model="glyph-resnet", data=data, per_class=5, gap=True))  # doctest: +SKIP
    """
    if isinstance(gaps, dict):
        rows = [dict(g, setting=name) for name, g in gaps.items()]
    else:
        rows = [dict(r) for r in rows_of(gaps)]
        for r in rows:  # compare's rows: one per strategy, the test split held out
            if "strategy" in r and "held_out_accuracy" not in r and "accuracy" in r:
                r.update(setting=r["strategy"], held_out_accuracy=r["accuracy"],
                         held_out_accuracy_std=r.get("accuracy_std"))
    missing = [r.get("setting", i) for i, r in enumerate(rows)
               if not all(isinstance(r.get(k), (int, float)) for k in ("train_accuracy", "held_out_accuracy"))]
    if not rows or missing:
        raise ValueError(f"plot_gap needs train_accuracy and held_out_accuracy per setting (ft.generalization_gap "
                         f"returns them for classification); missing for {missing or 'every setting'}.")
    y = np.arange(len(rows))
    train = np.array([100 * r["train_accuracy"] for r in rows])
    held = np.array([100 * r["held_out_accuracy"] for r in rows])
    with style():
        fig, (ax,) = new_figure(1, width=5.6, height=max(2.2, 0.42 * len(rows) + 1.1))
        ax.hlines(y, held, train, color=GREY, linewidth=3, alpha=0.6, zorder=1)
        ax.scatter(train, y, color=PALETTE[1], marker="s", zorder=2, label="train (examples it learnt from)")
        ax.scatter(held, y, color=PALETTE[0], marker="o", zorder=2, label="held out (never seen)")
        spread = [r.get("held_out_accuracy_std") for r in rows]
        if all(isinstance(v, (int, float)) for v in spread):
            ax.errorbar(held, y, xerr=100 * np.array(spread), fmt="none", ecolor=PALETTE[0], elinewidth=1,
                        capsize=3, zorder=2)
        for yi, t, h in zip(y, train, held):
            ax.annotate(f"gap {t - h:.1f}", (max(t, h), yi), xytext=(6, 0), textcoords="offset points",
                        va="center", fontsize=7)
        ax.axvline(held[0], color=PALETTE[0], linestyle=":", linewidth=1)
        low, high = min(held.min(), train.min()), max(held.max(), train.max())
        pad = max(1.0, 0.1 * (high - low))
        ax.set_xlim(low - pad, high + 3.5 * pad)  # room for the labels on the right
        ax.set_xticks([t for t in ax.get_xticks() if low - pad <= t <= 100])  # no ticks past 100%
        ax.set_yticks(y, [str(r.get("setting", i)) for i, r in enumerate(rows)])
        ax.invert_yaxis()  # the first setting at the top, as in the table
        ax.grid(axis="y", visible=False)
        ax.set(xlabel="accuracy (%)", ylabel="setting", title="Each line's length is the gap")
        fig.legend(loc="outside lower center", ncol=2)
        fig.suptitle(title or "Generalisation gap: train minus held-out accuracy (points)", fontweight="bold")
    return done(fig)
