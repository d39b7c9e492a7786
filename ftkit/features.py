"""What a network sees: the features its head reads, how well they separate the classes, a 2-D map of them.

A classifier is a backbone that turns each input into a feature vector, and a head (one
linear layer) that reads it. Pre-training pays off when those features already put the
examples of a class together and different classes apart, before any training on the new
task: the idea behind feature extraction and linear probes (Yosinski et al. 2014, "How
transferable are features in deep neural networks?"; Kornblith et al. 2019, "Do Better
ImageNet Models Transfer Better?").

- ``features(model, data)``: the head's input for every example, as ``Features``;
- ``nearest_mean_accuracy(train, test)``: each test example gets the class whose mean
  training feature is closest. Nothing trains, so it measures the features alone;
- ``plot_features(features)``: the features on their first two principal components
  (PCA), one colour per class; a dict of them draws panels side by side;
- ``plot_examples(data, predicted=...)``: the inputs themselves, with labels and what a model read.

Example:
    >>> data = ft.load_dataset("digits", "glyph-resnet")
    >>> pre = ft.features(ft.load_model("glyph-resnet"), data.test)
    >>> rnd = ft.features(ft.load_model("glyph-resnet", pretrained=False), data.test)
    >>> ft.plot_features({"pre-trained": pre, "random weights": rnd})
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import patheffects
from matplotlib.figure import Figure
from torch import nn

from .evaluate import _model_device, data_attr
from .feature_cache import cache_features
from .groups import head_name
from .plot_style import done, new_figure, style

# Ten well-separated colours for classes (matplotlib's tab10); each class is also labelled
# with its name at its centre, so the colours are never the only cue.
_CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf")


@dataclass
class Features:
    """The features a model's head reads, one row per example, with the examples' labels."""

    values: torch.Tensor  # [N, D] float32 on the CPU: the head's input for each example
    labels: torch.Tensor  # [N]: class indices (numbers for regression)
    classes: list[str] = field(default_factory=list)  # class names, when the data has them
    layer: str = ""  # the head whose input these are

    def __len__(self) -> int:
        return len(self.values)

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    def pca(self, k: int = 2) -> tuple[torch.Tensor, list[float]]:
        """The features on their first ``k`` principal components ``[N, k]``, and each one's share of the variance.

        An exact SVD of the centred features (deterministic; ``torch.pca_lowrank`` is the
        randomised version for big matrices). Signs are fixed so the largest loading is positive.
        """
        if not 1 <= k <= min(self.values.shape):
            raise ValueError(f"k must be from 1 to {min(self.values.shape)} for {len(self)} examples x {self.dim} "
                             f"features; got {k!r}.")
        x = self.values.double()
        x = x - x.mean(0)
        _, s, vh = torch.linalg.svd(x, full_matrices=False)
        axes = vh[:k]
        signs = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
        axes = axes * signs
        share = (s**2 / (s**2).sum().clamp(min=1e-12))[:k]
        return (x @ axes.T).float(), [float(v) for v in share]

    def __repr__(self) -> str:
        return f"Features({len(self):,} examples x {self.dim} features, the input of {self.layer!r})"


def features(model: nn.Module, data: Any, *, batch_size: int = 64, max_examples: int | None = None) -> Features:
    """The input of the model's head (the backbone's output) for every example of ``data``, in eval mode.

    Works on any model whose head (``ft.head_name``) is one layer called once per forward:
    the zoo's, torchvision's and Hugging Face classifiers. ``max_examples`` keeps the first ones.

    Example:
        >>> f = ft.features(model, data.test)
        >>> f.values.shape, f.labels[:5]
    """
    head = head_name(model)
    if max_examples is not None and len(data) > max_examples:
        data = data.subset(range(max_examples)) if hasattr(data, "subset") else \
            torch.utils.data.Subset(data, range(max_examples))
    got = cache_features(model, head, data, batch_size, _model_device(model))
    if isinstance(got, str):
        raise ValueError(f"Could not read the features the head {head!r} sees: {got}.")
    values, labels = got.tensors
    return Features(values.detach().float().flatten(1).cpu(), labels.cpu(), list(data_attr(data, "classes") or []),
                    head)


def nearest_mean_accuracy(train: Features, test: Features) -> float:
    """Accuracy of the nearest-class-mean rule: each test example gets the class with the closest mean training feature.

    Nothing is trained, so it measures how well the features alone separate the classes
    (Euclidean distance; classes missing from ``train`` are never predicted).

    Example:
        >>> ft.nearest_mean_accuracy(ft.features(model, data.train), ft.features(model, data.test))
    """
    if train.dim != test.dim:
        raise ValueError(f"train has {train.dim} features per example and test {test.dim}: "
                         "take both from the same model.")
    if train.labels.is_floating_point() or test.labels.is_floating_point():
        raise ValueError("nearest_mean_accuracy needs class labels; these features have numbers (regression).")
    present = torch.unique(train.labels)
    means = torch.stack([train.values[train.labels == c].mean(0) for c in present])
    predicted = present[torch.cdist(test.values, means).argmin(1)]
    return float((predicted == test.labels).float().mean())


def plot_features(features: Features | dict[str, Features], *, max_points: int = 2000,
                  title: str | None = None) -> Figure:
    """Each example as a dot on the first two principal components of the features, coloured by class.

    A dict ``{label: Features}`` draws one panel per entry, each with its own PCA. Each
    class's name is written at the centre of its dots. Classes that form separate clouds
    here are easy for a linear head; two dimensions hide a lot, so clouds that overlap
    here may still be apart in all ``D`` (``ft.nearest_mean_accuracy`` measures that).

    Example:
        >>> ft.plot_features({"pre-trained": ft.features(pre, data.test), "random": ft.features(rnd, data.test)})
    """
    panels = features if isinstance(features, dict) else {features.layer or "features": features}
    if not panels or not all(isinstance(f, Features) for f in panels.values()):
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
        >>> ft.plot_examples(data.test, predicted=ft.predict(model, data.test))
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


__all__ = ["Features", "features", "nearest_mean_accuracy", "plot_examples", "plot_features"]
