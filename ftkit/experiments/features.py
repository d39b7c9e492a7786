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
    >>> ft.plot_features({"pre-trained": pre, "random weights": rnd})  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.batches import data_attr, model_device
from ..models.groups import head_name
from ..train.feature_cache import cache_features


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
        >>> f = ft.features(model, data.test)  # doctest: +SKIP
        >>> f.values.shape, f.labels[:5]  # doctest: +SKIP
    """
    head = head_name(model)
    if max_examples is not None and len(data) > max_examples:
        data = data.subset(range(max_examples)) if hasattr(data, "subset") else \
            torch.utils.data.Subset(data, range(max_examples))
    got = cache_features(model, head, data, batch_size, model_device(model))
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
        >>> ft.nearest_mean_accuracy(ft.features(model, data.train), ft.features(model, data.test))  # doctest: +SKIP
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


__all__ = ["Features", "features", "nearest_mean_accuracy"]
