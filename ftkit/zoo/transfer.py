"""Does the zoo backbone transfer? The few-shot protocol on sklearn's real handwritten digits.

For each number of examples per class ``k`` and each seed, the same ``k`` real digits per
class (``ft.few_shot``) train four models, and the held-out test split (20%, 359 digits)
scores them:

- ``finetune``: the pre-trained backbone with a new 10-class head, every layer trains;
- ``scratch``: the same architecture from random weights, the same recipe;
- ``probe``: the pre-trained backbone frozen (BatchNorm statistics too), only the head
  trains (a linear probe, on features computed once: ``fit``'s feature cache);
- ``probe_random``: the same linear probe on a randomly initialised backbone.

Everything runs through the public API (``ft.load_dataset``, ``ft.few_shot``,
``ft.fit``, ``ft.evaluate``), so the lessons' numbers and these agree. The recipe's
card, the tests and ``bench/zoo_reproduce.py`` all report this table.

Example:
    >>> from ftkit.zoo.transfer import digits_transfer  # doctest: +SKIP
    >>> digits_transfer("glyph-resnet", ks=(1, 10), seeds=(0,))  # doctest: +SKIP
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..core.util import Table
from ..data.catalogue import load_dataset
from ..data.labeled import few_shot
from ..models.catalogue import get_card, load_model, replace_head
from ..train.evaluate import evaluate, predict
from ..train.loop import fit
from ..tuning.freeze import freeze

STRATEGIES = ("finetune", "scratch", "probe", "probe_random")


@dataclass(frozen=True)
class FewShotRecipe:
    """How each few-shot model trains (the same for pre-trained and scratch models)."""

    steps: int = 40  # optimizer steps, whatever k is (epochs = steps / batches per epoch)
    batch_size: int = 32  # examples per step (all of them when there are fewer)
    lr: float = 2e-3  # peak learning rate of the one-cycle schedule (AdamW)
    probe_steps: int = 100  # steps of the linear probe (on cached features: cheap)
    probe_lr: float = 1e-2


def _fit(model: nn.Module, train, steps: int, lr: float, batch_size: int, seed: int):
    batch = min(batch_size, len(train))
    epochs = max(1, math.ceil(steps / math.ceil(len(train) / batch)))
    return fit(model, train, epochs=epochs, lr=lr, batch_size=batch, seed=seed, progress=False)


def _new_head(model: nn.Module, num_classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)  # the same fresh head for every strategy with this seed
    return replace_head(model, num_classes)


def random_like(model: nn.Module, seed: int) -> nn.Module:
    """The same catalogue architecture as ``model``, with random weights drawn with ``seed``."""
    torch.manual_seed(seed)
    return load_model(get_card(model).name, pretrained=False)


def few_shot_scores(pretrained: nn.Module, k: int, seed: int, recipe: FewShotRecipe = FewShotRecipe(),
                    strategies: Sequence[str] = STRATEGIES, data=None) -> dict[str, float]:
    """Test accuracy of each strategy trained on ``k`` real digits per class (one seed).

    ``pretrained`` is copied, never changed; the random backbone is drawn with ``seed``.
    """
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        raise ValueError(f"Unknown strategies {unknown}; choose from {STRATEGIES}.")
    data = data if data is not None else load_dataset("digits", pretrained, seed=seed)
    train = few_shot(data.train, k, seed=seed)
    scores = {}
    random_init = random_like(pretrained, seed) if {"scratch", "probe_random"} & set(strategies) else None
    for name in strategies:
        model = copy.deepcopy(random_init if name in ("scratch", "probe_random") else pretrained)
        _new_head(model, len(data.classes), seed)
        if name.startswith("probe"):
            freeze(model)  # the head trains; BatchNorm statistics stay as they were
            _fit(model, train, recipe.probe_steps, recipe.probe_lr, len(train), seed)
        else:
            _fit(model, train, recipe.steps, recipe.lr, recipe.batch_size, seed)
        scores[name] = evaluate(model, data.test)["accuracy"]
    return scores


def transfer_scores(pretrained: nn.Module, ks: Sequence[int] = (1, 2, 5, 10),
                    seeds: Sequence[int] = (0, 1, 2), recipe: FewShotRecipe = FewShotRecipe(),
                    strategies: Sequence[str] = STRATEGIES) -> dict[int, dict[str, float]]:
    """Mean test accuracy over ``seeds`` for each ``k`` and strategy: ``{k: {strategy: accuracy}}``."""
    sums: dict[int, dict[str, float]] = {k: dict.fromkeys(strategies, 0.0) for k in ks}
    for seed in seeds:
        data = load_dataset("digits", pretrained, seed=seed)  # one split per seed, shared by every k
        for k in ks:
            for name, acc in few_shot_scores(pretrained, k, seed, recipe, strategies, data).items():
                sums[k][name] += acc / len(seeds)
    return sums


def zero_shot_digits(model: nn.Module) -> float:
    """Accuracy on all 1,797 real digits of the pre-trained head's ten digit classes, untrained on them."""
    data = load_dataset("digits", model, val_size=0, test_size=0)
    logits = predict(model, data.train).outputs[:, :10]  # the zoo's glyph classes start with '0'..'9'
    return float((logits.argmax(1) == torch.tensor(data.train.targets)).float().mean())


def digits_transfer(name: str = "glyph-resnet", ks: Sequence[int] = (1, 2, 5, 10), seeds: Sequence[int] = (0, 1, 2),
                    recipe: FewShotRecipe = FewShotRecipe(), **overrides) -> Table:
    """The transfer table of a zoo model on real digits: mean accuracy over ``seeds`` per ``k``.

    Example:
        >>> ft.zoo.digits_transfer("glyph-resnet", ks=(1, 5), seeds=(0,))  # doctest: +SKIP
    """
    recipe = dataclasses.replace(recipe, **overrides)
    table = transfer_scores(load_model(name), ks, seeds, recipe)
    return transfer_table(table, name, len(seeds))


def transfer_table(scores: dict, name: str, n_seeds: int) -> Table:
    """``{k: {strategy: accuracy}}`` as a Table of percentages."""
    rows = [{"k per class": int(k), **{s: round(100 * v, 1) for s, v in row.items()}} for k, row in scores.items()]
    return Table(rows, title=f"{name} on real handwritten digits: test accuracy (%), mean of {n_seeds} seeds",
                 footer="finetune / scratch: every layer trains; probe: frozen backbone, new linear head.")
