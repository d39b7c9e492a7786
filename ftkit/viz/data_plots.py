"""Pictures of data and of what a model sees: example images, and features in two dimensions.

Example:
    >>> ft.plot_examples(data.test, predicted=ft.predict(model, data.test))  # doctest: +SKIP
    >>> ft.plot_features({"pre-trained": ft.features(model, data.test)})  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import patheffects
from matplotlib.figure import Figure

from ..core.batches import data_attr
from .style import done, new_figure, style


def plot_features(features: Any, *, max_points: int = 2000,
                  title: str | None = None) -> Figure:
    """Each example as a dot on the first two principal components of the features, coloured by class.

    A dict ``{label: Features}`` draws one panel per entry, each with its own PCA. Each
    class's name is written at the centre of its dots. Classes that form separate clouds
    here are easy for a linear head; two dimensions hide a lot, so clouds that overlap
    here may still be apart in all ``D`` (``ft.nearest_mean_accuracy`` measures that).

    Example:
        >>> ft.plot_features({"pre-trained": ft.features(pre, data.test), "random": ft.features(rnd, data.test)})  # doctest: +SKIP
    """
    panels = features if isinstance(features, dict) else {features.layer or "features": features}
    if not panels or not all(_is_features(f) for f in panels.values()):
        raise TypeError("plot_features takes ft.features(model, data), or a dict {label: ft.features(...)}.")
    with style():
        fig, axes = new_figure(len(panels), width=3.6, height=3.4)
        for ax, (label, f) in zip(axes, panels.items()):
            points, share = f.pca(2)
            points, labels = points[:max_points].numpy(), f.labels[:max_points].numpy()
            names = f.classes or [str(c) for c in range(int(labels.max()) + 1)]
            for c in np.unique(labels):
                mine = points[labels == c]
                colour = _CLASS_COLOURS[int(c) % len(_CLASS_COLOURS)]
                ax.scatter(mine[:, 0], mine[:, 1], s=7, color=colour, alpha=0.6, linewidths=0)
                centre = np.median(mine, axis=0)
                ax.text(centre[0], centre[1], names[int(c)], ha="center", va="center", fontsize=10,
                        fontweight="bold", color=colour,
                        path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")])
            ax.set(title=label, xlabel=f"PC1 ({100 * share[0]:.0f}% of variance)",
                   ylabel=f"PC2 ({100 * share[1]:.0f}%)")
            ax.set_xticks([])
            ax.set_yticks([])
        dims = sorted({f.dim for f in panels.values()})
        fig.suptitle(title or f"What the head sees: {'/'.join(map(str, dims))}-D features, "
                              "projected on 2 principal components", fontweight="bold")
    return done(fig)


def plot_examples(data: Any, n: int = 16, *, predicted: Any = None, columns: int = 8,
                  title: str | None = None) -> Figure:
    """The first ``n`` images of an image dataset, as loaded (before normalisation), with their labels.

    ``predicted``: the model's reads, as ``ft.predict``'s Predictions or a list of names;
    each is written under its image, green when it matches the label and orange when not.

    Example:
        >>> ft.plot_examples(data.test, predicted=ft.predict(model, data.test))  # doctest: +SKIP
    """
    load = getattr(data, "load", None)
    if load is None and not (len(data) and torch.is_tensor(data[0][0]) and data[0][0].dim() == 3):
        raise TypeError("plot_examples shows images: pass an image split such as ft.load_dataset('digits').test.")
    n = min(n, len(data))
    names = list(data_attr(data, "classes") or [])
    if predicted is not None and hasattr(predicted, "labels"):
        predicted = predicted.names
    if predicted is not None and len(predicted) < n:
        raise ValueError(f"{len(predicted)} predictions for {n} images; predict on the same split.")
    rows, columns = -(-n // columns), min(n, columns)
    targets = data_attr(data, "targets")
    with style():
        fig = plt.figure(figsize=(0.85 * columns, 0.95 * rows + 0.5), layout="constrained")
        for i, ax in enumerate(fig.subplots(rows, columns, squeeze=False).flat):
            ax.set_axis_off()
            if i >= n:
                continue
            image = load(i) if load is not None else data[i][0]
            image = image.float()
            if image.min() < 0 or image.max() > 1:  # a normalised tensor: rescale for display only
                image = (image - image.min()) / (image.max() - image.min()).clamp(min=1e-8)
            shown = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)
            ax.imshow(shown.numpy(), cmap="gray_r" if image.shape[0] == 1 else None, interpolation="nearest")
            label = targets[i] if targets is not None else data[i][1]
            truth = names[int(label)] if names else str(label)
            if predicted is None:
                ax.set_title(truth, fontsize=8)
            else:
                ok = str(predicted[i]) == truth
                ax.set_title(f"{truth} → {predicted[i]}", fontsize=8, color="#0b7a3e" if ok else "#D55E00")
        fig.suptitle(title or ("true label → what the model read" if predicted is not None else "examples"),
                     fontweight="bold")
    return done(fig)


# Ten well-separated colours for classes (matplotlib's tab10); each class is also labelled
# with its name at its centre, so the colours are never the only cue.
_CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf")


def _is_features(value: Any) -> bool:
    """A ``Features`` record (``ft.features``): a tensor of ``values`` and one label per row."""
    return torch.is_tensor(getattr(value, "values", None)) and torch.is_tensor(getattr(value, "labels", None))
